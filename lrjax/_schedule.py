"""What a schedule is (:class:`LRSchedule`) and what composites need from their members (:class:`Member`).

Every lrjax schedule is a frozen dataclass whose fields are exactly the validated arguments of its
public function (each hyperparameter is stored once: ``repr``, ``kwargs`` and ``to_config`` read the
same fields the values are computed from). Calling it converts the step (:func:`lrjax._steps.as_step`)
and evaluates :meth:`LRSchedule.value`.

torch's ``ChainedScheduler`` and ``SequentialLR`` drive their members through ``scheduler.step()``,
whose recursive ``get_lr()`` updates the *current* lr. Every member's update is affine in the current
lr, ``lr <- a * lr + c`` (:class:`Affine`), and :class:`Member` is the typed protocol through which
``lrjax._compose`` reproduces torch's recursion: the update of each ``step()`` call by counter
(``step_map``), the updates made at construction, on a re-initialisation and when SequentialLR switches
to a member (``init_map``, ``restep_map``, ``entry_map``), and the closed form of many updates in a row
(``run``). Three families derive most of it: :class:`MultiplicativeMember` (scales the lr),
:class:`AbsoluteMember` (overwrites it) and the affine members written directly (CosineAnnealingLR,
SWALR).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _validate
from lrjax._steps import ArrayLike, Step, as_step, at, float_dtype, uconst

Schedule = Callable[[ArrayLike], jax.Array]
"""Any ``step -> value`` function; what optax calls a schedule."""


def const(x: Any, dtype: Any = None) -> jax.Array:
    """A hyperparameter (NumPy float64 or traced) as an array of the schedule's dtype."""
    return jnp.asarray(x, dtype=dtype or float_dtype())


class Affine(NamedTuple):
    """torch's update of the current lr by one ``get_lr()`` call: ``lr <- a * lr + c``."""

    a: jax.Array
    c: jax.Array

    def __call__(self, lr: jax.Array) -> jax.Array:
        return self.a * lr + self.c

    @staticmethod
    def scale(a: Any) -> Affine:
        return Affine(const(a), const(0.0))

    @staticmethod
    def set(c: Any) -> Affine:
        return Affine(const(0.0), const(c))

    @staticmethod
    def identity() -> Affine:
        return Affine(const(1.0), const(0.0))


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class LRSchedule:
    """Base class of every lrjax schedule: a pure, jittable function ``schedule(step) -> value``.

    ``schedule(t)`` is the value torch's scheduler holds after ``t`` calls of ``scheduler.step()``.
    ``t`` may be a Python number or an array of integers or floats of any dtype and shape; the
    result has shape ``t.shape`` (``t.shape + (G,)`` with ``G`` parameter groups), in the float
    dtype of JAX (float32, or float64 under ``jax_enable_x64``). Negative steps count as step 0.

    Instances are immutable and carry no state: the step *is* the state. They are plain callables,
    so they go wherever optax takes a schedule.
    """

    name: ClassVar[str] = ""
    """The public function that builds it (the registry name, e.g. ``"step_lr"``)."""

    def __post_init__(self) -> None:
        self._validate()
        self._check_dtype()

    # -- what a schedule defines -------------------------------------------------------------

    def _validate(self) -> None:
        """Validates and normalises the fields (``self._set`` replaces a field's value)."""

    def _finite(self) -> dict[str, Any]:
        """Values (fields or derived) that must be finite in the schedule's float dtype."""
        return {}

    def value(self, step: Step) -> jax.Array:
        """The schedule's value at ``step``."""
        raise NotImplementedError

    # -- shared machinery --------------------------------------------------------------------

    def _set(self, field: str, value: Any) -> None:
        object.__setattr__(self, field, value)

    def _check_dtype(self) -> None:
        dtype = float_dtype()
        for key, value in self._finite().items():
            _validate.representable(key, value, dtype)
        object.__setattr__(self, "_checked_dtype", dtype)

    @property
    def groups(self) -> int | None:
        """The number of parameter groups (one value per group), or None for a scalar schedule."""
        sizes = [int(np.shape(v)[0]) for v in self.kwargs.values() if _is_array(v) and np.ndim(v) == 1]
        return max(sizes) if sizes else None

    def _evaluate(self, step: Step) -> jax.Array:
        out = self.value(step)
        out = jnp.broadcast_to(out, jnp.broadcast_shapes(step.shape, jnp.shape(out)))  # a constant lr_lambda
        if step.nan is not None:
            out = jnp.where(step.nan, const(jnp.nan), out)
        return out

    def __call__(self, step: ArrayLike | Step) -> jax.Array:
        """The value at ``step``: shape ``step.shape`` for a scalar schedule, ``step.shape + (G,)`` for
        one with ``G`` parameter groups."""
        if getattr(self, "_checked_dtype", None) != float_dtype():
            self._check_dtype()  # jax_enable_x64 changed since construction
        s = as_step(step)
        if not s.shape or self.groups is None:
            return self._evaluate(s)
        flat = jax.tree.map(lambda x: jnp.reshape(x, (-1,)), s)
        out = jax.vmap(self._evaluate)(flat)
        return jnp.reshape(out, (*s.shape, *jnp.shape(out)[1:]))

    @property
    def kwargs(self) -> dict[str, Any]:
        """The arguments the schedule was built with (after validation), in the function's order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_validate.fmt(v)}" for k, v in self.kwargs.items())
        return f"lrjax.{self.name}({args})"

    # Schedules hold NumPy arrays: identity is the only meaningful equality, and they hash by id.
    __hash__ = object.__hash__


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, jax.Array))


class Member(LRSchedule):
    """A schedule that can be a member of ``chained_scheduler`` / ``sequential_lr``.

    Counters ``u`` are unsigned integer arrays: torch's ``last_epoch`` after the call (SWALR: its
    ``_step_count - 1``, see :attr:`counter`).
    """

    counter: ClassVar[str] = "last_epoch"
    """The torch attribute that numbers the calls: ``"last_epoch"``, or ``"step_count"`` (SWALR)."""
    torch_closed_form: ClassVar[bool] = False
    """Whether torch's class has ``_get_closed_form_lr`` (what ``SequentialLR`` uses at a milestone)."""

    @property
    def base(self) -> Any:
        """The base lr torch's scheduler reads from the optimizer (``initial_lr``)."""
        return getattr(self, "base_lr")

    def step_map(self, u: jax.Array) -> Affine:
        """The update of the ``step()`` call that moves the counter to ``u >= 1``."""
        raise NotImplementedError

    def init_map(self) -> Affine:
        """The update made when torch constructs the scheduler (``_initial_step``, counter 0)."""
        raise NotImplementedError

    def restep_map(self) -> Affine:
        """The update of a plain ``step()`` from counter -1 to 0 (a composite re-initialising it)."""
        raise NotImplementedError

    def entry_map(self) -> Affine:
        """The update of ``_update_lr(0)``, which SequentialLR calls at the milestone that starts it."""
        raise NotImplementedError

    def entry_error(self) -> str | None:
        """Why torch fails when SequentialLR starts this member at a milestone (None if it does not)."""
        return None

    def restep_error(self) -> str | None:
        """Why torch fails when a composite re-initialises this member with ``step()`` (None if not)."""
        return None

    def entry_is_fresh(self) -> bool:
        """Whether ``entry_map`` sets the lr to ``value(0)``, so the member then runs as if new."""
        return False

    def run(self, lr: jax.Array, u0: jax.Array, u: jax.Array) -> jax.Array:
        """The lr after the calls that move the counter from ``u0`` to ``u >= u0`` (``u0 >= 0``), from ``lr``."""
        raise NotImplementedError

    def last_event(self) -> int | None:
        """The last counter whose update is not the identity (None: updates never stop)."""
        return None

    def resets(self, u: jax.Array) -> tuple[jax.Array, jax.Array] | None:
        """``(exists, v)``: whether a counter ``v <= u`` has an update that ignores the current lr
        (``a == 0``), and the last one; None when the member has no such counters (or overwrites
        the lr at every one)."""
        return None


