"""Reference cases for ``ReduceLROnPlateau``: configurations and metric sequences run by torch 2.13.

A case is a JSON-able dict::

    {"id": "§9/nan", "config": {...reduce_lr_on_plateau / torch keyword arguments...},
     "base_lr": 1.0 (or one value per parameter group), "metrics": [1.0, "nan", "inf", ...]}

Non-finite metrics are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` (JSON has no
such numbers); :func:`dec` turns them back into floats. ``run_torch(case)`` returns torch's trace
for the metrics as they are (``"f64"``) and, when its decisions differ (lr, counters or which metric is best),
for the metrics rounded to float32 first (``"f32"``: what lrjax's float32 state sees, and what torch gets from
``float(loss)`` of a float32 tensor); otherwise torch's float32-metric trace is the ``"f64"``
one with ``best`` rounded to float32. A trace holds, after construction (index 0) and after every ``step(metric)``,
the lr of each parameter group (``"lr"``: one list per group) and the scheduler's ``best``,
``num_bad_epochs`` and ``cooldown_counter``.

``python tests/generate_reference.py plateau`` writes ``tests/data/plateau.json``.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

CONFIG_KEYS = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps")
NAN, INF = math.nan, math.inf


# ---------------------------------------------------------------------------------------------
# Encoding and torch
# ---------------------------------------------------------------------------------------------


def enc(x: float) -> float | str:
    """A float for JSON: non-finite values become ``"nan"``, ``"inf"``, ``"-inf"``."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def dec(x: float | str) -> float:
    return float(x)  # float("nan"), float("inf"), float("-inf") parse the strings


def to_f32(metrics: list[float]) -> list[float]:
    """The metrics as float32 numbers (as Python floats); beyond float32's range they become +-inf."""
    with np.errstate(over="ignore"):
        return [float(np.float32(m)) for m in metrics]


def torch_trace(config: dict, base_lr: Any, metrics: list[float], attempts: list | None = None) -> dict:
    """torch's ReduceLROnPlateau on ``metrics``: lr per group, best and counters, initial state first.

    ``optimizer.step()`` is called before every ``scheduler.step(metric)``. If ``attempts`` is a
    list, the lrs of the groups at every reduction torch attempts (applied or not) are appended.
    """
    import torch

    bases = base_lr if isinstance(base_lr, list) else [base_lr]
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in bases]
    opt = torch.optim.SGD([{"params": [p], "lr": float(b)} for p, b in zip(params, bases)])
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **config)
    if attempts is not None:
        reduce_lr = sched._reduce_lr

        def spy(epoch):
            attempts.append([g["lr"] for g in opt.param_groups])
            reduce_lr(epoch)

        sched._reduce_lr = spy

    def snapshot():
        return [g["lr"] for g in opt.param_groups], sched.best, sched.num_bad_epochs, sched.cooldown_counter

    rows = [snapshot()]
    for m in metrics:
        opt.step()
        sched.step(m)
        rows.append(snapshot())
    lrs, best, bad, cool = zip(*rows)
    return {
        "lr": [list(g) for g in zip(*lrs)],
        "best": [float(b) for b in best],
        "num_bad_epochs": list(bad),
        "cooldown_counter": list(cool),
    }


def _encoded(trace: dict) -> dict:
    return {**trace, "best": [enc(b) for b in trace["best"]]}


def run_torch(case: dict) -> dict:
    metrics = [dec(m) for m in case["metrics"]]
    f64 = torch_trace(case["config"], case["base_lr"], metrics)
    f32 = torch_trace(case["config"], case["base_lr"], to_f32(metrics))
    out = {"f64": _encoded(f64)}
    same = all(f32[k] == f64[k] for k in ("lr", "num_bad_epochs", "cooldown_counter"))
    if not (same and to_f32(f64["best"]) == f32["best"]):
        out["f32"] = _encoded(f32)
    return out


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


def _case(cid: str, metrics: list[float], base_lr: Any = 1.0, **config: Any) -> dict:
    unknown = set(config) - set(CONFIG_KEYS)
    if unknown:
        raise KeyError(unknown)
    return {"id": cid, "config": config, "base_lr": base_lr, "metrics": [enc(m) for m in metrics]}


