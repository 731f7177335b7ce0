"""The metrics file (JSON lines, one row per epoch), the per-update CSV, and the figure."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

EPOCH_FIELDS = ("epoch", "step", "lr", "momentum", "train_loss", "test_loss", "test_accuracy", "seconds")


class MetricsWriter:
    """Writes ``metrics.jsonl`` row by row (flushed after each epoch) and ``steps.csv`` at the end.

    ``metrics.jsonl`` rows: ``epoch`` (1-based), ``step`` (optimizer updates done), ``lr`` (the lr
    of the epoch's last update), ``momentum`` (only when scheduled), ``train_loss`` (mean of the
    batch losses), ``test_loss``, ``test_accuracy`` (%), ``seconds`` (wall time of the epoch,
    evaluation included; the first epoch includes compilation). A resumed run rewrites the rows of
    the epochs its checkpoint holds (:meth:`start`), then appends.
    """

    def __init__(self, workdir: str):
        self.metrics_path = os.path.join(workdir, "metrics.jsonl")
        self.steps_path = os.path.join(workdir, "steps.csv")
        # Checked now, so that an unwritable directory is reported before training; nothing of an
        # earlier run is touched until start() (a resume may still fail on its checkpoint).
        probe = os.path.join(workdir, f".write-test-{os.getpid()}")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.remove(probe)
        for path in (self.metrics_path, self.steps_path):
            if os.path.exists(path):
                with open(path, "a", encoding="utf-8"):
                    pass

    def start(self, rows: Sequence[dict[str, Any]] = ()) -> None:
        """Starts ``metrics.jsonl`` afresh, with ``rows`` (the epochs a resumed run already did)."""
        with open(self.metrics_path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")

    def write_epoch(self, row: dict[str, Any]) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def write_steps(self, steps: dict[str, np.ndarray], steps_per_epoch: int) -> None:
        keys = [k for k in ("lr", "momentum", "loss") if k in steps]
        n = len(steps["loss"])
        with open(self.steps_path, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "epoch", *keys])
            for i in range(n):
                w.writerow([i, i // steps_per_epoch + 1, *(f"{float(steps[k][i]):.9g}" for k in keys)])


def read_jsonl(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot(history: Sequence[dict[str, Any]], steps: dict[str, np.ndarray], steps_per_epoch: int, path: str,
         title: str = "") -> str:
    """Three panels against epochs: lr (and momentum), train/test loss, test accuracy. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(steps["loss"])
    x_steps = (np.arange(n) + 1) / steps_per_epoch  # update i ends at epoch (i + 1) / steps_per_epoch
    epochs = np.array([r["epoch"] for r in history], dtype=float)
    fig, (ax_lr, ax_loss, ax_acc) = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)

    ax_lr.plot(x_steps, steps["lr"], color="tab:blue", label="lr")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    lrs = np.asarray(steps["lr"], dtype=float)
    if lrs.min() > 0 and lrs.max() / lrs.min() > 50:
        ax_lr.set_yscale("log")
    ax_lr.set_title("learning rate per update")
    if "momentum" in steps:
        ax_m = ax_lr.twinx()
        ax_m.plot(x_steps, steps["momentum"], color="tab:orange", label="momentum")
        ax_m.set_ylabel("momentum", color="tab:orange")
        ax_lr.legend(handles=ax_lr.get_lines() + ax_m.get_lines(), loc="best")

    ax_loss.plot(x_steps, steps["loss"], color="tab:blue", alpha=0.25, lw=0.8, label="train loss (batch)")
    ax_loss.plot(epochs - 0.5, [r["train_loss"] for r in history], "o-", color="tab:blue",
                 label="train loss (epoch mean, at mid-epoch)")
    ax_loss.plot(epochs, [r["test_loss"] for r in history], "s-", color="tab:red", label="test loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_yscale("log")
    ax_loss.legend(loc="best")
    ax_loss.set_title("loss")

    ax_acc.plot(epochs, [r["test_accuracy"] for r in history], "s-", color="tab:green")
    for e, a in zip(epochs, [r["test_accuracy"] for r in history]):
        ax_acc.annotate(f"{a:.2f}", (e, a), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title("test accuracy")
    ax_acc.margins(y=0.15)
    for ax in (ax_lr, ax_loss, ax_acc):
        ax.set_xlim(0, max(epochs.max(), 1) + 0.2)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title if len(title) < 160 else title[:157] + "...", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
