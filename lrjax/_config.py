"""Building schedules from plain dicts / JSON, and back."""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from lrjax import _base

_FUNCTIONS = ("lr_lambda", "scale_fn")
_NESTED = {"chained_scheduler": "schedules", "sequential_lr": "schedules", "per_epoch": "schedule"}


def _registry() -> dict[str, Callable[..., Any]]:
    import lrjax

    names = [
        "lambda_lr", "multiplicative_lr", "step_lr", "multi_step_lr", "constant_lr", "linear_lr",
        "exponential_lr", "polynomial_lr", "cosine_annealing_lr", "cosine_annealing_warm_restarts",
        "cyclic_lr", "cyclic_momentum", "one_cycle_lr", "one_cycle_momentum", "chained_scheduler",
        "sequential_lr", "per_epoch", "reduce_lr_on_plateau",
    ]
    return {n: getattr(lrjax, n) for n in names if hasattr(lrjax, n)}


_TORCH_NAMES = {
    "LambdaLR": "lambda_lr", "MultiplicativeLR": "multiplicative_lr", "StepLR": "step_lr",
    "MultiStepLR": "multi_step_lr", "ConstantLR": "constant_lr", "LinearLR": "linear_lr",
    "ExponentialLR": "exponential_lr", "PolynomialLR": "polynomial_lr", "CosineAnnealingLR": "cosine_annealing_lr",
    "CosineAnnealingWarmRestarts": "cosine_annealing_warm_restarts", "CyclicLR": "cyclic_lr",
    "OneCycleLR": "one_cycle_lr", "ChainedScheduler": "chained_scheduler", "SequentialLR": "sequential_lr",
    "ReduceLROnPlateau": "reduce_lr_on_plateau",
}


def available() -> list[str]:
    """The schedule names a config may use (torch's class names are accepted too)."""
    return sorted(_registry())


def keywords(name: str) -> list[str]:
    """The keyword arguments schedule ``name`` takes, in order."""
    return list(inspect.signature(_lookup(name)).parameters)


