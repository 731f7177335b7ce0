"""Bad input from outside: non-finite losses, bad command-line values, an unwritable output directory.

* A poisoned batch (a label of 255, as a corrupt record would give: the cross-entropy is NaN) or
  a huge lr: with ``on_nonfinite="stop"`` the run stops with a clear message and a checkpoint of
  the last good state (the bad update is not applied, and nothing after it); ``"skip"`` drops the
  bad updates; ``"continue"`` applies them. The check runs inside the step; the host looks at the
  flags once per piece of an epoch.
* Bad flag values are rejected with a clear message before anything is compiled (checked in a
  fresh process with a listener on JAX's compilation events), and so is an unwritable --workdir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

# examples/ lives at the repository root, which `python -m pytest` puts on sys.path and a bare
# `pytest` does not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples.mnist import checkpointing, input_pipeline, main, train
from examples.mnist.configs.default import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# SGD (strict dtype promotion holds), 200 digits in batches of 64: 4 updates per epoch.
SMALL = dict(
    train_examples=200,
    test_examples=100,
    progress=False,
    plot=False,
    optimizer="sgd",
    optimizer_args={"momentum": 0.9},
    learning_rate=0.05,
    epochs=3,
    schedule={"name": "exponential_lr", "gamma": 0.5},
)


def small(**changes):
    return get_config().replace(**{**SMALL, **changes})


@pytest.fixture
def poison(monkeypatch):
    """``poison(epochs, position)``: batch ``position`` of those epochs gets a label of 255."""

    def install(epochs, position):
        original = input_pipeline.batch

        def batch(split, order, batch_size):
            out = original(split, order, batch_size)
            for epoch in epochs:
                if len(order) == 200 and np.array_equal(order, input_pipeline.epoch_order(0, epoch, 200)):
                    out["label"][position, 3] = 255
            return out

        monkeypatch.setattr(input_pipeline, "batch", batch)

    return install


def _host(tree):
    return jax.device_get(tree)


def test_poisoned_batch_stops_with_a_checkpoint_of_the_last_good_state(tmp_path, poison):
    clean = train.train_and_evaluate(
        small(epochs=2, checkpoint_every_steps=5), str(tmp_path / "clean"), log=lambda s: None
    )
    poison([2], 1)  # update 6 of the run (epoch 2, batch 2) is NaN
    logs = []
    with pytest.raises(train.NonFiniteError) as e:
        train.train_and_evaluate(small(), str(tmp_path / "run"), log=logs.append)
    err = e.value
    message = str(err)
    assert "non-finite training at update 6 (epoch 2, batch 2 of 4): loss nan" in message
    assert "Training stopped without applying it" in message and "Lower the learning rate or check the data" in message
    assert err.step == 5 and err.checkpoint == str(tmp_path / "run" / "checkpoints" / "5") in message
    # The last good state: 5 updates, finite, equal to a clean run's after 5 updates (the bad
    # update and the 2 after it in the same scan were refused on the device).
    state = _host(err.state)
    assert int(state.step) == 5 and int(state.opt_state.count) == 5
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state))
    ckpts = checkpointing.Checkpoints(str(tmp_path / "clean" / "checkpoints"), keep=10)
    ckpts_bad = checkpointing.Checkpoints(str(tmp_path / "run" / "checkpoints"))
    try:
        _, _, _, abstract = train.setup(small(), 4)
        clean5 = ckpts.restore(5, abstract)
        saved = ckpts_bad.restore(5, abstract)
        meta = ckpts_bad.read_meta(5)
    finally:
        ckpts.close()
        ckpts_bad.close()
    for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, b)  # the checkpoint is that state
    for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(clean5)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # The record holds the metrics of the epoch in progress only: update 5 is batch 1 of epoch 2.
    assert meta["reason"] == "nonfinite" and len(meta["partial"]["loss"]) == 1
    assert np.all(np.isfinite(meta["partial"]["loss"]))
    assert [r["epoch"] for r in metrics_rows(tmp_path / "run")] == [1]

    # Resume from it, dropping the bad update this time (--on-nonfinite is not a training setting).
    result = train.train_and_evaluate(small(resume=True, on_nonfinite="skip"), str(tmp_path / "run"), log=logs.append)
    assert result.resumed_from == 5 and result.nonfinite_updates == 1 and int(_host(result.state.step)) == 12
    assert np.isnan(result.steps["loss"][5]) and np.isfinite(np.delete(result.steps["loss"], 5)).all()
    np.testing.assert_array_equal(result.steps["lr"][:8], clean.steps["lr"])
    assert any("1 update with a non-finite loss or result (skipped" in line for line in logs)


def metrics_rows(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_nonfinite_stop_without_a_workdir_keeps_the_state_in_the_error(poison):
    poison([1], 0)
    with pytest.raises(train.NonFiniteError, match=r"update 1 \(epoch 1, batch 1 of 4\).*in this error's \.state") as e:
        train.train_and_evaluate(small(), None, log=lambda s: None)
    assert e.value.checkpoint is None and int(_host(e.value.state.step)) == 0


def test_skip_drops_nonfinite_updates(poison):
    clean = train.train_and_evaluate(small(), None, log=lambda s: None)
    poison([1, 2, 3], 2)
    logs = []
    result = train.train_and_evaluate(small(on_nonfinite="skip"), None, log=logs.append)
    assert result.nonfinite_updates == 3 and int(_host(result.state.step)) == 12
    bad = [2, 6, 10]
    assert np.isnan(result.steps["loss"][bad]).all() and np.isfinite(np.delete(result.steps["loss"], bad)).all()
    np.testing.assert_array_equal(result.steps["lr"], clean.steps["lr"])  # the schedule went on
    assert all(np.isfinite(r["train_loss"]) for r in result.history)  # the mean of the applied updates
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(_host(result.state)))
    assert sum("(skipped, --on-nonfinite skip)" in line for line in logs) == 3


def test_continue_applies_nonfinite_updates(poison):
    poison([2], 0)
    logs = []
    result = train.train_and_evaluate(small(on_nonfinite="continue"), None, log=logs.append)
    skipped = train.train_and_evaluate(small(on_nonfinite="skip"), None, log=lambda s: None)
    assert int(_host(result.state.step)) == 12 and result.nonfinite_updates == skipped.nonfinite_updates == 1
    assert np.isnan(result.history[1]["train_loss"])  # the seed's mean of the batch losses
    # The update was applied: a label of 255 makes the loss NaN, but its gradient ignores the
    # example (one_hot(255) is all zeros), so training goes on from a different state than skip's.
    kernel = np.asarray(_host(result.state.params)["fc"]["kernel"][...])
    assert not np.array_equal(kernel, np.asarray(_host(skipped.state.params)["fc"]["kernel"][...]))
    assert any("(applied, --on-nonfinite continue)" in line for line in logs)


def test_huge_learning_rate_stops_the_command_with_exit_status_3(tmp_path, capsys):
    workdir = tmp_path / "run"
    try:
        code = main.main(
            [
                "--train-examples",
                "200",
                "--test-examples",
                "100",
                "--optimizer",
                "sgd",
                "--lr",
                "1e38",
                "--no-progress",
                "--no-plot",
                "--workdir",
                str(workdir),
                "--no-compilation-cache",
            ]
        )
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert code == 3, err
    assert "error: non-finite training at update" in err and "Training stopped without applying it" in err
    assert "Traceback" not in err
    step = int(err.split("The last good state (after ")[1].split(" ")[0])
    assert str(step) in os.listdir(workdir / "checkpoints")


# ------------------------------------------------------------------------------------------------
# Bad values from the command line, and an unwritable output directory
# ------------------------------------------------------------------------------------------------

_NO_COMPILE = r"""
import contextlib, io, json, sys
import jax
from jax import monitoring

