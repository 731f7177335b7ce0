"""Training and evaluation: ``train_and_evaluate(config, workdir)``.

The whole training state is one pytree (:class:`TrainState`: update count, parameters, optimizer
state with its injected lr/momentum, plateau state); the data order is a pure function of
``(seed, epoch)``; the step functions are pure ``(state, batch) -> (state, metrics)`` and compiled
with ``jax.jit``. Nothing inside a step goes back to the host: the per-step losses and lrs stay on
the device until the epoch ends, when one transfer brings them to the host for the log.

Real runs (see ``docs/mnist_real_runs.md``):

* **Checkpoints** (``checkpointing.py``, orbax): every N epochs and/or N updates and at the end;
  ``resume=True`` continues from the latest, mid-epoch too (the epoch's order is rebuilt and the
  step takes batch ``state.step - first_step``), and ends with the same lrs and the same bits as
  an uninterrupted run. SIGTERM/SIGINT stop the run at the next piece of an epoch with a checkpoint.
* **Data parallelism** (``parallel.py``): a mesh over all devices, the batch axis sharded, the
  state replicated; the jitted steps see global arrays, so losses and metrics are global means.
* **Faults**: a non-finite loss (or update) is caught inside the step, without a host sync per
  step: ``on_nonfinite="stop"`` refuses the update and freezes the state (the host sees it after
  the epoch's piece, saves the last good state and raises :class:`NonFiniteError`), ``"skip"``
  drops the update and goes on, ``"continue"`` applies it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from examples.mnist import checkpointing, input_pipeline, metrics, models, parallel, schedules
from examples.mnist.checkpointing import CheckpointError
from examples.mnist.configs.default import Config
from examples.mnist.schedules import ConfigError


class TrainState(NamedTuple):
    """Everything that changes during training, as one pytree."""

    step: jax.Array  # shape=(), dtype=int32: optimizer updates done (optax's count)
    params: nnx.State  # the model's nnx.Param variables
    opt_state: optax.OptState  # inject_hyperparams state: hyperparams hold the last update's lr/momentum
    plateau: Any  # lrjax plateau state (its .lr), or None without ReduceLROnPlateau


@dataclasses.dataclass
class Result:
    """What ``train_and_evaluate`` returns: the final state and the logged metrics."""

    state: TrainState
    history: list[dict[str, Any]]  # one row per epoch (as in metrics.jsonl)
    steps: dict[str, np.ndarray]  # per update: "loss", "lr" (and "momentum")
    plan: schedules.Plan
    resumed_from: int | None = None  # the checkpoint's update count, if the run was resumed
    nonfinite_updates: int = 0  # updates with a non-finite loss (skipped or applied, per on_nonfinite)


class NonFiniteError(RuntimeError):
    """Training met a non-finite loss (or update) with ``on_nonfinite="stop"``.

    Attributes: ``step`` (updates done before the bad one), ``state`` (the last good state, on the
    devices), ``checkpoint`` (the directory it was saved in, or None).
    """

    def __init__(self, message: str, step: int, state: TrainState, checkpoint: str | None):
        super().__init__(message)
        self.step, self.state, self.checkpoint = step, state, checkpoint


class RunStopped(RuntimeError):
    """The run was stopped by a signal (SIGTERM, SIGINT) after saving a checkpoint; ``signum``, ``step``."""

    def __init__(self, message: str, signum: int, step: int):
        super().__init__(message)
        self.signum, self.step = signum, step


NONFINITE_MODES = ("stop", "skip", "continue")


# ------------------------------------------------------------------------------------------------
# The loop form, chosen per model and backend by measurement
# ------------------------------------------------------------------------------------------------

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
# per epoch removes that (1.4x faster than the loop, 41x faster than the PyTorch example's loop
# with its DataLoader). Calling an ``nnx.jit`` step costs 4.9x a ``jax.jit`` step on the split
# state there (graph bookkeeping on every call), hence ``nnx.split``/``nnx.merge`` + ``jax.jit``.
# The CNN's step is its convolutions, and XLA:CPU compiles its backward pass inside a while loop
# (what lax.scan lowers to) into something much slower than at the top level of a jitted
# function: the gradient of the loss alone took 30 ms per step in a loop of jitted calls and
# 762 ms per step in a scan (a plain convolution, forward or backward with respect to its input,
# is not slower in a scan). So on CPU the CNN runs a Python loop, whose dispatch cost is
# negligible next to 36 ms of compute. On GPU/TPU a loop body keeps
# its fast kernels and the scan saves the per-step launches, so both models scan there (not
# measured here: no accelerator). ``loop="scan"``/``"python"`` overrides the choice.
# (These figures predate the non-finite check of ``guard_step``, which adds about 7 % to the
# linear model's step on the same machine, and the sharding annotations, which change nothing on
# one device.)
_LOOP = {("linear", "cpu"): "scan", ("cnn", "cpu"): "python"}


def choose_loop(config: Config, backend: str | None = None) -> str:
    if config.loop in ("scan", "python"):
        return config.loop
    if config.loop != "auto":
        raise ConfigError(f"loop must be 'auto', 'scan' or 'python', got {config.loop!r}")
    return _LOOP.get((config.model, backend or jax.default_backend()), "scan")


# ------------------------------------------------------------------------------------------------
# Pure step functions
# ------------------------------------------------------------------------------------------------


def make_loss_fn(graphdef: nnx.GraphDef) -> Callable[[nnx.State, dict[str, jax.Array]], tuple[jax.Array, jax.Array]]:
    """``loss_fn(params, batch) -> (mean cross-entropy over the real examples, logits)``.

    ``batch`` holds uint8 ``image`` (B, 28, 28, 1), int32 ``label`` (B,) and float32 ``mask`` (B,)
    (0 for padding). This is also the function an LR range test (``lrjax.find_lr``) differentiates.
    """

    def loss_fn(params, batch):
        model = nnx.merge(graphdef, params)
        logits = model(batch["image"].astype(jnp.float32) / 255.0)  # torchvision's ToTensor
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        mask = batch["mask"]
        return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1.0), logits

    return loss_fn


def _with_hyperparams(opt_state: Any, values: dict[str, jax.Array]) -> Any:
    """``opt_state`` (an inject_hyperparams state) with ``values`` written into its hyperparams."""
    hyperparams = dict(opt_state.hyperparams)
    for key, value in values.items():
        hyperparams[key] = jnp.asarray(value, hyperparams[key].dtype).reshape(hyperparams[key].shape)
    return opt_state._replace(hyperparams=hyperparams)


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, plan: schedules.Plan):
    """``train_step(state, batch) -> (state, {"loss", "learning_rate", [momentum]})``, pure."""
    loss_fn = make_loss_fn(graphdef)

    def train_step(state: TrainState, batch: dict[str, jax.Array]):
        hp = plan.hyperparams(state.step, state.plateau)
        opt_state = _with_hyperparams(state.opt_state, hp)
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch)
        updates, opt_state = tx.update(grads, opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(state.step + 1, params, opt_state, state.plateau), {"loss": loss, **hp}

    return train_step


def make_eval_step(graphdef: nnx.GraphDef):
    """``eval_step(params, batch) -> (summed loss, correct predictions, examples)`` over the real examples."""
    loss_fn = make_loss_fn(graphdef)

    def eval_step(params, batch):
        mean_loss, logits = loss_fn(params, batch)
        count = jnp.sum(batch["mask"])
        correct = jnp.sum(jnp.where(batch["mask"] > 0, jnp.argmax(logits, axis=-1) == batch["label"], False))
        return mean_loss * count, correct.astype(jnp.int32), count

    return eval_step


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def guard_step(train_step: Callable, on_nonfinite: str = "stop") -> Callable:
    """``train_step`` that also detects and handles a non-finite update, on the device.

    Returns ``step((state, halted), batch) -> ((state, halted), out)``, a ``lax.scan`` body; ``out``
    gains ``"finite"``: whether the update was good (and, but for ``"continue"``, applied). An
    update is good if its loss and the parameters it produces are finite. A bad one is, with
    ``on_nonfinite``:

    * ``"stop"``: not applied, the update count does not advance, and ``halted`` turns on: no later
      update of the scan is applied either. The next piece of the epoch starts again at the same
      batch (the step takes batch ``state.step - first_step``), meets the same non-finite value and
      halts at once: the state stays the last good one until the host, which looks at the flags
      once per piece of an epoch (never per step), stops the run;
    * ``"skip"``: not applied (parameters and optimizer state unchanged), but the count advances:
      training goes on with the next batch and the next scheduled lr;
    * ``"continue"``: applied as computed (``halted`` stays off).
    """
    if on_nonfinite not in NONFINITE_MODES:
        raise ConfigError(f"on_nonfinite must be one of {', '.join(NONFINITE_MODES)}, got {on_nonfinite!r}")

    def step(carry: tuple[TrainState, jax.Array], batch: dict[str, jax.Array]):
        state, halted = carry
        new, out = train_step(state, batch)
        ok = jnp.isfinite(out["loss"]) & _all_finite(new.params)
        if on_nonfinite == "continue":
            return (new, halted), {**out, "finite": ok}
        apply = ok & ~halted

        def keep(n, o):
            return jnp.where(apply, n, o)

        count = new.step if on_nonfinite == "skip" else keep(new.step, state.step)
        state = TrainState(count, jax.tree.map(keep, new.params, state.params),
                           jax.tree.map(keep, new.opt_state, state.opt_state), new.plateau)
        if on_nonfinite == "stop":
            halted = halted | ~ok
        return (state, halted), {**out, "finite": apply}

    return step


# ------------------------------------------------------------------------------------------------
# Epochs
# ------------------------------------------------------------------------------------------------


def _chunks(steps: int, pieces: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges cutting ``steps`` into at most ``pieces`` scans of (at most) two lengths."""
    size = math.ceil(steps / max(1, min(pieces, steps)))
    return [(a, min(a + size, steps)) for a in range(0, steps, size)]


