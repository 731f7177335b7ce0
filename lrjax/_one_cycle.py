"""The 1cycle policy (Smith & Topin, 2017): ``OneCycleLR`` and the momentum it cycles."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _numerics, _steps, _validate
from lrjax._schedule import LRSchedule, const
from lrjax._steps import ArrayLike, Step, float_dtype


def _positive_int(x: Any) -> bool:
    return bool(isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)) and x > 0)


def _total_steps(total_steps: Any, epochs: Any, steps_per_epoch: Any) -> int:
    """torch's rules and messages: total_steps, else epochs * steps_per_epoch."""
    if total_steps is not None:
        if not _positive_int(total_steps):
            raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
        return int(total_steps)
    if epochs is not None and steps_per_epoch is not None:
        if not _positive_int(epochs):
            raise ValueError(f"Expected positive integer epochs, but got {epochs}")
        if not _positive_int(steps_per_epoch):
            raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
        return int(epochs) * int(steps_per_epoch)
    raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")


def _offset(step: Step, c: float) -> jax.Array:
    """``t - c`` for a Python float ``c``, exact in the integer part (also for ``t`` near 2**32 in
    float32, where ``t - c`` in floats would lose the fraction of ``c``)."""
    dtype = float_dtype()
    whole = math.floor(c)
    frac = c - whole
    k = step.k
    if whole <= 0:
        diff = k.astype(dtype) + const(float(-whole))
    elif _steps.fits(whole):
        w = _steps.uconst(whole)
        diff = jnp.where(k >= w, (k - jnp.minimum(k, w)).astype(dtype), -((w - jnp.minimum(k, w)).astype(dtype)))
    else:
        diff = k.astype(dtype) - const(float(whole))
    if step.f is not None:
        diff = diff + step.f
    return diff - const(frac)


class _OneCycle(LRSchedule):
    """The phases of OneCycleLR, shared by the lr and the momentum it writes."""

    total_steps: Any
    epochs: Any
    steps_per_epoch: Any
    pct_start: Any
    anneal_strategy: str
    three_phase: bool

    keys: ClassVar[dict[bool, list[tuple[str, str]]]]

    def _check_phases(self) -> None:
        T = _total_steps(self.total_steps, self.epochs, self.steps_per_epoch)
        pct = self.pct_start
        if isinstance(pct, (bool, np.bool_)) or not isinstance(pct, (float, np.floating)) or not (0 <= pct <= 1):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct}")
        self._set("pct_start", float(pct))
        _validate.choice(
            self.anneal_strategy,
            "anneal_strategy",
            ("cos", "linear"),
            f"anneal_strategy must be one of 'cos' or 'linear', instead got {self.anneal_strategy}",
        )
        self._set("three_phase", _validate.boolean(self.three_phase, "three_phase"))
        ends = self.phase_ends()
        # torch divides by the length of the phase in use: the first phase is in use at step 0 when
        # it ends at 0, the last one at step total_steps.
        if ends[0] == 0:
            raise ValueError(
                f"pct_start={pct} with total_steps={T} makes the warm-up phase zero steps long "
                "(pct_start * total_steps == 1); torch divides by zero at step 0. Choose another pct_start."
            )
        if ends[-2] == ends[-1]:
            raise ValueError(
                f"pct_start={pct} with total_steps={T} leaves the last phase zero steps long; "
                "torch divides by zero at step total_steps. Choose a smaller pct_start."
            )

    @property
    def steps(self) -> int:
        """The number of steps of the cycle (``total_steps``, or ``epochs * steps_per_epoch``)."""
        return _total_steps(self.total_steps, self.epochs, self.steps_per_epoch)

    def phase_ends(self) -> list[float]:
        """torch's ``end_step`` of each phase: ``pct_start * T - 1``, (``2 pct_start T - 2``), ``T - 1``."""
        T = self.steps
        ends = [float(self.pct_start * T) - 1]
        if self.three_phase:
            ends.append(float(2 * self.pct_start * T) - 2)
        ends.append(float(T - 1))
        return ends

    def values(self) -> dict[str, Any]:
        raise NotImplementedError

    def _phase_value(self, step: Step, start: float, end: float, first: Any, last: Any) -> jax.Array:
        done = _offset(step, start)
        left = -_offset(step, end)
        length = end - start if end != start else 1.0
        v0, v1 = const(first), const(last)
        if self.anneal_strategy == "cos":
            return v1 + (v0 - v1) * _numerics.half_cosine(done, left, length)
        return (v0 * left + v1 * done) / const(length)

    def value(self, step: Step) -> jax.Array:
        T = self.steps
        # Steps past total_steps (torch raises) hold the final value of the schedule: step T - 1.
        beyond = _steps.ge(step.k, T + 1)
        if step.f is not None:
            beyond = beyond | (_steps.eq(step.k, T) & (step.f > 0))
        if _steps.fits(T - 1):
            step = Step(
                jnp.where(beyond, _steps.uconst(T - 1), step.k),
                None if step.f is None else jnp.where(beyond, jnp.zeros((), step.f.dtype), step.f),
            )
        ends = self.phase_ends()
        starts = [0.0] + ends[:-1]
        vals = self.values()
        phases = list(zip(starts, ends, self.keys[self.three_phase]))
        *inner, (s, e, (a, b)) = phases
        out = self._phase_value(step, s, e, vals[a], vals[b])
        for s, e, (a, b) in reversed(inner):
            in_phase = _offset(step, e) <= 0  # torch: step_num <= end_step
            out = jnp.where(in_phase, self._phase_value(step, s, e, vals[a], vals[b]), out)
        return out


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class OneCycleLR(_OneCycle):
    max_lr: Any
    total_steps: Any = None
    epochs: Any = None
    steps_per_epoch: Any = None
    pct_start: Any = 0.3
    anneal_strategy: str = "cos"
    div_factor: Any = 25.0
    final_div_factor: Any = 1e4
    three_phase: bool = False

    name: ClassVar[str] = "one_cycle_lr"
    keys: ClassVar[dict[bool, list[tuple[str, str]]]] = {
        False: [("initial_lr", "max_lr"), ("max_lr", "min_lr")],
        True: [("initial_lr", "max_lr"), ("max_lr", "initial_lr"), ("initial_lr", "min_lr")],
    }

    def _validate(self) -> None:
        self._set("max_lr", _validate.hyper(self.max_lr, "max_lr"))
        self._set("div_factor", _validate.hyper(self.div_factor, "div_factor", low_open=True, groups=False))
        self._set(
            "final_div_factor", _validate.hyper(self.final_div_factor, "final_div_factor", low_open=True, groups=False)
        )
        self._check_phases()

    def values(self) -> dict[str, Any]:
        with np.errstate(over="ignore"):  # an overflow is reported by _finite, naming the arguments
            initial = self.max_lr / self.div_factor
            return {"initial_lr": initial, "max_lr": self.max_lr, "min_lr": initial / self.final_div_factor}

    def _finite(self) -> dict[str, Any]:
        v = self.values()
        return {
            "max_lr": self.max_lr,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "max_lr / div_factor": v["initial_lr"],
            "max_lr / div_factor / final_div_factor": v["min_lr"],
        }


