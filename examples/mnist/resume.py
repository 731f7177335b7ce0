"""What a checkpoint must match to be resumed, and the saved settings ``--resume`` starts from.

A checkpoint's record holds the run's whole config (JSON). Resuming compares the fields that
decide the numbers (model, optimizer, schedule, batch size, seed, data, ...) with the new run's and
refuses another run's checkpoint unless ``resume_with_changes``; ``--resume`` without other flags
starts from the saved config (:func:`saved_config`), so a pre-empted job need not repeat them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

from examples.mnist import input_pipeline
from examples.mnist.checkpointing import CheckpointError
from examples.mnist.configs.default import Config
from examples.mnist.validation import ConfigError

# Config fields that may differ between a run and its resumption. The others decide the numbers.
# ``epochs`` may change (a run can be extended); schedules whose length follows from it (T_max,
# OneCycleLR) then change too, and the resumed run says so. loop/progress/checkpoint_every_steps
# decide how updates are grouped into compiled pieces: a different grouping can change float
# rounding, so a bitwise-identical continuation needs the same values.
EXECUTION_FIELDS = frozenset(
    {
        "epochs",
        "data_dir",
        "loop",
        "progress",
        "plot",
        "tensorboard",
        "checkpoint",
        "checkpoint_every_epochs",
        "checkpoint_every_steps",
        "keep_checkpoints",
        "resume",
        "resume_with_changes",
        "on_nonfinite",
    }
)
_FUNCTION = "<python function "


def _jsonable(value: Any) -> Any:
    return json.loads(
        json.dumps(value, default=lambda o: f"{_FUNCTION}{getattr(o, '__qualname__', type(o).__name__)}>")
    )


def config_record(config: Config) -> dict[str, Any]:
    """Every field of ``config`` as JSON (a function, which JSON cannot hold, by its name)."""
    return {f.name: _jsonable(getattr(config, f.name)) for f in dataclasses.fields(config)}


def run_fields(config_or_record: Config | dict[str, Any]) -> dict[str, Any]:
    """The fields that define a run's numbers, as JSON values."""
    record = config_record(config_or_record) if isinstance(config_or_record, Config) else config_or_record
    return {k: v for k, v in record.items() if k not in EXECUTION_FIELDS}


def order_digest(seed: int, epoch: int, n: int) -> str:
    return hashlib.sha256(input_pipeline.epoch_order(seed, epoch, n).tobytes()).hexdigest()


def check_resumable(
    meta: dict[str, Any],
    config: Config,
    steps_per_epoch: int,
    num_examples: int,
    where: str,
    log: Callable[[str], None],
) -> None:
    """Raises CheckpointError if checkpoint ``meta`` is not a state of the run ``config`` describes."""
    theirs, ours = run_fields(meta.get("config", {})), run_fields(config)
    changed = [k for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
    problems = [f"{k}: {json.dumps(theirs.get(k))} in the checkpoint, {json.dumps(ours.get(k))} now" for k in changed]
    if meta.get("steps_per_epoch") != steps_per_epoch:
        problems.append(f"{meta.get('steps_per_epoch')} updates per epoch in the checkpoint, {steps_per_epoch} now")
    step = meta["step"]
    epoch = step // steps_per_epoch + 1
    if not changed and meta.get("data", {}).get("order_sha256") != order_digest(config.seed, epoch, num_examples):
        problems.append(f"the order of epoch {epoch} differs from the checkpoint's (another dataset or NumPy version?)")
    if problems and not config.resume_with_changes:
        raise CheckpointError(
            f"cannot resume from {where}: it is a state of a different run ({'; '.join(problems)}). "
            "Resume with the run's settings, or pass --resume-with-changes to continue it with the new ones, "
            "or start a new run (without --resume, or in another --workdir)."
        )
    for problem in problems:
        log(f"Resuming with a change: {problem}")
    if step > config.epochs * steps_per_epoch:
        raise CheckpointError(
            f"cannot resume from {where}: it is after {step} updates, beyond the "
            f"{config.epochs} epochs ({config.epochs * steps_per_epoch} updates) asked for."
        )
    if meta.get("config", {}).get("epochs") != config.epochs:
        log(
            f"Resuming with {config.epochs} epochs instead of {meta.get('config', {}).get('epochs')} (schedules "
            "whose length follows from the run's, such as T_max or OneCycleLR's, follow the new length)."
        )


def saved_config(workdir: str) -> Config | None:
    """The config of the run whose latest checkpoint is in ``workdir`` (None if there is none).

    The record is data: it is read as JSON fields over the default config and validated like any
    config; nothing in it runs. A config whose schedule held a Python function cannot be rebuilt
    from JSON: then the message says to pass the Python config file again.
    """
    from examples.mnist import checkpointing

    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory) or not any(e.isdigit() for e in os.listdir(directory)):
        return None
    ckpts = checkpointing.Checkpoints(directory, read_only=True)  # the run may still be going: only read
    try:
        step = ckpts.latest()
        if step is None:
            return None
        record = ckpts.read_meta(step).get("config")
    finally:
        ckpts.close()
    if not isinstance(record, dict):
        raise CheckpointError(f"{os.path.join(directory, str(step))} holds no config to resume with")
    if _FUNCTION in json.dumps(record):
        raise ConfigError(
            f"the run in {workdir!r} used a Python function in its schedule, which a checkpoint cannot "
            "hold: resume with its Python config file, --config FILE.py --resume."
        )
    fields = {f.name for f in dataclasses.fields(Config)}
    return dataclasses.replace(Config(), **{k: v for k, v in record.items() if k in fields})
