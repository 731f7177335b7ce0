"""User functions of the step (``lr_lambda``, ``scale_fn``): traced when that equals torch, else tabulated.

torch calls ``lr_lambda(epoch)`` with Python ints. lrjax calls it with the step as a float array of
the schedule's dtype (float64 under ``jax_enable_x64``): integer-valued floats behave as Python ints
do under ``+ - * / // % **``, so ``2 ** -e``, ``e // 30`` and ``1 / (1 + e * e * 1e-10)`` give torch's
values, where an integer array would not (integer powers, int32 overflow). Before using a traced
function lrjax compares it with its Python self at a sample of steps and refuses it if they differ.
With ``total_steps=N`` the function is instead called with Python ints for steps ``0..N``, exactly as
torch calls it, and looked up.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Literal

from lrjax import _steps
from lrjax._schedule import const
from lrjax._steps import Step, float_dtype

# Steps at which a traced function is compared with its Python self: the first 256, every power of
# two and ten (and their neighbours) up to 2**32, and a spread in between.
_SAMPLE_STEPS = sorted(
    set(range(256))
    | {p + d for j in range(8, 33) for p in [2**j] for d in (-1, 0, 1)}
    | {p + d for j in range(3, 10) for p in [10**j] for d in (-1, 0, 1)}
    | {int(x) for x in np.geomspace(256, 2**32 - 1, 200)}
)


def _real(value: Any) -> float | None:
    """``float(value)`` for a real number (ints, floats, 0-d arrays); None for complex or non-numbers."""
    if isinstance(value, complex):
        return value.real if value.imag == 0 else None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def python_values(fn: Callable, name: str, steps: Sequence[int]) -> np.ndarray:
    """``fn(k)`` with Python ints, as torch calls it; each must be a finite, non-negative real."""
    out = np.empty(len(steps), np.float64)
    for i, k in enumerate(steps):
        try:
            raw = fn(k)
        except Exception as e:  # noqa: BLE001 - torch would raise the same at this step
            raise ValueError(f"{name}({k}) raises {type(e).__name__}: {e}") from e
        value = _real(raw)
        if value is None or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}({k}) = {raw!r}: learning-rate factors must be finite, non-negative real numbers")
        out[i] = value
    return out


def probe(fn: Callable) -> tuple[Exception | None, bool]:
    """``(error, depends_on_step)`` from tracing ``fn`` once with an abstract float step."""
    arg = jax.ShapeDtypeStruct((), float_dtype())
    try:
        closed = jax.make_jaxpr(fn)(arg)
    except Exception as e:  # noqa: BLE001 - any failure means "not traceable"
        return e, True
    outs = closed.out_avals
    if (
        len(outs) != 1
        or outs[0].shape != ()
        or not (jnp.issubdtype(outs[0].dtype, jnp.integer) or jnp.issubdtype(outs[0].dtype, jnp.floating))
    ):
        return TypeError(f"it must return one real number per step, but returned {outs}"), True
    jaxpr = closed.jaxpr
    deps = set(jaxpr.invars)
    for eqn in jaxpr.eqns:
        if any(not isinstance(v, Literal) and v in deps for v in eqn.invars):
            deps.update(eqn.outvars)
    out = jaxpr.outvars[0]
    return None, not isinstance(out, Literal) and out in deps


@dataclasses.dataclass(frozen=True, eq=False)
class UserFunction:
    """A validated user function of the step: traced (``table is None``) or tabulated for ``first..last``."""

    fn: Callable
    depends_on_step: bool
    table: np.ndarray | None = None
    first: int = 0
    largest: float = 0.0  # the largest value seen (table, or the sample of the check)

    @property
    def last(self) -> int:
        assert self.table is not None
        return self.first + self.table.shape[0] - 1

    def __call__(self, step: Step) -> jax.Array:
        """The function at ``step``: traced with the float step, or looked up at ``floor(step)``."""
        if self.table is None:
            return jnp.asarray(self.fn(step.as_float())).astype(float_dtype())
        index = _steps.sub_clipped(_steps.minimum(step.k, self.last), self.first)
        return const(self.table)[index.astype(jnp.int32)]

    def at(self, k: int) -> float:
        """The function at the Python int ``k`` (from the table, or called as torch calls it)."""
        if self.table is not None and self.first <= k <= self.last:
            return float(self.table[k - self.first])
        return float(python_values(self.fn, "function", [k])[0])


def prepare(
    fn: Callable,
    name: str,
    *,
    torch_class: str,
    total_steps: int | None,
    first: int = 0,
    check: bool = True,
) -> UserFunction:
    """Validates ``fn`` for use as ``name`` of ``torch_class``; see the module docstring.

    Args:
        first: the first step torch calls it with (MultiplicativeLR never calls ``lr_lambda(0)``).
        check: compare the traced function with its Python self at a sample of steps.

    Raises:
        ValueError: if ``fn`` is not callable, returns a non-finite, negative or complex value at a
            step torch would use, cannot be traced (without ``total_steps``), or traces to values
            other than its Python ones.
    """
    if not callable(fn):
        raise ValueError(f"{name} should be a function, but got {type(fn).__name__}")
    error, depends = probe(fn)
    if total_steps is not None:
        steps = list(range(first, total_steps + 1))
        table = python_values(fn, name, steps)
        return UserFunction(fn, depends, table, first, float(np.max(table)) if table.size else 0.0)
    if error is not None:
        raise ValueError(
            f"{name} cannot be traced by JAX ({type(error).__name__}: {error}). Either write it with jax.numpy "
            "(e.g. jnp.minimum(epoch / 10, 1.0) instead of min(epoch / 10, 1.0), jnp.where instead of if/else), "
            f"or pass total_steps=N so that lrjax calls it once per step for steps 0..N with Python ints, as "
            f"torch's {torch_class} does, and looks the values up."
        )
    largest = _check_traced(fn, name, torch_class, first, depends) if check else 0.0
    return UserFunction(fn, depends, largest=largest)


def _check_traced(fn: Callable, name: str, torch_class: str, first: int, depends: bool) -> float:
    """Compares the traced function with its Python self; returns the largest traced value seen."""
    steps = [k for k in _SAMPLE_STEPS if k >= first] if depends else [max(first, 1)]
    with jax.enable_x64(True), jax.ensure_compile_time_eval():
        traced = np.asarray(
            jax.vmap(lambda e: jnp.asarray(fn(e)).astype(jnp.float64))(jnp.asarray(steps, jnp.float64)), np.float64
        )
        bad = np.flatnonzero(~np.isfinite(traced) | (traced < 0))
        if bad.size:
            k = steps[int(bad[0])]
            raise ValueError(
                f"{name}({k}) = {traced[bad[0]]!r} when JAX traces it: learning-rate factors must be finite and "
                "non-negative. If the function is only meant for the first N steps, pass total_steps=N."
            )
        largest = float(np.max(traced))
        try:
            fn(steps[0])
        except (TypeError, AttributeError):
            return largest  # written for JAX arrays only (e.g. it calls .astype): nothing to compare with
        # torch's own step: the function must work there (torch calls it at construction).
        python_values(fn, name, steps[:1])
        # Under x64 a function written with jax.numpy also computes in float64 when given Python ints.
        # Where Python raises (2.0 ** 1100 overflows) torch itself would stop: only compare the rest.
        python = np.full(len(steps), np.nan)
        for i, k in enumerate(steps):
            try:
                python[i] = python_values(fn, name, [k])[0]
            except ValueError:
                continue
    defined = ~np.isnan(python)
    scale = float(np.max(np.abs(python[defined]))) if defined.any() else 0.0
    close = ~defined | np.isclose(traced, python, rtol=1e-9, atol=1e-12 * scale) | (traced == python)
    if not np.all(close):
        i = int(np.flatnonzero(~close)[0])
        raise ValueError(
            f"{name} gives {traced[i]!r} at step {steps[i]} when JAX traces it, but {python[i]!r} when called with "
            f"the Python int {steps[i]}, as torch's {torch_class} calls it. Rewrite it so that both agree, or pass "
            f"total_steps=N: lrjax then calls it with Python ints for steps 0..N and looks the values up."
        )
    return largest


def constant_value(fn: UserFunction) -> float | None:
    """The value of a function that ignores its argument (traced), else None."""
    if fn.table is not None or fn.depends_on_step:
        return None
    return float(python_values(fn.fn, "lr_lambda", [1])[0])


def as_functions(fns: Any) -> tuple[Any, ...]:
    return tuple(fns) if isinstance(fns, (list, tuple)) else (fns,)
