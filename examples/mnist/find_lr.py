"""``--find-lr``: the LR range test (``lrjax.find_lr``) on the run's model, optimizer and data.

The sweep trains a copy of the run's initial parameters for ``steps`` updates on the run's own
batches (its data order, epoch after epoch), with the run's optimizer (``--optimizer``,
``--optimizer-args``) while the lr grows exponentially from ``start_lr`` to ``end_lr``, all in one
jitted ``lax.scan``. It prints the suggested lr (where the smoothed loss falls fastest) and writes
the curve to ``WORKDIR/find_lr.png``. Nothing is trained or checkpointed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import jax
import numpy as np

import lrjax
from examples.mnist import input_pipeline, schedules, train
from examples.mnist.configs.default import Config
from examples.mnist.validation import ConfigError


def sweep_batches(config: Config, train_ds: input_pipeline.Split, steps: int) -> dict[str, np.ndarray]:
    """The run's first ``steps`` batches, in its data order (epoch 1, then 2, ...): leading axis ``steps``."""
    per_epoch = input_pipeline.steps_per_epoch(len(train_ds), config.batch_size)
    epochs = [
        input_pipeline.batch(train_ds, input_pipeline.epoch_order(config.seed, e, len(train_ds)), config.batch_size)
        for e in range(1, -(-steps // per_epoch) + 1)
    ]
    return {k: np.concatenate([b[k] for b in epochs])[:steps] for k in epochs[0]}


def run(
    config: Config,
    workdir: str | None,
    *,
    steps: int = 100,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    log: Callable[[str], None] = print,
) -> lrjax.FindLRResult:
    """Runs the range test for ``config``; writes ``WORKDIR/find_lr.png`` (if ``workdir``). Returns the result."""
    train.validate(config)
    if not (isinstance(steps, int) and steps >= 2):
        raise ConfigError(f"--find-lr-steps must be an integer >= 2, got {steps!r}")
    if not (0 < start_lr < end_lr and np.isfinite(end_lr)):
        raise ConfigError(f"--find-lr-range must be two finite lrs with 0 < START < END, got {start_lr} {end_lr}")
    train_ds, _ = input_pipeline.load(config.dataset, config.data_dir, config.train_examples, config.test_examples)
    steps_per_epoch = input_pipeline.steps_per_epoch(len(train_ds), config.batch_size)
    plan, tx, graphdef, _ = train.setup(config, steps_per_epoch)
    optimizer = functools.partial(schedules.optimizer_factory(config.optimizer), **schedules.optimizer_kwargs(config))
    state = train.create_train_state(config, tx, plan)
    batches = jax.device_put(sweep_batches(config, train_ds, steps))
    log(
        f"LR range test: {config.model}, optax.{config.optimizer}, {steps} updates of batch {config.batch_size}, "
        f"lr {start_lr:g} -> {end_lr:g}"
    )
    result = lrjax.find_lr(
        train.make_loss_fn(graphdef),
        state.params,
        batches,
        optimizer=optimizer,
        start_lr=start_lr,
        end_lr=end_lr,
        has_aux=True,
    )
    where = (
        f"diverged at lr {result.diverged_lr:.3g} (update {result.num_steps_run})"
        if result.diverged
        else "did not diverge"
    )
    suggested = (
        "none (too few steps before divergence)" if result.suggested_lr is None else f"{result.suggested_lr:.3g}"
    )
    log(
        f"Suggested lr: {suggested}; lowest smoothed loss {float(np.min(result.smoothed_losses)):.4f} at lr "
        f"{result.min_loss_lr:.3g}; {where}."
    )
    if workdir is not None:
        from matplotlib.figure import Figure

        from examples.mnist.metrics import OutputError

        fig = Figure(figsize=(6.4, 4.0), layout="constrained")
        result.plot(ax=fig.subplots(), title=f"LR range test: {config.model}, optax.{config.optimizer}")
        path = os.path.join(workdir, "find_lr.png")
        try:
            os.makedirs(workdir, exist_ok=True)
            fig.savefig(path, dpi=100)
        except OSError as e:
            raise OutputError(f"could not write {path}: {e.strerror or e}") from None
        log(f"Wrote {path}")
    return result
