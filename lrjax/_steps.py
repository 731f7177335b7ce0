"""The step a schedule is evaluated at: any int or float input, as an exact unsigned integer and a fraction.

Every schedule computes with :class:`Step`: ``k``, the whole number of steps, in an unsigned integer
dtype (``uint32``, or ``uint64`` under ``jax_enable_x64``), and ``f``, the fraction in ``[0, 1)`` in the
schedule's float dtype (None for integer steps). Periodic reductions (``k mod period``) and
comparisons with structural integers (milestones, ``total_iters``) are exact integer operations on
``k``; the fraction is added only after them, so a float32 schedule keeps its precision at any step
of the domain (``0 .. 2**32 - 1``, or ``2**64 - 1`` under x64).
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

ArrayLike = jax.typing.ArrayLike


def float_dtype() -> np.dtype:
    """The dtype every schedule returns: float64 under ``jax_enable_x64``, float32 otherwise."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def uint_dtype() -> np.dtype:
    """The unsigned dtype of :attr:`Step.k`: uint64 under ``jax_enable_x64``, uint32 otherwise."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.uint64))


def max_step() -> int:
    """The largest step of the domain: ``2**32 - 1`` (``2**64 - 1`` under ``jax_enable_x64``)."""
    return int(np.iinfo(uint_dtype()).max)


def is_traced(x: Any) -> bool:
    """Whether ``x`` is an abstract value inside ``jit``/``vmap``/``grad`` (so it cannot be checked)."""
    return isinstance(x, jax.core.Tracer)


class Step(NamedTuple):
    """A step as ``k + f``: ``k`` an unsigned integer array, ``f`` a float array in ``[0, 1)`` or None.

    ``nan`` marks the entries of a float step that were NaN (their value becomes NaN); None for
    integer steps.
    """

    k: jax.Array
    f: jax.Array | None = None
    nan: jax.Array | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(jnp.shape(self.k))

    @property
    def is_integer(self) -> bool:
        return self.f is None

    def floor(self) -> Step:
        """The whole steps only (for schedules that torch steps by whole steps)."""
        return Step(self.k, None, self.nan)

    def as_float(self) -> jax.Array:
        """``k + f`` in the schedule's float dtype (exact while ``k`` is below 2**24, or 2**53 under x64)."""
        value = self.k.astype(float_dtype())
        return value if self.f is None else value + self.f


def _check_range(value: int | float, what: str) -> None:
    if value > max_step():
        mode = "jax_enable_x64 on" if uint_dtype() == np.uint64 else "jax_enable_x64 off (enable it for more)"
        raise ValueError(
            f"step {what} is beyond the steps lrjax computes with ({max_step()} = 2**{max_step().bit_length()} - 1 "
            f"with {mode})."
        )


def _host_split(values: np.ndarray) -> Step:
    """Exact ``k + f`` of concrete float values, computed in float64 on the host (a float64 step is not
    rounded to float32 first when x64 is off)."""
    values = np.asarray(values, dtype=np.float64)
    nan = np.isnan(values)
    clean = np.where(nan, 0.0, np.maximum(values, 0.0))
    beyond = clean >= 2.0 ** np.iinfo(uint_dtype()).bits  # exact in float64; from there on: the last step
    whole = np.floor(np.where(beyond, 0.0, clean))
    frac = np.where(beyond, 0.0, clean - whole)  # exact in float64
    k = np.where(beyond, max_step(), whole.astype(np.uint64)).astype(np.uint64)
    f = frac.astype(float_dtype())
    carry = f >= 1.0  # a fraction within 2**-25 of 1 rounds to 1.0 in float32: carry it into k
    if np.any(carry):
        k = np.where(carry & (k < max_step()), k + 1, k).astype(np.uint64)
        f = np.where(carry, 0.0, f).astype(float_dtype())
    return Step(jnp.asarray(k.astype(uint_dtype())), jnp.asarray(f), jnp.asarray(nan) if np.any(nan) else None)


def _device_split(t: jax.Array) -> Step:
    """``k + f`` of a (possibly traced) float array, in the schedule's float dtype."""
    dtype = float_dtype()
    t = t.astype(dtype) if t.dtype != dtype else t
    nan = jnp.isnan(t)
    clean = jnp.where(nan, jnp.zeros((), dtype), jnp.maximum(t, jnp.zeros((), dtype)))
    # 2**bits is exact in either float dtype: from there on, the step counts as the last of the domain.
    beyond = clean >= jnp.asarray(2.0 ** np.iinfo(uint_dtype()).bits, dtype)
    whole = jnp.floor(jnp.where(beyond, jnp.zeros((), dtype), clean))
    k = jnp.where(beyond, jnp.asarray(max_step(), uint_dtype()), whole.astype(uint_dtype()))
    return Step(k, jnp.where(beyond, jnp.zeros((), dtype), clean - whole), nan)


