"""torch's float64 ``is_better`` test of ``ReduceLROnPlateau``, evaluated exactly in float32.

Used by :mod:`lrjax._plateau`: ``better_fn(mode, threshold_mode, threshold)`` returns
``is_better(metric, best)`` equal to torch's Python-float comparison for float32 (and, plainly,
float64) metrics and bests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _base

# A float32 value with its low 12 significand bits cleared keeps 12 significant bits (implicit bit
# included); the rest is another 12-bit value, so products of two halves are exact in float32.
_HIGH_BITS = np.uint32(0xFFFFF000)
# is_better skips the exact float32 comparison when the metric is farther than this (relative to the
# magnitudes involved, plus an absolute floor) from the float32 bound: 16x the bound's worst error.
_FAR = 2.0**-20
_TINY = 2.0**-60


# ----------------------------------------------------------------------------------------------
# float32: torch's float64 comparison, exactly
# ----------------------------------------------------------------------------------------------
#
# torch tests ``a < fl64(X)`` (mode "min"), with ``a`` the metric and ``X = best * (1 - threshold)``
# or ``best - threshold`` computed in float64 (``fl64``: one rounding). With float32 ``a`` and
# ``best``, that is exactly ``X - a > h`` where ``h`` is half the gap from ``a`` to the next float64
# above it (a float32 is an even float64, so a tie rounds to ``a``); mode "max" is the mirror image.
# ``X`` is a sum of float32 terms without rounding: the float64 constant is split into float32 parts
# whose products with ``best`` are made exact (Dekker's TwoProduct on 12-bit halves). The sign of
# ``a - X + h`` then comes from Shewchuk's exact expansion arithmetic (TwoSum only), so float32
# decisions equal torch's for finite values away from float32's overflow and flush-to-zero ranges.


def _split_f64(x: float) -> list[np.float32] | None:
    """``x == p[0] + p[1] + p[2]`` exactly, float32 parts of 24, 24 and at most 6 bits (None if not)."""
    with np.errstate(over="ignore", under="ignore"):
        p1 = np.float32(x)
        p2 = np.float32(x - np.float64(p1))
        p3 = np.float32(x - np.float64(p1) - np.float64(p2))
    parts = [p1, p2, p3]
    exact = all(np.isfinite(parts)) and sum(Fraction(float(p)) for p in parts) == Fraction(x)
    return parts if exact else None


def _halves_const(x: np.float32) -> list[np.float32]:
    hi = np.float32((np.asarray(x, np.float32).view(np.uint32) & _HIGH_BITS).view(np.float32))
    return [hi, np.float32(x - hi)]


def _halves(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``x == hi + lo`` exactly, each with at most 12 significant bits."""
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    hi = jax.lax.bitcast_convert_type(bits & jnp.asarray(_HIGH_BITS), jnp.float32)
    return hi, x - hi


def _two_product(x, x_halves, y, y_halves) -> tuple[jax.Array, jax.Array]:
    """``p + e == x * y`` exactly, with ``p = fl(x * y)`` (Dekker; the halves make each partial
    product exact, so the result does not depend on fused multiply-adds). No underflow assumed."""
    (x_h, x_l), (y_h, y_l) = x_halves, y_halves
    p = x * y
    return p, (((x_h * y_h - p) + x_h * y_l) + x_l * y_h) + x_l * y_l


