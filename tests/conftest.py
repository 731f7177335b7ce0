"""Test configuration: strict dtype/rank promotion, and fixtures that run each case jitted and eagerly,
in float32 and in float64."""

from __future__ import annotations

import os
import sys

import jax
import pytest

# Tests import helper modules that live beside them (torchref, ...).
sys.path.insert(0, os.path.dirname(__file__))

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


requires_torch = pytest.mark.skipif(not torch_available(), reason="torch==2.13.0 is not installed")


@pytest.fixture(params=["jit", "eager"])
def run(request):
    """``run(fn, *args)``: calls ``fn`` under ``jax.jit`` or eagerly."""
    if request.param == "jit":
        return lambda fn, *args: jax.jit(fn)(*args)
    return lambda fn, *args: fn(*args)


@pytest.fixture(params=[32, 64], ids=["float32", "float64"])
def bits(request):
    """Runs the test in float32 (default JAX) and in float64 (``jax_enable_x64``); yields 32 or 64."""
    with jax.enable_x64(request.param == 64):
        yield request.param
