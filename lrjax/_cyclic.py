"""Cyclical learning rates (Smith, 2017): ``CyclicLR`` and the momentum it cycles."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lrjax import _base
from lrjax._base import ArrayLike, LRSchedule, Probe, const, float_dtype

_MODES = ("triangular", "triangular2", "exp_range")
_SCALE_MODES = ("cycle", "iterations")


def _step_size(x: Any, name: str) -> float | int:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
        raise ValueError(f"{name} must be a positive number of steps, got {x!r}")
    return int(x) if float(x).is_integer() else float(x)


class _Cyclic(LRSchedule):
    torch_class = "CyclicLR"
    kind = "absolute"

    def __init__(self, fn_name, low, high, low_name, high_name, step_size_up, step_size_down, mode, gamma,
                 scale_fn, scale_mode, momentum: bool):
        groups_bounds = {"low": 0.0, "high": 1.0} if momentum else {"low": 0.0}
        self.low = _base.hyper(low, low_name, **groups_bounds)
        self.high = _base.hyper(high, high_name, **groups_bounds)
        _base.check_groups(**{low_name: self.low, high_name: self.high})
        self.momentum = momentum
        self.up = _step_size(step_size_up, "step_size_up")
        self.down = self.up if step_size_down is None else _step_size(step_size_down, "step_size_down")
        if scale_fn is None and mode not in _MODES:
            raise ValueError("mode is invalid and scale_fn is None")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r} (it is ignored when scale_fn is given)")
        if scale_mode not in _SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {_SCALE_MODES}, got {scale_mode!r}")
        self.mode = mode
        self.gamma = _base.hyper(gamma, "gamma", groups=False)
        self.scale_fn = scale_fn
        if scale_fn is not None:
            if not callable(scale_fn):
                raise ValueError(f"scale_fn should be a function, but got {type(scale_fn).__name__}")
            probe = Probe(scale_fn, "scale_fn")
            if not probe.traceable:
                raise ValueError(
                    f"scale_fn cannot be traced by JAX ({type(probe.error).__name__}: {probe.error}); "
                    "write it with jax.numpy, e.g. lambda x: 0.5 ** x"
                )
            # torch: with a custom scale_fn, 'cycle' means the cycle number, anything else the step.
            self.scale_by_cycle = scale_mode == "cycle"
        else:
            # torch: the built-in modes override scale_mode.
            self.scale_by_cycle = mode != "exp_range"
        self.scale_mode = scale_mode
        kwargs = {low_name: self.low, high_name: self.high, "step_size_up": self.up, "step_size_down": self.down,
                  "mode": mode, "gamma": self.gamma, "scale_fn": scale_fn, "scale_mode": scale_mode}
        super().__init__(fn_name, kwargs)

    def _position(self, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(cycle, scale_factor)``: torch's ``floor(1 + t / total)`` and the triangle height in [0, 1]."""
        dtype = float_dtype()
        total = self.up + self.down
        if _base.is_int(t) and isinstance(total, int):
            total_c = _base.int_const(total, t)
            if total_c is None:
                r, cycle = t, jnp.ones_like(t)
            else:
                r, cycle = t % total_c, t // total_c + 1
            r_f, cycle_f = r.astype(dtype), cycle.astype(dtype)
            rising = r <= self.up
        else:
            tf = t.astype(dtype)
            r_f = jnp.remainder(tf, const(total))
            cycle_f = jnp.round((tf - r_f) / const(total)) + 1
            rising = r_f <= const(self.up)
        height = jnp.where(rising, r_f / const(self.up), (const(total) - r_f) / const(self.down))
        return cycle_f, height

    def _scale(self, t: jax.Array, cycle: jax.Array) -> jax.Array | None:
        x = cycle if self.scale_by_cycle else t.astype(float_dtype())
        if self.scale_fn is not None:
            return jnp.asarray(self.scale_fn(x)).astype(float_dtype())
        if self.mode == "triangular":
            return None
        if self.mode == "triangular2":
            return _base.power(0.5, cycle - 1)
        return _base.power(self.gamma, x)

    def _value(self, t):
        cycle, height = self._position(t)
        scale = self._scale(t, cycle)
        amplitude = height if scale is None else height * scale
        low, high = const(self.low), const(self.high)
        if self.momentum:  # torch: momentum = max_momentum - (max_momentum - base_momentum) * ...
            return high - (high - low) * amplitude
        return low + (high - low) * amplitude


