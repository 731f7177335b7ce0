"""Cyclical learning rates (Smith, 2017): ``CyclicLR`` and the momentum it cycles."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _numerics, _steps, _user_fn, _validate
from lrjax._schedule import AbsoluteMember, LRSchedule, const
from lrjax._steps import ArrayLike, Step, float_dtype

_MODES = ("triangular", "triangular2", "exp_range")
_SCALE_MODES = ("cycle", "iterations")


def _step_size(x: Any, name: str) -> int | float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number of steps >= 1, got {x!r}")
    if not math.isfinite(x) or x < 1:
        # torch divides by zero at 0; below one step a half cycle never shows at integer steps and
        # torch's x / step_ratio loses all precision (or overflows in float32).
        raise ValueError(f"{name} must be a number of steps >= 1, got {x!r}")
    return int(x) if float(x).is_integer() else float(x)


class _Cycle(LRSchedule):
    """The triangle of CyclicLR, shared by the lr and the momentum it writes."""

    step_size_up: Any
    step_size_down: Any
    mode: str
    gamma: Any
    scale_fn: Any
    scale_mode: str
    total_steps: int | None

    inverted: ClassVar[bool] = False  # the momentum: max - (max - base) * ...
    low_name: ClassVar[str]
    high_name: ClassVar[str]
    high_bound: ClassVar[float | None] = None  # momenta are in [0, 1]

    @property
    def low(self) -> Any:
        return getattr(self, self.low_name)

    @property
    def high(self) -> Any:
        return getattr(self, self.high_name)

    @property
    def up(self) -> int | float:
        return self.step_size_up

    @property
    def down(self) -> int | float:
        return self.step_size_up if self.step_size_down is None else self.step_size_down

    def _validate(self) -> None:
        self._set(self.low_name, _validate.hyper(self.low, self.low_name, high=self.high_bound))
        self._set(self.high_name, _validate.hyper(self.high, self.high_name, high=self.high_bound))
        _validate.check_groups(**{self.low_name: self.low, self.high_name: self.high})
        self._set("step_size_up", _step_size(self.step_size_up, "step_size_up"))
        if self.step_size_down is not None:
            self._set("step_size_down", _step_size(self.step_size_down, "step_size_down"))
        if self.scale_fn is None and self.mode not in _MODES:
            raise ValueError("mode is invalid and scale_fn is None")
        _validate.choice(
            self.mode,
            "mode",
            _MODES,
            f"mode must be one of {_MODES}, got {self.mode!r} (it is ignored when scale_fn is given)",
        )
        _validate.choice(self.scale_mode, "scale_mode", _SCALE_MODES)
        self._set("gamma", _validate.hyper(self.gamma, "gamma", groups=False))
        if self.scale_fn is None and self.mode == "exp_range" and not _steps.is_traced(self.gamma) and self.gamma > 1:
            raise ValueError(
                f"gamma={float(self.gamma)!r} > 1 makes exp_range's amplitude (gamma ** t) grow without bound: the "
                "lr leaves [base_lr, max_lr] at once, and torch raises OverflowError once gamma ** t passes 1.8e308 "
                "(about step 709.8 / ln(gamma)). Use gamma <= 1."
            )
        for part, size in (("step_size_up", self.up), ("step_size_down", self.down)):
            if size / self.total < 2.0**-32:
                raise ValueError(
                    f"step_size_up={self.up!r} and step_size_down={self.down!r}: {part} is less than 2**-32 of the "
                    "cycle, where torch's float64 1 + t / total loses the position within the cycle and its lr "
                    "leaves [base_lr, max_lr]. Use step sizes within a factor 2**32 of each other."
                )
        if self.total_steps is not None:
            self._set("total_steps", _validate.integer(self.total_steps, "total_steps", minimum=0))
        fn = None
        if self.scale_fn is not None:
            # torch: with a custom scale_fn, 'cycle' means the cycle number, anything else the step.
            last = None
            if self.total_steps is not None:
                last = math.floor(1 + self.total_steps / self.total) if self.by_cycle else self.total_steps
            fn = _user_fn.prepare(
                self.scale_fn, "scale_fn", torch_class="CyclicLR", total_steps=last, first=1 if self.by_cycle else 0
            )
        object.__setattr__(self, "_scale_fn", fn)

    def _finite(self) -> dict[str, Any]:
        fn: _user_fn.UserFunction | None = getattr(self, "_scale_fn")
        return {
            self.low_name: self.low,
            self.high_name: self.high,
            "gamma": self.gamma,
            "scale_fn(x)": fn.largest if fn is not None else None,
        }

    @property
    def total(self) -> int | float:
        return self.up + self.down

    @property
    def by_cycle(self) -> bool:
        """Whether the scale is a function of the cycle (else of the step). torch: the built-in modes
        override ``scale_mode``; with a custom ``scale_fn``, anything but 'cycle' means the step."""
        if self.scale_fn is not None:
            return self.scale_mode == "cycle"
        return self.mode != "exp_range"

    def _triangle(self, step: Step) -> tuple[jax.Array, jax.Array]:
        """``(cycle, height)``: torch's ``floor(1 + t / total)`` and the triangle's height in ``[0, 1]``."""
        dtype = float_dtype()
        up, down, total = self.up, self.down, self.total
        if dtype == np.float64:
            # torch's own float64 arithmetic, operation for operation. XLA turns a division by a constant
            # or a broadcast scalar into a multiplication by its reciprocal, which rounds differently: the
            # divisors are made from the step (t * 0 + c, batched like it under vmap) behind an
            # optimization barrier, so they stay divisions.
            t = step.as_float()
            zero = t * 0.0
            total_c, ratio_c, ratio_m1 = jax.lax.optimization_barrier(
                tuple(zero + v for v in (float(total), float(up) / float(total), float(up) / float(total) - 1.0))
            )
            q = t / total_c
            cycle = jnp.floor(1.0 + q)
            x = (1.0 + q) - cycle
            height = jnp.where(x <= ratio_c, x / ratio_c, (x - 1.0) / ratio_m1)
            return cycle, height
        if isinstance(total, int) and _steps.fits(total):
            r = _steps.mod(step.k, total)
            cycle = (_steps.floordiv(step.k, total) + jnp.ones((), step.k.dtype)).astype(dtype)
            done = r.astype(dtype)
            left = _steps.c_minus(total, r)
            if step.f is not None:
                done, left = done + step.f, left - step.f
            height = jnp.where(done <= const(float(up)), done / const(float(up)), left / const(float(down)))
            return cycle, height
        whole, x = _numerics.frac_of_ratio(step, float(total))
        ratio = float(up) / float(total)
        height = jnp.where(x <= ratio, x / const(ratio), (1.0 - x) / const(float(down) / float(total)))
        return whole + 1.0, height

    def _scale(self, step: Step, cycle: jax.Array) -> jax.Array | None:
        arg = Step(cycle.astype(_steps.uint_dtype())) if self.by_cycle else step
        fn: _user_fn.UserFunction | None = getattr(self, "_scale_fn")
        if fn is not None:
            return fn(arg)
        if self.mode == "triangular":
            return None
        if self.mode == "triangular2":
            return jnp.exp2(-(cycle - 1.0))
        return _numerics.power(self.gamma, step.as_float())

    def value(self, step: Step) -> jax.Array:
        cycle, height = self._triangle(step)
        scale = self._scale(step, cycle)
        amplitude = height if scale is None else height * scale
        low, high = const(self.low), const(self.high)
        if self.inverted:
            return high - (high - low) * amplitude
        return low + (high - low) * amplitude


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class CyclicLR(_Cycle, AbsoluteMember):
    base_lr: Any
    max_lr: Any
    step_size_up: Any = 2000
    step_size_down: Any = None
    mode: str = "triangular"
    gamma: Any = 1.0
    scale_fn: Any = None
    scale_mode: str = "cycle"
    total_steps: int | None = dataclasses.field(default=None, kw_only=True)

    name: ClassVar[str] = "cyclic_lr"
    low_name: ClassVar[str] = "base_lr"
    high_name: ClassVar[str] = "max_lr"


def cyclic_lr(
    base_lr: ArrayLike | Sequence[float],
    max_lr: ArrayLike | Sequence[float],
    step_size_up: float = 2000,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: ArrayLike = 1.0,
    scale_fn: Callable[[Any], Any] | None = None,
    scale_mode: str = "cycle",
    *,
    total_steps: int | None = None,
) -> CyclicLR:
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
    after ``t`` calls of ``scheduler.step()``. In float64 lrjax computes ``x`` with torch's own
    operations; in float32 the step is reduced modulo the cycle exactly (integer step sizes) or to
    float64 accuracy (fractional ones), so precision holds at any step.

    Args:
        base_lr: lower boundary of the cycle; a scalar or one value per parameter group.
        max_lr: upper boundary; a scalar or one value per group. ``base_lr > max_lr`` is allowed
            (an inverted cycle), as in torch.
        step_size_up: steps in the increasing half of a cycle, a number ``>= 1`` (fractions allowed).
        step_size_down: steps in the decreasing half; ``None`` means ``step_size_up``.
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
        gamma: base of ``exp_range``'s scaling ``gamma ** t``, ``>= 0``.
        scale_fn: custom scaling ``f(x) -> factor``, called with a float array (torch passes an
            int; see :func:`lambda_lr` for how lrjax checks it); overrides ``mode``.
        scale_mode: ``"cycle"`` or ``"iterations"``: what ``scale_fn`` is called with.
        total_steps: if given, ``scale_fn`` is called with Python ints, as torch does, over the
            cycles (or steps) of the first ``total_steps`` steps, and looked up.

    Raises:
        ValueError: torch's "mode is invalid and scale_fn is None"; a step size below 1 (torch
            divides by zero at 0, and below one step a half cycle never shows); an unknown
            ``mode`` or ``scale_mode`` even with ``scale_fn`` (torch silently ignores or
            reinterprets them); ``base_lr``/``max_lr`` of different group counts; a ``scale_fn``
            JAX cannot trace (without ``total_steps``).

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
    return CyclicLR(
        base_lr, max_lr, step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode, total_steps=total_steps
    )


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class CyclicMomentum(_Cycle):
    base_momentum: Any = 0.8
    max_momentum: Any = 0.9
    step_size_up: Any = 2000
    step_size_down: Any = None
    mode: str = "triangular"
    gamma: Any = 1.0
    scale_fn: Any = None
    scale_mode: str = "cycle"
    total_steps: int | None = dataclasses.field(default=None, kw_only=True)

    name: ClassVar[str] = "cyclic_momentum"
    inverted: ClassVar[bool] = True
    low_name: ClassVar[str] = "base_momentum"
    high_name: ClassVar[str] = "max_momentum"
    high_bound: ClassVar[float | None] = 1.0


def cyclic_momentum(
    base_momentum: ArrayLike | Sequence[float] = 0.8,
    max_momentum: ArrayLike | Sequence[float] = 0.9,
    step_size_up: float = 2000,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: ArrayLike = 1.0,
    scale_fn: Callable[[Any], Any] | None = None,
    scale_mode: str = "cycle",
    *,
    total_steps: int | None = None,
) -> CyclicMomentum:
    r"""The momentum torch's ``CyclicLR`` writes into the optimizer, cycling inversely to the lr.

    ``schedule(t)`` equals SGD's ``momentum`` (or Adam's ``betas[0]``) after ``t`` calls of
    ``scheduler.step()`` on a ``CyclicLR`` with ``cycle_momentum=True``:

    .. math:: m_t = m_{max} - (m_{max} - m_{base})\, h\, s(\cdot)

    with ``h`` and ``s`` as in :func:`cyclic_lr`. Use it with
    ``optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=m)`` or as Adam's ``b1``.

    Args:
        base_momentum: lower boundary, in ``[0, 1]``; a scalar or one value per group.
        max_momentum: upper boundary (the value at step 0), in ``[0, 1]``.
        step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode, total_steps: as in
            :func:`cyclic_lr`; pass the same values to both.

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
    return CyclicMomentum(
        base_momentum,
        max_momentum,
        step_size_up,
        step_size_down,
        mode,
        gamma,
        scale_fn,
        scale_mode,
        total_steps=total_steps,
    )


