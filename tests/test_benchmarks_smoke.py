"""The benchmark harness (benchmarks/) runs, with tiny sizes, and writes well-formed results.

No timing is asserted: the numbers of a tiny run mean nothing. This only keeps the harness from rotting
(an API it calls changed, a result field renamed, the torch CNN no longer matching the Flax CNN).
"""

from __future__ import annotations

import json
import math
import os
import sys

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

pytest.importorskip("torch")
pytest.importorskip("flax")
pytest.importorskip("mlxtend")


@pytest.fixture(autouse=True)
def standard_promotion():
    # optax.adam mixes float and int32 in its bias correction, which strict promotion rejects.
    with jax.numpy_dtype_promotion("standard"):
        yield


def _finite_summary(s):
    assert set(s) >= {"median", "q1", "q3", "min", "max", "n"}
    assert s["n"] >= 1 and math.isfinite(s["median"]) and s["min"] <= s["median"] <= s["max"]


def _load(path, name):
    with open(os.path.join(path, f"{name}.json")) as f:
        data = json.load(f)
    assert data["benchmark"] == name and data["rows"]
    env = data["environment"]
    for key in (
        "jax",
        "jaxlib",
        "optax",
        "flax",
        "torch",
        "devices",
        "torch_num_threads",
        "XLA_FLAGS",
        "cpu_count",
        "load_average",
    ):
        assert key in env
    return data


def test_benchmarks_run_and_write_results(tmp_path):
    from benchmarks import compiles, lr_table, mnist, report, train_step

    out = str(tmp_path)
    lr_table.run(steps=300, rounds=1, pairs=1, only=["OneCycleLR", "ReduceLROnPlateau"], out=out)
    train_step.run(pairs=1, models=["linear"], only=["reduce_lr_on_plateau"], out=out, steps=2)
    mnist.run(rounds=1, models=["linear"], epochs=2, out=out, train_examples=128, test_examples=64)
    compiles.run(epochs=[1], lrjax_steps=3, out=out, train_examples=64, configs=["linear"])

    rows = _load(out, "lr_table")["rows"]
    assert [r["id"] for r in rows] == ["OneCycleLR", "ReduceLROnPlateau"]
    for r in rows:
        for key in ("torch_s", "lrjax_s", "optax_s", "speedup_vs_torch", "lrjax_over_optax"):
            _finite_summary(r[key])
        assert r["lrjax_compile_s"] >= 0 and r["max_rel_diff_vs_torch"] < 1e-3  # the tables agree with torch

    rows = _load(out, "train_step")["rows"]
    assert [r["schedule"] for r in rows] == ["reduce_lr_on_plateau"]
    for r in rows:
        _finite_summary(r["ratio"])

    (row,) = _load(out, "mnist")["rows"]
    assert row["model"] == "linear" and len(row["runs"]["jax"][0]["history"]) == 2
    _finite_summary(row["steady_ratio"])
    assert abs(row["accuracy_gap_points"]) <= 100

    data = _load(out, "compiles")
    (row,) = data["rows"]
    assert row["compiles"] >= row["step_function_compiles"].get("scan_steps", 0) == 1
    assert data["lrjax"][1]["compiles"] == 1  # jax.jit(schedule) at 3 Python ints: one compilation

    text = open(report.write(out)).read()
    for heading in (
        "## Targets",
        "### 1. LR table",
        "### 2. Schedule cost",
        "### 3. MNIST",
        "### 4. Compilations",
        "### 5. GPU",
    ):
        assert heading in text


def test_torch_cnn_is_the_flax_cnn():
    """The CNN benchmark's torch peer computes what the trainer's Flax CNN computes, from its weights."""
    import torch
    from flax import nnx

    from benchmarks.torch_cnn import from_flax
    from examples.mnist import train
    from examples.mnist.configs.default import get_config

    graphdef, params = train.create_model(get_config().replace(model="cnn"))
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    ours = np.asarray(nnx.merge(graphdef, params)(jax.numpy.asarray(x)))
    theirs = from_flax(params)(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
