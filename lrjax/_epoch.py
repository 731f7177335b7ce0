"""Running an epoch-based torch recipe on optax's per-update step counter."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lrjax import _base
from lrjax._base import ArrayLike, LRSchedule, Schedule, const


class _PerEpoch(LRSchedule):
    kind = "absolute"

    def __init__(self, schedule: Schedule, steps_per_epoch: int, fractional: bool):
        if not callable(schedule):
            raise ValueError(f"schedule must be callable, got {schedule!r}")
        self.schedule = schedule
        self.steps_per_epoch = _base.integer(steps_per_epoch, "steps_per_epoch", minimum=1)
        self.fractional = bool(fractional)
        super().__init__("per_epoch", {"schedule": schedule, "steps_per_epoch": self.steps_per_epoch,
                                       "fractional": self.fractional})

    def __repr__(self) -> str:
        return f"lrjax.per_epoch({self.schedule!r}, steps_per_epoch={self.steps_per_epoch}, fractional={self.fractional})"

    def _value(self, count: jax.Array) -> jax.Array:
        n = self.steps_per_epoch
        if not self.fractional:
            epoch = count // jnp.asarray(n, count.dtype) if _base.is_int(count) else jnp.floor(count / n)
            return jnp.asarray(self.schedule(epoch))
        # torch: scheduler.step(epoch + i / iters) runs after update i, so update g uses the value
        # set after update g - 1.
        previous = jnp.maximum(count - 1, jnp.zeros((), count.dtype))
        return jnp.asarray(self.schedule(_base.to_float(previous) / const(n)))


def per_epoch(schedule: Schedule, steps_per_epoch: int, *, fractional: bool = False) -> LRSchedule:
    r"""Runs an epoch-indexed schedule on optax's step counter (one count per optimizer update).

    torch recipes mostly call ``scheduler.step()`` once per epoch, while optax passes the number of
    updates done so far to the schedule. ``per_epoch(schedule, steps_per_epoch)`` turns the first
    into the second, so the update of every batch uses the lr torch would use for it:

    * ``fractional=False``: ``schedule(count // steps_per_epoch)``: torch's loop
      ``for epoch: (for batch: optimizer.step()); scheduler.step()``.
    * ``fractional=True``: torch's documented CosineAnnealingWarmRestarts loop
      ``for epoch: for i, batch: optimizer.step(); scheduler.step(epoch + i / iters)``. There the
      update of batch ``i`` uses the lr set after batch ``i - 1``, so update ``g`` uses
      ``schedule(max(g - 1, 0) / steps_per_epoch)``; lrjax reproduces that lag. (For a schedule
      evaluated at ``g / steps_per_epoch`` without the lag, write ``lambda g: schedule(g / n)``.)

    Schedules stepped once per batch in torch (CyclicLR, OneCycleLR, or any scheduler stepped after
    every ``optimizer.step()``) need no wrapper: pass them to optax directly.

    Args:
        schedule: any ``epoch -> lr`` function, e.g. ``lrjax.step_lr(1e-3, step_size=2)``.
        steps_per_epoch: optimizer updates per epoch (``len(train_loader)`` in torch), positive.
        fractional: see above.

    Returns:
        A schedule of the optimizer's update count.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.per_epoch(lrjax.step_lr(1e-3, step_size=2), steps_per_epoch=100)
        >>> [round(float(schedule(c)), 6) for c in (0, 199, 200)]
        [0.001, 0.001, 0.0001]
    """
    return _PerEpoch(schedule, steps_per_epoch, fractional)
