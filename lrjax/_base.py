"""The schedule base class, dtype handling and argument validation shared by every schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Union

import jax
import jax.numpy as jnp
from jax.extend.core import Literal
import numpy as np

ArrayLike = jax.typing.ArrayLike
Schedule = Callable[[ArrayLike], jax.Array]
"""Any ``step -> value`` function; what optax calls a schedule."""

Hyper = Union[np.ndarray, jax.Array]
"""A float hyperparameter after validation: a float64 NumPy array (concrete) or a traced JAX array."""

_TORCH_DOCS = "https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.{}.html"


def float_dtype() -> np.dtype:
    """The dtype every schedule returns: float64 under ``jax_enable_x64``, float32 otherwise."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def is_traced(x: Any) -> bool:
    """Whether ``x`` is an abstract value inside ``jit``/``vmap``/``grad`` (so it cannot be checked)."""
    return isinstance(x, jax.core.Tracer)


def is_concrete(*xs: Any) -> bool:
    return not any(is_traced(x) for x in xs)


# ----------------------------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------------------------


def as_step(step: ArrayLike) -> jax.Array:
    """Converts a step to a JAX array of integer or floating dtype; negative steps count as 0."""
    t = jnp.asarray(step)
    if not (jnp.issubdtype(t.dtype, jnp.integer) or jnp.issubdtype(t.dtype, jnp.floating)):
        raise TypeError(f"step must be an integer or a float (or an array of them), got dtype {t.dtype}.")
    return jnp.maximum(t, jnp.zeros((), t.dtype))


def is_int(t: jax.Array) -> bool:
    return bool(jnp.issubdtype(t.dtype, jnp.integer))


def to_float(x: ArrayLike, dtype: np.dtype | None = None) -> jax.Array:
    return jnp.asarray(x).astype(dtype or float_dtype())


def const(x: Any, dtype: np.dtype | None = None) -> jax.Array:
    """A hyperparameter (NumPy float64 or traced) as an array of the schedule's dtype."""
    return jnp.asarray(x, dtype=dtype or float_dtype())


def int_const(value: int, t: jax.Array) -> jax.Array | None:
    """``value`` in the integer dtype of ``t``, or None if it does not fit that dtype."""
    info = jnp.iinfo(t.dtype)
    if info.min <= value <= info.max:
        return jnp.asarray(value, dtype=t.dtype)
    return None