def one_cycle_lr(
    max_lr: ArrayLike | Sequence[float],
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: ArrayLike = 25.0,
    final_div_factor: ArrayLike = 1e4,
    three_phase: bool = False,
) -> OneCycleLR:
    r"""The 1cycle learning rate: warm up to ``max_lr``, then anneal far below the start.

    Port of `torch.optim.lr_scheduler.OneCycleLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html>`_; the
    momentum it cycles is :func:`one_cycle_momentum`. The lr starts at
    ``initial_lr = max_lr / div_factor``, rises to ``max_lr`` at step ``pct_start * total_steps - 1``,
    then anneals to ``min_lr = initial_lr / final_div_factor`` at step ``total_steps - 1``
    (``three_phase=True``: back to ``initial_lr`` at ``2 pct_start total_steps - 2`` first). Each
    phase from :math:`\eta_a` at step :math:`s` to :math:`\eta_b` at step :math:`e` follows

    .. math:: \eta_t = \eta_b + \frac{\eta_a - \eta_b}{2}\left(1 + \cos\left(\pi \frac{t - s}{e - s}\right)\right)

    (``anneal_strategy="linear"``: :math:`\eta_a + (\eta_b - \eta_a)\frac{t - s}{e - s}`).
    ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``scheduler.step()``; it is meant
    to be stepped once per batch, so use it directly as an optax schedule.

    Args:
        max_lr: peak learning rate; a scalar or one value per parameter group.
        total_steps: number of steps in the cycle (any size); or give ``epochs`` and ``steps_per_epoch``.
        epochs: number of epochs, used with ``steps_per_epoch`` when ``total_steps`` is None.
        steps_per_epoch: steps per epoch.
        pct_start: fraction of the cycle spent increasing the lr, a float in ``[0, 1]``.
        anneal_strategy: ``"cos"`` or ``"linear"``.
        div_factor: ``initial_lr = max_lr / div_factor``, positive.
        final_div_factor: ``min_lr = initial_lr / final_div_factor``, positive.
        three_phase: use the paper's three phases instead of fastai's two (a bool).

    Raises:
        ValueError: with torch's messages for ``total_steps``, ``epochs``, ``steps_per_epoch``,
            ``pct_start`` (which, as in torch, must be a float: ``1`` is rejected, ``1.0`` is not;
            NaN is rejected) and ``anneal_strategy``; where torch would divide by zero: a phase of
            zero steps (``pct_start * total_steps == 1``, or ``pct_start=1.0``), ``div_factor`` or
            ``final_div_factor`` not positive; where the lrs overflow the float dtype.

    .. note::
        The optimizer's own lr is ignored, as in torch. ``schedule(total_steps)`` is accepted by
        torch and extrapolates the last phase: with ``"cos"`` the lr rises again, with
        ``"linear"`` it becomes negative; lrjax reproduces both. Beyond ``total_steps`` (where
        torch raises) lrjax holds the final value ``min_lr``. ``pct_start=0.0`` starts
        directly in the annealing phase, as in torch.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.one_cycle_lr(1.0, total_steps=10)
        >>> [round(float(schedule(t)), 6) for t in (0, 2, 9)]
        [0.04, 1.0, 4e-06]
    """
    return OneCycleLR(
        max_lr,
        total_steps,
        epochs,
        steps_per_epoch,
        pct_start,
        anneal_strategy,
        div_factor,
        final_div_factor,
        three_phase,
    )


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class OneCycleMomentum(_OneCycle):
    total_steps: Any = None
    epochs: Any = None
    steps_per_epoch: Any = None
    pct_start: Any = 0.3
    anneal_strategy: str = "cos"
    base_momentum: Any = 0.85
    max_momentum: Any = 0.95
    three_phase: bool = False

    name: ClassVar[str] = "one_cycle_momentum"
    keys: ClassVar[dict[bool, list[tuple[str, str]]]] = {
        False: [("max_momentum", "base_momentum"), ("base_momentum", "max_momentum")],
        True: [("max_momentum", "base_momentum"), ("base_momentum", "max_momentum"), ("max_momentum", "max_momentum")],
    }

    def _validate(self) -> None:
        self._set("base_momentum", _validate.hyper(self.base_momentum, "base_momentum", high=1.0))
        self._set("max_momentum", _validate.hyper(self.max_momentum, "max_momentum", high=1.0))
        _validate.check_groups(base_momentum=self.base_momentum, max_momentum=self.max_momentum)
        self._check_phases()

    def values(self) -> dict[str, Any]:
        return {"base_momentum": self.base_momentum, "max_momentum": self.max_momentum}


