"""The 1cycle policy (Smith & Topin, 2017): ``OneCycleLR`` and the momentum it cycles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lrjax import _base
from lrjax._base import ArrayLike, LRSchedule, const, float_dtype


def _total_steps(total_steps, epochs, steps_per_epoch) -> int:
    """torch's rules and messages: total_steps, else epochs * steps_per_epoch."""

    def positive_int(x):
        return isinstance(x, int) and not isinstance(x, bool) and x > 0

    if total_steps is not None:
        if not positive_int(total_steps):
            raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
        return total_steps
    if epochs is not None and steps_per_epoch is not None:
        if not positive_int(epochs):
            raise ValueError(f"Expected positive integer epochs, but got {epochs}")
        if not positive_int(steps_per_epoch):
            raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
        return epochs * steps_per_epoch
    raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")


class _OneCycle(LRSchedule):
    torch_class = "OneCycleLR"
    kind = "absolute"

    def __init__(self, fn_name, kwargs, total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy,
                 three_phase, values: dict[str, Any], keys: list[tuple[str, str]]):
        T = self.total_steps = _total_steps(total_steps, epochs, steps_per_epoch)
        if not isinstance(pct_start, float) or pct_start < 0 or pct_start > 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self.anneal_strategy = anneal_strategy
        ends = [float(pct_start * T) - 1]
        if three_phase:
            ends.append(float(2 * pct_start * T) - 2)
        ends.append(T - 1)
        # torch divides by the length of the phase in use: the first phase is in use at step 0 when
        # it ends at 0, the last one at step total_steps.
        if ends[0] == 0:
            raise ValueError(
                f"pct_start={pct_start} with total_steps={T} makes the warm-up phase zero steps long "
                "(pct_start * total_steps == 1); torch divides by zero at step 0. Choose another pct_start."
            )
        if ends[-2] == ends[-1]:
            raise ValueError(
                f"pct_start={pct_start} with total_steps={T} leaves the last phase zero steps long; "
                "torch divides by zero at step total_steps. Choose a smaller pct_start."
            )
        starts = [0.0] + ends[:-1]
        self.phases = [(s, e, a, b) for (s, e), (a, b) in zip(zip(starts, ends), keys)]
        self.values = values
        super().__init__(fn_name, kwargs)

    def _phase_value(self, t: jax.Array, start: float, end: float, first: Any, last: Any) -> jax.Array:
        done, _ = _base.split_const(start, t)
        _, left = _base.split_const(end, t)
        length = end - start if end != start else 1.0
        v0, v1 = const(first), const(last)
        if self.anneal_strategy == "cos":
            return v1 + (v0 - v1) * _base.half_cosine(done, left, length)
        return (v0 * left + v1 * done) / const(length)

    def _value(self, t):
        T = self.total_steps
        # Steps past total_steps (torch raises) hold the final value of the schedule.
        last = _base.int_const(T - 1, t) if _base.is_int(t) else jnp.asarray(T - 1, t.dtype)
        if last is not None:  # otherwise no step of this dtype reaches total_steps
            t = jnp.where(t > T, last, t)
        *inner, last = self.phases
        s, e, a, b = last
        out = self._phase_value(t, s, e, self.values[a], self.values[b])
        for s, e, a, b in reversed(inner):
            if _base.is_int(t):
                c = _base.int_const(math.floor(e), t)
                in_phase = (t <= c) if c is not None else jnp.full(jnp.shape(t), e >= 0)
            else:
                in_phase = t.astype(float_dtype()) <= const(e)
            out = jnp.where(in_phase, self._phase_value(t, s, e, self.values[a], self.values[b]), out)
        return out


_LR_KEYS = {
    False: [("initial_lr", "max_lr"), ("max_lr", "min_lr")],
    True: [("initial_lr", "max_lr"), ("max_lr", "initial_lr"), ("initial_lr", "min_lr")],
}
_MOMENTUM_KEYS = {
    False: [("max_momentum", "base_momentum"), ("base_momentum", "max_momentum")],
    True: [("max_momentum", "base_momentum"), ("base_momentum", "max_momentum"), ("max_momentum", "max_momentum")],
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
) -> LRSchedule:
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
        total_steps: number of steps in the cycle; or give ``epochs`` and ``steps_per_epoch``.
        epochs: number of epochs, used with ``steps_per_epoch`` when ``total_steps`` is None.
        steps_per_epoch: steps per epoch.
        pct_start: fraction of the cycle spent increasing the lr, a float in ``[0, 1]``.
        anneal_strategy: ``"cos"`` or ``"linear"``.
        div_factor: ``initial_lr = max_lr / div_factor``, positive.
        final_div_factor: ``min_lr = initial_lr / final_div_factor``, positive.
        three_phase: use the paper's three phases instead of fastai's two.

    Raises:
        ValueError: with torch's messages for ``total_steps``, ``epochs``, ``steps_per_epoch``,
            ``pct_start`` (which, as in torch, must be a float: ``1`` is rejected, ``1.0`` is not)
            and ``anneal_strategy``; and where torch would divide by zero: a phase of zero steps
            (``pct_start * total_steps == 1``, or ``pct_start=1.0``), ``div_factor`` or
            ``final_div_factor`` not positive.

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
    max_lr = _base.hyper(max_lr, "max_lr")
    _base.check_groups(max_lr=max_lr)
    div = _base.hyper(div_factor, "div_factor", low_open=True, groups=False)
    final_div = _base.hyper(final_div_factor, "final_div_factor", low_open=True, groups=False)
    initial = max_lr / div
    values = {"initial_lr": initial, "max_lr": max_lr, "min_lr": initial / final_div}
    kwargs = {"max_lr": max_lr, "total_steps": total_steps, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
              "pct_start": pct_start, "anneal_strategy": anneal_strategy, "div_factor": div,
              "final_div_factor": final_div, "three_phase": three_phase}
    schedule = _OneCycle("one_cycle_lr", kwargs, total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy,
                         bool(three_phase), values, _LR_KEYS[bool(three_phase)])
    schedule.max_lr = max_lr
    return schedule


def one_cycle_momentum(
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    base_momentum: ArrayLike | Sequence[float] = 0.85,
    max_momentum: ArrayLike | Sequence[float] = 0.95,
    three_phase: bool = False,
) -> LRSchedule:
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
    base_m = _base.hyper(base_momentum, "base_momentum", high=1.0)
    max_m = _base.hyper(max_momentum, "max_momentum", high=1.0)
    _base.check_groups(base_momentum=base_m, max_momentum=max_m)
    values = {"base_momentum": base_m, "max_momentum": max_m}
    kwargs = {"total_steps": total_steps, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
              "pct_start": pct_start, "anneal_strategy": anneal_strategy, "base_momentum": base_m,
              "max_momentum": max_m, "three_phase": three_phase}
    return _OneCycle("one_cycle_momentum", kwargs, total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy,
                     bool(three_phase), values, _MOMENTUM_KEYS[bool(three_phase)])
