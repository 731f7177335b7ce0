"""Training and evaluation: ``train_and_evaluate(config, workdir)``, as in Flax's MNIST example.

The model is Flax NNX, split into ``(graphdef, params)``; the optimizer is any optax optimizer
whose lr (and momentum) an lrjax schedule gives (``schedules.py``); the train and eval steps are
pure functions compiled with ``jax.jit``; the whole training state is one pytree,
:class:`TrainState`. The epoch loop below is the seed's: train an epoch, print its loss and lr,
evaluate, print the accuracy, step the schedule (a per-epoch schedule is a function of the update
count; ReduceLROnPlateau is updated with the epoch's metric).

What a real run needs besides lives in modules named for it: compiled epochs and transfers
(``epochs.py``), the non-finite guard (``nonfinite.py``), checkpoints, resume, the workdir lock,
logs and signals (``supervisor.py`` and what it uses), devices (``parallel.py``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from examples.mnist import epochs, input_pipeline, metrics, models, schedules
from examples.mnist.checkpointing import CheckpointError, CheckpointWriteError  # noqa: F401 (raised here)
from examples.mnist.configs.default import Config
from examples.mnist.nonfinite import NonFiniteError  # noqa: F401
from examples.mnist.preemption import RunStopped  # noqa: F401
from examples.mnist.supervisor import Supervisor
from examples.mnist.validation import ConfigError, validate  # noqa: F401


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


def create_train_state(config: Config, tx: optax.GradientTransformation, plan: schedules.Plan) -> TrainState:
    """The initial state, a pure function of ``config.seed``, built by one compiled function.

    The parameters are drawn with the ``rbg`` key (XLA's RngBitGenerator): on the 2-core CPU it
    compiles in 0.35 s where threefry takes 1.3 s (for a model whose training takes less).
    """

    def init_train_state(seed):
        params = _init_params(config.model, seed)
        plateau = plan.plateau.init() if plan.plateau is not None else None
        return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), plateau)

    return jax.jit(init_train_state)(np.uint32(config.seed))


def _init_params(model: str, seed: jax.Array) -> nnx.State:
    return nnx.state(models.create(model, jax.random.key(seed, impl="rbg")), nnx.Param)


def create_model(config: Config) -> tuple[nnx.GraphDef, nnx.State]:
    """The model's graph definition and the initial parameters of :func:`create_train_state`."""
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: models.create(config.model, 0)), nnx.Param)
    return graphdef, jax.jit(_init_params, static_argnums=0)(config.model, np.uint32(config.seed))


def abstract_train_state(config: Config, tx, plan) -> tuple[nnx.GraphDef, TrainState]:
    """The model's graph definition and the state's shapes and dtypes, without computing anything."""
    graphdef, params = nnx.split(nnx.eval_shape(lambda: models.create(config.model, 0)), nnx.Param)
    plateau = plan.plateau.init if plan.plateau is not None else lambda: None
    state = jax.eval_shape(lambda p: TrainState(jnp.zeros((), jnp.int32), p, tx.init(p), plateau()), params)
    return graphdef, state


def make_loss_fn(graphdef: nnx.GraphDef) -> Callable[[nnx.State, dict[str, jax.Array]], tuple[jax.Array, jax.Array]]:
    """``loss_fn(params, batch) -> (mean cross-entropy over the real examples, logits)``.

    ``batch`` holds uint8 ``image`` (B, 28, 28, 1), int32 ``label`` (B,) and float32 ``mask`` (B,)
    (0 for padding). The LR range test (``lrjax.find_lr``, ``--find-lr``) differentiates it too.
    """

    def loss_fn(params, batch):
        logits = nnx.merge(graphdef, params)(batch["image"].astype(jnp.float32) / 255.0)  # torchvision's ToTensor
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        mask = batch["mask"]
        return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1.0), logits

    return loss_fn


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, plan: schedules.Plan):
    """``train_step(state, batch) -> (state, {"loss", "learning_rate", [momentum]})``, pure.

    The schedule's lr (and momentum) of this update are written into ``inject_hyperparams``' state
    before the update, as torch's scheduler writes them into the optimizer.
    """
    loss_fn = make_loss_fn(graphdef)

    def train_step(state: TrainState, batch: dict[str, jax.Array]):
        hp = plan.hyperparams(state.step, state.plateau)
        hyperparams = {
            **state.opt_state.hyperparams,
            **{k: v.astype(state.opt_state.hyperparams[k].dtype) for k, v in hp.items()},
        }
        opt_state = state.opt_state._replace(hyperparams=hyperparams)
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


def setup(config: Config, steps_per_epoch: int):
    """Plan, optimizer, model and the state's shapes: everything before compilation (all checks happen here)."""
    validate(config)
    plan = schedules.make_plan(config, steps_per_epoch)
    tx = schedules.make_optimizer(config, plan)
    graphdef, abstract_state = abstract_train_state(config, tx, plan)
    return plan, tx, graphdef, abstract_state


def make_runner(config: Config, graphdef, tx, plan) -> epochs.Runner:
    return epochs.Runner(
        make_train_step(graphdef, tx, plan),
        make_eval_step(graphdef),
        plan.plateau.update if plan.plateau is not None else None,
        epochs.choose_loop(config.loop, config.model),
        config.progress,
        on_nonfinite=config.on_nonfinite,
    )


