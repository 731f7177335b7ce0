"""Combining schedules as torch does: ``ChainedScheduler`` and ``SequentialLR``."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _base
from lrjax._base import LRSchedule, MultiplicativeSchedule, const

_MOMENTUM = ("cyclic_momentum", "one_cycle_momentum")


def _check_member(owner: str, i: int, m: Any) -> LRSchedule:
    if getattr(m, "is_plateau", False):
        raise ValueError(
            f"{owner} does not support `ReduceLROnPlateau` scheduler as it requires additional kwargs to be "
            f"specified when calling `step`, but got one at index {i} in the given schedulers sequence."
        )
    if not isinstance(m, LRSchedule) or not m.torch_class:
        raise ValueError(
            f"{owner} combines lrjax schedules (lrjax.step_lr, ...); the member at index {i} is {m!r}. "
            "Wrap other functions with lrjax.lambda_lr, or use optax.join_schedules directly."
        )
    if m.torch_class in ("ChainedScheduler", "SequentialLR"):
        raise ValueError(
            f"{owner} cannot contain another {m.torch_class} (index {i}): torch re-steps or fails on nested "
            "composite schedulers. Flatten the members into one list instead."
        )
    if m._fn_name in _MOMENTUM:
        raise ValueError(f"{owner} combines learning-rate schedules; index {i} is a momentum schedule ({m!r}).")
    if m.torch_class == "OneCycleLR":
        raise ValueError(
            f"{owner} cannot contain one_cycle_lr (index {i}): torch's OneCycleLR overwrites the optimizer's "
            "initial_lr, which silently changes the base lr of every scheduler combined with it. Use "
            "optax.join_schedules with lrjax schedules to run a one-cycle schedule after another one."
        )
    return m


def _members(owner: str, schedules: Any, none_message: str) -> list[LRSchedule]:
    if isinstance(schedules, LRSchedule) or not isinstance(schedules, Sequence):
        raise ValueError(f"schedules must be a list of lrjax schedules, got {schedules!r}")
    if len(schedules) < 1:
        raise ValueError(none_message)
    return [_check_member(owner, i, m) for i, m in enumerate(schedules)]


def _same(a: Any, b: Any) -> bool:
    if _base.is_traced(a) or _base.is_traced(b):
        return a is b
    return np.shape(a) == np.shape(b) and bool(np.all(np.asarray(a) == np.asarray(b)))


def _step_map(m: LRSchedule, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Member ``m``'s torch update at step ``t`` as ``lr <- a * lr + c``."""
    if m.kind == "multiplicative":
        return m.step_factor(t), const(0.0)
    if m.kind == "affine":
        return m.step_map(t)
    return const(0.0), m._value(t)


def _simulate(members: Sequence[LRSchedule], base: Any, horizon: int) -> np.ndarray:
    """torch's recursion ``lr_t = (member updates at t)(lr_{t-1})`` for steps 0..horizon, in float64."""

    def run(steps):
        # Every member's update at every step as lr <- a * lr + c, composed in list order; arrays of
        # shape (steps, groups or 1).
        a_total = jnp.ones((horizon + 1, 1), jnp.float64)
        c_total = jnp.zeros((horizon + 1, 1), jnp.float64)
        for m in members:
            a, c = jax.vmap(lambda s, m=m: _step_map(m, s))(steps)
            a, c = jnp.reshape(a, (horizon + 1, -1)), jnp.reshape(c, (horizon + 1, -1))
            a_total, c_total = a * a_total, a * c_total + c
        groups = jnp.broadcast_shapes((np.size(base),), a_total.shape[1:], c_total.shape[1:])
        lr0 = jnp.broadcast_to(jnp.reshape(jnp.asarray(base, jnp.float64), (-1,)), groups)

        def body(lr, ac):
            lr = ac[0] * lr + ac[1]
            return lr, lr

        return jax.lax.scan(body, lr0, (a_total, c_total))[1]

    try:
        with jax.enable_x64(True), jax.ensure_compile_time_eval():
            table = np.asarray(jax.jit(run)(jnp.arange(horizon + 1, dtype=jnp.int64)), dtype=np.float64)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError) as e:
        raise ValueError(
            "This chained_scheduler has no closed form in torch, so lrjax precomputes torch's recursion; "
            "that needs concrete (not traced) hyperparameters."
        ) from e
    return table if np.ndim(base) == 1 else table[:, 0]


def _lookup(table: np.ndarray, t: jax.Array) -> jax.Array:
    """``table[t]`` for integer-valued steps, holding the last entry past the end."""
    last = table.shape[0] - 1
    idx = jnp.minimum(t, jnp.asarray(last, t.dtype)) if _base.int_const(last, t) is not None or not _base.is_int(t) else t
    return const(table)[idx.astype(jnp.int32)]


