"""Building schedules from plain dicts / JSON, and back: ``from_config``, ``to_config``, ``split_momentum``.

Configs are data: they never carry code. A function (``lr_lambda``, ``scale_fn``) can only be
passed as a Python callable in a dict built by Python code.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from lrjax import registry
from lrjax._schedule import LRSchedule

_FUNCTIONS = ("lr_lambda", "scale_fn")
# Deeper configs are refused (a composite of composites nests a few levels at most).
_MAX_DEPTH = 32


def available() -> list[str]:
    """The schedule names a config may use (torch's class names are accepted too)."""
    return registry.names()


def _load(config: Mapping[str, Any] | str) -> Any:
    if isinstance(config, (str, bytes)):
        try:
            return json.loads(config)
        except json.JSONDecodeError as e:
            raise ValueError(f"schedule config is not valid JSON: {e}") from e
        except RecursionError as e:
            raise ValueError(f"schedule config is nested too deeply (more than {_MAX_DEPTH} levels)") from e
    return config


def from_config(config: Mapping[str, Any] | str, **defaults: Any) -> Any:
    """Builds a schedule (or a plateau) from a plain dict or a JSON string.

    The dict holds ``"name"`` (lrjax's function name, e.g. ``"one_cycle_lr"``, or torch's class
    name, e.g. ``"OneCycleLR"``) and the function's keyword arguments, with torch's names. The
    members of ``chained_scheduler``/``sequential_lr`` (``"schedules"``) and the schedule of
    ``per_epoch`` are configs themselves. ``defaults`` fill keywords the config leaves out and the
    function takes (e.g. ``base_lr=0.1``), in nested configs too.

    Functions (``lr_lambda``, ``scale_fn``) cannot be written in JSON: pass them as Python
    callables in a dict. A string in their place is refused, never evaluated.

    Raises:
        ValueError: for an unknown name or keyword (listing the valid ones), a missing required
            keyword, a config nested more than 32 levels deep, or any error the schedule itself
            raises for its arguments.

    Examples:
        >>> import lrjax
        >>> schedule = lrjax.from_config({"name": "one_cycle_lr", "max_lr": 0.1, "total_steps": 1000})
        >>> round(float(schedule(300)), 6)
        0.1
        >>> lrjax.from_config('{"name": "StepLR", "step_size": 2}', base_lr=1e-3)
        lrjax.step_lr(base_lr=0.001, step_size=2, gamma=0.1)
    """
    return _build(_load(config), defaults, depth=0)


def _build(config: Any, defaults: Mapping[str, Any], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise ValueError(f"schedule config is nested too deeply (more than {_MAX_DEPTH} levels)")
    if not isinstance(config, Mapping):
        raise ValueError(f"a schedule config must be a dict with a 'name', got {_short(config)}")
    if "name" not in config:
        raise ValueError(f"a schedule config needs a 'name' (one of {', '.join(available())}), got {_short(config)}")
    entry = registry.lookup(config["name"])
    fn = entry.factory
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in config.items() if k != "name"}
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise ValueError(
            f"unknown keyword{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for {entry.name}. "
            f"Valid keywords: {', '.join(params)}."
        )
    for key in _FUNCTIONS:
        if key in kwargs and not _is_function(kwargs[key]):
            raise ValueError(
                f"{key} of {entry.name} must be a Python callable; a config cannot carry a function (text is never "
                "evaluated). Build the schedule in Python code, or pass the function in a dict made in Python."
            )
    if entry.members and entry.members in kwargs:
        members = kwargs[entry.members]
        if entry.composite:
            if not isinstance(members, (list, tuple)):
                raise ValueError(f"{entry.members} of {entry.name} must be a list of configs, got {_short(members)}")
            kwargs[entry.members] = [_member(m, defaults, depth) for m in members]
        else:
            kwargs[entry.members] = _member(members, defaults, depth)
    for key, value in defaults.items():
        if key in params and key not in kwargs:
            kwargs[key] = value
    missing = [
        k
        for k, p in params.items()
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and k not in kwargs
    ]
    if missing:
        raise ValueError(f"{entry.name} needs {', '.join(map(repr, missing))}; got {sorted(kwargs)}.")
    try:
        return fn(**kwargs)
    except RecursionError as e:
        raise ValueError(f"schedule config is nested too deeply (more than {_MAX_DEPTH} levels)") from e


def _is_function(value: Any) -> bool:
    """A callable, a list of callables (one per parameter group), or None."""
    if value is None or callable(value):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(callable(v) for v in value)


def _member(m: Any, defaults: Mapping[str, Any], depth: int) -> Any:
    return m if isinstance(m, LRSchedule) else _build(m, defaults, depth + 1)


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


_TORCH_MOMENTUM_KEYS = ("cycle_momentum", "base_momentum", "max_momentum")


def split_momentum(config: Mapping[str, Any] | str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Splits torch's CyclicLR/OneCycleLR keywords into an lr config and a momentum config.

    torch's ``CyclicLR`` and ``OneCycleLR`` take ``cycle_momentum`` (default True),
    ``base_momentum`` and ``max_momentum`` and write the momentum into the optimizer; lrjax has a
    separate momentum schedule (``cyclic_momentum`` / ``one_cycle_momentum``, the registry's
    ``momentum`` of the entry) over the same phases. This returns ``(lr_config, momentum_config)``,
    the second None when the schedule does not cycle the momentum (``cycle_momentum=False``, or
    another schedule). Both go to :func:`from_config`.

    Raises:
        ValueError: for momentum keywords on a schedule that does not cycle the momentum, or a
            ``cycle_momentum`` that is not a bool.

    Examples:
        >>> import lrjax
        >>> lr, momentum = lrjax.split_momentum({"name": "OneCycleLR", "max_lr": 0.1, "total_steps": 100,
        ...                                      "base_momentum": 0.8})
        >>> lr
        {'name': 'OneCycleLR', 'max_lr': 0.1, 'total_steps': 100}
        >>> momentum
        {'name': 'one_cycle_momentum', 'total_steps': 100, 'base_momentum': 0.8}
    """
    config = _load(config)
    if not isinstance(config, Mapping):
        raise ValueError(f"a schedule config must be a dict with a 'name', got {_short(config)}")
    lr = dict(config)
    entry = registry.lookup(lr.get("name"))
    if entry.role == "momentum":  # cyclic_momentum's own base_momentum / max_momentum are its arguments
        return lr, None
    torch_keys = {k: lr.pop(k) for k in _TORCH_MOMENTUM_KEYS if k in lr}
    if entry.momentum is None:
        if torch_keys:
            raise ValueError(
                f"{', '.join(torch_keys)}: only CyclicLR and OneCycleLR cycle the momentum, not {entry.name}."
            )
        return lr, None
    cycle = torch_keys.pop("cycle_momentum", True)
    if not isinstance(cycle, (bool, np.bool_)):
        raise ValueError(f"cycle_momentum must be True or False, got {cycle!r}")
    if not cycle:
        return lr, None
    partner = registry.lookup(entry.momentum)
    shared = set(partner.keywords) - {"base_momentum", "max_momentum"}
    return lr, {"name": partner.name, **{k: v for k, v in lr.items() if k in shared}, **torch_keys}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, LRSchedule):
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
    if isinstance(schedule, LRSchedule):
        return {"name": schedule.name, **{k: _jsonable(v) for k, v in schedule.kwargs.items()}}
    config = getattr(schedule, "config", None)
    if isinstance(config, Mapping):
        return {k: _jsonable(v) for k, v in config.items()}
    raise ValueError(f"to_config takes an lrjax schedule, got {schedule!r}")
