"""Checkpoints of the MNIST trainer (orbax) and exact resume.

The main test interrupts the trainer four ways: in subprocesses running the command line, a
SIGKILL from this test in the middle of an epoch, and a SIGKILL inside orbax's save (after the
files are written, before the atomic rename); in this process, a SIGTERM (which the trainer turns
into a checkpoint and a clean stop), and a run that ends after 2 epochs and is extended to 4.
Each is resumed (``--resume``) and must end with the same per-update lrs and losses
(``steps.csv`` byte for byte), the same per-epoch rows and bitwise the same final state
(parameters, optimizer state, plateau state) as an uninterrupted run, which runs in this process
(the same compiled code as the command's: the results agree to the bit across processes). Run
with ``-s`` to see where each run was stopped and resumed.

The other tests damage checkpoints (flipped byte, truncated file, missing item, half-written step
directory, an edited record) and resume from other runs' checkpoints: clear errors, nothing loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

# examples/ lives at the repository root, which `python -m pytest` puts on sys.path and a bare
# `pytest` does not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples.mnist import checkpointing, epochs, main, resume, train
from examples.mnist.configs.default import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 512 digits in batches of 32: 16 updates per epoch, 4 epochs. Adam; a warm-up epoch, then
# ReduceLROnPlateau on the test loss (patience 0, threshold 0.5: the lr is halved once), so the
# lr depends on the metrics the resumed run restores. Checkpoints every epoch and every 8 updates
# (8, 16, 24, ...: every other one mid-epoch). (Checkpoints that do not divide the epoch, and the
# Python loop, are resumed in tests/test_mnist_parallel.py's transfer-guard test.)
ARGS = [
    "--train-examples",
    "512",
    "--test-examples",
    "200",
    "--batch-size",
    "32",
    "--epochs",
    "4",
    "--lr",
    "0.01",
    "--schedule",
    "ReduceLROnPlateau",
    "--schedule-args",
    "patience=0",
    "factor=0.5",
    "threshold=0.5",
    "--warmup",
    "1",
    "--checkpoint-every-steps",
    "8",
    "--no-progress",
    "--no-plot",
]
TOTAL = 64

# The trainer, with hooks to interrupt it at a given point: the progress bar (off here) is told
# after each piece of an epoch; orbax's rename finalizes a checkpoint.
DRIVER = r"""
import os, signal, sys, time
from examples.mnist import epochs, main

stop_at = int(os.environ.get("STOP_AT", "0"))
seen = [0]

def update(self, n):
    seen[0] += n
    if stop_at and seen[0] >= stop_at:  # tell the test, then wait for its SIGKILL
        with open(os.environ["MARKER"], "w") as f:
            f.write(str(seen[0]))
        time.sleep(600)

epochs.NoBar.update = update
crash_at = os.environ.get("CRASH_IN_SAVE", "")
if crash_at:
    from orbax.checkpoint._src.path import async_path
    rename = async_path.rename

    async def crash_before_rename(src, dst):
        if os.path.basename(str(dst)) == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)  # the step is written, not yet renamed
        return await rename(src, dst)

    async_path.rename = crash_before_rename
sys.exit(main.main(sys.argv[1:]))
"""


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    """A run waiting for its SIGKILL must not outlive a failed test."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _start(workdir, *extra, **env):
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu", **{k: str(v) for k, v in env.items()}}
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *ARGS, "--workdir", str(workdir), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _STARTED.append(proc)
    return proc


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _steps_on_disk(workdir):
    d = os.path.join(workdir, "checkpoints")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def _final_state(workdir):
    """The run's last checkpoint, read back (layout and checksum verified) as NumPy arrays."""
    config = main.config_from_args(main.build_parser().parse_args(ARGS))
    with jax.numpy_dtype_promotion("standard"):
        _, _, _, abstract = train.setup(config, 16)
    ckpts = checkpointing.Checkpoints(os.path.join(workdir, "checkpoints"))
    try:
        step = ckpts.latest()
        return step, ckpts.restore(step, abstract), ckpts.read_meta(step)
    finally:
        ckpts.close()


def _rows(workdir):
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8")]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _same_as_reference(workdir, ref):
    """Asserts that run ``workdir`` ended exactly as run ``ref``; returns the number of state arrays compared."""
    assert (workdir / "steps.csv").read_text() == (ref / "steps.csv").read_text()  # every lr and loss, 9 digits
    assert _rows(workdir) == _rows(ref)
    step, state, _ = _final_state(workdir)
    ref_step, ref_state, _ = _final_state(ref)
    assert step == ref_step == TOTAL
    leaves, ref_leaves = jax.tree.leaves(state), jax.tree.leaves(ref_state)
    assert len(leaves) == len(ref_leaves)
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(leaves, ref_leaves))
    assert not any(".orbax-checkpoint-tmp" in e for e in _steps_on_disk(workdir))
    return len(leaves)