class MultiplicativeMember(Member):
    """A member whose every update scales the lr: ``step_map(u) = factor_between(u - 1, u)``.

    Subclasses define :meth:`factor_between`, the product of the updates' factors for counters in
    ``(u0, u]``; the recursion's closed form is ``run(lr, u0, u) = lr * factor_between(u0, u)``.
    """

    torch_closed_form = True

    def factor_between(self, u0: jax.Array, u: jax.Array) -> jax.Array:
        raise NotImplementedError

    def step_map(self, u: jax.Array) -> Affine:
        one = jnp.ones((), u.dtype)
        return Affine.scale(self.factor_between(u - one, u))

    def run(self, lr: jax.Array, u0: jax.Array, u: jax.Array) -> jax.Array:
        return lr * self.factor_between(u0, u)

    def init_map(self) -> Affine:
        return Affine.identity()

    def restep_map(self) -> Affine:
        return self.init_map()

    def entry_map(self) -> Affine:
        return Affine.set(self.value(at(0)))

    def entry_is_fresh(self) -> bool:
        return True


class AbsoluteMember(Member):
    """A member whose updates overwrite the lr with its own value (LambdaLR, CyclicLR, ...)."""

    def _at(self, u: jax.Array) -> Affine:
        return Affine.set(self.value(Step(u)))

    def step_map(self, u: jax.Array) -> Affine:
        return self._at(u)

    def init_map(self) -> Affine:
        return self._at(uconst(0))

    def restep_map(self) -> Affine:
        return self.init_map()

    def entry_map(self) -> Affine:
        return self.init_map()

    def entry_is_fresh(self) -> bool:
        return True

    def run(self, lr: jax.Array, u0: jax.Array, u: jax.Array) -> jax.Array:
        return jnp.where(u > u0, self.value(Step(u)), lr)
