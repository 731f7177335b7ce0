"""Numerics shared by the schedules: powers without float32 drift, cosines without cancellation,
table lookups, and the fraction of ``t / P`` for a non-integer period ``P`` to float64 accuracy."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax._schedule import const
from lrjax._steps import Step, float_dtype, is_traced, uint_dtype


def power(base: Any, exponent: jax.Array) -> jax.Array:
    """``base ** exponent`` without float32 drift: ``exp(exponent * log(base))``, the log taken in float64.

    ``base`` is a non-negative hyperparameter (float64 NumPy value or traced array); ``0 ** 0 == 1``.
    The result is clipped to the largest finite float, so a growing power never becomes ``inf``.
    """
    dtype = float_dtype()
    e = exponent.astype(dtype)
    if not is_traced(base):
        b = np.asarray(base, dtype=np.float64)
        safe = np.where(b > 0, b, 1.0)
        value = jnp.exp(e * const(np.log(safe), dtype))
        if np.any(b == 0):
            value = jnp.where(const(b == 0, jnp.bool_), jnp.where(e == 0, const(1.0), const(0.0)), value)
        if np.any(b == 1):
            value = jnp.where(const(b == 1, jnp.bool_), const(1.0), value)
    else:
        b = const(base, dtype)
        positive = b > 0
        value = jnp.exp(e * jnp.log(jnp.where(positive, b, const(1.0, dtype))))
        value = jnp.where(positive, value, jnp.where(e == 0, const(1.0, dtype), const(0.0, dtype)))
    return jnp.minimum(value, const(jnp.finfo(dtype).max, dtype))


def power_table(base: Any, n: int) -> np.ndarray:
    """``[base ** k for k in 0..n]`` for a concrete ``base``, in float64, as :func:`power` defines them."""
    with np.errstate(over="ignore", under="ignore"):
        powers = np.asarray(base, dtype=np.float64) ** np.arange(n + 1, dtype=np.float64)
    return np.minimum(powers, np.finfo(float_dtype()).max)


# Up to this many entries, a sorted table is searched by comparing every step with every entry
# (``method="compare_all"``, one fused compare-and-count), above it by binary search (``"scan"``).
# Both give the same index; on 10^6 steps with 3 milestones compare_all took 0.2 ms and the binary
# search 4 to 12 ms (XLA:CPU, 2 cores).
_COMPARE_ALL_MAX = 128


def searchsorted(table: jax.Array, t: jax.Array, side: str = "left") -> jax.Array:
    """``jnp.searchsorted(table, t, side=side)`` by the method that is fastest for the table's size."""
    method = "compare_all" if table.shape[0] <= _COMPARE_ALL_MAX else "scan"
    return jnp.searchsorted(table, t, side=side, method=method)


def count_le(table: np.ndarray, k: jax.Array) -> jax.Array:
    """How many entries of the sorted int table (Python ints of any size) are ``<= k``, as int32."""
    big = np.iinfo(uint_dtype()).max
    small = [int(m) for m in table if int(m) <= big]
    if not small:
        return jnp.zeros(jnp.shape(k), jnp.int32)
    return searchsorted(jnp.asarray(np.asarray(small, dtype=np.uint64).astype(uint_dtype())), k, side="right").astype(
        jnp.int32
    )


def half_cosine(done: jax.Array, left: jax.Array, total: Any) -> jax.Array:
    r"""``(1 + cos(pi * done / total)) / 2`` for ``done + left == total``, accurate near both ends.

    Written as :math:`\cos^2(\pi d / 2T) = 1 - \sin^2(\pi d / 2T)` while ``done <= left`` (the value
    is then at least 1/2) and :math:`\sin^2(\pi l / 2T)` after, so the value keeps full relative
    precision as it approaches 0 (no ``1 + cos`` cancellation). One sine of the smaller of the two
    angles serves both halves: a single transcendental per element.
    """
    dtype = float_dtype()
    half_pi_over_total = const(np.pi / 2, dtype) / const(total, dtype)
    first_half = done <= left
    sin2 = jnp.square(jnp.sin(jnp.where(first_half, done, left) * half_pi_over_total))
    return jnp.where(first_half, const(1.0, dtype) - sin2, sin2)


