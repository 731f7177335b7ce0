"""The Flax trainer's CNN in PyTorch, trained by the PyTorch example's loop: the peer of the CNN benchmark.

``examples/mnist/torch_reference.py`` is the seed's PyTorch example with its ``Linear(784, 10)``;
this is the same program with the CNN of ``examples/mnist/models.py`` (Flax's MNIST example):
two 3x3 convolutions (32 and 64 channels, padding 1 = Flax's "SAME") each followed by ReLU and
2x2 average pooling, then ``Linear(3136, 256)``, ReLU, ``Linear(256, 10)``. It starts from the
Flax model's initial weights (transposed into torch's layouts), visits the train set in the given
order (a ``DataLoader`` with that order as its sampler), steps Adam and ``StepLR`` as the seed does
(``scheduler.step()`` after each epoch) and evaluates after each epoch, timing each epoch as
``torch_reference.train_torch`` does (training loop + evaluation).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader

from examples.mnist.torch_reference import _tensors, evaluate


class TorchCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.dense1 = nn.Linear(7 * 7 * 64, 256)
        self.dense2 = nn.Linear(256, 10)
        self.pool = nn.AvgPool2d(2, 2)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.dense2(torch.relu(self.dense1(x)))


def _array(x: Any) -> np.ndarray:
    return np.asarray(x[...] if hasattr(x, "__getitem__") and not isinstance(x, np.ndarray) else x, np.float32)


def from_flax(params: Any) -> TorchCNN:
    """A TorchCNN holding the Flax CNN's parameters (``params``: the trainer's ``nnx.State``)."""
    model = TorchCNN()

    def p(layer: str, name: str) -> np.ndarray:
        return _array(params[layer][name])

    with torch.no_grad():
        for layer in ("conv1", "conv2"):  # Flax HWIO -> torch OIHW
            getattr(model, layer).weight.copy_(torch.from_numpy(p(layer, "kernel").transpose(3, 2, 0, 1).copy()))
            getattr(model, layer).bias.copy_(torch.from_numpy(p(layer, "bias").copy()))
        # Flax flattens (H, W, C), torch (C, H, W): reorder dense1's input rows before transposing.
        k1 = p("dense1", "kernel").reshape(7, 7, 64, 256).transpose(2, 0, 1, 3).reshape(7 * 7 * 64, 256)
        model.dense1.weight.copy_(torch.from_numpy(k1.T.copy()))
        model.dense1.bias.copy_(torch.from_numpy(p("dense1", "bias").copy()))
        model.dense2.weight.copy_(torch.from_numpy(p("dense2", "kernel").T.copy()))
        model.dense2.bias.copy_(torch.from_numpy(p("dense2", "bias").copy()))
    return model


def train_torch_cnn(
    params: Any,
    train_data: tuple[np.ndarray, np.ndarray],
    test_data: tuple[np.ndarray, np.ndarray],
    orders: Sequence[np.ndarray],
    *,
    batch_size: int = 64,
    lr: float = 1e-3,
    step_size: int = 2,
    gamma: float = 0.1,
    log: Callable[[str], None] = print,
) -> list[dict[str, float]]:
    """Trains the CNN for ``len(orders)`` epochs; returns rows ``{"epoch", "lr", "train_loss", "test_loss",
    "test_accuracy", "seconds"}`` like ``torch_reference.train_torch``."""
    model = from_flax(params)
    train_dataset = _tensors(*train_data)
    test_loader = DataLoader(_tensors(*test_data), batch_size=batch_size)
    criterion = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=lr)
    sched = optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma)
    history = []
    for epoch, order in enumerate(orders, start=1):
        start = time.perf_counter()
        train_loader = DataLoader(train_dataset, batch_size=batch_size, sampler=[int(i) for i in order])
        model.train()
        total_loss = 0.0
        lr_used = opt.param_groups[0]["lr"]
        for data, target in train_loader:
            opt.zero_grad()
            loss = criterion(model(data), target)
            loss.backward()
            opt.step()
            total_loss += loss.item()
        train_loss = total_loss / len(train_loader)
        log(f"Epoch {epoch}, Loss: {train_loss:.4f}, LR: {lr_used:.6f}")
        test_loss, accuracy = evaluate(model, test_loader)
        log(f"Test Accuracy: {accuracy:.2f}%")
        sched.step()
        history.append(
            {
                "epoch": epoch,
                "lr": lr_used,
                "train_loss": train_loss,
                "test_loss": test_loss,
                "test_accuracy": accuracy,
                "seconds": time.perf_counter() - start,
            }
        )
    return history