class _Chained(LRSchedule):
    torch_class = "ChainedScheduler"
    kind = "absolute"

    def __init__(self, schedules, total_steps):
        members = _members("ChainedScheduler", schedules,
                           "ChainedScheduler expects at least one scheduler to be chained, but got no scheduler.")
        shared = [m for m in members if hasattr(m, "base_lr")]
        if shared and members[0].torch_class == "CyclicLR" and not _same(shared[0].base_lr, members[0].low):
            raise ValueError(
                "In torch, a CyclicLR constructed first sets the optimizer's lr, and so the initial_lr every "
                f"later scheduler uses as its base, to its own base_lr ({_base.fmt(members[0].low)}); build the "
                f"other members with base_lr={_base.fmt(members[0].low)} (got {_base.fmt(shared[0].base_lr)})."
            )
        for i, m in enumerate(members):
            if hasattr(m, "base_lr") and not _same(m.base_lr, shared[0].base_lr):
                raise ValueError(
                    "chained_scheduler members act on one optimizer, so they must share base_lr: "
                    f"index {i} has base_lr={_base.fmt(m.base_lr)}, index {members.index(shared[0])} has "
                    f"{_base.fmt(shared[0].base_lr)}."
                )
        self.members = members
        self.base_lr = shared[0].base_lr if shared else None
        if total_steps is not None:
            total_steps = _base.integer(total_steps, "total_steps", minimum=0)
        mult = [m for m in members if m.kind == "multiplicative"]
        affine = [i for i, m in enumerate(members) if m.kind == "affine"]
        absolute = [i for i, m in enumerate(members) if m.kind == "absolute"]
        horizons = [m.horizon for m in mult if getattr(m, "horizon", None) is not None]
        eta = members[affine[0]].eta_min if len(affine) == 1 else None
        eta_known = eta is not None and not _base.is_traced(eta)
        self.table: np.ndarray | None = None
        if absolute:
            # The last member that overwrites the lr makes the chain memoryless: what follows it
            # applies one step's update.
            self.mode, self.k = "overwrite", absolute[-1]
        elif not affine:
            self.mode = "product"
        elif len(affine) == 1 and eta_known and np.all(eta == 0) and not horizons:
            self.mode, self.j = "cosine", affine[0]
        elif len(affine) == 1 and eta_known and all(m.last_event is not None for m in mult):
            # Past the last multiplicative event, the cosine forgets the history at its next zero.
            self.mode, self.j = "warmup", affine[0]
            self.knot = max([m.last_event for m in mult], default=0) + 1
            self.table = _simulate(members, self.base_lr, self.knot)
        else:
            horizon = total_steps if total_steps is not None else (min(horizons) if horizons else None)
            if horizon is None:
                raise ValueError(
                    "This chain has no closed form in torch: a CosineAnnealingLR with eta_min > 0 (or several "
                    "of them) combined with schedulers that keep changing the lr (ExponentialLR, StepLR, ...), "
                    "so torch's lr at step t depends on every earlier step. Pass total_steps=N: lrjax then "
                    "precomputes torch's recursion for steps 0..N once, and each evaluation is one lookup "
                    "(steps past N hold the last value)."
                )
            self.mode = "table"
            self.table = _simulate(members, self.base_lr, horizon)
        super().__init__("chained_scheduler", {"schedules": members, "total_steps": total_steps})

    def __repr__(self) -> str:
        return f"lrjax.chained_scheduler([{', '.join(map(repr, self.members))}])"

    def _value(self, t):
        if not _base.is_int(t):
            t = jnp.floor(t)
        members = self.members
        if self.mode == "overwrite":
            lr = members[self.k]._value(t)
            for m in members[self.k + 1 :]:
                a, c = _step_map(m, t)
                lr = a * lr + c
            return lr
        if self.mode == "product":
            lr = const(self.base_lr)
            for m in members:
                lr = lr * m.factor(t)
            return lr
        if self.mode == "table":
            return _lookup(self.table, t)
        cos = members[self.j]
        w = cos.weight(t)
        t0 = self._last_restart(cos, t)
        if self.mode == "cosine":
            # eta_min = 0: lr = base * w(t) * (factors since the cosine's last restart).
            before = const(self.base_lr) * w
            after = const(self.base_lr) * w
            for i, m in enumerate(members):
                if m.kind != "multiplicative":
                    continue
                before = before * m.factor(t)
                after = after * m.factor_between(t0, t)
                if i > self.j:
                    after = after * m.step_factor(t0)
            return jnp.where(t <= cos.T_max, before, after)
        # "warmup": a table up to the knot, then the cosine's own recursion from the table's last value.
        knot = self.knot
        eta = const(cos.eta_min)
        last = const(self.table[-1])
        w_knot = float(np.asarray(jax.device_get(_knot_weight(cos, knot))))
        decay = eta + (w / const(w_knot if w_knot != 0 else 1.0)) * (last - eta)
        restarted = cos.is_restart(t0) & (t0 > knot) & (t0 <= t)
        later = jnp.where(restarted, cos._value(t), decay)
        return jnp.where(t <= knot, _lookup(self.table, t), later)

    @staticmethod
    def _last_restart(cos, t):
        """The last step ``<= t`` at which torch's CosineAnnealingLR adds its restart increment (else ``t``)."""
        first, period = cos.T_max + 1, 2 * cos.T_max
        if _base.is_int(t):
            f, p = _base.int_const(first, t), _base.int_const(period, t)
            if f is None:
                return t
            k = (t - f) // p * p if p is not None else jnp.zeros_like(t)
            return jnp.where(t >= f, f + k, t)
        k = jnp.floor((t - first) / period) * period
        return jnp.where(t >= first, first + k, t)


