"""Converting a live torch scheduler object into the equal lrjax schedule: ``from_torch``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _base
from lrjax._base import LRSchedule
from lrjax._compose import chained_scheduler, sequential_lr
from lrjax._cosine import cosine_annealing_lr, cosine_annealing_warm_restarts
from lrjax._cyclic import cyclic_lr, cyclic_momentum
from lrjax._lambda import lambda_lr, multiplicative_lr
from lrjax._linear import constant_lr, linear_lr, polynomial_lr
from lrjax._one_cycle import one_cycle_lr, one_cycle_momentum
from lrjax._plateau import reduce_lr_on_plateau
from lrjax._step import exponential_lr, multi_step_lr, step_lr

# How many steps (or cycles) a traced lr_lambda / scale_fn is compared with its Python self.
_CHECK_STEPS = 128
# Relative tolerance of the checks that the converted schedule reproduces the torch object's state.
_CHECK_RTOL = 1e-6


def _import_torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "lrjax.from_torch needs PyTorch to read the scheduler; install it with `pip install lrjax[torch]`."
        ) from e
    return torch


def _floats(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values]  # float() also reads 0-d tensors (tensor lrs)


def _groups(values: Sequence[Any]) -> float | list[float]:
    """One value per parameter group: a scalar for a single group (so the schedule returns a scalar)."""
    values = _floats(values)
    return values[0] if len(values) == 1 else values


def _one_or_list(fns: Sequence[Callable]) -> Callable | list[Callable]:
    """torch stores ``[fn] * groups`` for a single lr_lambda: give lrjax the single function back."""
    fns = list(fns)
    return fns[0] if all(f is fns[0] for f in fns) else fns


def _name(scheduler: Any) -> str:
    return type(scheduler).__name__


# ----------------------------------------------------------------------------------------------
# User functions: lr_lambda and scale_fn
# ----------------------------------------------------------------------------------------------


def _traceable(fn: Callable) -> bool:
    return _base.Probe(fn, "function").traceable


def _check_same_in_jax(fn: Callable, args: range, what: str, scheduler: Any, dtype=jnp.int64) -> None:
    """Raises if ``fn`` traced by JAX disagrees with ``fn`` called on Python ints, as torch calls it.

    A torch lambda such as ``lambda epoch: 2 ** -epoch`` traces without error but computes an
    integer power under JAX; comparing the two on the first steps catches that. ``dtype`` is what
    lrjax passes the function (integer steps for lr_lambda, floats for CyclicLR's scale_fn).
    """
    with jax.enable_x64(True):
        traced = np.asarray(jax.vmap(lambda k: jnp.asarray(fn(k)).astype(jnp.float64))(
            jnp.asarray(list(args), dtype)))
    for k, value in zip(args, traced):
        expected = float(fn(k))
        if not (value == expected or abs(value - expected) <= 1e-9 * max(abs(expected), abs(value))):
            raise ValueError(
                f"{what} of {_name(scheduler)} gives {value!r} at {k} when JAX traces it, but {expected!r} in "
                f"Python, as torch calls it. Pass total_steps=N to from_torch: lrjax then calls {what} with "
                "Python ints, as torch does, for steps 0..N."
            )


def _python_table(fn: Callable, last: int, first: int) -> Callable:
    """``fn`` called with the Python ints ``first..last``, as torch calls it, as a JAX lookup function.

    (Handing a traceable ``fn`` to lrjax with ``total_steps`` would evaluate it traced, where
    ``lambda epoch: 2 ** -epoch`` is an integer power.) MultiplicativeLR never calls ``fn(0)``
    (``first=1``): it is tabulated only if it can be computed, for SequentialLR, which calls it.
    """
    table = np.full(last + 1, np.nan, dtype=np.float64)
    for k in range(last + 1):
        try:
            table[k] = float(fn(k))
        except Exception:  # noqa: BLE001 - torch never calls fn(k) for k < first
            if k >= first:
                raise

    def lookup(step):
        index = jnp.clip(jnp.asarray(step), 0, last)
        return _base.const(table)[index]

    lookup.__name__ = getattr(fn, "__name__", "lr_lambda")
    return lookup


def _lambdas(scheduler: Any, total_steps: int | None, first: int = 0) -> Callable | list[Callable]:
    fns = _one_or_list(scheduler.lr_lambdas)
    listed = fns if isinstance(fns, list) else [fns]
    if total_steps is not None:
        tables = [_python_table(f, total_steps, first) for f in listed]
        return tables if isinstance(fns, list) else tables[0]
    for f in listed:
        if not _traceable(f):
            raise ValueError(
                f"the lr_lambda of {_name(scheduler)} is a Python function JAX cannot trace "
                f"({getattr(f, '__name__', f)!r}). Pass total_steps=N to from_torch: lrjax then evaluates it "
                "once per step for steps 0..N with Python ints, exactly as torch calls it, and the schedule "
                "looks the values up (later steps hold the last value)."
            )
        _check_same_in_jax(f, range(first, _CHECK_STEPS), "lr_lambda", scheduler)
    return fns


def _scale_fn(scheduler: Any, total_steps: int | None) -> Callable | None:
    """CyclicLR's custom scale_fn, as a function JAX can trace (tabulated when ``total_steps`` is given)."""
    fn = scheduler._scale_fn_custom
    if fn is None:
        return None
    by_cycle = scheduler.scale_mode == "cycle"
    if total_steps is None:
        if not _traceable(fn):
            raise ValueError(
                f"the scale_fn of {_name(scheduler)} is a Python function JAX cannot trace "
                f"({getattr(fn, '__name__', fn)!r}). Pass total_steps=N to from_torch: lrjax then tabulates it "
                "with Python ints, as torch calls it, over the first N steps."
            )
        _check_same_in_jax(fn, range(1, _CHECK_STEPS) if by_cycle else range(_CHECK_STEPS), "scale_fn", scheduler,
                           dtype=jnp.float64)
        return fn
    # torch calls scale_fn(cycle) with cycle = floor(1 + t / total_size), or scale_fn(t).
    first, last = (1, math.floor(1 + total_steps / scheduler.total_size)) if by_cycle else (0, total_steps)
    table = np.asarray([float(fn(k)) for k in range(first, last + 1)], dtype=np.float64)

    def tabulated(x):
        index = jnp.clip(jnp.floor(jnp.asarray(x)), first, last).astype(jnp.int32) - first
        return _base.const(table)[index]

    tabulated.__name__ = f"{getattr(fn, '__name__', 'scale_fn')}_tabulated"
    return tabulated


# ----------------------------------------------------------------------------------------------
# One converter per torch class
# ----------------------------------------------------------------------------------------------


def _lambda_lr(s, total_steps):
    return lambda_lr(_groups(s.base_lrs), _lambdas(s, total_steps), total_steps=total_steps)


def _multiplicative_lr(s, total_steps):
    fns = _one_or_list(s.lr_lambdas)
    if total_steps is None:
        for f in fns if isinstance(fns, list) else [fns]:
            probe = _base.Probe(f, "lr_lambda")
            if probe.traceable and probe.depends_on_step:
                raise ValueError(
                    f"the lr_lambda of {_name(s)} depends on the step, so the lr is the product "
                    "lr_lambda(1) * ... * lr_lambda(t), which has no closed form. Pass total_steps=N to "
                    "from_torch: lrjax then tabulates the product for steps 0..N, calling lr_lambda with "
                    "Python ints as torch does."
                )
    # torch never calls lr_lambda(0) for MultiplicativeLR: compare from step 1.
    return multiplicative_lr(_groups(s.base_lrs), _lambdas(s, total_steps, first=1), total_steps=total_steps)


def _step_lr(s, total_steps):
    # torch decays when t % step_size == 0: a negative step_size acts as its absolute value.
    return step_lr(_groups(s.base_lrs), step_size=abs(s.step_size), gamma=s.gamma)


def _multi_step_lr(s, total_steps):
    # A Counter: elements() repeats a milestone as often as it was given. Negative ones never apply.
    milestones = sorted(m for m in s.milestones.elements() if m >= 0)
    return multi_step_lr(_groups(s.base_lrs), milestones=milestones, gamma=s.gamma)


def _iters(n: int) -> int:
    # A negative total_iters is never reached by last_epoch: torch then behaves as with total_iters=0.
    return max(int(n), 0)


def _constant_lr(s, total_steps):
    return constant_lr(_groups(s.base_lrs), factor=s.factor, total_iters=_iters(s.total_iters))


def _linear_lr(s, total_steps):
    return linear_lr(_groups(s.base_lrs), start_factor=s.start_factor, end_factor=s.end_factor,
                           total_iters=_iters(s.total_iters))


def _exponential_lr(s, total_steps):
    return exponential_lr(_groups(s.base_lrs), gamma=s.gamma)


def _polynomial_lr(s, total_steps):
    return polynomial_lr(_groups(s.base_lrs), total_iters=_iters(s.total_iters), power=s.power)


def _cosine_annealing_lr(s, total_steps):
    # torch's recursion only uses T_max through cos(pi / T_max) and t % (2 T_max): -T_max acts as T_max.
    return cosine_annealing_lr(_groups(s.base_lrs), T_max=abs(s.T_max), eta_min=s.eta_min)


def _cosine_annealing_warm_restarts(s, total_steps):
    return cosine_annealing_warm_restarts(_groups(s.base_lrs), T_0=s.T_0, T_mult=s.T_mult, eta_min=s.eta_min)


def _cyclic_step_sizes(s) -> tuple[float, float]:
    """``step_size_up`` and ``step_size_down`` back from torch's ``total_size`` and ``step_ratio``."""
    total, ratio = float(s.total_size), float(s.step_ratio)
    up = total * ratio
    if abs(up - round(up)) <= 1e-9 * total and round(up) / total == ratio:
        up = float(round(up))
    else:  # a fractional step size: find the float torch divided
        for candidate in (up, math.nextafter(up, math.inf), math.nextafter(up, -math.inf)):
            if candidate / total == ratio and candidate + (total - candidate) == total:
                up = candidate
                break
    return up, total - up


def _cyclic_shared(s, total_steps) -> dict[str, Any]:
    up, down = _cyclic_step_sizes(s)
    return {"step_size_up": up, "step_size_down": down, "mode": s.mode, "gamma": s.gamma,
            "scale_fn": _scale_fn(s, total_steps), "scale_mode": s.scale_mode}


def _cyclic_lr(s, total_steps):
    return cyclic_lr(_groups(s.base_lrs), _groups(s.max_lrs), **_cyclic_shared(s, total_steps))


def _cyclic_momentum(s, total_steps):
    if not s.cycle_momentum:
        return None
    return cyclic_momentum(_groups(s.base_momentums), _groups(s.max_momentums), **_cyclic_shared(s, total_steps))


def _one_cycle_common(s) -> dict[str, Any]:
    phases = s._schedule_phases
    # end_step of the first phase is float(pct_start * total_steps) - 1: find the pct_start that gives
    # exactly that float (the quotient may be one ulp off).
    target = float(phases[0]["end_step"]) + 1
    T = s.total_steps
    pct = target / T
    for candidate in (pct, math.nextafter(pct, math.inf), math.nextafter(pct, -math.inf)):
        if float(candidate * T) == target:
            pct = candidate
            break
    return {"total_steps": T, "pct_start": float(pct), "anneal_strategy": s._anneal_func_type,
            "three_phase": len(phases) == 3}


def _one_cycle_lr(s, total_steps):
    groups = s.optimizer.param_groups
    max_lr = [float(g["max_lr"]) for g in groups]
    initial = [float(g["initial_lr"]) for g in groups]
    minimum = [float(g["min_lr"]) for g in groups]
    # torch keeps initial_lr = max_lr / div_factor and min_lr = initial_lr / final_div_factor per group.
    div = max_lr[0] / initial[0]
    final_div = initial[0] / minimum[0]
    return one_cycle_lr(_groups(max_lr), div_factor=div, final_div_factor=final_div, **_one_cycle_common(s))


def _one_cycle_momentum(s, total_steps):
    if not s.cycle_momentum:
        return None
    groups = s.optimizer.param_groups
    return one_cycle_momentum(base_momentum=_groups([g["base_momentum"] for g in groups]),
                                    max_momentum=_groups([g["max_momentum"] for g in groups]),
                                    **_one_cycle_common(s))


def _chained(s, total_steps):
    return chained_scheduler([_convert(m, total_steps) for m in s._schedulers], total_steps=total_steps)


def _sequential(s, total_steps):
    return sequential_lr([_convert(m, total_steps) for m in s._schedulers], milestones=list(s._milestones))


_LR = {
    "LambdaLR": _lambda_lr, "MultiplicativeLR": _multiplicative_lr, "StepLR": _step_lr,
    "MultiStepLR": _multi_step_lr, "ConstantLR": _constant_lr, "LinearLR": _linear_lr,
    "ExponentialLR": _exponential_lr, "PolynomialLR": _polynomial_lr, "CosineAnnealingLR": _cosine_annealing_lr,
    "CosineAnnealingWarmRestarts": _cosine_annealing_warm_restarts, "CyclicLR": _cyclic_lr,
    "OneCycleLR": _one_cycle_lr, "ChainedScheduler": _chained, "SequentialLR": _sequential,
}
_MOMENTUM = {"CyclicLR": _cyclic_momentum, "OneCycleLR": _one_cycle_momentum}


def _torch_class(scheduler: Any) -> str:
    """The torch class of ``scheduler``; subclasses are refused (they may override ``get_lr``)."""
    torch = _import_torch()
    L = torch.optim.lr_scheduler
    names = [*_LR, "ReduceLROnPlateau"]
    for name in names:
        if type(scheduler) is getattr(L, name):
            return name
    for name in names:
        if isinstance(scheduler, getattr(L, name)):
            raise ValueError(
                f"from_torch converts torch's own scheduler classes; {type(scheduler).__qualname__} subclasses "
                f"{name} and may compute other learning rates. Convert a plain torch.optim.lr_scheduler.{name}."
            )
    raise ValueError(
        f"from_torch takes a torch.optim.lr_scheduler object ({', '.join(names)}), got {scheduler!r}."
    )


def _convert(scheduler: Any, total_steps: int | None) -> LRSchedule:
    name = _torch_class(scheduler)
    if name == "ReduceLROnPlateau":
        raise ValueError("torch's ChainedScheduler and SequentialLR do not take ReduceLROnPlateau members.")
    return _LR[name](scheduler, total_steps)


def _momentum(scheduler: Any, name: str, total_steps: int | None) -> LRSchedule | None:
    if name in _MOMENTUM:
        return _MOMENTUM[name](scheduler, total_steps)
    if name in ("ChainedScheduler", "SequentialLR"):
        cycling = [m for m in scheduler._schedulers if _torch_class(m) in _MOMENTUM and m.cycle_momentum]
        if not cycling:
            return None
        if name == "ChainedScheduler" and len(cycling) == 1:
            # Every chain step runs every member; only this one writes the momentum.
            return _MOMENTUM[_torch_class(cycling[0])](cycling[0], total_steps)
        raise ValueError(
            f"from_torch(..., momentum=True) cannot convert the momentum of a {name} whose members "
            f"{[_name(m) for m in cycling]} cycle it (the momentum depends on which member ran last). "
            "Convert the members' momentum separately, or build them with cycle_momentum=False."
        )
    return None


# ----------------------------------------------------------------------------------------------
# The check that the converted schedule reproduces the torch object's current state
# ----------------------------------------------------------------------------------------------


def _steps_taken(scheduler: Any, name: str) -> int:
    """How many ``step()`` calls the object has had since construction."""
    if name == "ChainedScheduler":
        counts = {_steps_taken(m, _torch_class(m)) for m in scheduler._schedulers}
        if len(counts) != 1:
            raise ValueError(
                "the members of this ChainedScheduler have been stepped different numbers of times "
                f"(last_epoch {sorted(counts)}), so no schedule counted from construction matches it. Convert "
                "the ChainedScheduler right after building it."
            )
        return counts.pop()
    return int(scheduler.last_epoch)


def _momenta(optimizer: Any) -> list[float]:
    return [float(g["betas"][0]) if "betas" in g else float(g.get("momentum", 0.0)) for g in optimizer.param_groups]


def _check_current(scheduler: Any, name: str, lr: LRSchedule, momentum: LRSchedule | None,
                   total_steps: int | None) -> None:
    t = _steps_taken(scheduler, name)
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
            ours = np.broadcast_to(np.asarray(jax.jit(schedule)(jnp.asarray(t)), np.float64), (len(held),))
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


# ----------------------------------------------------------------------------------------------
# ReduceLROnPlateau
# ----------------------------------------------------------------------------------------------


def _plateau(scheduler: Any):
    """``(plateau, state)``: the transformation with torch's settings and the object's current state."""
    min_lr = scheduler.default_min_lr if scheduler.default_min_lr is not None else _groups(scheduler.min_lrs)
    plateau = reduce_lr_on_plateau(
        mode=scheduler.mode, factor=scheduler.factor, patience=scheduler.patience, threshold=scheduler.threshold,
        threshold_mode=scheduler.threshold_mode, cooldown=scheduler.cooldown, min_lr=min_lr, eps=scheduler.eps,
    )
    dtype = _base.float_dtype()
    int32_max = np.iinfo(np.int32).max
    state = plateau.init(_groups(g["lr"] for g in scheduler.optimizer.param_groups))._replace(
        best=jnp.asarray(float(scheduler.best), dtype),
        num_bad_epochs=jnp.asarray(min(int(scheduler.num_bad_epochs), int32_max), jnp.int32),
        cooldown_counter=jnp.asarray(min(int(scheduler.cooldown_counter), int32_max), jnp.int32),
        num_updates=jnp.asarray(min(int(scheduler.last_epoch), int32_max), jnp.int32),
    )
    return plateau, state


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
            CyclicLR, OneCycleLR, ChainedScheduler, SequentialLR or ReduceLROnPlateau (subclasses
            are refused: they may override ``get_lr``).
        total_steps: a horizon for what has no closed form. torch's ``lr_lambda`` (LambdaLR,
            MultiplicativeLR) and CyclicLR's ``scale_fn`` are plain Python functions. Without
            ``total_steps`` they are traced by JAX, which works for arithmetic such as
            ``lambda epoch: 0.95 ** epoch`` (from_torch compares the traced function with the Python
            one on the first 128 steps and raises if they differ); a function JAX cannot trace
            (``min(...)``, ``if``) then raises, asking for ``total_steps``. With ``total_steps=N``
            the functions are evaluated once with Python ints, exactly as torch calls them, for
            steps ``0..N``, and the schedule looks the values up; later steps hold the last value.
            Also passed to :func:`lrjax.chained_scheduler` for chains without closed form.
        momentum: if True, return ``(lr_schedule, momentum_schedule)``, where the second is the
            momentum CyclicLR/OneCycleLR write into the optimizer (SGD's ``momentum``, Adam's
            ``betas[0]``; see :func:`lrjax.cyclic_momentum`), or ``None`` for a scheduler that does
            not change the momentum (``cycle_momentum=False``, every other class).

    Returns:
        An :class:`lrjax.LRSchedule`, or ``(lr, momentum)`` with ``momentum=True``. For a
        ReduceLROnPlateau, whose lr depends on the metrics rather than the step, a pair
        ``(plateau, state)``: the :func:`lrjax.reduce_lr_on_plateau` transformation with the same
        settings, and the :class:`lrjax.PlateauState` equal to the object's state now (the
        optimizer's lr per group, ``best``, ``num_bad_epochs``, ``cooldown_counter``,
        ``last_epoch``), so ``plateau.update(state, metric)`` continues where torch is (for a new
        object that is ``plateau.init(lr)``). With ``momentum=True``: ``((plateau, state), None)``.

    Raises:
        ImportError: if torch is not installed.
        ValueError: for an object that is not one of torch's schedulers; a function JAX cannot trace
            (or traces to other values) without ``total_steps``; a scheduler whose optimizer lr was
            changed outside it; any combination lrjax itself refuses (e.g. a OneCycleLR inside a
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
    _import_torch()
    if total_steps is not None:
        total_steps = _base.integer(total_steps, "total_steps", minimum=0)
    name = _torch_class(scheduler)
    if name == "ReduceLROnPlateau":
        converted = _plateau(scheduler)
        return (converted, None) if momentum else converted
    lr = _LR[name](scheduler, total_steps)
    mom = _momentum(scheduler, name, total_steps) if momentum else None
    _check_current(scheduler, name, lr, mom, total_steps)
    return (lr, mom) if momentum else lr