def as_step(step: Any) -> Step:
    """Converts any int or float step (Python, NumPy or JAX; any shape) to a :class:`Step`.

    Negative steps count as step 0; a NaN step is marked (its value becomes NaN); a float step beyond
    the domain counts as its last step, a concrete integer beyond it raises. Concrete floats (Python,
    NumPy) are split exactly on the host; under ``jit`` a step is what JAX passes (a float64 NumPy
    step becomes a float32 when x64 is off, as for any JAX input).

    Raises:
        TypeError: for booleans, complex numbers, strings and other non-numbers.
        ValueError: for a concrete integer step beyond the domain (see :func:`max_step`).
    """
    if isinstance(step, Step):
        return step
    if isinstance(step, (bool, np.bool_)):
        raise TypeError(f"step must be an integer or a float, got the bool {step!r}")
    if isinstance(step, numbers.Integral) and not isinstance(step, (np.generic, np.ndarray)):
        value = int(step)
        _check_range(value, str(value))
        return Step(jnp.asarray(max(value, 0), dtype=uint_dtype()))
    if isinstance(step, float):
        return _host_split(np.asarray(step))
    if isinstance(step, (str, bytes)) or step is None:
        raise TypeError(f"step must be an integer or a float (or an array of them), got {step!r}")
    if isinstance(step, (list, tuple)):
        step = np.asarray(step)
    if isinstance(step, (np.ndarray, np.generic)):
        arr = np.asarray(step)
        if arr.dtype.kind == "b":
            raise TypeError("step must be an integer or a float (or an array of them), got a bool array")
        if arr.dtype.kind in "iu":
            # Converted on the host, exactly: JAX would wrap an int64 beyond int32 when x64 is off.
            if arr.size and int(arr.max()) > max_step():
                _check_range(int(arr.max()), str(int(arr.max())))
            clean = np.maximum(arr, 0) if arr.dtype.kind == "i" else arr
            return Step(jnp.asarray(clean.astype(np.uint64).astype(uint_dtype())))
        if arr.dtype.kind == "f" or arr.dtype.name == "bfloat16":
            return _host_split(arr.astype(np.float64))
    try:
        t = jnp.asarray(step)
    except TypeError as e:
        raise TypeError(f"step must be an integer or a float (or an array of them), got {step!r}") from e
    if jnp.issubdtype(t.dtype, jnp.bool_):
        raise TypeError("step must be an integer or a float (or an array of them), got a bool array")
    if jnp.issubdtype(t.dtype, jnp.integer):
        if jnp.issubdtype(t.dtype, jnp.signedinteger):
            t = jnp.maximum(t, jnp.zeros((), t.dtype))
        return Step(t.astype(uint_dtype()))
    if jnp.issubdtype(t.dtype, jnp.floating):
        return _device_split(t)
    raise TypeError(f"step must be an integer or a float (or an array of them), got dtype {t.dtype}")


# ----------------------------------------------------------------------------------------------
# Exact integer arithmetic on k with Python-int constants of any size
# ----------------------------------------------------------------------------------------------


def fits(c: int) -> bool:
    """Whether the non-negative Python int ``c`` is a value of the step's unsigned dtype."""
    return 0 <= c <= max_step()


def uconst(c: int) -> jax.Array:
    return jnp.asarray(c, dtype=uint_dtype())


def at(u: int) -> Step:
    """The integer step ``u`` (a Python int in the domain)."""
    return Step(uconst(u))


def ge(k: jax.Array, c: int) -> jax.Array:
    """``k >= c`` for a Python int ``c`` of any size."""
    if c <= 0:
        return jnp.ones(jnp.shape(k), bool)
    if not fits(c):
        return jnp.zeros(jnp.shape(k), bool)
    return k >= uconst(c)


def eq(k: jax.Array, c: int) -> jax.Array:
    if not fits(c):
        return jnp.zeros(jnp.shape(k), bool)
    return k == uconst(c)


def minimum(k: jax.Array, c: int) -> jax.Array:
    """``min(k, c)`` for ``c >= 0`` of any size."""
    return k if not fits(c) else jnp.minimum(k, uconst(c))


def floordiv(k: jax.Array, c: int) -> jax.Array:
    """``k // c`` for ``c >= 1`` of any size."""
    if c == 1:
        return k
    return jnp.zeros_like(k) if not fits(c) else k // uconst(c)


def mod(k: jax.Array, c: int) -> jax.Array:
    """``k % c`` for ``c >= 1`` of any size."""
    return k if not fits(c) else k % uconst(c)


def sub_clipped(k: jax.Array, c: int) -> jax.Array:
    """``max(k - c, 0)`` in the unsigned dtype."""
    if c <= 0:
        return k
    if not fits(c):
        return jnp.zeros_like(k)
    cc = uconst(c)
    return jnp.where(k >= cc, k - cc, jnp.zeros_like(k))


def c_minus(c: int, k: jax.Array) -> jax.Array:
    """``c - k`` as a float, exact in its integer part, for ``k <= c`` (``c`` of any size)."""
    dtype = float_dtype()
    if fits(c):
        return (uconst(c) - jnp.minimum(k, uconst(c))).astype(dtype)
    return jnp.asarray(float(c), dtype) - k.astype(dtype)


def to_float(k: jax.Array) -> jax.Array:
    return k.astype(float_dtype())