def _two_sum(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``s + e == x + y`` exactly, with ``s = fl(x + y)`` (Knuth's TwoSum)."""
    s = x + y
    v = s - x
    return s, (x - (s - v)) + (y - v)


def _exact_sign(terms: list[jax.Array]) -> tuple[jax.Array, jax.Array]:
    """The sign of the exact sum of float32 ``terms``, and whether the computation stayed finite.

    Shewchuk's Grow-Expansion: the sum is kept as a nonoverlapping expansion in increasing order of
    magnitude, whose sign is that of its last nonzero component.
    """
    expansion = [terms[0]]
    for t in terms[1:]:
        q, grown = t, []
        for e in expansion:
            q, err = _two_sum(q, e)
            grown.append(err)
        expansion = grown + [q]
    sign = jnp.zeros_like(terms[0])
    finite = jnp.ones(jnp.shape(terms[0]), jnp.bool_)
    for e in expansion:
        sign = jnp.where(e != 0, jnp.sign(e), sign)
        finite = finite & jnp.isfinite(e)
    return sign, finite


def _half_gap_to_next_f64(a: jax.Array, up: bool) -> jax.Array:
    """Half the distance from float32 ``a`` to the next float64 towards +inf (``up``) or -inf."""
    bits = jax.lax.bitcast_convert_type(jnp.abs(a), jnp.uint32)
    biased = (bits >> jnp.uint32(23)).astype(jnp.int32)  # float32 exponent of |a|, biased by 127
    h_biased = biased - 53  # 2**(E - 53): half a float64 ulp in |a|'s binade
    h = jax.lax.bitcast_convert_type(jnp.maximum(h_biased, 1).astype(jnp.uint32) << jnp.uint32(23), jnp.float32)
    h = jnp.where(h_biased >= 1, h, jnp.zeros_like(a))  # below float32's normal range: 0
    power_of_two = (bits & jnp.uint32(0x7FFFFF)) == 0
    towards_zero = a < 0 if up else a > 0  # then the gap below a power of two is half as wide
    return jnp.where(power_of_two & towards_zero, h * jnp.float32(0.5), h)


@functools.partial(jax.jit, static_argnames=("minimize", "relative"))
def _f32_better(a: jax.Array, best: jax.Array, parts: jax.Array, minimize: bool, relative: bool):
    """torch's float64 ``is_better(a, best)`` for float32 ``a`` and ``best``; and whether it is exact.

    ``parts``: the float32 pieces of torch's float64 constant: for ``X = best * c`` (``relative``)
    ``[c1, c1h, c1l, c2, c2h, c2l, c3]`` with ``c = c1 + c2 + c3`` and ``c1 = c1h + c1l`` etc.
    (12-bit halves), or ``[t1, t2, t3]`` with ``threshold = t1 + t2 + t3``.
    Jitted once per mode, so an eager ``update`` costs one dispatch here.
    """
    # Inside a caller's jit, ``parts`` would be constants, and XLA's simplifier rewrites TwoSum
    # sequences on constants (e.g. ``(x + c) - c``) as if float addition were associative: keep them opaque.
    parts = jax.lax.optimization_barrier(parts)
    # Scale by a power of two (exact) so that the larger of |a|, |best| lies in [1, 2): the smallest
    # terms of the exact sum (~2**-77 of it) then stay clear of float32's flush-to-zero range.
    big = jax.lax.bitcast_convert_type(jnp.maximum(jnp.abs(a), jnp.abs(best)), jnp.uint32)
    k = jnp.clip(127 - (big >> jnp.uint32(23)).astype(jnp.int32), -126, 126)
    scale = jax.lax.bitcast_convert_type((k + 127).astype(jnp.uint32) << jnp.uint32(23), jnp.float32)  # 2**k
    a_s, best_s = a * scale, best * scale
    if relative:
        halves = _halves(best_s)
        p1, e1 = _two_product(best_s, halves, parts[0], (parts[1], parts[2]))
        p2, e2 = _two_product(best_s, halves, parts[3], (parts[4], parts[5]))
        q1, q2 = halves[0] * parts[6], halves[1] * parts[6]  # c3 has at most 6 bits: exact
        terms = [a_s, -p1, -e1, -p2, -e2, -q1, -q2]  # a - X, exactly
    else:
        thr = [parts[i] * scale for i in range(3)]
        terms = [a_s, -best_s] + (thr if minimize else [-t for t in thr])  # a - (best -/+ threshold)
    h = _half_gap_to_next_f64(a_s, up=minimize)
    sign, finite = _exact_sign(terms + [h if minimize else -h])
    better = sign < 0 if minimize else sign > 0
    return better, finite & jnp.isfinite(a) & jnp.isfinite(best)


# ----------------------------------------------------------------------------------------------
# torch's is_better
# ----------------------------------------------------------------------------------------------


def better_fn(minimize: bool, relative: bool, threshold: _base.Hyper) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """torch's ``is_better(a, best)`` for ``mode`` (``minimize``) and ``threshold_mode`` (``relative``).

    float64 ``a`` and ``best`` are compared with torch's own arithmetic, bit for bit. float32 ones
    get torch's float64 decision, exactly (see :func:`_f32_better`), unless ``threshold`` is traced
    or its float64 constant cannot be split into float32 parts: then plain float32 arithmetic is used.
    """
    parts = None  # float32 pieces of torch's float64 constant, for the exact float32 comparison
    if _base.is_traced(threshold):
        rel_eps = 1.0 - threshold if minimize else threshold + 1.0
        thr = None
    else:  # torch's Python-float expressions, in float64
        thr = float(threshold)
        rel_eps = 1.0 - thr if minimize else thr + 1.0
        split = _split_f64(rel_eps if relative else thr)
        if split is not None and relative:  # see _f32_better for the layout
            parts = np.array([split[0], *_halves_const(split[0]), split[1], *_halves_const(split[1]), split[2]])
        elif split is not None:
            parts = np.array(split)

    def is_better(a: jax.Array, best: jax.Array) -> jax.Array:
        dtype = best.dtype
        if relative:
            bound = best * jnp.asarray(rel_eps, dtype)
        else:
            t = jnp.asarray(threshold, dtype)
            bound = best - t if minimize else best + t
        plain = a < bound if minimize else a > bound  # torch's own arithmetic (bit for bit in float64)
        if dtype != np.float32 or parts is None:
            return plain

        def exact_test() -> jax.Array:
            exact, ok = _f32_better(a, best, parts, minimize=minimize, relative=relative)
            return jnp.where(ok, exact, plain)  # plain float32 handles +-inf, NaN and overflow alike

        # The float32 bound differs from torch's float64 one by at most ~2**-24 (|bound| + threshold),
        # so where ``a`` is farther from it than 2**-20 of the magnitudes involved (and everything is
        # finite), the plain test already gives the exact answer: the exact test runs only near a tie.
        # In a ``lax.scan`` over 10^6 updates this took the time from 112 ms to 11 ms (XLA:CPU, 2 cores);
        # under ``vmap`` both branches are computed, as before.
        scale = jnp.abs(a) + jnp.abs(best) + jnp.abs(bound) + jnp.asarray(0.0 if relative else thr, dtype)
        far = jnp.abs(a - bound) > jnp.asarray(_FAR, dtype) * scale + jnp.asarray(_TINY, dtype)
        if _base.is_concrete(far):  # eagerly, choose in Python: an eager lax.cond traces both branches
            return plain if bool(far) else exact_test()
        return jax.lax.cond(far, lambda: plain, exact_test)

    return is_better