def quirk_cases() -> list[dict]:
    """The examples of docs/torch_quirks.md §9, and torch's docstring."""
    return [
        _case("§9/nan-always-bad", [NAN] * 5, patience=1, factor=0.5),
        _case("§9/nan-after-best", [1.0, NAN, NAN, 0.5, NAN, NAN, NAN], patience=1, factor=0.5),
        _case("§9/+inf-bad-in-min", [INF, INF, INF, 1.0], patience=1, factor=0.5),
        _case("§9/-inf-best-forever", [1.0, -INF, 0.5, -1e9, -INF], patience=0, factor=0.5),
        _case("§9/-inf-best-long", [2.0, -INF] + [-1e300, 0.0, -INF] * 4, patience=1, factor=0.5),
        _case("§9/max-mode-+inf-best", [1.0, INF, 2.0, 1e300, INF, NAN], mode="max", patience=0, factor=0.5),
        _case("§9/max-mode--inf-bad", [-INF, -INF, 1.0], mode="max", patience=1, factor=0.5),
        _case("§9/negative-best-lenient", [-1.0, -0.99995, -0.9999], patience=0),
        _case("§9/negative-best-lenient-long", [-1.0 + 4e-5 * k for k in range(20)], patience=0, factor=0.5),
        _case("§9/best-zero-rel", [0.0, 0.0, 1e-9, -1e-12, -1e-12, 0.0, -1.0], patience=0, factor=0.5),
        _case("§9/eps-floor", [1.0] * 10, base_lr=1e-7, patience=0, factor=0.5),
        _case("§9/base-below-min-lr", [1.0] * 5, base_lr=0.01, patience=0, min_lr=0.1),
        _case("§9/factor-0", [1.0] * 5, patience=0, factor=0.0),
        _case("§9/factor-0-min-lr", [1.0] * 5, patience=0, factor=0.0, min_lr=0.01),
        # verbatim from scripts/verify_torch_quirks.py (Q9)
        _case("§9/verify-nan", [NAN] * 5, patience=1, factor=0.5),
        _case("§9/verify-inf", [INF, INF, INF, 1.0], patience=1, factor=0.5),
        _case("§9/verify--inf", [1.0, -INF, 0.5, -1e9, -INF], patience=0, factor=0.5),
        _case("§9/verify-negative-best", [-1.0, -0.99995, -0.9999], patience=0, factor=0.5),
        _case("§9/verify-best-zero", [0.0, 0.0, -1e-12], patience=0, factor=0.5),
        _case("§9/verify-eps", [1.0] * 6, base_lr=1e-7, patience=0, factor=0.5),
        _case("§9/verify-below-min-lr", [1.0, 2.0, 2.0], base_lr=0.1, patience=0, factor=0.5, min_lr=0.2),
        _case("§9/verify-cooldown", [1.0] + [2.0] * 8, patience=1, cooldown=2, factor=0.5),
        _case("§9/verify-factor-0", [1.0, 2.0, 2.0], patience=0, factor=0.0),
        _case("docs/patience-0", [1.0, 2.0, 1.5, 0.9, 0.95, 0.9], patience=0),
        _case("docs/defaults", [1.0] + [1.0 - 1e-5 * k for k in range(30)]),
    ]