class Runner:
    """Compiled epoch functions for one model/optimizer/plan; ``run_epoch`` trains one epoch.

    ``mesh``: the devices (a 1-D mesh with axis ``"data"``, default all devices); the state is
    replicated on them and every batch split over them. ``on_nonfinite``: see :func:`guard_step`.
    """

    def __init__(self, graphdef, tx, plan, loop: str, progress: bool, progress_updates: int = 20, *,
                 mesh: jax.sharding.Mesh | None = None, on_nonfinite: str = "stop"):
        self.loop = loop
        self.progress = progress
        self.progress_updates = progress_updates
        self.on_nonfinite = on_nonfinite
        self.shardings = parallel.Shardings(parallel.make_mesh() if mesh is None else mesh)
        train_step = guard_step(make_train_step(graphdef, tx, plan), on_nonfinite)
        replicated = self.shardings.replicated

        # Which batch a step takes is computed on the device from the update count: batch
        # ``state.step - first_step`` of the epoch (``first_step``: the count at the epoch's start).
        # So no per-step index crosses from the host, and a run resumed in the middle of an epoch
        # continues at the right batch.
        def scan_steps(state, batches, first_step, length):
            start = state.step - first_step
            chunk = jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, start, length), batches)
            (state, _), out = jax.lax.scan(train_step, (state, jnp.zeros((), jnp.bool_)), chunk)
            return state, out

        def step_at(state, batches, first_step):
            i = state.step - first_step
            batch = jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False), batches)
            (state, _), out = train_step((state, jnp.zeros((), jnp.bool_)), batch)
            return state, out

        # The state is donated: its buffers are reused for the new state, not copied. Everything
        # that comes out (state, per-step metrics) is replicated over the mesh.
        self._scan = jax.jit(scan_steps, donate_argnums=0, static_argnums=3, out_shardings=replicated)
        self._step_at = jax.jit(step_at, donate_argnums=0, out_shardings=replicated)
        self._eval = jax.jit(make_eval_step(graphdef), out_shardings=replicated)
        self.plan = plan
        if plan.plateau is not None:
            self._plateau_update = jax.jit(plan.plateau.update, out_shardings=replicated)

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
        pieces = self.progress_updates if self.progress else 1
        cuts = {b for _, b in _chunks(steps, pieces)}
        if every_steps:
            cuts |= {p for p in range(1, steps) if (first_step + p) % every_steps == 0}
        return sorted(cuts)

    def segment(self, state: TrainState, batches: dict[str, jax.Array], first: jax.Array, a: int, b: int):
        """Updates ``a .. b-1`` of the epoch (``state.step`` is ``first + a``): ``(state, per-step metrics)``, on the device."""
        if self.loop == "scan":
            return self._scan(state, batches, first, b - a)
        outs = []
        for _ in range(a, b):
            state, out = self._step_at(state, batches, first)
            outs.append(out)
        return state, jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    def pieces(self, state: TrainState, batches: dict[str, jax.Array], first: jax.Array, start: int,
               cuts: list[int], bar: Any):
        """Runs the epoch from position ``start`` one piece per cut after it (a ``segment`` each),
        advancing ``bar``; yields ``(state, per-step metrics on the device, end of the piece)``."""
        a = start
        for b in cuts:
            if b <= a:
                continue
            state, out = self.segment(state, batches, first, a, b)
            bar.update(b - a)
            yield state, out, b
            a = b

    def run_epoch(self, state: TrainState, batches: dict[str, np.ndarray], first_step: int, desc: str = "",
                  start: int = 0):
        """Trains on ``batches[start:]`` (arrays with leading axes (steps, batch)).

        ``first_step`` is the update count at the start of the epoch (``state.step`` must be
        ``first_step + start``). Returns the new state and the per-step metrics (``loss``,
        ``learning_rate``, [momentum], ``finite``), on the host.
        """
        steps = batches["label"].shape[0]
        # The epoch's explicit host-to-device transfers: its data and its first step.
        state = self.place(state)
        batches = self.put_epoch(batches)
        first = self.put_scalar(np.int32(first_step))
        bar = _progress_bar(steps, desc, self.progress, initial=start)
        outputs = []
        for state, out, _ in self.pieces(state, batches, first, start, self.boundaries(steps), bar):
            outputs.append(out)
        per_step = parallel.to_host(outputs)  # the epoch's one device-to-host transfer of metrics
        bar.close()
        return state, {k: np.concatenate([o[k] for o in per_step]) for k in per_step[0]}

    # --- evaluation ---

    def eval_batches(self, split: input_pipeline.Split, batch_size: int) -> list[dict[str, jax.Array]]:
        """``split`` as a list of padded batches on the devices (put there once, kept for every evaluation).

        The batch size is rounded up to a multiple of the number of devices (the padding is masked).
        """
        n = self.num_devices
        size = -(-min(batch_size, len(split)) // n) * n
        stacked = input_pipeline.batch(split, np.arange(len(split), dtype=np.int32), size)
        return [parallel.feed({k: v[i] for k, v in stacked.items()}, self.shardings.batch, batch_axis=0)
                for i in range(stacked["label"].shape[0])]

    def evaluate(self, params, batches: list[dict[str, jax.Array]]) -> tuple[float, float]:
        """``(mean loss, accuracy in %)`` over ``batches`` (from :meth:`eval_batches`), summed over all devices."""
        totals = None
        for batch in batches:
            out = self._eval(params, batch)
            totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
        loss_sum, correct, count = parallel.to_host(totals)
        return float(loss_sum) / float(count), 100.0 * float(correct) / float(count)

    def update_plateau(self, state: TrainState, metric: float) -> TrainState:
        plateau = self._plateau_update(state.plateau, self.put_scalar(np.float32(metric)), state.step)
        return _distinct(state._replace(plateau=plateau))


def _progress_bar(total: int, desc: str, enabled: bool, initial: int = 0):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------
# Setup
# ------------------------------------------------------------------------------------------------


def _positive_int(value: Any, zero_ok: bool = False) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= (0 if zero_ok else 1)


def validate(config: Config, num_devices: int | None = None) -> None:
    """Rejects bad values before any data is read or anything compiled.

    ``num_devices``: the devices the batch is split over (default: ``jax.device_count()``).
    """
    if not isinstance(config, Config):
        raise ConfigError(f"config must be a Config, got {type(config).__name__}")
    for name in ("epochs", "batch_size", "eval_batch_size", "keep_checkpoints"):
        value = getattr(config, name)
        if not _positive_int(value):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    for name in ("train_examples", "test_examples"):
        value = getattr(config, name)
        if value is not None and not _positive_int(value):
            raise ConfigError(f"{name} must be a positive integer or None, got {value!r}")
    for name in ("warmup", "seed", "checkpoint_every_epochs", "checkpoint_every_steps"):
        value = getattr(config, name)
        if not _positive_int(value, zero_ok=True):
            raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    if not (isinstance(config.learning_rate, (int, float)) and math.isfinite(config.learning_rate)
            and config.learning_rate >= 0):
        raise ConfigError(f"learning_rate must be a finite number >= 0, got {config.learning_rate!r}")
    if config.model not in models.MODELS:
        raise ConfigError(f"unknown model {config.model!r}; choose one of {', '.join(models.MODELS)}")
    if config.dataset not in ("embedded", "tfds"):
        raise ConfigError(f"unknown dataset {config.dataset!r}; choose 'embedded' or 'tfds'")
    if not isinstance(config.optimizer_args, dict):
        raise ConfigError(f"optimizer_args must be a dict, got {config.optimizer_args!r}")
    for name in ("progress", "plot", "checkpoint", "resume", "resume_with_changes"):
        if not isinstance(getattr(config, name), bool):
            raise ConfigError(f"{name} must be true or false, got {getattr(config, name)!r}")
    if config.on_nonfinite not in NONFINITE_MODES:
        raise ConfigError(f"on_nonfinite must be one of {', '.join(NONFINITE_MODES)}, got {config.on_nonfinite!r}")
    if config.resume and not config.checkpoint:
        raise ConfigError("resume needs checkpoints: drop --no-checkpoint (checkpoint=False)")
    choose_loop(config)
    devices = jax.device_count() if num_devices is None else num_devices
    if config.batch_size % devices:
        lower, upper = config.batch_size // devices * devices, -(-config.batch_size // devices) * devices
        raise ConfigError(f"batch_size {config.batch_size} does not split evenly over the {devices} devices of "
                          f"this run (data parallelism): use a multiple of {devices}, e.g. "
                          f"{' or '.join(str(x) for x in (lower, upper) if x > 0)}.")
    # Names and keywords of the schedule and optimizer; their values are checked by make_plan,
    # which needs the number of batches per epoch.
    schedules.precheck(config)


@functools.partial(jax.jit, static_argnums=0)
def _init_params(model: str, seed: jax.Array) -> nnx.State:
    return nnx.split(models.create(model, jax.random.key(seed)), nnx.Param)[1]


def create_model(config: Config) -> tuple[nnx.GraphDef, nnx.State]:
    """The model's graph definition and initial parameters (a pure function of ``config.seed``)."""
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: models.create(config.model, 0)), nnx.Param)
    # One jitted initialiser per model, cached across calls: compiling the threefry random bits
    # takes ~1.5 s on the 2-core CPU, and eager initialisation dispatches (and compiles) every
    # initialiser separately.
    return graphdef, _init_params(config.model, jax.device_put(np.uint32(config.seed)))


