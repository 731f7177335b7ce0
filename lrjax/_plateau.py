"""``ReduceLROnPlateau``: torch's settings and its pure state machine, and the metrics it accepts.

One object, :class:`ReduceLROnPlateau`, holds torch's settings. Its state machine is
``init(base_lr)`` / ``update(state, metric)`` (one ``update`` is one torch ``scheduler.step(metric)``);
its optax shapes are built from it: :meth:`ReduceLROnPlateau.as_schedule` (an optax
``StatefulSchedule``) and :meth:`ReduceLROnPlateau.as_transform` (a ``GradientTransformationExtraArgs``),
both in :mod:`lrjax._plateau_optax`; schedules combine with it in :mod:`lrjax._plateau_compose`.
"""

from __future__ import annotations

import math
import numbers
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _base
from lrjax._base import ArrayLike
from lrjax._plateau_float32 import better_fn

_INT32_MAX = int(np.iinfo(np.int32).max)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# In float32, a reduction whose size exceeds eps by less than 4 float32 ulps of the lr is skipped.
_EPS_TIE = 2.0**-22

NOT_OPTAX = (
    "{what} is torch's ReduceLROnPlateau state machine ({calls}), not an optax GradientTransformation or "
    "learning rate. In optax.chain use lrjax.scale_by_plateau(base_lr, ...) or plateau.as_transform(base_lr); "
    "as the learning rate of optax.inject_hyperparams use plateau.as_schedule(base_lr)."
)


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


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------

_METRIC_TYPES = "a Python int or float, a NumPy or JAX integer or float scalar, or a 0-d array of one"