def one_cycle_momentum(
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    base_momentum: ArrayLike | Sequence[float] = 0.85,
    max_momentum: ArrayLike | Sequence[float] = 0.95,
    three_phase: bool = False,
) -> OneCycleMomentum:
    r"""The momentum torch's ``OneCycleLR`` writes into the optimizer: down while the lr rises, then up.

    ``schedule(t)`` equals SGD's ``momentum`` (or Adam's ``betas[0]``) after ``t`` calls of
    ``scheduler.step()`` on a ``OneCycleLR`` with ``cycle_momentum=True``: from ``max_momentum``
    down to ``base_momentum`` at the lr's peak, then back to ``max_momentum``, with the same phases
    and annealing as :func:`one_cycle_lr` (pass it the same arguments).

    Args:
        total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy, three_phase: as in
            :func:`one_cycle_lr`.
        base_momentum: lowest momentum, in ``[0, 1]``; a scalar or one value per group.
        max_momentum: highest momentum (the value at step 0), in ``[0, 1]``.

    Raises:
        ValueError: as :func:`one_cycle_lr`, and for momenta outside ``[0, 1]``.

    Examples:
        >>> import lrjax
        >>> momentum = lrjax.one_cycle_momentum(total_steps=10)
        >>> [round(float(momentum(t)), 6) for t in (0, 2, 9)]
        [0.95, 0.85, 0.95]
    """
    return OneCycleMomentum(
        total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy, base_momentum, max_momentum, three_phase
    )


# ----------------------------------------------------------------------------------------------
# from_torch converters (lrjax.from_torch finds them through the registry)
# ----------------------------------------------------------------------------------------------


def _phases(s: Any) -> dict[str, Any]:
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
    return {
        "total_steps": T,
        "pct_start": float(pct),
        "anneal_strategy": s._anneal_func_type,
        "three_phase": len(phases) == 3,
    }


def _from_torch_one_cycle_lr(s: Any, total_steps: int | None) -> OneCycleLR:
    from lrjax._torch_util import groups

    param_groups = s.optimizer.param_groups
    max_lr = [float(g["max_lr"]) for g in param_groups]
    initial = [float(g["initial_lr"]) for g in param_groups]
    minimum = [float(g["min_lr"]) for g in param_groups]
    # torch keeps initial_lr = max_lr / div_factor and min_lr = initial_lr / final_div_factor per group.
    return one_cycle_lr(
        groups(max_lr), div_factor=max_lr[0] / initial[0], final_div_factor=initial[0] / minimum[0], **_phases(s)
    )


def _from_torch_one_cycle_momentum(s: Any, total_steps: int | None) -> OneCycleMomentum | None:
    from lrjax._torch_util import groups

    if not s.cycle_momentum:
        return None
    param_groups = s.optimizer.param_groups
    return one_cycle_momentum(
        base_momentum=groups([g["base_momentum"] for g in param_groups]),
        max_momentum=groups([g["max_momentum"] for g in param_groups]),
        **_phases(s),
    )
