"""Benchmark 1: a table of the learning rate at 1,000,000 steps, per scheduler.

* lrjax: ``jax.jit(jax.vmap(schedule))(jnp.arange(N))`` (the steps already on the device; the
  result is a device array, waited for with ``block_until_ready``);
* torch: the scheduler stepped ``N - 1`` times after one plain ``optimizer.step()``, recording
  ``optimizer.param_groups[0]["lr"]`` after construction and after each ``scheduler.step()``
  (Python's garbage collector off during the loop, which only helps torch);
* optax: the nearest optax schedule, where there is one, evaluated like lrjax's.

Per round: half of the lrjax/optax pairs (alternating), one torch table, the other half. Ratios:
torch / lrjax per round (torch's time over the median lrjax time of the same round), and
lrjax / optax per back-to-back pair. Compile time: the first call of a freshly built
``jit(vmap(schedule))`` minus the steady-state median (building the schedule object is timed
separately). Each table is also checked against torch's values (max relative difference).

``ReduceLROnPlateau`` is not a function of the step; its row times 1,000,000 ``update`` calls on a
fixed metric sequence: ``jax.lax.scan`` of lrjax's pure update vs torch's ``step(metric)`` loop vs
``optax.contrib.reduce_on_plateau`` (not equivalent: it reduces one bad epoch earlier, has no eps,
and compares in plain float32).

    python -m benchmarks.lr_table [--steps 1000000] [--rounds 3] [--pairs 10] [--only StepLR,OneCycleLR]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import time
import warnings
from collections.abc import Callable
from typing import Any

from benchmarks import _common

BASE_LR = 0.1


@dataclasses.dataclass
class Case:
    id: str
    torch: Callable[[Any, Any, int], Any]  # (lr_scheduler module, optimizer, N) -> scheduler
    lrjax: Callable[[int], Callable]  # N -> schedule
    optax_name: str | None = None
    optax: Callable[[int], Callable] | None = None  # N -> schedule
    note: str = ""


def cases() -> list[Case]:
    import jax.numpy as jnp
    import optax

    import lrjax

    def inv(t):  # LambdaLR's lr_lambda, written with jnp (lrjax traces it; torch calls it with ints)
        return 1.0 / (1.0 + 1e-4 * jnp.asarray(t, jnp.float32))

    return [
        Case(
            "StepLR",
            lambda L, o, n: L.StepLR(o, step_size=50_000, gamma=0.8),
            lambda n: lrjax.step_lr(BASE_LR, step_size=50_000, gamma=0.8),
            "exponential_decay(staircase=True)",
            lambda n: optax.exponential_decay(BASE_LR, 50_000, 0.8, staircase=True),
        ),
        Case(
            "MultiStepLR",
            lambda L, o, n: L.MultiStepLR(o, milestones=[300_000, 600_000, 900_000], gamma=0.3),
            lambda n: lrjax.multi_step_lr(BASE_LR, milestones=[300_000, 600_000, 900_000], gamma=0.3),
            "piecewise_constant_schedule",
            lambda n: optax.piecewise_constant_schedule(BASE_LR, {300_000: 0.3, 600_000: 0.3, 900_000: 0.3}),
        ),
        Case(
            "ConstantLR",
            lambda L, o, n: L.ConstantLR(o, factor=0.3, total_iters=500_000),
            lambda n: lrjax.constant_lr(BASE_LR, factor=0.3, total_iters=500_000),
            "piecewise_constant_schedule",
            lambda n: optax.piecewise_constant_schedule(BASE_LR * 0.3, {500_000: 1 / 0.3}),
        ),
        Case(
            "LinearLR",
            lambda L, o, n: L.LinearLR(o, start_factor=0.01, end_factor=1.0, total_iters=100_000),
            lambda n: lrjax.linear_lr(BASE_LR, start_factor=0.01, end_factor=1.0, total_iters=100_000),
            "linear_schedule",
            lambda n: optax.linear_schedule(BASE_LR * 0.01, BASE_LR, 100_000),
        ),
        Case(
            "ExponentialLR",
            lambda L, o, n: L.ExponentialLR(o, gamma=0.999995),
            lambda n: lrjax.exponential_lr(BASE_LR, gamma=0.999995),
            "exponential_decay",
            lambda n: optax.exponential_decay(BASE_LR, 1, 0.999995),
        ),
        Case(
            "PolynomialLR",
            lambda L, o, n: L.PolynomialLR(o, total_iters=999_000, power=2.0),
            lambda n: lrjax.polynomial_lr(BASE_LR, total_iters=999_000, power=2.0),
            "polynomial_schedule",
            lambda n: optax.polynomial_schedule(BASE_LR, 0.0, 2.0, 999_000),
        ),
        Case(
            "CosineAnnealingLR",
            lambda L, o, n: L.CosineAnnealingLR(o, T_max=1_000_000, eta_min=1e-4),
            lambda n: lrjax.cosine_annealing_lr(BASE_LR, T_max=1_000_000, eta_min=1e-4),
            "cosine_decay_schedule",
            lambda n: optax.cosine_decay_schedule(BASE_LR, 1_000_000, alpha=1e-3),
            "T_max = 10^6 so that optax's (non-periodic) cosine is the same curve",
        ),
        Case(
            "CosineAnnealingWarmRestarts",
            lambda L, o, n: L.CosineAnnealingWarmRestarts(o, T_0=1000, T_mult=2, eta_min=1e-5),
            lambda n: lrjax.cosine_annealing_warm_restarts(BASE_LR, T_0=1000, T_mult=2, eta_min=1e-5),
            "sgdr_schedule (10 cycles)",
            lambda n: optax.sgdr_schedule(
                [
                    {
                        "init_value": BASE_LR,
                        "peak_value": BASE_LR,
                        "warmup_steps": 0,
                        "decay_steps": 1000 * 2**i,
                        "end_value": 1e-5,
                    }
                    for i in range(_cycles(n, 1000, 2))
                ]
            ),
        ),
        Case(
            "CyclicLR",
            lambda L, o, n: L.CyclicLR(o, base_lr=0.001, max_lr=0.1, step_size_up=2000, cycle_momentum=False),
            lambda n: lrjax.cyclic_lr(0.001, 0.1, step_size_up=2000),
            note="no optax equivalent",
        ),
        Case(
            "OneCycleLR",
            lambda L, o, n: L.OneCycleLR(o, max_lr=0.1, total_steps=max(n, 2), cycle_momentum=False),
            lambda n: lrjax.one_cycle_lr(0.1, total_steps=max(n, 2)),
            "cosine_onecycle_schedule",
            lambda n: optax.cosine_onecycle_schedule(max(n, 2), 0.1),
            "optax's phases end one step later than torch's",
        ),
        Case(
            "LambdaLR",
            lambda L, o, n: L.LambdaLR(o, lr_lambda=lambda e: 1.0 / (1.0 + 1e-4 * e)),
            lambda n: lrjax.lambda_lr(BASE_LR, inv),
            "the same jnp function",
            lambda n: lambda t: BASE_LR * inv(t),
            "optax takes any function: the peer is the bare lambda",
        ),
        Case(
            "MultiplicativeLR",
            lambda L, o, n: L.MultiplicativeLR(o, lr_lambda=lambda e: 0.999999),
            lambda n: lrjax.multiplicative_lr(BASE_LR, lambda e: 0.999999),
            "exponential_decay",
            lambda n: optax.exponential_decay(BASE_LR, 1, 0.999999),
        ),
        Case(
            "SWALR",
            lambda L, o, n: _swa().SWALR(o, swa_lr=0.01, anneal_epochs=100_000),
            lambda n: lrjax.swalr(BASE_LR, swa_lr=0.01, anneal_epochs=100_000),
            "cosine_decay_schedule",
            lambda n: optax.cosine_decay_schedule(BASE_LR, 100_000, alpha=0.01 / BASE_LR),
            "optax's cosine decay to alpha * init_value is the same curve",
        ),
        Case(
            "SequentialLR",
            lambda L, o, n: L.SequentialLR(
                o,
                [
                    L.LinearLR(o, start_factor=0.01, total_iters=10_000),
                    L.CosineAnnealingLR(o, T_max=990_000, eta_min=1e-5),
                ],
                milestones=[10_000],
            ),
            lambda n: lrjax.sequential_lr(
                [
                    lrjax.linear_lr(BASE_LR, start_factor=0.01, total_iters=10_000),
                    lrjax.cosine_annealing_lr(BASE_LR, T_max=990_000, eta_min=1e-5),
                ],
                milestones=[10_000],
            ),
            "warmup_cosine_decay_schedule",
            lambda n: optax.warmup_cosine_decay_schedule(BASE_LR * 0.01, BASE_LR, 10_000, 1_000_000, 1e-5),
            "linear warm-up 10^4 steps, then cosine",
        ),
        Case(
            "ChainedScheduler",
            lambda L, o, n: L.ChainedScheduler(
                [
                    L.LinearLR(o, start_factor=0.01, total_iters=10_000),
                    L.CosineAnnealingLR(o, T_max=200_000, eta_min=1e-4),
                ]
            ),
            lambda n: lrjax.chained_scheduler(
                [
                    lrjax.linear_lr(BASE_LR, start_factor=0.01, total_iters=10_000),
                    lrjax.cosine_annealing_lr(BASE_LR, T_max=200_000, eta_min=1e-4),
                ]
            ),
            note="LinearLR x CosineAnnealingLR(eta_min>0): no closed form in torch, no optax equivalent",
        ),
    ]


def _swa():
    import torch.optim.swa_utils

    return torch.optim.swa_utils


def _cycles(n: int, t0: int, mult: int) -> int:
    k, total = 1, t0
    while total < n:
        total += t0 * mult**k
        k += 1
    return k


# ------------------------------------------------------------------------------------------------
# The three ways of making the table
# ------------------------------------------------------------------------------------------------


def torch_table(case: Case, n: int) -> list[float]:
    import torch
    from torch.optim import lr_scheduler as L

    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(params, lr=BASE_LR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = case.torch(L, opt, n)
        opt.step()
        group = opt.param_groups[0]
        out = [group["lr"]]
        append, step = out.append, sched.step
        enabled = gc.isenabled()
        gc.disable()
        try:
            for _ in range(n - 1):
                step()
                append(group["lr"])
        finally:
            if enabled:
                gc.enable()
    return out


class Jitted:
    """``fn(*args)`` compiled with ``jax.jit``; each call waits for the result and keeps it in ``.last``."""

    def __init__(self, fn: Callable, *args: Any):
        import jax

        self.fn, self.args, self.last = jax.jit(fn), args, None
        self._block = jax.block_until_ready

    def __call__(self) -> None:
        self.last = self._block(self.fn(*self.args))


def jax_table(schedule: Callable, steps) -> Jitted:
    import jax

    return Jitted(jax.vmap(schedule), steps)


def _max_rel_diff(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    scale = np.maximum(np.abs(b), 1e-300)
    return float(np.max(np.abs(a - b) / scale))


def bench_case(case: Case, n: int, rounds: int, pairs: int) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    steps = jax.block_until_ready(jnp.arange(n, dtype=jnp.int32))
    row: dict[str, Any] = {"id": case.id, "steps": n, "optax_peer": case.optax_name, "note": case.note}

    # Build + first call (compilation), then steady state.
    t0 = time.perf_counter()
    schedule = case.lrjax(n)
    row["lrjax_build_s"] = time.perf_counter() - t0
    run_lrjax = jax_table(schedule, steps)
    first = {"lrjax": _common.time_call(run_lrjax)}
    peers = {"lrjax": run_lrjax}
    if case.optax is not None:
        run_optax = jax_table(case.optax(n), steps)
        first["optax"] = _common.time_call(run_optax)
        peers["optax"] = run_optax

    torch_table(case, min(n, 1000))  # warm-up
    times: dict[str, list[float]] = {k: [] for k in peers}
    times["torch"] = []
    round_lrjax: list[float] = []
    torch_values = None
    for r in range(rounds):
        half = max(1, pairs // 2)
        local = {k: [] for k in peers}
        for part in (0, 1):
            got = _common.interleave(peers, half if part == 0 else max(1, pairs - half), warmup=0)
            for k, v in got.items():
                local[k].extend(v)
            if part == 0:
                t0 = time.perf_counter()
                torch_values = torch_table(case, n)
                times["torch"].append(time.perf_counter() - t0)
        for k, v in local.items():
            times[k].extend(v)
        round_lrjax.append(float(np.median(local["lrjax"])))

    for k, v in times.items():
        row[f"{k}_s"] = _common.summary(v)
    row["speedup_vs_torch"] = _common.ratios(times["torch"], round_lrjax)
    if "optax" in peers:
        row["lrjax_over_optax"] = _common.ratios(times["lrjax"], times["optax"])
    for k, t in first.items():
        row[f"{k}_compile_s"] = max(0.0, t - row[f"{k}_s"]["median"])
        row[f"{k}_first_call_s"] = t

    row["max_rel_diff_vs_torch"] = _max_rel_diff(run_lrjax.last, torch_values)
    if "optax" in peers:
        row["optax_max_rel_diff_vs_torch"] = _max_rel_diff(peers["optax"].last, torch_values)
    return row


# ------------------------------------------------------------------------------------------------
# ReduceLROnPlateau: 10^6 updates
# ------------------------------------------------------------------------------------------------

PLATEAU = {"factor": 0.5, "patience": 10, "threshold": 1e-4}


def plateau_metrics(n: int):
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(n)
    return (1.0 / np.sqrt(1.0 + t / 1000.0) * (1.0 + 0.05 * rng.standard_normal(n))).astype(np.float32)


def bench_plateau(n: int, rounds: int, pairs: int) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import torch

    import lrjax

    metrics = plateau_metrics(n)
    metrics_dev = jax.block_until_ready(jnp.asarray(metrics))
    metrics_py = metrics.tolist()

    def make_lrjax(exact: bool = True):
        plateau = lrjax.reduce_lr_on_plateau(**PLATEAU)

        def run(ms):
            p = plateau
            if not exact:  # a traced threshold turns off the exact float64-equivalent comparison
                p = lrjax.reduce_lr_on_plateau(**{**PLATEAU, "threshold": jnp.asarray(PLATEAU["threshold"])})

            def body(state, m):
                state = p.update(state, m)
                return state, state.lr

            return jax.lax.scan(body, p.init(BASE_LR), ms)[1]

        return Jitted(run, metrics_dev)

    def make_optax():
        tx = optax.contrib.reduce_on_plateau(
            factor=PLATEAU["factor"], patience=PLATEAU["patience"], rtol=PLATEAU["threshold"], atol=0.0
        )

        def run(ms):
            def body(state, m):
                _, state = tx.update(jnp.zeros(()), state, value=m)
                return state, BASE_LR * state.scale

            return jax.lax.scan(body, tx.init(jnp.zeros(())), ms)[1]

        return Jitted(run, metrics_dev)

    def run_torch():
        params = [torch.nn.Parameter(torch.zeros(1))]
        opt = torch.optim.SGD(params, lr=BASE_LR)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **PLATEAU)
        opt.step()
        group = opt.param_groups[0]
        out = []
        enabled = gc.isenabled()
        gc.disable()
        try:
            for m in metrics_py:
                sched.step(m)
                out.append(group["lr"])
        finally:
            if enabled:
                gc.enable()
        return out

    row: dict[str, Any] = {
        "id": "ReduceLROnPlateau",
        "steps": n,
        "optax_peer": "contrib.reduce_on_plateau (not equivalent)",
        "note": "10^6 update(metric) calls in lax.scan; a state machine, not a closed form",
    }
    lrjax_fn = make_lrjax()
    first = {"lrjax": _common.time_call(lrjax_fn)}
    optax_fn = make_optax()
    first["optax"] = _common.time_call(optax_fn)
    plain_fn = make_lrjax(exact=False)
    first["lrjax_plain"] = _common.time_call(plain_fn)
    peers = {"lrjax": lrjax_fn, "optax": optax_fn, "lrjax_plain": plain_fn}
    times: dict[str, list[float]] = {k: [] for k in peers}
    times["torch"] = []
    round_lrjax = []
    torch_values = None
    for _ in range(rounds):
        local = _common.interleave(peers, max(1, pairs // 2), warmup=0)
        t0 = time.perf_counter()
        torch_values = run_torch()
        times["torch"].append(time.perf_counter() - t0)
        more = _common.interleave(peers, max(1, pairs - pairs // 2), warmup=0)
        for k in peers:
            local[k] += more[k]
            times[k] += local[k]
        round_lrjax.append(float(np.median(local["lrjax"])))
    for k, v in times.items():
        row[f"{k}_s"] = _common.summary(v)
    row["speedup_vs_torch"] = _common.ratios(times["torch"], round_lrjax)
    row["lrjax_over_optax"] = _common.ratios(times["lrjax"], times["optax"])
    row["lrjax_plain_over_lrjax"] = _common.ratios(times["lrjax_plain"], times["lrjax"])
    for k, t in first.items():
        row[f"{k}_compile_s"] = max(0.0, t - row[f"{k}_s"]["median"])
        row[f"{k}_first_call_s"] = t
    row["max_rel_diff_vs_torch"] = _max_rel_diff(lrjax_fn.last, torch_values)
    return row


# ------------------------------------------------------------------------------------------------


def run(
    steps: int = 1_000_000,
    rounds: int = 3,
    pairs: int = 10,
    only: list[str] | None = None,
    out: str = _common.RESULTS_DIR,
    plateau: bool = True,
) -> dict[str, Any]:
    env = _common.print_environment(f"LR table: {steps:,} steps per scheduler (lrjax jit(vmap) vs torch vs optax)")
    rows = []
    for case in cases():
        if only and case.id not in only:
            continue
        row = bench_case(case, steps, rounds, pairs)
        rows.append(row)
        print(_line(row), flush=True)
    if plateau and (not only or "ReduceLROnPlateau" in only):
        row = bench_plateau(steps, rounds, pairs)
        rows.append(row)
        print(_line(row), flush=True)
    params = {
        "steps": steps,
        "rounds": rounds,
        "pairs": pairs,
        "base_lr": BASE_LR,
        "plateau": PLATEAU,
        "targets": {"speedup_vs_torch": ">= 300", "lrjax_over_optax": "<= 1.25"},
    }
    path = _common.write_result(out, "lr_table", env, params, rows)
    print(f"wrote {path}")
    return {"env": env, "params": params, "rows": rows}


def _line(row: dict[str, Any]) -> str:
    s = (
        f"{row['id']:28s} torch {_common.fmt_seconds(row['torch_s']['median']):>9s}  "
        f"lrjax {_common.fmt_seconds(row['lrjax_s']['median']):>9s}  "
        f"speed-up {_common.fmt_ratio(row['speedup_vs_torch'], 0):>22s}"
    )
    if "lrjax_over_optax" in row:
        s += (
            f"  optax {_common.fmt_seconds(row['optax_s']['median']):>9s}  "
            f"lrjax/optax {_common.fmt_ratio(row['lrjax_over_optax']):>20s}"
        )
    s += f"  compile {_common.fmt_seconds(row['lrjax_compile_s'])}  max rel diff {row['max_rel_diff_vs_torch']:.1e}"
    return s


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_common_args(p)
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3, help="torch tables per scheduler (each interleaved)")
    p.add_argument("--pairs", type=int, default=10, help="lrjax/optax pairs per round")
    p.add_argument("--only", default="", help="comma-separated scheduler names")
    args = p.parse_args(argv)
    _common.select_device(args.device)
    if args.quick:
        args.steps, args.rounds, args.pairs = min(args.steps, 2000), 1, 2
    run(args.steps, args.rounds, args.pairs, [s for s in args.only.split(",") if s] or None, args.out)


if __name__ == "__main__":
    main()
