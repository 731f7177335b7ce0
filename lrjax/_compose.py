"""Combining schedules as torch does: ``ChainedScheduler`` and ``SequentialLR``, nested to any depth.

torch's composites drive their members' ``step()``, each of which updates the optimizer's *current*
lr (an affine map, :class:`lrjax._schedule.Affine`). lrjax reproduces that in three stages:

1. **The torch machine** (:class:`_Machine`): torch's own control flow, run on the members' counters
   only (``last_epoch``, ``_step_count``), in the order torch constructs them (each member before the
   composite holding it, list order, depth first): which member's ``get_lr()`` runs at construction,
   at ``SequentialLR``'s re-initialisation of its first member (``recursive_undo`` then
   ``_initial_step``), and at its milestones (``_update_lr(0)``), and with which counter.
2. **Segments**: from step 1 on, the steps split at the milestones into segments in which the same
   members are stepped, in the same order, their counters advancing by one per step.
3. **Closed forms per segment**: one member alone runs its own recursion in closed form
   (:meth:`Member.run`); a member that overwrites the lr makes the step memoryless; members that
   scale it multiply their factors from the last step at which the lr was reset; anything else is
   torch's recursion tabulated once (``total_steps``).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _steps, _validate
from lrjax._cosine import CosineAnnealingLR
from lrjax._cyclic import CyclicLR
from lrjax._schedule import AbsoluteMember, Affine, LRSchedule, Member, MultiplicativeMember, const
from lrjax._steps import Step, uconst

_INF = float("inf")
# The most steps of torch's recursion a composite tabulates (80 MB in float64).
_MAX_TABLE = 10_000_000


# ----------------------------------------------------------------------------------------------
# The tree of members
# ----------------------------------------------------------------------------------------------


def _check_member(owner: str, i: int, m: Any) -> Any:
    if getattr(m, "is_plateau", False):
        raise ValueError(
            f"{owner} does not support `ReduceLROnPlateau` scheduler as it requires additional kwargs to be "
            f"specified when calling `step`, but got one at index {i} in the given schedulers sequence."
        )
    if isinstance(m, _Composite):
        return m
    name = getattr(m, "name", "")
    if name in ("cyclic_momentum", "one_cycle_momentum"):
        raise ValueError(f"{owner} combines learning-rate schedules; index {i} is a momentum schedule ({m!r}).")
    if name == "one_cycle_lr":
        raise ValueError(
            f"{owner} cannot contain one_cycle_lr (index {i}): torch's OneCycleLR overwrites the optimizer's "
            "initial_lr, which silently changes the base lr of every scheduler combined with it. Use "
            "optax.join_schedules with lrjax schedules to run a one-cycle schedule after another one."
        )
    if not isinstance(m, Member):
        raise ValueError(
            f"{owner} combines lrjax's torch schedules (lrjax.step_lr, ..., chained_scheduler, sequential_lr); the "
            f"member at index {i} is {m!r}. Wrap other functions with lrjax.lambda_lr, or use optax.join_schedules."
        )
    return m


def _members(owner: str, schedules: Any, none_message: str) -> tuple[Any, ...]:
    if isinstance(schedules, LRSchedule) or isinstance(schedules, (str, bytes)) or not isinstance(schedules, Sequence):
        raise ValueError(f"schedules must be a list of lrjax schedules, got {schedules!r}")
    if len(schedules) < 1:
        raise ValueError(none_message)
    return tuple(_check_member(owner, i, m) for i, m in enumerate(schedules))


def _leaves(node: Any) -> list[Member]:
    if isinstance(node, _Composite):
        return [leaf for m in node.schedules for leaf in _leaves(m)]
    assert isinstance(node, Member)
    return [node]


def _same(a: Any, b: Any) -> bool:
    if _steps.is_traced(a) or _steps.is_traced(b):
        return a is b
    return np.shape(a) == np.shape(b) and bool(np.all(np.asarray(a) == np.asarray(b)))


def _initial_lr(node: Any) -> Any:
    """The optimizer's ``initial_lr``, which torch's schedulers read as their base: the base lr of the
    first scheduler constructed (a CyclicLR sets the optimizer's lr to its own ``base_lr`` first)."""
    return _leaves(node)[0].base


# ----------------------------------------------------------------------------------------------
# 1. The torch machine, on counters
# ----------------------------------------------------------------------------------------------


class _Event(NamedTuple):
    leaf: int  # index into the depth-first leaves; -1 for a SequentialLR's reset of the lr
    kind: str  # "init" (constructor / _initial_step), "step", "entry" (_update_lr(0)), "reset"
    counter: int


class _Interval(NamedTuple):
    """A leaf stepped once per step on ``[start, stop)``, its counter ``counter`` at ``start``."""

    start: int
    stop: float  # an int, or inf
    counter: int
    first: str  # how the call at ``start`` is made: "step" or "entry"


class _Node:
    """One occurrence of a schedule in the tree (the same schedule object may occur twice: torch's
    members are distinct scheduler objects, each with its own counter)."""

    def __init__(self, schedule: Any, leaves: list[Member]):
        self.schedule = schedule
        self.kind = (
            "chained" if isinstance(schedule, Chained) else "sequential" if isinstance(schedule, Sequential) else "leaf"
        )
        self.children = [_Node(m, leaves) for m in schedule.schedules] if isinstance(schedule, _Composite) else []
        if isinstance(schedule, Member):
            self.leaf = len(leaves)
            leaves.append(schedule)
        self.epoch = 0  # a SequentialLR's last_epoch


class _Machine:
    """torch's composite control flow on the members' counters (no lr values)."""

    def __init__(self, root: Any):
        self.leaves: list[Member] = []
        tree = _Node(root, self.leaves)
        self.epoch = [0] * len(self.leaves)  # last_epoch
        self.calls = [0] * len(self.leaves)  # _step_count
        self.events: list[_Event] = []
        self._construct(tree)
        self.intervals: dict[int, _Interval] = {}
        self._receive(tree, 1, _INF, "step")

    def _counter(self, i: int) -> int:
        return self.calls[i] - 1 if self.leaves[i].counter == "step_count" else self.epoch[i]

    # -- what torch does at construction -------------------------------------------------------

    def _construct(self, node: _Node) -> None:
        if node.kind == "leaf":
            i = node.leaf
            self.epoch[i], self.calls[i] = 0, 1
            self.events.append(_Event(i, "init", 0))
            return
        for m in node.children:
            self._construct(m)
        if node.kind == "sequential":
            node.epoch = 0
            self.events.append(_Event(-1, "reset", 0))  # lr <- initial_lr
            self._undo(node)
            self._initial_step(node.children[node.schedule.first])

    def _undo(self, node: _Node) -> None:
        for m in node.children:
            if m.kind == "leaf":
                self.epoch[m.leaf] -= 1
            else:
                self._undo(m)

    def _initial_step(self, node: _Node) -> None:
        if node.kind != "leaf":  # LRScheduler._initial_step: a plain step() of the composite
            self._step(node)
            return
        i = node.leaf
        self.calls[i] = 1
        self.epoch[i] += 1
        if self.epoch[i] != 0:  # pragma: no cover - recursive_undo always precedes it
            raise ValueError("unsupported composite: a member is re-initialised at a counter other than 0")
        self.events.append(_Event(i, "init", self._counter(i)))

    def _step(self, node: _Node) -> None:
        if node.kind == "chained":
            for m in node.children:
                self._step(m)
        elif node.kind == "sequential":
            node.epoch += 1
            ms = node.schedule.milestones
            idx = bisect.bisect_right(ms, node.epoch)
            if idx > 0 and ms[idx - 1] == node.epoch:
                self._entry(node.children[idx], node, idx)
            else:
                self._step(node.children[idx])
        else:
            i = node.leaf
            self.calls[i] += 1
            self.epoch[i] += 1
            self.events.append(_Event(i, "step", self._counter(i)))

    def _entry(self, node: _Node, owner: _Node, idx: int) -> None:
        if node.kind != "leaf":
            raise _composite_entry_error(owner.schedule, idx, node.schedule)
        i = node.leaf
        self.epoch[i] = 0
        self.events.append(_Event(i, "entry", self._counter(i)))

    # -- what torch does from step 1 on, as intervals of steps ----------------------------------

    def _receive(self, node: _Node, start: int, stop: float, first: str) -> None:
        """``node`` gets a ``step()`` (or, at ``start``, an ``_update_lr(0)`` if ``first == "entry"``)
        at every step of ``[start, stop)``."""
        if start >= stop:
            return
        if node.kind == "chained":
            for m in node.children:
                self._receive(m, start, stop, first)
        elif node.kind == "sequential":
            e0 = node.epoch  # its last_epoch before the step at ``start``
            ms = node.schedule.milestones
            for i, m in enumerate(node.children):
                lo = ms[i - 1] if i > 0 else -_INF
                hi = ms[i] if i < len(ms) else _INF
                a = max(start + lo - (e0 + 1), start)
                b = min(start + hi - (e0 + 1), stop)
                if a >= b:
                    continue
                entered = i > 0 and start + lo - (e0 + 1) >= start
                if entered and m.kind != "leaf":
                    raise _composite_entry_error(node.schedule, i, m.schedule)
                self._receive(m, int(a), b, "entry" if entered else "step")
        else:
            i = node.leaf
            if first == "entry":
                counter = self.calls[i] - 1 if self.leaves[i].counter == "step_count" else 0
            else:
                counter = self._counter(i) + 1
            self.intervals[i] = _Interval(start, stop, counter, first)


def _composite_entry_error(owner: Any, idx: int, member: Any) -> ValueError:
    kind = "ChainedScheduler" if isinstance(member, Chained) else "SequentialLR"
    return ValueError(
        f"SequentialLR switches to its member {idx} ({kind}) at milestone {owner.milestones[idx - 1]} by calling "
        f"its _update_lr(0), which a {kind} does not implement: torch raises NotImplementedError there. A composite "
        f"member of sequential_lr must be the one active at step 0 (index {owner.first} here)."
    )


# ----------------------------------------------------------------------------------------------
# 2 and 3. Segments and their closed forms
# ----------------------------------------------------------------------------------------------


class _Active(NamedTuple):
    leaf: Member
    counter: int  # at the segment's first step
    first: str  # "entry", "restep" (a step() from counter -1 to 0) or "step"
    position: int  # the leaf's position in the tree (depth first)


def _first_map(a: _Active) -> Affine:
    m = a.leaf
    if m.counter == "step_count":
        return m.step_map(uconst(a.counter))
    if a.first == "entry":
        return m.entry_map()
    if a.first == "restep":
        return m.restep_map()
    return m.step_map(uconst(a.counter))


def _event_map(m: Member, kind: str, counter: int) -> Affine:
    if m.counter == "step_count":
        return m.step_map(uconst(counter))
    if kind == "init":
        return m.init_map()
    if kind == "entry":
        return m.entry_map()
    return m.restep_map() if counter == 0 else m.step_map(uconst(counter))


def _first_is_reset(a: _Active) -> bool:
    """Whether the member's first update of the segment ignores the lr (statically known)."""
    if isinstance(a.leaf, AbsoluteMember):
        return True
    return a.first == "entry" and a.leaf.entry_is_fresh()


@dataclasses.dataclass
class _Segment:
    start: int
    stop: float
    active: list[_Active]
    fresh: Member | None = None  # a single member whose values are its own closed form
    mode: str = ""
    table: np.ndarray | None = None  # torch's recursion at steps start..start + len - 1
    table_length: int = 0
    tail: _Active | None = None  # after the table, this member alone runs its recursion

    def counters(self, k: jax.Array, a: _Active) -> jax.Array:
        """The member's counter at step ``k`` (``k >= start``)."""
        delta = a.counter - self.start
        if delta >= 0:
            return k + uconst(delta)
        return _steps.sub_clipped(k, -delta)

    def map_at(self, k: jax.Array, a: _Active) -> Affine:
        """The member's update at step ``k`` of this segment."""
        first = _first_map(a)
        if a.leaf.counter == "step_count" and a.first == "step":
            return a.leaf.step_map(self.counters(k, a))
        one = jnp.ones((), k.dtype)
        later = a.leaf.step_map(jnp.maximum(self.counters(k, a), one))
        at_start = k == uconst(self.start) if _steps.fits(self.start) else jnp.zeros(jnp.shape(k), bool)
        return Affine(jnp.where(at_start, first.a, later.a), jnp.where(at_start, first.c, later.c))

    def fold(self, k: jax.Array, lr: jax.Array, members: Sequence[_Active] | None = None) -> jax.Array:
        for a in self.active if members is None else members:
            lr = self.map_at(k, a)(lr)
        return lr


def _is_product_member(m: Member) -> bool:
    if isinstance(m, MultiplicativeMember):
        return True
    return isinstance(m, CosineAnnealingLR) and not _steps.is_traced(m.eta_min) and float(m.eta_min) == 0.0


class _Plan:
    """Everything a composite needs to evaluate: construction events, segments and their modes."""

    def __init__(self, root: Any, total_steps: int | None):
        machine = _Machine(root)
        self.leaves = machine.leaves
        self.initial_lr = _initial_lr(root)
        self.events = machine.events
        for ev in self.events:
            self._check_event(ev)
        self.total_steps = total_steps
        self.segments = self._segments(machine)
        self._choose_modes()
        self.bounds_cache: dict[Any, list[np.ndarray]] = {}

    @staticmethod
    def _error(m: Member, kind: str) -> str | None:
        return m.entry_error() if kind == "entry" else m.restep_error() if kind == "restep" else None

    def _check_event(self, ev: _Event) -> None:
        if ev.leaf < 0:
            return
        m = self.leaves[ev.leaf]
        kind = "restep" if ev.kind == "step" and ev.counter == 0 and m.counter != "step_count" else ev.kind
        message = self._error(m, kind)
        if message:
            raise ValueError(message)

    def _segments(self, machine: _Machine) -> list[_Segment]:
        bounds = {1}
        for iv in machine.intervals.values():
            bounds.add(iv.start)
            if iv.stop != _INF:
                bounds.add(int(iv.stop))
        edges = sorted(bounds)
        segments = []
        for j, start in enumerate(edges):
            stop = edges[j + 1] if j + 1 < len(edges) else _INF
            active = []
            for i, iv in sorted(machine.intervals.items()):
                if iv.start <= start and stop <= iv.stop:
                    counter = iv.counter + (start - iv.start)
                    if start == iv.start:
                        m = self.leaves[i]
                        first = (
                            "restep" if iv.first == "step" and counter == 0 and m.counter != "step_count" else iv.first
                        )
                        message = self._error(m, first)
                        if message:
                            raise ValueError(message)
                    else:
                        first = "step"
                    active.append(_Active(self.leaves[i], counter, first, i))
            segments.append(_Segment(start, stop, active))
        return segments

    # -- which closed form each segment uses ------------------------------------------------------

    def _choose_modes(self) -> None:
        # ``fresh``: (leaf index, counter) when the lr before the segment is that member's own value.
        fresh = self._construction_fresh()
        for seg in self.segments:
            a = seg.active
            if len(a) == 1:
                x = a[0]
                if x.first == "entry":
                    is_fresh = x.leaf.entry_is_fresh()
                elif x.first == "restep":
                    is_fresh = isinstance(x.leaf, AbsoluteMember)
                else:
                    is_fresh = isinstance(x.leaf, AbsoluteMember) or fresh == (x.position, x.counter - 1)
                seg.mode = "fresh" if is_fresh else "run"
                seg.fresh = x.leaf if is_fresh else None
                fresh = None
                if is_fresh and seg.stop != _INF:
                    fresh = (x.position, x.counter + int(seg.stop) - 1 - seg.start)
                continue
            fresh = None
            if not a:
                seg.mode = "hold"
            elif any(isinstance(x.leaf, AbsoluteMember) for x in a):
                seg.mode = "overwrite"
            elif all(_is_product_member(x.leaf) for x in a):
                seg.mode = "product"
            else:
                self._table_mode(seg)

    def _construction_fresh(self) -> tuple[int, int] | None:
        """``(leaf index, counter)`` if after construction the lr is that member's own value."""
        state: Any = "initial"
        for ev in self.events:
            if ev.kind == "reset":
                state = "initial"
                continue
            m = self.leaves[ev.leaf]
            if isinstance(m, AbsoluteMember):
                state = (ev.leaf, ev.counter)
            elif ev.kind == "init" and state == "initial" and _same(m.base, self.initial_lr):
                state = (ev.leaf, 0)
            elif ev.kind == "entry" and m.entry_is_fresh():
                state = (ev.leaf, 0)
            elif ev.kind == "step" and state == (ev.leaf, ev.counter - 1):
                state = (ev.leaf, ev.counter)
            else:
                state = None
        return state if isinstance(state, tuple) else None

    def _table_mode(self, seg: _Segment) -> None:
        """Torch's recursion tabulated from the segment's start: up to the last update of all members
        but one (the tail, which then runs alone in closed form), or to the segment's end, or to
        ``total_steps``."""
        lasts = []
        for x in seg.active:
            event = x.leaf.last_event()
            lasts.append(None if event is None else seg.start + max(event - x.counter, -1))
        unbounded = [i for i, e in enumerate(lasts) if e is None]
        seg.mode = "table"
        if len(unbounded) <= 1:
            tail = unbounded[0] if unbounded else int(np.argmax([e for e in lasts]))
            knot = max([seg.start] + [e for i, e in enumerate(lasts) if i != tail and e is not None])
            seg.tail, end = seg.active[tail], int(min(knot, seg.stop - 1))
        elif seg.stop != _INF:  # a bounded segment: tabulate all of it
            end = int(seg.stop) - 1
        elif self.total_steps is None:
            raise ValueError(
                "This combination has no closed form in torch: a member whose update depends on the lr itself "
                "(CosineAnnealingLR with eta_min > 0, SWALR, ...) combined with members that keep changing the lr "
                "(ExponentialLR, StepLR, ...), so torch's lr at step t depends on every earlier step. Pass "
                "total_steps=N: lrjax then precomputes torch's recursion for steps 0..N once, and each evaluation "
                "is one lookup (steps past N hold the last value)."
            )
        else:
            end = int(min(self.total_steps, seg.stop - 1))
        if self.total_steps is not None and end > self.total_steps:
            end, seg.tail = self.total_steps, None  # later steps hold the last value
        seg.table_length = max(0, end - seg.start + 1)
        if seg.table_length == 0:  # the segment starts past total_steps: the lr holds
            seg.mode = "hold"
        if seg.table_length > _MAX_TABLE:
            raise ValueError(
                f"This composite's value depends on torch's whole recursion from step {seg.start} to {end}, which "
                f"lrjax would tabulate ({seg.table_length} steps, more than {_MAX_TABLE}). Pass total_steps=N "
                "(at most that many steps; later steps hold the last value), or shorten the warm-up that keeps "
                "the members changing the lr."
            )

    @property
    def needs_tables(self) -> bool:
        return any(seg.mode == "table" and seg.table_length > 0 for seg in self.segments)


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def _construction_value(plan: _Plan) -> jax.Array:
    lr = const(plan.initial_lr)
    for ev in plan.events:
        if ev.kind == "reset":
            lr = const(plan.initial_lr)
        else:
            m = plan.leaves[ev.leaf]
            lr = _event_map(m, ev.kind, ev.counter)(lr)
    return lr


def _segment_value(plan: _Plan, seg: _Segment, k: jax.Array, lr_in: jax.Array) -> jax.Array:
    """The lr at steps ``k`` of ``seg`` (``k >= seg.start``), given the lr before its first step."""
    if seg.mode == "hold":
        return jnp.broadcast_to(lr_in, jnp.broadcast_shapes(jnp.shape(k), jnp.shape(lr_in)))
    if seg.mode == "fresh":
        assert seg.fresh is not None
        return seg.fresh.value(Step(seg.counters(k, seg.active[0])))
    if seg.mode == "run":
        a = seg.active[0]
        first = seg.map_at(uconst(seg.start), a)(lr_in)
        c0 = uconst(a.counter)
        return a.leaf.run(first, c0, jnp.maximum(seg.counters(k, a), c0))
    if seg.mode == "overwrite":
        last = max(i for i, x in enumerate(seg.active) if isinstance(x.leaf, AbsoluteMember))
        zero = jnp.zeros_like(const(plan.initial_lr))
        return seg.fold(k, zero, seg.active[last:])
    if seg.mode == "product":
        return _product_value(seg, k, lr_in)
    return _table_value(seg, k)


def _product_value(seg: _Segment, k: jax.Array, lr_in: jax.Array) -> jax.Array:
    """Members that scale the lr (and cosines with eta_min = 0, which reset it to 0 at T_max and
    restart at the step after): from the last reset R <= k, lr = fold(R + 1) * factors(R + 1, k)."""
    start = uconst(seg.start)
    before = start - jnp.ones((), k.dtype)
    reset = jnp.broadcast_to(before, jnp.shape(k))
    if any(_first_is_reset(a) for a in seg.active):
        reset = jnp.broadcast_to(start, jnp.shape(k))
    for a in seg.active:
        found = a.leaf.resets(seg.counters(k, a)) if isinstance(a.leaf, CosineAnnealingLR) else None
        if found is None:
            continue
        exists, v = found
        in_segment = exists & (v >= uconst(a.counter))
        at = v - uconst(a.counter) + start if a.counter <= seg.start else v + (start - uconst(a.counter))
        reset = jnp.where(in_segment & (at > reset), at, reset)
    has_reset = reset >= start
    zero = jnp.zeros_like(lr_in)
    lr_reset = jnp.where(has_reset, seg.fold(jnp.maximum(reset, start), zero), lr_in)
    after = reset + jnp.ones((), k.dtype)
    lr_after = seg.fold(after, lr_reset)
    factor = jnp.ones((), lr_in.dtype)
    for a in seg.active:
        leaf = a.leaf
        assert isinstance(leaf, (MultiplicativeMember, CosineAnnealingLR))
        factor = factor * leaf.factor_between(seg.counters(after, a), seg.counters(jnp.maximum(k, after), a))
    return jnp.where(k <= reset, lr_reset, lr_after * factor)


def _table_value(seg: _Segment, k: jax.Array) -> jax.Array:
    assert seg.table is not None
    table = seg.table
    n = table.shape[0]
    index = jnp.minimum(_steps.sub_clipped(k, seg.start), uconst(max(n - 1, 0))).astype(jnp.int32)
    looked_up = const(table)[index]
    if seg.tail is None or n == 0:
        return looked_up
    knot = seg.start + n - 1
    a = seg.tail
    c_knot = uconst(a.counter + n - 1)
    later = a.leaf.run(const(table[-1]), c_knot, jnp.maximum(seg.counters(k, a), c_knot))
    return jnp.where(k <= uconst(knot) if _steps.fits(knot) else True, looked_up, later)


def _boundaries(plan: _Plan) -> list[jax.Array]:
    """The lr after construction, then before each segment that the domain reaches."""
    lr = _construction_value(plan)
    out = [lr]
    for seg in plan.segments[:-1]:
        if seg.stop == _INF or not _steps.fits(int(seg.stop) - 1):
            break
        lr = _segment_value(plan, seg, uconst(int(seg.stop) - 1), lr)
        out.append(lr)
    return out


def _evaluate(plan: _Plan, k: jax.Array, bounds: Sequence[jax.Array]) -> jax.Array:
    lr0 = bounds[0]
    out = jnp.broadcast_to(lr0, jnp.broadcast_shapes(jnp.shape(k), jnp.shape(lr0)))
    for seg, lr_in in zip(plan.segments, bounds):
        if not _steps.fits(seg.start):
            break
        value = _segment_value(plan, seg, jnp.maximum(k, uconst(seg.start)), lr_in)
        out = jnp.where(k >= uconst(seg.start), value, out)
    return out


def _fill_tables(plan: _Plan) -> None:
    """torch's recursion over each table segment, in float64 (concrete hyperparameters only)."""

    def table(seg: _Segment, lr_in: jax.Array, n: int) -> jax.Array:
        steps = jnp.arange(n, dtype=jnp.uint64) + uconst(seg.start)
        one = [jax.eval_shape(lambda k, a=a: tuple(seg.map_at(k, a)), uconst(seg.start)) for a in seg.active]
        shape = jnp.broadcast_shapes(jnp.shape(lr_in), *[x.shape for m in one for x in m])
        maps = [
            tuple(jax.vmap(lambda k, a=a: tuple(jnp.broadcast_to(x, shape) for x in seg.map_at(k, a)))(steps))
            for a in seg.active
        ]

        def body(lr, ac):
            for a, c in ac:
                lr = a * lr + c
            return lr, lr

        return jax.lax.scan(body, jnp.broadcast_to(lr_in, shape), maps)[1]

    try:
        with jax.enable_x64(True):
            lr_in = jax.jit(lambda: _construction_value(plan))()
            for seg in plan.segments:
                if seg.mode == "table" and seg.table_length > 0:
                    n = seg.table_length
                    seg.table = np.asarray(jax.jit(lambda x, seg=seg, n=n: table(seg, x, n))(lr_in), np.float64)
                    seg.table.setflags(write=False)
                if seg.stop == _INF:
                    break
                lr_in = jax.jit(lambda x, seg=seg: _segment_value(plan, seg, uconst(int(seg.stop) - 1), x))(lr_in)
    except (
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerArrayConversionError,
        jax.errors.UnexpectedTracerError,
    ) as e:
        raise ValueError(
            "This composite has no closed form in torch, so lrjax precomputes torch's recursion; that needs "
            "concrete (not traced) hyperparameters."
        ) from e


# ----------------------------------------------------------------------------------------------
# The composites
# ----------------------------------------------------------------------------------------------


class _Composite(LRSchedule):
    schedules: tuple[Any, ...]
    total_steps: int | None

    torch_class: ClassVar[str]

    def _check_tree(self) -> None:
        leaves = _leaves(self)
        _validate.check_groups(**{f"member {i}": leaf.base for i, leaf in enumerate(leaves)})
        _check_bases(self)
        plan = _Plan(self, _horizon(self))
        if plan.needs_tables:
            _fill_tables(plan)
        object.__setattr__(self, "_plan", plan)

    @property
    def base(self) -> Any:
        return _initial_lr(self)

    @property
    def groups(self) -> int | None:
        sizes = [g for g in (leaf.groups for leaf in _leaves(self)) if g is not None]
        return max(sizes) if sizes else None

    def value(self, step: Step) -> jax.Array:
        plan: _Plan = getattr(self, "_plan")
        return _evaluate(plan, step.k, self._bounds(plan))

    def _bounds(self, plan: _Plan) -> list[jax.Array]:
        """The lr at the segments' boundaries: computed once per dtype when the hyperparameters are
        concrete, so neither an eager call nor a trace recomputes them."""
        if any(_steps.is_traced(v) for leaf in plan.leaves for v in leaf.kwargs.values()):
            return _boundaries(plan)
        key = (_steps.float_dtype(), _steps.uint_dtype())
        cache: dict = plan.bounds_cache
        if key not in cache:
            with jax.ensure_compile_time_eval():
                cache[key] = [np.asarray(b) for b in _boundaries(plan)]
        return [jnp.asarray(b) for b in cache[key]]

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={_validate.fmt(v)}"
            for k, v in self.kwargs.items()
            if k != "schedules" and not (k == "total_steps" and v is None)
        )
        return f"lrjax.{self.name}([{', '.join(map(repr, self.schedules))}]{extra})"

    @property
    def kwargs(self) -> dict[str, Any]:
        out = super().kwargs
        out["schedules"] = list(self.schedules)
        return out


