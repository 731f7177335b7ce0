r"""Parity tests against torch: show that a JAX schedule follows a torch scheduler, step by step.

A port of a torch recipe is right when its learning rate is torch's at every step. This module
runs a *copy* of the torch scheduler (the user's object, its optimizer and model are not touched)
and compares it with the JAX schedule, jitted and eagerly, within lrjax's precision contract for
the active dtype:

.. math::
    |\eta_{\text{jax}}(t) - \eta_{\text{torch}}(t)| \le
    r\,|\eta_{\text{torch}}(t)| + a \max_s |\eta_{\text{torch}}(s)|

with :math:`(r, a) = (10^{-5}, 10^{-7})` in float32 and :math:`(10^{-11}, 10^{-12})` in float64
(``jax_enable_x64``).

* :func:`assert_matches_torch` raises ``AssertionError`` naming the first divergent step, the
  group, both values, the error and the tolerance; :func:`compare` returns the same as a
  :class:`Comparison`, true when they match, so ``assert lrjax.testing.compare(...)`` reads well
  in pytest.
* :func:`torch_lrs`: the lr (and momentum) torch uses at each step, per parameter group.
* ``lrjax.testing.pytest_plugin``: a ``float_dtype`` fixture running a test in float32 and in float64.

torch is imported only when one of these functions is called (it is an optional dependency).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _base

__all__ = ["Comparison", "TorchLRs", "assert_matches_torch", "compare", "tolerance", "torch_lrs"]

_EAGER_STEPS = 256  # at most this many steps are also evaluated one call at a time, eagerly


def tolerance(dtype: Any = None) -> tuple[float, float]:
    """``(rtol, atol)``: lrjax's contract with torch for ``dtype`` (default: JAX's active float dtype).

    ``atol`` is a fraction of the largest torch value: the allowed error is
    ``rtol * |torch| + atol * max|torch|``.
    """
    dtype = np.dtype(dtype) if dtype is not None else _base.float_dtype()
    return (1e-11, 1e-12) if dtype == np.float64 else (1e-5, 1e-7)


# ----------------------------------------------------------------------------------------------
# torch
# ----------------------------------------------------------------------------------------------


class TorchLRs(NamedTuple):
    """What :func:`torch_lrs` returns.

    ``steps[i]`` is the step (or, for ReduceLROnPlateau, the number of metrics seen) of row ``i``;
    ``lr[i, g]`` the lr of parameter group ``g`` there, ``momentum[i, g]`` its momentum (SGD's
    ``momentum``, Adam's ``betas[0]``), or None if the optimizer has neither.
    """

    steps: np.ndarray
    lr: np.ndarray  # shape (len(steps), groups), float64
    momentum: np.ndarray | None  # shape (len(steps), groups), float64, or None


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - exercised only without torch
        raise ImportError("lrjax.testing compares with torch; install it with `pip install lrjax[torch]`.") from e
    return torch


def _is_plateau(scheduler: Any) -> bool:
    return type(scheduler).__name__ == "ReduceLROnPlateau" or isinstance(
        scheduler, _torch().optim.lr_scheduler.ReduceLROnPlateau
    )


def _check_scheduler(scheduler: Any) -> None:
    lr_scheduler = _torch().optim.lr_scheduler
    if not isinstance(scheduler, (lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau)):
        raise TypeError(f"torch_scheduler must be a torch.optim.lr_scheduler object, got {type(scheduler).__name__}")


def _copy(scheduler: Any) -> Any:
    """A copy of ``scheduler`` on a stand-in optimizer holding copies of the parameter groups'
    hyperparameters (no parameters, no optimizer state): stepping it changes nothing of the user's."""
    opt = scheduler.optimizer
    proxy = object.__new__(type(opt))
    proxy.__dict__.update(
        defaults=copy.deepcopy(opt.defaults),
        param_groups=[
            {**{k: copy.deepcopy(v) for k, v in g.items() if k != "params"}, "params": []} for g in opt.param_groups
        ],
        state={},
        _opt_called=True,
    )
    proxy.step = _NoStep()
    return copy.deepcopy(scheduler, memo={id(opt): proxy})


class _NoStep:
    """The stand-in optimizer's ``step``: updates nothing. ``_wrapped_by_lr_sched`` is the mark torch's
    scheduler leaves on the ``optimizer.step`` it wraps (without it, ``scheduler.step()`` warns)."""

    _wrapped_by_lr_sched = True

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        del args, kwargs


def _last_epoch(scheduler: Any) -> int:
    if hasattr(scheduler, "last_epoch"):
        return int(scheduler.last_epoch)
    return int(scheduler._schedulers[0].last_epoch)  # ChainedScheduler keeps no count of its own


def _snapshot(opt: Any) -> tuple[list[float], list[float] | None]:
    lrs = [float(g["lr"]) for g in opt.param_groups]
    if all("betas" in g for g in opt.param_groups):
        return lrs, [float(g["betas"][0]) for g in opt.param_groups]
    if all("momentum" in g for g in opt.param_groups):
        return lrs, [float(g["momentum"]) for g in opt.param_groups]
    return lrs, None


def _steps(steps: Any, name: str = "steps") -> np.ndarray:
    if isinstance(steps, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int N (steps 0..N-1) or a sequence of steps, got {steps!r}")
    if isinstance(steps, (int, np.integer)):
        if steps < 1:
            raise ValueError(f"{name} must be positive (steps 0..N-1), got {steps}")
        return np.arange(int(steps))
    arr = np.asarray(steps)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be an int N or a non-empty 1-D sequence of numbers, got {steps!r}")
    return arr


def _stepper(torch_step: Any, steps_per_epoch: int | None) -> Callable[[Any, int], object] | Literal["step", "epoch"]:
    """How the torch copy reaches step ``t``: ``"step"``, ``"epoch"`` or a function ``(scheduler, t)``."""
    if steps_per_epoch is not None:
        if torch_step != "step":
            raise ValueError("give torch_step or steps_per_epoch, not both")
        n = _base.integer(steps_per_epoch, "steps_per_epoch", minimum=1)
        return lambda scheduler, t: scheduler.step() if t % n == 0 else None
    if torch_step in ("step", "epoch") or callable(torch_step):
        return torch_step
    raise ValueError(f"torch_step must be 'step', 'epoch' or a function (scheduler, t) -> None, got {torch_step!r}")


def torch_lrs(
    torch_scheduler: Any,
    steps: Any = None,
    *,
    metrics: Sequence[Any] | None = None,
    torch_step: Any = "step",
    steps_per_epoch: int | None = None,
) -> TorchLRs:
    """The lr (and momentum) torch uses at each step, per parameter group, from a copy of the scheduler.

    Args:
        torch_scheduler: any ``torch.optim.lr_scheduler`` object, fresh or already stepped; it is
            copied onto a stand-in optimizer, so neither it nor its optimizer changes.
        steps: an int ``N`` (steps ``0..N-1``) or a sequence of steps, counted as torch's
            ``last_epoch`` (calls of ``scheduler.step()`` since construction; an already stepped
            scheduler starts at its ``last_epoch``). Not used with ``metrics``.
        metrics: for ReduceLROnPlateau, the metrics of successive ``scheduler.step(metric)``
            calls; row ``k`` is the lr after ``k`` of them (row 0: now).
        torch_step: how the copy reaches step ``t``: ``"step"`` (``scheduler.step()`` once per step,
            the default), ``"epoch"`` (``scheduler.step(t)`` for each ``t`` of ``steps`` in order,
            torch's deprecated form, e.g. CosineAnnealingWarmRestarts' fractional epochs), or a
            function ``torch_step(scheduler, t)`` called for ``t = first + 1, ..., max(steps)`` that
            takes the copy from step ``t - 1`` to step ``t`` (any custom loop).
        steps_per_epoch: shorthand for a torch loop that steps the scheduler once every
            ``steps_per_epoch`` optimizer updates (what :func:`lrjax.per_epoch` ports): step ``t`` is
            then an update count.

    Returns:
        A :class:`TorchLRs` ``(steps, lr, momentum)``.

    Raises:
        TypeError / ValueError: for a non-scheduler, bad ``steps``, or metrics missing for (or given to)
            a scheduler that does (not) take them.
    """
    _check_scheduler(torch_scheduler)
    sched = _copy(torch_scheduler)
    opt = sched.optimizer
    rows: list[tuple[list[float], list[float] | None]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's step(epoch) deprecation and stepping-order warnings
        if _is_plateau(torch_scheduler):
            if metrics is None or steps is not None:
                raise ValueError("a ReduceLROnPlateau steps on metrics: pass metrics=[...] (and no steps)")
            rows.append(_snapshot(opt))
            for m in metrics:
                sched.step(m)
                rows.append(_snapshot(opt))
            return _as_torch_lrs(np.arange(len(metrics) + 1), rows)
        if metrics is not None:
            raise ValueError(f"{type(torch_scheduler).__name__} does not take metrics")
        if steps is None:
            raise ValueError("steps is required: an int N (steps 0..N-1) or a sequence of steps")
        ts = _steps(steps)
        stepper = _stepper(torch_step, steps_per_epoch)
        if stepper == "epoch":
            for t in ts:
                sched.step(t.item())
                rows.append(_snapshot(opt))
            return _as_torch_lrs(ts, rows)
        if ts.dtype.kind == "f" and not np.all(ts == np.round(ts)):
            raise ValueError("fractional steps need torch_step='epoch' (torch's scheduler.step(epoch))")
        ts = ts.astype(np.int64)
        first = _last_epoch(torch_scheduler)
        if ts.min() < first:
            raise ValueError(
                f"the scheduler is at step {first} (last_epoch); steps before it cannot be replayed, "
                f"got step {int(ts.min())}"
            )
        wanted = set(ts.tolist())
        at: dict[int, tuple[list[float], list[float] | None]] = {}
        if first in wanted:
            at[first] = _snapshot(opt)
        for t in range(first + 1, int(ts.max()) + 1):
            sched.step() if stepper == "step" else stepper(sched, t)
            if t in wanted:
                at[t] = _snapshot(opt)
        return _as_torch_lrs(ts, [at[int(t)] for t in ts])


def _as_torch_lrs(steps: np.ndarray, rows: list[tuple[list[float], list[float] | None]]) -> TorchLRs:
    lr = np.array([r[0] for r in rows], dtype=np.float64)
    moms = [r[1] for r in rows]
    momentum = None if any(m is None for m in moms) else np.array(moms, dtype=np.float64)
    return TorchLRs(np.asarray(steps), lr, momentum)


# ----------------------------------------------------------------------------------------------
# JAX
# ----------------------------------------------------------------------------------------------


def _step_array(ts: np.ndarray) -> jax.Array:
    if ts.dtype.kind == "f":
        return jnp.asarray(ts, _base.float_dtype())
    if ts.max() <= np.iinfo(np.int32).max:
        return jnp.asarray(ts, jnp.int32)  # optax's count dtype
    if _base.float_dtype() == np.float64:  # jax_enable_x64: int64 arrays exist
        return jnp.asarray(ts, jnp.int64)
    raise ValueError(f"step {int(ts.max())} does not fit optax's int32 count; enable jax_enable_x64 for it")


def _per_group(values: Any, n: int, groups: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape == (n,):
        arr = arr[:, None]
    if arr.shape == (n, 1) and groups > 1:
        raise ValueError(
            f"the {what} schedule gives one value per step, torch's optimizer has {groups} parameter "
            "groups: pass a schedule with one value per group, or a list of schedules (one per group)"
        )
    if arr.shape != (n, groups):
        raise ValueError(
            f"the {what} schedule gives values of shape {arr.shape[1:]} per step; torch has {groups} groups"
        )
    return arr


def _evaluate(schedule: Any, ts: np.ndarray, groups: int, what: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"jit": (rows, values), "eager": (rows, values)}``: the schedule jitted over every step, and
    called one step at a time, eagerly, on at most ``_EAGER_STEPS`` of them."""
    fns = list(schedule) if type(schedule) in (list, tuple) else [schedule]
    for fn in fns:
        if not callable(fn) or getattr(fn, "is_plateau", False):
            raise TypeError(
                f"the {what} schedule must be a function step -> value (an lrjax or optax schedule), got {fn!r}"
            )

    def values(t):
        outs = [jnp.asarray(fn(t)) for fn in fns]
        return outs[0] if len(outs) == 1 else jnp.stack([o.reshape(()) for o in outs])

    steps = _step_array(ts)
    n = len(ts)
    jitted = _per_group(jax.jit(jax.vmap(values))(steps), n, groups, what)
    rows = np.arange(n) if n <= _EAGER_STEPS else np.unique(np.linspace(0, n - 1, _EAGER_STEPS).round().astype(int))
    eager = _per_group([np.asarray(values(steps[i])) for i in rows], len(rows), groups, what)
    return {"jit": (np.arange(n), jitted), "eager": (rows, eager)}


class _PlateauMachine(NamedTuple):
    """An lrjax plateau object as a state machine: its state before any metric, ``step(state, metric)``
    (one torch ``scheduler.step(metric)``) and ``lr(state)``. The state is a PlateauState (a plateau
    alone) or a StatefulPlateauState (its optax schedule); only the machine's own functions read it."""

    state0: Any
    step: Callable[[Any, Any], Any]
    lr: Callable[[Any], jax.Array]


def _plateau_state_lr(state: Any) -> jax.Array:
    return state.lr


def _plateau_machine(schedule: Any, torch_scheduler: Any) -> _PlateauMachine:
    from lrjax._plateau import ReduceLROnPlateau
    from lrjax._plateau_optax import PlateauTransform, StatefulPlateau

    if isinstance(schedule, PlateauTransform):
        schedule = schedule.schedule
    if isinstance(schedule, ReduceLROnPlateau):
        fresh = (
            _last_epoch(torch_scheduler) == 0
            and torch_scheduler.num_bad_epochs == 0
            and math.isinf(torch_scheduler.best)
        )
        if not fresh:
            raise ValueError(
                "torch's ReduceLROnPlateau has already been stepped; compare lrjax.from_torch(scheduler) "
                "(which starts where it is) or a fresh scheduler"
            )
        lrs = [float(g["lr"]) for g in torch_scheduler.optimizer.param_groups]
        return _PlateauMachine(schedule.init(lrs[0] if len(lrs) == 1 else lrs), schedule.update, _plateau_state_lr)
    if isinstance(schedule, StatefulPlateau):
        return _PlateauMachine(schedule.init(), schedule.step, schedule)
    raise TypeError(
        "with a ReduceLROnPlateau, the JAX side must be an lrjax plateau: lrjax.reduce_lr_on_plateau(...), "
        f"plateau.as_schedule(...), plateau.as_transform(...) or lrjax.from_torch(scheduler); got {schedule!r}"
    )


def _plateau_runs(
    schedule: Any, torch_scheduler: Any, metrics: Sequence[Any]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The lr after each metric (row 0: before any), eagerly and jitted, for an lrjax plateau object."""
    state0, step, lr = _plateau_machine(schedule, torch_scheduler)
    dtype = jnp.asarray(lr(state0)).dtype

    eager, state = [np.asarray(lr(state0))], state0
    for m in metrics:
        state = step(state, m)
        eager.append(np.asarray(lr(state)))

    def scan(state, ms):
        def body(s, m):
            s = step(s, m)
            return s, lr(s)

        return jax.lax.scan(body, state, ms)[1]

    from lrjax._plateau import as_metric

    ms = jnp.stack([as_metric(m, dtype) for m in metrics]) if len(metrics) else jnp.zeros((0,), dtype)
    jitted = np.concatenate(
        [np.asarray(lr(state0))[None].reshape(1, -1), np.asarray(jax.jit(scan)(state0, ms)).reshape(len(metrics), -1)]
    )
    n = len(metrics) + 1
    return {"eager": (np.arange(n), np.stack(eager).reshape(n, -1)), "jit": (np.arange(n), jitted)}


# ----------------------------------------------------------------------------------------------
# Comparing
# ----------------------------------------------------------------------------------------------


class Comparison(NamedTuple):
    """The outcome of :func:`compare`: true when the JAX schedule matches torch everywhere.

    On a mismatch, ``step``, ``group``, ``ours``, ``theirs``, ``error`` and ``allowed`` describe the
    first divergent step (of the first quantity and evaluation, ``what`` and ``how``, that diverges),
    and ``mismatches`` counts the divergent steps there. ``worst`` is the largest ``error /
    allowed`` over everything compared (<= 1 when they match). ``str()`` (and ``repr()``) says it
    in a sentence.
    """

    ok: bool
    name: str
    steps_compared: int
    rtol: float
    atol: float
    dtype: str
    worst: float
    what: str | None = None  # "lr" or "momentum"
    how: str | None = None  # "jit" or "eager"
    step: Any = None
    group: int | None = None
    ours: float | None = None
    theirs: float | None = None
    error: float | None = None
    allowed: float | None = None
    mismatches: int = 0
    unit: str = "step"

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        tol = f"rtol {self.rtol:g} * |torch| + atol {self.atol:g} * max|torch| ({self.dtype})"
        if self.ok:
            return (
                f"{self.name}: matches torch at all {self.steps_compared} {self.unit}s, jitted and eagerly "
                f"(largest error {self.worst:.3g} of the tolerance {tol})"
            )
        return (
            f"{self.name}: the {self.what} differs from torch at {self.unit} {self.step} (parameter group "
            f"{self.group}, {self.how}): lrjax {self.ours!r}, torch {self.theirs!r}, |error| {self.error:.6g} > "
            f"tolerance {self.allowed:.6g} = {tol}; {self.mismatches} of {self.steps_compared} {self.unit}s differ"
        )

    __repr__ = __str__


class _Mismatch(TypedDict):
    """The :class:`Comparison` fields that describe the first divergent step."""

    what: str
    how: str
    step: Any
    group: int
    ours: float
    theirs: float
    error: float
    allowed: float
    mismatches: int


def compare(
    schedule: Any,
    torch_scheduler: Any,
    steps: Any = None,
    *,
    momentum: Any = None,
    metrics: Sequence[Any] | None = None,
    torch_step: Any = "step",
    steps_per_epoch: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> Comparison:
    """Compares a JAX schedule with a torch scheduler; returns a :class:`Comparison` (see
    :func:`assert_matches_torch` for the arguments). ``assert compare(...)`` fails with its message."""
    _check_scheduler(torch_scheduler)
    d_rtol, d_atol = tolerance()
    rtol = d_rtol if rtol is None else float(rtol)
    atol = d_atol if atol is None else float(atol)
    dtype = str(_base.float_dtype())
    name = f"{_name(schedule)} vs torch's {type(torch_scheduler).__name__}"
    if metrics is not None:
        from lrjax._plateau import as_metric

        # torch gets the metric lrjax computes with: float32-rounded when lrjax runs in float32.
        torch_metrics = [float(as_metric(m, _base.float_dtype())) for m in metrics]
        theirs = torch_lrs(torch_scheduler, metrics=torch_metrics)
        runs = {"lr": (theirs.lr, _plateau_runs(schedule, torch_scheduler, metrics))}
        if momentum is not None:
            raise ValueError("ReduceLROnPlateau does not change the momentum")
        unit = "metric"
    else:
        theirs = torch_lrs(torch_scheduler, steps, torch_step=torch_step, steps_per_epoch=steps_per_epoch)
        groups = theirs.lr.shape[1]
        runs = {"lr": (theirs.lr, _evaluate(schedule, theirs.steps, groups, "lr"))}
        if momentum is not None:
            if theirs.momentum is None:
                raise ValueError("torch's optimizer has no momentum (or betas) to compare with")
            runs["momentum"] = (theirs.momentum, _evaluate(momentum, theirs.steps, groups, "momentum"))
        unit = "step"
    worst = 0.0
    first: _Mismatch | None = None  # the first divergent step
    for what, (ref, by_how) in runs.items():
        scale = np.max(np.abs(ref)) if ref.size else 0.0
        for how in ("jit", "eager"):
            rows, ours = by_how[how]
            if ours.shape != ref[rows].shape:
                raise ValueError(f"lrjax gives {what} values of shape {ours.shape}, torch {ref[rows].shape}")
            want = ref[rows]
            err = np.abs(ours - want)
            allowed = rtol * np.abs(want) + max(atol * scale, np.finfo(_base.float_dtype()).tiny)
            bad = ~(err <= allowed)  # NaN counts as a mismatch
            ratio = np.where(np.isfinite(err), err / allowed, np.inf)
            worst = max(worst, float(np.max(ratio)) if ratio.size else 0.0)
            if bad.any() and first is None:
                i, g = np.argwhere(bad)[0]
                step = theirs.steps[rows[i]]
                first = _Mismatch(
                    what=what,
                    how=how,
                    step=step.item() if hasattr(step, "item") else step,
                    group=int(g),
                    ours=float(ours[i, g]),
                    theirs=float(want[i, g]),
                    error=float(err[i, g]),
                    allowed=float(allowed[i, g]),
                    mismatches=int(bad.any(axis=1).sum()),
                )
    outcome = Comparison(
        ok=first is None,
        name=name,
        steps_compared=len(theirs.steps),
        rtol=rtol,
        atol=atol,
        dtype=dtype,
        worst=worst,
        unit=unit,
    )
    return outcome if first is None else outcome._replace(**first)


def assert_matches_torch(
    schedule: Any,
    torch_scheduler: Any,
    steps: Any = None,
    *,
    momentum: Any = None,
    metrics: Sequence[Any] | None = None,
    torch_step: Any = "step",
    steps_per_epoch: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> Comparison:
    """Asserts that a JAX schedule gives torch's lr (and momentum) at every step.

    A copy of ``torch_scheduler`` is stepped (see :func:`torch_lrs`), and the JAX ``schedule`` is
    evaluated at the same steps, jitted (``jax.jit(jax.vmap(schedule))`` over int32 steps, optax's
    count) and eagerly (one call per step, on up to 256 steps spread over the range).

    Args:
        schedule: any JAX schedule ``step -> lr``: an lrjax schedule (``lrjax.per_epoch(...)``,
            ``lrjax.from_torch(...)`` included), an optax schedule, any function; or a list of them,
            one per parameter group. With ``metrics``: an lrjax plateau
            (``lrjax.reduce_lr_on_plateau(...)``, which starts from the torch optimizer's lrs;
            ``plateau.as_schedule(...)``, ``plateau.as_transform(...)``, ``lrjax.from_torch(plateau)``),
            stepped once per metric as torch is (``update`` / :func:`lrjax.plateau_step`'s step).
        torch_scheduler: the torch scheduler it ports; not changed.
        steps: an int ``N`` (steps ``0..N-1``) or a sequence of steps (see :func:`torch_lrs`).
        momentum: a JAX momentum schedule (CyclicLR / OneCycleLR: ``lrjax.cyclic_momentum``,
            ``lrjax.one_cycle_momentum``) compared with the momentum torch writes (SGD's
            ``momentum``, Adam's ``betas[0]``).
        metrics: for a ReduceLROnPlateau, the metric sequence. In float32 torch is given the metrics
            rounded to float32 (what lrjax computes with, and what torch gets from a float32 loss).
        torch_step, steps_per_epoch: how torch is stepped (see :func:`torch_lrs`).
        rtol, atol: the tolerance, ``|ours - torch| <= rtol |torch| + atol max|torch|``; default:
            :func:`tolerance` of the active dtype.

    Returns:
        The :class:`Comparison` (true), for its ``worst`` error ratio.

    Raises:
        AssertionError: on the first divergent step: the quantity, step, group, evaluation (jit or
            eager), both values, the error and the tolerance, and how many steps differ.

    Examples:
        >>> import torch, lrjax, lrjax.testing
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        >>> schedule = lrjax.step_lr(0.1, step_size=3, gamma=0.5)
        >>> lrjax.testing.assert_matches_torch(schedule, scheduler, 10)  # doctest: +ELLIPSIS
        lrjax.step_lr(base_lr=0.1, step_size=3, gamma=0.5) vs torch's StepLR: matches torch at all 10 steps, ...
        >>> wrong = lrjax.step_lr(0.1, step_size=4, gamma=0.5)
        >>> lrjax.testing.assert_matches_torch(wrong, scheduler, 10)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        AssertionError: lrjax.step_lr(...) vs torch's StepLR: the lr differs from torch at step 3 (parameter group ...
    """
    result = compare(
        schedule,
        torch_scheduler,
        steps,
        momentum=momentum,
        metrics=metrics,
        torch_step=torch_step,
        steps_per_epoch=steps_per_epoch,
        rtol=rtol,
        atol=atol,
    )
    if not result:
        raise AssertionError(str(result))
    return result


def _name(schedule: Any) -> str:
    if type(schedule) in (list, tuple):  # one schedule per group (not a NamedTuple such as an optax transformation)
        return "[" + ", ".join(_name(s) for s in schedule) + "]"
    text = repr(schedule)
    if text.startswith("<function"):
        return f"{getattr(schedule, '__qualname__', 'schedule')} (a function)"
    return text if len(text) <= 200 else text[:197] + "..."
