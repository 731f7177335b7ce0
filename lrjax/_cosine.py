"""Cosine annealing: ``CosineAnnealingLR`` and ``CosineAnnealingWarmRestarts``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _base
from lrjax._base import ArrayLike, LRSchedule, const, float_dtype


class _CosineAnnealingLR(LRSchedule):
    torch_class = "CosineAnnealingLR"
    kind = "affine"

    def __init__(self, base_lr, T_max, eta_min):
        self.base_lr = _base.hyper(base_lr, "base_lr")
        self.T_max = _base.integer(T_max, "T_max", minimum=1)
        self.eta_min = _base.hyper(eta_min, "eta_min", groups=False)
        super().__init__("cosine_annealing_lr", {"base_lr": self.base_lr, "T_max": self.T_max, "eta_min": self.eta_min})

    def weight(self, t: jax.Array) -> jax.Array:
        """``(1 + cos(pi t / T_max)) / 2``, reduced modulo ``2 T_max`` before the cosine."""
        return _base.periodic_cosine(t, self.T_max)

    def _value(self, t):
        eta = const(self.eta_min)
        return eta + (const(self.base_lr) - eta) * self.weight(t)

    # -- torch's recursive update, used when the lr is shared with other schedulers ------------

    def is_restart(self, t: jax.Array) -> jax.Array:
        """Steps where torch adds ``(base_lr - eta_min)(1 - cos(pi / T_max)) / 2`` to the lr."""
        period = 2 * self.T_max
        if _base.is_int(t):
            p = _base.int_const(period, t)
            first = _base.int_const(self.T_max + 1, t)
            if p is None or first is None:
                return t == first if first is not None else jnp.zeros(jnp.shape(t), bool)
            return (t >= first) & ((t - first) % p == 0)
        return (t >= self.T_max + 1) & (jnp.remainder(t - (self.T_max + 1), period) == 0)

    def restart_increment(self) -> jax.Array:
        eta = const(self.eta_min)
        return (const(self.base_lr) - eta) * const((1 - math.cos(math.pi / self.T_max)) / 2)

    def step_map(self, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        """torch's update at step ``t`` as ``lr <- a * lr + c`` (``t = 0``: the identity)."""
        eta = const(self.eta_min)
        restart = self.is_restart(t)
        prev = self.weight(jnp.maximum(t - 1, jnp.zeros((), t.dtype)))
        ratio = self.weight(t) / jnp.where(restart | (prev == 0), const(1.0), prev)
        a = jnp.where(t == 0, const(1.0), jnp.where(restart, const(1.0), ratio))
        c = jnp.where(t == 0, const(0.0), jnp.where(restart, self.restart_increment(), eta * (1 - ratio)))
        return a, c


def cosine_annealing_lr(
    base_lr: ArrayLike | Sequence[float], T_max: int, eta_min: ArrayLike = 0.0
) -> LRSchedule:
    r"""Anneals the learning rate from ``base_lr`` to ``eta_min`` along a cosine over ``T_max`` steps.

    Port of `torch.optim.lr_scheduler.CosineAnnealingLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.CosineAnnealingLR.html>`_:

    .. math:: \eta_t = \eta_{min} + \frac{\eta_0 - \eta_{min}}{2}\left(1 + \cos\frac{\pi t}{T_{max}}\right)

    ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``scheduler.step()``. The step is
    reduced modulo ``2 T_max`` in integer arithmetic and the cosine written as ``cos^2``/``sin^2``
    of half the angle, so float32 keeps full relative precision near ``eta_min`` and at
    ``t = 2**31 - 1``.

    Args:
        base_lr: the optimizer's initial lr; a scalar or one value per parameter group.
        T_max: half period, in steps; a positive integer.
        eta_min: the minimum learning rate, ``>= 0``.

    Raises:
        ValueError: if ``T_max`` is not a positive integer (torch accepts 0 and divides by zero at
            the first step, and treats a negative ``T_max`` as ``|T_max|``), or ``eta_min < 0``.

    .. note::
        As in torch, the schedule does not stop at ``T_max``: it has period ``2 T_max`` and the
        lr rises again after ``T_max`` (``T_max=3``: 1, .75, .25, 0, .25, .75, 1, ...).
        ``eta_min > base_lr`` is allowed: the lr then rises towards ``eta_min``.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.cosine_annealing_lr(1.0, T_max=3)
        >>> [round(float(schedule(t)), 6) for t in range(8)]
        [1.0, 0.75, 0.25, 0.0, 0.25, 0.75, 1.0, 0.75]
    """
    return _CosineAnnealingLR(base_lr, T_max, eta_min)


