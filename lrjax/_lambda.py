"""Schedules driven by a user function of the step: ``LambdaLR`` and ``MultiplicativeLR``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _numerics, _steps, _user_fn, _validate
from lrjax._schedule import AbsoluteMember, Affine, MultiplicativeMember, const
from lrjax._steps import ArrayLike, Step

LrLambda = Callable[[Any], Any]


class _Rule(NamedTuple):
    """How one group's factors come: ``c ** t`` ("const") or from the per-step factors ("table")."""

    kind: str
    c: float | None
    per_step: np.ndarray | None  # factor of steps 0..N (step 0: 1, torch never calls lr_lambda(0))
    fn: Callable

    @property
    def largest(self) -> float:
        """The largest factor of any step."""
        if self.per_step is not None:
            return float(np.max(self.per_step))
        return float(self.c) if self.c is not None else 0.0

    @property
    def cumulative(self) -> np.ndarray:
        assert self.per_step is not None
        return np.cumprod(self.per_step)


def _per_group(values: list[jax.Array], per_group: bool) -> jax.Array:
    return jnp.stack(values, axis=-1) if per_group else values[0]


def _functions(owner: Any, first: int) -> tuple[_user_fn.UserFunction, ...]:
    groups = _validate.check_groups(base_lr=owner.base_lr)
    fns = _validate.callables(owner.lr_lambda, "lr_lambda", groups)
    total = owner.total_steps
    return tuple(
        _user_fn.prepare(f, "lr_lambda", torch_class=owner.torch_class, total_steps=total, first=first)
        for f in _user_fn.as_functions(fns)
    )


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class LambdaLR(AbsoluteMember):
    base_lr: Any
    lr_lambda: Any
    total_steps: int | None = None

    name: ClassVar[str] = "lambda_lr"
    torch_class: ClassVar[str] = "LambdaLR"

    def _validate(self) -> None:
        self._set("base_lr", _validate.hyper(self.base_lr, "base_lr"))
        if isinstance(self.lr_lambda, list):
            self._set("lr_lambda", tuple(self.lr_lambda))
        if self.total_steps is not None:
            self._set("total_steps", _validate.integer(self.total_steps, "total_steps", minimum=0))
        object.__setattr__(self, "_fns", _functions(self, first=0))

    def _finite(self) -> dict[str, Any]:
        fns: tuple[_user_fn.UserFunction, ...] = getattr(self, "_fns")
        largest = max(fn.largest for fn in fns)
        return {
            "base_lr": self.base_lr,
            "lr_lambda(step)": largest,
            "base_lr * lr_lambda(step)": float(np.max(np.abs(self.base_lr))) * largest
            if not _steps.is_traced(self.base_lr)
            else None,
        }

    @property
    def per_group(self) -> bool:
        return isinstance(self.lr_lambda, tuple)

    @property
    def groups(self) -> int | None:
        return len(self.lr_lambda) if self.per_group else super().groups

    def value(self, step: Step) -> jax.Array:
        fns: tuple[_user_fn.UserFunction, ...] = getattr(self, "_fns")
        return const(self.base_lr) * _per_group([fn(step) for fn in fns], self.per_group)