def split_const(c: float, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(t - c)`` and ``(c - t)`` for a Python float ``c``, exact in the integer part when ``t`` is an integer.

    In float32, ``t - c`` for ``t`` near ``2**31`` would lose the fractional part of ``c``. The integer
    part of ``c`` is subtracted in the integer dtype of ``t`` first, then the fraction in float.
    """
    dtype = float_dtype()
    if is_int(t):
        whole = math.floor(c)
        frac = c - whole
        w = int_const(whole, t)
        if w is not None:
            diff = (t - w).astype(dtype)  # exact
            return diff - const(frac, dtype), const(frac, dtype) - diff
    tf = to_float(t, dtype)
    return tf - const(c, dtype), const(c, dtype) - tf


# ----------------------------------------------------------------------------------------------
# Numerics
# ----------------------------------------------------------------------------------------------


def power(base: Any, exponent: ArrayLike) -> jax.Array:
    """``base ** exponent`` without float32 drift: ``exp(exponent * log(base))``, the log taken in float64.

    ``base`` is a non-negative hyperparameter (float64 NumPy value or traced array); ``0 ** 0 == 1``.
    The result is clipped to the largest finite float, so a growing power never becomes ``inf``.
    """
    dtype = float_dtype()
    e = to_float(exponent, dtype)
    if not is_traced(base):
        b = np.asarray(base, dtype=np.float64)
        safe = np.where(b > 0, b, 1.0)
        log_b = const(np.log(safe), dtype)
        value = jnp.exp(e * log_b)
        if np.any(b == 0):
            value = jnp.where(const(b == 0, jnp.bool_), jnp.where(e == 0, const(1.0), const(0.0)), value)
    else:
        b = const(base, dtype)
        positive = b > 0
        value = jnp.exp(e * jnp.log(jnp.where(positive, b, const(1.0, dtype))))
        value = jnp.where(positive, value, jnp.where(e == 0, const(1.0, dtype), const(0.0, dtype)))
    return jnp.minimum(value, const(jnp.finfo(dtype).max, dtype))


# Up to this many entries, a sorted table is searched by comparing every step with every entry
# (``method="compare_all"``, one fused compare-and-count), above it by binary search (``"scan"``,
# a loop of gathers). Both give the same index; on 10^6 steps with 3 milestones compare_all took
# 0.2 ms and the binary search 4 to 12 ms (XLA:CPU, 2 cores).
_COMPARE_ALL_MAX = 128


def searchsorted(table: jax.Array, t: jax.Array, side: str = "left") -> jax.Array:
    """``jnp.searchsorted(table, t, side=side)`` by the method that is fastest for the table's size."""
    method = "compare_all" if table.shape[0] <= _COMPARE_ALL_MAX else "scan"
    return jnp.searchsorted(table, t, side=side, method=method)


def power_table(base: Any, n: int) -> np.ndarray:
    """``[base ** k for k in 0..n]`` for a concrete ``base``, in float64, as :func:`power` defines them
    (``0 ** 0 == 1``, clipped to the largest finite float of the schedule's dtype)."""
    with np.errstate(over="ignore", under="ignore"):
        powers = np.asarray(base, dtype=np.float64) ** np.arange(n + 1, dtype=np.float64)
    return np.minimum(powers, np.finfo(float_dtype()).max)


def half_cosine(done: jax.Array, left: jax.Array, total: Any) -> jax.Array:
    r"""``(1 + cos(pi * done / total)) / 2`` for ``done + left == total``, accurate near both ends.

    Written as :math:`\cos^2(\pi d / 2T) = 1 - \sin^2(\pi d / 2T)` while ``done <= left`` (the value
    is then at least 1/2) and :math:`\sin^2(\pi l / 2T)` after, so the value keeps full relative
    precision as it approaches 0 (no ``1 + cos`` cancellation). One sine of the smaller of the two
    angles serves both halves: a single transcendental per element (``cos`` and ``sin`` both, each
    selected by ``where``, took twice as long on 10^6 steps). Valid for ``done / total`` in ``[-1, 2]``,
    with full relative precision for ``done >= 0`` (for ``done < 0``, a value near 0 is accurate to
    float eps absolutely; no schedule selects such a value).
    """
    dtype = float_dtype()
    half_pi_over_total = const(np.pi / 2, dtype) / const(total, dtype)
    first_half = done <= left
    sin2 = jnp.square(jnp.sin(jnp.where(first_half, done, left) * half_pi_over_total))
    return jnp.where(first_half, const(1.0, dtype) - sin2, sin2)


def periodic_cosine(t: jax.Array, period_half: int) -> jax.Array:
    r"""``(1 + cos(pi * t / T)) / 2`` with ``t`` reduced modulo ``2T`` exactly before the cosine."""
    dtype = float_dtype()
    T = period_half
    if is_int(t):
        two_t = int_const(2 * T, t)
        m = t % two_t if two_t is not None else t
        T_c = int_const(T, t)
        if T_c is None:  # t < T always
            d, left = t.astype(dtype), const(T, dtype) - t.astype(dtype)
        else:
            d_int = jnp.where(m <= T_c, m, T_c - (m - T_c))
            d, left = d_int.astype(dtype), (T_c - d_int).astype(dtype)
    else:
        tf = t.astype(dtype)
        T_f = const(T, dtype)
        m = jnp.remainder(tf, const(2 * T, dtype))
        d = jnp.where(m <= T_f, m, const(2 * T, dtype) - m)
        left = T_f - d
    return half_cosine(d, left, T)


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------


def _numeric_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, (str, bytes)) or x is None:
        raise ValueError(f"Expected a real number for {name}, but got {x!r} of type {type(x)}")
    try:
        raw = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - ragged lists and the like
        raise ValueError(f"{name} must be a number or a 1-D sequence of numbers, got {x!r}") from e
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"Expected a real number for {name}, but got {x!r} of type {type(x)}")
    return raw.astype(np.float64)


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
    return arr


