"""``ReduceLROnPlateau`` as a pure state machine, and its composition with schedules."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _base
from lrjax._base import ArrayLike, Schedule

_INT32_MAX = int(np.iinfo(np.int32).max)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# A float32 value with its low 12 significand bits cleared keeps 12 significant bits (implicit bit
# included); the rest is another 12-bit value, so products of two halves are exact in float32.
_HIGH_BITS = np.uint32(0xFFFFF000)
# In float32, a reduction whose size exceeds eps by less than 4 float32 ulps of the lr is skipped.
_EPS_TIE = 2.0**-22
# is_better skips the exact float32 comparison when the metric is farther than this (relative to the
# magnitudes involved, plus an absolute floor) from the float32 bound: 16x the bound's worst error.
_FAR = 2.0**-20
_TINY = 2.0**-60


class PlateauState(NamedTuple):
    """The state of :func:`reduce_lr_on_plateau`: torch's scheduler attributes as arrays.

    A pytree, so it goes through ``jax.jit``, ``jax.lax.scan``, ``jax.vmap`` (a batch of runs),
    ``flax.serialization`` and orbax checkpoints. The float fields have the dtype of JAX's floats
    at ``init`` (float32, or float64 under ``jax_enable_x64``).
    """

    lr: jax.Array  # shape=() or (G,), float: the lr of each parameter group (torch's param_group["lr"])
    best: jax.Array  # shape=(), float: best metric so far; +inf (mode "min") or -inf ("max") before any
    num_bad_epochs: jax.Array  # shape=(), int32: metrics in a row without improvement (outside cooldown)
    cooldown_counter: jax.Array  # shape=(), int32: updates left in the cooldown after a reduction
    num_updates: jax.Array  # shape=(), int32: number of update calls (torch's last_epoch), saturating


class ReduceLROnPlateau(NamedTuple):
    """What :func:`reduce_lr_on_plateau` returns: pure ``init`` and ``update`` functions, like an
    ``optax.GradientTransformation``, and the validated arguments (``config``)."""

    init: Callable[[ArrayLike], PlateauState]
    """``init(base_lr) -> PlateauState``; ``base_lr`` is a scalar or one value per parameter group."""
    update: Callable[[PlateauState, ArrayLike], PlateauState]
    """``update(state, metric) -> PlateauState``: one call is one torch ``scheduler.step(metric)``."""
    config: Mapping[str, Any]
    """``{"name": "reduce_lr_on_plateau", **arguments}`` (what ``lrjax.to_config`` returns)."""

    is_plateau = True  # lrjax.chained_scheduler / sequential_lr reject it with torch's message

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_base.fmt(v)}" for k, v in self.config.items() if k != "name")
        return f"lrjax.reduce_lr_on_plateau({args})"


class PlateauSchedule(NamedTuple):
    """A schedule combined with plateau reduction (:func:`sequential_plateau`, :func:`chained_plateau`).

    ``lr(state, step)`` is the learning rate for optimizer step ``step`` (0 for the first update);
    ``update(state, metric, step)`` feeds a metric measured after ``step`` optimizer updates.
    """

    init: Callable[[], PlateauState]
    update: Callable[[PlateauState, ArrayLike, ArrayLike], PlateauState]
    lr: Callable[[PlateauState, ArrayLike], jax.Array]

    is_plateau = True


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
# reduce_lr_on_plateau
# ----------------------------------------------------------------------------------------------


def _metric(metric: ArrayLike, dtype: np.dtype) -> jax.Array:
    m = jnp.asarray(metric)
    if m.shape != ():
        raise ValueError(
            f"metric must be a scalar (shape ()), got shape {m.shape}. Reduce it first (e.g. "
            "jnp.mean(loss)); to step many runs at once, jax.vmap the update over a batch of states."
        )
    if not (jnp.issubdtype(m.dtype, jnp.floating) or jnp.issubdtype(m.dtype, jnp.integer)):
        raise TypeError(f"metric must be a real number (an integer or a float), got dtype {m.dtype}.")
    return m.astype(dtype)


def _check_factor(factor: Any) -> _base.Hyper:
    if not _base.is_traced(factor) and np.ndim(factor) == 0:
        try:
            too_big = float(factor) >= 1.0  # torch's test, so factor=inf gets torch's message too
        except (TypeError, ValueError):
            too_big = False
        if too_big:
            raise ValueError("Factor should be < 1.0.")
    return _base.hyper(factor, "factor", groups=False)


def _min_lr_for(min_lr: _base.Hyper, lr_shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
    """``min_lr`` shaped like the lr (``()`` or ``(G,)``); torch's message if its length is wrong."""
    value = jnp.asarray(min_lr, dtype=dtype)
    if value.ndim == 0:
        return value
    groups = lr_shape[0] if lr_shape else 1
    if value.shape[0] != groups:
        raise ValueError(f"expected {groups} min_lrs, got {value.shape[0]}")
    return value.reshape(lr_shape)