def test_interrupted_runs_resume_to_the_same_bits(tmp_path, monkeypatch):
    ref, kill, crash, term, short = (tmp_path / n for n in ("ref", "kill", "crash", "term", "short"))
    marker = tmp_path / "marker"
    procs = {
        # SIGKILL from outside at update 40 (epoch 3, batch 8 of 16), before its checkpoint.
        "kill": _start(kill, STOP_AT=40, MARKER=marker),
        # SIGKILL inside the save of checkpoint 40 (epoch 3, batch 8), before orbax renames it.
        "crash": _start(crash, CRASH_IN_SAVE="40"),
    }
    stopped_at = {}
    # Meanwhile, in this process (the same trainer and config): the uninterrupted run; a SIGTERM
    # to this process at update 40, which the trainer turns into a checkpoint and RunStopped ...
    config = main.config_from_args(main.build_parser().parse_args(ARGS))
    seen = [0]

    def sigterm_at_40(self, n):
        seen[0] += n
        if seen[0] >= 40 and seen[0] - n < 40:
            os.kill(os.getpid(), signal.SIGTERM)

    with jax.numpy_dtype_promotion("standard"):
        train.train_and_evaluate(config, str(ref), log=lambda s: None)
        with monkeypatch.context() as m:
            m.setattr(epochs.NoBar, "update", sigterm_at_40)
            with pytest.raises(train.RunStopped) as e:
                train.train_and_evaluate(config, str(term), log=lambda s: None)
        assert e.value.signum == signal.SIGTERM and e.value.step == 40
        assert "stopped by SIGTERM after 40 updates (epoch 3, batch 8 of 16)" in str(e.value)
        stopped_at["term"] = _steps_on_disk(term)
        term_result = train.train_and_evaluate(config.replace(resume=True), str(term), log=lambda s: None)
        # ... and a clean stop after 2 epochs, extended to 4 with resume.
        train.train_and_evaluate(config.replace(epochs=2), str(short), log=lambda s: None)
        stopped_at["short"] = _steps_on_disk(short)
        short_result = train.train_and_evaluate(config.replace(resume=True), str(short), log=lambda s: None)

    deadline = time.monotonic() + 300
    while not marker.exists():
        assert procs["kill"].poll() is None, _finish(procs["kill"])
        assert time.monotonic() < deadline, "the run to kill never reached update 40"
        time.sleep(0.02)
    killed_in_memory = int(marker.read_text())
    procs["kill"].kill()  # SIGKILL
    codes = {name: _finish(p) for name, p in procs.items()}
    assert codes["kill"][0] == -9 and codes["crash"][0] == -9, (codes["kill"][2][-2000:], codes["crash"][2][-2000:])
    stopped_at.update(kill=_steps_on_disk(kill), crash=_steps_on_disk(crash))
    assert "40.orbax-checkpoint-tmp" in stopped_at["crash"] and "40" not in stopped_at["crash"]  # never renamed
    resumed = {name: _start(d, "--resume") for name, d in (("kill", kill), ("crash", crash))}
    codes = {name: _finish(p) for name, p in resumed.items()}

    ref_lrs = [float(line.split(",")[2]) for line in (ref / "steps.csv").read_text().splitlines()[1:]]
    assert len(ref_lrs) == TOTAL and len(set(ref_lrs)) == 3  # warm-up 1e-3, 1e-2, halved once to 5e-3
    report = [f"uninterrupted: {TOTAL} updates, lrs {sorted(set(ref_lrs))}"]
    starts = {"term": term_result.resumed_from, "short": short_result.resumed_from}
    for name, workdir in (("kill", kill), ("crash", crash)):
        code, out, err = codes[name]
        assert code == 0, err[-3000:]
        starts[name] = int(out.split("Resumed from ")[1].split(":")[0].rsplit(os.sep, 1)[1])
    for name, workdir in (("kill", kill), ("crash", crash), ("term", term), ("short", short)):
        arrays = _same_as_reference(workdir, ref)
        report.append(
            f"{name}: checkpoints on disk when stopped {stopped_at[name]}, resumed from update "
            f"{starts[name]}; {TOTAL} lrs and losses equal, final state bitwise equal ({arrays} arrays)"
        )
    assert killed_in_memory == 40 and starts["term"] == 40 and starts["short"] == 32
    assert starts["crash"] == 32 and starts["kill"] in (24, 32)  # 24 if the save of 32 was still being written
    print("\n  " + "\n  ".join(report))


# ------------------------------------------------------------------------------------------------
# Damaged and foreign checkpoints (in-process, SGD: no dtype-promotion fixture needed)
# ------------------------------------------------------------------------------------------------

