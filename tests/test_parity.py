"""lrjax against the stored torch 2.13.0 values of every scheduler (tests/data/schedules.json).

Every case runs jitted and eagerly, in float32 and in float64, over all its steps, and is held to
the precision contract (rtol 1e-5 + 1e-7 max|lr| in float32, 1e-11 + 1e-12 max|lr| in float64).
Regenerate the data with ``python tests/generate_reference.py schedules``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import refdata
import torchref

import lrjax

CASES = refdata.load("schedules")


@functools.lru_cache(maxsize=None)
def _build(case_id):
    """Schedules are immutable and independent of x64, so each case is built once."""
    return torchref.build_lrjax(next(c for c in CASES if c["id"] == case_id))


def _steps(case):
    """The case's steps, padded to a power-of-two length so that eager op caches are shared across cases."""
    steps = case["float_steps"] if "float_steps" in case else list(range(case["steps"] + 1))
    n = len(steps)
    padded = steps + [steps[-1]] * ((1 << (n - 1).bit_length()) - n)
    return jnp.asarray(padded, dtype=float if "float_steps" in case else None), n


def _evaluate(schedule, steps, n, mode):
    fn = jax.vmap(schedule)
    out = jax.jit(fn)(steps) if mode == "jit" else fn(steps)
    out = np.asarray(out)[:n]
    return out.reshape(n, -1).T  # (groups, steps), torch's layout


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_matches_torch(case, bits):
    lr, momentum = _build(case["id"])
    steps, n = _steps(case)
    expected = case["expected"]
    for mode in ("jit", "eager"):
        ours = _evaluate(lr, steps, n, mode)
        assert ours.dtype == (np.float32 if bits == 32 else np.float64)
        torchref.compare(ours, expected["lr"], bits)
        if "momentum" in expected:
            assert momentum is not None
            torchref.compare(_evaluate(momentum, steps, n, mode), expected["momentum"], bits)


@pytest.mark.parametrize("case", CASES[::7], ids=[c["id"] for c in CASES[::7]])
def test_scalar_steps(case, bits):
    """Python-number steps (the scalar path, no vmap) give the same values."""
    lr, _ = _build(case["id"])
    expected = np.asarray(case["expected"]["lr"])
    steps = case.get("float_steps") or list(range(case["steps"] + 1))
    picks = sorted({0, 1, len(steps) // 2, len(steps) - 1})
    for i in picks:
        value = np.atleast_1d(np.asarray(lr(steps[i])))
        torchref.compare(value[:, None], expected[:, i : i + 1], bits)


def test_reference_covers_every_scheduler():
    names = {c["scheduler"] for c in CASES}
    assert names == {e.torch_class for e in lrjax.registry.entries(role="lr")}
    assert all(math.isfinite(v) for c in CASES for g in c["expected"]["lr"] for v in g)