def _knot_weight(cos, knot: int) -> jax.Array:
    with jax.enable_x64(True), jax.ensure_compile_time_eval():
        return cos.weight(jnp.asarray(knot, jnp.int64))


def chained_scheduler(schedules: Sequence[LRSchedule], *, total_steps: int | None = None) -> LRSchedule:
    r"""Runs several schedules on one learning rate, each step applying every member in list order.

    Port of `torch.optim.lr_scheduler.ChainedScheduler
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ChainedScheduler.html>`_.
    Build the members with one shared ``base_lr`` (torch's single optimizer). ``schedule(t)``
    equals the lr torch holds after ``t`` calls of ``ChainedScheduler.step()``, where each call
    steps every member on the lr left by the previous one.

    When every member multiplies the lr (StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR,
    PolynomialLR, MultiplicativeLR), that is the product of the members' factors:

    .. math:: \eta_t = \eta_0 \prod_i \frac{\eta^{(i)}_t}{\eta_0}

    torch's recursion differs from the product, and lrjax follows torch, when

    * a member overwrites the lr (LambdaLR, CyclicLR, CosineAnnealingWarmRestarts): the members
      before the last such one are ignored, the ones after it apply a single step's factor;
    * a CosineAnnealingLR is past ``T_max``: its restart adds ``(base_lr - eta_min)(1 - cos(pi/T_max))/2``,
      not scaled by the other members;
    * a CosineAnnealingLR has ``eta_min > 0``: it computes ``(lr - eta_min) ratio + eta_min`` on the
      chained lr, so the order of the members matters.

    Each evaluation costs O(1) in ``t``. The only combinations whose torch value depends on every
    earlier step, and so have no closed form, are a CosineAnnealingLR with ``eta_min > 0`` (or
    several CosineAnnealingLRs) chained with members that change the lr forever (ExponentialLR,
    StepLR, ...): for those, pass ``total_steps`` and lrjax precomputes torch's recursion once. A
    CosineAnnealingLR with ``eta_min > 0`` after a finite warm-up (LinearLR, ConstantLR,
    MultiStepLR, PolynomialLR) needs no horizon: a table up to the warm-up's end, then the cosine's
    closed form.

    Args:
        schedules: lrjax schedules sharing ``base_lr``.
        total_steps: horizon for the combinations above that have no closed form; later steps hold
            the last value.

    Raises:
        ValueError: torch's "expects at least one scheduler" message; members with different
            ``base_lr``; nested composites (torch fails on them), momentum schedules,
            one_cycle_lr (torch's OneCycleLR rewrites the other members' base lr); a combination
            without closed form and without ``total_steps``.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.chained_scheduler(
        ...     [lrjax.constant_lr(1.0, factor=0.1, total_iters=2), lrjax.exponential_lr(1.0, gamma=0.9)])
        >>> [round(float(schedule(t)), 6) for t in range(5)]
        [0.1, 0.09, 0.81, 0.729, 0.6561]
    """
    return _Chained(schedules, total_steps)


