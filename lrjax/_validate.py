"""Argument validation shared by every schedule: raised when a schedule is built, never while it runs."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, Union

import jax
import numpy as np

from lrjax._steps import float_dtype, is_traced

Hyper = Union[np.ndarray, jax.Array]
"""A float hyperparameter after validation: a float64 NumPy array (concrete) or a traced JAX array."""


def is_concrete(*xs: Any) -> bool:
    return not any(is_traced(x) for x in xs)


def _numeric_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, (str, bytes, bool, np.bool_)) or x is None:
        raise ValueError(f"Expected a real number for {name}, but got {x!r} of type {type(x).__name__}")
    if isinstance(x, (list, tuple)) and any(isinstance(v, (bool, np.bool_, str, bytes)) or v is None for v in x):
        raise ValueError(f"Expected real numbers for {name}, but got {x!r}")
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) > 2**1023:
        raise ValueError(f"{name} must be a finite float, got {x!r}")
    try:
        raw = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - ragged lists and the like
        raise ValueError(f"{name} must be a number or a 1-D sequence of numbers, got {x!r}") from e
    if raw.dtype.kind not in "iuf" and raw.dtype.name != "bfloat16":
        raise ValueError(f"Expected a real number for {name}, but got {x!r} of type {type(x).__name__}")
    try:
        return raw.astype(np.float64)
    except (OverflowError, ValueError) as e:
        raise ValueError(f"{name} must be a finite float, got {x!r}") from e


def hyper(
    x: Any,
    name: str,
    *,
    low: float | None = 0.0,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    groups: bool = True,
    message: str | None = None,
) -> Hyper:
    """Validates a float hyperparameter: a scalar or (``groups=True``) one value per parameter group.

    Concrete values become float64 NumPy arrays and are checked to be finite and within
    ``[low, high]`` (bounds open or closed as asked). Traced values are returned as they are: they
    cannot be checked without leaving ``jit``.
    """
    if is_traced(x):
        return x
    arr = _numeric_array(x, name)
    if arr.ndim > (1 if groups else 0):
        what = "a scalar or a 1-D array with one value per parameter group" if groups else "a scalar"
        raise ValueError(f"{name} must be {what}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(message or f"{name} must be finite, got {x!r}")
    if low is not None and (np.any(arr <= low) if low_open else np.any(arr < low)):
        raise ValueError(message or f"{name} must be {'>' if low_open else '>='} {low}, got {x!r}")
    if high is not None and (np.any(arr >= high) if high_open else np.any(arr > high)):
        raise ValueError(message or f"{name} must be {'<' if high_open else '<='} {high}, got {x!r}")
    arr.setflags(write=False)
    return arr


def representable(name: str, value: Any, dtype: np.dtype | None = None) -> None:
    """Raises if a concrete value overflows the schedule's float dtype (``1e39`` is ``inf`` in float32)."""
    if value is None or is_traced(value):
        return
    dtype = np.dtype(dtype or float_dtype())
    biggest = float(np.max(np.abs(np.asarray(value, np.float64)))) if np.size(value) else 0.0
    if not math.isfinite(biggest) or biggest > float(np.finfo(dtype).max):
        hint = " (enable jax_enable_x64 for float64 schedules)" if dtype == np.float32 else ""
        raise ValueError(
            f"{name}={_short(value)} overflows {dtype.name}, whose largest value is "
            f"{float(np.finfo(dtype).max):.4g}{hint}."
        )


def _short(value: Any) -> str:
    arr = np.asarray(value, np.float64)
    return f"{arr.item():.6g}" if arr.ndim == 0 else "[" + ", ".join(f"{v:.6g}" for v in arr.tolist()) + "]"


def check_groups(**named: Any) -> int | None:
    """Checks that every per-group argument has the same number of groups; returns it (None if scalar)."""
    sizes = {k: int(np.shape(v)[0]) for k, v in named.items() if v is not None and np.ndim(v) == 1}
    if len(set(sizes.values())) > 1:
        (k0, n0), *rest = sizes.items()
        k1, n1 = next((k, n) for k, n in rest if n != n0)
        raise ValueError(
            f"{k1} must have the same length as {k0} (one value per parameter group). "
            f"{k1} has {n1} values, {k0} has {n0}."
        )
    return next(iter(sizes.values()), None)


def integer(
    x: Any,
    name: str,
    *,
    minimum: int | None = 1,
    strict_type: bool = False,
    message: str | None = None,
) -> int:
    """Validates an integer argument (``>= minimum``, any size). Integral floats are accepted unless
    ``strict_type``; bools never."""
    bad = message or (
        f"{name} must be an integer >= {minimum}, got {x!r}"
        if minimum is not None
        else f"{name} must be an integer, got {x!r}"
    )
    if isinstance(x, (bool, np.bool_)):
        raise ValueError(bad)
    if isinstance(x, numbers.Integral):
        value = int(x)
    elif not strict_type and isinstance(x, (float, np.floating)) and math.isfinite(x) and float(x).is_integer():
        value = int(x)
    else:
        raise ValueError(bad)
    if minimum is not None and value < minimum:
        raise ValueError(bad)
    return value


def boolean(x: Any, name: str) -> bool:
    """A real bool (``True``/``False``, ``np.bool_``); ``"no"``, ``1`` or ``None`` are refused."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    raise ValueError(f"{name} must be True or False, got {x!r}")


def choice(x: Any, name: str, options: Sequence[str], message: str | None = None) -> str:
    if not isinstance(x, str) or x not in options:
        raise ValueError(message or f"{name} must be one of {', '.join(map(repr, options))}, got {x!r}")
    return x


def callables(fns: Any, name: str, groups: int | None) -> Callable | tuple[Callable, ...]:
    """One callable, or a tuple with one callable per parameter group (torch's lr_lambda rule)."""
    if isinstance(fns, (list, tuple)):
        expected = groups if groups is not None else 1
        if len(fns) != expected:
            raise ValueError(f"Expected {expected} {name}s, but got {len(fns)}")
        for f in fns:
            if not callable(f):
                raise ValueError(f"{name} should be a function, but got {type(f).__name__}")
        return tuple(fns)
    if not callable(fns):
        raise ValueError(f"{name} should be a function, but got {type(fns).__name__}")
    return fns


def fmt(value: Any) -> str:
    """Formats a hyperparameter for ``repr``."""
    if isinstance(value, np.ndarray):
        return repr(value.item()) if value.ndim == 0 else repr(value.tolist())
    if isinstance(value, tuple) and value and all(callable(v) for v in value):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if callable(value):
        return getattr(value, "__name__", repr(value))
    return repr(value)
