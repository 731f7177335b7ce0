"""The PyTorch example this trainer ports, as a function: the reference of the parity test.

The seed example (``SimpleNet`` = ``Linear(784, 10)``, ``CrossEntropyLoss``, Adam lr=1e-3,
``StepLR(step_size=2, gamma=0.1)`` stepped after each epoch, batch 64, the same print lines),
with three changes so that it can be compared with the Flax trainer number for number:

* the initial weights are given (the Flax model's, transposed into torch's layout);
* each epoch visits the train set in a given order (a ``DataLoader`` with that order as its
  sampler, instead of ``shuffle=True``), which the test takes from ``input_pipeline.epoch_order``;
* the optimizer and scheduler are arguments, so that SGD with momentum and a per-batch
  ``OneCycleLR`` (cycling the momentum) run through the same loop.

Run it on the embedded digits, beside the Flax trainer (same init, same order):
``python -m examples.mnist.torch_reference``. Needs torch (``pip install -e ".[torch]"``); no
torchvision: the images come from ``input_pipeline`` as uint8 arrays, and ``/ 255`` is ``ToTensor``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset


class SimpleNet(nn.Module):
    """The seed's model, unchanged."""

    def __init__(self):
        super(SimpleNet, self).__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        x = x.view(-1, 28 * 28)
        x = self.fc(x)
        return x


def _tensors(images: np.ndarray, labels: np.ndarray) -> TensorDataset:
    # uint8 (N, 28, 28, 1) -> float (N, 1, 28, 28) in [0, 1], as torchvision's ToTensor.
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0
    return TensorDataset(x, torch.from_numpy(labels.astype(np.int64)))


def evaluate(model: nn.Module, test_loader: DataLoader) -> tuple[float, float]:
    """The seed's test loop: mean cross-entropy and accuracy (in %) of ``model`` on ``test_loader``."""
    model.eval()
    correct = total = 0
    test_loss = 0.0
    with torch.no_grad():
        for data, target in test_loader:
            output = model(data)
            test_loss += nn.functional.cross_entropy(output, target, reduction="sum").item()
            _, predicted = torch.max(output.data, 1)
            total += target.size(0)
            correct += (predicted == target).sum().item()
    return test_loss / total, 100.0 * correct / total


def train_torch(
    kernel: np.ndarray,
    bias: np.ndarray,
    train_data: tuple[np.ndarray, np.ndarray],
    test_data: tuple[np.ndarray, np.ndarray],
    orders: Sequence[np.ndarray],
    *,
    batch_size: int = 64,
    optimizer: str = "Adam",
    optimizer_kwargs: dict[str, Any] | None = None,
    scheduler: str = "StepLR",
    scheduler_kwargs: dict[str, Any] | None = None,
    step_per: str = "epoch",
    log: Callable[[str], None] = print,
) -> tuple[list[dict[str, float]], dict[str, list[float]]]:
    """Trains the seed's model for ``len(orders)`` epochs; returns per-epoch rows and per-update values.

    Args:
        kernel, bias: initial ``Linear`` parameters in Flax's layout (``kernel`` is (784, 10)).
        train_data, test_data: ``(uint8 images (N, 28, 28, 1), int labels (N,))``.
        orders: for each epoch, the order of the train examples.
        optimizer, optimizer_kwargs: a ``torch.optim`` class name and its arguments.
        scheduler, scheduler_kwargs: a ``torch.optim.lr_scheduler`` class name and its arguments.
        step_per: ``"epoch"`` (the seed: ``scheduler.step()`` after each epoch) or ``"batch"``.

    Returns:
        ``(history, steps)``: rows ``{"epoch", "lr", "momentum", "train_loss", "test_loss",
        "test_accuracy", "seconds"}``, where ``lr``/``momentum`` are the ones the epoch's last
        ``optimizer.step()`` used; and ``{"lr", "momentum", "loss"}``, one value per update.
    """
    model = SimpleNet()
    with torch.no_grad():
        model.fc.weight.copy_(torch.from_numpy(np.asarray(kernel, np.float32).T.copy()))
        model.fc.bias.copy_(torch.from_numpy(np.asarray(bias, np.float32).copy()))
    train_dataset = _tensors(*train_data)
    test_loader = DataLoader(_tensors(*test_data), batch_size=batch_size)
    criterion = nn.CrossEntropyLoss()
    opt = getattr(optim, optimizer)(model.parameters(), **{"lr": 1e-3, **(optimizer_kwargs or {})})
    sched = getattr(optim.lr_scheduler, scheduler)(opt, **(scheduler_kwargs or {}))

    history = []
    steps: dict[str, list[float]] = {"lr": [], "momentum": [], "loss": []}
    for epoch, order in enumerate(orders, start=1):
        start = time.perf_counter()
        train_loader = DataLoader(train_dataset, batch_size=batch_size, sampler=[int(i) for i in order])
        model.train()
        total_loss = 0
        for data, target in train_loader:
            group = opt.param_groups[0]
            lr = group["lr"]
            momentum = group.get("momentum", group.get("betas", (None,))[0])
            opt.zero_grad()
            output = model(data)
            loss = criterion(output, target)
            loss.backward()
            opt.step()
            total_loss += loss.item()
            steps["lr"].append(lr)
            steps["momentum"].append(momentum)
            steps["loss"].append(loss.item())
            if step_per == "batch":
                sched.step()
        train_loss = total_loss / len(train_loader)
        log(f"Epoch {epoch}, Loss: {train_loss:.4f}, LR: {lr:.6f}")

        test_loss, accuracy = evaluate(model, test_loader)
        log(f"Test Accuracy: {accuracy:.2f}%")
        if step_per == "epoch":
            sched.step()
        history.append(
            {
                "epoch": epoch,
                "lr": lr,
                "momentum": momentum,
                "train_loss": train_loss,
                "test_loss": test_loss,
                "test_accuracy": accuracy,
                "seconds": time.perf_counter() - start,
            }
        )
    return history, steps


def main() -> None:
    """The seed's configuration on the embedded digits, from the Flax trainer's initial weights and order."""
    from examples.mnist import input_pipeline, train
    from examples.mnist.configs.default import get_config

    config = get_config()
    train_ds, test_ds = input_pipeline.load(config.dataset)
    _, params = train.create_model(config)
    orders = [input_pipeline.epoch_order(config.seed, e, len(train_ds)) for e in range(1, config.epochs + 1)]
    train_torch(
        np.asarray(params["fc"]["kernel"][...]),
        np.asarray(params["fc"]["bias"][...]),
        (train_ds.images, train_ds.labels),
        (test_ds.images, test_ds.labels),
        orders,
        batch_size=config.batch_size,
        optimizer="Adam",
        optimizer_kwargs={"lr": 0.001},
        scheduler="StepLR",
        scheduler_kwargs={"step_size": 2, "gamma": 0.1},
    )


if __name__ == "__main__":
    main()
