"""The Flax trainer against the PyTorch example it ports: same weights, batches, order and schedule.

Both sides train the seed's ``Linear(784, 10)`` from the Flax model's initial weights, on the
same subset of the embedded digits, visiting it in the same order (``input_pipeline.epoch_order``),
with the same optimizer and schedule. The Flax side is the trainer itself
(``train.train_and_evaluate``); the torch side is ``examples/mnist/torch_reference.py``, the seed's
loop. Checked:

* the lr (and momentum) of every update: torch's value within ``LR_RTOL`` (relative; lrjax
  computes in float32, torch in Python floats), and the printed ``LR:`` text identical;
* the per-epoch training loss (the seed's ``Loss:``): within ``LOSS_ATOL`` of torch's, and every
  per-update loss within ``STEP_LOSS_ATOL`` (both train in float32; what differs is rounding);
* the test accuracy: within one test example.

Run with ``-s`` to see the measured differences.
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np
import pytest
from conftest import requires_torch

# examples/ lives at the repository root, which `python -m pytest` puts on sys.path and a bare
# `pytest` does not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples.mnist import input_pipeline, train
from examples.mnist.configs.default import get_config

LR_RTOL = 1e-6  # measured: 0 (StepLR), 4.1e-7 (OneCycleLR, about 3 float32 ulps)
LOSS_ATOL = 2e-6  # measured: 3.1e-7 (Adam + StepLR), 2.8e-8 (SGD + OneCycleLR)
STEP_LOSS_ATOL = 5e-6  # measured: 4.8e-7, 2.4e-7
TRAIN_EXAMPLES, TEST_EXAMPLES = 1000, 500  # 16 batches of 64 per epoch, the last one of 40


def _run_both(config, torch_optimizer, torch_optimizer_kwargs, torch_scheduler, torch_scheduler_kwargs, step_per):
    from examples.mnist.torch_reference import train_torch

    result = train.train_and_evaluate(config, None, log=lambda s: None)
    train_ds, test_ds = input_pipeline.load(config.dataset, None, config.train_examples, config.test_examples)
    _, params = train.create_model(config)  # the same initial weights the trainer started from
    orders = [input_pipeline.epoch_order(config.seed, e, len(train_ds)) for e in range(1, config.epochs + 1)]
    history, steps = train_torch(
        np.asarray(params["fc"]["kernel"][...]),
        np.asarray(params["fc"]["bias"][...]),
        (train_ds.images, train_ds.labels),
        (test_ds.images, test_ds.labels),
        orders,
        batch_size=config.batch_size,
        optimizer=torch_optimizer,
        optimizer_kwargs=torch_optimizer_kwargs,
        scheduler=torch_scheduler,
        scheduler_kwargs=torch_scheduler_kwargs,
        step_per=step_per,
        log=lambda s: None,
    )
    return result, history, steps


def _compare(result, history, steps, momentum: bool):
    n_epochs = len(history)
    assert len(result.history) == n_epochs
    # Every update's lr (and momentum).
    torch_lr = np.asarray(steps["lr"], np.float64)
    jax_lr = np.asarray(result.steps["lr"], np.float64)
    assert jax_lr.shape == torch_lr.shape
    lr_err = np.max(np.abs(jax_lr - torch_lr.astype(np.float32)) / torch_lr)
    assert lr_err <= LR_RTOL, f"lr differs from torch's by {lr_err:.3g} (relative)"
    epoch_lr_torch = np.array([h["lr"] for h in history])
    epoch_lr_jax = np.array([r["lr"] for r in result.history])
    np.testing.assert_allclose(epoch_lr_jax, epoch_lr_torch, rtol=LR_RTOL)
    # The printed LR: the seed's format gives the same text.
    assert [f"{x:.6f}" for x in epoch_lr_jax] == [f"{x:.6f}" for x in epoch_lr_torch]
    if momentum:
        torch_m = np.asarray(steps["momentum"], np.float64)
        np.testing.assert_allclose(result.steps["momentum"], torch_m, rtol=LR_RTOL)
    # Losses.
    loss_jax = np.array([r["train_loss"] for r in result.history])
    loss_torch = np.array([h["train_loss"] for h in history])
    epoch_err = np.max(np.abs(loss_jax - loss_torch))
    step_err = np.max(np.abs(np.asarray(result.steps["loss"], np.float64) - np.asarray(steps["loss"])))
    print(
        f"\n  lr: {jax_lr.size} updates, max relative difference {lr_err:.2e}; "
        f"train loss per epoch {np.round(loss_jax, 6).tolist()} (flax) vs {np.round(loss_torch, 6).tolist()} (torch), "
        f"max difference {epoch_err:.2e}; per update max {step_err:.2e}"
    )
    assert epoch_err <= LOSS_ATOL, f"per-epoch train loss differs by {epoch_err:.3g}"
    assert step_err <= STEP_LOSS_ATOL, f"a per-update loss differs by {step_err:.3g}"
    acc_jax = np.array([r["test_accuracy"] for r in result.history])
    acc_torch = np.array([h["test_accuracy"] for h in history])
    np.testing.assert_allclose(acc_jax, acc_torch, atol=100.0 / TEST_EXAMPLES + 1e-9)
    # The lr really changed during the run (so the comparison means something).
    assert len(set(np.round(jax_lr, 12))) > 1


@requires_torch
def test_adam_step_lr_per_epoch_matches_torch():
    """The seed: Adam(lr=1e-3) + StepLR(step_size=2, gamma=0.1), scheduler.step() after each epoch."""
    config = get_config().replace(
        train_examples=TRAIN_EXAMPLES, test_examples=TEST_EXAMPLES, epochs=4, progress=False, plot=False
    )
    # optax.adam's bias correction computes ``b1 ** count`` (a float and an int32), which the strict
    # promotion of tests/conftest.py rejects; the trainer's own code is checked strict by the SGD case.
    with jax.numpy_dtype_promotion("standard"):
        result, history, steps = _run_both(
            config, "Adam", {"lr": 1e-3}, "StepLR", {"step_size": 2, "gamma": 0.1}, "epoch"
        )
    assert [h["lr"] for h in history] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])
    _compare(result, history, steps, momentum=False)


@requires_torch
def test_sgd_momentum_one_cycle_per_step_matches_torch():
    """SGD(momentum=0.9) + OneCycleLR stepped after every batch, cycling the momentum (0.95 -> 0.85 -> 0.95)."""
    epochs, steps_per_epoch = 3, input_pipeline.steps_per_epoch(TRAIN_EXAMPLES, 64)
    config = get_config().replace(
        train_examples=TRAIN_EXAMPLES,
        test_examples=TEST_EXAMPLES,
        epochs=epochs,
        progress=False,
        plot=False,
        optimizer="sgd",
        optimizer_args={"momentum": 0.9},
        learning_rate=0.01,
        schedule={"name": "OneCycleLR", "max_lr": 0.1},
    )
    result, history, steps = _run_both(
        config,
        "SGD",
        {"lr": 0.01, "momentum": 0.9},
        "OneCycleLR",
        {"max_lr": 0.1, "epochs": epochs, "steps_per_epoch": steps_per_epoch},
        "batch",
    )
    assert result.plan.unit == "step" and result.plan.momentum_name == "momentum"
    assert min(steps["momentum"]) == pytest.approx(0.85, abs=1e-3) and steps["momentum"][0] == pytest.approx(0.95)
    _compare(result, history, steps, momentum=True)