def as_metric(metric: Any, dtype: np.dtype, name: str = "metric") -> jax.Array:
    """``metric`` as a scalar of ``dtype``: the value torch's ``float(metric)`` gives, then rounded to ``dtype``.

    Concrete values are converted on the host, exactly: a Python int of any size, NumPy and JAX
    integers of every width (signed or unsigned) and floats of every width (float16, bfloat16,
    longdouble) become the float64 number ``float(metric)`` is, then the nearest number of
    ``dtype`` (float32 rounds, and beyond its range gives +-inf, as ``float32(metric)`` does).
    A traced metric (inside ``jit``) is cast with ``astype``, which is the same rounding for every
    dtype JAX holds. NaN and +-inf stay what they are.

    Raises:
        TypeError: for a bool, a string, a complex number, None or another non-real type.
        ValueError: for an array that is not 0-d, or an integer too large for a float64.
    """
    if _base.is_traced(metric):
        _check_metric_array(metric.shape, metric.dtype, metric, name)
        return metric.astype(dtype)
    if isinstance(metric, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number ({_METRIC_TYPES}), got the bool {bool(metric)}.")
    if isinstance(metric, numbers.Integral):  # Python int of any size, NumPy integers
        value = _int_to_float(int(metric), metric, name)
    elif isinstance(metric, (float, np.floating, numbers.Real)) and not isinstance(metric, (np.ndarray, jax.Array)):
        value = float(metric)
    elif isinstance(metric, (np.ndarray, jax.Array, np.generic)) or hasattr(metric, "__array__"):
        try:
            arr = np.asarray(metric)
        except Exception as e:  # noqa: BLE001 - e.g. a torch tensor that requires grad
            raise TypeError(f"{name} must be {_METRIC_TYPES}; converting {type(metric).__name__} failed: {e}") from e
        _check_metric_array(arr.shape, arr.dtype, metric, name)
        item = arr.item()
        value = _int_to_float(int(item), metric, name) if arr.dtype.kind in "iu" else float(item)
    else:
        hint = " (convert it with float())" if isinstance(metric, (str, bytes)) else ""
        raise TypeError(
            f"{name} must be a real number ({_METRIC_TYPES}), got {type(metric).__name__} {metric!r}{hint}."
        )
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, as float32(metric) gives
        return jnp.asarray(np.asarray(value, np.float64).astype(dtype))


def _int_to_float(value: int, metric: Any, name: str) -> float:
    try:
        return float(value)  # correctly rounded, as torch's float(metric)
    except OverflowError:
        raise ValueError(
            f"{name} {type(metric).__name__} with {len(str(abs(value)))} digits is too large for a float64 "
            "(torch's float(metric) raises OverflowError)."
        ) from None


def _check_metric_array(shape: tuple[int, ...], dtype: Any, metric: Any, name: str) -> None:
    if shape != ():
        raise ValueError(
            f"{name} must be a scalar (shape ()), got shape {shape}. Reduce it first (e.g. "
            "jnp.mean(loss)); to step many runs at once, jax.vmap the update over a batch of states."
        )
    kind = np.dtype(dtype).kind
    if kind not in "iuf" and np.dtype(dtype) != jnp.bfloat16:
        raise TypeError(f"{name} must be a real number (an integer or a float), got dtype {np.dtype(dtype)}.")


# ----------------------------------------------------------------------------------------------
# The settings and the state machine
# ----------------------------------------------------------------------------------------------


class ReduceLROnPlateau:
    """torch's ``ReduceLROnPlateau`` settings, as returned by :func:`reduce_lr_on_plateau`.

    * ``init(base_lr) -> PlateauState`` and ``update(state, metric) -> PlateauState``: torch's
      state machine, pure and jittable; one ``update`` is one torch ``scheduler.step(metric)``.
    * ``as_schedule(base_lr, accumulation_size=...)``: an optax ``StatefulSchedule`` for
      ``optax.inject_hyperparams`` (the lr is an injected hyperparameter).
    * ``as_transform(base_lr, accumulation_size=...)``: an optax ``GradientTransformationExtraArgs``
      for ``optax.chain`` that scales the updates by ``lr / base_lr``.
    * ``config``: ``{"name": "reduce_lr_on_plateau", **arguments}`` (what ``lrjax.to_config`` returns).

    It is none of optax's types itself: handed to ``optax.chain`` or used as a learning rate, it
    raises a TypeError that says which of the above to use.
    """

    is_plateau = True  # lrjax.chained_scheduler / sequential_lr reject it with torch's message

    def __init__(
        self,
        init: Callable[[ArrayLike | Sequence[float]], PlateauState],
        update: Callable[[PlateauState, Any], PlateauState],
        config: Mapping[str, Any],
    ):
        self._init, self._update, self.config = init, update, config

    def init(self, base_lr: ArrayLike | Sequence[float], *args: Any) -> PlateauState:
        """The state after construction: ``base_lr`` (a scalar or one value per parameter group)."""
        if args or isinstance(base_lr, Mapping):
            raise TypeError(
                NOT_OPTAX.format(what="lrjax.reduce_lr_on_plateau(...)", calls="init(base_lr), update(state, metric)")
                + f" init() got {type(base_lr).__name__}{' and more arguments' if args else ''}."
            )
        return self._init(base_lr)

    def update(self, state: PlateauState, metric: Any, *args: Any, **kwargs: Any) -> PlateauState:
        """One torch ``scheduler.step(metric)``: the state after ``metric`` (see :func:`as_metric`)."""
        if args or kwargs or not isinstance(state, PlateauState):
            got = type(state).__name__ if not (args or kwargs) else "more arguments"
            raise TypeError(
                NOT_OPTAX.format(what="lrjax.reduce_lr_on_plateau(...)", calls="init(base_lr), update(state, metric)")
                + f" update() takes a PlateauState and a metric, got {got}."
            )
        return self._update(state, metric)

    def as_schedule(self, base_lr: ArrayLike | Sequence[float], *, accumulation_size: int | None = 1):
        """This plateau as an optax ``StatefulSchedule`` starting at ``base_lr``: see :class:`lrjax.StatefulPlateau`."""
        from lrjax import _plateau_compose

        return _plateau_compose.alone(self, base_lr).as_schedule(accumulation_size=accumulation_size)

    def as_transform(self, base_lr: ArrayLike, *, accumulation_size: int | None = 1):
        """This plateau as an optax transformation scaling updates by ``lr / base_lr``: see
        :func:`lrjax.scale_by_plateau`."""
        from lrjax import _plateau_compose

        return _plateau_compose.alone(self, base_lr).as_transform(base_lr, accumulation_size=accumulation_size)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_base.fmt(v)}" for k, v in self.config.items() if k != "name")
        return f"lrjax.reduce_lr_on_plateau({args})"

    def _not_a_number(self, *_: Any) -> Any:
        raise TypeError(NOT_OPTAX.format(what=repr(self), calls="init(base_lr), update(state, metric)"))

    # optax uses a learning rate as a number (``-1 * learning_rate``): say what to pass instead.
    __neg__ = __pos__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __float__ = _not_a_number


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
    batch of states (many runs at once). The same object gives optax's shapes:
    ``plateau.as_schedule(base_lr)`` (a ``StatefulSchedule`` for ``optax.inject_hyperparams``) and
    ``plateau.as_transform(base_lr)`` (for ``optax.chain``; also :func:`lrjax.scale_by_plateau`),
    and combines with schedules: :func:`sequential_plateau` (e.g. a warm-up, then plateau
    reduction) and :func:`chained_plateau` (a schedule times the plateau's factor), which torch
    cannot do.

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
        A :class:`ReduceLROnPlateau` with ``is_plateau = True``.

    Raises:
        ValueError: torch's messages for ``factor >= 1`` (``Factor should be < 1.0.``), an unknown
            ``mode`` (``mode mean is unknown!``) or ``threshold_mode`` (``threshold mode x is
            unknown!``) and, from ``init``, a ``min_lr`` list whose length differs from the number
            of groups (``expected 1 min_lrs, got 2``); also, unlike torch, for a negative
            ``factor``, ``patience``, ``cooldown``, ``threshold``, ``eps`` or ``min_lr``, a
            non-integer ``patience``/``cooldown``, and non-finite values. ``update`` raises
            ValueError for a metric that is not a scalar (its shape is known when tracing) and
            TypeError for one that is not a real number (a bool, a string, a complex number).

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
        Metrics. torch calls ``float(metric)``; lrjax takes the same float64 value from a Python
        int of any size, NumPy/JAX integers of every width (unsigned too), floats of every width
        (float16, bfloat16) and 0-d arrays, converting concrete values on the host, exactly (see
        :func:`as_metric`); in float32 that value is then rounded to float32. Inside ``jax.jit``
        JAX converts the arguments before lrjax sees them: with ``jax_enable_x64`` off it wraps a
        NumPy int64 argument to int32, and rejects a Python int above 2**31 - 1, so pass such
        metrics as floats, or to an ``update`` that is not jitted.

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

        In ``optax.chain``, fed the validation loss after each epoch (torch's loop):

        >>> import optax
        >>> plateau_tx = plateau.as_transform(1e-3, accumulation_size=None)
        >>> tx = optax.chain(optax.sgd(1e-3), plateau_tx)
        >>> opt_state = tx.init({"w": jnp.zeros(2)})
        >>> for val_loss in [1.0, 1.0, 1.0]:
        ...     opt_state = lrjax.plateau_step(opt_state, val_loss)  # torch: scheduler.step(val_loss)
        >>> round(float(lrjax.plateau_lr(opt_state)), 6)
        0.0005
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
    config = types.MappingProxyType(
        {
            "name": "reduce_lr_on_plateau",
            "mode": mode,
            "factor": factor,
            "patience": patience,
            "threshold": threshold,
            "threshold_mode": threshold_mode,
            "cooldown": cooldown,
            "min_lr": min_lr,
            "eps": eps,
        }
    )
    minimize = mode == "min"
    is_better = better_fn(minimize, threshold_mode == "rel", threshold)
    # Past 2**31 - 2 bad epochs (int32) torch would still be waiting; so are we, in practice forever.
    patience_c = min(patience, _INT32_MAX - 1)
    cooldown_c = min(cooldown, _INT32_MAX)
    mode_worse = math.inf if minimize else -math.inf

    def init(base_lr: ArrayLike | Sequence[float]) -> PlateauState:
        base = _base.hyper(base_lr, "base_lr")
        if jnp.ndim(base) > 1:
            raise ValueError(f"base_lr must be a scalar or one value per parameter group, got shape {jnp.shape(base)}")
        dtype = _base.float_dtype()
        lr = jnp.asarray(base, dtype=dtype)
        _min_lr_for(min_lr, lr.shape, dtype)
        zero = jnp.zeros((), jnp.int32)
        return PlateauState(
            lr=lr, best=jnp.asarray(mode_worse, dtype), num_bad_epochs=zero, cooldown_counter=zero, num_updates=zero
        )

    def update(state: PlateauState, metric: Any) -> PlateauState:
        lr, best = jnp.asarray(state.lr), jnp.asarray(state.best)
        dtype = best.dtype
        m = as_metric(metric, dtype)
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
# from_torch
# ----------------------------------------------------------------------------------------------


def _from_torch_reduce_lr_on_plateau(scheduler: Any, total_steps: int | None = None):
    """What ``lrjax.from_torch(torch_reduce_lr_on_plateau)`` returns: a :class:`lrjax.StatefulPlateau`
    fed by :func:`lrjax.plateau_step` (torch's ``scheduler.step(metric)``), whose ``init()`` is the
    torch object's state now: the optimizer's lr per group, ``best``, ``num_bad_epochs``,
    ``cooldown_counter`` and ``last_epoch``. ``total_steps`` is not used (the lr depends on the metrics).
    ``.plateau`` is the :class:`ReduceLROnPlateau` with torch's settings.
    """
    del total_steps
    from lrjax import _plateau_compose

    def floats(values):
        values = [float(v) for v in values]  # float() also reads 0-d tensors (tensor lrs)
        return values[0] if len(values) == 1 else values

    min_lr = scheduler.default_min_lr if scheduler.default_min_lr is not None else floats(scheduler.min_lrs)
    plateau = reduce_lr_on_plateau(
        mode=scheduler.mode,
        factor=scheduler.factor,
        patience=scheduler.patience,
        threshold=scheduler.threshold,
        threshold_mode=scheduler.threshold_mode,
        cooldown=scheduler.cooldown,
        min_lr=min_lr,
        eps=scheduler.eps,
    )
    lrs = floats(g["lr"] for g in scheduler.optimizer.param_groups)

    def now() -> PlateauState:
        dtype = _base.float_dtype()
        return plateau.init(lrs)._replace(
            best=as_metric(float(scheduler_best), dtype, "best"),
            num_bad_epochs=jnp.asarray(min(num_bad_epochs, _INT32_MAX), jnp.int32),
            cooldown_counter=jnp.asarray(min(cooldown_counter, _INT32_MAX), jnp.int32),
            num_updates=jnp.asarray(min(max(last_epoch, 0), _INT32_MAX), jnp.int32),
        )

    scheduler_best = float(scheduler.best)
    num_bad_epochs, cooldown_counter = int(scheduler.num_bad_epochs), int(scheduler.cooldown_counter)
    last_epoch = int(scheduler.last_epoch)
    return _plateau_compose.PlateauSchedule(
        init=now, update=lambda s, m, step: plateau.update(s, m), lr=lambda s, step: s.lr, plateau=plateau
    ).as_schedule(accumulation_size=None)