def lambda_lr(
    base_lr: ArrayLike | Sequence[float],
    lr_lambda: LrLambda | Sequence[LrLambda],
    *,
    total_steps: int | None = None,
) -> LambdaLR:
    r"""Sets the learning rate to ``base_lr`` times a function of the step.

    Port of `torch.optim.lr_scheduler.LambdaLR
    <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.LambdaLR.html>`_:

    .. math:: \eta_t = \eta_0 \, \lambda(t)

    ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``scheduler.step()``.

    Args:
        base_lr: the optimizer's initial lr; a scalar or one value per parameter group.
        lr_lambda: ``f(step) -> factor``, or a list with one such function per parameter group.
            It is called with the step as a float array of the schedule's dtype (float64 under
            ``jax_enable_x64``), so write it with ``jax.numpy`` (``jnp.minimum``, ``jnp.where``);
            arithmetic such as ``0.95 ** epoch``, ``epoch // 30`` or ``2 ** -epoch`` gives torch's
            values. lrjax compares the traced function with the Python one (called with ints, as
            torch does) at a sample of steps, and refuses it if they differ.
        total_steps: if given, ``lr_lambda`` is called once, with Python ints as torch does, for
            steps ``0..total_steps``, and the schedule looks the values up (fractional steps are
            floored; steps past ``total_steps`` hold the last value). This accepts any torch
            lambda, e.g. ``lambda epoch: min(epoch / 10, 1.0)`` or a HuggingFace
            ``get_*_schedule_with_warmup`` lambda.

    Raises:
        ValueError: if a list of lambdas does not have one per group, if ``lr_lambda`` is not
            callable, returns a negative, non-finite or complex factor, cannot be traced (or
            traces to other values than its Python self) and ``total_steps`` is not given.

    .. note::
        Unlike MultiplicativeLR, LambdaLR applies ``lr_lambda(0)`` at step 0: with torch's doc
        example ``lambda epoch: epoch // 30`` the lr is 0 for the first 30 steps.

    Examples:
        >>> import lrjax, jax.numpy as jnp
        >>> warmup = lrjax.lambda_lr(0.1, lambda step: jnp.minimum(step / 10, 1.0))
        >>> [round(float(warmup(t)), 4) for t in (0, 5, 10, 20)]
        [0.0, 0.05, 0.1, 0.1]
    """
    return LambdaLR(base_lr, lr_lambda, total_steps)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class MultiplicativeLR(MultiplicativeMember):
    base_lr: Any
    lr_lambda: Any
    total_steps: int | None = None

    name: ClassVar[str] = "multiplicative_lr"
    torch_class: ClassVar[str] = "MultiplicativeLR"
    torch_closed_form: ClassVar[bool] = False

    def _validate(self) -> None:
        self._set("base_lr", _validate.hyper(self.base_lr, "base_lr"))
        if isinstance(self.lr_lambda, list):
            self._set("lr_lambda", tuple(self.lr_lambda))
        if not isinstance(self.lr_lambda, tuple) and not callable(self.lr_lambda):
            # torch raises TypeError here; a ValueError like every other bad argument.
            raise ValueError(f"lr_lambda should be a function, but got {type(self.lr_lambda).__name__}")
        if self.total_steps is not None:
            self._set("total_steps", _validate.integer(self.total_steps, "total_steps", minimum=0))
        groups = _validate.check_groups(base_lr=self.base_lr)
        fns = _validate.callables(self.lr_lambda, "lr_lambda", groups)
        rules = []
        for f in _user_fn.as_functions(fns):
            error, depends = _user_fn.probe(f)
            if error is None and not depends:  # lambda epoch: 0.95: the product is 0.95 ** t
                rules.append(_Rule("const", _user_fn.python_values(f, "lr_lambda", [1])[0], None, f))
            elif self.total_steps is None:
                if error is not None:
                    _user_fn.prepare(f, "lr_lambda", torch_class="MultiplicativeLR", total_steps=None)  # raises
                raise ValueError(
                    "lr_lambda depends on the step, so MultiplicativeLR's lr is the product lr_lambda(1) * ... * "
                    "lr_lambda(t), which has no closed form. Pass total_steps=N: lrjax then tabulates the product "
                    "for steps 0..N (calling lr_lambda with Python ints, as torch does) and each evaluation is one "
                    "lookup."
                )
            else:
                values = _user_fn.python_values(f, "lr_lambda", list(range(1, self.total_steps + 1)))
                rules.append(_Rule("table", None, np.concatenate([[1.0], values]), f))
        object.__setattr__(self, "_rules", tuple(rules))

    def _finite(self) -> dict[str, Any]:
        rules: tuple[_Rule, ...] = getattr(self, "_rules")
        factors = [r.largest for r in rules]
        return {"base_lr": self.base_lr, "lr_lambda(step)": max(factors)}

    @property
    def per_group(self) -> bool:
        return isinstance(self.lr_lambda, tuple)

    @property
    def groups(self) -> int | None:
        return len(self.lr_lambda) if self.per_group else super().groups

    def _each(self, one: Callable[[_Rule], jax.Array]) -> jax.Array:
        return _per_group([one(rule) for rule in getattr(self, "_rules")], self.per_group)

    def value(self, step: Step) -> jax.Array:
        k = step.k

        def one(rule: _Rule) -> jax.Array:
            if rule.kind == "const":
                return _numerics.power(rule.c, k)
            table = rule.cumulative
            return const(table)[_steps.minimum(k, table.shape[0] - 1).astype(jnp.int32)]

        return const(self.base_lr) * self._each(one)

    def factor_between(self, u0: jax.Array, u: jax.Array) -> jax.Array:
        def one(rule: _Rule) -> jax.Array:
            if rule.kind == "const":
                return _numerics.power(rule.c, u - u0)
            a = rule.per_step
            assert a is not None
            # Products of the per-step factors over (u0, u], from prefix sums of logs and zero counts
            # (no ratio of two underflowed products).
            positive = a > 0
            with np.errstate(divide="ignore"):
                logs = np.cumsum(np.where(positive, np.log(np.where(positive, a, 1.0)), 0.0))
            zeros = np.cumsum(~positive)
            last = a.shape[0] - 1
            i0 = _steps.minimum(u0, last).astype(jnp.int32)
            i1 = _steps.minimum(u, last).astype(jnp.int32)
            any_zero = jnp.asarray(zeros)[i1] > jnp.asarray(zeros)[i0]
            return jnp.where(any_zero, const(0.0), jnp.exp(const(logs)[i1] - const(logs)[i0]))

        return self._each(one)

    def _lambda_at_zero(self) -> jax.Array:
        def one(rule: _Rule) -> jax.Array:
            return const(_user_fn.python_values(rule.fn, "lr_lambda", [0])[0])

        return self._each(one)

    def restep_map(self) -> Affine:
        # Without torch's _is_initial flag, get_lr multiplies by lr_lambda(last_epoch = 0).
        return Affine.scale(self._lambda_at_zero())

    def restep_error(self) -> str | None:
        try:
            self._lambda_at_zero()
        except ValueError as e:
            return f"torch calls lr_lambda(0) when it starts {self!r} inside a composite scheduler: {e}"
        return None

    def entry_map(self) -> Affine:
        return self.restep_map()  # no closed form in torch: get_lr() at last_epoch 0

    def entry_error(self) -> str | None:
        return self.restep_error()

    def entry_is_fresh(self) -> bool:
        return False

    def last_event(self):
        rules = getattr(self, "_rules")
        if all(r.kind == "const" and r.c == 1.0 for r in rules):
            return 0
        if any(r.kind == "const" for r in rules):
            return None
        return self.total_steps