def create_train_state(params: nnx.State, tx: optax.GradientTransformation, plan: schedules.Plan) -> TrainState:
    plateau = plan.plateau.init() if plan.plateau is not None else None
    return _distinct(TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), plateau))


def _distinct(tree: Any) -> Any:
    """``tree`` with no array appearing twice, so that it can be donated (``init``s may share one zero)."""
    seen: set[int] = set()

    def copy_if_seen(x):
        if id(x) in seen:
            return jnp.array(x, copy=True)
        seen.add(id(x))
        return x

    return jax.tree.map(copy_if_seen, tree)


def setup(config: Config, steps_per_epoch: int, *, abstract: bool = False):
    """Plan, optimizer, model and initial state: everything before compilation (all checks happen here).

    ``abstract=True`` gives the state's shapes and dtypes only (``jax.ShapeDtypeStruct`` leaves),
    without initialising anything: what ``--dry-run`` and restoring a checkpoint need.
    """
    validate(config)
    plan = schedules.make_plan(config, steps_per_epoch)
    tx = schedules.make_optimizer(config, plan)
    if abstract:
        graphdef, params = nnx.split(nnx.eval_shape(lambda: models.create(config.model, 0)), nnx.Param)
        return plan, tx, graphdef, jax.eval_shape(lambda p: create_train_state(p, tx, plan), params)
    graphdef, params = create_model(config)
    return plan, tx, graphdef, create_train_state(params, tx, plan)


