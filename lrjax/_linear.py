"""Schedules over a fixed number of iterations: ``ConstantLR``, ``LinearLR``, ``PolynomialLR``."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from lrjax import _base
from lrjax._base import ArrayLike, MultiplicativeSchedule, const, float_dtype


def _clipped(t: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """``min(t, n)`` and ``n - min(t, n)`` as floats, the difference exact for integer steps."""
    dtype = float_dtype()
    if _base.is_int(t):
        n_c = _base.int_const(n, t)
        if n_c is None:  # every step of this dtype is below n
            return t.astype(dtype), const(n, dtype) - t.astype(dtype)
        tc = jnp.minimum(t, n_c)
        return tc.astype(dtype), (n_c - tc).astype(dtype)
    tc = jnp.minimum(t.astype(dtype), const(n, dtype))
    return tc, const(n, dtype) - tc


class _ConstantLR(MultiplicativeSchedule):
    torch_class = "ConstantLR"

    def __init__(self, base_lr, factor, total_iters):
        self.base_lr = _base.hyper(base_lr, "base_lr")
        self.const_factor = _base.hyper(
            factor, "factor", low=0.0, high=1.0, groups=False,
            message="Constant multiplicative factor expected to be between 0 and 1.",
        )
        self.total_iters = _base.integer(total_iters, "total_iters", minimum=0)
        if self.total_iters > 0 and not _base.is_traced(self.const_factor) and self.const_factor == 0:
            raise ValueError(
                "factor=0 with total_iters > 0: torch divides the lr by the factor at step total_iters "
                "(ZeroDivisionError). Use factor > 0, or total_iters=0 for a constant lr of 0."
            )
        self.last_event = self.total_iters
        super().__init__(
            "constant_lr", {"base_lr": self.base_lr, "factor": self.const_factor, "total_iters": self.total_iters}
        )

    def factor(self, t):
        f = const(self.const_factor)
        if self.total_iters == 0:
            return jnp.broadcast_to(f, jnp.shape(t))
        before, _ = _clipped(t, self.total_iters)
        return jnp.where(before < self.total_iters, f, const(1.0))

    def step_factor(self, t):
        f = const(self.const_factor)
        if self.total_iters == 0:
            return jnp.where(t == 0, f, const(1.0))
        return jnp.where(t == 0, f, jnp.where(t == self.total_iters, 1.0 / f, const(1.0)))

    def factor_between(self, t0, t):
        if self.total_iters == 0:
            return jnp.ones(jnp.broadcast_shapes(jnp.shape(t0), jnp.shape(t)), float_dtype())
        n = self.total_iters
        return jnp.where((t0 < n) & (t >= n), 1.0 / const(self.const_factor), const(1.0))


def constant_lr(
    base_lr: ArrayLike | Sequence[float], factor: ArrayLike = 1.0 / 3, total_iters: int = 5
) -> MultiplicativeSchedule:
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
    return _ConstantLR(base_lr, factor, total_iters)


class _LinearLR(MultiplicativeSchedule):
    torch_class = "LinearLR"

    def __init__(self, base_lr, start_factor, end_factor, total_iters):
        self.base_lr = _base.hyper(base_lr, "base_lr")
        self.start_factor = _base.hyper(
            start_factor, "start_factor", low=0.0, low_open=True, high=1.0, groups=False,
            message="Starting multiplicative factor expected to be greater than 0 and less or equal to 1.",
        )
        self.end_factor = _base.hyper(
            end_factor, "end_factor", low=0.0, high=1.0, groups=False,
            message="Ending multiplicative factor expected to be between 0 and 1.",
        )
        self.total_iters = _base.integer(total_iters, "total_iters", minimum=0)
        self.last_event = self.total_iters
        super().__init__(
            "linear_lr",
            {"base_lr": self.base_lr, "start_factor": self.start_factor, "end_factor": self.end_factor,
             "total_iters": self.total_iters},
        )

    def _at(self, done: jax.Array, left: jax.Array) -> jax.Array:
        """``start + (end - start) * done / n`` as a positive combination (no cancellation)."""
        n = self.total_iters
        return (const(self.start_factor) * left + const(self.end_factor) * done) / const(n)

    def factor(self, t):
        if self.total_iters == 0:
            return jnp.broadcast_to(const(self.start_factor), jnp.shape(t))
        return self._at(*_clipped(t, self.total_iters))

    def step_factor(self, t):
        s = const(self.start_factor)
        n = self.total_iters
        if n == 0:
            return jnp.where(t == 0, s, const(1.0))
        done, left = _clipped(t, n)
        prev = self._at(done - 1, left + 1)
        active = (t >= 1) & (t <= n)
        ratio = self._at(done, left) / jnp.where(active, prev, const(1.0))
        return jnp.where(t == 0, s, jnp.where(active, ratio, const(1.0)))

    def factor_between(self, t0, t):
        n = self.total_iters
        if n == 0:
            return jnp.ones(jnp.broadcast_shapes(jnp.shape(t0), jnp.shape(t)), float_dtype())
        start = self._at(*_clipped(t0, n))
        return jnp.where(t0 >= n, const(1.0), self.factor(t) / jnp.where(t0 >= n, const(1.0), start))


def linear_lr(
    base_lr: ArrayLike | Sequence[float],
    start_factor: ArrayLike = 1.0 / 3,
    end_factor: ArrayLike = 1.0,
    total_iters: int = 5,
) -> MultiplicativeSchedule:
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
    return _LinearLR(base_lr, start_factor, end_factor, total_iters)


class _PolynomialLR(MultiplicativeSchedule):
    torch_class = "PolynomialLR"

    def __init__(self, base_lr, total_iters, power):
        self.base_lr = _base.hyper(base_lr, "base_lr")
        self.total_iters = _base.integer(total_iters, "total_iters", minimum=0)
        self.power = _base.hyper(power, "power", groups=False)
        self.last_event = self.total_iters
        super().__init__("polynomial_lr", {"base_lr": self.base_lr, "total_iters": self.total_iters, "power": self.power})

    def _pow(self, x: jax.Array) -> jax.Array:
        # 0 ** power is 0 for any power > 0, even one that rounds to 0 in float32 (torch: float64).
        p = self.power
        positive = const(p > 0, jnp.bool_) if not _base.is_traced(p) else p > 0
        return jnp.where(x == 0, jnp.where(positive, const(0.0), const(1.0)), jnp.power(x, const(p)))

    def factor(self, t):
        n = self.total_iters
        if n == 0:
            return jnp.ones(jnp.shape(t), float_dtype())
        _, left = _clipped(t, n)
        return self._pow(left / const(n))

    def step_factor(self, t):
        n = self.total_iters
        if n == 0:
            return jnp.ones(jnp.shape(t), float_dtype())
        _, left = _clipped(t, n)
        active = (t >= 1) & (t <= n)
        return jnp.where(active, self._pow(left / jnp.where(active, left + 1, const(1.0))), const(1.0))

    def factor_between(self, t0, t):
        n = self.total_iters
        if n == 0:
            return jnp.ones(jnp.broadcast_shapes(jnp.shape(t0), jnp.shape(t)), float_dtype())
        _, left0 = _clipped(t0, n)
        _, left = _clipped(t, n)
        return jnp.where(t0 >= n, const(1.0), self._pow(left / jnp.where(t0 >= n, const(1.0), left0)))


def polynomial_lr(
    base_lr: ArrayLike | Sequence[float], total_iters: int = 5, power: ArrayLike = 1.0
) -> MultiplicativeSchedule:
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
    return _PolynomialLR(base_lr, total_iters, power)