def train_and_evaluate(config: Config, workdir: str | None, *, log: Callable[[str], None] = print) -> Result:
    """Trains ``config.model`` on MNIST, printing the PyTorch example's per-epoch lines.

    Writes ``metrics.jsonl``, ``steps.csv``, TensorBoard events, checkpoints and (``config.plot``)
    ``metrics.png`` into ``workdir`` (nothing if None). With ``config.resume``, continues the run
    from the latest checkpoint in ``workdir``. A caller may train under
    ``jax.transfer_guard("disallow")``: transfers are explicit but for the one-time setup.

    Raises:
        ConfigError: a bad configuration value, an unwritable or busy ``workdir`` (before anything is compiled).
        CheckpointError: ``resume`` found a corrupt checkpoint or one of another run (before anything is compiled).
        input_pipeline.DataError: the dataset is missing or unreadable.
        NonFiniteError: a non-finite loss with ``on_nonfinite="stop"`` (the last good state is saved first).
        RunStopped: SIGTERM or SIGINT arrived; a checkpoint was saved.
        CheckpointWriteError, metrics.OutputError: a checkpoint or log could not be written (disk full, ...).
    """
    validate(config)
    if jax.process_index() != 0:  # several hosts: one prints
        log = lambda line: None  # noqa: E731
    with Supervisor(config, workdir, log) as run:
        train_ds, test_ds = input_pipeline.load(
            config.dataset, config.data_dir, config.train_examples, config.test_examples
        )
        steps_per_epoch = input_pipeline.steps_per_epoch(len(train_ds), config.batch_size)
        with jax.transfer_guard("allow"):  # one-time setup: schedule constants
            plan, tx, graphdef, abstract_state = setup(config, steps_per_epoch)
        keys = ["loss", "learning_rate"] + ([plan.momentum_name] if plan.momentum is not None else [])
        runner = make_runner(config, graphdef, tx, plan)
        test_batches = runner.eval_batches(test_ds, config.eval_batch_size)  # explicit, once
        first_batches = input_pipeline.batch(train_ds, np.arange(len(train_ds)), config.batch_size)
        runner.compile_ahead(abstract_state, first_batches, test_batches[0], run.cuts(runner, steps_per_epoch))
        state, partial = run.start(
            abstract_state, steps_per_epoch, len(train_ds), keys, lambda: create_train_state(config, tx, plan)
        )
        state = runner.place(state)  # explicit: the state, replicated on every device
        devices = (
            f"{runner.num_devices} {jax.default_backend()} devices" if runner.num_devices > 1 else jax.default_backend()
        )
        log(
            f"{config.model} on {config.dataset} MNIST ({len(train_ds)} train / {len(test_ds)} test), "
            f"optax.{config.optimizer}, batch {config.batch_size}, {config.epochs} epochs, "
            f"{runner.loop} loop on {devices}"
        )
        log(f"lr: {plan.description}")
        first_epoch = (run.resumed_from or 0) // steps_per_epoch + 1
        if first_epoch > config.epochs:
            log(f"The run is complete: {config.epochs} epochs done.")
        for epoch in range(first_epoch, config.epochs + 1):
            start_time = time.perf_counter()
            order = input_pipeline.epoch_order(config.seed, epoch, len(train_ds))
            batches = input_pipeline.batch(train_ds, order, config.batch_size)
            state, per_step = run.train_epoch(runner, state, epoch, batches, partial if epoch == first_epoch else {})
            losses = per_step["loss"]
            if config.on_nonfinite == "skip":
                losses = losses[np.isfinite(losses)]
            train_loss = float(np.mean(losses)) if losses.size else float("nan")  # the mean of batch means, as torch
            lr = float(per_step["learning_rate"][-1])  # the lr the epoch's last update used
            log(f"Epoch {epoch}, Loss: {train_loss:.4f}, LR: {metrics.format_lr(lr)}")
            test_loss, accuracy = runner.evaluate(state.params, test_batches)
            log(f"Test Accuracy: {accuracy:.2f}%")
            if plan.plateau is not None:  # ReduceLROnPlateau steps on the epoch's metric
                state = runner.update_plateau(state, test_loss if config.plateau_metric == "test_loss" else accuracy)
            row = {"epoch": epoch, "step": epoch * steps_per_epoch, "lr": lr}
            if plan.momentum is not None:
                row["momentum"] = float(per_step[plan.momentum_name][-1])
            row.update(
                train_loss=train_loss,
                test_loss=test_loss,
                test_accuracy=accuracy,
                seconds=time.perf_counter() - start_time,
            )
            run.end_epoch(state, row, per_step)
        steps, last_checkpoint = run.finish()
        if run.writer is not None:
            log(
                f"Wrote {run.writer.metrics_path}, {run.writer.steps_path}"
                + (f" and TensorBoard events in {run.writer.tensorboard_dir}" if config.tensorboard else "")
            )
            if config.plot and run.history:
                path = metrics.plot(
                    run.history,
                    steps,
                    steps_per_epoch,
                    f"{workdir}/metrics.png",
                    title=f"{config.model}, optax.{config.optimizer}, {plan.description}",
                )
                log(f"Wrote {path}")
        if last_checkpoint is not None:
            log(f"Checkpoint: {last_checkpoint}")
        return Result(state, run.history, steps, plan, run.resumed_from, run.nonfinite)