compiles = []
monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: (
        compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None))
from examples.mnist import main

results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main.main(argv)
        except SystemExit as e:
            code = e.code
    results.append([code, out.getvalue(), err.getvalue(), len(compiles)])
jax.jit(lambda x: x + 1)(1.0)  # the listener works: this one compiles
print(json.dumps({"results": results, "compiles_at_end": len(compiles)}))
"""

BAD = [
    (["--epochs", "-1"], "epochs must be a positive integer, got -1"),
    (["--epochs", "0"], "epochs must be a positive integer, got 0"),
    (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    (["--batch-size", "0"], "batch_size must be a positive integer, got 0"),
    (["--optimizer", "adamm"], "unknown optimizer 'adamm'"),
    (["--optimizer-args", "momentun=0.9"], "unknown argument 'momentun' for optax.adam"),
    (["--schedule", "StepLR", "--schedule-args", "step_size=0"], "step_size"),
    (["--schedule", "StepLR", "--schedule-args", "gama=0.1"], "unknown keyword 'gama' for step_lr"),
    (["--schedule", "NoSuchLR"], "unknown schedule name 'NoSuchLR'"),
    (["--schedule", "ReduceLROnPlateau", "--schedule-args", "factor=2"], "Factor should be < 1.0"),
    (["--lr", "nan"], "learning_rate must be a finite number >= 0 that float32 can hold (at most 3.403e+38), got nan"),
    (["--lr", "-0.1"], "learning_rate must be a finite number >= 0"),
    (["--seed", "-3"], "seed must be an integer from 0 to 4294967295 (2**32 - 1), got -3"),
    (["--train-examples", "0"], "train_examples must be a positive integer or None"),
    (["--warmup", "-1"], "warmup must be a non-negative integer"),
    (["--checkpoint-every-steps", "-5"], "checkpoint_every_steps must be a non-negative integer, got -5"),
    (["--keep-checkpoints", "0"], "keep_checkpoints must be a positive integer, got 0"),
    (["--on-nonfinite", "ignore"], "argument --on-nonfinite: invalid choice: 'ignore'"),
    (["--warmup", "1", "--warmup-start-factor", "0"], "warmup_start_factor must be greater than 0 and at most 1"),
    (["--warmup", "1", "--warmup-start-factor", "2"], "warmup_start_factor must be greater than 0 and at most 1"),
    (["--warmup", "1", "--warmup-start-factor", "nan"], "warmup_start_factor must be greater than 0 and at most 1"),
    (["--seed", "4294967296"], "seed must be an integer from 0 to 4294967295"),
    (["--optimizer-args", "b1=abc"], "b1 of optax.adam must be a number, got 'abc'"),
    (
        ["--optimizer", "sgd", "--optimizer-args", "momentum=0.9", "nesterov=maybe"],
        "nesterov of optax.sgd must be true or false, got 'maybe'",
    ),
    (["--optimizer", "sgd", "--optimizer-args", "nesterov=True"], "nesterov of optax.sgd must be true or false"),
    (["--schedule-args", "step_size=2147483648"], "step_size=2147483648 in schedule step_lr is too large"),
    (["--schedule", "ExponentialLR", "--schedule-args", "gamma=1e39"], "gamma=1e+39 in schedule exponential_lr"),
    (["--lr", "1e39"], "learning_rate must be a finite number >= 0 that float32 can hold"),
    (["--epochs", "2147483647"], "updates: the update count is an int32"),
]


def _run_without_compiling(cases):
    """Runs ``main.main(argv)`` for each ``(argv, message)`` in a fresh process with a listener on JAX's
    compilations; asserts exit status 2, the message, no traceback and nothing compiled."""
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", _NO_COMPILE, json.dumps([argv for argv, _ in cases])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    for (argv, message), (code, out, err, compiles) in zip(cases, report["results"]):
        assert code == 2, (argv, err)
        assert message in err, (argv, err)
        assert "Traceback" not in err and "Epoch" not in out, (argv, out, err)
        lines = err.strip().splitlines()  # one clear line (after argparse's usage, for argparse's own errors)
        assert (
            lines[-1].startswith("python -m examples.mnist.main: error: ") and sum("error" in x for x in lines) == 1
        ), err
        assert compiles == 0, f"{argv}: something was compiled before the error"
    assert report["compiles_at_end"] >= 1


def test_bad_values_and_unwritable_workdir_are_rejected_before_any_compile(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a directory under a regular file cannot be made, even by root
    (tmp_path / "ckpt-blocked").mkdir()
    (tmp_path / "ckpt-blocked" / "checkpoints").write_text("")
    cases = [(argv + ["--workdir", str(tmp_path / "w")], message) for argv, message in BAD] + [
        (["--workdir", str(blocker / "run")], f"cannot write to the output directory '{blocker / 'run'}'"),
        (["--workdir", str(tmp_path / "ckpt-blocked")], "cannot write to the output directory"),
    ]
    _run_without_compiling(cases)
    assert not (tmp_path / "w").exists() or not os.listdir(tmp_path / "w" / "checkpoints")


def test_configs_and_flags_never_run_code(tmp_path):
    """A JSON config or a flag whose lr_lambda escapes a restricted eval (through jax.__builtins__, or
    through object's subclasses) must not run: the run refuses it, saying how to give a function."""
    marker = tmp_path / "code-ran"
    touch = f"__import__('os').system('touch {marker}') * 0 + 1.0"
    payloads = [
        f"lambda epoch: jax.__builtins__['__import__']('os').system('touch {marker}') * 0 + 1.0",
        "lambda epoch: [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'catch_warnings'][0]()"
        f"._module.__builtins__['{touch.split('(')[0]}']" + touch[len("__import__") :],
    ]
    cases = []
    for i, payload in enumerate(payloads):
        config = tmp_path / f"config{i}.json"
        config.write_text(json.dumps({"schedule": {"name": "LambdaLR", "lr_lambda": payload}}))
        cases += [
            (["--config", str(config), "--dry-run"], "lr_lambda of lambda_lr must be a Python function"),
            (["--config", str(config), "--workdir", str(tmp_path / "w")], "--config FILE.py"),
            (
                ["--schedule", "LambdaLR", "--schedule-args", f"lr_lambda={payload}", "--dry-run"],
                "A JSON file or a flag holds data, never code",
            ),
        ]
    _run_without_compiling(cases)
    assert not marker.exists(), "a config value ran as code"