# ----------------------------------------------------------------------------------------------
# from_torch converters (lrjax.from_torch finds them through the registry)
# ----------------------------------------------------------------------------------------------


def _step_sizes(s: Any) -> tuple[float, float]:
    """``step_size_up`` and ``step_size_down`` back from torch's ``total_size`` and ``step_ratio``."""
    total, ratio = float(s.total_size), float(s.step_ratio)
    up = total * ratio
    if abs(up - round(up)) <= 1e-9 * total and round(up) / total == ratio:
        up = float(round(up))
    else:  # a fractional step size: find the float torch divided
        for candidate in (up, math.nextafter(up, math.inf), math.nextafter(up, -math.inf)):
            if candidate / total == ratio and candidate + (total - candidate) == total:
                up = candidate
                break
    return up, total - up


def _shared(s: Any, total_steps: int | None) -> dict[str, Any]:
    up, down = _step_sizes(s)
    return {
        "step_size_up": up,
        "step_size_down": down,
        "mode": s.mode,
        "gamma": s.gamma,
        "scale_fn": s._scale_fn_custom,
        "scale_mode": s.scale_mode,
        "total_steps": total_steps,
    }


def _from_torch_cyclic_lr(s: Any, total_steps: int | None) -> CyclicLR:
    from lrjax._torch_util import groups

    return cyclic_lr(groups(s.base_lrs), groups(s.max_lrs), **_shared(s, total_steps))


def _from_torch_cyclic_momentum(s: Any, total_steps: int | None) -> CyclicMomentum | None:
    from lrjax._torch_util import groups

    if not s.cycle_momentum:
        return None
    return cyclic_momentum(groups(s.base_momentums), groups(s.max_momentums), **_shared(s, total_steps))
