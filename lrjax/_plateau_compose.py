"""Schedules combined with plateau reduction: :class:`PlateauSchedule`, ``sequential_plateau``, ``chained_plateau``.

A :class:`PlateauSchedule` is the one form every plateau takes once it knows its lr: pure
``init()``, ``update(state, metric, step)`` and ``lr(state, step)``. The optax shapes
(:mod:`lrjax._plateau_optax`) are built on it, so a plateau alone, a warm-up followed by a
plateau and a schedule times a plateau all go into ``optax.inject_hyperparams`` and
``optax.chain`` the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lrjax import _base
from lrjax._base import ArrayLike, Schedule
from lrjax._plateau import NOT_OPTAX, PlateauState, ReduceLROnPlateau

_CALLS = "init(), update(state, metric, step), lr(state, step)"


class PlateauSchedule:
    """A learning rate driven by metrics, with pure functions (what :func:`sequential_plateau` and
    :func:`chained_plateau` return).

    * ``init()``: the state before any metric.
    * ``update(state, metric, step)``: the state after ``metric``, measured after ``step`` optimizer
      updates (one torch ``scheduler.step(metric)``).
    * ``lr(state, step)``: the learning rate of optimizer update ``step`` (0 for the first).
    * ``as_schedule(accumulation_size=...)``: an optax ``StatefulSchedule`` (:class:`lrjax.StatefulPlateau`).
    * ``as_transform(base_lr, accumulation_size=...)``: an optax transformation scaling updates by
      ``lr / base_lr`` (:class:`lrjax.PlateauTransform`).

    ``PlateauSchedule(init=..., update=..., lr=...)`` wraps any three such functions; ``plateau``
    names the :class:`ReduceLROnPlateau` inside, if any (for ``repr`` and ``.plateau``).
    """

    is_plateau = True  # lrjax.chained_scheduler / sequential_lr reject it with torch's message

    def __init__(
        self,
        init: Callable[[], Any],
        update: Callable[[Any, Any, ArrayLike], Any],
        lr: Callable[[Any, ArrayLike], jax.Array],
        *,
        plateau: ReduceLROnPlateau | None = None,
        description: str | None = None,
    ):
        for name, fn in (("init", init), ("update", update), ("lr", lr)):
            if not callable(fn):
                raise ValueError(f"PlateauSchedule's {name} must be a function, got {fn!r}")
        self._init, self._update, self._lr = init, update, lr
        self.plateau = plateau
        self._description = description
        self._alone_base: Any = None  # the base_lr of a plateau alone (see alone())

    def init(self, *args: Any) -> Any:
        if args:
            raise TypeError(
                NOT_OPTAX.format(what=repr(self), calls=_CALLS) + " Use .as_transform(base_lr) in optax.chain."
            )
        return self._init()

    def update(self, state: Any, metric: Any, step: ArrayLike, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            raise TypeError(
                NOT_OPTAX.format(what=repr(self), calls=_CALLS) + " Use .as_transform(base_lr) in optax.chain."
            )
        return self._update(state, metric, step)

    def lr(self, state: Any, step: ArrayLike) -> jax.Array:
        return self._lr(state, step)

    def as_schedule(self, *, accumulation_size: int | None = 1):
        """An optax ``StatefulSchedule`` (:class:`lrjax.StatefulPlateau`) running this schedule."""
        from lrjax._plateau_optax import StatefulPlateau

        return StatefulPlateau(self, accumulation_size)

    def as_transform(self, base_lr: ArrayLike, *, accumulation_size: int | None = 1):
        """An optax transformation (:class:`lrjax.PlateauTransform`) scaling updates by ``lr / base_lr``."""
        from lrjax._plateau_optax import PlateauTransform

        return PlateauTransform.build(self.as_schedule(accumulation_size=accumulation_size), base_lr)

    def __repr__(self) -> str:
        return self._description or "lrjax.PlateauSchedule(...)"

    def _not_a_number(self, *_: Any) -> Any:
        raise TypeError(NOT_OPTAX.format(what=repr(self), calls=_CALLS))

    __neg__ = __pos__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __float__ = _not_a_number


def _check_plateau(plateau: Any) -> ReduceLROnPlateau:
    if not isinstance(plateau, ReduceLROnPlateau):
        raise ValueError(f"plateau must come from lrjax.reduce_lr_on_plateau(...), got {plateau!r}")
    return plateau


def _check_schedule(schedule: Schedule) -> Schedule:
    if getattr(schedule, "is_plateau", False) or not callable(schedule):
        raise ValueError(f"schedule must be a function step -> lr (e.g. lrjax.linear_lr(...)), got {schedule!r}")
    return schedule


def _before(t: jax.Array, milestone: int) -> jax.Array:
    """``t < milestone`` for an integer or float step ``t``, also when ``milestone`` overflows its dtype."""
    if _base.is_int(t) and milestone > jnp.iinfo(t.dtype).max:
        return jnp.ones(t.shape, jnp.bool_)
    return t < (milestone if _base.is_int(t) else jnp.asarray(milestone, t.dtype))


def alone(plateau: ReduceLROnPlateau, base_lr: ArrayLike | Sequence[float]) -> PlateauSchedule:
    """A plateau on its own, starting at ``base_lr``, as a :class:`PlateauSchedule` (``step`` is not used)."""
    plateau = _check_plateau(plateau)
    base = _base.hyper(base_lr, "base_lr")
    plateau.init(base)  # validates base_lr against min_lr now

    def init() -> PlateauState:
        return plateau.init(base)

    def update(state: PlateauState, metric: Any, step: ArrayLike) -> PlateauState:
        del step
        return plateau.update(state, metric)

    def lr(state: PlateauState, step: ArrayLike) -> jax.Array:
        del step
        return state.lr

    out = PlateauSchedule(
        init, update, lr, plateau=plateau, description=f"lrjax.PlateauSchedule({plateau!r}, base_lr={_base.fmt(base)})"
    )
    out._alone_base = base
    return out


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
    * ``as_schedule(...)`` / ``as_transform(base_lr, ...)``: the same in optax's shapes.

    Args:
        schedule: any function ``step -> lr`` (an lrjax or optax schedule).
        plateau: from :func:`reduce_lr_on_plateau`; its ``min_lr`` list, if any, must have one
            value per group of ``schedule``.
        milestone: the first optimizer step that uses the plateau's lr, an integer ``>= 0``.

    Returns:
        A :class:`PlateauSchedule`; its state is a :class:`PlateauState`.

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

    def update(state: PlateauState, metric: Any, step: ArrayLike) -> PlateauState:
        new = plateau.update(state, metric)
        counts = ~_before(jnp.asarray(step), milestone + 1)
        return jax.tree.map(lambda n, o: jnp.where(counts, n, o), new, state)

    def lr(state: PlateauState, step: ArrayLike) -> jax.Array:
        t = jnp.asarray(step)
        return jnp.where(_before(t, milestone), schedule(t), state.lr)

    return PlateauSchedule(
        init,
        update,
        lr,
        plateau=plateau,
        description=f"lrjax.sequential_plateau({schedule!r}, {plateau!r}, milestone={milestone})",
    )


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
    * ``as_schedule(...)`` / ``as_transform(base_lr, ...)``: the same in optax's shapes.

    Args:
        schedule: any function ``step -> lr`` (an lrjax or optax schedule).
        plateau: from :func:`reduce_lr_on_plateau`.

    Returns:
        A :class:`PlateauSchedule`; its state is a :class:`PlateauState` whose ``lr`` field is the
        multiplier.

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

    def update(state: PlateauState, metric: Any, step: ArrayLike) -> PlateauState:
        del step
        return plateau.update(state, metric)

    def lr(state: PlateauState, step: ArrayLike) -> jax.Array:
        value = jnp.asarray(schedule(step))
        return value * jnp.asarray(state.lr).astype(value.dtype)

    return PlateauSchedule(
        init, update, lr, plateau=plateau, description=f"lrjax.chained_plateau({schedule!r}, {plateau!r})"
    )