def _lookup(name: Any) -> Callable[..., Any]:
    registry = _registry()
    if not isinstance(name, str):
        raise ValueError(f"a schedule config needs a string 'name', got {name!r}")
    key = _TORCH_NAMES.get(name, name)
    if key not in registry:
        close = difflib.get_close_matches(name, list(registry) + list(_TORCH_NAMES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown schedule name {name!r}.{hint} Valid names: {', '.join(sorted(registry))}.")
    return registry[key]


def from_config(config: Mapping[str, Any] | str, **defaults: Any) -> Any:
    """Builds a schedule (or a plateau) from a plain dict or a JSON string.

    The dict holds ``"name"`` (lrjax's function name, e.g. ``"one_cycle_lr"``, or torch's class
    name, e.g. ``"OneCycleLR"``) and the function's keyword arguments, with torch's names. The
    members of ``chained_scheduler``/``sequential_lr`` (``"schedules"``) and the schedule of
    ``per_epoch`` are configs themselves. ``defaults`` fill keywords the config leaves out and the
    function takes (e.g. ``base_lr=0.1``), in nested configs too.

    Functions (``lr_lambda``, ``scale_fn``) cannot be written in JSON: pass them as Python
    callables in a dict.

    Raises:
        ValueError: for an unknown name or keyword (listing the valid ones), a missing required
            keyword, or any error the schedule itself raises for its arguments.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.from_config({"name": "one_cycle_lr", "max_lr": 0.1, "total_steps": 1000})
        >>> round(float(schedule(300)), 6)
        0.1
        >>> lrjax.from_config('{"name": "StepLR", "step_size": 2}', base_lr=1e-3)
        lrjax.step_lr(base_lr=0.001, step_size=2, gamma=0.1)
    """
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError as e:
            raise ValueError(f"schedule config is not valid JSON: {e}") from e
    if not isinstance(config, Mapping):
        raise ValueError(f"a schedule config must be a dict with a 'name', got {config!r}")
    if "name" not in config:
        raise ValueError(f"a schedule config needs a 'name' (one of {', '.join(available())}), got {dict(config)!r}")
    fn = _lookup(config["name"])
    name = fn.__name__
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in config.items() if k != "name"}
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise ValueError(
            f"unknown keyword{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for {name}. "
            f"Valid keywords: {', '.join(params)}."
        )
    for key in _FUNCTIONS:
        if key in kwargs and isinstance(kwargs[key], str):
            raise ValueError(f"{key} of {name} must be a Python callable; a JSON config cannot carry a function.")
    nested = _NESTED.get(name)
    if nested and nested in kwargs:
        members = kwargs[nested]
        kwargs[nested] = (
            [from_config(m, **defaults) for m in members] if isinstance(members, list) else from_config(members, **defaults)
        )
    for key, value in defaults.items():
        if key in params and key not in kwargs:
            kwargs[key] = value
    missing = [
        k for k, p in params.items()
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and k not in kwargs
    ]
    if missing:
        raise ValueError(f"{name} needs {', '.join(map(repr, missing))}; got {sorted(kwargs)}.")
    return fn(**kwargs)


_MOMENTUM_OF = {"cyclic_lr": "cyclic_momentum", "one_cycle_lr": "one_cycle_momentum"}
_TORCH_MOMENTUM_KEYS = ("cycle_momentum", "base_momentum", "max_momentum")


def split_momentum(config: Mapping[str, Any] | str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Splits torch's CyclicLR/OneCycleLR keywords into an lr config and a momentum config.

    torch's ``CyclicLR`` and ``OneCycleLR`` take ``cycle_momentum`` (default True),
    ``base_momentum`` and ``max_momentum`` and write the momentum into the optimizer; lrjax has a
    separate momentum schedule (``cyclic_momentum`` / ``one_cycle_momentum``) over the same phases.
    This returns ``(lr_config, momentum_config)``, the second None when the schedule does not cycle
    the momentum (``cycle_momentum=False``, or another schedule). Both go to :func:`from_config`.

    Raises:
        ValueError: for momentum keywords on a schedule that does not cycle the momentum.

    Examples:
        >>> import lrjax
        >>> lr, momentum = lrjax.split_momentum({"name": "OneCycleLR", "max_lr": 0.1, "total_steps": 100,
        ...                                      "base_momentum": 0.8})
        >>> lr
        {'name': 'OneCycleLR', 'max_lr': 0.1, 'total_steps': 100}
        >>> momentum
        {'name': 'one_cycle_momentum', 'total_steps': 100, 'base_momentum': 0.8}
    """
    if isinstance(config, str):
        config = json.loads(config)
    lr = dict(config)
    name = _lookup(lr.get("name")).__name__
    torch_keys = {k: lr.pop(k) for k in _TORCH_MOMENTUM_KEYS if k in lr}
    if name not in _MOMENTUM_OF:
        if torch_keys:
            raise ValueError(f"{', '.join(torch_keys)}: only CyclicLR and OneCycleLR cycle the momentum, not {name}.")
        return lr, None
    if not torch_keys.pop("cycle_momentum", True):
        return lr, None
    momentum_name = _MOMENTUM_OF[name]
    shared = set(inspect.signature(_lookup(momentum_name)).parameters) - {"base_momentum", "max_momentum"}
    return lr, {"name": momentum_name, **{k: v for k, v in lr.items() if k in shared}, **torch_keys}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, _base.LRSchedule):
        return to_config(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def to_config(schedule: Any) -> dict[str, Any]:
    """The dict :func:`from_config` rebuilds ``schedule`` from (callables are kept as they are).

    Examples:
        >>> import lrjax
        >>> lrjax.to_config(lrjax.step_lr(0.1, step_size=30))
        {'name': 'step_lr', 'base_lr': 0.1, 'step_size': 30, 'gamma': 0.1}
    """
    if isinstance(schedule, _base.LRSchedule):
        return {"name": schedule._fn_name, **{k: _jsonable(v) for k, v in schedule.kwargs.items()}}
    config = getattr(schedule, "config", None)
    if isinstance(config, Mapping):
        return {k: _jsonable(v) for k, v in config.items()}
    raise ValueError(f"to_config takes an lrjax schedule, got {schedule!r}")