def _horizon(node: Any) -> int | None:
    """The ``total_steps`` that bounds torch's tabulated recursion: the smallest given in the tree."""
    given = [node.total_steps] if node.total_steps is not None else []
    given += [h for m in node.schedules if isinstance(m, _Composite) for h in [_horizon(m)] if h is not None]
    return min(given) if given else None


def _check_bases(node: Any) -> None:
    """Members of a ChainedScheduler act on one optimizer, so they share its initial lr."""
    if isinstance(node, Chained):
        initial = _initial_lr(node)
        first = _leaves(node)[0]
        for i, m in enumerate(node.schedules):
            if isinstance(m, CyclicLR) and i > 0:
                continue  # CyclicLR uses its own base_lr
            base = m.base if not isinstance(m, _Composite) else _initial_lr(m)
            if not _same(base, initial):
                if isinstance(first, CyclicLR):
                    raise ValueError(
                        "In torch, a CyclicLR constructed first sets the optimizer's lr, and so the initial_lr every "
                        f"later scheduler uses as its base, to its own base_lr ({_validate.fmt(first.base_lr)}); build "
                        f"the other members with base_lr={_validate.fmt(first.base_lr)} (got {_validate.fmt(base)})."
                    )
                raise ValueError(
                    "chained_scheduler members act on one optimizer, so they must share base_lr: "
                    f"index {i} has base_lr={_validate.fmt(base)}, index 0 has {_validate.fmt(initial)}."
                )
    if isinstance(node, _Composite):
        for m in node.schedules:
            _check_bases(m)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Chained(_Composite):
    schedules: Any
    total_steps: int | None = dataclasses.field(default=None, kw_only=True)

    name: ClassVar[str] = "chained_scheduler"
    torch_class: ClassVar[str] = "ChainedScheduler"

    def _validate(self) -> None:
        self._set(
            "schedules",
            _members(
                "ChainedScheduler",
                self.schedules,
                "ChainedScheduler expects at least one scheduler to be chained, but got no scheduler.",
            ),
        )
        if self.total_steps is not None:
            self._set("total_steps", _validate.integer(self.total_steps, "total_steps", minimum=0))
        self._check_tree()


