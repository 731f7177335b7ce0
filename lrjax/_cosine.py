"""Cosine annealing: ``CosineAnnealingLR`` and ``CosineAnnealingWarmRestarts``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _numerics, _steps, _validate
from lrjax._schedule import AbsoluteMember, Affine, Member, const
from lrjax._steps import ArrayLike, Step, float_dtype


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class CosineAnnealingLR(Member):
    base_lr: Any
    T_max: int
    eta_min: Any = 0.0

    name: ClassVar[str] = "cosine_annealing_lr"
    torch_closed_form: ClassVar[bool] = True

    def _validate(self) -> None:
        self._set("base_lr", _validate.hyper(self.base_lr, "base_lr"))
        self._set("T_max", _validate.integer(self.T_max, "T_max", minimum=1))
        self._set("eta_min", _validate.hyper(self.eta_min, "eta_min", groups=False))

    def _finite(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "eta_min": self.eta_min}

    def weight(self, step: Step) -> jax.Array:
        """``(1 + cos(pi t / T_max)) / 2``, with ``t`` reduced modulo ``2 T_max`` exactly first."""
        T = self.T_max
        q = _steps.mod(step.k, 2 * T)  # 0 <= q < 2T
        rising = _steps.ge(q, T)  # the second half of the period, where the lr rises again
        done = jnp.where(rising, _steps.c_minus(2 * T, q), q.astype(float_dtype()))
        left = jnp.where(rising, _steps.sub_clipped(q, T).astype(float_dtype()), _steps.c_minus(T, q))
        if step.f is not None:
            done = jnp.where(rising, done - step.f, done + step.f)
            left = jnp.where(rising, left + step.f, left - step.f)
        return _numerics.half_cosine(done, left, T)

    def value(self, step: Step) -> jax.Array:
        eta = const(self.eta_min)
        return eta + (const(self.base_lr) - eta) * self.weight(step)

    # -- torch's recursive update -------------------------------------------------------------
    #
    # get_lr() at last_epoch u >= 1: at u = T_max + 1 (mod 2 T_max) it adds
    # (base_lr - eta_min)(1 - cos(pi / T_max)) / 2; otherwise it maps lr - eta_min by the ratio
    # w(u) / w(u - 1). At u = T_max (mod 2 T_max) the ratio is exactly 0: the lr becomes eta_min
    # whatever it was (a reset).

    def _increment(self) -> jax.Array:
        """``(base_lr - eta_min)(1 - cos(pi / T_max)) / 2``, with ``(1 - cos(pi / T_max)) / 2`` taken as
        ``w(T_max + 1) = sin^2(pi / 2 T_max)``: torch's ``1 - cos`` cancels (3e-8 relative off for
        T_max = 10^5), but so does its ``1 + cos`` in the ratios that follow, and the two errors
        cancel in the lr it reaches; this value is the one they cancel to."""
        return (const(self.base_lr) - const(self.eta_min)) * self.weight(
            _steps.at(self.T_max + 1) if _steps.fits(self.T_max + 1) else Step(_steps.uconst(0))
        )

    def _is_restart(self, u: jax.Array) -> jax.Array:
        T = self.T_max
        return _steps.ge(u, T + 1) & (_steps.mod(_steps.sub_clipped(u, T + 1), 2 * T) == 0)

    def step_map(self, u: jax.Array) -> Affine:
        eta = const(self.eta_min)
        restart = self._is_restart(u)
        prev = self.weight(Step(_steps.sub_clipped(u, 1)))
        ratio = self.weight(Step(u)) / jnp.where(restart | (prev == 0), const(1.0), prev)
        a = jnp.where(restart, const(1.0), ratio)
        c = jnp.where(restart, self._increment(), eta * (1 - ratio))
        return Affine(a, c)

    def init_map(self) -> Affine:
        return Affine.identity()

    def restep_map(self) -> Affine:
        # get_lr at last_epoch 0 without _is_initial: (0 - 1 - T) % 2T == 0 only for T = 1 (the
        # restart increment, base_lr - eta_min), else the ratio w(0) / w(-1) = 1 / w(1).
        if self.T_max == 1:
            return Affine(const(1.0), const(self.base_lr) - const(self.eta_min))
        ratio = 1.0 / self.weight(_steps.at(1))
        return Affine(ratio, const(self.eta_min) * (1 - ratio))

    def entry_map(self) -> Affine:
        return Affine.set(self.base_lr)  # the closed form at epoch 0

    def entry_is_fresh(self) -> bool:
        return True

    def factor_between(self, u0: jax.Array, u: jax.Array) -> jax.Array:
        """The product of the ratio updates for counters in ``(u0, u]``, ``w(u) / w(u0)``: with
        ``eta_min = 0`` the updates between a restart and the next reset only scale the lr."""
        w0 = self.weight(Step(u0))
        return self.weight(Step(u)) / jnp.where(w0 == 0, const(1.0), w0)

    def resets(self, u: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Whether some counter ``v <= u`` has ``v = T_max (mod 2 T_max)``, ``v >= T_max``, and the last one."""
        T = self.T_max
        if not _steps.fits(T):
            return jnp.zeros(jnp.shape(u), bool), u
        since = _steps.sub_clipped(u, T)
        return _steps.ge(u, T), _steps.uconst(T) + (since - _steps.mod(since, 2 * T))

    def run(self, lr: jax.Array, u0: jax.Array, u: jax.Array) -> jax.Array:
        """torch's recursion from ``lr`` at counter ``u0`` to ``u``, on the excess ``lr - eta_min``:
        the ratios telescope to ``w(u) / w(u0)``; after a reset (``lr = eta_min`` at ``T_max``
        mod ``2 T_max``) and the restart that follows it, the lr is the closed form again."""
        eta = const(self.eta_min)
        one = jnp.ones((), u.dtype)
        exists, reset = self.resets(u)
        has_reset = exists & (reset > u0)
        excess = lr - eta
        # Without a reset in (u0, u]: the update at u0 + 1 is the restart when u0 is itself a reset.
        u1 = u0 + one
        w0, w1 = self.weight(Step(u0)), self.weight(Step(u1))
        restart = self._is_restart(u1)
        excess1 = jnp.where(restart, excess + self._increment(), excess * w1 / jnp.where(w0 == 0, const(1.0), w0))
        carried = eta + excess1 * self.weight(Step(u)) / jnp.where(w1 == 0, const(1.0), w1)
        carried = jnp.where(u <= u0, lr, jnp.where(u == u1, eta + excess1, carried))
        fresh = jnp.where(u <= reset, jnp.broadcast_to(eta, jnp.shape(carried)), self.value(Step(u)))
        return jnp.where(has_reset, fresh, carried)


