"""What a run writes beside its checkpoints: ``metrics.jsonl``, ``steps.csv``, TensorBoard events, the figure.

* ``metrics.jsonl``: one JSON row per epoch (``epoch``, ``step``, ``lr``, ``momentum`` when
  scheduled, ``train_loss``, ``test_loss``, ``test_accuracy`` in %, ``seconds``).
* ``steps.csv``: every update (``step``, ``epoch``, ``lr``, [``momentum``], ``loss``), appended
  after each epoch. A resumed run cuts both files back to what its checkpoint holds, then appends.
* ``tensorboard/``: the same values as TensorBoard scalars (``tensorboard --logdir WORKDIR``),
  written with TensorBoard's own event writer (``tensorboard.summary.writer``, what
  ``torch.utils.tensorboard`` uses). A resumed run marks its start (a ``SessionLog.START`` event),
  so TensorBoard drops the points an interrupted run logged after its checkpoint.
* ``metrics.png`` (``plot=True``): lr (and momentum) per update, losses, accuracy (matplotlib).

Every write that fails (disk full, a read-only directory) raises :class:`OutputError`, one line.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

STEP_KEYS = ("lr", "momentum", "loss")


class OutputError(RuntimeError):
    """A log file could not be written; the message says which and why."""


def format_lr(lr: float) -> str:
    """The seed's ``f"{lr:.6f}"`` where it shows the value to 3 significant digits, else ``2.000e-07``."""
    fixed = f"{lr:.6f}"
    if lr == 0 or (math.isfinite(lr) and abs(float(fixed) - lr) <= 1e-3 * abs(lr)):
        return fixed
    return f"{lr:.3e}"


class MetricsWriter:
    """Writes ``metrics.jsonl``, ``steps.csv`` and (``tensorboard=True``) TensorBoard events into ``workdir``."""

    def __init__(self, workdir: str, *, tensorboard: bool = True):
        self.workdir = workdir
        self.metrics_path = os.path.join(workdir, "metrics.jsonl")
        self.steps_path = os.path.join(workdir, "steps.csv")
        self.tensorboard_dir = os.path.join(workdir, "tensorboard") if tensorboard else None
        self._events = None
        self._keys: list[str] = []

    def _io(self, what: str, path: str, error: OSError) -> OutputError:
        return OutputError(f"could not {what} {path}: {error.strerror or error}")

    def start(
        self, rows: Sequence[dict[str, Any]], keys: list[str], steps_done: int, steps_per_epoch: int
    ) -> dict[str, np.ndarray]:
        """Starts the logs of a run whose first ``steps_done`` updates (and ``rows``) are done.

        A new run (``steps_done == 0``) starts both files afresh. A resumed run rewrites
        ``metrics.jsonl`` with ``rows`` and keeps the first ``steps_done`` updates of ``steps.csv``;
        returns those updates' values (``keys``: "lr", ["momentum"], "loss"), as float32 arrays
        (NaN where the file had fewer rows).
        """
        self._keys = list(keys)
        kept: list[list[str]] = []
        if steps_done:
            try:
                with open(self.steps_path, encoding="utf-8", newline="") as f:
                    reader = csv.reader(f)
                    header = next(reader, [])
                    kept = [row for _, row in zip(range(steps_done), reader)]
                if header != ["step", "epoch", *keys]:
                    kept = []
            except (OSError, ValueError):
                kept = []
        try:
            with open(self.metrics_path, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(row) + "\n" for row in rows)
        except OSError as e:
            raise self._io("write", self.metrics_path, e) from None
        try:
            with open(self.steps_path, "w", encoding="utf-8", newline="") as f:
                w = csv.writer(f)
                w.writerow(["step", "epoch", *keys])
                w.writerows(kept)
        except OSError as e:
            raise self._io("write", self.steps_path, e) from None
        values = {k: np.full(steps_done, np.nan, np.float32) for k in keys}
        for i, row in enumerate(kept):
            for j, k in enumerate(keys):
                values[k][i] = np.float32(float(row[2 + j]))
        self._next_step = len(kept)
        if self.tensorboard_dir is not None:
            self._start_events(steps_done)
        return values

    def _start_events(self, steps_done: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        try:
            os.makedirs(self.tensorboard_dir, exist_ok=True)
            self._events = EventFileWriter(self.tensorboard_dir)
        except OSError as e:
            raise self._io("write", self.tensorboard_dir, e) from None
        self._events.add_event(
            Event(wall_time=time.time(), step=steps_done, session_log=SessionLog(status=SessionLog.START))
        )

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()])
        self._events.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))

    def write_epoch(self, row: dict[str, Any], steps: dict[str, np.ndarray], first_step: int) -> None:
        """Appends an epoch: its row to ``metrics.jsonl``, its updates (from ``first_step``) to ``steps.csv``."""
        n = len(steps["loss"])
        epoch = row["epoch"]
        try:
            with open(self.steps_path, "a", encoding="utf-8", newline="") as f:
                w = csv.writer(f)
                for i in range(n):
                    w.writerow([first_step + i, epoch, *(f"{float(steps[k][i]):.9g}" for k in self._keys)])
        except OSError as e:
            raise self._io("append to", self.steps_path, e) from None
        try:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        except OSError as e:
            raise self._io("append to", self.metrics_path, e) from None
        if self._events is not None:
            for i in range(n):
                self._scalars(first_step + i + 1, {f"update/{k}": steps[k][i] for k in self._keys})
            self._scalars(
                row["step"],
                {
                    f"epoch/{k}": row[k]
                    for k in ("lr", "momentum", "train_loss", "test_loss", "test_accuracy")
                    if k in row
                },
            )

    def close(self) -> None:
        if self._events is not None:
            try:
                self._events.close()
            except OSError as e:
                raise self._io("write", self.tensorboard_dir, e) from None
            self._events = None


def read_jsonl(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot(
    history: Sequence[dict[str, Any]], steps: dict[str, np.ndarray], steps_per_epoch: int, path: str, title: str = ""
) -> str:
    """Three panels against epochs: lr (and momentum), train/test loss, test accuracy. Returns ``path``."""
    from matplotlib.figure import Figure

    n = len(steps["loss"])
    x_steps = (np.arange(n) + 1) / steps_per_epoch  # update i ends at epoch (i + 1) / steps_per_epoch
    epochs = np.array([r["epoch"] for r in history], dtype=float)
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    ax_lr, ax_loss, ax_acc = fig.subplots(1, 3)

    ax_lr.plot(x_steps, steps["lr"], color="tab:blue", label="lr")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    lrs = np.asarray(steps["lr"], dtype=float)
    if np.nanmin(lrs) > 0 and np.nanmax(lrs) / np.nanmin(lrs) > 50:
        ax_lr.set_yscale("log")
    ax_lr.set_title("learning rate per update")
    if "momentum" in steps:
        ax_m = ax_lr.twinx()
        ax_m.plot(x_steps, steps["momentum"], color="tab:orange", label="momentum")
        ax_m.set_ylabel("momentum", color="tab:orange")
        ax_lr.legend(handles=ax_lr.get_lines() + ax_m.get_lines(), loc="best")

    ax_loss.plot(x_steps, steps["loss"], color="tab:blue", alpha=0.25, lw=0.8, label="train loss (batch)")
    ax_loss.plot(
        epochs - 0.5,
        [r["train_loss"] for r in history],
        "o-",
        color="tab:blue",
        label="train loss (epoch mean, at mid-epoch)",
    )
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
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise OutputError(f"could not write {path}: {e.strerror or e}") from None
    return path