def cyclic_lr(
    base_lr: ArrayLike | Sequence[float],
    max_lr: ArrayLike | Sequence[float],
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: ArrayLike = 1.0,
    scale_fn: Callable[[Any], Any] | None = None,
    scale_mode: str = "cycle",
) -> LRSchedule:
    r"""Cycles the learning rate between ``base_lr`` and ``max_lr`` (cyclical learning rates).

    Port of `torch.optim.lr_scheduler.CyclicLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.CyclicLR.html>`_; the
    momentum it cycles is :func:`cyclic_momentum`.

    .. math::
        c = \left\lfloor 1 + \frac{t}{u + d} \right\rfloor, \quad
        x = 1 + \frac{t}{u + d} - c, \quad
        h = \begin{cases} x / r & x \le r \\ (x - 1)/(r - 1) & x > r \end{cases}, \quad r = \frac{u}{u + d}

    .. math:: \eta_t = \eta_{base} + (\eta_{max} - \eta_{base})\, h\, s(\cdot)

    with ``s = 1`` (triangular), ``1 / 2^(c - 1)`` (triangular2), ``gamma^t`` (exp_range) or
    ``scale_fn`` of the cycle ``c`` or of the step ``t``. ``schedule(t)`` equals the lr torch holds
    after ``t`` calls of ``scheduler.step()``; steps are reduced modulo the cycle length in integer
    arithmetic, so precision holds for any step count.

    Args:
        base_lr: lower boundary of the cycle; a scalar or one value per parameter group.
        max_lr: upper boundary; a scalar or one value per group. ``base_lr > max_lr`` is allowed
            (an inverted cycle), as in torch.
        step_size_up: steps in the increasing half of a cycle, positive.
        step_size_down: steps in the decreasing half; ``None`` means ``step_size_up``.
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
        gamma: base of ``exp_range``'s scaling ``gamma ** t``, ``>= 0``.
        scale_fn: custom scaling ``f(x) -> factor`` written with ``jax.numpy``, called with a float
            array (torch passes an int); overrides ``mode``.
        scale_mode: ``"cycle"`` or ``"iterations"``: what ``scale_fn`` is called with.

    Raises:
        ValueError: torch's "mode is invalid and scale_fn is None"; a non-positive step size
            (torch divides by zero); an unknown ``mode`` or ``scale_mode`` even with ``scale_fn``
            (torch silently ignores or reinterprets them); ``base_lr``/``max_lr`` of different
            group counts; a ``scale_fn`` JAX cannot trace.

    .. note::
        As in torch, the built-in modes override ``scale_mode``: triangular and triangular2
        always scale by cycle, and exp_range by step (``gamma ** t`` counted from step 0, not from
        the cycle's start). ``schedule(0) = base_lr``, whatever the optimizer's lr was.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.cyclic_lr(0.1, 1.0, step_size_up=2, step_size_down=3)
        >>> [round(float(schedule(t)), 6) for t in range(6)]
        [0.1, 0.55, 1.0, 0.7, 0.4, 0.1]
    """
    return _Cyclic("cyclic_lr", base_lr, max_lr, "base_lr", "max_lr", step_size_up, step_size_down, mode, gamma,
                   scale_fn, scale_mode, momentum=False)


def cyclic_momentum(
    base_momentum: ArrayLike | Sequence[float] = 0.8,
    max_momentum: ArrayLike | Sequence[float] = 0.9,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: ArrayLike = 1.0,
    scale_fn: Callable[[Any], Any] | None = None,
    scale_mode: str = "cycle",
) -> LRSchedule:
    r"""The momentum torch's ``CyclicLR`` writes into the optimizer, cycling inversely to the lr.

    ``schedule(t)`` equals SGD's ``momentum`` (or Adam's ``betas[0]``) after ``t`` calls of
    ``scheduler.step()`` on a ``CyclicLR`` with ``cycle_momentum=True``:

    .. math:: m_t = m_{max} - (m_{max} - m_{base})\, h\, s(\cdot)

    with ``h`` and ``s`` as in :func:`cyclic_lr`. Use it with
    ``optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=m)`` or as Adam's ``b1``.

    Args:
        base_momentum: lower boundary, in ``[0, 1]``; a scalar or one value per group.
        max_momentum: upper boundary (the value at step 0), in ``[0, 1]``.
        step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode: as in :func:`cyclic_lr`;
            pass the same values to both.

    Raises:
        ValueError: as :func:`cyclic_lr`, and for momenta outside ``[0, 1]``.

    .. note::
        torch overwrites the optimizer's momentum even if SGD was built with ``momentum=0``.

    Examples:
        >>> import lrjax
        >>> momentum = lrjax.cyclic_momentum(step_size_up=2, step_size_down=3)
        >>> [round(float(momentum(t)), 4) for t in range(6)]
        [0.9, 0.85, 0.8, 0.8333, 0.8667, 0.9]
    """
    return _Cyclic("cyclic_momentum", base_momentum, max_momentum, "base_momentum", "max_momentum", step_size_up,
                   step_size_down, mode, gamma, scale_fn, scale_mode, momentum=True)