def cosine_annealing_lr(
    base_lr: ArrayLike | Sequence[float], T_max: int, eta_min: ArrayLike = 0.0
) -> CosineAnnealingLR:
    r"""Anneals the learning rate from ``base_lr`` to ``eta_min`` along a cosine over ``T_max`` steps.

    Port of `torch.optim.lr_scheduler.CosineAnnealingLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.CosineAnnealingLR.html>`_:

    .. math:: \eta_t = \eta_{min} + \frac{\eta_0 - \eta_{min}}{2}\left(1 + \cos\frac{\pi t}{T_{max}}\right)

    ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``scheduler.step()``. The step is
    reduced modulo ``2 T_max`` in integer arithmetic and the cosine written as ``cos^2``/``sin^2``
    of half the angle, so float32 keeps full relative precision near ``eta_min`` at any step.

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
    return CosineAnnealingLR(base_lr, T_max, eta_min)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class CosineAnnealingWarmRestarts(AbsoluteMember):
    base_lr: Any
    T_0: int
    T_mult: int = 1
    eta_min: Any = 0.0

    name: ClassVar[str] = "cosine_annealing_warm_restarts"

    def _validate(self) -> None:
        self._set("base_lr", _validate.hyper(self.base_lr, "base_lr"))
        self._set(
            "T_0",
            _validate.integer(
                self.T_0, "T_0", strict_type=True, message=f"Expected positive integer T_0, but got {self.T_0}"
            ),
        )
        self._set(
            "T_mult",
            _validate.integer(
                self.T_mult, "T_mult", strict_type=True, message=f"Expected integer T_mult >= 1, but got {self.T_mult}"
            ),
        )
        eta = self.eta_min
        if not _steps.is_traced(eta) and (isinstance(eta, (str, bytes, bool, np.bool_)) or eta is None):
            raise ValueError(f"Expected float or int eta_min, but got {eta} of type {type(eta)}")
        self._set("eta_min", _validate.hyper(eta, "eta_min", groups=False))

    def _finite(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "eta_min": self.eta_min}

    def _cycles(self) -> tuple[list[int], list[int]]:
        """Start and length of every cycle that starts in the domain, exactly."""
        starts, lengths = [0], [self.T_0]
        limit = _steps.max_step()
        while self.T_mult > 1 and starts[-1] + lengths[-1] <= limit:
            starts.append(starts[-1] + lengths[-1])
            lengths.append(lengths[-1] * self.T_mult)
        return starts, lengths

    def _position(self, step: Step) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(T_cur, T_i - T_cur, T_i)`` as floats, exact in their integer parts."""
        k, dtype = step.k, float_dtype()
        if self.T_mult == 1:
            into = _steps.mod(k, self.T_0)
            length = const(float(self.T_0))
            cur, left = into.astype(dtype), _steps.c_minus(self.T_0, into)
        else:
            starts, lengths = self._cycles()
            table = jnp.asarray(np.asarray(starts, dtype=np.uint64).astype(_steps.uint_dtype()))
            n = _numerics.searchsorted(table, k, side="right") - 1
            into = k - table[n]
            length = const(np.asarray([float(x) for x in lengths]))[n]
            fits = [x for x in lengths if _steps.fits(x)]
            if len(fits) == len(lengths):
                lengths_u = jnp.asarray(np.asarray(lengths, dtype=np.uint64).astype(_steps.uint_dtype()))
                left = (lengths_u[n] - into).astype(dtype)
            else:
                left = length - into.astype(dtype)
            cur = into.astype(dtype)
        if step.f is not None:
            cur, left = cur + step.f, left - step.f
        return cur, left, length

    def value(self, step: Step) -> jax.Array:
        cur, left, length = self._position(step)
        eta = const(self.eta_min)
        return eta + (const(self.base_lr) - eta) * _numerics.half_cosine(cur, left, length)


def cosine_annealing_warm_restarts(
    base_lr: ArrayLike | Sequence[float], T_0: int, T_mult: int = 1, eta_min: ArrayLike = 0.0
) -> CosineAnnealingWarmRestarts:
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
    return CosineAnnealingWarmRestarts(base_lr, T_0, T_mult, eta_min)


# ----------------------------------------------------------------------------------------------
# from_torch converters (lrjax.from_torch finds them through the registry)
# ----------------------------------------------------------------------------------------------


def _from_torch_cosine_annealing_lr(s: Any, total_steps: int | None) -> CosineAnnealingLR:
    from lrjax._torch_util import groups

    # torch's recursion only uses T_max through cos(pi / T_max) and t % (2 T_max): -T_max acts as T_max.
    return cosine_annealing_lr(groups(s.base_lrs), T_max=abs(s.T_max), eta_min=s.eta_min)


def _from_torch_cosine_annealing_warm_restarts(s: Any, total_steps: int | None) -> CosineAnnealingWarmRestarts:
    from lrjax._torch_util import groups

    return cosine_annealing_warm_restarts(groups(s.base_lrs), T_0=s.T_0, T_mult=s.T_mult, eta_min=s.eta_min)