def chained_scheduler(schedules: Sequence[LRSchedule], *, total_steps: int | None = None) -> Chained:
    r"""Runs several schedules on one learning rate, each step applying every member in list order.

    Port of `torch.optim.lr_scheduler.ChainedScheduler
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ChainedScheduler.html>`_.
    Build the members with one shared ``base_lr`` (torch's single optimizer). ``schedule(t)``
    equals the lr torch holds after ``t`` calls of ``ChainedScheduler.step()``, where each call
    steps every member on the lr left by the previous one. Members may themselves be
    :func:`chained_scheduler` or :func:`sequential_lr` schedules, to any depth.

    When every member multiplies the lr (StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR,
    PolynomialLR, MultiplicativeLR), that is the product of the members' factors:

    .. math:: \eta_t = \eta_0 \prod_i \frac{\eta^{(i)}_t}{\eta_0}

    torch's recursion differs from the product, and lrjax follows torch, when

    * a member overwrites the lr (LambdaLR, CyclicLR, CosineAnnealingWarmRestarts): the members
      before the last such one are ignored, the ones after it apply a single step's update;
    * a CosineAnnealingLR is past ``T_max``: its restart adds ``(base_lr - eta_min)(1 - cos(pi/T_max))/2``,
      not scaled by the other members;
    * a CosineAnnealingLR has ``eta_min > 0`` (or a SWALR anneals): it computes
      ``(lr - eta_min) ratio + eta_min`` on the chained lr, so the order of the members matters.

    Each evaluation costs O(1) in ``t``. The only combinations whose torch value depends on every
    earlier step, and so have no closed form, are members of the last kind chained with members
    that change the lr forever (ExponentialLR, StepLR, ...): for those, pass ``total_steps`` and
    lrjax precomputes torch's recursion once. After a finite warm-up (LinearLR, ConstantLR,
    MultiStepLR, PolynomialLR) no horizon is needed: a table up to the warm-up's end, then the
    member's own closed form.

    Args:
        schedules: lrjax schedules sharing ``base_lr``.
        total_steps: horizon for the combinations above that have no closed form; later steps hold
            the last value.

    Raises:
        ValueError: torch's "expects at least one scheduler" message; members with different
            ``base_lr``; momentum schedules, one_cycle_lr (torch's OneCycleLR rewrites the other
            members' base lr), ReduceLROnPlateau (torch's message); a combination without closed
            form and without ``total_steps``.

    .. note::
        The lr at step 0 is what the members' constructors leave, built in list order (torch's
        ConstantLR and LinearLR apply their factor when constructed). A fractional step is
        floored: torch steps a ChainedScheduler by whole steps only.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.chained_scheduler(
        ...     [lrjax.constant_lr(1.0, factor=0.1, total_iters=2), lrjax.exponential_lr(1.0, gamma=0.9)])
        >>> [round(float(schedule(t)), 6) for t in range(5)]
        [0.1, 0.09, 0.81, 0.729, 0.6561]
    """
    return Chained(schedules, total_steps=total_steps)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Sequential(_Composite):
    schedules: Any
    milestones: Any
    total_steps: int | None = dataclasses.field(default=None, kw_only=True)

    name: ClassVar[str] = "sequential_lr"
    torch_class: ClassVar[str] = "SequentialLR"

    @property
    def first(self) -> int:
        """The member active at step 0: ``bisect_right(milestones, 0)``."""
        return bisect.bisect_right(self.milestones, 0)

    def _validate(self) -> None:
        members = _members(
            "SequentialLR", self.schedules, "SequentialLR expects at least one scheduler, but got no scheduler."
        )
        if isinstance(self.milestones, (str, bytes)) or not isinstance(self.milestones, Sequence):
            raise ValueError(f"milestones must be a list of step indices, got {self.milestones!r}")
        milestones = list(self.milestones)
        if len(milestones) != len(members) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than the number of "
                f"milestone points, but got number of schedulers {len(members)} and the number of milestones to "
                f"be equal to {len(milestones)}"
            )
        message = f"milestones must be non-negative integers, got {milestones}"
        ms = tuple(_validate.integer(m, "milestones", minimum=0, message=message) for m in milestones)
        if any(b < a for a, b in zip(ms, ms[1:])):
            raise ValueError(
                f"milestones must be non-decreasing, got {list(ms)}: torch bisects them as given, so a decreasing "
                "list silently skips schedulers."
            )
        self._set("schedules", members)
        self._set("milestones", ms)
        if self.total_steps is not None:
            self._set("total_steps", _validate.integer(self.total_steps, "total_steps", minimum=0))
        self._check_tree()

    @property
    def kwargs(self) -> dict[str, Any]:
        return {**super().kwargs, "milestones": list(self.milestones)}