def check_groups(**named: Any) -> int | None:
    """Checks that every per-group argument has the same number of groups; returns it (None if scalar)."""
    sizes = {k: int(np.shape(v)[0]) for k, v in named.items() if np.ndim(v) == 1}
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
    """Validates an integer argument (``>= minimum``). Integral floats are accepted unless ``strict_type``."""
    bad = message or (f"{name} must be an integer >= {minimum}, got {x!r}" if minimum is not None else f"{name} must be an integer, got {x!r}")
    if isinstance(x, bool):
        raise ValueError(bad)
    if isinstance(x, (int, np.integer)):
        value = int(x)
    elif not strict_type and isinstance(x, (float, np.floating)) and math.isfinite(x) and float(x).is_integer():
        value = int(x)
    else:
        raise ValueError(bad)
    if minimum is not None and value < minimum:
        raise ValueError(bad)
    return value


def fmt(value: Any) -> str:
    """Formats a hyperparameter for ``repr``."""
    if isinstance(value, np.ndarray):
        return repr(value.item()) if value.ndim == 0 else repr(value.tolist())
    if callable(value):
        return getattr(value, "__name__", repr(value))
    return repr(value)


# ----------------------------------------------------------------------------------------------
# The schedule base class
# ----------------------------------------------------------------------------------------------


