"""Running an epoch on the devices: compiled pieces (``lax.scan`` or a Python loop), evaluation, transfers.

:class:`Runner` compiles the guarded train step (``nonfinite.guard_step``) as a ``lax.scan`` over a
piece of an epoch, or as one step for a Python loop, and the eval step; it owns the devices (a
mesh, ``parallel.py``) and makes every host-device transfer explicit: an epoch's batches go to the
devices in one ``device_put`` (split over them), the step picks its batch on the device from the
update count, and the per-update losses and lrs come back once per piece of the epoch.

The loop form is chosen per model and backend, by measurement (``python -m examples.mnist.benchmark``),
see ``_LOOP``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from examples.mnist import input_pipeline, parallel
from examples.mnist.nonfinite import guard_step

# Measured with ``python -m examples.mnist.benchmark`` on this project's CPU machine (2 cores,
# jax 0.10.2, XLA:CPU, other processes present: load average ~4.5), batch 64, after compilation,
# median of 5 epochs (linear: 63 steps, CNN: 16 steps):
#
#   per step                          linear     CNN
#   lax.scan over the whole epoch     114 us     689 ms
#   lax.scan in 20 pieces (progress)  145 us     647 ms
#   Python loop over a jitted step    161 us      36 ms
#   (same loop with an nnx.jit step)  784 us      28 ms
#   (torch, the seed's loop)         4684 us       -     (581 us: batches prebuilt, 1 thread)
#
# The linear model's step is tiny, so a Python loop pays mostly for dispatching it; one lax.scan
# per epoch removes that. Calling an ``nnx.jit`` step costs 4.9x a ``jax.jit`` step on the split
# state there (graph bookkeeping on every call), hence ``nnx.split``/``nnx.merge`` + ``jax.jit``.
# The CNN's step is its convolutions, and XLA:CPU compiles its backward pass inside a while loop
# (what lax.scan lowers to) into something much slower than at the top level of a jitted
# function (the gradient of the loss alone: 30 ms per step in a loop of jitted calls, 762 ms in a
# scan). So on CPU the CNN runs a Python loop, whose dispatch cost is negligible next to 36 ms of
# compute. On GPU/TPU a loop body keeps its fast kernels and the scan saves the per-step
# launches, so both models scan there. ``loop="scan"``/``"python"`` overrides the choice. (These
# figures predate the non-finite check, which adds about 7 % to the linear model's step.)
_LOOP = {("linear", "cpu"): "scan", ("cnn", "cpu"): "python"}


def choose_loop(loop: str, model: str, backend: str | None = None) -> str:
    """``loop`` ("scan", "python"), or for "auto" the measured choice for ``model`` on ``backend``."""
    if loop in ("scan", "python"):
        return loop
    return _LOOP.get((model, backend or jax.default_backend()), "scan")


def chunks(steps: int, pieces: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges cutting ``steps`` into about ``pieces`` scans, of one length where possible.

    Each distinct length is a compilation: a divisor of ``steps`` giving between half and twice
    ``pieces`` pieces is preferred (63 updates in 20 pieces: 21 pieces of 3), else pieces of
    ``ceil(steps / pieces)`` and one shorter remainder.
    """
    pieces = max(1, min(pieces, steps))
    divisors = [d for d in range(1, steps + 1) if steps % d == 0 and pieces / 2 <= steps // d <= 2 * pieces]
    size = min(divisors, key=lambda d: abs(steps // d - pieces)) if divisors else math.ceil(steps / pieces)
    return [(a, min(a + size, steps)) for a in range(0, steps, size)]


class Runner:
    """Compiled epoch functions of one model, optimizer and plan.

    Args:
        train_step: pure ``(state, batch) -> (state, {"loss", "learning_rate", [momentum]})``.
        eval_step: pure ``(params, batch) -> (summed loss, correct, count)``.
        plateau_update: ``(plateau_state, metric, step) -> plateau_state``, or None.
        loop: "scan" or "python" (see :func:`choose_loop`).
        progress: show a tqdm bar over the batches (the epoch then runs in ``progress_updates`` pieces).
        mesh: the devices (a 1-D mesh with axis ``"data"``, default all devices); the state is
            replicated on them and every batch split over them.
        on_nonfinite: see ``nonfinite.guard_step``.
    """

    def __init__(
        self,
        train_step: Callable,
        eval_step: Callable,
        plateau_update: Callable | None,
        loop: str,
        progress: bool,
        progress_updates: int = 20,
        *,
        mesh: jax.sharding.Mesh | None = None,
        on_nonfinite: str = "stop",
    ):
        self.loop, self.progress, self.progress_updates = loop, progress, progress_updates
        self.shardings = parallel.Shardings(parallel.make_mesh() if mesh is None else mesh)
        step = guard_step(train_step, on_nonfinite)
        replicated = self.shardings.replicated

        # Which batch a step takes is computed on the device from the update count: batch
        # ``state.step - first_step`` of the epoch (``first_step``: the count at the epoch's start).
        # So no per-step index crosses from the host, and a run resumed in the middle of an epoch
        # continues at the right batch.
        def scan_steps(state, batches, first_step, length):
            start = state.step - first_step
            chunk = jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, start, length), batches)
            (state, _), out = jax.lax.scan(step, (state, jnp.zeros((), jnp.bool_)), chunk)
            return state, out

        def step_at(state, batches, first_step):
            i = state.step - first_step
            batch = jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False), batches)
            (state, _), out = step((state, jnp.zeros((), jnp.bool_)), batch)
            return state, out

        # The state is donated: its buffers are reused for the new state, not copied. Everything
        # that comes out (state, per-step metrics) is replicated over the mesh.
        self._scan = jax.jit(scan_steps, donate_argnums=0, static_argnums=3, out_shardings=replicated)
        self._step_at = jax.jit(step_at, donate_argnums=0, out_shardings=replicated)
        self._eval = jax.jit(eval_step, out_shardings=replicated)
        self._plateau_update = jax.jit(plateau_update, out_shardings=replicated) if plateau_update else None

    @property
    def num_devices(self) -> int:
        return self.shardings.size

    # --- explicit transfers ---

    def place(self, tree: Any) -> Any:
        """A state (or any values) replicated on the mesh: an explicit transfer (a no-op if already there)."""
        return parallel.put_replicated(tree, self.shardings.replicated)

    def put_epoch(self, batches: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """An epoch's batches (leading axes (steps, batch)) on the devices, the batch axis split over them."""
        return parallel.feed(batches, self.shardings.epoch, batch_axis=1)

    def put_scalar(self, value: Any) -> jax.Array:
        return parallel.put_replicated(value, self.shardings.replicated)

    # --- training ---

    def boundaries(self, steps: int, first_step: int = 0, every_steps: int = 0) -> list[int]:
        """Where the pieces of an epoch of ``steps`` updates end (positions 1..steps).

        The progress bar's pieces, and the positions whose global update count is a multiple of
        ``every_steps`` (mid-epoch checkpoints). A function of the epoch only, not of where a run
        resumed: a resumed run compiles and runs the same pieces as an uninterrupted one.
        """
        cuts = {b for _, b in chunks(steps, self.progress_updates if self.progress else 1)}
        if every_steps:
            cuts |= {p for p in range(1, steps) if (first_step + p) % every_steps == 0}
        return sorted(cuts)

    def segment(self, state: Any, batches: dict[str, jax.Array], first: jax.Array, a: int, b: int):
        """Updates ``a .. b-1`` of the epoch (``state.step`` is ``first + a``): ``(state, per-step metrics)``,
        on the device."""
        if self.loop == "scan":
            return self._scan(state, batches, first, b - a)
        outs = []
        for _ in range(a, b):
            state, out = self._step_at(state, batches, first)
            outs.append(out)
        return state, jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    def pieces(
        self, state: Any, batches: dict[str, jax.Array], first: jax.Array, start: int, cuts: list[int], bar: Any
    ) -> Iterator[tuple[Any, dict[str, jax.Array], int]]:
        """Runs the epoch from position ``start``, one piece per cut after it (a ``segment`` each), advancing
        ``bar``; yields ``(state, per-step metrics on the device, end of the piece)``."""
        a = start
        for b in cuts:
            if b <= a:
                continue
            state, out = self.segment(state, batches, first, a, b)
            bar.update(b - a)
            yield state, out, b
            a = b

    def run_epoch(
        self, state: Any, batches: dict[str, np.ndarray], first_step: int, desc: str = "", start: int = 0
    ) -> tuple[Any, dict[str, np.ndarray]]:
        """Trains on ``batches[start:]`` (arrays with leading axes (steps, batch)), without checkpoints.

        ``first_step`` is the update count at the start of the epoch (``state.step`` must be
        ``first_step + start``). Returns the new state and the per-step metrics (``loss``,
        ``learning_rate``, [momentum], ``finite``), on the host.
        """
        steps = batches["label"].shape[0]
        state, batches = self.place(state), self.put_epoch(batches)  # the epoch's explicit transfers
        first = self.put_scalar(np.int32(first_step))
        bar = progress_bar(steps, desc, self.progress, initial=start)
        outputs = []
        for state, out, _ in self.pieces(state, batches, first, start, self.boundaries(steps), bar):
            outputs.append(out)
        bar.close()
        return state, to_host_concat(outputs)

    def compile_ahead(
        self, state: Any, batches: dict[str, np.ndarray], eval_batch: dict[str, jax.Array], cuts: list[int]
    ) -> threading.Thread:
        """Compiles an epoch's pieces (ending at ``cuts``) and the eval step in a background thread, from shapes.

        ``state``: the state's shapes and dtypes (``jax.eval_shape``); ``batches``: an epoch's batches
        (host); ``eval_batch``: one batch of :meth:`eval_batches`. XLA compiles without holding
        Python's lock, so on a host with several cores the compilation overlaps what the run does
        meanwhile (opening the checkpoints, compiling and computing the initial state): a run with an
        empty compilation cache ends 0.3 s sooner on 2 cores (2.54 s to 2.26 s). The later calls find the
        executables in ``jax.jit``'s cache (the same shapes, dtypes and shardings). Best effort: an
        error is left for those calls to raise.
        """
        replicated = self.shardings.replicated

        def spec(x, sharding):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

        state = jax.tree.map(lambda x: spec(x, replicated), state)
        batches = jax.tree.map(lambda x: spec(x, self.shardings.epoch), batches)
        first = spec(np.zeros((), np.int32), replicated)
        lengths = sorted({b - a for a, b in zip([0, *cuts], cuts)})

        def compile_all():
            try:
                if self.loop == "scan":
                    for length in lengths:
                        self._scan.lower(state, batches, first, length).compile()
                else:
                    self._step_at.lower(state, batches, first).compile()
                self._eval.lower(state.params, eval_batch).compile()
            except Exception:  # noqa: BLE001 (the real call raises it, with its own context)
                pass

        # Not a daemon: the interpreter waits for it before it finalizes (killing a thread inside XLA aborts
        # the process), also when the run stops early on an error.
        thread = threading.Thread(target=compile_all, name="compile-ahead")
        thread.start()
        return thread

    # --- evaluation ---

    def eval_batches(self, split: input_pipeline.Split, batch_size: int) -> list[dict[str, jax.Array]]:
        """``split`` as a list of padded batches on the devices (put there once, kept for every evaluation).

        The batch size is rounded up to a multiple of the number of devices (the padding is masked).
        """
        n = self.num_devices
        size = -(-min(batch_size, len(split)) // n) * n
        stacked = input_pipeline.batch(split, np.arange(len(split), dtype=np.int32), size)
        return [
            parallel.feed({k: v[i] for k, v in stacked.items()}, self.shardings.batch, batch_axis=0)
            for i in range(stacked["label"].shape[0])
        ]

    def evaluate(self, params: Any, batches: list[dict[str, jax.Array]]) -> tuple[float, float]:
        """``(mean loss, accuracy in %)`` over ``batches`` (from :meth:`eval_batches`), summed over all devices."""
        totals = None
        for batch in batches:
            out = self._eval(params, batch)
            totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
        loss_sum, correct, count = parallel.to_host(totals)
        return float(loss_sum) / float(count), 100.0 * float(correct) / float(count)

    def update_plateau(self, state: Any, metric: float) -> Any:
        plateau = self._plateau_update(state.plateau, self.put_scalar(np.float32(metric)), state.step)
        return distinct(state._replace(plateau=plateau))


def to_host_concat(outputs: list[dict[str, jax.Array]]) -> dict[str, np.ndarray]:
    """Per-step metrics of several pieces, brought to the host (one explicit transfer) and concatenated."""
    chunks_ = parallel.to_host(outputs)
    return {k: np.concatenate([c[k] for c in chunks_]) for k in chunks_[0]} if chunks_ else {}


def distinct(tree: Any) -> Any:
    """``tree`` with no array appearing twice, so that it can be donated (``init``s may share one zero)."""
    seen: set[int] = set()

    def copy_if_seen(x):
        if id(x) in seen:
            return jnp.array(x, copy=True)
        seen.add(id(x))
        return x

    return jax.tree.map(copy_if_seen, tree)


def progress_bar(total: int, desc: str, enabled: bool, initial: int = 0):
    if not enabled:
        return NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


class NoBar:
    """The progress bar when there is none (tests hook into its ``update`` to interrupt a run)."""

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass
