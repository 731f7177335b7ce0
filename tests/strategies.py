"""Random lrjax configurations (tests/torchtwin.py's format) for every schedule, and a pool of real user functions.

``draw(name, rnd)`` draws one valid configuration of schedule ``name`` from a ``random.Random``;
``configs(name)`` is the same as a hypothesis strategy. ``DRAWS`` has one entry per schedule
(registry names, plus ``swalr``, which SEMANTICS.md promises); ``test_contract.py`` fails when a
registry entry has none. ``member(rnd, depth)`` draws members of composites, nested to any depth.

Hypothesis runs derandomized, without a database, so CI is reproducible; ``LRJAX_FUZZ_SCALE=10``
multiplies every ``max_examples`` for a longer local search.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from torchtwin import Fn

SCALE = max(1, int(os.environ.get("LRJAX_FUZZ_SCALE", "1")))


def fuzz_settings(max_examples: int, shrink: bool = False) -> settings:
    """Derandomized, database-free settings; ``max_examples`` times LRJAX_FUZZ_SCALE."""
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(
        max_examples=max_examples * SCALE,
        deadline=None,
        derandomize=True,
        database=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


# Structural integers torch runs at any size (SEMANTICS.md "Structural integers").
HUGE = (2**31 - 1, 2**31, 2**31 + 5, 2**32 + 3, 2**40 + 1)


# ---------------------------------------------------------------------------------------------
# User functions: real patterns
# ---------------------------------------------------------------------------------------------


def _jnp():
    import jax.numpy as jnp

    return jnp


def lambda_pool(rnd: random.Random, *, kind: str | None = None, bounded: bool = False) -> Fn:
    """A user lr_lambda of a real pattern, with random parameters.

    ``kind="jax"``: functions JAX traces to torch's values (SEMANTICS.md "User functions");
    ``kind="python"``: functions JAX cannot trace (Python ``min``/``if``/``math``). ``bounded``: only
    functions with values in [0, 1] (members of composites).
    """
    w = rnd.choice([1, 3, 10, 100, 250])
    N = rnd.choice([w + 1, 50, 200, 1000, 2000])
    N = max(N, w + 1)
    k = rnd.choice([1, 7, 30, 200])
    g = rnd.choice([0.5, 0.9, 0.95, 0.999, 0.99999])
    p = rnd.choice([0.5, 0.9, 1.0, 2.0])
    jnp = _jnp()

    def hf_linear(e, w=w, N=N):
        if e < w:
            return float(e) / float(max(1, w))
        return max(0.0, float(N - e) / float(max(1, N - w)))

    def hf_cosine(e, w=w, N=N):
        if e < w:
            return float(e) / float(max(1, w))
        progress = float(e - w) / float(max(1, N - w))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))

    def hf_linear_jnp(e, w=w, N=N):
        return jnp.where(e < w, e / w, jnp.maximum(0.0, (N - e) / (N - w)))

    def hf_cosine_jnp(e, w=w, N=N):
        progress = jnp.clip((e - w) / (N - w), 0.0, 1.0)
        return jnp.where(e < w, e / w, 0.5 * (1.0 + jnp.cos(jnp.pi * progress)))

    python = [
        Fn(f"min(e / {w}, 1.0)", lambda e: min(e / w, 1.0), kind="python", marks=(w,)),
        Fn(f"(1 - min(e, {N}) / {N}) ** {p}", lambda e: (1 - min(e, N) / N) ** p, kind="python", marks=(N,)),
        Fn(f"hf_linear(warmup={w}, total={N})", hf_linear, kind="python", marks=(w, N)),
        Fn(f"hf_cosine(warmup={w}, total={N})", hf_cosine, kind="python", marks=(w, N)),
        Fn(f"1.0 if e < {k} else 0.1", lambda e: 1.0 if e < k else 0.1, kind="python", marks=(k,)),
        Fn(f"math.exp(-e / {N})", lambda e: math.exp(-e / N), kind="python"),
    ]
    traced = [
        Fn(f"jnp.minimum(e / {w}, 1.0)", lambda e: jnp.minimum(e / w, 1.0), uses_jax=True, marks=(w,)),
        Fn(f"{g} ** e", lambda e: g**e),
        Fn(
            f"((N - jnp.minimum(e, N)) / N) ** {p} [N={N}]",
            lambda e: ((N - jnp.minimum(e, N)) / N) ** p,
            uses_jax=True,
            marks=(N,),
        ),
        Fn(f"2 ** -(e // {k})", lambda e: 2 ** -(e // k), marks=(k, 2 * k)),
        Fn(f"0.5 ** (e // {k})", lambda e: 0.5 ** (e // k), marks=(k, 2 * k)),
        Fn("1 / (1 + e * e * 1e-10)", lambda e: 1 / (1 + e * e * 1e-10)),
        Fn(f"hf_linear_jnp(warmup={w}, total={N})", hf_linear_jnp, uses_jax=True, marks=(w, N)),
        Fn(f"hf_cosine_jnp(warmup={w}, total={N})", hf_cosine_jnp, uses_jax=True, marks=(w, N)),
        Fn(
            f"1 / jnp.sqrt(jnp.maximum(e, {w}) / {w})",
            lambda e: 1 / jnp.sqrt(jnp.maximum(e, w) / w),
            uses_jax=True,
            marks=(w,),
        ),
    ]
    if not bounded:
        traced += [
            Fn("e / 10", lambda e: e / 10),
            Fn("e // 30", lambda e: e // 30, marks=(30,)),
        ]
    pool = python if kind == "python" else traced if kind == "jax" else python + traced
    return rnd.choice(pool)


def constant_lambda(rnd: random.Random) -> Fn:
    c = rnd.choice([0.5, 0.9, 0.95, 0.999, 1.0])
    return Fn(f"lambda e: {c}", lambda e: c, constant=c)


def multiplicative_lambda(rnd: random.Random) -> Fn:
    """A step-dependent MultiplicativeLR factor (it has no closed form: lrjax tabulates it)."""
    k = rnd.choice([2, 3, 10])
    jnp = _jnp()
    return rnd.choice(
        [
            Fn(f"0.9 if e % {k} else 1.05", lambda e: 0.9 if e % k else 1.05, kind="python", marks=(k,)),
            Fn(
                f"jnp.where(e % {k} == 0, 0.5, 1.0)",
                lambda e: jnp.where(e % k == 0, 0.5, 1.0),
                uses_jax=True,
                marks=(k,),
            ),
            Fn("1 - 1 / (e + 10)", lambda e: 1 - 1 / (e + 10)),
        ]
    )


def scale_fn_pool(rnd: random.Random) -> Fn:
    jnp = _jnp()
    return rnd.choice(
        [
            Fn("1 / (2.0 ** (x - 1))", lambda x: 1 / (2.0 ** (x - 1))),
            Fn("0.99 ** x", lambda x: 0.99**x),
            Fn("jnp.exp(-x / 50)", lambda x: jnp.exp(-x / 50), uses_jax=True),
        ]
    )


# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------


def _lr(rnd: random.Random) -> float:
    return float(f"{10 ** rnd.uniform(-4, 0):.6g}")


def _base(rnd: random.Random, n_groups: int | None):
    if n_groups is None:
        return _lr(rnd)
    return [_lr(rnd) for _ in range(n_groups)]


def _unit(rnd: random.Random, lo=0.0, hi=1.0) -> float:
    return float(f"{rnd.uniform(lo, hi):.4g}")


def _structural(rnd: random.Random, lo: int, hi: int, huge: float = 0.1) -> int:
    if rnd.random() < huge:
        return rnd.choice(HUGE)
    return rnd.randint(lo, hi)


def _maybe_groups(rnd: random.Random, per_group: bool | None) -> int | None:
    if per_group is None:
        per_group = rnd.random() < 0.4
    return rnd.choice([2, 3]) if per_group else None


# ---------------------------------------------------------------------------------------------
# One draw function per schedule
# ---------------------------------------------------------------------------------------------


def _lambda_lr(rnd, G, base):
    cfg = {"name": "lambda_lr", "base_lr": base}
    kind = rnd.choice(["jax", "jax", "python"])
    if G is not None and rnd.random() < 0.5:
        cfg["lr_lambda"] = [lambda_pool(rnd, kind=kind) for _ in range(G)]
    else:
        cfg["lr_lambda"] = lambda_pool(rnd, kind=kind)
    if kind == "python" or rnd.random() < 0.2:
        cfg["total_steps"] = rnd.choice([0, 1, 10, 256, 1000, 2000])
    return cfg


def _multiplicative_lr(rnd, G, base):
    if rnd.random() < 0.6:
        return {"name": "multiplicative_lr", "base_lr": base, "lr_lambda": constant_lambda(rnd)}
    return {
        "name": "multiplicative_lr",
        "base_lr": base,
        "lr_lambda": multiplicative_lambda(rnd),
        "total_steps": rnd.choice([0, 1, 50, 300, 2000]),
    }


def _step_lr(rnd, G, base):
    return {
        "name": "step_lr",
        "base_lr": base,
        "step_size": _structural(rnd, 1, 60),
        "gamma": rnd.choice([0.1, 0.5, _unit(rnd), 1.0, 0.0]),
    }


def _multi_step_lr(rnd, G, base):
    ms = [rnd.randint(0, 300) for _ in range(rnd.randint(0, 5))]
    if rnd.random() < 0.2:
        ms.append(rnd.choice(HUGE + (2**70,)))
    rnd.shuffle(ms)
    return {"name": "multi_step_lr", "base_lr": base, "milestones": ms, "gamma": rnd.choice([0.1, 0.5, _unit(rnd)])}


def _constant_lr(rnd, G, base):
    n = _structural(rnd, 0, 100)
    return {"name": "constant_lr", "base_lr": base, "factor": _unit(rnd, 0.01, 1.0), "total_iters": n}


def _linear_lr(rnd, G, base):
    return {
        "name": "linear_lr",
        "base_lr": base,
        "start_factor": _unit(rnd, 0.01, 1.0),
        "end_factor": _unit(rnd),
        "total_iters": _structural(rnd, 0, 100),
    }


def _exponential_lr(rnd, G, base):
    return {"name": "exponential_lr", "base_lr": base, "gamma": rnd.choice([0.5, 0.9, 0.99, 0.9999999, 1.0])}


def _polynomial_lr(rnd, G, base):
    return {
        "name": "polynomial_lr",
        "base_lr": base,
        "total_iters": _structural(rnd, 0, 100),
        "power": rnd.choice([0.0, 0.5, 1.0, 2.0, _unit(rnd, 0, 4)]),
    }


def _cosine_annealing_lr(rnd, G, base):
    eta = 0.0 if rnd.random() < 0.5 else float(f"{rnd.uniform(0, 1e-3):.3g}")
    return {"name": "cosine_annealing_lr", "base_lr": base, "T_max": _structural(rnd, 1, 100), "eta_min": eta}


def _cosine_annealing_warm_restarts(rnd, G, base):
    eta = 0.0 if rnd.random() < 0.5 else float(f"{rnd.uniform(0, 1e-4):.3g}")
    return {
        "name": "cosine_annealing_warm_restarts",
        "base_lr": base,
        "T_0": _structural(rnd, 1, 30),
        "T_mult": rnd.choice([1, 1, 2, 3]),
        "eta_min": eta,
    }


def _step_size(rnd):
    r = rnd.random()
    if r < 0.1:
        return rnd.choice(HUGE[:3])
    if r < 0.4:
        return rnd.choice([2.5, 3.7, 781.25, 0.5, 1.5, float(f"{rnd.uniform(1, 50):.2f}")])
    return rnd.randint(1, 60)


def _cyclic_common(rnd):
    kw = {
        "step_size_up": _step_size(rnd),
        "step_size_down": rnd.choice([None, None, _step_size(rnd)]),
        "mode": rnd.choice(["triangular", "triangular2", "exp_range"]),
    }
    if kw["mode"] == "exp_range" or rnd.random() < 0.2:
        kw["gamma"] = rnd.choice([0.999, 0.99999, 1.0, 0.9])
    if rnd.random() < 0.15:
        kw["scale_fn"] = scale_fn_pool(rnd)
        kw["scale_mode"] = rnd.choice(["cycle", "iterations"])
    return kw


def _cyclic_lr(rnd, G, base):
    ratio = rnd.choice([1.0, 10.0, 30.0, 0.5])
    high = [float(f"{b * ratio:.6g}") for b in base] if isinstance(base, list) else float(f"{base * ratio:.6g}")
    return {"name": "cyclic_lr", "base_lr": base, "max_lr": high, **_cyclic_common(rnd)}


def _cyclic_momentum(rnd, G, base):
    lo = [_unit(rnd, 0.5, 0.85) for _ in range(G)] if G else _unit(rnd, 0.5, 0.85)
    hi = [float(f"{x + 0.1:.4g}") for x in lo] if G else float(f"{lo + 0.1:.4g}")
    return {"name": "cyclic_momentum", "base_momentum": lo, "max_momentum": hi, **_cyclic_common(rnd)}


def _pct_and_total(rnd):
    T = rnd.choice([2, 10, 100, 200, 1000, 1001, rnd.randint(3, 1500)])
    if rnd.random() < 0.1:
        T = rnd.choice(HUGE[:3])
    for _ in range(100):
        pct = rnd.choice([0.3, 0.25, 0.5, _unit(rnd, 0.05, 0.95)])
        three = rnd.random() < 0.3
        e1 = float(pct * T) - 1
        e2 = float(2 * pct * T) - 2
        ends = [e1, e2, T - 1] if three else [e1, T - 1]
        if e1 != 0 and ends[-2] != ends[-1] and all(b > a for a, b in zip([0.0] + ends, ends)):
            return T, pct, three
    return 100, 0.3, False


def _one_cycle_common(rnd):
    T, pct, three = _pct_and_total(rnd)
    kw = {"pct_start": pct, "anneal_strategy": rnd.choice(["cos", "linear"]), "three_phase": three}
    if T < 2**31 and T % 10 == 0 and rnd.random() < 0.3:
        kw.update(epochs=T // 10, steps_per_epoch=10)
    else:
        kw["total_steps"] = T
    return kw


def _one_cycle_lr(rnd, G, base):
    kw = _one_cycle_common(rnd)
    kw.update(div_factor=rnd.choice([25.0, 10.0, 1.0, 100.0]), final_div_factor=rnd.choice([1e4, 10.0, 1e5, 1.0]))
    return {"name": "one_cycle_lr", "max_lr": base, **kw}


def _one_cycle_momentum(rnd, G, base):
    kw = _one_cycle_common(rnd)
    lo = [_unit(rnd, 0.5, 0.85) for _ in range(G)] if G else _unit(rnd, 0.5, 0.85)
    hi = [float(f"{x + 0.1:.4g}") for x in lo] if G else float(f"{lo + 0.1:.4g}")
    return {"name": "one_cycle_momentum", "base_momentum": lo, "max_momentum": hi, **kw}


def _swalr(rnd, G, base):
    swa = [_lr(rnd) for _ in range(G)] if G and rnd.random() < 0.5 else _lr(rnd)
    return {
        "name": "swalr",
        "base_lr": base,
        "swa_lr": swa,
        "anneal_epochs": rnd.choice([0, 1, 5, 10, 20]),
        "anneal_strategy": rnd.choice(["cos", "linear"]),
    }


# Leaves a composite may hold (torch chains them on one optimizer lr). OneCycleLR, momentum
# schedules, per_epoch and plateaus are refused in composites (SEMANTICS.md).
LEAVES = (
    "step_lr",
    "multi_step_lr",
    "constant_lr",
    "linear_lr",
    "exponential_lr",
    "polynomial_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "lambda_lr",
    "multiplicative_lr",
    "cyclic_lr",
)


def leaf(rnd: random.Random, base, *, small: bool = True, names=LEAVES) -> dict:
    """A composite member sharing ``base`` (no huge structural ints when ``small``)."""
    name = rnd.choice(names)
    for _ in range(50):
        cfg = DRAWS[name](rnd, len(base) if isinstance(base, list) else None, base)
        if name == "lambda_lr":
            fn = lambda_pool(rnd, kind="jax", bounded=True)
            cfg = {"name": "lambda_lr", "base_lr": base, "lr_lambda": fn}
        if name == "multiplicative_lr":
            cfg = {"name": "multiplicative_lr", "base_lr": base, "lr_lambda": constant_lambda(rnd)}
        if name == "cyclic_lr":
            cfg.update(base_lr=base, step_size_up=rnd.randint(1, 20), step_size_down=None)
            cfg.pop("scale_fn", None)
            cfg.pop("scale_mode", None)
        if not small or not _has_huge(cfg):
            return cfg
    return {"name": "exponential_lr", "base_lr": base, "gamma": 0.9}


def _has_huge(cfg) -> bool:
    for v in cfg.values():
        if isinstance(v, int) and not isinstance(v, bool) and v >= 2**31:
            return True
        if isinstance(v, list) and any(isinstance(x, int) and x >= 2**31 for x in v):
            return True
    return False


def member(rnd: random.Random, base, depth: int, *, composite_p: float = 0.35, names=LEAVES) -> dict:
    """A member of a composite: a leaf, or (while ``depth`` > 0) a chained/sequential composite of members.

    Sequential composites hold composite members only at the index active at step 0 (torch raises
    NotImplementedError when it switches to a composite at a milestone).
    """
    if depth <= 0 or rnd.random() >= composite_p:
        return leaf(rnd, base, names=names)
    return composite(rnd, base, depth, names=names)


def composite(rnd: random.Random, base, depth: int, *, kind: str | None = None, names=LEAVES) -> dict:
    kind = kind or rnd.choice(["chained_scheduler", "sequential_lr"])
    n = rnd.randint(1, 3)
    if kind == "chained_scheduler":
        return {"name": kind, "schedules": [member(rnd, base, depth - 1, names=names) for _ in range(n)]}
    ms = sorted(rnd.randint(0, 40) for _ in range(n - 1))
    if rnd.random() < 0.1 and n > 1:
        ms[-1] = 2**31 + 1
    initial = sum(1 for m in ms if m <= 0)
    schedules = [
        member(rnd, base, depth - 1, names=names) if i == initial else leaf(rnd, base, names=names) for i in range(n)
    ]
    return {"name": kind, "schedules": schedules, "milestones": ms}


def _chained(rnd, G, base):
    return composite(rnd, base, 1, kind="chained_scheduler")


def _sequential(rnd, G, base):
    return composite(rnd, base, 1, kind="sequential_lr")


def _per_epoch(rnd, G, base):
    inner_name = rnd.choice(LEAVES + ("chained_scheduler", "sequential_lr", "swalr"))
    inner = DRAWS[inner_name](rnd, G, base)
    if _has_huge(inner):
        inner = leaf(rnd, base)
    n = rnd.choice([1, 3, 10, 100, 1000])
    return {"name": "per_epoch", "schedule": inner, "steps_per_epoch": n, "fractional": rnd.random() < 0.5}


DRAWS: dict[str, Callable[[random.Random, Any, Any], dict]] = {
    "lambda_lr": _lambda_lr,
    "multiplicative_lr": _multiplicative_lr,
    "step_lr": _step_lr,
    "multi_step_lr": _multi_step_lr,
    "constant_lr": _constant_lr,
    "linear_lr": _linear_lr,
    "exponential_lr": _exponential_lr,
    "polynomial_lr": _polynomial_lr,
    "cosine_annealing_lr": _cosine_annealing_lr,
    "cosine_annealing_warm_restarts": _cosine_annealing_warm_restarts,
    "cyclic_lr": _cyclic_lr,
    "cyclic_momentum": _cyclic_momentum,
    "one_cycle_lr": _one_cycle_lr,
    "one_cycle_momentum": _one_cycle_momentum,
    "swalr": _swalr,
    "chained_scheduler": _chained,
    "sequential_lr": _sequential,
    "per_epoch": _per_epoch,
}
"""One draw function per schedule (lrjax registry names, and swalr)."""

# Schedules SEMANTICS.md promises that the registry may not list yet.
PROMISED = ("swalr",)


def draw(name: str, rnd: random.Random, per_group: bool | None = None) -> dict:
    G = _maybe_groups(rnd, per_group)
    return DRAWS[name](rnd, G, _base(rnd, G))


def configs(name: str, per_group: bool | None = None) -> st.SearchStrategy:
    return st.randoms(use_true_random=False).map(lambda r: draw(name, r, per_group))
