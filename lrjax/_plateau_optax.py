r"""Plateau reduction in optax's shapes: a ``StatefulSchedule`` and a ``GradientTransformationExtraArgs``.

Both run a :class:`lrjax.PlateauSchedule` (a plateau alone, :func:`lrjax.sequential_plateau`,
:func:`lrjax.chained_plateau`) on optax's update counter, with torch's semantics:

* :class:`StatefulPlateau` (``plateau.as_schedule(base_lr)``): the learning rate of
  ``optax.inject_hyperparams``; readable for logging in ``opt_state.hyperparams``, beside any other
  injected hyperparameter (a cycled momentum).
* :class:`PlateauTransform` (:func:`scale_by_plateau`, ``plateau.as_transform(base_lr)``): for
  ``optax.chain(optax.adam(base_lr), ...)``; it scales the updates by ``lr / base_lr``.

Two ways to give the plateau its metric, one per torch loop:

* ``accumulation_size=N``: every update takes ``value=`` (optax's extra argument, the loss of the
  batch); the plateau steps once on the mean of every ``N`` values. torch's loop
  ``total += loss.item(); optimizer.step()`` over an epoch of ``N`` batches, then
  ``scheduler.step(total / N)``.
* ``accumulation_size=None``: updates take no value; :func:`plateau_step` (``opt_state =
  lrjax.plateau_step(opt_state, val_loss)``) steps every plateau in an optimizer state once with
  a metric computed outside the train step. torch's usual loop: ``scheduler.step(val_loss)``
  after each epoch's evaluation.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _base
from lrjax._base import ArrayLike
from lrjax._plateau import PlateauState, as_metric, reduce_lr_on_plateau
from lrjax._plateau_compose import PlateauSchedule
from lrjax._plateau_float32 import _two_sum

_INT32_MAX = int(np.iinfo(np.int32).max)


class StatefulPlateauState(NamedTuple):
    """The optax state of a :class:`StatefulPlateau` or :class:`PlateauTransform`.

    Each :class:`StatefulPlateau` makes its states of its own subclass (same name and fields), so
    :func:`plateau_step` finds them in any optimizer state and knows whose they are; the class is
    part of the pytree structure, so restore checkpoints into the structure of ``tx.init(params)``.
    """

    # shape=(), int32: optimizer updates so far (saturating), the step of the next lr. Like optax's
    # ``count`` fields it shadows tuple.count, which pyright reads as an incompatible method override.
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]
    value_sum: jax.Array  # shape=(), float: sum of the values accumulated since the plateau last stepped
    value_error: jax.Array  # shape=(), float: rounding error of value_sum (float32 only; 0 in float64)
    num_values: jax.Array  # shape=(), int32: number of values accumulated since the plateau last stepped
    plateau: Any  # the PlateauSchedule's state (a PlateauState): lr, best, counters

    def __reduce__(self):  # pickles as the base class (detached from its plateau; see plateau_step)
        return StatefulPlateauState, tuple(self)

    def __copy__(self):  # copies keep their plateau
        return type(self)(*self)

    def __deepcopy__(self, memo):
        return type(self)(*copy.deepcopy(tuple(self), memo))


def _safe_increment(n: jax.Array) -> jax.Array:
    return n + jnp.where(n < _INT32_MAX, 1, 0).astype(n.dtype)


class StatefulPlateau:
    r"""A plateau as an optax ``StatefulSchedule``: ``optax.inject_hyperparams(optax.adam)(learning_rate=...)``.

    Made by ``plateau.as_schedule(base_lr, accumulation_size=...)`` (a plateau alone) or
    ``plateau_schedule.as_schedule(accumulation_size=...)`` (:func:`lrjax.sequential_plateau`,
    :func:`lrjax.chained_plateau`). optax's protocol:

    * ``init() -> StatefulPlateauState``;
    * ``__call__(state, **extra_args) -> lr``: the lr of the next update, ``source.lr(plateau state,
      count)``;
    * ``update(state, *, value=None, **extra_args)``: after an update. With ``accumulation_size=N``
      ``value`` is added to a running sum and every ``N``-th call steps the plateau once with the
      mean (``source.update(plateau state, mean, count)``); with ``None`` ``value`` is not read.

    ``inject_hyperparams`` calls the schedule before ``update``, so an update uses the lr the
    plateau had before that update's value, as torch's optimizer uses the lr of the previous
    ``scheduler.step``. ``opt_state.hyperparams["learning_rate"]`` is the lr of the latest update
    (the plateau may have stepped after it; :func:`plateau_step` refreshes it).

    Attributes:
        source: the :class:`lrjax.PlateauSchedule` it runs.
        plateau: the :class:`lrjax.ReduceLROnPlateau` inside (torch's settings), or None.
        accumulation_size: ``N``, or None (metrics come from :func:`plateau_step`).
    """

    def __init__(self, source: PlateauSchedule, accumulation_size: int | None = 1):
        if not isinstance(source, PlateauSchedule):
            raise ValueError(f"source must be an lrjax.PlateauSchedule, got {source!r}")
        if accumulation_size is not None:
            accumulation_size = _base.integer(
                accumulation_size,
                "accumulation_size",
                minimum=1,
                message=f"accumulation_size must be an integer >= 1 or None, got {accumulation_size!r}",
            )
        self.source = source
        self.plateau = source.plateau
        self.accumulation_size = accumulation_size
        # This schedule's own state type: plateau_step finds its states by it.
        self.State = type(
            "StatefulPlateauState", (StatefulPlateauState,), {"__slots__": (), "_owner": self, "__module__": __name__}
        )

    # --- optax's StatefulSchedule protocol ---

    def init(self) -> StatefulPlateauState:
        dtype = _base.float_dtype()
        zero_f, zero_i = jnp.zeros((), dtype), jnp.zeros((), jnp.int32)
        return self.State(
            count=zero_i, value_sum=zero_f, value_error=zero_f, num_values=zero_i, plateau=self.source.init()
        )

    def __call__(self, state: StatefulPlateauState, **extra_args: Any) -> jax.Array:
        del extra_args
        return jnp.asarray(self.source.lr(state.plateau, state.count))

    def update(self, state: StatefulPlateauState, *, value: Any = None, **extra_args: Any) -> StatefulPlateauState:
        del extra_args
        count = _safe_increment(jnp.asarray(state.count))
        if self.accumulation_size is None:
            return self.State(count, state.value_sum, state.value_error, state.num_values, state.plateau)
        if value is None:
            raise TypeError(
                f"{self!r} steps the plateau on the values of the updates: pass value=<loss> to tx.update "
                "(optax's extra argument), or make it with accumulation_size=None and feed metrics with "
                "lrjax.plateau_step(opt_state, metric)."
            )
        total, error = jnp.asarray(state.value_sum), jnp.asarray(state.value_error)
        dtype = total.dtype
        v = as_metric(value, dtype, "value")
        if dtype == np.float32:  # a compensated sum: float32 parts of torch's float64 running sum
            new_total, e = _two_sum(total, v)
            error = error + jnp.where(jnp.isfinite(new_total), e, jnp.zeros((), dtype))
            total = new_total
        else:  # torch's running sum of Python floats, bit for bit
            total = total + v
        n = jnp.asarray(state.num_values) + 1
        full = n >= self.accumulation_size
        # Opaque to XLA, which would otherwise rewrite a division by a constant as a product with its
        # reciprocal (one rounding more than torch's ``total / N``).
        size = jax.lax.optimization_barrier(jnp.asarray(self.accumulation_size, dtype))
        mean = (total + error) / size
        stepped = self.source.update(state.plateau, mean, count)
        plateau = jax.tree.map(lambda new, old: jnp.where(full, new, old), stepped, state.plateau)
        zero = jnp.zeros((), dtype)
        return self.State(
            count=count,
            value_sum=jnp.where(full, zero, total),
            value_error=jnp.where(full, zero, error),
            num_values=jnp.where(full, 0, n),
            plateau=plateau,
        )

    # --- metrics from outside the train step ---

    def step(self, state: StatefulPlateauState, metric: Any) -> StatefulPlateauState:
        """torch's ``scheduler.step(metric)`` on this schedule's state, measured after ``state.count`` updates."""
        dtype = jnp.asarray(state.value_sum).dtype
        plateau = self.source.update(state.plateau, as_metric(metric, dtype), state.count)
        return self.State(state.count, state.value_sum, state.value_error, state.num_values, plateau)

    def __repr__(self) -> str:
        n = self.accumulation_size
        if self.source._alone_base is not None:
            return f"{self.plateau!r}.as_schedule({_base.fmt(self.source._alone_base)}, accumulation_size={n})"
        return f"{self.source!r}.as_schedule(accumulation_size={n})"


class PlateauTransform(optax.GradientTransformationExtraArgs):
    """A plateau in ``optax.chain``: scales the updates by ``lr / base_lr`` (:func:`scale_by_plateau`).

    An ``optax.GradientTransformationExtraArgs`` whose state is a :class:`StatefulPlateauState`:
    ``update(updates, state, params=None, *, value=None)`` multiplies the updates by the lr of the
    :class:`StatefulPlateau` it runs (``.schedule``) over ``base_lr``, then lets the schedule see
    ``value``. ``.schedule`` and ``.base_lr`` say what it runs.
    """

    __slots__ = ()

    @classmethod
    def build(cls, schedule: StatefulPlateau, base_lr: ArrayLike) -> PlateauTransform:
        message = (
            f"base_lr must be one positive number (the lr of the optimizer before it in optax.chain), got "
            f"{base_lr!r}; for parameter groups, one transformation each in optax.multi_transform"
        )
        if not _base.is_traced(base_lr) and np.ndim(base_lr) != 0:
            raise ValueError(message)
        base = _base.hyper(base_lr, "base_lr", low=0.0, low_open=True, groups=False, message=message)
        shape = jax.eval_shape(lambda: schedule(schedule.init())).shape
        if shape != ():
            raise ValueError(
                f"the plateau's lr has shape {shape} (one per parameter group); optax.chain scales every "
                "parameter by one lr: give each group its own transformation in optax.multi_transform."
            )
        helper = _TransformFns(schedule, base)
        # optax's transformations are not generic in their state: its update type takes any OptState,
        # this one takes the StatefulPlateauState its init makes (all optax ever passes it).
        return cls(helper.init, cast(optax.TransformUpdateExtraArgsFn, helper.update))

    def _fns(self) -> _TransformFns:
        """The object whose bound methods are this transformation's ``init`` and ``update`` (see :meth:`build`)."""
        fns = getattr(self.init, "__self__", None)
        if not isinstance(fns, _TransformFns):
            raise AttributeError(
                f"this PlateauTransform was not made by lrjax.scale_by_plateau or plateau.as_transform "
                f"(its init is {self.init!r}), so it has no plateau schedule or base_lr"
            )
        return fns

    @property
    def schedule(self) -> StatefulPlateau:
        return self._fns().schedule

    @property
    def base_lr(self) -> float:
        return float(self._fns().base_lr)

    def __repr__(self) -> str:
        schedule = self.schedule
        n = schedule.accumulation_size
        if schedule.source._alone_base is not None:
            return f"{schedule.plateau!r}.as_transform({self.base_lr!r}, accumulation_size={n})"
        return f"{schedule.source!r}.as_transform({self.base_lr!r}, accumulation_size={n})"


class _TransformFns:
    def __init__(self, schedule: StatefulPlateau, base_lr: _base.Hyper):
        self.schedule, self.base_lr = schedule, base_lr

    def init(self, params: Any) -> StatefulPlateauState:
        del params
        return self.schedule.init()

    def update(
        self, updates: Any, state: StatefulPlateauState, params: Any = None, *, value: Any = None, **extra_args: Any
    ) -> tuple[Any, StatefulPlateauState]:
        del params, extra_args
        lr = self.schedule(state)
        scale = lr / jax.lax.optimization_barrier(jnp.asarray(self.base_lr, lr.dtype))  # see StatefulPlateau.update

        def scaled(u):
            dtype = jnp.promote_types(u.dtype, scale.dtype)
            return (u.astype(dtype) * scale.astype(dtype)).astype(u.dtype)

        return jax.tree.map(scaled, updates), self.schedule.update(state, value=value)


def scale_by_plateau(
    base_lr: ArrayLike,
    mode: str = "min",
    factor: ArrayLike = 0.1,
    patience: int = 10,
    threshold: ArrayLike = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: ArrayLike = 0.0,
    eps: ArrayLike = 1e-8,
    *,
    accumulation_size: int | None = 1,
) -> PlateauTransform:
    r"""torch's ReduceLROnPlateau in ``optax.chain``: scales the updates by ``lr / base_lr``.

    ``optax.chain(optax.adam(base_lr), lrjax.scale_by_plateau(base_lr, patience=...))`` updates the
    parameters as torch's Adam with ``ReduceLROnPlateau`` does: the plateau runs on the lr
    :math:`\eta_t` (from ``base_lr``, with torch's ``min_lr`` and ``eps`` in lr units, see
    :func:`lrjax.reduce_lr_on_plateau`) and the updates are multiplied by :math:`\eta_t / \eta_0`.
    That is torch's lr change exactly when the optimizer's update is proportional to the lr and
    the lr does not enter its state: SGD (with momentum, Nesterov and weight decay: torch's and
    optax's momentum buffers hold no lr), Adam and AdamW (torch's decoupled decay ``p *= 1 - lr
    * wd`` is ``lr`` times optax's ``wd * p``), RMSprop, Adagrad. Put it *after* the optimizer:
    before it, an adaptive optimizer (Adam) normalises the scale away.

    ``update(updates, state, params=None, *, value=None)``: the updates are scaled by the lr the
    plateau had before this update's ``value``; then ``value`` is accumulated (``accumulation_size=N``:
    the plateau steps on the mean of every ``N`` values, torch's ``scheduler.step(total / N)`` after an
    epoch of ``N`` batches), or not read (``accumulation_size=None``: step the plateau with
    :func:`plateau_step` on a validation metric, torch's usual ``scheduler.step(val_loss)``).

    Args:
        base_lr: the lr of the optimizer before it in ``optax.chain`` (torch's optimizer lr), > 0.
        mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps: torch's
            ReduceLROnPlateau arguments (:func:`lrjax.reduce_lr_on_plateau`).
        accumulation_size: values per plateau step (``N``), or None (see above).

    Returns:
        A :class:`PlateauTransform` (an ``optax.GradientTransformationExtraArgs``); its state is a
        :class:`StatefulPlateauState`, its current lr ``lrjax.plateau_lr(opt_state)``.

    Raises:
        ValueError: for any argument :func:`lrjax.reduce_lr_on_plateau` rejects, a ``base_lr`` that
            is not one positive number, or an ``accumulation_size`` that is not an integer >= 1 or None.

    Examples:
        >>> import jax.numpy as jnp, optax, lrjax
        >>> tx = optax.chain(optax.sgd(0.1), lrjax.scale_by_plateau(0.1, factor=0.5, patience=0))
        >>> params = {"w": jnp.ones(2)}
        >>> opt_state = tx.init(params)
        >>> grads = {"w": jnp.ones(2)}
        >>> for loss in [1.0, 1.0, 1.0]:
        ...     updates, opt_state = tx.update(grads, opt_state, params, value=loss)
        ...     print(round(float(updates["w"][0]), 6), round(float(lrjax.plateau_lr(opt_state)), 6))
        -0.1 0.1
        -0.1 0.05
        -0.05 0.025
    """
    plateau = reduce_lr_on_plateau(
        mode=mode,
        factor=factor,
        patience=patience,
        threshold=threshold,
        threshold_mode=threshold_mode,
        cooldown=cooldown,
        min_lr=min_lr,
        eps=eps,
    )
    return plateau.as_transform(base_lr, accumulation_size=accumulation_size)


# ----------------------------------------------------------------------------------------------
# Finding plateaus in an optimizer state
# ----------------------------------------------------------------------------------------------


def _is_variable(x: Any) -> bool:
    """A Flax NNX Variable (what ``nnx.Optimizer`` wraps its state's arrays in)."""
    return hasattr(x, "get_value") and hasattr(x, "set_value") and not isinstance(x, jax.Array)


def _owner(node: StatefulPlateauState) -> StatefulPlateau:
    owner = getattr(type(node), "_owner", None)
    if owner is None:
        raise ValueError(
            "this StatefulPlateauState belongs to no plateau (it was unpickled or built by hand): restore "
            "checkpoints into the structure of tx.init(params), whose states know their plateau."
        )
    return owner


def _is_node(x: Any) -> bool:
    return isinstance(x, (StatefulPlateauState, optax.InjectStatefulHyperparamsState))


def _map_plateaus(tree: Any, fn, refresh: bool = True) -> Any:
    """``tree`` with every StatefulPlateauState ``s`` replaced by ``fn(s)``; with ``refresh``, the
    ``hyperparams`` of an ``inject_hyperparams`` state follow their stepped schedules."""

    def visit(node):
        if isinstance(node, StatefulPlateauState):
            return fn(node)
        if isinstance(node, optax.InjectStatefulHyperparamsState):
            states = {k: _map_plateaus(v, fn, refresh) for k, v in node.hyperparams_states.items()}
            hyper = dict(node.hyperparams)
            for k, v in node.hyperparams_states.items():
                if refresh and isinstance(v, StatefulPlateauState) and k in hyper:
                    lr = _owner(v)(states[k])
                    hyper[k] = lr.astype(jnp.asarray(hyper[k]).dtype)
            return node._replace(
                hyperparams=hyper, hyperparams_states=states, inner_state=_map_plateaus(node.inner_state, fn, refresh)
            )
        return node

    return jax.tree.map(visit, tree, is_leaf=_is_node)


def _plateau_nodes(tree: Any) -> list[StatefulPlateauState]:
    found: list[StatefulPlateauState] = []

    def collect(node):
        found.append(node)
        return node

    _map_plateaus(tree, collect, refresh=False)
    return found


def _pure(tree: Any) -> Any:
    return jax.tree.map(lambda x: x.get_value() if _is_variable(x) else x, tree, is_leaf=_is_variable)


def plateau_step(tree: Any, metric: Any) -> Any:
    """torch's ``scheduler.step(metric)`` for every lrjax plateau in an optimizer state.

    Finds each :class:`StatefulPlateauState` in ``tree`` (an ``optax.chain`` state, an
    ``inject_hyperparams`` state, an ``nnx.Optimizer``'s ``opt_state``, a ``multi_transform``
    state, ...) and steps it once with ``metric``, measured after the updates its state has
    counted, with the settings of the plateau it belongs to. The ``hyperparams`` of an
    ``inject_hyperparams`` state become the lr the next update uses (what torch's
    ``optimizer.param_groups[0]["lr"]`` shows after ``scheduler.step``). This is the way to feed a
    validation metric computed outside the train step (build the plateau with
    ``accumulation_size=None``); pure and jittable, apart from NNX Variables, which are set in place.

    Args:
        tree: any pytree holding lrjax plateau states.
        metric: a real scalar (see :func:`lrjax.reduce_lr_on_plateau`'s note on metrics).

    Returns:
        ``tree`` with its plateau states stepped (for NNX Variables: ``tree`` itself, updated).

    Raises:
        ValueError: if ``tree`` holds no lrjax plateau state, or a state that belongs to no plateau.
        TypeError / ValueError: for a metric that is not a real scalar.
    """
    pure = _pure(tree)
    if not _plateau_nodes(pure):
        raise ValueError(
            "plateau_step found no lrjax plateau state in the tree (from lrjax.scale_by_plateau, "
            "plateau.as_transform or plateau.as_schedule)."
        )
    new = _map_plateaus(pure, lambda node: _owner(node).step(node, metric))
    variables = jax.tree.leaves(tree, is_leaf=_is_variable)
    if not any(_is_variable(v) for v in variables):
        return new
    for var, value in zip(variables, jax.tree.leaves(new), strict=True):
        if _is_variable(var):
            var.set_value(value)
    return tree


def plateau_lr(tree: Any) -> jax.Array:
    """The lr the next update uses, of the one lrjax plateau in ``tree`` (an optimizer state).

    Raises:
        ValueError: if ``tree`` holds no lrjax plateau state or several (pass the part that holds one,
            e.g. ``opt_state.inner_states["head"]``).
    """
    nodes = _plateau_nodes(_pure(tree))
    if len(nodes) != 1:
        raise ValueError(
            f"plateau_lr needs a tree with one lrjax plateau state, found {len(nodes)}; pass the part "
            "of the optimizer state that holds the one you want."
        )
    return _owner(nodes[0])(nodes[0])


__all__ = [
    "PlateauState",
    "PlateauTransform",
    "StatefulPlateau",
    "StatefulPlateauState",
    "plateau_lr",
    "plateau_step",
    "scale_by_plateau",
]