class LRSchedule:
    """Base class of every lrjax schedule: a pure, jittable function ``schedule(step) -> value``.

    ``schedule(t)`` is the value torch's scheduler holds after ``t`` calls of ``scheduler.step()``.
    ``t`` may be a Python number or an array of integers or floats; the result broadcasts ``t``
    against the hyperparameters (one value per parameter group), in the float dtype of JAX
    (float32, or float64 under ``jax_enable_x64``). Negative steps count as step 0.

    Instances are immutable and carry no state: the step *is* the state. They are plain callables,
    so they go wherever optax takes a schedule.
    """

    torch_class: ClassVar[str] = ""
    # How torch's recursive ``get_lr`` uses the current lr, which decides how members combine in
    # ``chained_scheduler`` / ``sequential_lr``: "multiplicative" (scales it), "affine"
    # (CosineAnnealingLR) or "absolute" (overwrites it).
    kind: ClassVar[str] = "absolute"

    def __init__(self, fn_name: str, kwargs: dict[str, Any]):
        self._fn_name = fn_name
        self._kwargs = kwargs

    def __call__(self, step: ArrayLike) -> jax.Array:
        return self._value(as_step(step))

    def _value(self, t: jax.Array) -> jax.Array:
        raise NotImplementedError

    @property
    def kwargs(self) -> dict[str, Any]:
        """The arguments the schedule was built with (after validation)."""
        return dict(self._kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={fmt(v)}" for k, v in getattr(self, "_kwargs", {}).items())
        return f"lrjax.{getattr(self, '_fn_name', type(self).__name__)}({args})"


class MultiplicativeSchedule(LRSchedule):
    """A schedule whose torch ``get_lr`` multiplies the current lr by a factor at every step.

    ``value(t) = base_lr * factor(t)`` where ``factor(t)`` is the product of the per-step factors
    ``step_factor(1..t)`` times the initial factor ``step_factor(0)`` applied by the constructor.
    """

    kind: ClassVar[str] = "multiplicative"
    base_lr: Hyper
    # Last step whose step factor may differ from 1; None when factors keep coming forever.
    last_event: int | None = None

    def _value(self, t: jax.Array) -> jax.Array:
        return const(self.base_lr) * self.factor(t)

    def factor(self, t: jax.Array) -> jax.Array:
        """The cumulative factor after ``t`` steps (``value / base_lr``)."""
        raise NotImplementedError

    def step_factor(self, t: jax.Array) -> jax.Array:
        """The factor torch's ``get_lr`` applies to the current lr at step ``t`` (``t = 0``: construction)."""
        raise NotImplementedError

    def factor_between(self, t0: jax.Array, t: jax.Array) -> jax.Array:
        """The product of ``step_factor(k)`` for ``t0 < k <= t``."""
        raise NotImplementedError


def torch_link(torch_class: str) -> str:
    return _TORCH_DOCS.format(torch_class)


def validate_callables(fns: Any, name: str, groups: int | None) -> list[Callable] | Callable:
    """One callable, or a list with one callable per parameter group (torch's lr_lambda rule)."""
    if isinstance(fns, (list, tuple)):
        expected = groups if groups is not None else 1
        if len(fns) != expected:
            raise ValueError(f"Expected {expected} {name}s, but got {len(fns)}")
        for f in fns:
            if not callable(f):
                raise ValueError(f"{name} should be a function, but got {type(f).__name__}")
        return list(fns)
    if not callable(fns):
        raise ValueError(f"{name} should be a function, but got {type(fns).__name__}")
    return fns


def as_list(x: Any, n: int | None) -> Sequence[Any]:
    return list(x) if isinstance(x, (list, tuple)) else [x] * (n or 1)


# ----------------------------------------------------------------------------------------------
# User callables (lr_lambda, scale_fn)
# ----------------------------------------------------------------------------------------------


class Probe:
    """What tracing a user callable ``f(step) -> float`` once with an abstract scalar tells us."""

    def __init__(self, fn: Callable, name: str):
        self.fn = fn
        self.error: Exception | None = None
        self.depends_on_step = True
        arg = jax.ShapeDtypeStruct((), jax.dtypes.canonicalize_dtype(np.int64))
        try:
            closed = jax.make_jaxpr(fn)(arg)
        except Exception as e:  # noqa: BLE001 - any failure means "not traceable"
            self.error = e
            return
        outs = closed.out_avals
        if len(outs) != 1 or outs[0].shape != () or not (
            jnp.issubdtype(outs[0].dtype, jnp.integer) or jnp.issubdtype(outs[0].dtype, jnp.floating)
        ):
            raise ValueError(f"{name} must return one real number per step, but it returned {outs}")
        jaxpr = closed.jaxpr
        deps = set(jaxpr.invars)
        for eqn in jaxpr.eqns:
            if any(not isinstance(v, Literal) and v in deps for v in eqn.invars):
                deps.update(eqn.outvars)
        out = jaxpr.outvars[0]
        self.depends_on_step = not isinstance(out, Literal) and out in deps

    @property
    def traceable(self) -> bool:
        return self.error is None


def tabulate(fn: Callable, name: str, first: int, last: int, probe: Probe) -> np.ndarray:
    """``[fn(k) for k in range(first, last + 1)]`` in float64, with Python-int arguments as torch passes them.

    A traceable callable is evaluated in one vectorised float64 call when that agrees with calling
    it on Python ints at a sample of steps (integer arrays and Python ints can differ: ``2 ** -k``);
    otherwise, and for callables JAX cannot trace, it is called once per step as torch does. Every
    value must be finite and non-negative.
    """
    ks = range(first, last + 1)
    values = None
    if probe.traceable and len(ks) > 256:
        sample = sorted(set(list(ks[:64]) + list(ks[:: max(1, len(ks) // 64)]) + [ks[-1]]))
        python = np.asarray([float(fn(k)) for k in sample], dtype=np.float64)
        with jax.enable_x64(True), jax.ensure_compile_time_eval():
            for dtype in (jnp.int64, jnp.float64):
                vectorised = np.asarray(jax.jit(jax.vmap(fn))(jnp.arange(first, last + 1, dtype=dtype)), np.float64)
                if np.allclose(vectorised[np.asarray(sample) - first], python, rtol=1e-13, atol=0.0, equal_nan=True):
                    values = vectorised
                    break
    if values is None:
        values = np.asarray([float(fn(k)) for k in ks], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        k = first + int(bad[0])
        raise ValueError(f"{name}({k}) = {float(values[bad[0]])!r}: learning-rate factors must be finite and non-negative")
    return values
