"""Checks of a config before any data is read or anything compiled: every bad value gets a clear error.

The values a run computes with are float32 (the lr, the schedule's factors) and int32 (the update
count and every length counted in it), so numbers are also checked to fit: ``--lr 1e39`` or
``step_size=2147483648`` would otherwise overflow inside the compiled step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from examples.mnist.configs.default import Config

FLOAT32_MAX = float(np.finfo(np.float32).max)
INT32_MAX = 2**31 - 1
SEED_MAX = 2**32 - 1  # the seed is a uint32 (jax.random.key, numpy's SeedSequence)
NONFINITE_MODES = ("stop", "skip", "continue")
LOOPS = ("auto", "scan", "python")


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which, and what is valid."""


def _positive_int(value: Any, zero_ok: bool = False, maximum: int = INT32_MAX) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (0 if zero_ok else 1) <= value <= maximum


def check_numbers(values: Any, where: str) -> None:
    """Every number in ``values`` (nested dicts and lists) is finite and fits float32 / int32."""
    if isinstance(values, dict):
        for key, value in values.items():
            _check_number(value, f"{key}", where)
    else:
        _check_number(values, "value", where)


def _check_number(value: Any, key: str, where: str) -> None:
    if isinstance(value, dict):
        check_numbers(value, where)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_number(v, key, where)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > INT32_MAX:
            raise ConfigError(
                f"{key}={value} in {where} is too large: steps are counted in int32, so integers "
                f"must lie within +-{INT32_MAX} (2**31 - 1)."
            )
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
            raise ConfigError(
                f"{key}={value!r} in {where} must be a finite number that float32 can hold "
                f"(at most {FLOAT32_MAX:.4g} in magnitude)."
            )


def validate(config: Config, num_devices: int | None = None) -> None:
    """Rejects bad values before any data is read or anything compiled.

    ``num_devices``: the devices the batch is split over (default: ``jax.device_count()``).
    """
    from examples.mnist import models, schedules

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
    for name in ("warmup", "checkpoint_every_epochs", "checkpoint_every_steps"):
        value = getattr(config, name)
        if not _positive_int(value, zero_ok=True):
            raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    if not _positive_int(config.seed, zero_ok=True, maximum=SEED_MAX):
        raise ConfigError(f"seed must be an integer from 0 to {SEED_MAX} (2**32 - 1), got {config.seed!r}")
    if not (
        isinstance(config.learning_rate, (int, float))
        and not isinstance(config.learning_rate, bool)
        and math.isfinite(config.learning_rate)
        and 0 <= config.learning_rate <= FLOAT32_MAX
    ):
        raise ConfigError(
            f"learning_rate must be a finite number >= 0 that float32 can hold (at most "
            f"{FLOAT32_MAX:.4g}), got {config.learning_rate!r}"
        )
    factor = config.warmup_start_factor
    if not (isinstance(factor, (int, float)) and not isinstance(factor, bool) and 0 < factor <= 1):
        # torch's LinearLR: "Starting multiplicative factor expected to be greater than 0 and less or equal to 1."
        raise ConfigError(
            f"warmup_start_factor must be greater than 0 and at most 1 (torch's LinearLR start_factor), got {factor!r}"
        )
    if config.model not in models.MODELS:
        raise ConfigError(f"unknown model {config.model!r}; choose one of {', '.join(models.MODELS)}")
    if config.dataset not in ("embedded", "tfds"):
        raise ConfigError(f"unknown dataset {config.dataset!r}; choose 'embedded' or 'tfds'")
    for name in ("progress", "plot", "tensorboard", "checkpoint", "resume", "resume_with_changes"):
        if not isinstance(getattr(config, name), bool):
            raise ConfigError(f"{name} must be true or false, got {getattr(config, name)!r}")
    if config.on_nonfinite not in NONFINITE_MODES:
        raise ConfigError(f"on_nonfinite must be one of {', '.join(NONFINITE_MODES)}, got {config.on_nonfinite!r}")
    if config.loop not in LOOPS:
        raise ConfigError(f"loop must be one of {', '.join(LOOPS)}, got {config.loop!r}")
    if config.resume and not config.checkpoint:
        raise ConfigError("resume needs checkpoints: drop --no-checkpoint (checkpoint=False)")
    if num_devices is None:
        import jax

        num_devices = jax.device_count()
    if config.batch_size % num_devices:
        lower, upper = (
            config.batch_size // num_devices * num_devices,
            -(-config.batch_size // num_devices) * num_devices,
        )
        raise ConfigError(
            f"batch_size {config.batch_size} does not split evenly over the {num_devices} devices of "
            f"this run (data parallelism): use a multiple of {num_devices}, e.g. "
            f"{' or '.join(str(x) for x in (lower, upper) if x > 0)}."
        )
    # Names, keywords and value types of the schedule and optimizer; the schedule's values are
    # checked when it is built (make_plan), which needs the number of batches per epoch.
    schedules.precheck(config)