# ------------------------------------------------------------------------------------------------
# What a checkpoint must match to be resumed
# ------------------------------------------------------------------------------------------------

# Config fields that may differ between a run and its resumption. The others decide the numbers
# (a resumed run refuses a checkpoint whose values differ, unless resume_with_changes). ``epochs``
# may change (a run can be extended); schedules whose length follows from it (T_max, OneCycleLR)
# then change too, and the resumed run says so. loop/progress/checkpoint_every_steps decide how
# updates are grouped into compiled pieces: a different grouping can change float rounding, so a
# bitwise-identical continuation needs the same values.
_EXECUTION_FIELDS = frozenset({"epochs", "data_dir", "loop", "progress", "plot", "checkpoint",
                               "checkpoint_every_epochs", "checkpoint_every_steps", "keep_checkpoints",
                               "resume", "resume_with_changes", "on_nonfinite"})


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: f"<{type(o).__name__} {getattr(o, '__qualname__', o)}>"))


def run_fields(config: Config) -> dict[str, Any]:
    """The config fields that define a run's numbers, as JSON values (stored in every checkpoint)."""
    return {f.name: _jsonable(getattr(config, f.name)) for f in dataclasses.fields(config)
            if f.name not in _EXECUTION_FIELDS}


def _order_digest(seed: int, epoch: int, n: int) -> str:
    return hashlib.sha256(input_pipeline.epoch_order(seed, epoch, n).tobytes()).hexdigest()