def reduce_lr_on_plateau(
    mode: str = "min",
    factor: ArrayLike = 0.1,
    patience: int = 10,
    threshold: ArrayLike = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: ArrayLike | list[float] = 0.0,
    eps: ArrayLike = 1e-8,
) -> ReduceLROnPlateau:
    r"""Reduces the learning rate by ``factor`` when a metric has stopped improving.

    Port of `torch.optim.lr_scheduler.ReduceLROnPlateau
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ReduceLROnPlateau.html>`_
    as a pure state machine: ``state = plateau.init(base_lr)``, then
    ``state = plateau.update(state, metric)`` once per torch ``scheduler.step(metric)``.
    ``state.lr`` is then the lr torch's optimizer holds. With best metric :math:`b`, threshold
    :math:`\theta`, ``factor`` :math:`\gamma`, a metric :math:`m` improves on :math:`b` if

    .. math::
        m < b (1 - \theta) \;(\text{min, rel}),\quad m < b - \theta \;(\text{min, abs}),\quad
        m > b (1 + \theta) \;(\text{max, rel}),\quad m > b + \theta \;(\text{max, abs}).

    An improvement sets :math:`b \leftarrow m` and zeroes ``num_bad_epochs``; any other metric,
    NaN included, counts one bad epoch. During a cooldown, bad epochs are zeroed. When
    ``num_bad_epochs > patience``, each group's lr becomes
    :math:`\eta' = \max(\gamma\,\eta, \eta_{\min})` if :math:`\eta - \eta' > \epsilon` (else it stays),
    and the cooldown starts and the bad epochs reset either way.

    ``update`` is pure and jittable; it runs inside ``jax.lax.scan`` and under ``jax.vmap`` over a
    batch of states (many runs at once). Composition with schedules: :func:`sequential_plateau`
    (e.g. a warm-up, then plateau reduction) and :func:`chained_plateau` (a schedule times the
    plateau's factor), which torch cannot do.

    Args:
        mode: ``"min"`` (lower metric is better) or ``"max"``.
        factor: the lr is multiplied by it at a reduction, ``0 <= factor < 1``.
        patience: number of bad epochs tolerated; the lr is reduced at the ``patience + 1``-th in a
            row. An integer ``>= 0``.
        threshold: how much better than the best a metric must be to count, ``>= 0``.
        threshold_mode: ``"rel"`` (relative to the best) or ``"abs"``.
        cooldown: number of updates after a reduction during which bad epochs are not counted,
            ``>= 0``.
        min_lr: lower bound of the lr, ``>= 0``; a scalar or one value per parameter group
            (checked against ``base_lr`` at ``init``).
        eps: a reduction smaller than ``eps`` is skipped, ``>= 0``.

    Returns:
        A :class:`ReduceLROnPlateau` ``(init, update, config)`` with ``is_plateau = True``.

    Raises:
        ValueError: torch's messages for ``factor >= 1`` (``Factor should be < 1.0.``), an unknown
            ``mode`` (``mode mean is unknown!``) or ``threshold_mode`` (``threshold mode x is
            unknown!``) and, from ``init``, a ``min_lr`` list whose length differs from the number
            of groups (``expected 1 min_lrs, got 2``); also, unlike torch, for a negative
            ``factor``, ``patience``, ``cooldown``, ``threshold``, ``eps`` or ``min_lr``, a
            non-integer ``patience``/``cooldown``, and non-finite values. ``update`` raises
            ValueError for a metric that is not a scalar (its shape is known when tracing).

    .. note::
        torch's quirks, reproduced: the lr is reduced when ``num_bad_epochs > patience``, not
        ``==`` (``optax.contrib.reduce_on_plateau`` reduces one bad epoch earlier, scales updates
        rather than the lr, and has no ``eps``). NaN is never better, so each NaN is a bad epoch
        and the best stays. In mode ``"min"``, +inf is bad, and -inf becomes the best, after which
        nothing improves and the lr decays every ``patience + 1`` updates. In ``rel`` mode a
        negative best makes the threshold lenient: ``best * (1 - threshold)`` lies above the best,
        so a slightly *worse* metric counts as an improvement. ``factor=0`` reduces straight to
        ``min_lr``; a ``base_lr`` below ``min_lr`` is never raised to it. The counters reset even
        when ``eps`` skips a reduction; a skipped group's lr stays where it is from then on.

    .. note::
        Precision. In float64 (``jax_enable_x64``) every comparison and lr is computed as torch
        computes it in Python floats, bit for bit. In float32 the metric is a float32 number (what
        torch gets from ``float(loss)`` of a float32 tensor), and the improvement test is still
        torch's float64 test, evaluated exactly with float32 operations (torch's float64 constant
        split into float32 parts, exact products, and the sign of the sum found with error-free
        transformations): after a best of 1.0, the metric 0.9999 (float32 0.99989998) improves
        with the default ``threshold=1e-4`` in torch and in lrjax, but not with a naive
        ``metric < best * float32(1 - 1e-4)``. This holds for all finite metrics and bests, except
        where ``best * (1 -/+ threshold)`` overflows float32; there, and for a traced
        ``threshold``, plain float32 arithmetic is used. The float32 lr is the float32 product
        ``lr * factor`` (a few float32 ulps from torch's float64 value after several reductions),
        and a reduction whose size exceeds ``eps`` by less than 4 float32 ulps of the lr (a
        decimal tie such as ``lr=1e-6, factor=0.99, eps=1e-8``, which torch's float64 rounding
        decides either way) is skipped. XLA on CPU flushes subnormal numbers to zero: metrics and
        lrs below ``1.2e-38`` (float32) or ``2.2e-308`` (float64) in magnitude behave as 0.

    Examples:
        >>> import jax, lrjax
        >>> plateau = lrjax.reduce_lr_on_plateau(factor=0.5, patience=1)
        >>> state = plateau.init(1.0)
        >>> lrs = []
        >>> for loss in [1.0, 0.9, 0.95, 0.92, 0.91, 0.5, float("nan"), float("nan")]:
        ...     state = plateau.update(state, loss)
        ...     lrs.append(float(state.lr))
        >>> lrs
        [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]
        >>> float(state.best), int(state.num_bad_epochs)
        (0.5, 0)

        Inside ``lax.scan`` (one compiled loop over all the metrics):

        >>> import jax.numpy as jnp
        >>> def step(state, metric):
        ...     state = plateau.update(state, metric)
        ...     return state, state.lr
        >>> final, lrs = jax.lax.scan(step, plateau.init(1.0), jnp.array([1.0, 1.0, 1.0, 1.0, 1.0]))
        >>> lrs.tolist()
        [1.0, 1.0, 0.5, 0.5, 0.25]

        Driving an optax optimizer from a jitted train step and a jitted eval step, and reading
        the lr for logging:

        >>> import optax
        >>> loss_fn = lambda p: jnp.sum(p**2)
        >>> tx = optax.inject_hyperparams(optax.adam)(learning_rate=1.0)
        >>> plateau = lrjax.reduce_lr_on_plateau(factor=0.5, patience=1)
        >>> params = jnp.array([2.0])
        >>> state = plateau.init(1.0)
        >>> opt_state = tx.init(params)
        >>> opt_state.hyperparams["learning_rate"] = state.lr  # same dtype: no retrace
        >>> @jax.jit
        ... def train_step(params, opt_state, state):
        ...     opt_state.hyperparams["learning_rate"] = state.lr  # the plateau's lr drives adam
        ...     grads = jax.grad(loss_fn)(params)
        ...     updates, opt_state = tx.update(grads, opt_state, params)
        ...     return optax.apply_updates(params, updates), opt_state
        >>> @jax.jit
        ... def eval_step(params, state):
        ...     val_loss = loss_fn(params)
        ...     return plateau.update(state, val_loss), val_loss
        >>> with jax.numpy_dtype_promotion("standard"):  # optax.adam's code needs it if yours is strict
        ...     for epoch in range(6):
        ...         params, opt_state = train_step(params, opt_state, state)
        ...         state, val_loss = eval_step(params, state)
        ...         print(epoch, round(float(val_loss), 4), float(state.lr))  # the lr of the next epoch
        0 1.0 1.0
        1 0.0046 1.0
        2 0.4513 1.0
        3 1.1765 0.5
        4 1.2719 0.5
        5 1.1172 0.25
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode {mode} is unknown!")
    if threshold_mode not in ("rel", "abs"):
        raise ValueError(f"threshold mode {threshold_mode} is unknown!")
    factor = _check_factor(factor)
    patience = _base.integer(patience, "patience", minimum=0)
    cooldown = _base.integer(cooldown, "cooldown", minimum=0)
    threshold = _base.hyper(threshold, "threshold", high=_FLOAT32_MAX, groups=False)
    min_lr = _base.hyper(min_lr, "min_lr")
    eps = _base.hyper(eps, "eps", groups=False)
    config = types.MappingProxyType({
        "name": "reduce_lr_on_plateau", "mode": mode, "factor": factor, "patience": patience,
        "threshold": threshold, "threshold_mode": threshold_mode, "cooldown": cooldown,
        "min_lr": min_lr, "eps": eps,
    })
    minimize, relative = mode == "min", threshold_mode == "rel"
    # Past 2**31 - 2 bad epochs (int32) torch would still be waiting; so are we, in practice forever.
    patience_c = min(patience, _INT32_MAX - 1)
    cooldown_c = min(cooldown, _INT32_MAX)
    mode_worse = np.inf if minimize else -np.inf

    parts = None  # float32 pieces of torch's float64 constant, for the exact float32 comparison
    if _base.is_traced(threshold):
        rel_eps = 1.0 - threshold if minimize else threshold + 1.0
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

    def init(base_lr: ArrayLike) -> PlateauState:
        base = _base.hyper(base_lr, "base_lr")
        if jnp.ndim(base) > 1:
            raise ValueError(f"base_lr must be a scalar or one value per parameter group, got shape {jnp.shape(base)}")
        dtype = _base.float_dtype()
        lr = jnp.asarray(base, dtype=dtype)
        _min_lr_for(min_lr, lr.shape, dtype)
        zero = jnp.zeros((), jnp.int32)
        return PlateauState(lr=lr, best=jnp.asarray(mode_worse, dtype), num_bad_epochs=zero,
                            cooldown_counter=zero, num_updates=zero)

    def update(state: PlateauState, metric: ArrayLike) -> PlateauState:
        lr, best = jnp.asarray(state.lr), jnp.asarray(state.best)
        dtype = best.dtype
        m = _metric(metric, dtype)
        better = is_better(m, best)
        best = jnp.where(better, m, best)
        bad = jnp.where(better, 0, jnp.asarray(state.num_bad_epochs) + 1)
        counter = jnp.asarray(state.cooldown_counter)
        in_cooldown = counter > 0
        counter = jnp.where(in_cooldown, counter - 1, counter)
        bad = jnp.where(in_cooldown, 0, bad)  # ignore any bad epochs in cooldown
        reduce = bad > patience_c
        new_lr = jnp.maximum(lr * jnp.asarray(factor, dtype), _min_lr_for(min_lr, lr.shape, dtype))
        eps_ = jnp.asarray(eps, dtype)
        if dtype == np.float32:  # see the precision note: near-ties with eps count as too small
            large_enough = (lr - new_lr) - eps_ > jnp.asarray(_EPS_TIE, dtype) * lr
        else:
            large_enough = lr - new_lr > eps_  # torch's test, bit for bit
        lr = jnp.where(reduce & large_enough, new_lr, lr)
        n = jnp.asarray(state.num_updates)
        return PlateauState(
            lr=lr,
            best=best,
            num_bad_epochs=jnp.where(reduce, 0, bad),
            cooldown_counter=jnp.where(reduce, cooldown_c, counter),
            num_updates=n + jnp.where(n < _INT32_MAX, 1, 0).astype(n.dtype),
        )

    return ReduceLROnPlateau(init=init, update=update, config=config)


# ----------------------------------------------------------------------------------------------
# Composition with schedules
# ----------------------------------------------------------------------------------------------


def _check_plateau(plateau: Any) -> ReduceLROnPlateau:
    if not isinstance(plateau, ReduceLROnPlateau):
        raise ValueError(f"plateau must come from lrjax.reduce_lr_on_plateau(...), got {plateau!r}")
    return plateau


def _check_schedule(schedule: Any) -> Schedule:
    if getattr(schedule, "is_plateau", False) or not callable(schedule):
        raise ValueError(f"schedule must be a function step -> lr (e.g. lrjax.linear_lr(...)), got {schedule!r}")
    return schedule


def _before(t: jax.Array, milestone: int) -> jax.Array:
    """``t < milestone`` for an integer or float step ``t``, also when ``milestone`` overflows its dtype."""
    if _base.is_int(t) and milestone > jnp.iinfo(t.dtype).max:
        return jnp.ones(t.shape, jnp.bool_)
    return t < (milestone if _base.is_int(t) else jnp.asarray(milestone, t.dtype))


def sequential_plateau(schedule: Schedule, plateau: ReduceLROnPlateau, milestone: int) -> PlateauSchedule:
    r"""Runs ``schedule`` for the first ``milestone`` optimizer steps, then plateau reduction.

    What torch's ``SequentialLR([schedule, ReduceLROnPlateau], milestones=[milestone])`` would do
    if torch allowed it (it raises): typically a warm-up followed by reduction on plateau.

    .. math::
        \eta(t) = \begin{cases} \text{schedule}(t) & t < \text{milestone} \\
        \text{state.lr} & t \ge \text{milestone} \end{cases}

    * ``init()`` starts the plateau from ``schedule(milestone)``, where the schedule would be at
      the switch (``base_lr`` at the end of a ``linear_lr`` warm-up).
    * ``update(state, metric, step)`` takes a metric measured after ``step`` optimizer updates. It
      counts only if the plateau's lr was used for at least one of them (``step > milestone``);
      before, the state is returned unchanged (metrics from the warm-up are ignored).
    * ``lr(state, step)``: the lr for optimizer step ``step`` (0 for the first update), e.g. the
      ``count`` of an ``optax.inject_hyperparams`` state.

    Args:
        schedule: any function ``step -> lr`` (an lrjax or optax schedule).
        plateau: from :func:`reduce_lr_on_plateau`; its ``min_lr`` list, if any, must have one
            value per group of ``schedule``.
        milestone: the first optimizer step that uses the plateau's lr, an integer ``>= 0``.

    Returns:
        A :class:`PlateauSchedule` ``(init, update, lr)``; its state is a :class:`PlateauState`.

    Raises:
        ValueError: if ``plateau`` is not a plateau, ``schedule`` not a function, or ``milestone``
            not an integer ``>= 0``.

    Examples:
        >>> import lrjax
        >>> warmup = lrjax.linear_lr(0.1, start_factor=0.25, total_iters=3)
        >>> sched = lrjax.sequential_plateau(warmup, lrjax.reduce_lr_on_plateau(patience=0), milestone=3)
        >>> state = sched.init()
        >>> lrs = []
        >>> for step in range(6):  # one metric per step here; usually one per epoch
        ...     lrs.append(round(float(sched.lr(state, step)), 6))
        ...     state = sched.update(state, 1.0, step + 1)  # a metric that never improves
        >>> lrs
        [0.025, 0.05, 0.075, 0.1, 0.1, 0.01]
    """
    schedule = _check_schedule(schedule)
    plateau = _check_plateau(plateau)
    milestone = _base.integer(milestone, "milestone", minimum=0)

    def init() -> PlateauState:
        return plateau.init(schedule(milestone))

    def update(state: PlateauState, metric: ArrayLike, step: ArrayLike) -> PlateauState:
        new = plateau.update(state, metric)
        counts = ~_before(jnp.asarray(step), milestone + 1)
        return jax.tree.map(lambda n, o: jnp.where(counts, n, o), new, state)

    def lr(state: PlateauState, step: ArrayLike) -> jax.Array:
        t = jnp.asarray(step)
        return jnp.where(_before(t, milestone), schedule(t), state.lr)

    return PlateauSchedule(init=init, update=update, lr=lr)


def chained_plateau(schedule: Schedule, plateau: ReduceLROnPlateau) -> PlateauSchedule:
    r"""Multiplies ``schedule`` by a factor that plateau reduction lowers: ``schedule(t) * state.lr``.

    What torch's ``ChainedScheduler([schedule, ReduceLROnPlateau])`` would do with a
    multiplicative schedule if torch allowed it (it raises): e.g. a cosine decay that is also cut
    by 10 whenever the validation loss stalls.

    .. math:: \eta(t) = \text{schedule}(t) \cdot s, \qquad s = \text{state.lr}

    The plateau runs on the multiplier :math:`s`, which starts at 1: ``init()`` is
    ``plateau.init(1.0)`` (one 1.0 per group of ``schedule``). So ``min_lr`` and ``eps`` apply to
    the multiplier: ``min_lr=1e-2`` with ``factor=0.1`` allows two reductions.

    * ``update(state, metric, step)``: one torch ``step(metric)``; ``step`` is accepted so that
      both combinators are interchangeable, and ignored.
    * ``lr(state, step)``: the lr for optimizer step ``step``.

    Args:
        schedule: any function ``step -> lr`` (an lrjax or optax schedule).
        plateau: from :func:`reduce_lr_on_plateau`.

    Returns:
        A :class:`PlateauSchedule` ``(init, update, lr)``; its state is a :class:`PlateauState`
        whose ``lr`` field is the multiplier.

    Raises:
        ValueError: if ``plateau`` is not a plateau or ``schedule`` not a function.

    Examples:
        >>> import lrjax
        >>> cosine = lrjax.cosine_annealing_lr(0.1, T_max=8)
        >>> sched = lrjax.chained_plateau(cosine, lrjax.reduce_lr_on_plateau(factor=0.5, patience=0))
        >>> state = sched.init()
        >>> lrs = []
        >>> for step in range(4):
        ...     lrs.append(round(float(sched.lr(state, step)), 6))
        ...     state = sched.update(state, 1.0, step + 1)
        >>> lrs  # cosine(t) * [1, 1, 0.5, 0.25]
        [0.1, 0.096194, 0.042678, 0.017284]
    """
    schedule = _check_schedule(schedule)
    plateau = _check_plateau(plateau)

    def init() -> PlateauState:
        return plateau.init(jnp.ones(jnp.shape(schedule(0)), _base.float_dtype()))

    def update(state: PlateauState, metric: ArrayLike, step: ArrayLike) -> PlateauState:
        del step
        return plateau.update(state, metric)

    def lr(state: PlateauState, step: ArrayLike) -> jax.Array:
        value = jnp.asarray(schedule(step))
        return value * jnp.asarray(state.lr).astype(value.dtype)

    return PlateauSchedule(init=init, update=update, lr=lr)