class _Sequential(LRSchedule):
    torch_class = "SequentialLR"
    kind = "absolute"

    def __init__(self, schedules, milestones):
        members = _members("SequentialLR", schedules, "SequentialLR expects at least one scheduler, but got no scheduler.")
        milestones = list(milestones)
        if len(milestones) != len(members) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than the number of "
                f"milestone points, but got number of schedulers {len(members)} and the number of milestones to "
                f"be equal to {len(milestones)}"
            )
        ms = [_base.integer(m, "milestones", minimum=0, message=f"milestones must be non-negative integers, got {milestones}")
              for m in milestones]
        if any(b < a for a, b in zip(ms, ms[1:])):
            raise ValueError(
                f"milestones must be non-decreasing, got {ms}: torch bisects them as given, so a decreasing "
                "list silently skips schedulers."
            )
        self.members, self.milestones = members, ms
        # How each member starts: at construction ("initial", the member active at step 0) or at a
        # milestone m >= 1, where torch evaluates its closed form at epoch 0 (or, without one,
        # get_lr() on the current lr).
        active0 = bisect.bisect_right(ms, 0)
        adjusted: list[Any] = []
        for i, m in enumerate(members):
            entry = None
            if i != active0 and i > 0 and bisect.bisect_right(ms, ms[i - 1]) == i and ms[i - 1] > 0:
                entry = ms[i - 1]
            adjusted.append(self._entered(i, m, entry, adjusted))
        self._joined = optax.join_schedules(adjusted, ms)
        super().__init__("sequential_lr", {"schedules": members, "milestones": ms})

    def _entered(self, i: int, m: LRSchedule, entry: int | None, earlier: list[Any]):
        """Member ``i`` as it behaves once SequentialLR switches to it at milestone ``entry``."""
        if entry is None:
            return m
        if m.torch_class in ("LinearLR", "PolynomialLR") and m.total_iters == 0:
            raise ValueError(
                f"{m!r} at index {i} starts at milestone {entry}, where torch evaluates its closed form, "
                "which divides by total_iters=0 (ZeroDivisionError). Use total_iters >= 1."
            )
        if m.torch_class == "ConstantLR" and m.total_iters == 0:
            base = m.base_lr  # closed form at epoch 0 is base_lr, and nothing changes it afterwards
            return lambda u: jnp.broadcast_to(const(base), jnp.broadcast_shapes(jnp.shape(u), np.shape(base)))
        if m.torch_class == "MultiplicativeLR":
            # torch has no closed form for it: it multiplies the lr reached so far by lr_lambda(0).
            previous = optax.join_schedules(earlier, self.milestones[: i - 1]) if i > 1 else earlier[0]

            def continued(u):
                carried = jnp.asarray(previous(jnp.asarray(entry - 1))) * m.lambda_at_zero()
                return carried * m.factor(_base.as_step(u))

            return continued
        return m

    def __repr__(self) -> str:
        return f"lrjax.sequential_lr([{', '.join(map(repr, self.members))}], milestones={self.milestones})"

    def _value(self, t):
        return jnp.asarray(self._joined(t))


def sequential_lr(schedules: Sequence[LRSchedule], milestones: Sequence[int]) -> LRSchedule:
    r"""Runs schedules one after another, switching at the milestones; built on ``optax.join_schedules``.

    Port of `torch.optim.lr_scheduler.SequentialLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.SequentialLR.html>`_:

    .. math:: \eta_t = s_i(t - m_i) \quad \text{for } m_i \le t < m_{i+1} \quad (m_0 = 0)

    ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``SequentialLR.step()``: each
    member restarts from its own step 0 at its milestone (a warm-up cut short jumps to the next
    member's start). Build warm-up + decay as
    ``sequential_lr([linear_lr(lr, 0.01, total_iters=w), cosine_annealing_lr(lr, T_max=n - w)], [w])``.

    Args:
        schedules: lrjax schedules; members may have different ``base_lr`` (torch's share one).
        milestones: non-decreasing step indices at which to switch to the next schedule.

    Raises:
        ValueError: torch's messages for no schedulers and for a wrong number of milestones; a
            negative or decreasing milestone (torch bisects an unsorted list as given, silently
            skipping schedulers); LinearLR/PolynomialLR with ``total_iters=0`` after a milestone
            (torch divides by zero there); nested composites, momentum schedules and
            one_cycle_lr (see :func:`chained_scheduler`).

    .. note::
        Where torch differs from a plain join, lrjax follows torch: a MultiplicativeLR after a
        milestone multiplies the lr reached so far by ``lr_lambda(0)``, ``lr_lambda(1)``, ...
        (it does not restart from ``base_lr``); a ConstantLR with ``total_iters=0`` after a
        milestone holds ``base_lr`` (its closed form), not ``base_lr * factor``. A milestone 0
        skips the first schedule, as in torch.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.sequential_lr(
        ...     [lrjax.constant_lr(1.0, factor=0.1, total_iters=2), lrjax.exponential_lr(1.0, gamma=0.9)],
        ...     milestones=[2])
        >>> [round(float(schedule(t)), 6) for t in range(5)]
        [0.1, 0.1, 1.0, 0.9, 0.81]
    """
    return _Sequential(schedules, milestones)
