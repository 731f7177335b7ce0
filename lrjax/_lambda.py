"""Schedules driven by a user function of the step: ``LambdaLR`` and ``MultiplicativeLR``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _base
from lrjax._base import ArrayLike, LRSchedule, MultiplicativeSchedule, Probe, const, float_dtype

LrLambda = Callable[[Any], Any]


def _floor_index(t: jax.Array, last: int) -> jax.Array:
    """Table index for step ``t``: ``floor(t)``, held at ``last`` beyond the table."""
    if not _base.is_int(t):
        t = jnp.floor(t)
    return jnp.minimum(t, jnp.asarray(last, t.dtype)).astype(jnp.int32 if last < 2**31 - 1 else t.dtype)


def _untraceable_error(name: str, torch_class: str, probe: Probe) -> ValueError:
    return ValueError(
        f"{name} cannot be traced by JAX ({type(probe.error).__name__}: {probe.error}). Either write it "
        "with jax.numpy (e.g. jnp.minimum(epoch / 10, 1.0) instead of min(epoch / 10, 1.0), "
        f"jnp.where instead of if/else), or pass total_steps=N so that lrjax evaluates it once per "
        f"step for steps 0..N with Python ints, as torch's {torch_class} does, and looks the values up."
    )


class _LambdaLR(LRSchedule):
    torch_class = "LambdaLR"
    kind = "absolute"

    def __init__(self, base_lr, lr_lambda, total_steps):
        self.base_lr = _base.hyper(base_lr, "base_lr")
        groups = _base.check_groups(base_lr=self.base_lr)
        fns = _base.validate_callables(lr_lambda, "lr_lambda", groups)
        self.per_group = isinstance(fns, list)
        self.lambdas = fns if self.per_group else [fns]
        if total_steps is not None:
            total_steps = _base.integer(total_steps, "total_steps", minimum=0)
        self.total_steps = total_steps
        probes = [Probe(f, "lr_lambda") for f in self.lambdas]
        self.tables: list[np.ndarray | None] = []
        for f, probe in zip(self.lambdas, probes):
            if probe.traceable and total_steps is None:
                self.tables.append(None)
            elif total_steps is not None:
                self.tables.append(_base.tabulate(f, "lr_lambda", 0, total_steps, probe))
            else:
                raise _untraceable_error("lr_lambda", "LambdaLR", probe)
        super().__init__("lambda_lr", {"base_lr": self.base_lr, "lr_lambda": lr_lambda, "total_steps": total_steps})

    def _factor(self, i: int, t: jax.Array) -> jax.Array:
        table = self.tables[i]
        if table is None:
            return jnp.asarray(self.lambdas[i](t)).astype(float_dtype())
        return const(table)[_floor_index(t, table.shape[0] - 1)]

    def _value(self, t: jax.Array) -> jax.Array:
        if self.per_group:
            factors = jnp.stack([self._factor(i, t) for i in range(len(self.lambdas))], axis=-1)
        else:
            factors = self._factor(0, t)
        return const(self.base_lr) * factors


def lambda_lr(
    base_lr: ArrayLike | Sequence[float],
    lr_lambda: LrLambda | Sequence[LrLambda],
    *,
    total_steps: int | None = None,
) -> LRSchedule:
    r"""Sets the learning rate to ``base_lr`` times a function of the step.

    Port of `torch.optim.lr_scheduler.LambdaLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.LambdaLR.html>`_:

    .. math:: \eta_t = \eta_0 \, \lambda(t)

    ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``scheduler.step()``.

    Args:
        base_lr: the optimizer's initial lr; a scalar or one value per parameter group.
        lr_lambda: ``f(step) -> factor``, or a list with one such function per parameter group.
            It is called with the step as a JAX array, so it must be written with
            ``jax.numpy`` (``jnp.minimum``, ``jnp.where``), unless ``total_steps`` is given.
        total_steps: if given, ``lr_lambda`` is evaluated once, with Python ints as torch does,
            for steps ``0..total_steps``, and the schedule looks the values up (fractional steps
            are floored; steps past ``total_steps`` hold the last value). This accepts any torch
            lambda, e.g. ``lambda epoch: min(epoch / 10, 1.0)``.

    Raises:
        ValueError: if a list of lambdas does not have one per group, if ``lr_lambda`` is not
            callable, or if it cannot be traced and ``total_steps`` is not given.

    .. note::
        Unlike MultiplicativeLR, LambdaLR applies ``lr_lambda(0)`` at step 0: with torch's doc
        example ``lambda epoch: epoch // 30`` the lr is 0 for the first 30 steps.

    Examples:
        >>> import lrjax, jax.numpy as jnp
        >>> warmup = lrjax.lambda_lr(0.1, lambda step: jnp.minimum(step / 10, 1.0))
        >>> [round(float(warmup(t)), 4) for t in (0, 5, 10, 20)]
        [0.0, 0.05, 0.1, 0.1]
    """
    return _LambdaLR(base_lr, lr_lambda, total_steps)


class _MultiplicativeLR(MultiplicativeSchedule):
    torch_class = "MultiplicativeLR"

    def __init__(self, base_lr, lr_lambda, total_steps):
        self.base_lr = _base.hyper(base_lr, "base_lr")
        groups = _base.check_groups(base_lr=self.base_lr)
        if isinstance(lr_lambda, (list, tuple)):
            _base.validate_callables(lr_lambda, "lr_lambda", groups)
        elif not callable(lr_lambda):
            raise ValueError(f"lr_lambda should be a function, but got {type(lr_lambda).__name__}")
        self.per_group = isinstance(lr_lambda, (list, tuple))
        self.lambdas = list(lr_lambda) if self.per_group else [lr_lambda]
        if total_steps is not None:
            total_steps = _base.integer(total_steps, "total_steps", minimum=0)
        self.total_steps = total_steps
        # Per group: ("const", c) when lr_lambda ignores the step (factor c ** t), or
        # ("table", cumulative products for steps 0..total_steps, per-step factors).
        self.rules: list[tuple[str, Any, Any]] = []
        for f in self.lambdas:
            probe = Probe(f, "lr_lambda")
            if probe.traceable and not probe.depends_on_step:
                c = f(jnp.asarray(1))
                c = _base.hyper(c, "lr_lambda(step)", groups=False, message=None)
                self.rules.append(("const", c, None))
            elif total_steps is not None:
                steps = _base.tabulate(f, "lr_lambda", 1, total_steps, probe) if total_steps else np.empty(0)
                per_step = np.concatenate([[1.0], steps])
                self.rules.append(("table", np.cumprod(per_step), per_step))
            elif probe.traceable:
                raise ValueError(
                    "lr_lambda depends on the step, so MultiplicativeLR's lr is the product "
                    "lr_lambda(1) * ... * lr_lambda(t), which has no closed form. Pass total_steps=N: "
                    "lrjax then tabulates the product for steps 0..N and each evaluation is one lookup."
                )
            else:
                raise _untraceable_error("lr_lambda", "MultiplicativeLR", probe)
        tables = [r for r in self.rules if r[0] == "table"]
        self.horizon = total_steps if tables else None
        constant_one = all(r[0] == "const" and not _base.is_traced(r[1]) and np.all(r[1] == 1.0) for r in self.rules)
        self.last_event = 0 if constant_one else self.horizon
        super().__init__(
            "multiplicative_lr", {"base_lr": self.base_lr, "lr_lambda": lr_lambda, "total_steps": total_steps}
        )

    def _per_group(self, fn) -> jax.Array:
        values = [fn(rule) for rule in self.rules]
        return jnp.stack(values, axis=-1) if self.per_group else values[0]

    def factor(self, t: jax.Array) -> jax.Array:
        def one(rule):
            kind, a, _ = rule
            if kind == "const":
                return _base.power(a, t)
            return const(a)[_floor_index(t, a.shape[0] - 1)]

        return self._per_group(one)

    def step_factor(self, t: jax.Array) -> jax.Array:
        def one(rule):
            kind, a, per_step = rule
            if kind == "const":
                return jnp.where(t == 0, const(1.0), const(a))
            last = per_step.shape[0] - 1
            return jnp.where(t <= last, const(per_step)[_floor_index(t, last)], const(1.0))

        return self._per_group(one)

    def factor_between(self, t0: jax.Array, t: jax.Array) -> jax.Array:
        def one(rule):
            kind, a, _ = rule
            if kind == "const":
                return _base.power(a, t - t0)
            raise NotImplementedError  # tabulated members are combined through a table

        return self._per_group(one)

    def lambda_at_zero(self) -> jax.Array:
        """``lr_lambda(0)``, which torch applies when MultiplicativeLR starts after a SequentialLR milestone."""
        values = [
            const(rule[1]) if rule[0] == "const" else const(float(fn(0)))
            for fn, rule in zip(self.lambdas, self.rules)
        ]
        return jnp.stack(values, axis=-1) if self.per_group else values[0]


def multiplicative_lr(
    base_lr: ArrayLike | Sequence[float],
    lr_lambda: LrLambda | Sequence[LrLambda],
    *,
    total_steps: int | None = None,
) -> MultiplicativeSchedule:
    r"""Multiplies the learning rate by ``lr_lambda(t)`` at every step ``t >= 1``.

    Port of `torch.optim.lr_scheduler.MultiplicativeLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.MultiplicativeLR.html>`_:

    .. math:: \eta_t = \eta_0 \prod_{k=1}^{t} \lambda(k)

    ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``scheduler.step()``.

    When ``lr_lambda`` ignores its argument (``lambda epoch: 0.95``, the usual case), the product
    is ``c ** t``, evaluated in closed form for any ``t``. A step-dependent ``lr_lambda`` has no
    closed form: pass ``total_steps`` and lrjax tabulates the product once for steps
    ``0..total_steps`` (calling ``lr_lambda`` with Python ints, as torch does; fractional steps are
    floored and later steps hold the last value), so each evaluation costs one lookup.

    Args:
        base_lr: the optimizer's initial lr; a scalar or one value per parameter group.
        lr_lambda: ``f(step) -> factor``, or a list with one function per parameter group.
        total_steps: horizon of the table, required when ``lr_lambda`` depends on the step.

    Raises:
        ValueError: if ``lr_lambda`` is not callable (torch raises ``TypeError``), if a list does
            not have one per group, if a step-dependent ``lr_lambda`` comes without
            ``total_steps``, or if a factor is negative or not finite.

    .. note::
        torch never calls ``lr_lambda(0)`` (the constructor does not multiply), so
        ``lambda epoch: 0.0 if epoch == 0 else 0.5`` gives ``[1, 0.5, 0.25, ...]`` times
        ``base_lr``. Inside :func:`sequential_lr`, after a milestone, torch does apply
        ``lr_lambda(0)``, to the lr reached so far; lrjax does the same.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.multiplicative_lr(1.0, lambda epoch: 0.95)
        >>> [round(float(schedule(t)), 4) for t in (0, 1, 2, 10)]
        [1.0, 0.95, 0.9025, 0.5987]
    """
    return _MultiplicativeLR(base_lr, lr_lambda, total_steps)