def hand_cases() -> list[dict]:
    out = [
        # cooldown
        _case("cooldown/constant", [1.0] * 14, patience=1, cooldown=2, factor=0.5),
        _case(
            "cooldown/improve-in-cooldown",
            [1.0, 1.0, 1.0, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4],
            patience=1,
            cooldown=3,
            factor=0.5,
        ),
        _case("cooldown/patience-0", [1.0] * 10, patience=0, cooldown=1, factor=0.5),
        _case("cooldown/long", [5.0, 4.0] + [4.0] * 30, patience=2, cooldown=5, factor=0.5),
        # modes
        _case("max/rel", [0.5, 0.6, 0.65, 0.65, 0.65001, 0.6, 0.7, 0.7, 0.7, 0.7], mode="max", patience=1),
        _case(
            "max/abs",
            [0.5, 0.55, 0.56, 0.58, 0.7, 0.7, 0.75, 0.79],
            mode="max",
            threshold_mode="abs",
            threshold=0.05,
            patience=0,
            factor=0.5,
        ),
        _case("max/negative-rel-strict", [-2.0, -1.9999, -1.999, -1.5, -1.49], mode="max", patience=0, factor=0.5),
        _case(
            "min/abs",
            [1.0, 0.95, 0.89, 0.8, 0.75, 0.71, 0.7, 0.6],
            threshold_mode="abs",
            threshold=0.1,
            patience=0,
            factor=0.5,
        ),
        _case(
            "min/abs-negative",
            [-1.0, -1.05, -1.2, -1.25, -1.31],
            threshold_mode="abs",
            threshold=0.1,
            patience=0,
            factor=0.5,
        ),
        _case("min/rel-negative", [-1.0, -1.00005, -1.0002, -1.0003, -2.0], patience=0, factor=0.5),
        _case("min/integers", [10, 9, 9, 9, 8, 8, 8, 8], patience=1, factor=0.5),
        # thresholds
        _case("threshold/0", [1.0, 1.0, 0.9999999, 0.9999999, 0.5], patience=0, threshold=0.0, factor=0.5),
        _case("threshold/1-rel-min", [1.0, 0.0, -1.0, -2.0, -2.0], patience=0, threshold=1.0, factor=0.5),
        _case("threshold/2-rel-min", [1.0, -1.0, 5.0, -5.0], patience=0, threshold=2.0, factor=0.5),
        _case("threshold/1.5-rel-max", [1.0, 2.0, 3.0, 10.0, -1.0], mode="max", patience=0, threshold=1.5, factor=0.5),
        _case("threshold/0.5-rel-exact", [2.0, 1.0, 0.5, 0.2499999, 0.25], patience=0, threshold=0.5, factor=0.5),
        _case(
            "threshold/abs-exact",
            [1.0, 0.75, 0.5, 0.25, 0.0],
            threshold_mode="abs",
            threshold=0.25,
            patience=0,
            factor=0.5,
        ),
        # eps and min_lr
        _case("eps/0-long", [1.0] * 60, patience=0, factor=0.5, eps=0.0),
        _case("eps/0-underflow", [1.0] * 50, patience=0, factor=0.1, eps=0.0),
        _case("eps/large", [1.0] * 8, base_lr=0.1, patience=0, factor=0.5, eps=0.02),
        _case("eps/equal-to-step", [1.0] * 4, base_lr=1.0, patience=0, factor=0.5, eps=0.5),
        _case("min_lr/reached", [1.0] * 10, base_lr=0.1, patience=0, factor=0.3, min_lr=0.005),
        _case("min_lr/reached-eps0", [1.0] * 10, base_lr=1.0, patience=0, factor=0.1, min_lr=1e-3, eps=0.0),
        # parameter groups
        _case("groups/scalar-min-lr", [1.0] * 12, base_lr=[0.1, 0.01, 1.0], patience=0, factor=0.5, min_lr=0.005),
        _case("groups/min-lr-list", [1.0] * 12, base_lr=[0.1, 0.2], patience=1, factor=0.5, min_lr=[0.05, 0.0]),
        _case("groups/eps-per-group", [1.0] * 12, base_lr=[1e-7, 1.0], patience=0, factor=0.5),
        _case("groups/one-group-list", [1.0] * 6, base_lr=[1.0], patience=0, factor=0.5, min_lr=[0.2]),
        _case("groups/below-min", [1.0] * 5, base_lr=[0.001, 0.5], patience=0, min_lr=[0.01, 0.01]),
        # magnitudes
        _case("magnitude/huge", [1e30, 9.9e29, 9.99e29, 9.999e29, 1e29], patience=0, factor=0.5),
        _case("magnitude/float32-max", [3.4e38, 3.39e38, 3.4e38, 1e38], mode="max", patience=0, factor=0.5),
        _case("magnitude/float64-huge", [1e300, 1e299, 1e301, 1e-300], patience=0, factor=0.5),
        _case("magnitude/tiny", [1e-30, 9.99e-31, 9.9e-31, 1e-31], patience=0, factor=0.5),
        _case(
            "magnitude/tiny-abs", [1e-30, 0.0, -1e-30], threshold_mode="abs", threshold=1e-31, patience=0, factor=0.5
        ),
        # float32 near torch's float64 boundary
        _case("f32/1-then-0.9999", [1.0, 0.9999, 0.99980001, 0.9997], patience=0, factor=0.5),
        _case("f32/10000-then-9999", [10000.0, 9999.0, 9998.0001, 9997.0], patience=0, factor=0.5),
        _case("f32/2-then-1.9998", [2.0, 1.9998, 1.99960002], patience=0, factor=0.5),
        _case("f32/abs-1-then-0.9999", [1.0, 0.9999, 0.9998, 0.9997], threshold_mode="abs", patience=0, factor=0.5),
        _case("f32/max-1-then-1.0001", [1.0, 1.0001, 1.00020001, 1.0003], mode="max", patience=0, factor=0.5),
        _case("f32/max-abs", [1.0, 1.0001, 1.0002, 1.0003], mode="max", threshold_mode="abs", patience=0, factor=0.5),
        _case("f32/0.1-steps", [0.3, 0.29997, 0.2999400003, 0.2], patience=0, factor=0.5),
    ]
    # A long, noisy training curve: improvements, plateaus and reductions.
    rng = random.Random(7)
    curve, v = [], 2.0
    for k in range(200):
        v *= 1.0 - (0.02 if (k // 25) % 2 == 0 else 0.0)
        curve.append(v * (1 + rng.gauss(0, 0.003)))
    out.append(_case("long/noisy-curve", curve, base_lr=0.1, patience=4, factor=0.5, cooldown=2, min_lr=1e-4))
    out.append(
        _case(
            "long/noisy-curve-groups",
            curve,
            base_lr=[0.1, 0.003],
            patience=3,
            factor=0.3,
            min_lr=[1e-3, 1e-5],
            threshold=1e-3,
        )
    )
    out.append(
        _case(
            "long/accuracy-max",
            [1.0 - c / 2.0 for c in curve],
            mode="max",
            patience=5,
            factor=0.2,
            threshold_mode="abs",
            threshold=1e-3,
        )
    )
    return out


# ---------------------------------------------------------------------------------------------
# Seeded random cases
# ---------------------------------------------------------------------------------------------

_LRS = [1.0, 0.1, 0.05, 1e-3, 3e-4, 1e-6, 2.5e-7]


def random_config(rng: random.Random) -> tuple[dict, Any]:
    """A configuration (all keys) and a base_lr (a scalar or 2-3 groups)."""
    mode = rng.choice(["min", "min", "max"])
    threshold_mode = rng.choice(["rel", "rel", "abs"])
    if threshold_mode == "rel":
        threshold = rng.choice([1e-4, 1e-4, 0.0, 1e-3, 0.01, 0.1, 0.5, rng.uniform(0, 0.2)])
    else:
        threshold = rng.choice([1e-4, 0.0, 0.01, 0.1, 1.0, rng.uniform(0, 0.5)])
    factor = rng.choice([0.1, 0.1, 0.5, 0.9, 0.0, 0.2, 0.75, 0.99, rng.uniform(0.0, 0.99)])
    groups = rng.choice([0, 0, 0, 2, 3])
    base_lr: Any = rng.choice(_LRS) if groups == 0 else [rng.choice(_LRS) for _ in range(groups)]
    min_choice = rng.random()
    if min_choice < 0.5:
        min_lr: Any = 0.0
    elif min_choice < 0.8 or groups == 0:
        min_lr = rng.choice([1e-4, 1e-3, 0.01, 1e-6, 0.2])
    else:
        min_lr = [rng.choice([0.0, 1e-4, 1e-3, 0.02]) for _ in range(groups)]
    config = {
        "mode": mode,
        "factor": factor,
        "patience": rng.choice([0, 0, 1, 1, 2, 3, 5, 10]),
        "threshold": threshold,
        "threshold_mode": threshold_mode,
        "cooldown": rng.choice([0, 0, 0, 1, 2, 4]),
        "min_lr": min_lr,
        "eps": rng.choice([1e-8, 1e-8, 1e-8, 0.0, 1e-4, 1e-3]),
    }
    return config, base_lr


def _boundary(best: float, config: dict) -> float:
    """torch's threshold for improving on ``best`` (computed as torch does)."""
    thr = config["threshold"]
    if config["threshold_mode"] == "rel":
        return best * (1.0 - thr) if config["mode"] == "min" else best * (thr + 1.0)
    return best - thr if config["mode"] == "min" else best + thr


def random_metrics(rng: random.Random, config: dict, n: int) -> list[float]:
    """A metric sequence mixing random walks, plateaus, values at and near torch's threshold,
    repeated values, integers, negative values and (sometimes) NaN / +-inf."""
    kind = rng.choice(["walk", "plateau", "boundary", "boundary", "ints", "special", "mixed"])
    sign = 1.0 if config["mode"] == "min" else -1.0  # +1: smaller is better
    scale = rng.choice([1.0, 1.0, 0.01, 100.0, 1e4])
    offset = rng.choice([0.0, 0.0, -2.0 * scale])  # negative metrics
    out: list[float] = []
    v, best = scale + offset, math.inf * sign
    for _ in range(n):
        r = rng.random()
        k = kind if kind != "mixed" else rng.choice(["walk", "plateau", "boundary", "ints", "special"])
        if k == "walk":
            v = v - sign * scale * rng.uniform(-0.02, 0.05)
            m = v
        elif k == "plateau":
            m = v * (1 + rng.choice([0.0, 0.0, 1e-6, -1e-6, 1e-5, -1e-5])) if r < 0.8 else v - sign * 0.1 * scale
        elif k == "boundary" and math.isfinite(best):
            edge = _boundary(best, config)
            rel = rng.choice([0.0, 0.0, 1e-15, -1e-15, 1e-12, -1e-12, 1e-9, -1e-9, 1e-7, -1e-7, 1e-4, -1e-4])
            m = edge * (1 + rel) if r < 0.85 else best
        elif k == "ints":
            m = float(rng.randint(-3, 6)) if r < 0.5 else float(int(v))
        elif k == "special" and r < 0.25:
            m = rng.choice([NAN, NAN, INF, -INF])
        else:
            m = v + scale * rng.uniform(-0.05, 0.05)
        out.append(m)
        edge = _boundary(best, config)
        if (m < edge) if config["mode"] == "min" else (m > edge):
            best = m
    return out


def eps_tie(config: dict, attempts: list) -> bool:
    """Whether one of torch's reduction ``attempts`` (the groups' lrs) changes the lr by ``eps`` give or
    take 2**-21 of it: a decimal tie (``0.1 * (1 - 0.99) == 1e-3``) that torch's float64 rounding
    decides, and that lrjax's float32 lr cannot (it skips them; see test_float32_eps_ties)."""
    groups = len(attempts[0]) if attempts else 0
    mins = config.get("min_lr", 0.0)
    mins = mins if isinstance(mins, list) else [mins] * groups
    eps, factor = config.get("eps", 1e-8), config.get("factor", 0.1)
    return any(
        abs((old - max(old * factor, m)) - eps) <= 2.0**-21 * old for lrs in attempts for old, m in zip(lrs, mins)
    )


def _no_eps_tie(config: dict, base_lr: Any, metrics: list[float]) -> bool:
    for ms in (metrics, to_f32(metrics)):
        attempts: list = []
        torch_trace(config, base_lr, ms, attempts)
        if eps_tie(config, attempts):
            return False
    return True


def random_cases(num_configs: int = 24, per_config: int = 10, seed: int = 2024) -> list[dict]:
    """Several metric sequences per configuration (the tests run each configuration's cases together).

    Cases where torch meets an eps tie (see :func:`eps_tie`) get another base lr: the float32
    difference there is documented and tested on its own.
    """
    rng = random.Random(seed)
    out = []
    for i in range(num_configs):
        config, base_lr = random_config(rng)
        for j in range(per_config):
            if j and rng.random() < 0.5:  # another base lr, same number of groups
                base_lr = [rng.choice(_LRS) for _ in base_lr] if isinstance(base_lr, list) else rng.choice(_LRS)
            n = 200 if rng.random() < 0.025 else rng.randint(3, 40)
            metrics = random_metrics(rng, config, n)
            while not _no_eps_tie(config, base_lr, metrics):
                base_lr = (
                    [rng.uniform(1e-4, 1.0) for _ in base_lr] if isinstance(base_lr, list) else rng.uniform(1e-4, 1.0)
                )
            out.append(_case(f"random/{i:03d}-{j}", metrics, base_lr=base_lr, **config))
    return out


def cases() -> list[dict]:
    return quirk_cases() + hand_cases() + random_cases()
