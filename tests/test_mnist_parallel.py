"""The MNIST trainer on several devices (jax.sharding), and its host transfers.

* 1 vs 8 devices: the same run in two subprocesses, ``XLA_FLAGS=--xla_force_host_platform_device_count=1``
  and ``=8`` (the flag must be set before JAX starts). The lrs must be equal (ReduceLROnPlateau
  after a warm-up: its decisions come from test losses averaged over all devices), and losses and
  parameters within ``LOSS_ATOL``/``PARAM_ATOL``: the 8 devices sum the batch's losses and
  gradients in another order. Run with ``-s`` to see the measured differences.
* The same run as two processes of 4 CPU devices each, through ``jax.distributed`` on this machine
  (``--distributed``, gloo collectives): process-local data feeding, checkpoints from both
  processes, the same lrs and losses within the same tolerance.
* The whole training loop (epochs, evaluation, plateau updates, mid-epoch checkpoints, a resume)
  under ``jax.transfer_guard("disallow")``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

# examples/ lives at the repository root, which `python -m pytest` puts on sys.path and a bare
# `pytest` does not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples.mnist import checkpointing, main, train
from examples.mnist.configs.default import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Measured (2-core CPU, jax 0.10.2): per-update loss max |1 dev - 8 dev| = 2.4e-7, epoch train
# loss 6.0e-8, test loss 1.5e-7, final parameters 6.0e-8; lrs identical.
LOSS_ATOL = 1e-5
PARAM_ATOL = 1e-5

_SCRIPT = r"""
import contextlib, io, json, sys
import jax
import numpy as np
from examples.mnist import epochs, input_pipeline, main, train
from examples.mnist.configs.default import get_config

workdir, out_path = sys.argv[1], sys.argv[2]
config = get_config().replace(train_examples=1024, test_examples=200, batch_size=64, epochs=4, learning_rate=0.01,
                              schedule={"name": "ReduceLROnPlateau", "patience": 0, "factor": 0.5, "threshold": 0.5},
                              warmup=1, progress=False, plot=False, checkpoint_every_steps=8)
with jax.transfer_guard("disallow"):
    result = train.train_and_evaluate(config, workdir, log=lambda s: None)
    python_loop = train.train_and_evaluate(config.replace(loop="python", epochs=1), None, log=lambda s: None)
leaves = jax.tree.leaves(result.state)
plan, tx, graphdef, _ = train.setup(config, 16)
runner = epochs.Runner(train.make_train_step(graphdef, tx, plan), train.make_eval_step(graphdef), None, "scan",
                       progress=False)
train_ds, test_ds = input_pipeline.load("embedded", None, 1024, 200)
batches = runner.put_epoch(input_pipeline.batch(train_ds, input_pipeline.epoch_order(0, 1, 1024), 64))
eval_batch = runner.eval_batches(test_ds, 100)[0]
err = io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main.main(["--batch-size", "60", "--train-examples", "256", "--dry-run"])
    except SystemExit as e:
        code = e.code
out = {
    "devices": jax.device_count(),
    "lr": result.steps["lr"].tolist(), "loss": result.steps["loss"].tolist(), "history": result.history,
    "python_loop_loss": python_loop.steps["loss"].tolist(),
    "params": {jax.tree_util.keystr(p, simple=True, separator="/"): np.asarray(jax.device_get(x)).ravel().tolist()
               for p, x in jax.tree_util.tree_flatten_with_path(result.state.params)[0]},
    "plateau": [float(x) for x in jax.device_get(result.state.plateau)],
    "state_replicated": all(x.sharding.is_fully_replicated for x in leaves),
    "state_devices": sorted({len(x.sharding.device_set) for x in leaves}),
    "batch_spec": str(batches["image"].sharding.spec),
    "batch_shards": sorted({tuple(s.data.shape) for s in batches["image"].addressable_shards}),
    "eval_shards": sorted({tuple(s.data.shape) for s in eval_batch["image"].addressable_shards}),
    "bad_batch_size": [code, err.getvalue()],
}
with open(out_path, "w") as f:
    json.dump(out, f)