SMALL = dict(
    train_examples=200,
    test_examples=100,
    progress=False,
    plot=False,
    optimizer="sgd",
    optimizer_args={"momentum": 0.9},
    learning_rate=0.05,
    epochs=2,
    checkpoint_every_steps=2,
    schedule={"name": "ReduceLROnPlateau", "patience": 0, "factor": 0.5},
)


def small(**changes):
    return get_config().replace(**{**SMALL, **changes})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 2-epoch run (4 updates per epoch) with checkpoints 4, 6, 8 kept, and its final state."""
    workdir = tmp_path_factory.mktemp("finished")
    result = train.train_and_evaluate(small(), str(workdir), log=lambda s: None)
    return workdir, result


def _copy(finished_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(finished_run[0], workdir)
    return workdir


def _damage(step_dir, how):
    state = step_dir / "state"
    if how in ("flip", "truncate"):
        data = max(
            (p for p in state.rglob("*") if p.is_file() and p.parent.name == "d"), key=lambda p: p.stat().st_size
        )
        raw = bytearray(data.read_bytes())
        if how == "flip":
            raw[len(raw) // 2] ^= 0xFF
            data.write_bytes(bytes(raw))
        else:
            data.write_bytes(bytes(raw[: len(raw) // 2]))
    elif how == "truncated_meta":  # orbax's step metadata, which holds the trainer's record
        meta = step_dir / "_CHECKPOINT_METADATA"
        meta.write_bytes(meta.read_bytes()[:40])
    elif how == "edited_meta":  # still valid JSON, one recorded value changed
        path = step_dir / "_CHECKPOINT_METADATA"
        meta = json.loads(path.read_text())
        meta["custom_metadata"]["history"][0]["train_loss"] += 1.0
        path.write_text(json.dumps(meta))
    elif how == "no_state":
        shutil.rmtree(state)


def test_checkpoint_holds_the_whole_run(finished_run):
    workdir, result = finished_run
    assert sorted(os.listdir(workdir / "checkpoints")) == ["4", "6", "8"]
    ckpts = checkpointing.Checkpoints(str(workdir / "checkpoints"))
    try:
        meta = ckpts.read_meta(6)
        sizes = {step: len(json.dumps(ckpts.read_meta(step))) for step in (4, 6, 8)}
        _, _, _, abstract = train.setup(small(), 4)
        state = ckpts.restore(8, abstract)
    finally:
        ckpts.close()
    assert (meta["step"], meta["epoch"], meta["position"], meta["steps_per_epoch"]) == (6, 2, 2, 4)
    assert meta["config"]["optimizer"] == "sgd" and meta["config"]["seed"] == 0 and meta["config"]["epochs"] == 2
    assert resume.run_fields(meta["config"]) == resume.run_fields(small())
    assert meta["data"]["seed"] == 0 and meta["data"]["num_examples"] == 200 and len(meta["data"]["order_sha256"]) == 64
    # Per-update metrics of the epoch in progress only (updates 4 and 5 at step 6), not of the whole run.
    assert (
        len(meta["history"]) == 1 and len(meta["partial"]["loss"]) == 2 and len(meta["partial"]["learning_rate"]) == 2
    )
    assert sizes[8] - sizes[6] < 400  # an epoch adds a row, not its updates
    assert meta["versions"]["jax"] == jax.__version__
    # Optimizer state: inject_hyperparams' lr and momentum, optax's count; the plateau state.
    assert int(state.step) == 8 and int(state.opt_state.count) == 8
    assert set(state.opt_state.hyperparams) == {"learning_rate", "momentum"}
    assert int(state.plateau.num_updates) == 2
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(jax.device_get(result.state))):
        np.testing.assert_array_equal(a, b)


# When tensorstore fails a read, orbax closes its asyncio loop while other reads still complete;
# their callbacks then print "Event loop is closed" (harmless, and only in a long-lived process).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("how", ["flip", "truncate", "truncated_meta", "edited_meta", "no_state"])
def test_damaged_checkpoint_is_refused_and_the_previous_one_resumes(finished_run, tmp_path, how):
    workdir = _copy(finished_run, tmp_path)
    _damage(workdir / "checkpoints" / "8", how)
    before = (workdir / "metrics.jsonl").read_bytes()
    with pytest.raises(checkpointing.CheckpointError) as e:
        train.train_and_evaluate(small(resume=True), str(workdir), log=lambda s: None)
    message = str(e.value)
    assert "checkpoints/8 is corrupt or incomplete" in message and "nothing was loaded" in message
    assert "previous checkpoint (step 6) is untouched" in message and "--resume" in message
    assert (workdir / "metrics.jsonl").read_bytes() == before  # the failed resume changed nothing
    # As the message says: delete it, resume from 6, end with the same final state.
    shutil.rmtree(workdir / "checkpoints" / "8")
    result = train.train_and_evaluate(small(resume=True), str(workdir), log=lambda s: None)
    assert result.resumed_from == 6
    for a, b in zip(
        jax.tree.leaves(jax.device_get(result.state)), jax.tree.leaves(jax.device_get(finished_run[1].state))
    ):
        np.testing.assert_array_equal(a, b)


def test_half_written_checkpoint_is_ignored(finished_run, tmp_path):
    """What a crash during a save leaves (orbax writes into <step>.orbax-checkpoint-tmp, then
    renames): the latest complete checkpoint is used, the leftover is cleaned up."""
    workdir = _copy(finished_run, tmp_path)
    partial = workdir / "checkpoints" / "10.orbax-checkpoint-tmp"
    shutil.copytree(workdir / "checkpoints" / "8", partial)
    _damage(partial, "truncate")
    (partial / "commit_success.txt").unlink()
    logs = []
    result = train.train_and_evaluate(small(resume=True, epochs=3), str(workdir), log=logs.append)
    assert result.resumed_from == 8 and int(jax.device_get(result.state.step)) == 12
    assert not partial.exists() and sorted(os.listdir(workdir / "checkpoints")) == ["10", "12", "8"]


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(model="cnn"), 'model: "linear" in the checkpoint, "cnn" now'),
        (dict(optimizer="adam", optimizer_args={}), 'optimizer: "sgd" in the checkpoint, "adam" now'),
        (dict(batch_size=32), "batch_size: 64 in the checkpoint, 32 now"),
        (dict(seed=1), "seed: 0 in the checkpoint, 1 now"),
    ],
)
def test_checkpoint_of_another_run_is_refused(finished_run, tmp_path, change, message):
    workdir = _copy(finished_run, tmp_path)
    with pytest.raises(checkpointing.CheckpointError) as e:
        train.train_and_evaluate(small(resume=True, **change), str(workdir), log=lambda s: None)
    assert "cannot resume from" in str(e.value) and message in str(e.value)
    assert "--resume-with-changes" in str(e.value)


def test_incompatible_state_is_never_half_loaded(finished_run, tmp_path):
    """Forcing a resume into another model: the layout check refuses before any array is read."""
    workdir = _copy(finished_run, tmp_path)
    with pytest.raises(checkpointing.CheckpointError) as e:
        train.train_and_evaluate(
            small(resume=True, resume_with_changes=True, model="cnn"), str(workdir), log=lambda s: None
        )
    assert "holds a different model or optimizer state" in str(e.value)
    assert "missing from the checkpoint: params/conv1" in str(e.value) and "not in this run: params/fc" in str(e.value)


def test_resume_with_nothing_to_resume_starts_a_new_run_and_a_new_run_moves_checkpoints_aside(finished_run, tmp_path):
    logs = []
    result = train.train_and_evaluate(small(resume=True, epochs=1), str(tmp_path / "empty"), log=logs.append)
    assert result.resumed_from is None and any("Nothing to resume" in line for line in logs)
    workdir = _copy(finished_run, tmp_path)
    earlier = sorted(os.listdir(workdir / "checkpoints"))
    logs = []
    train.train_and_evaluate(small(epochs=1), str(workdir), log=logs.append)
    assert any("moved the checkpoints of an earlier run" in line for line in logs)
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]
    assert sorted(os.listdir(workdir / "checkpoints.previous-1")) == earlier  # nothing is deleted


def test_foreign_files_in_the_checkpoint_directory_are_not_deleted(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "notes.txt").write_text("mine")
    with pytest.raises(checkpointing.CheckpointError, match="not checkpoints .*notes.txt.*not touching"):
        train.train_and_evaluate(small(epochs=1), str(tmp_path), log=lambda s: None)
    assert (tmp_path / "checkpoints" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "error, status",
    [
        (train.RunStopped("stopped by SIGTERM after 40 updates", signal.SIGTERM, 40), 143),
        (checkpointing.CheckpointWriteError("could not write checkpoint 40", None), 1),
        (train.RunStopped("stopped by SIGINT after 40 updates", signal.SIGINT, 40), 130),
        (train.NonFiniteError("non-finite training at update 6", 5, None, None), 3),
        (checkpointing.CheckpointError("checkpoint x is corrupt or incomplete"), 2),
    ],
)
def test_exit_status_of_the_command(monkeypatch, capsys, error, status):
    def fail(config, workdir):
        raise error

    monkeypatch.setattr(train, "train_and_evaluate", fail)
    with pytest.raises(SystemExit) as e:
        main.main(["--train-examples", "64", "--no-compilation-cache"])
    assert e.value.code == status and str(error) in capsys.readouterr().err
