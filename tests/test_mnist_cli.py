"""The MNIST trainer's command line: ``python -m examples.mnist.main``.

Most tests call ``main.main(argv)`` in-process with ``--dry-run`` (everything is built and checked,
nothing compiled or trained); one runs the real command in a subprocess from the repository root.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import jax
import pytest

# examples/ lives at the repository root, which `python -m pytest` puts on sys.path and a bare
# `pytest` does not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples.mnist import main
from lrjax import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--train-examples", "256", "--test-examples", "64", "--epochs", "3"]

# Python config files for the schedules whose keyword is a function (a flag cannot carry one).
FUNCTION_CONFIGS = {
    "lambda_lr": "lambda epoch: 1.0 / (epoch + 1)",
    "multiplicative_lr": "lambda epoch: 0.5",
}

# For the names lrjax offers, a command line that uses it (with the keywords torch requires).
SCHEDULE_ARGS = {
    "chained_scheduler": [
        "--schedule",
        json.dumps(
            {
                "name": "chained_scheduler",
                "schedules": [
                    {"name": "constant_lr", "factor": 0.5, "total_iters": 2},
                    {"name": "exponential_lr", "gamma": 0.9},
                ],
            }
        ),
    ],
    "constant_lr": ["--schedule", "ConstantLR", "--schedule-args", "factor=0.5", "total_iters=2"],
    "cosine_annealing_lr": ["--schedule", "cosine_annealing_lr"],  # T_max defaults to the run's length
    "cosine_annealing_warm_restarts": ["--schedule", "CosineAnnealingWarmRestarts", "--schedule-args", "T_0=2"],
    "cyclic_lr": ["--schedule", "CyclicLR", "--schedule-args", "base_lr=0.001", "max_lr=0.01", "step_size_up=3"],
    "cyclic_momentum": [
        "--optimizer",
        "sgd",
        "--momentum-schedule",
        "cyclic_momentum",
        "--momentum-args",
        "step_size_up=1",
    ],
    "exponential_lr": ["--schedule", "ExponentialLR", "--schedule-args", "gamma=0.9"],
    "linear_lr": ["--schedule", "LinearLR", "--schedule-args", "start_factor=0.5", "total_iters=2"],
    "multi_step_lr": ["--schedule", "MultiStepLR", "--schedule-args", "milestones=[1, 2]", "gamma=0.5"],
    "one_cycle_lr": ["--schedule", "OneCycleLR", "--schedule-args", "max_lr=0.01"],
    "one_cycle_momentum": ["--optimizer", "sgd", "--momentum-schedule", "one_cycle_momentum"],
    "per_epoch": ["--schedule", json.dumps({"name": "per_epoch", "schedule": {"name": "step_lr", "step_size": 1}})],
    "polynomial_lr": ["--schedule", "PolynomialLR", "--schedule-args", "total_iters=3", "power=2.0"],
    "reduce_lr_on_plateau": [
        "--schedule",
        "ReduceLROnPlateau",
        "--schedule-args",
        "patience=1",
        "--plateau-metric",
        "test_accuracy",
    ],
    "sequential_lr": [
        "--schedule",
        json.dumps(
            {
                "name": "sequential_lr",
                "milestones": [1],
                "schedules": [
                    {"name": "linear_lr", "start_factor": 0.5, "total_iters": 1},
                    {"name": "step_lr", "step_size": 1},
                ],
            }
        ),
    ],
    "step_lr": ["--schedule", "StepLR", "--schedule-args", "step_size=1", "gamma=0.5"],
}


def run_main(capsys, *argv):
    """``(exit code, stdout, stderr)`` of ``main.main(argv)``."""
    try:
        code = main.main([*argv, "--no-compilation-cache"])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _function_config(tmp_path, name):
    path = tmp_path / f"{name}.py"
    path.write_text(
        "from examples.mnist.configs.default import get_config as _default\n\n"
        f"def get_config():\n    return _default().replace(schedule={{'name': {name!r}, "
        f"'lr_lambda': {FUNCTION_CONFIGS[name]}}})\n"
    )
    return ["--config", str(path)]


def test_every_named_case_is_a_registry_name():
    assert set(SCHEDULE_ARGS) | set(FUNCTION_CONFIGS) <= set(registry.names())


@pytest.mark.parametrize("name", registry.names())
def test_every_schedule_name_is_accepted(name, capsys, tmp_path):
    """Every registry entry, from the registry: a name without a case here (a schedule added to lrjax
    since) must at least be named in a clear error (a required keyword), never crash."""
    if name in FUNCTION_CONFIGS:
        args = _function_config(tmp_path, name)
    else:
        args = SCHEDULE_ARGS.get(name, ["--schedule", name])
    # Standard promotion, as users run: lr_lambda is written the NumPy way (1.0 / (epoch + 1)),
    # which tests/conftest.py's strict promotion would reject.
    with jax.numpy_dtype_promotion("standard"):
        code, out, err = run_main(capsys, *SMALL, "--dry-run", *args)
    if name not in SCHEDULE_ARGS and name not in FUNCTION_CONFIGS:
        assert code in (0, 2) and "Traceback" not in err, err
        return
    assert code == 0, err
    assert f"lrjax.{name}(" in out or name in out
    lines = [line for line in out.splitlines() if line.startswith("Epoch ")]
    assert len(lines) == 3


@pytest.mark.parametrize(
    "args",
    [
        ["--schedule", "LambdaLR", "--schedule-args", "lr_lambda=lambda epoch: 0.5"],
        ["--schedule", json.dumps({"name": "multiplicative_lr", "lr_lambda": "lambda epoch: 0.5"})],
        ["--schedule", "CyclicLR", "--schedule-args", "base_lr=0.001", "max_lr=0.01", "scale_fn=lambda x: 1.0"],
    ],
)
def test_a_function_from_a_flag_is_refused_with_the_way_to_give_one(args, capsys):
    code, out, err = run_main(capsys, *SMALL, "--dry-run", *args)
    assert code == 2 and out == ""
    assert "must be a Python function" in err and "--config FILE.py" in err and "lambda_lr.py" in err


def test_help_says_which_configs_run_code(capsys):
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "is ever run as code" in text and "Python config file" in text and "that file is code and runs" in text


def test_dry_run_prints_the_schedule_of_each_epoch(capsys):
    code, out, _ = run_main(capsys, *SMALL, "--dry-run", *SCHEDULE_ARGS["step_lr"])
    assert code == 0
    assert "Epoch 1: lr 0.001 .. 0.001" in out and "Epoch 2: lr 0.0005 .. 0.0005" in out
    assert "Epoch 3: lr 0.00025 .. 0.00025" in out


def test_schedule_args_override_the_config_schedule(capsys):
    code, out, _ = run_main(capsys, *SMALL, "--dry-run", "--schedule-args", "gamma=0.5")
    assert code == 0 and "lrjax.step_lr(base_lr=0.001, step_size=2, gamma=0.5)" in out


def test_bad_schedule_name_lists_the_valid_ones(capsys):
    code, out, err = run_main(capsys, *SMALL, "--dry-run", "--schedule", "StepLr")
    assert code == 2 and out == ""
    assert "unknown schedule name 'StepLr'" in err and "Did you mean" in err and "Valid names:" in err
    for name in registry.names():
        assert name in err
    assert "Traceback" not in err


def test_bad_schedule_keyword_lists_the_valid_ones(capsys):
    code, _, err = run_main(
        capsys, *SMALL, "--dry-run", "--schedule", "StepLR", "--schedule-args", "step_size=2", "gama=0.1"
    )
    assert code == 2
    assert "unknown keyword 'gama' for step_lr" in err and "Valid keywords: base_lr, step_size, gamma" in err


def test_bad_schedule_value_gets_lrjax_message(capsys):
    code, _, err = run_main(capsys, *SMALL, "--dry-run", "--schedule", "StepLR", "--schedule-args", "step_size=0")
    assert code == 2 and "step_size" in err and "Traceback" not in err


def test_missing_required_keyword_is_named(capsys):
    code, _, err = run_main(capsys, *SMALL, "--dry-run", "--schedule", "CosineAnnealingWarmRestarts")
    assert code == 2 and "T_0" in err


def test_momentum_schedule_as_lr_schedule_is_explained(capsys):
    code, _, err = run_main(capsys, *SMALL, "--dry-run", "--schedule", "one_cycle_momentum")
    assert code == 2 and "--momentum-schedule" in err


def test_bad_optimizer_and_arguments(capsys):
    code, _, err = run_main(capsys, *SMALL, "--dry-run", "--optimizer", "adamm")
    assert code == 2 and "unknown optimizer 'adamm'" in err and "adamw" in err and "sgd" in err
    code, _, err = run_main(capsys, *SMALL, "--dry-run", "--optimizer", "sgd", "--optimizer-args", "momentun=0.9")
    assert code == 2 and "'momentun'" in err and "momentum" in err
    code, _, err = run_main(
        capsys,
        *SMALL,
        "--dry-run",
        "--optimizer",
        "adagrad",
        "--schedule",
        "OneCycleLR",
        "--schedule-args",
        "max_lr=0.1",
    )
    assert code == 2 and "b1" in err and "cycle_momentum=False" in err


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--epochs", "0", "epochs must be a positive integer"),
        ("--batch-size", "-1", "batch_size must be a positive integer"),
        ("--schedule-unit", "batch", "invalid choice"),
        ("--schedule-args", "step_size", "KEY=VALUE"),
    ],
)
def test_bad_values_are_rejected_before_training(capsys, flag, value, message):
    code, out, err = run_main(capsys, *SMALL, flag, value)
    assert code == 2 and message in err and "Epoch" not in out


def test_json_config_file_and_flags_override_it(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"epochs": 2, "learning_rate": 0.1, "schedule": {"name": "StepLR", "step_size": 1}}))
    code, out, _ = run_main(capsys, "--config", str(path), "--train-examples", "256", "--dry-run")
    assert code == 0 and "Epoch 2: lr 0.01 .. 0.01" in out and "Epoch 3" not in out
    code, out, _ = run_main(capsys, "--config", str(path), "--train-examples", "256", "--dry-run", "--epochs", "3")
    assert code == 0 and "Epoch 3: lr 0.001 .. 0.001" in out
    path.write_text(json.dumps({"epoch": 2}))
    code, _, err = run_main(capsys, "--config", str(path), "--dry-run")
    assert code == 2 and "unknown field epoch" in err and "epochs" in err


@pytest.mark.parametrize("name", ["one_cycle.py", "cnn.py", "plateau.json", "lambda_lr.py"])
def test_shipped_config_files_are_valid(name, capsys):
    path = os.path.join(ROOT, "examples", "mnist", "configs", name)
    with jax.numpy_dtype_promotion("standard"):
        code, out, err = run_main(capsys, "--config", path, "--train-examples", "256", "--dry-run")
    assert code == 0, err
    assert "Epoch 1:" in out


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    code, _, err = run_main(capsys, "--dataset", "tfds", "--data-dir", str(tmp_path / "none"), "--dry-run")
    assert code == 1 and "does not exist" in err and "tfds build mnist" in err and "Traceback" not in err


def test_the_main_command_trains_and_writes_its_outputs(tmp_path):
    """The README's command (on 512 digits, 2 epochs), in a subprocess from the repository root."""
    workdir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.mnist.main",
            "--train-examples",
            "512",
            "--test-examples",
            "200",
            "--epochs",
            "2",
            "--workdir",
            str(workdir),
            "--plot",
            "--compilation-cache",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    seed_lines = [line for line in lines if line.startswith(("Epoch", "Test"))]
    assert len(seed_lines) == 4
    for epoch, (train_line, test_line) in enumerate(zip(seed_lines[::2], seed_lines[1::2]), start=1):
        assert re.fullmatch(rf"Epoch {epoch}, Loss: \d+\.\d{{4}}, LR: 0\.001000", train_line), train_line
        assert re.fullmatch(r"Test Accuracy: \d+\.\d{2}%", test_line), test_line
    assert "batch" in proc.stderr  # the tqdm progress bar goes to stderr
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [8, 16]
    assert (workdir / "metrics.png").stat().st_size > 10_000
    assert len((workdir / "steps.csv").read_text().splitlines()) == 1 + 16
    assert os.listdir(tmp_path / "cache")  # the persistent compilation cache was filled
    # The process ends without the interpreter's teardown (main.exit_now): everything was written before,
    # the TensorBoard events and a checkpoint that the same command with --resume continues from.
    (events,) = (workdir / "tensorboard").iterdir()
    assert events.stat().st_size > 1_000
    again = subprocess.run(
        [*proc.args[:-2], "--compilation-cache", str(tmp_path / "cache"), "--resume", "--epochs", "3", "--no-plot"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert again.returncode == 0, again.stderr
    assert f"Resumed from {workdir / 'checkpoints' / '16'}" in again.stdout and "Epoch 3, Loss: " in again.stdout
    assert [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_main_runs_as_a_script_from_anywhere(tmp_path):
    """``python examples/mnist/main.py`` (no ``-m``), from another directory."""
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "mnist", "main.py"), *SMALL, "--dry-run"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Epoch 3: lr" in proc.stdout


def test_help_needs_no_jax():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from examples.mnist import main; sys.argv = ['x', '--help']; main.main()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "--schedule" in proc.stdout