def _check_resumable(meta: dict[str, Any], config: Config, steps_per_epoch: int, num_examples: int,
                     where: str, log: Callable[[str], None]) -> None:
    """Raises CheckpointError if checkpoint ``meta`` is not a state of the run ``config`` describes."""
    theirs, ours = meta.get("config", {}), run_fields(config)
    changed = [k for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
    problems = [f"{k}: {json.dumps(theirs.get(k))} in the checkpoint, {json.dumps(ours.get(k))} now" for k in changed]
    if meta.get("steps_per_epoch") != steps_per_epoch:
        problems.append(f"{meta.get('steps_per_epoch')} updates per epoch in the checkpoint, {steps_per_epoch} now")
    step = meta["step"]
    epoch = step // steps_per_epoch + 1
    data = meta.get("data", {})
    if not changed and data.get("order_sha256") != _order_digest(config.seed, epoch, num_examples):
        problems.append(f"the order of epoch {epoch} differs from the checkpoint's (another dataset or NumPy version?)")
    if problems and not config.resume_with_changes:
        raise CheckpointError(
            f"cannot resume from {where}: it is a state of a different run ({'; '.join(problems)}). "
            "Resume with the run's settings, or pass --resume-with-changes to continue it with the new ones, "
            "or start a new run (without --resume, or in another --workdir).")
    for problem in problems:
        log(f"Resuming with a change: {problem}")
    if step > config.epochs * steps_per_epoch:
        raise CheckpointError(f"cannot resume from {where}: it is after {step} updates, beyond the "
                              f"{config.epochs} epochs ({config.epochs * steps_per_epoch} updates) asked for.")
    if meta.get("epochs") != config.epochs:
        log(f"Resuming with {config.epochs} epochs instead of {meta.get('epochs')} (schedules whose length "
            "follows from the run's, such as T_max or OneCycleLR's, follow the new length).")


# ------------------------------------------------------------------------------------------------
# Signals: stop at the next piece of an epoch, with a checkpoint
# ------------------------------------------------------------------------------------------------


class _StopRequests:
    """Catches SIGTERM (pre-emption) and SIGINT (Ctrl-C) while a checkpointed run trains.

    The first one asks the run to stop at the next piece of an epoch, after saving a checkpoint; a
    second Ctrl-C interrupts at once. Only in the main thread (Python's rule for signal handlers).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def requested(self) -> bool:
        """Whether to stop now. With several processes, they agree (a small all-gather): a signal
        seen by any process stops all of them at the same piece (orbax's saves are collective)."""
        if jax.process_count() == 1:
            return self.signum is not None
        from jax.experimental import multihost_utils

        with jax.transfer_guard("allow"):  # a deliberate host sync, only in multi-process runs
            signals = multihost_utils.process_allgather(np.int32(self.signum or 0))
        if self.signum is None and np.any(signals):
            self.signum = int(np.max(signals))
        return self.signum is not None

    def __enter__(self) -> "_StopRequests":
        if self.enabled:
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


# ------------------------------------------------------------------------------------------------
# The main entry point
# ------------------------------------------------------------------------------------------------


def _quiet(line: str) -> None:
    del line


def _prepare_workdir(config: Config, workdir: str | None) -> tuple[metrics.MetricsWriter | None, str | None]:
    """The metrics writer (process 0 only) and the checkpoint directory; reports an unusable directory now,
    not after training."""
    if workdir is None:
        return None, None
    checkpoint_dir = os.path.join(workdir, "checkpoints") if config.checkpoint else None
    try:
        os.makedirs(workdir, exist_ok=True)
        writer = metrics.MetricsWriter(workdir) if jax.process_index() == 0 else None
        if checkpoint_dir is not None:
            os.makedirs(checkpoint_dir, exist_ok=True)
            probe = os.path.join(checkpoint_dir, f".write-test-{os.getpid()}")
            with open(probe, "w", encoding="utf-8"):
                pass
            os.remove(probe)
    except OSError as e:
        raise ConfigError(f"cannot write to the output directory {workdir!r}: {e.strerror or e}") from None
    return writer, checkpoint_dir


def _concat(chunks: list[dict[str, np.ndarray]], keys: list[str]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([c[k] for c in chunks]) if chunks else np.zeros(0, np.float32) for k in keys}


def train_and_evaluate(config: Config, workdir: str | None, *, log: Callable[[str], None] = print) -> Result:
    """Trains ``config.model`` on MNIST, printing the PyTorch example's per-epoch lines.

    Writes ``metrics.jsonl`` (one row per epoch), ``steps.csv`` (lr, momentum and loss of every
    update), ``metrics.png`` (lr and loss/accuracy curves) and checkpoints (``checkpoints/<step>``)
    into ``workdir`` (nothing if None). With ``config.resume``, continues the run from the latest
    checkpoint in ``workdir``.

    Transfers between host and devices are explicit, except during the one-time setup (model
    initialisation, schedule constants), which runs under ``jax.transfer_guard("allow")``: a caller
    may train under ``jax.transfer_guard("disallow")``.

    Raises:
        ConfigError: a bad configuration value, or an unwritable ``workdir`` (before anything is compiled).
        CheckpointError: ``resume`` found a corrupt checkpoint or one of another run (before anything is compiled).
        input_pipeline.DataError: the dataset is missing or unreadable.
        NonFiniteError: a non-finite loss with ``on_nonfinite="stop"`` (the last good state is saved first).
        RunStopped: SIGTERM or SIGINT arrived; a checkpoint was saved.
    """
    validate(config)
    if config.resume and workdir is None:
        raise ConfigError("resume needs the workdir of the run to continue")
    if jax.process_index() != 0:  # several hosts: one writes the logs and metrics (all write checkpoints)
        log = _quiet
    writer, checkpoint_dir = _prepare_workdir(config, workdir)
    train_ds, test_ds = input_pipeline.load(config.dataset, config.data_dir, config.train_examples,
                                            config.test_examples)
    steps_per_epoch = input_pipeline.steps_per_epoch(len(train_ds), config.batch_size)
    with jax.transfer_guard("allow"):  # one-time setup: schedule constants, the optimizer's initial lr
        plan, tx, graphdef, abstract_state = setup(config, steps_per_epoch, abstract=True)

    if checkpoint_dir is not None and not config.resume:
        moved = checkpointing.archive(checkpoint_dir) if jax.process_index() == 0 else None
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("mnist: earlier checkpoints moved aside")
        if moved is not None:
            log(f"Starting a new run: moved the checkpoints of an earlier run (up to update {moved[1]}) to "
                f"{moved[0]}; --resume continues a run instead.")
    ckpts = checkpointing.Checkpoints(checkpoint_dir, config.keep_checkpoints) if checkpoint_dir else None
    try:
        return _Run(config, log, workdir, writer, ckpts, train_ds, test_ds, steps_per_epoch, plan, tx, graphdef,
                    abstract_state).train()
    finally:
        if ckpts is not None:
            ckpts.close()


class _Run:
    """One call of :func:`train_and_evaluate`: the loop over epochs and their pieces."""

    def __init__(self, config, log, workdir, writer, ckpts, train_ds, test_ds, steps_per_epoch, plan, tx, graphdef,
                 abstract_state):
        self.config, self.log, self.workdir, self.writer, self.ckpts = config, log, workdir, writer, ckpts
        self.train_ds, self.test_ds, self.spe = train_ds, test_ds, steps_per_epoch
        self.plan, self.tx, self.graphdef, self.abstract_state = plan, tx, graphdef, abstract_state
        self.history: list[dict[str, Any]] = []
        self.past: list[dict[str, np.ndarray]] = []  # host per-step metrics of finished epochs
        self.nonfinite = 0
        self.resumed_from: int | None = None
        self._saved: set[int] = set()
        self.keys = ["loss", "learning_rate"] + ([plan.momentum_name] if plan.momentum is not None else [])

    # --- start: a new state, or the latest checkpoint's ---

    def _start(self) -> tuple[TrainState, dict[str, np.ndarray]]:
        """The initial state (host arrays if restored) and the per-step metrics of a partial epoch."""
        config, ckpts = self.config, self.ckpts
        latest = ckpts.latest() if (ckpts is not None and config.resume) else None
        if config.resume and latest is None:
            self.log(f"Nothing to resume in {ckpts.directory if ckpts else 'the workdir'}: starting a new run.")
        if latest is None:
            with jax.transfer_guard("allow"):  # one-time setup: the initial parameters and optimizer state
                _, params = create_model(config)
                state = create_train_state(params, self.tx, self.plan)
            return state, {}
        where = ckpts.path(latest)
        meta = ckpts.read_meta(latest)
        _check_resumable(meta, config, self.spe, len(self.train_ds), where, self.log)
        state = ckpts.restore(latest, self.abstract_state, meta)  # NumPy, checked; placed by the caller
        epochs_done, position = divmod(latest, self.spe)
        saved = {k: np.asarray(meta["steps"][k], np.float32) for k in self.keys}
        saved["finite"] = np.ones(latest, bool)  # a checkpoint holds good updates only
        done = epochs_done * self.spe
        self.past = [{k: v[:done] for k, v in saved.items() if k != "finite"}]
        self.history = list(meta["history"])
        self.nonfinite = int(meta.get("nonfinite_updates", 0))
        self.resumed_from = latest
        self.log(f"Resumed from {where}: {latest} updates done (epoch {epochs_done + 1}, "
                 f"batch {position} of {self.spe}).")
        return state, {k: v[done:] for k, v in saved.items()}

    # --- checkpoints ---

    def _save(self, state: TrainState, partial: dict[str, np.ndarray] | None, reason: str) -> str | None:
        """Checkpoints ``state`` (on the devices) with the metrics so far (``partial``: of the epoch in
        progress); returns its directory."""
        if self.ckpts is None:
            return None
        host = parallel.to_host(state)  # explicit: the checkpoint's one device-to-host transfer
        step = int(host.step)
        if step in self._saved or step in self.ckpts.steps():
            return self.ckpts.path(step)
        self._saved.add(step)
        steps = _concat(self.past + ([partial] if partial is not None else []), self.keys)
        meta = {
            "reason": reason, "epochs": self.config.epochs, "steps_per_epoch": self.spe,
            "epoch": step // self.spe + 1, "position": step % self.spe,
            "data": {"seed": self.config.seed, "num_examples": len(self.train_ds),
                     "order_sha256": _order_digest(self.config.seed, step // self.spe + 1, len(self.train_ds))},
            "config": run_fields(self.config), "history": self.history,
            "steps": {k: v.tolist() for k, v in steps.items()}, "nonfinite_updates": self.nonfinite,
            "devices": jax.device_count(),
            "versions": {"jax": jax.__version__, "flax": _version("flax"), "optax": optax.__version__,
                         "orbax-checkpoint": _version("orbax-checkpoint"), "lrjax": _version("lrjax")},
        }
        self.ckpts.save(step, host, meta)
        return self.ckpts.path(step)

    # --- the loop ---

    def train(self) -> Result:
        config, log, plan = self.config, self.log, self.plan
        runner = Runner(self.graphdef, self.tx, plan, choose_loop(config), config.progress,
                        on_nonfinite=config.on_nonfinite)
        state, partial = self._start()
        state = runner.place(state)  # explicit: the state, replicated on every device
        self.test_batches = runner.eval_batches(self.test_ds, config.eval_batch_size)  # explicit, once
        devices = f"{runner.num_devices} {jax.default_backend()} devices" if runner.num_devices > 1 else \
            jax.default_backend()
        log(f"{config.model} on {config.dataset} MNIST ({len(self.train_ds)} train / {len(self.test_ds)} test), "
            f"optax.{config.optimizer}, batch {config.batch_size}, {config.epochs} epochs, "
            f"{runner.loop} loop on {devices}")
        log(f"lr: {plan.description}")
        if self.writer is not None:
            self.writer.start(self.history)

        spe = self.spe
        step0 = self.resumed_from or 0
        if step0 == config.epochs * spe and step0:
            log(f"The run is complete: {config.epochs} epochs done.")
        with _StopRequests(self.ckpts is not None) as stop:
            for epoch in range(step0 // spe + 1, config.epochs + 1):
                start_time = time.perf_counter()
                first = (epoch - 1) * spe
                start = step0 - first if epoch == step0 // spe + 1 else 0
                state, current = self._train_epoch(runner, state, epoch, start, partial if start else {}, stop)
                self._end_epoch(runner, state, epoch, current, start_time)
                if plan.plateau is not None:
                    state = runner.update_plateau(state, self.history[-1][config.plateau_metric])
                self.past.append(current)
                last = epoch == config.epochs
                every = config.checkpoint_every_epochs
                stopping = not last and stop.requested()
                if last or stopping or (every and epoch % every == 0):
                    path = self._save(state, None, "end" if last else "signal" if stopping else "epoch")
                    if stopping:
                        self._stopped(stop.signum, epoch * spe, path)

        steps = _concat(self.past, self.keys)
        steps = {("lr" if k == "learning_rate" else "momentum" if k == plan.momentum_name else k): v
                 for k, v in steps.items()}
        if self.ckpts is not None:
            self.ckpts.wait()
        if self.writer is not None:
            self.writer.write_steps(steps, spe)
            log(f"Wrote {self.writer.metrics_path} and {self.writer.steps_path}")
            if config.plot and self.history:
                path = metrics.plot(self.history, steps, spe, os.path.join(self.workdir, "metrics.png"),
                                    title=f"{config.model}, optax.{config.optimizer}, {plan.description}")
                log(f"Wrote {path}")
        if self.ckpts is not None and self.ckpts.latest() is not None:
            log(f"Checkpoint: {os.path.join(self.workdir, 'checkpoints', str(self.ckpts.latest()))}")
        return Result(state, self.history, steps, plan, self.resumed_from, self.nonfinite)

    def _train_epoch(self, runner: Runner, state: TrainState, epoch: int, start: int,
                     partial: dict[str, np.ndarray], stop: _StopRequests):
        """Trains epoch ``epoch`` from batch ``start``; returns the state and the epoch's per-step metrics (host)."""
        config, spe = self.config, self.spe
        first = (epoch - 1) * spe
        order = input_pipeline.epoch_order(config.seed, epoch, len(self.train_ds))
        batches = runner.put_epoch(input_pipeline.batch(self.train_ds, order, config.batch_size))  # explicit
        first_d = runner.put_scalar(np.int32(first))  # explicit
        stop_mode = config.on_nonfinite == "stop"
        every = config.checkpoint_every_steps if self.ckpts is not None else 0
        bar = _progress_bar(spe, f"Epoch {epoch}", config.progress, initial=start)
        done: list[dict[str, np.ndarray]] = [partial] if start else []  # host, positions [0, a)
        pending: list[dict[str, jax.Array]] = []  # on the device, positions [a_0, a)
        checked = 0  # pieces of `pending` known to be finite
        for state, out, b in runner.pieces(state, batches, first_d, start, runner.boundaries(spe, first, every), bar):
            pending.append(out)
            # "stop": look at the flags of the piece before this one (done by now, or nearly), so
            # the host never waits for the piece it just dispatched. Frozen pieces cost nothing wrong.
            if stop_mode and len(pending) - 1 > checked:
                if not np.all(parallel.to_host(pending[checked]["finite"])):
                    break
                checked += 1
            stopping = b < spe and stop.requested()
            if stopping or (b < spe and every and (first + b) % every == 0):
                if stop_mode and not np.all(parallel.to_host(pending[-1]["finite"])):
                    break
                done.append(self._host(pending))  # explicit: the metrics so far, for the checkpoint
                pending, checked = [], 0
                path = self._save(state, _concat(done, self.keys), "signal" if stopping else "steps")
                if stopping:
                    self._stopped(stop.signum, first + b, path)
        bar.close()
        if pending:
            done.append(self._host(pending))  # the epoch's one device-to-host transfer of metrics
        per_step = _concat(done, self.keys + ["finite"])
        finite = per_step.pop("finite")
        bad = np.flatnonzero(~finite)
        if stop_mode and bad.size:
            self._nonfinite_stop(state, epoch, int(bad[0]), {k: v for k, v in per_step.items()})
        self.nonfinite += int(bad.size)
        if bad.size:
            verb = "skipped" if config.on_nonfinite == "skip" else "applied"
            self.log(f"Epoch {epoch}: {bad.size} update{'s' if bad.size > 1 else ''} with a non-finite loss or "
                     f"result ({verb}, --on-nonfinite {config.on_nonfinite}); first at update {first + int(bad[0])}.")
        return state, per_step

    def _host(self, pending: list[dict[str, jax.Array]]) -> dict[str, np.ndarray]:
        chunks = parallel.to_host(pending)
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    def _end_epoch(self, runner: Runner, state: TrainState, epoch: int, per_step: dict[str, np.ndarray],
                   start_time: float) -> None:
        config, plan = self.config, self.plan
        losses = per_step["loss"]
        if config.on_nonfinite == "skip":
            losses = losses[np.isfinite(losses)]
        train_loss = float(np.mean(losses)) if losses.size else float("nan")  # the mean of batch means, as torch
        lr = float(per_step["learning_rate"][-1])  # the lr the epoch's last update used
        self.log(f"Epoch {epoch}, Loss: {train_loss:.4f}, LR: {lr:.6f}")
        test_loss, accuracy = runner.evaluate(state.params, self.test_batches)
        self.log(f"Test Accuracy: {accuracy:.2f}%")
        row = {"epoch": epoch, "step": epoch * self.spe, "lr": lr}
        if plan.momentum is not None:
            row["momentum"] = float(per_step[plan.momentum_name][-1])
        row.update({"train_loss": train_loss, "test_loss": test_loss, "test_accuracy": accuracy,
                    "seconds": time.perf_counter() - start_time})
        self.history.append(row)
        if self.writer is not None:
            self.writer.write_epoch(row)

    def _nonfinite_stop(self, state: TrainState, epoch: int, position: int, per_step: dict[str, np.ndarray]):
        first = (epoch - 1) * self.spe
        step = first + position
        loss, lr = float(per_step["loss"][position]), float(per_step["learning_rate"][position])
        what = f"loss {loss}" if not math.isfinite(loss) else f"loss {loss:.4g} but non-finite parameters after it"
        path = self._save(state, {k: v[:position] for k, v in per_step.items()}, "nonfinite")
        if self.ckpts is not None:
            self.ckpts.wait()
        updates = f"{step} update{'' if step == 1 else 's'}"
        saved = (f"The last good state (after {updates}) is saved in {path}. " if path else
                 f"The last good state (after {updates}) is in this error's .state. ")
        raise NonFiniteError(
            f"non-finite training at update {step + 1} (epoch {epoch}, batch {position + 1} of {self.spe}): {what}, "
            f"lr {lr:.6g}. Training stopped without applying it. {saved}Lower the learning rate or check the data; "
            "--resume retries from there (--on-nonfinite skip drops such updates, --on-nonfinite continue applies "
            "them).", step, state, path)

    def _stopped(self, signum: int, step: int, path: str | None) -> None:
        self.ckpts.wait()
        epoch, position = divmod(step, self.spe)
        raise RunStopped(f"stopped by {signal.Signals(signum).name} after {step} updates (epoch {epoch + 1}, "
                         f"batch {position} of {self.spe}); checkpoint saved in {path}. Run the same command "
                         "with --resume to continue.", signum, step)


def _version(package: str) -> str | None:
    from importlib import metadata as importlib_metadata

    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return None
