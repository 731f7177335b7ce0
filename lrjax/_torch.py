"""Converting a live torch scheduler object into the equal lrjax schedule: ``from_torch``."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _steps, registry
from lrjax._schedule import LRSchedule, const
from lrjax._steps import Step
from lrjax._torch_util import floats as _floats
from lrjax._torch_util import import_torch

# Relative tolerance of the checks that the converted schedule reproduces the torch object's state.
_CHECK_RTOL = 1e-6


def _entry(scheduler: Any) -> registry.Entry | None:
    """The registry entry of ``scheduler``'s class (torch's own classes only, not subclasses)."""
    import_torch()
    for entry in registry.entries():
        if entry.torch_class is not None and type(scheduler) is entry.torch_type():
            return entry
    return None


def _is_scheduler(scheduler: Any) -> bool:
    torch = import_torch()
    return isinstance(scheduler, (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau))


def convert(scheduler: Any, total_steps: int | None) -> LRSchedule:
    """The lrjax schedule of one torch scheduler (members of composites included)."""
    entry = _entry(scheduler)
    if entry is not None and entry.role == "plateau":
        raise ValueError("torch's ChainedScheduler and SequentialLR do not take ReduceLROnPlateau members.")
    if entry is None or entry.converter is None:
        raise _Unconvertible(scheduler)
    return entry.converter(scheduler, total_steps)


class _Unconvertible(ValueError):
    def __init__(self, scheduler: Any):
        self.scheduler = scheduler
        super().__init__(
            f"{type(scheduler).__qualname__} is not one of torch's own scheduler classes, so lrjax cannot read its "
            "rule; pass total_steps=N to from_torch to tabulate it by stepping a copy N times."
        )


# ----------------------------------------------------------------------------------------------
# Schedulers lrjax has no rule for (user subclasses): tabulated by stepping a copy
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class TorchTable(LRSchedule):
    """A torch scheduler's values, recorded by stepping a copy of it: ``values[t]`` for ``t <= N``
    (one column per parameter group); fractional steps are floored, later steps hold the last value."""

    values: Any
    torch_class: str = ""
    what: str = "lr"

    name: ClassVar[str] = "from_torch"

    def value(self, step: Step) -> jax.Array:
        table = self.values
        index = _steps.minimum(step.k, table.shape[0] - 1).astype(jnp.int32)
        return const(table)[index]

    @property
    def groups(self) -> int | None:
        return int(self.values.shape[1]) if np.ndim(self.values) == 2 else None

    def __repr__(self) -> str:
        return f"lrjax.from_torch(<{self.torch_class}>, total_steps={self.values.shape[0] - 1})"

    @property
    def kwargs(self) -> dict[str, Any]:
        raise ValueError(f"{self!r} was recorded from a torch object and has no config")


def _momenta(optimizer: Any) -> list[float]:
    return [float(g["betas"][0]) if "betas" in g else float(g.get("momentum", 0.0)) for g in optimizer.param_groups]


def _tabulate(scheduler: Any, total_steps: int) -> tuple[TorchTable, TorchTable | None]:
    """Steps a copy of ``scheduler`` ``total_steps`` times, recording the lr and momentum per group.

    The copy shares the optimizer's parameters and state tensors (the scheduler never touches them),
    so a large model is not copied.
    """
    if getattr(scheduler, "_step_count", 1) != 1:
        raise ValueError(
            f"{type(scheduler).__qualname__} has already been stepped; from_torch tabulates a scheduler from its "
            "construction, so convert it right after building it."
        )
    optimizer = scheduler.optimizer
    memo: dict[int, Any] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            memo[id(p)] = p
    for state in optimizer.state.values():
        for v in state.values() if isinstance(state, dict) else []:
            memo[id(v)] = v
    twin = copy.deepcopy(scheduler, memo)
    lrs, moms = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(total_steps + 1):
            if t:
                twin.step()
            lrs.append(_floats(g["lr"] for g in twin.optimizer.param_groups))
            moms.append(_momenta(twin.optimizer))
    name = type(scheduler).__qualname__

    def table(rows: list[list[float]], what: str) -> TorchTable:
        arr = np.asarray(rows, np.float64)
        arr = arr[:, 0] if arr.shape[1] == 1 else arr
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} produced a non-finite {what} within {total_steps} steps")
        arr.setflags(write=False)
        return TorchTable(arr, name, what)

    constant_momentum = all(row == moms[0] for row in moms)
    return table(lrs, "lr"), None if constant_momentum else table(moms, "momentum")


# ----------------------------------------------------------------------------------------------
# The check that the converted schedule reproduces the torch object's current state
# ----------------------------------------------------------------------------------------------


def _steps_taken(scheduler: Any) -> int:
    """How many ``step()`` calls the object has had since construction."""
    torch = import_torch()
    L = torch.optim.lr_scheduler
    if type(scheduler) is L.ChainedScheduler:
        counts = {_steps_taken(m) for m in scheduler._schedulers}
        if len(counts) != 1:
            raise ValueError(
                "the members of this ChainedScheduler have been stepped different numbers of times "
                f"(last_epoch {sorted(counts)}), so no schedule counted from construction matches it. Convert "
                "the ChainedScheduler right after building it."
            )
        return counts.pop()
    if type(scheduler) is torch.optim.swa_utils.SWALR:
        return int(scheduler._step_count) - 1
    return int(scheduler.last_epoch)


def _check_current(scheduler: Any, lr: LRSchedule, momentum: LRSchedule | None, total_steps: int | None) -> None:
    name = type(scheduler).__name__
    t = _steps_taken(scheduler)
    if total_steps is not None and t > total_steps:
        raise ValueError(
            f"{name} has been stepped {t} times, beyond total_steps={total_steps}; pass total_steps >= {t}."
        )
    optimizer = scheduler.optimizer
    pairs = [("lr", lr, _floats(g["lr"] for g in optimizer.param_groups))]
    if momentum is not None:
        pairs.append(("momentum", momentum, _momenta(optimizer)))
    for what, schedule, held in pairs:
        with jax.enable_x64(True):  # one compiled call: cheaper than op-by-op for composite schedules
            ours = np.broadcast_to(np.asarray(jax.jit(schedule)(t), np.float64), (len(held),))
        held = np.asarray(held, np.float64)
        scale = max(float(np.max(np.abs(held))), 1e-300)
        if not np.all(np.abs(ours - held) <= _CHECK_RTOL * np.abs(held) + 1e-12 * scale):
            raise ValueError(
                f"the optimizer holds {what} {held.tolist()} after {t} steps of this {name}, but the scheduler's "
                f"hyperparameters give {ours.tolist()}: the {what} was changed outside the scheduler (set by hand, "
                "by another scheduler on the same optimizer (wrap them in a ChainedScheduler), by "
                "optimizer.load_state_dict, or by step(epoch) with a fractional epoch). from_torch rebuilds the "
                "schedule from the scheduler's construction, so it cannot reproduce that."
            )


def _momentum(scheduler: Any, entry: registry.Entry, total_steps: int | None) -> LRSchedule | None:
    if entry.momentum is not None:
        converter = registry.lookup(entry.momentum).converter
        assert converter is not None
        return converter(scheduler, total_steps)
    if entry.composite:
        cycling = []
        for m in scheduler._schedulers:
            e = _entry(m)
            if e is not None and (e.momentum is not None or e.composite) and _momentum(m, e, total_steps) is not None:
                cycling.append(m)
        if not cycling:
            return None
        if entry.torch_class == "ChainedScheduler" and len(cycling) == 1:
            # Every chain step runs every member; only this one writes the momentum.
            m = cycling[0]
            return _momentum(m, _entry(m), total_steps)  # type: ignore[arg-type]
        raise ValueError(
            f"from_torch(..., momentum=True) cannot convert the momentum of a {entry.torch_class} whose members "
            f"{[type(m).__name__ for m in cycling]} cycle it (the momentum depends on which member ran last). "
            "Convert the members' momentum separately, or build them with cycle_momentum=False."
        )
    return None


# ----------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------


def from_torch(scheduler: Any, *, total_steps: int | None = None, momentum: bool = False) -> Any:
    r"""The lrjax schedule equal to a live ``torch.optim.lr_scheduler`` object.

    Reads the hyperparameters from the object (``base_lrs``, which already hold torch's
    ``initial_lr`` side effects, ``step_size``, ``gamma``, ``milestones``, ``lr_lambdas``,
    ``T_max``, CyclicLR's ``max_lrs``/``total_size``/``step_ratio``, OneCycleLR's phases and group
    ``max_lr``/``initial_lr``/``min_lr``, the members of ChainedScheduler and SequentialLR, ...) and
    builds the same schedule with lrjax's functions, so a torch recipe converts in one line::

        lr = lrjax.from_torch(torch_scheduler)
        optimizer = optax.sgd(learning_rate=lr)

    ``schedule(t)`` is the lr torch holds after ``t`` calls of ``scheduler.step()`` **counted from
    the scheduler's construction**, one value per parameter group (a scalar for a single group).
    A scheduler that has already been stepped converts too: its current lr is
    ``schedule(scheduler.last_epoch)``, so resume optax's step count there. from_torch checks
    this: the schedule at the current step must reproduce the lr (and momentum) the optimizer holds
    now, else it raises (the lr was then changed outside the scheduler, which a schedule counted
    from construction cannot reproduce).

    Args:
        scheduler: a torch scheduler: LambdaLR, MultiplicativeLR, StepLR, MultiStepLR, ConstantLR,
            LinearLR, ExponentialLR, PolynomialLR, CosineAnnealingLR, CosineAnnealingWarmRestarts,
            CyclicLR, OneCycleLR, ``torch.optim.swa_utils.SWALR``, ChainedScheduler and SequentialLR
            (nested to any depth) or ReduceLROnPlateau; or any other ``LRScheduler`` (a user
            subclass) with ``total_steps``.
        total_steps: a horizon for what has no rule lrjax can read. torch's ``lr_lambda``
            (LambdaLR, MultiplicativeLR) and CyclicLR's ``scale_fn`` are plain Python functions.
            Without ``total_steps`` they are traced by JAX with a float step, which works for
            arithmetic such as ``lambda epoch: 0.95 ** epoch`` or ``2 ** -(epoch // 200)``
            (from_torch compares the traced function with the Python one, called with ints, at
            several hundred steps up to 2**32 and raises if they differ); a function JAX cannot
            trace (``min(...)``, ``if``) then raises, asking for ``total_steps``. With
            ``total_steps=N`` the functions are evaluated once with Python ints, exactly as torch
            calls them, for steps ``0..N``, and the schedule looks the values up; later steps hold
            the last value. A scheduler class that is not torch's own (a subclass may compute any
            lr in its ``get_lr``) is recorded by stepping a copy of it N times (the copy shares the
            optimizer's parameters, so nothing large is copied). Also passed to
            :func:`lrjax.chained_scheduler` / :func:`lrjax.sequential_lr` for combinations without
            closed form.
        momentum: if True, return ``(lr_schedule, momentum_schedule)``, where the second is the
            momentum CyclicLR/OneCycleLR write into the optimizer (SGD's ``momentum``, Adam's
            ``betas[0]``; see :func:`lrjax.cyclic_momentum`), or ``None`` for a scheduler that does
            not change the momentum (``cycle_momentum=False``, every other class).

    Returns:
        An :class:`lrjax.LRSchedule`, or ``(lr, momentum)`` with ``momentum=True``. For a recorded
        subclass, a lookup table of its values (its momentum table is None when it never changes). For a
        ReduceLROnPlateau, whose lr depends on the metrics rather than the step, a
        :class:`lrjax.StatefulPlateau` (an optax ``StatefulSchedule`` for
        ``optax.inject_hyperparams``, fed by :func:`lrjax.plateau_step` as torch's
        ``scheduler.step(metric)``) whose ``init()`` holds the object's state now (the optimizer's lr
        per group, ``best``, ``num_bad_epochs``, ``cooldown_counter``, ``last_epoch``); its
        ``.plateau`` is the :func:`lrjax.reduce_lr_on_plateau` state machine with the same settings.
        With ``momentum=True``: ``(plateau, None)``.

    Raises:
        ImportError: if torch is not installed.
        ValueError: for an object that is not a torch scheduler; a subclass without
            ``total_steps`` (or one already stepped); a function JAX cannot trace (or traces to
            other values) without ``total_steps``; a scheduler whose optimizer lr was changed
            outside it; any combination lrjax itself refuses (e.g. a OneCycleLR inside a
            ChainedScheduler), with lrjax's message.

    .. note::
        Where torch accepts a value lrjax's own functions reject but behaves like a valid one,
        from_torch converts to the equivalent: a negative StepLR ``step_size`` or CosineAnnealingLR
        ``T_max`` acts as its absolute value, a negative ``total_iters`` as 0, and a negative
        MultiStepLR milestone is never reached.

    Examples:
        >>> import torch, lrjax
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
        >>> torch_scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
        >>> lrjax.from_torch(torch_scheduler)
        lrjax.step_lr(base_lr=0.05, step_size=30, gamma=0.1)
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05, momentum=0.9)
        >>> cyc = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=4)
        >>> lr, momentum = lrjax.from_torch(cyc, momentum=True)
        >>> round(float(lr(4)), 6), round(float(momentum(4)), 6)
        (0.1, 0.8)
    """
    import_torch()
    if total_steps is not None:
        from lrjax._validate import integer

        total_steps = integer(total_steps, "total_steps", minimum=0)
    if not isinstance(momentum, bool):
        raise ValueError(f"momentum must be True or False, got {momentum!r}")
    if not _is_scheduler(scheduler):
        names = ", ".join(e.torch_class for e in registry.entries() if e.torch_class)
        raise ValueError(f"from_torch takes a torch scheduler object ({names}), got {scheduler!r}.")
    entry = _entry(scheduler)
    if entry is not None and entry.role == "plateau":
        converted = entry.converter(scheduler, total_steps)  # type: ignore[misc]
        return (converted, None) if momentum else converted
    try:
        lr = convert(scheduler, total_steps)
        mom = _momentum(scheduler, entry, total_steps) if momentum and entry is not None else None
    except _Unconvertible as e:
        if total_steps is None:
            raise ValueError(
                f"{type(e.scheduler).__qualname__} is not one of torch's own scheduler classes (it may compute any "
                "lr in its get_lr), so lrjax cannot read a rule from it. Pass total_steps=N: from_torch then "
                "records the lr (and momentum) by stepping a copy of the scheduler N times, and the schedule looks "
                "the values up (later steps hold the last value)."
            ) from None
        lr_table, mom_table = _tabulate(scheduler, total_steps)
        return (lr_table, mom_table) if momentum else lr_table
    _check_current(scheduler, lr, mom, total_steps)
    return (lr, mom) if momentum else lr