def half_cosine_pair(done: jax.Array, left: jax.Array, total: Any) -> tuple[jax.Array, jax.Array]:
    """``(1 - h, h)`` for ``h = half_cosine(done, left, total)``, both with full relative precision, from
    one sine: ``(1 - cos(pi d / T)) / 2`` and ``(1 + cos(pi d / T)) / 2``."""
    dtype = float_dtype()
    half_pi_over_total = const(np.pi / 2, dtype) / const(total, dtype)
    first_half = done <= left
    sin2 = jnp.square(jnp.sin(jnp.where(first_half, done, left) * half_pi_over_total))
    rest = const(1.0, dtype) - sin2
    return jnp.where(first_half, sin2, rest), jnp.where(first_half, rest, sin2)


# ----------------------------------------------------------------------------------------------
# frac(t / P) for a float period P, in float32, to about 2**-24 absolute
# ----------------------------------------------------------------------------------------------

# k < 2**32 is split into three pieces of at most 11 significant bits, 1/P into pieces of at most
# 12: every product of two pieces has at most 23 significant bits, so it is exact in float32
# (whatever the hardware does with fused multiply-adds) and so is its fractional part.
_K_PIECE_BITS = 11
_INV_PIECE_BITS = 12
_INV_PIECES = 6


def _inverse_pieces(period: float) -> list[float]:
    """``1 / period`` as float32 values of at most 12 significant bits each, summing to it within
    ``2**-72`` relative (computed exactly with fractions)."""
    rest = Fraction(1) / Fraction(period)
    pieces = []
    for _ in range(_INV_PIECES):
        if rest == 0:
            break
        exponent = math.floor(math.log2(abs(rest)))
        scale = Fraction(2) ** (exponent - _INV_PIECE_BITS + 1)
        piece = math.floor(rest / scale) * scale
        if piece == 0:
            break
        pieces.append(float(piece))
        rest -= piece
    return pieces


def _two_sum(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    s = x + y
    v = s - x
    return s, (x - (s - v)) + (y - v)


def frac_of_ratio(step: Step, period: float) -> tuple[jax.Array, jax.Array]:
    """``(floor(t / P), frac(t / P))`` for ``t = k + f`` (``k < 2**32``) and a float ``P > 0``, in float32.

    The fraction is accurate to about one float32 ulp of 1 at any step of the domain: ``k / P`` is
    summed from exact partial products (see above) whose fractional parts are accumulated modulo 1
    with compensated summation, instead of rounding ``t`` and ``t / P`` to float32. The whole part
    is returned as a float (exact below 2**24).
    """
    k = step.k.astype(jnp.uint32)
    mask = jnp.asarray((1 << _K_PIECE_BITS) - 1, jnp.uint32)
    pieces_k = [
        ((k >> jnp.asarray(shift, jnp.uint32)) & mask).astype(jnp.float32) * jnp.float32(2.0**shift)
        for shift in (2 * _K_PIECE_BITS, _K_PIECE_BITS, 0)
    ]
    products = [kp * jnp.float32(ip) for kp in pieces_k for ip in _inverse_pieces(period)]  # each exact
    if step.f is not None:
        products.append(step.f.astype(jnp.float32) * jnp.float32(1.0 / period))
    zero = jnp.zeros(jnp.shape(k), jnp.float32)
    whole, total, err = zero, zero, zero
    for p in products:
        w = jnp.floor(p)
        total, e = _two_sum(total, p - w)  # total stays in [0, 2): both parts exact below
        carry = jnp.floor(total)
        whole, total, err = whole + w + carry, total - carry, err + e
    total = total + err
    carry = jnp.floor(total)
    return whole + carry, total - carry