"""


# The same run as _SCRIPT's, from the command line.
ARGS = [
    "--train-examples",
    "1024",
    "--test-examples",
    "200",
    "--batch-size",
    "64",
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


def _env(devices: int) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": ROOT,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
    }


def _start(devices: int, tmp_path):
    out = tmp_path / f"devices{devices}.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / f"run{devices}"), str(out)],
        cwd=ROOT,
        env=_env(devices),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_two_processes(workdir):
    """The command on 2 processes of 4 CPU devices each, through jax.distributed (gloo collectives)."""
    port = _free_port()
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "examples.mnist.main",
                *ARGS,
                "--workdir",
                str(workdir),
                "--distributed",
                "--coordinator-address",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            cwd=ROOT,
            env=_env(4),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]


def test_one_and_eight_devices_give_the_same_run(tmp_path):
    """1 device, 8 devices, and 8 devices over 2 processes (jax.distributed on one machine)."""
    runs = [_start(n, tmp_path) for n in (1, 8)]
    hosts = _start_two_processes(tmp_path / "two-processes")
    try:
        outputs = [proc.communicate(timeout=300) for proc, _ in runs]
        host_out = [proc.communicate(timeout=300) for proc in hosts]
    finally:  # a process left waiting for its peer must not outlive the test
        for proc in [p for p, _ in runs] + hosts:
            if proc.poll() is None:
                proc.kill()
    results = []
    for (proc, out), (_, stderr) in zip(runs, outputs):
        assert proc.returncode == 0, stderr[-3000:]
        results.append(json.loads(out.read_text()))
    for proc, (_, stderr) in zip(hosts, host_out):
        assert proc.returncode == 0, stderr[-3000:]
    one, eight = results
    assert (one["devices"], eight["devices"]) == (1, 8)

    # Layout: state replicated on every device, batch axis split over the "data" axis.
    assert one["state_replicated"] and eight["state_replicated"]
    assert one["state_devices"] == [1] and eight["state_devices"] == [8]
    assert eight["batch_spec"] in ("P(None, 'data')", "PartitionSpec(None, 'data')")
    assert one["batch_shards"] == [[16, 64, 28, 28, 1]] and eight["batch_shards"] == [[16, 8, 28, 28, 1]]
    assert eight["eval_shards"] == [[13, 28, 28, 1]]  # 100 rounded up to 104 (masked), split 8 ways

    # The same lrs, exactly: the plateau saw the same (cross-device averaged) test losses.
    assert eight["lr"] == one["lr"]
    assert len(set(one["lr"])) == 3  # warm-up 1e-3, then 1e-2, then one reduction to 5e-3
    assert eight["plateau"][0] == one["plateau"][0]
    loss_diff = np.max(np.abs(np.array(eight["loss"]) - np.array(one["loss"])))
    epoch_diff = max(abs(a["train_loss"] - b["train_loss"]) for a, b in zip(one["history"], eight["history"]))
    test_diff = max(abs(a["test_loss"] - b["test_loss"]) for a, b in zip(one["history"], eight["history"]))
    param_diff = max(np.max(np.abs(np.array(eight["params"][k]) - np.array(one["params"][k]))) for k in one["params"])
    print(
        f"\n  1 vs 8 devices: {len(one['lr'])} lrs, max difference "
        f"{np.max(np.abs(np.subtract(one['lr'], eight['lr'])))}; "
        f"loss per update max {loss_diff:.2e}, per epoch {epoch_diff:.2e}, test loss {test_diff:.2e}; "
        f"final parameters max {param_diff:.2e}; accuracies {[r['test_accuracy'] for r in one['history']]} "
        f"vs {[r['test_accuracy'] for r in eight['history']]}"
    )
    assert loss_diff <= LOSS_ATOL and epoch_diff <= LOSS_ATOL and test_diff <= LOSS_ATOL
    assert param_diff <= PARAM_ATOL
    # The Python loop over a jitted step shards the same way.
    np.testing.assert_allclose(eight["python_loop_loss"], eight["loss"][:16], atol=LOSS_ATOL)

    # A batch that does not split over the devices is refused, before anything is compiled.
    code, err = eight["bad_batch_size"]
    assert code == 2 and "batch_size 60 does not split evenly over the 8 devices" in err and "56 or 64" in err
    assert one["bad_batch_size"][0] == 0

    # Two processes: process 0 prints and writes the logs, both write the checkpoints.
    assert "scan loop on 8 cpu devices" in host_out[0][0] and "Epoch 4, Loss:" in host_out[0][0]
    assert "Epoch" not in host_out[1][0]
    rows = (tmp_path / "two-processes" / "steps.csv").read_text().splitlines()[1:]
    lrs = [float(r.split(",")[2]) for r in rows]
    losses = np.array([float(r.split(",")[3]) for r in rows])
    np.testing.assert_array_equal(np.float32(lrs), np.float32(eight["lr"]))
    two_loss_diff = np.max(np.abs(losses - np.array(eight["loss"])))
    ckpts = checkpointing.Checkpoints(str(tmp_path / "two-processes" / "checkpoints"))
    try:
        config = main.config_from_args(main.build_parser().parse_args(ARGS))
        with jax.numpy_dtype_promotion("standard"):
            _, _, _, abstract = train.setup(config, 16)
        step = ckpts.latest()
        state = ckpts.restore(step, abstract)  # written by 2 processes, read (and checksummed) by one
    finally:
        ckpts.close()
    two_param_diff = max(
        np.max(
            np.abs(
                np.asarray(x).ravel() - np.array(eight["params"][jax.tree_util.keystr(p, simple=True, separator="/")])
            )
        )
        for p, x in jax.tree_util.tree_flatten_with_path(state.params)[0]
    )
    print(
        f"  2 processes x 4 devices vs 1 process x 8: lrs equal, loss per update max {two_loss_diff:.2e}, "
        f"final parameters max {two_param_diff:.2e}"
    )
    assert step == 64 and two_loss_diff <= LOSS_ATOL and two_param_diff <= PARAM_ATOL


def test_batch_size_must_split_evenly_over_the_devices():
    config = get_config().replace(batch_size=100)
    train.validate(config, num_devices=4)
    with pytest.raises(train.ConfigError, match=r"batch_size 100 does not split evenly over the 8 devices.*96 or 104"):
        train.validate(config, num_devices=8)


# ------------------------------------------------------------------------------------------------
# Transfers
# ------------------------------------------------------------------------------------------------


class _ImplicitDeviceToHost:
    """Fails implicit device-to-host reads of jax.Arrays under ``transfer_guard("disallow")``.

    On CPU, JAX's transfer guard checks host-to-device transfers only (a CPU array is already in
    host memory). This also fails the conversions that go through ``ArrayImpl._value`` outside
    ``jax.device_get``: ``float()``, ``int()``, ``bool()``, ``.item()``, ``.tolist()``, printing.
    (NumPy's buffer-protocol reads, ``np.asarray(x)``, bypass it on CPU and are not caught.)
    """

    def __enter__(self):
        from jax._src import array as jax_array
        from jax._src import config as jax_config

        self._cls, self._orig = jax_array.ArrayImpl, jax_array.ArrayImpl._value

        def value(array):
            level = str(jax_config.transfer_guard_device_to_host.value)
            if level.endswith("disallow") and not jax_config.guard_lib.thread_local_state().explicit_device_get:
                raise AssertionError("implicit device-to-host transfer of a jax.Array")
            return self._orig.fget(array)

        self._cls._value = property(value)
        return self

    def __exit__(self, *exc):
        self._cls._value = self._orig


def test_implicit_device_to_host_checker_works():
    x = jax.numpy.ones(3)
    with _ImplicitDeviceToHost(), jax.transfer_guard("disallow"):
        with pytest.raises(AssertionError, match="implicit device-to-host"):
            float(x.sum())
        assert float(jax.device_get(x.sum())) == 3.0


@pytest.mark.parametrize("loop", ["scan", "python"])
def test_whole_training_loop_makes_only_explicit_transfers(tmp_path, loop):
    """train_and_evaluate (epochs, evaluation, plateau, checkpoints every 3 updates, the end
    checkpoint) and a resumed run, under jax.transfer_guard("disallow"). Only the one-time setup
    (initial parameters, schedule constants) runs under "allow", inside train_and_evaluate."""
    config = get_config().replace(
        train_examples=200,
        test_examples=100,
        progress=True,
        plot=False,
        optimizer="sgd",
        learning_rate=0.05,
        schedule={"name": "ReduceLROnPlateau", "patience": 0},
        epochs=2,
        checkpoint_every_steps=3,
        loop=loop,
    )
    with _ImplicitDeviceToHost(), jax.transfer_guard("disallow"):
        first = train.train_and_evaluate(config, str(tmp_path), log=lambda s: None)
        # Resume mid-epoch: drop the final checkpoint; the latest is then update 6 (epoch 2, batch 2 of 4).
        shutil.rmtree(tmp_path / "checkpoints" / "8")
        again = train.train_and_evaluate(config.replace(resume=True), str(tmp_path), log=lambda s: None)
    assert again.resumed_from == 6 and int(jax.device_get(again.state.step)) == 8
    assert again.steps["lr"].tolist() == first.steps["lr"].tolist()
    np.testing.assert_array_equal(again.steps["loss"], first.steps["loss"])