def sequential_lr(
    schedules: Sequence[LRSchedule], milestones: Sequence[int], *, total_steps: int | None = None
) -> Sequential:
    r"""Runs schedules one after another, switching at the milestones.

    Port of `torch.optim.lr_scheduler.SequentialLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.SequentialLR.html>`_:

    .. math:: \eta_t = s_i(t - m_i) \quad \text{for } m_i \le t < m_{i+1} \quad (m_0 = 0)

    ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``SequentialLR.step()``: each
    member restarts from its own step 0 at its milestone (the ``optax.join_schedules`` semantics; a
    warm-up cut short jumps to the next member's start). Build warm-up + decay as
    ``sequential_lr([linear_lr(lr, 0.01, total_iters=w), cosine_annealing_lr(lr, T_max=n - w)], [w])``.

    Args:
        schedules: lrjax schedules; members may have different ``base_lr`` (torch's share one).
            The member active at step 0 may be a :func:`chained_scheduler` or :func:`sequential_lr`.
        milestones: non-decreasing step indices at which to switch to the next schedule.
        total_steps: horizon for nested combinations without closed form (see
            :func:`chained_scheduler`).

    Raises:
        ValueError: torch's messages for no schedulers and for a wrong number of milestones; a
            negative or decreasing milestone (torch bisects an unsorted list as given, silently
            skipping schedulers); LinearLR/PolynomialLR with ``total_iters=0`` after a milestone
            (torch divides by zero there); a composite member after a milestone (torch raises
            NotImplementedError when it switches to it); momentum schedules, one_cycle_lr and
            ReduceLROnPlateau (see :func:`chained_scheduler`).

    .. note::
        Where torch differs from a plain join, lrjax follows torch: a MultiplicativeLR after a
        milestone multiplies the lr reached so far by ``lr_lambda(0)``, ``lr_lambda(1)``, ...
        (it does not restart from ``base_lr``); a ConstantLR with ``total_iters=0`` after a
        milestone holds ``base_lr`` (its closed form), not ``base_lr * factor``; a SWALR after a
        milestone anneals from the lr reached so far. A milestone 0 skips the first schedule, as in
        torch. A SequentialLR nested as the first member of a SequentialLR is stepped once more by
        torch at construction, so its own milestones come one step early; lrjax does the same. A
        fractional step is floored.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.sequential_lr(
        ...     [lrjax.constant_lr(1.0, factor=0.1, total_iters=2), lrjax.exponential_lr(1.0, gamma=0.9)],
        ...     milestones=[2])
        >>> [round(float(schedule(t)), 6) for t in range(5)]
        [0.1, 0.1, 1.0, 0.9, 0.81]
    """
    return Sequential(schedules, milestones, total_steps=total_steps)


# ----------------------------------------------------------------------------------------------
# from_torch converters (lrjax.from_torch finds them through the registry)
# ----------------------------------------------------------------------------------------------


def _from_torch_chained_scheduler(s: Any, total_steps: int | None) -> Chained:
    from lrjax._torch import convert

    return chained_scheduler([convert(m, total_steps) for m in s._schedulers], total_steps=total_steps)


def _from_torch_sequential_lr(s: Any, total_steps: int | None) -> Sequential:
    from lrjax._torch import convert

    return sequential_lr([convert(m, total_steps) for m in s._schedulers], list(s._milestones), total_steps=total_steps)
