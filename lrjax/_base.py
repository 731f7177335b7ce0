"""Helpers other modules share (kept under one name): steps, dtypes, validation, formatting."""

from __future__ import annotations

from lrjax._schedule import LRSchedule, Schedule, const
from lrjax._steps import ArrayLike, Step, as_step, float_dtype, is_traced
from lrjax._validate import Hyper, check_groups, fmt, hyper, integer, is_concrete

__all__ = [
    "ArrayLike",
    "Hyper",
    "LRSchedule",
    "Schedule",
    "Step",
    "as_step",
    "check_groups",
    "const",
    "float_dtype",
    "fmt",
    "hyper",
    "integer",
    "is_concrete",
    "is_int",
    "is_traced",
]


def is_int(t) -> bool:
    """Whether an array has an integer dtype."""
    import jax.numpy as jnp

    return bool(jnp.issubdtype(jnp.asarray(t).dtype, jnp.integer))
