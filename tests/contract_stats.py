"""Counts of the generated contract cases and the worst errors seen, for a run's summary.

Tests call ``count(category, n)`` for the cases they check and ``worst(category, ratio, detail)``
with each comparison's worst error as a fraction of the allowance. ``summary()`` is the JSON-able
table; the contract modules print it at their end (visible with ``pytest -s``) and, when
``LRJAX_CONTRACT_SUMMARY=path`` is set, write it there as JSON.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter

_COUNTS: Counter = Counter()
_WORST: dict[str, tuple[float, str]] = {}
_FAILED: Counter = Counter()


def count(category: str, n: int = 1) -> None:
    _COUNTS[category] += n


def failed(category: str, n: int = 1) -> None:
    _FAILED[category] += n


def worst(category: str, ratio: float, detail: str) -> None:
    if math.isnan(ratio):
        ratio = float("inf")
    have = _WORST.get(category)
    if have is None or ratio > have[0]:
        _WORST[category] = (float(ratio), detail)


def error_ratio(ours, theirs, bits: int) -> float:
    """The worst |ours - theirs| as a fraction of the contract's allowance (inf where ours is not finite)."""
    import numpy as np
    from torchref import tolerance

    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    rtol, atol = tolerance(bits)
    tiny = np.finfo(np.float32 if bits == 32 else np.float64).tiny
    allowed = rtol * np.abs(theirs) + max(atol * float(np.max(np.abs(theirs), initial=0.0)), tiny)
    with np.errstate(invalid="ignore"):
        r = np.where(np.isfinite(ours), np.abs(ours - theirs) / allowed, np.inf)
    return float(np.max(r, initial=0.0))


def summary() -> dict:
    cats = sorted(set(_COUNTS) | set(_WORST) | set(_FAILED))
    return {
        c: {
            "cases": _COUNTS.get(c, 0),
            "failed": _FAILED.get(c, 0),
            "worst_error_over_allowance": _WORST[c][0] if c in _WORST else None,
            "worst_at": _WORST[c][1] if c in _WORST else None,
        }
        for c in cats
    }


def report(module: str) -> None:
    table = summary()
    if not table:
        return
    lines = [f"\n[lrjax contract summary after {module}] category: cases, failed, worst error/allowance"]
    for c, row in table.items():
        w = row["worst_error_over_allowance"]
        lines.append(f"  {c}: {row['cases']}, {row['failed']}, {'-' if w is None else f'{w:.3g}'}")
    print("\n".join(lines))
    path = os.environ.get("LRJAX_CONTRACT_SUMMARY")
    if path:
        with open(path, "w") as f:
            json.dump(table, f, indent=1, sort_keys=True)
