"""Schedules over a fixed number of iterations: ``ConstantLR``, ``LinearLR``, ``PolynomialLR``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from lrjax import _steps, _validate
from lrjax._schedule import Affine, MultiplicativeMember, const
from lrjax._steps import ArrayLike, Step, float_dtype


def _progress(step: Step, n: int) -> tuple[jax.Array, jax.Array]:
    """``done = min(t, n)`` and ``left = n - done`` as floats, exact in their integer parts."""
    k = step.k
    before = ~_steps.ge(k, n)
    done = _steps.minimum(k, n).astype(float_dtype())
    left = _steps.c_minus(n, k)
    if step.f is not None:
        done = jnp.where(before, done + step.f, done)
        left = jnp.where(before, left - step.f, left)
    return done, left


class _Ramp(MultiplicativeMember):
    """A factor that changes for ``total_iters`` steps, then holds: ``base_lr * ramp(min(t, n))``.

    Between counters ``u0 < u`` the updates multiply the lr by ``ramp(u) / ramp(u0)``, which
    is 1 from ``total_iters`` on.
    """

    total_iters: int

    def ramp(self, done: jax.Array, left: jax.Array) -> jax.Array:
        """The factor after ``done`` of the ``total_iters`` steps (``left`` to go)."""
        raise NotImplementedError

    def value(self, step: Step) -> jax.Array:
        return const(getattr(self, "base_lr")) * self.ramp(*_progress(step, self.total_iters))

    def factor_between(self, u0: jax.Array, u: jax.Array) -> jax.Array:
        n = self.total_iters
        if n == 0:
            return jnp.ones(jnp.broadcast_shapes(jnp.shape(u0), jnp.shape(u)), float_dtype())
        active = ~_steps.ge(u0, n)
        start = self.ramp(*_progress(Step(u0), n))
        end = self.ramp(*_progress(Step(u), n))
        return jnp.where(active, end / jnp.where(active, start, const(1.0)), const(1.0))

    def last_event(self):
        return self.total_iters

    def _finite(self) -> dict[str, Any]:
        return {"base_lr": getattr(self, "base_lr")}


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ConstantLR(_Ramp):
    base_lr: Any
    factor: Any = 1.0 / 3
    total_iters: int = 5

    name: ClassVar[str] = "constant_lr"

    def _validate(self) -> None:
        self._set("base_lr", _validate.hyper(self.base_lr, "base_lr"))
        self._set(
            "factor",
            _validate.hyper(
                self.factor,
                "factor",
                low=0.0,
                high=1.0,
                groups=False,
                message="Constant multiplicative factor expected to be between 0 and 1.",
            ),
        )
        self._set("total_iters", _validate.integer(self.total_iters, "total_iters", minimum=0))
        if self.total_iters > 0 and not _steps.is_traced(self.factor) and float(self.factor) == 0.0:
            raise ValueError(
                "factor=0 with total_iters > 0: torch divides the lr by the factor at step total_iters "
                "(ZeroDivisionError). Use factor > 0, or total_iters=0 for a constant lr of 0."
            )

    def ramp(self, done, left):
        f = const(self.factor)
        if self.total_iters == 0:  # torch applies the factor at step 0 and never removes it
            return jnp.broadcast_to(f, jnp.shape(done))
        return jnp.where(left > 0, f, const(1.0))

    def factor_between(self, u0, u):
        n = self.total_iters
        if n == 0:
            return jnp.ones(jnp.broadcast_shapes(jnp.shape(u0), jnp.shape(u)), float_dtype())
        crossed = ~_steps.ge(u0, n) & _steps.ge(u, n)
        return jnp.where(crossed, 1.0 / const(self.factor), const(1.0))

    def init_map(self) -> Affine:
        return Affine.scale(self.factor)

    def entry_map(self) -> Affine:
        # torch's closed form at epoch 0: base_lr * factor, or base_lr when total_iters == 0.
        return Affine.set(const(self.base_lr) * (const(self.factor) if self.total_iters > 0 else const(1.0)))

    def entry_is_fresh(self) -> bool:
        return self.total_iters > 0


def constant_lr(base_lr: ArrayLike | Sequence[float], factor: ArrayLike = 1.0 / 3, total_iters: int = 5) -> ConstantLR:
    r"""Multiplies the learning rate by a constant ``factor`` until step ``total_iters``.

    Port of `torch.optim.lr_scheduler.ConstantLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ConstantLR.html>`_:

    .. math:: \eta_t = \eta_0 \cdot \begin{cases} f & t < T \\ 1 & t \ge T \end{cases}

    ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``scheduler.step()``.

    Args:
        base_lr: the optimizer's initial lr; a scalar or one value per parameter group.
        factor: the constant factor, in ``[0, 1]``.
        total_iters: number of steps during which the factor applies, ``>= 0``.

    Raises:
        ValueError: if ``factor`` is outside ``[0, 1]`` (torch's message), if ``factor == 0`` with
            ``total_iters > 0`` (torch divides by zero at ``total_iters``), or if ``total_iters``
            is negative.

    .. note::
        With ``total_iters=0`` torch applies the factor at step 0 and never removes it: the lr
        is ``base_lr * factor`` forever (torch's own closed form would say ``base_lr``).

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.constant_lr(0.05, factor=0.5, total_iters=4)
        >>> [round(float(schedule(t)), 6) for t in range(6)]
        [0.025, 0.025, 0.025, 0.025, 0.05, 0.05]
    """
    return ConstantLR(base_lr, factor, total_iters)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class LinearLR(_Ramp):
    base_lr: Any
    start_factor: Any = 1.0 / 3
    end_factor: Any = 1.0
    total_iters: int = 5

    name: ClassVar[str] = "linear_lr"

    def _validate(self) -> None:
        self._set("base_lr", _validate.hyper(self.base_lr, "base_lr"))
        self._set(
            "start_factor",
            _validate.hyper(
                self.start_factor,
                "start_factor",
                low=0.0,
                low_open=True,
                high=1.0,
                groups=False,
                message="Starting multiplicative factor expected to be greater than 0 and less or equal to 1.",
            ),
        )
        self._set(
            "end_factor",
            _validate.hyper(
                self.end_factor,
                "end_factor",
                low=0.0,
                high=1.0,
                groups=False,
                message="Ending multiplicative factor expected to be between 0 and 1.",
            ),
        )
        self._set("total_iters", _validate.integer(self.total_iters, "total_iters", minimum=0))

    def ramp(self, done, left):
        """``start + (end - start) * done / n`` as a positive combination (no cancellation)."""
        n = self.total_iters
        if n == 0:  # torch keeps base_lr * start_factor forever
            return jnp.broadcast_to(const(self.start_factor), jnp.shape(done))
        s, e = const(self.start_factor), const(self.end_factor)
        if not _steps.fits(n):  # no step reaches total_iters; n (and left) may overflow float32
            return s + (e - s) * (done / const(float(n)))
        return (s * left + e * done) / const(n)

    def init_map(self) -> Affine:
        return Affine.scale(self.start_factor)

    def entry_map(self) -> Affine:
        if self.total_iters == 0:
            raise ValueError(self.entry_error())
        return super().entry_map()

    def entry_error(self) -> str | None:
        if self.total_iters == 0:
            return (
                f"{self!r} starts at a milestone, where torch evaluates its closed form, which divides by "
                "total_iters=0 (ZeroDivisionError). Use total_iters >= 1."
            )
        return None


def linear_lr(
    base_lr: ArrayLike | Sequence[float],
    start_factor: ArrayLike = 1.0 / 3,
    end_factor: ArrayLike = 1.0,
    total_iters: int = 5,
) -> LinearLR:
    r"""Changes the learning rate's factor linearly from ``start_factor`` to ``end_factor``.

    Port of `torch.optim.lr_scheduler.LinearLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.LinearLR.html>`_:

    .. math:: \eta_t = \eta_0 \left(f_s + (f_e - f_s) \frac{\min(t, T)}{T}\right)

    ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``scheduler.step()``. The usual
    linear warm-up is ``linear_lr(base_lr, start_factor=0.01, total_iters=warmup_steps)``.

    Args:
        base_lr: the optimizer's initial lr; a scalar or one value per parameter group.
        start_factor: factor at step 0, in ``(0, 1]``.
        end_factor: factor from step ``total_iters`` on, in ``[0, 1]``.
        total_iters: number of steps of the ramp, ``>= 0``.

    Raises:
        ValueError: for factors outside their ranges (torch's messages) or negative
            ``total_iters``.

    .. note::
        With ``total_iters=0`` torch keeps ``base_lr * start_factor`` forever. torch's docstring
        labels the value after one step as "epoch 0"; here, as in torch's behaviour,
        ``schedule(0) = base_lr * start_factor``.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.linear_lr(0.05, start_factor=0.5, total_iters=4)
        >>> [round(float(schedule(t)), 6) for t in range(6)]
        [0.025, 0.03125, 0.0375, 0.04375, 0.05, 0.05]
    """
    return LinearLR(base_lr, start_factor, end_factor, total_iters)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class PolynomialLR(_Ramp):
    base_lr: Any
    total_iters: int = 5
    power: Any = 1.0

    name: ClassVar[str] = "polynomial_lr"

    def _validate(self) -> None:
        self._set("base_lr", _validate.hyper(self.base_lr, "base_lr"))
        self._set("total_iters", _validate.integer(self.total_iters, "total_iters", minimum=0))
        self._set("power", _validate.hyper(self.power, "power", groups=False))

    def _finite(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "power": self.power}

    def _pow(self, x: jax.Array) -> jax.Array:
        # 0 ** power is 0 for any power > 0, even one that rounds to 0 in float32 (torch: float64).
        p = self.power
        positive = const(p > 0, jnp.bool_) if not _steps.is_traced(p) else p > 0
        return jnp.where(x == 0, jnp.where(positive, const(0.0), const(1.0)), jnp.power(x, const(p)))

    def ramp(self, done, left):
        n = self.total_iters
        if n == 0:  # torch keeps base_lr forever
            return jnp.ones(jnp.shape(done), float_dtype())
        if not _steps.fits(n):  # no step reaches total_iters; n (and left) may overflow float32
            return self._pow(const(1.0) - done / const(float(n)))
        return self._pow(left / const(n))

    def factor_between(self, u0, u):
        n = self.total_iters
        if n == 0:
            return jnp.ones(jnp.broadcast_shapes(jnp.shape(u0), jnp.shape(u)), float_dtype())
        active = ~_steps.ge(u0, n)
        if not _steps.fits(n):
            return self.ramp(*_progress(Step(u), n)) / self.ramp(*_progress(Step(u0), n))
        _, left0 = _progress(Step(u0), n)
        _, left = _progress(Step(u), n)
        return jnp.where(active, self._pow(left / jnp.where(active, left0, const(1.0))), const(1.0))

    def restep_map(self) -> Affine:
        # Without _is_initial, get_lr at last_epoch 0 multiplies by ((1 - 0/n) / (1 + 1/n)) ** power.
        n = self.total_iters
        if n == 0:
            raise ValueError(self.restep_error())
        return Affine.scale(self._pow(const(n / (n + 1.0))))

    def restep_error(self) -> str | None:
        if self.total_iters == 0:
            return (
                f"{self!r} would be re-initialised by torch's step() at last_epoch 0, which divides by "
                "total_iters=0 (ZeroDivisionError). Use total_iters >= 1."
            )
        return None

    def entry_map(self) -> Affine:
        if self.total_iters == 0:
            raise ValueError(self.entry_error())
        return super().entry_map()

    def entry_error(self) -> str | None:
        if self.total_iters == 0:
            return (
                f"{self!r} starts at a milestone, where torch evaluates its closed form, which divides by "
                "total_iters=0 (ZeroDivisionError). Use total_iters >= 1."
            )
        return None


def polynomial_lr(base_lr: ArrayLike | Sequence[float], total_iters: int = 5, power: ArrayLike = 1.0) -> PolynomialLR:
    r"""Decays the learning rate polynomially to 0 over ``total_iters`` steps.

    Port of `torch.optim.lr_scheduler.PolynomialLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.PolynomialLR.html>`_:

    .. math:: \eta_t = \eta_0 \left(\frac{T - \min(t, T)}{T}\right)^{p}

    ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``scheduler.step()``.

    Args:
        base_lr: the optimizer's initial lr; a scalar or one value per parameter group.
        total_iters: number of steps of the decay, ``>= 0``.
        power: exponent of the polynomial, ``>= 0``.

    Raises:
        ValueError: if ``total_iters`` or ``power`` is negative (with ``power < 0`` torch raises
            ZeroDivisionError at step ``total_iters``).

    .. note::
        With ``total_iters=0`` torch keeps ``base_lr`` forever. torch's docstring labels the
        value after one step as "epoch 0"; here ``schedule(0) = base_lr``.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.polynomial_lr(0.001, total_iters=4, power=1.0)
        >>> [round(float(schedule(t)), 6) for t in range(6)]
        [0.001, 0.00075, 0.0005, 0.00025, 0.0, 0.0]
    """
    return PolynomialLR(base_lr, total_iters, power)


# ----------------------------------------------------------------------------------------------
# from_torch converters (lrjax.from_torch finds them through the registry)
# ----------------------------------------------------------------------------------------------


def _from_torch_constant_lr(s: Any, total_steps: int | None) -> ConstantLR:
    from lrjax._torch_util import groups, iters

    return constant_lr(groups(s.base_lrs), factor=s.factor, total_iters=iters(s.total_iters))


def _from_torch_linear_lr(s: Any, total_steps: int | None) -> LinearLR:
    from lrjax._torch_util import groups, iters

    return linear_lr(
        groups(s.base_lrs), start_factor=s.start_factor, end_factor=s.end_factor, total_iters=iters(s.total_iters)
    )


def _from_torch_polynomial_lr(s: Any, total_steps: int | None) -> PolynomialLR:
    from lrjax._torch_util import groups, iters

    return polynomial_lr(groups(s.base_lrs), total_iters=iters(s.total_iters), power=s.power)
