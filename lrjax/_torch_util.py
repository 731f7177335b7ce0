"""What the torch converters (``_from_torch_<name>`` in each schedule's module) share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any


def import_torch() -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "lrjax.from_torch needs PyTorch to read the scheduler; install it with `pip install lrjax[torch]`."
        ) from e
    return torch


def floats(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values]  # float() also reads 0-d tensors (tensor lrs)


def groups(values: Iterable[Any]) -> float | list[float]:
    """One value per parameter group: a scalar for a single group (so the schedule returns a scalar)."""
    out = floats(values)
    return out[0] if len(out) == 1 else out


def one_or_list(fns: Sequence[Callable]) -> Callable | list[Callable]:
    """torch stores ``[fn] * groups`` for a single lr_lambda: give lrjax the single function back."""
    fns = list(fns)
    return fns[0] if all(f is fns[0] for f in fns) else fns


def iters(n: int) -> int:
    """A negative ``total_iters`` is never reached by ``last_epoch``: torch behaves as with 0."""
    return max(int(n), 0)
