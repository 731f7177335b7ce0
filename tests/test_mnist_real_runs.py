"""The MNIST trainer as a user runs it: a busy workdir, a full or read-only disk, ``--resume`` alone,
TensorBoard logs, ``--find-lr``, the ReduceLROnPlateau demo config, the printed lr.

The disk tests mount a small tmpfs (root only; skipped elsewhere, with the reason): a real
``ENOSPC``, and a real read-only remount in the middle of a run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

# examples/ lives at the repository root, which `python -m pytest` puts on sys.path and a bare
# `pytest` does not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lrjax
from examples.mnist import epochs, find_lr, input_pipeline, main, metrics, train
from examples.mnist.configs.default import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROG = "python -m examples.mnist.main: "
# 256 digits in batches of 32: 8 updates per epoch. SGD: strict dtype promotion holds.
SMALL = [
    "--train-examples",
    "256",
    "--test-examples",
    "64",
    "--batch-size",
    "32",
    "--optimizer",
    "sgd",
    "--lr",
    "0.05",
    "--schedule",
    "ExponentialLR",
    "--schedule-args",
    "gamma=0.5",
    "--no-progress",
]


def run_main(capsys, *argv):
    """``(exit code, stdout, stderr)`` of ``main.main(argv)``."""
    try:
        code = main.main([*argv, "--no-compilation-cache"])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PROG + "error: "), err
    assert "Traceback" not in err and "Event loop" not in err
    return lines[0]


# ------------------------------------------------------------------------------------------------
# Two runs on one workdir
# ------------------------------------------------------------------------------------------------

# The command, held at update STOP_AT until the file GO exists (the progress bar, off, is told
# after each piece of an epoch).
HOLD = r"""
import os, sys, time
from examples.mnist import epochs, main

seen = [0]

def update(self, n):
    seen[0] += n
    if seen[0] >= int(os.environ["STOP_AT"]) and not os.path.exists(os.environ["GO"]):
        open(os.environ["MARKER"], "w").close()
        while not os.path.exists(os.environ["GO"]):
            time.sleep(0.02)

