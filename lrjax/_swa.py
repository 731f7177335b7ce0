"""Stochastic weight averaging's learning rate: ``torch.optim.swa_utils.SWALR``."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from lrjax import _numerics, _steps, _validate
from lrjax._schedule import Affine, Member, const
from lrjax._steps import ArrayLike, Step, float_dtype


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class SWALR(Member):
    base_lr: Any
    swa_lr: Any
    anneal_epochs: int = 10
    anneal_strategy: str = "cos"

    name: ClassVar[str] = "swalr"
    counter: ClassVar[str] = "step_count"

    def _validate(self) -> None:
        self._set("base_lr", _validate.hyper(self.base_lr, "base_lr"))
        self._set("swa_lr", _validate.hyper(self.swa_lr, "swa_lr"))
        _validate.check_groups(base_lr=self.base_lr, swa_lr=self.swa_lr)
        _validate.choice(
            self.anneal_strategy,
            "anneal_strategy",
            ("cos", "linear"),
            f"anneal_strategy must be one of 'cos' or 'linear', instead got {self.anneal_strategy}",
        )
        self._set(
            "anneal_epochs",
            _validate.integer(
                self.anneal_epochs,
                "anneal_epochs",
                minimum=0,
                strict_type=True,
                message=f"anneal_epochs must be equal or greater than 0, got {self.anneal_epochs}",
            ),
        )

    def _finite(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "swa_lr": self.swa_lr}

    def alphas(self, step: Step) -> tuple[jax.Array, jax.Array]:
        """``(alpha, 1 - alpha)`` after ``step`` calls: how far the lr has moved to ``swa_lr``.

        ``alpha = anneal(min(1, t / anneal_epochs))`` with ``anneal(x) = (1 - cos(pi x)) / 2`` ("cos")
        or ``x`` ("linear"); with ``anneal_epochs=0`` the lr is ``swa_lr`` from the start.
        """
        E = self.anneal_epochs
        shape = jnp.shape(step.k)
        if E == 0:
            return jnp.ones(shape, float_dtype()), jnp.zeros(shape, float_dtype())
        done = _steps.minimum(step.k, E).astype(float_dtype())
        left = _steps.c_minus(E, step.k)
        if step.f is not None:
            before = ~_steps.ge(step.k, E)
            done = jnp.where(before, done + step.f, done)
            left = jnp.where(before, left - step.f, left)
        if self.anneal_strategy == "linear":
            return done / const(float(E)), left / const(float(E))
        return _numerics.half_cosine_pair(done, left, E)  # alpha = (1 - cos(pi t / E)) / 2, and 1 - alpha

    def value(self, step: Step) -> jax.Array:
        alpha, stay = self.alphas(step.floor())  # torch counts SWALR's step() calls: whole steps
        return const(self.swa_lr) * alpha + const(self.base_lr) * stay

    # torch's get_lr() at call s (its _step_count - 1): recover the lr P it started from as
    # (lr - alpha(s - 1) swa_lr) / (1 - alpha(s - 1)), then return swa_lr alpha(s) + P (1 - alpha(s)).

    def _alpha_pair(self, s: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        one = jnp.ones((), s.dtype)
        s_eff = jnp.maximum(s, one) if self.anneal_epochs == 0 else s
        a, a_stay = self.alphas(Step(s_eff))
        p, p_stay = self.alphas(Step(_steps.sub_clipped(s_eff, 1)))
        return a, a_stay, p, p_stay

    def step_map(self, u: jax.Array) -> Affine:
        a, a_stay, p, p_stay = self._alpha_pair(u)
        swa = const(self.swa_lr)
        done = p_stay == 0  # alpha(s - 1) == 1: torch uses swa_lr itself as the starting lr
        scale = a_stay / jnp.where(done, const(1.0), p_stay)
        return Affine(jnp.where(done, const(0.0), scale), swa * a + jnp.where(done, swa * a_stay, -scale * p * swa))

    def init_map(self) -> Affine:
        return self.step_map(_steps.uconst(0))

    def restep_map(self) -> Affine:
        return self.init_map()

    def entry_map(self) -> Affine:
        return self.init_map()

    def run(self, lr: jax.Array, u0: jax.Array, u: jax.Array) -> jax.Array:
        # Every call keeps lr = swa_lr alpha(s) + P (1 - alpha(s)) for the P of the first call.
        a0, a0_stay = self.alphas(Step(u0))
        a, a_stay = self.alphas(Step(u))
        swa = const(self.swa_lr)
        start = (lr - a0 * swa) / jnp.where(a0_stay == 0, const(1.0), a0_stay)
        moved = swa * a + start * a_stay
        if self.anneal_epochs == 0:
            moved = jnp.broadcast_to(swa, jnp.shape(moved))
        return jnp.where(u > u0, jnp.where(a0_stay == 0, swa * a + swa * a_stay, moved), lr)

    def last_event(self):
        return None


def swalr(
    base_lr: ArrayLike | Sequence[float],
    swa_lr: ArrayLike | Sequence[float],
    anneal_epochs: int = 10,
    anneal_strategy: str = "cos",
) -> SWALR:
    r"""Anneals the learning rate from ``base_lr`` to ``swa_lr`` over ``anneal_epochs``, then holds it.

    Port of `torch.optim.swa_utils.SWALR
    <https://pytorch.org/docs/stable/generated/torch.optim.swa_utils.SWALR.html>`_, the schedule of
    stochastic weight averaging:

    .. math::
        \eta_t = \alpha_t \eta_{swa} + (1 - \alpha_t) \eta_0, \quad
        \alpha_t = a\left(\min\left(1, \frac{t}{E}\right)\right), \quad
        a(x) = \frac{1 - \cos(\pi x)}{2} \text{ (cos) or } x \text{ (linear)}

    ``schedule(t)`` equals the lr torch holds after ``t`` calls of ``scheduler.step()``.

    Args:
        base_lr: the optimizer's lr when SWALR starts; a scalar or one value per parameter group.
        swa_lr: the lr to anneal to; a scalar or one value per parameter group.
        anneal_epochs: number of steps of the annealing, an integer ``>= 0`` (0: ``swa_lr`` at once).
        anneal_strategy: ``"cos"`` or ``"linear"``.

    Raises:
        ValueError: with torch's messages for ``anneal_strategy`` and ``anneal_epochs``; for
            negative or non-finite lrs, and per-group lists of different lengths.

    .. note::
        torch's SWALR anneals from the lr the optimizer holds, whatever set it: inside
        :func:`sequential_lr` after a milestone (torch's ``_update_lr(0)`` leaves the lr as it is)
        it anneals from the lr the previous schedule reached, not from ``base_lr``; lrjax does the
        same. torch counts SWALR's steps by its ``step()`` calls, not by ``last_epoch``.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.swalr(0.1, swa_lr=0.05, anneal_epochs=4, anneal_strategy="linear")
        >>> [round(float(schedule(t)), 6) for t in range(6)]
        [0.1, 0.0875, 0.075, 0.0625, 0.05, 0.05]
    """
    return SWALR(base_lr, swa_lr, anneal_epochs, anneal_strategy)


# ----------------------------------------------------------------------------------------------
# from_torch converter (lrjax.from_torch finds it through the registry)
# ----------------------------------------------------------------------------------------------


def _from_torch_swalr(s: Any, total_steps: int | None) -> SWALR:
    import numpy as np

    from lrjax._torch_util import floats, groups

    swa = np.asarray(floats([g["swa_lr"] for g in s.optimizer.param_groups]), np.float64)
    held = np.asarray(floats([g["lr"] for g in s.optimizer.param_groups]), np.float64)
    E, strategy = int(s.anneal_epochs), s._anneal_strategy
    # The lr SWALR anneals from: recovered from the lr it holds now after s = _step_count - 1 calls,
    # lr = alpha(s) swa_lr + (1 - alpha(s)) base (torch's own get_lr recovers it the same way).
    done = s._step_count - 1
    t = 1.0 if E == 0 else min(1.0, max(0.0, done / E))
    alpha = t if strategy == "linear" else (1 - math.cos(math.pi * t)) / 2
    base = (held - alpha * swa) / (1 - alpha) if alpha < 1 else np.asarray(floats(s.base_lrs), np.float64)
    return swalr(groups(list(base)), groups(list(swa)), anneal_epochs=E, anneal_strategy=strategy)