def multiplicative_lr(
    base_lr: ArrayLike | Sequence[float],
    lr_lambda: LrLambda | Sequence[LrLambda],
    *,
    total_steps: int | None = None,
) -> MultiplicativeLR:
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
        total_steps: horizon of the table, required when ``lr_lambda`` depends on the step (a
            function that ignores its argument is ``c ** t`` at every step, with or without it).

    Raises:
        ValueError: if ``lr_lambda`` is not callable (torch raises ``TypeError``), if a list does
            not have one per group, if a step-dependent ``lr_lambda`` comes without
            ``total_steps``, or if a factor is negative, complex or not finite.

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
    return MultiplicativeLR(base_lr, lr_lambda, total_steps)


# ----------------------------------------------------------------------------------------------
# from_torch converters (lrjax.from_torch finds them through the registry)
# ----------------------------------------------------------------------------------------------


def _from_torch_lambda_lr(s: Any, total_steps: int | None) -> LambdaLR:
    from lrjax._torch_util import groups, one_or_list

    return lambda_lr(groups(s.base_lrs), one_or_list(s.lr_lambdas), total_steps=total_steps)


def _from_torch_multiplicative_lr(s: Any, total_steps: int | None) -> MultiplicativeLR:
    from lrjax._torch_util import groups, one_or_list

    return multiplicative_lr(groups(s.base_lrs), one_or_list(s.lr_lambdas), total_steps=total_steps)