class _CosineAnnealingWarmRestarts(LRSchedule):
    torch_class = "CosineAnnealingWarmRestarts"
    kind = "absolute"

    def __init__(self, base_lr, T_0, T_mult, eta_min):
        self.base_lr = _base.hyper(base_lr, "base_lr")
        self.T_0 = _base.integer(T_0, "T_0", strict_type=True, message=f"Expected positive integer T_0, but got {T_0}")
        self.T_mult = _base.integer(
            T_mult, "T_mult", strict_type=True, message=f"Expected integer T_mult >= 1, but got {T_mult}"
        )
        if not _base.is_traced(eta_min) and (isinstance(eta_min, (str, bytes, bool)) or eta_min is None):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}")
        self.eta_min = _base.hyper(eta_min, "eta_min", groups=False)
        # Start of every cycle n, T_0 (T_mult**n - 1) / (T_mult - 1), and its length T_0 T_mult**n,
        # exactly, for every start below 2**63.
        if self.T_mult > 1:
            starts, lengths = [0], [self.T_0]
            while starts[-1] + lengths[-1] < 2**63:
                starts.append(starts[-1] + lengths[-1])
                lengths.append(lengths[-1] * self.T_mult)
            self.starts = np.asarray(starts, dtype=np.int64)
            self.lengths = np.asarray([float(x) for x in lengths], dtype=np.float64)
        super().__init__(
            "cosine_annealing_warm_restarts",
            {"base_lr": self.base_lr, "T_0": self.T_0, "T_mult": self.T_mult, "eta_min": self.eta_min},
        )

    def _cycle(self, t: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(T_cur, T_i - T_cur, T_i)`` as floats, computed exactly for integer steps."""
        dtype = float_dtype()
        if self.T_mult == 1:
            if _base.is_int(t):
                T0 = _base.int_const(self.T_0, t)
                cur = (t % T0 if T0 is not None else t).astype(dtype)
                left = (T0 - t % T0).astype(dtype) if T0 is not None else const(self.T_0) - cur
            else:
                cur = jnp.remainder(t.astype(dtype), const(self.T_0))
                left = const(self.T_0) - cur
            return cur, left, const(self.T_0)
        if _base.is_int(t):
            fits = self.starts <= jnp.iinfo(t.dtype).max
            starts = jnp.asarray(self.starts[fits], dtype=t.dtype)
            n = _base.searchsorted(starts, t, side="right") - 1
            cur_i = t - starts[n]
            length = const(self.lengths[fits])[n]
            cur = cur_i.astype(dtype)
            return cur, length - cur, length
        tf = t.astype(dtype)
        n = _base.searchsorted(const(self.starts.astype(np.float64)), tf, side="right") - 1
        cur = tf - const(self.starts.astype(np.float64))[n]
        length = const(self.lengths)[n]
        return cur, length - cur, length

    def _value(self, t):
        cur, left, length = self._cycle(t)
        eta = const(self.eta_min)
        return eta + (const(self.base_lr) - eta) * _base.half_cosine(cur, left, length)


def cosine_annealing_warm_restarts(
    base_lr: ArrayLike | Sequence[float], T_0: int, T_mult: int = 1, eta_min: ArrayLike = 0.0
) -> LRSchedule:
    r"""Cosine annealing that restarts from ``base_lr`` after ``T_0``, ``T_0 T_mult``, ... steps (SGDR).

    Port of `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.CosineAnnealingWarmRestarts.html>`_:

    .. math:: \eta_t = \eta_{min} + \frac{\eta_0 - \eta_{min}}{2}\left(1 + \cos\frac{\pi T_{cur}}{T_i}\right)

    where cycle ``i`` lasts ``T_i = T_0 T_mult^i`` steps and ``T_cur`` counts the steps since its
    start. ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``scheduler.step()``;
    for a fractional ``t`` it is torch's ``scheduler.step(t)`` (the
    ``scheduler.step(epoch + i / iters)`` pattern, see :func:`per_epoch`).

    Args:
        base_lr: the optimizer's initial lr; a scalar or one value per parameter group.
        T_0: length of the first cycle, a positive integer.
        T_mult: factor by which each cycle is longer than the last, an integer ``>= 1``.
        eta_min: the minimum learning rate, ``>= 0``.

    Raises:
        ValueError: with torch's messages for ``T_0``, ``T_mult`` and ``eta_min``, and for a
            negative ``eta_min``.

    .. note::
        Restarts are found exactly, in integer arithmetic. torch's ``step(epoch)`` computes the
        cycle index as ``int(math.log(...))``, which lands one cycle short at some restarts
        (``T_0=1, T_mult=3``: ``step(121.0)`` gives ``eta_min`` instead of the restart value
        ``base_lr``, because ``math.log(243, 3) = 4.999999999999999``); lrjax gives the restart
        value there, as torch's own ``step()`` does.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.cosine_annealing_warm_restarts(1.0, T_0=2, T_mult=2)
        >>> [round(float(schedule(t)), 4) for t in range(8)]
        [1.0, 0.5, 1.0, 0.8536, 0.5, 0.1464, 1.0, 0.9619]
    """
    return _CosineAnnealingWarmRestarts(base_lr, T_0, T_mult, eta_min)
