"""Running an epoch-based torch recipe on optax's per-update step counter."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from lrjax import _steps, _validate
from lrjax._schedule import LRSchedule, Schedule
from lrjax._steps import Step, float_dtype


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class PerEpoch(LRSchedule):
    schedule: Any
    steps_per_epoch: int
    fractional: bool = dataclasses.field(default=False, kw_only=True)

    name: ClassVar[str] = "per_epoch"

    def _validate(self) -> None:
        if not callable(self.schedule) or getattr(self.schedule, "is_plateau", False):
            raise ValueError(f"schedule must be a schedule (a function of the epoch), got {self.schedule!r}")
        self._set("steps_per_epoch", _validate.integer(self.steps_per_epoch, "steps_per_epoch", minimum=1))
        self._set("fractional", _validate.boolean(self.fractional, "fractional"))

    @property
    def groups(self) -> int | None:
        return self.schedule.groups if isinstance(self.schedule, LRSchedule) else None

    def __repr__(self) -> str:
        return (
            f"lrjax.per_epoch({self.schedule!r}, steps_per_epoch={self.steps_per_epoch}, fractional={self.fractional})"
        )

    def value(self, step: Step) -> jax.Array:
        n = self.steps_per_epoch
        count = step.k
        if self.fractional:
            # torch: scheduler.step(epoch + i / iters) runs after update i, so update g uses the value
            # set after update g - 1: epoch (g - 1) / n, passed as its whole and fractional parts.
            count = _steps.sub_clipped(count, 1)
            epoch = Step(_steps.floordiv(count, n), _steps.mod(count, n).astype(float_dtype()) / float(n))
        else:
            epoch = Step(_steps.floordiv(count, n))
        if isinstance(self.schedule, LRSchedule):
            return self.schedule(epoch)
        # Any other function of the epoch gets a plain number: the epoch as a signed int array, or a float.
        if self.fractional:
            return jnp.asarray(self.schedule(epoch.as_float()))
        signed = jnp.int64 if _steps.uint_dtype() == jnp.uint64 else jnp.int32
        top = jnp.asarray(jnp.iinfo(signed).max, epoch.k.dtype)
        return jnp.asarray(self.schedule(jnp.minimum(epoch.k, top).astype(signed)))


def per_epoch(schedule: Schedule, steps_per_epoch: int, *, fractional: bool = False) -> PerEpoch:
    r"""Runs an epoch-indexed schedule on optax's step counter (one count per optimizer update).

    torch recipes mostly call ``scheduler.step()`` once per epoch, while optax passes the number of
    updates done so far to the schedule. ``per_epoch(schedule, steps_per_epoch)`` turns the first
    into the second, so the update of every batch uses the lr torch would use for it:

    * ``fractional=False``: ``schedule(count // steps_per_epoch)``: torch's loop
      ``for epoch: (for batch: optimizer.step()); scheduler.step()``.
    * ``fractional=True``: torch's documented CosineAnnealingWarmRestarts loop
      ``for epoch: for i, batch: optimizer.step(); scheduler.step(epoch + i / iters)``. There the
      update of batch ``i`` uses the lr set after batch ``i - 1``, so update ``g`` uses
      ``schedule(max(g - 1, 0) / steps_per_epoch)``; lrjax reproduces that lag. The epoch reaches an
      lrjax schedule exactly, as a whole number and a fraction, so a float32 schedule keeps its
      precision at every update. (For a schedule evaluated at ``g / steps_per_epoch`` without the
      lag, write ``lambda g: schedule(g / n)``.)

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
    return PerEpoch(schedule, steps_per_epoch, fractional=fractional)
