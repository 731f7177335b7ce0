"""Non-finite losses, caught inside the compiled step, without a host sync per step.

:func:`guard_step` wraps a pure ``train_step(state, batch) -> (state, out)`` into a ``lax.scan``
body ``((state, halted), batch) -> ((state, halted), out)``; ``out`` gains ``"finite"``. An update
is good if its loss and the parameters it produces are finite. A bad one is, with
``on_nonfinite``:

* ``"stop"``: not applied, the update count does not advance, and ``halted`` turns on: no later
  update of the scan is applied either. The next piece of the epoch starts again at the same
  batch (the step takes batch ``state.step - first_step``), meets the same non-finite value and
  halts at once: the state stays the last good one until the host, which looks at the flags once
  per piece of an epoch (never per step), stops the run with :class:`NonFiniteError`;
* ``"skip"``: not applied (parameters and optimizer state unchanged), but the count advances:
  training goes on with the next batch and the next scheduled lr;
* ``"continue"``: applied as computed (``halted`` stays off).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from examples.mnist.validation import NONFINITE_MODES, ConfigError


class NonFiniteError(RuntimeError):
    """Training met a non-finite loss (or update) with ``on_nonfinite="stop"``.

    Attributes: ``step`` (updates done before the bad one), ``state`` (the last good state, on the
    devices), ``checkpoint`` (the directory it was saved in, or None).
    """

    def __init__(self, message: str, step: int, state: Any, checkpoint: str | None):
        super().__init__(message)
        self.step, self.state, self.checkpoint = step, state, checkpoint


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def guard_step(train_step: Callable, on_nonfinite: str = "stop") -> Callable:
    """``train_step`` that also detects and handles a non-finite update, on the device (see the module)."""
    if on_nonfinite not in NONFINITE_MODES:
        raise ConfigError(f"on_nonfinite must be one of {', '.join(NONFINITE_MODES)}, got {on_nonfinite!r}")

    def step(carry, batch):
        state, halted = carry
        new, out = train_step(state, batch)
        ok = jnp.isfinite(out["loss"]) & _all_finite(new.params)
        if on_nonfinite == "continue":
            return (new, halted), {**out, "finite": ok}
        apply = ok & ~halted

        def keep(n, o):
            return jnp.where(apply, n, o)

        count = new.step if on_nonfinite == "skip" else keep(new.step, state.step)
        state = state._replace(
            step=count,
            params=jax.tree.map(keep, new.params, state.params),
            opt_state=jax.tree.map(keep, new.opt_state, state.opt_state),
        )
        if on_nonfinite == "stop":
            halted = halted | ~ok
        return (state, halted), {**out, "finite": apply}

    return step


def stop_message(
    step: int, epoch: int, position: int, steps_per_epoch: int, loss: float, lr: float, checkpoint: str | None
) -> str:
    """The error of a stopped run: where, what, where the last good state is, what to do."""
    what = f"loss {loss}" if not math.isfinite(loss) else f"loss {loss:.4g} but non-finite parameters after it"
    updates = f"{step} update{'' if step == 1 else 's'}"
    saved = (
        f"The last good state (after {updates}) is saved in {checkpoint}. "
        if checkpoint
        else f"The last good state (after {updates}) is in this error's .state. "
    )
    return (
        f"non-finite training at update {step + 1} (epoch {epoch}, batch {position + 1} of {steps_per_epoch}): "
        f"{what}, lr {lr:.6g}. Training stopped without applying it. {saved}Lower the learning rate or check "
        "the data; --resume retries from there (--on-nonfinite skip drops such updates, --on-nonfinite "
        "continue applies them)."
    )