epochs.NoBar.update = update
sys.exit(main.main(sys.argv[1:]))
"""


def test_a_second_run_on_a_busy_workdir_is_refused_and_the_first_goes_on(tmp_path, capsys):
    workdir, go, marker = tmp_path / "run", tmp_path / "go", tmp_path / "held"
    args = [*SMALL, "--epochs", "3", "--checkpoint-every-steps", "4", "--no-tensorboard", "--workdir", str(workdir)]
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "JAX_PLATFORMS": "cpu",
        "STOP_AT": "12",
        "GO": str(go),
        "MARKER": str(marker),
    }
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD, *args, "--no-compilation-cache"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never reached update 12"
            time.sleep(0.02)
        before = {e.split(".")[0] for e in os.listdir(workdir / "checkpoints")}  # 8 may still be being written
        for extra in ([], ["--resume"]):
            code, out, err = run_main(capsys, *args, *extra)
            line = one_error_line(err)
            assert code == 2 and out == "", err
            assert f"the workdir '{workdir}' is in use by another run (pid {first.pid}, started " in line
            assert "wait for it to end" in line and "--workdir" in line
        after = {e.split(".")[0] for e in os.listdir(workdir / "checkpoints")}
        assert {"4", "8"} <= before <= after  # nothing moved aside
        assert not (workdir / "checkpoints.previous-1").exists()
        go.touch()
        out, err = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err[-2000:]
    assert "Epoch 3, Loss:" in out and "24" in os.listdir(workdir / "checkpoints")
    # Once it has ended, the workdir is free: a new run starts (and moves the finished run's checkpoints aside).
    code, out, err = run_main(capsys, *args, "--epochs", "1")
    assert code == 0, err
    assert (workdir / "checkpoints.previous-1" / "24").is_dir()


# ------------------------------------------------------------------------------------------------
# A full disk, a read-only disk
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 640 KiB tmpfs (root only); yields ``(directory, remount)``, ``remount("ro" | "rw" | "size=4m")``."""
    directory = tmp_path / "disk"
    directory.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=640k", "tmpfs", str(directory)], capture_output=True, text=True
    )
    if proc.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {proc.stderr.strip()}")

    def remount(option: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{option}", str(directory)], check=True, capture_output=True)

    try:
        yield directory, remount
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def test_a_full_disk_stops_the_run_with_a_short_message_and_resume_continues(small_disk, capsys):
    disk, remount = small_disk
    workdir = disk / "run"
    args = [*SMALL, "--epochs", "12", "--keep-checkpoints", "100", "--workdir", str(workdir)]
    code, out, err = run_main(capsys, *args)
    line = one_error_line(err)
    assert code == 1, err
    assert "No space left on device" in line and "--resume" in line
    good = re.search(r"the last good checkpoint is (\S+?)\.? ", line)
    if good:  # a checkpoint write failed: the message names the last complete one
        assert os.path.isdir(good.group(1)) and "could not write a checkpoint" in line
    else:  # a log file filled the disk first
        assert re.search(r"could not (write|append to) \S+", line)
    assert "Epoch 1, Loss:" in out
    remount("size=8m")  # room again: the same command with --resume goes on to the end
    code, out, err = run_main(capsys, *args, "--resume")
    assert code == 0, err
    assert "Resumed from" in out and "Epoch 12, Loss:" in out
    assert len(metrics.read_jsonl(str(workdir / "metrics.jsonl"))) == 12


def test_a_workdir_made_read_only_mid_run_stops_it_with_a_short_message(small_disk, capsys, monkeypatch):
    disk, remount = small_disk
    workdir = disk / "run"
    seen = [0]

    def read_only_at_12(self, n):
        seen[0] += n
        if seen[0] >= 12 and seen[0] - n < 12:
            deadline = time.monotonic() + 30
            while not (workdir / "checkpoints" / "8").exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # epoch 1's checkpoint, written in the background, is complete
            remount("ro")

    monkeypatch.setattr(epochs.NoBar, "update", read_only_at_12)
    args = [*SMALL, "--epochs", "3", "--no-tensorboard", "--workdir", str(workdir)]
    code, out, err = run_main(capsys, *args)
    line = one_error_line(err)
    assert code == 1 and "Read-only file system" in line and "--resume" in line, err
    assert "Epoch 2, Loss:" in out and "Epoch 3, Loss:" not in out  # the end of epoch 2 could not be logged
    assert f"the last good checkpoint is {workdir / 'checkpoints' / '8'}" in line
    assert line.rstrip().endswith("with --resume.")
    monkeypatch.undo()
    remount("rw")
    code, out, err = run_main(capsys, *args, "--resume")
    assert code == 0, err
    assert "Resumed from" in out and out.count("Epoch ") == 2  # epochs 2 and 3


# ------------------------------------------------------------------------------------------------
# Resume with the saved settings; a damaged checkpoint from the command line
# ------------------------------------------------------------------------------------------------


def test_resume_alone_continues_with_the_saved_settings(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    code, out, err = run_main(capsys, *SMALL, "--epochs", "2", "--seed", "7", "--no-tensorboard", "--workdir", workdir)
    assert code == 0, err
    code, out, err = run_main(capsys, "--workdir", workdir, "--resume", "--epochs", "3")
    assert code == 0, err
    assert "Resumed from" in out and "Resuming with a change" not in out
    assert "sgd" in out and "exponential_lr(base_lr=0.05, gamma=0.5)" in out
    rows = metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    np.testing.assert_allclose([r["lr"] for r in rows], [0.05, 0.025, 0.0125], rtol=1e-6)
    # A flag given with --resume overrides the saved value, and a training setting is checked as ever.
    code, out, err = run_main(capsys, "--workdir", workdir, "--resume", "--epochs", "4", "--seed", "8")
    assert code == 2 and "seed: 7 in the checkpoint, 8 now" in one_error_line(err)


def test_resume_of_a_run_with_a_python_function_asks_for_its_config_file(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    config = os.path.join(ROOT, "examples", "mnist", "configs", "lambda_lr.py")
    base = ["--train-examples", "128", "--test-examples", "64", "--no-progress", "--no-tensorboard"]
    import jax

    with jax.numpy_dtype_promotion("standard"):  # optax.adam, as users run it
        code, out, err = run_main(capsys, "--config", config, *base, "--epochs", "1", "--workdir", workdir)
        assert code == 0, err
        code, out, err = run_main(capsys, "--workdir", workdir, "--resume")
        assert code == 2 and "--config FILE.py --resume" in one_error_line(err)
        code, out, err = run_main(capsys, "--config", config, *base, "--epochs", "2", "--workdir", workdir, "--resume")
    assert code == 0, err
    assert "Resumed from" in out and "Epoch 2, Loss: " in out and "LR: 0.000667" in out  # 1e-3 / (1 + 1/2)


def test_a_truncated_checkpoint_gives_one_line_from_the_command(tmp_path):
    """The command, resumed from a checkpoint with a truncated data file: the error, and nothing after it."""
    workdir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    args = [
        sys.executable,
        "-m",
        "examples.mnist.main",
        *SMALL,
        "--epochs",
        "2",
        "--workdir",
        str(workdir),
        "--compilation-cache",
        str(tmp_path / "cache"),
    ]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = workdir / "checkpoints" / "16" / "state"
    data = max((p for p in state.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    proc = subprocess.run([*args, "--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "checkpoints/16 is corrupt or incomplete" in line and "previous checkpoint (step 8) is untouched" in line


# ------------------------------------------------------------------------------------------------
# TensorBoard, --find-lr, the plateau demo, the printed lr
# ------------------------------------------------------------------------------------------------


def test_tensorboard_events_hold_the_logged_values(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    workdir = tmp_path / "run"
    code, out, err = run_main(capsys, *SMALL, "--epochs", "2", "--workdir", str(workdir))
    assert code == 0, err
    assert f"TensorBoard events in {workdir / 'tensorboard'}" in out
    events = EventAccumulator(str(workdir / "tensorboard"))
    events.Reload()
    assert {
        "update/lr",
        "update/loss",
        "epoch/train_loss",
        "epoch/test_loss",
        "epoch/test_accuracy",
        "epoch/lr",
    } <= set(events.Tags()["scalars"])
    lines = (workdir / "steps.csv").read_text().splitlines()[1:]
    lr = [e.value for e in events.Scalars("update/lr")]
    loss = [e.value for e in events.Scalars("update/loss")]
    assert [e.step for e in events.Scalars("update/lr")] == list(range(1, 17))
    np.testing.assert_array_equal(np.float32(lr), np.float32([float(x.split(",")[2]) for x in lines]))
    np.testing.assert_array_equal(np.float32(loss), np.float32([float(x.split(",")[3]) for x in lines]))
    rows = metrics.read_jsonl(str(workdir / "metrics.jsonl"))
    accuracy = events.Scalars("epoch/test_accuracy")
    assert [e.step for e in accuracy] == [8, 16]
    np.testing.assert_allclose([e.value for e in accuracy], [r["test_accuracy"] for r in rows], rtol=1e-6)


def test_find_lr_sweeps_the_run_s_model_optimizer_and_batches(tmp_path, capsys):
    workdir = tmp_path / "run"
    code, out, err = run_main(
        capsys, *SMALL, "--find-lr", "--find-lr-steps", "30", "--find-lr-range", "1e-4", "10", "--workdir", str(workdir)
    )
    assert code == 0, err
    assert "LR range test: linear, optax.sgd, 30 updates of batch 32, lr 0.0001 -> 10" in out
    suggested = re.search(r"Suggested lr: (\S+);", out).group(1)
    assert (workdir / "find_lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (workdir / "checkpoints").exists()  # nothing trained
    # The same sweep by hand: lrjax.find_lr on the run's loss, initial parameters and first 30 batches.
    config = main.config_from_args(main.build_parser().parse_args(SMALL))
    plan, tx, graphdef, _ = train.setup(config, 8)
    params = train.create_train_state(config, tx, plan).params
    train_ds, _ = input_pipeline.load("embedded", None, 256, 64)
    batches = find_lr.sweep_batches(config, train_ds, 30)
    assert batches["label"].shape == (30, 32)  # epochs 1 to 4 of 8 batches, in the run's order
    np.testing.assert_array_equal(
        batches["label"][8:16],
        input_pipeline.batch(train_ds, input_pipeline.epoch_order(config.seed, 2, 256), 32)["label"],
    )
    import optax

    result = lrjax.find_lr(
        train.make_loss_fn(graphdef), params, batches, optimizer=optax.sgd, start_lr=1e-4, end_lr=10.0, has_aux=True
    )
    assert suggested == (f"{result.suggested_lr:.3g}" if result.suggested_lr is not None else "none")


def test_the_plateau_demo_config_reduces_the_lr(tmp_path, capsys):
    import jax

    path = os.path.join(ROOT, "examples", "mnist", "configs", "plateau.json")
    with jax.numpy_dtype_promotion("standard"):  # optax.adam
        code, out, err = run_main(
            capsys,
            "--config",
            path,
            "--no-progress",
            "--no-checkpoint",
            "--no-tensorboard",
            "--workdir",
            str(tmp_path / "run"),
        )
    assert code == 0, err
    lrs = [float(x) for x in re.findall(r"^Epoch \d+, Loss: \S+, LR: (\S+)$", out, re.M)]
    assert len(lrs) == 10 and lrs[0] == pytest.approx(0.002) and lrs[1] == pytest.approx(0.02)  # warm-up, base lr
    cuts = [b / a for a, b in zip(lrs[1:], lrs[2:]) if b != a]
    assert cuts and all(c == pytest.approx(0.5) for c in cuts)  # reduced by factor 0.5, visibly, within the run
    assert lrs[-1] <= 0.01


@pytest.mark.parametrize(
    "lr, text",
    [
        (1e-3, "0.001000"),
        (1e-5, "0.000010"),
        (0.0, "0.000000"),
        (0.05, "0.050000"),
        (2e-7, "2.000e-07"),
        (1.234e-5, "1.234e-05"),
        (0.00123456, "0.001235"),
        (12.5, "12.500000"),
    ],
)
def test_the_lr_is_printed_readably_at_any_magnitude(lr, text):
    assert metrics.format_lr(lr) == text


def test_a_tiny_lr_is_printed_in_the_epoch_line(tmp_path, capsys):
    code, out, err = run_main(capsys, *SMALL, "--lr", "2e-7", "--epochs", "1", "--workdir", str(tmp_path / "run"))
    assert code == 0, err
    assert re.search(r"^Epoch 1, Loss: \d+\.\d{4}, LR: 2\.000e-07$", out, re.M), out


def test_the_default_config_is_the_seed():
    config = get_config()
    assert (config.model, config.optimizer, config.learning_rate, config.batch_size, config.epochs) == (
        "linear",
        "adam",
        1e-3,
        64,
        5,
    )
    assert config.schedule == {"name": "step_lr", "step_size": 2, "gamma": 0.1}
