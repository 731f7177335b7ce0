#!/usr/bin/env python
"""Parity of lrjax with torch 2.13, per scheduler: how many cases and values, and the worst errors.

    python scripts/parity_report.py            # the stored references (tests/data/*.json)
    python scripts/parity_report.py --long     # also the 10^6-step runs of tests/test_long_runs.py, live

Writes a Markdown table to stdout (and to docs/parity.md with --write). Errors are reported as the
worst relative error |lrjax - torch| / |torch| over values with |torch| >= 1e-3 max|torch|, and as
the worst fraction of the contract's allowance (rtol |torch| + atol max|torch|; <= 1 passes).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import refdata  # noqa: E402
import torchref  # noqa: E402


def _errors(ours: np.ndarray, theirs: np.ndarray, bits: int) -> tuple[float, float]:
    rtol, atol = torchref.tolerance(bits)
    scale = np.max(np.abs(theirs))
    tiny = np.finfo(np.float32 if bits == 32 else np.float64).tiny
    err = np.abs(ours - theirs)
    allowed = rtol * np.abs(theirs) + np.maximum(atol * scale, tiny)
    big = (np.abs(theirs) >= 1e-3 * scale) & (theirs != 0)
    rel = float(np.max(err[big] / np.abs(theirs[big]))) if np.any(big) else 0.0
    return rel, float(np.max(err / allowed))


def _evaluate(schedule, steps, n, bits):
    with jax.enable_x64(bits == 64):
        ts = jnp.asarray(steps, dtype=float if isinstance(steps[0], float) else None)
        return np.asarray(jax.jit(jax.vmap(schedule))(ts), dtype=np.float64).reshape(n, -1).T


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="also run the 10^6-step cases against torch live")
    parser.add_argument("--write", action="store_true", help="write docs/parity.md")
    args = parser.parse_args()
    stats = collections.defaultdict(lambda: {"cases": 0, "values": 0, 32: [0.0, 0.0], 64: [0.0, 0.0]})

    def record(name, ours_by_bits, theirs):
        s = stats[name]
        s["values"] += theirs.size
        for bits, ours in ours_by_bits.items():
            rel, frac = _errors(ours, theirs, bits)
            s[bits] = [max(s[bits][0], rel), max(s[bits][1], frac)]

    for case in refdata.load("schedules"):
        lr, momentum = torchref.build_lrjax(case)
        steps = case.get("float_steps") or list(range(case["steps"] + 1))
        n = len(steps)
        stats[case["scheduler"]]["cases"] += 1
        theirs = np.asarray(case["expected"]["lr"])
        record(case["scheduler"], {b: _evaluate(lr, steps, n, b) for b in (32, 64)}, theirs)
        if "momentum" in case["expected"]:
            name = case["scheduler"] + " (momentum)"
            stats[name]["cases"] += 1
            record(
                name, {b: _evaluate(momentum, steps, n, b) for b in (32, 64)}, np.asarray(case["expected"]["momentum"])
            )

    notes: list[str] = []
    drifting: set[str] = set()  # float64 compared with the exact value, not torch's drifted one
    if args.long:
        import test_long_runs

        for case in test_long_runs.LONG:
            case = {**case, "steps": test_long_runs.N}
            expected = torchref.run_torch(case)
            lr, _ = torchref.build_lrjax(case)
            steps = list(range(test_long_runs.N + 1))
            name = f"10^6 steps: {case['id']}"
            stats[name]["cases"] += 1
            ours = {b: _evaluate(lr, steps, len(steps), b) for b in (32, 64)}
            theirs = np.asarray(expected["lr"])
            record(name, ours, theirs)
            if "exact" in case:  # torch's float64 recursion drifts here: both against the exact value
                drifting.add(name)
                ours64, torch64 = ours[64].ravel(), theirs.ravel()
                worst = np.argsort(-np.abs(ours64 - torch64))[:200]
                exact = np.array([test_long_runs._exact(case["exact"], int(t)) for t in worst])
                notes.append(
                    f"* {name}: torch's float64 values drift from the exact ones (mpmath, 40 digits); at the "
                    f"200 steps where lrjax and torch differ most, the worst relative error against the exact "
                    f"value is {np.max(np.abs(ours64[worst] - exact) / np.abs(exact)):.1e} for lrjax and "
                    f"{np.max(np.abs(torch64[worst] - exact) / np.abs(exact)):.1e} for torch "
                    f"(tests/test_long_runs.py requires lrjax within the float64 contract of the exact value there)."
                )

    lines = [
        "| scheduler | cases | values | float32 worst rel. error | float32 worst / allowed | "
        "float64 worst rel. error | float64 worst / allowed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in stats.items():
        mark = " (torch drifts, see below)" if name in drifting else ""
        lines.append(
            f"| {name} | {s['cases']} | {s['values']} | {s[32][0]:.1e} | {s[32][1]:.2f} | "
            f"{s[64][0]:.1e}{mark} | {s[64][1]:.2f}{mark} |"
        )
    total_cases = sum(s["cases"] for n, s in stats.items() if "momentum" not in n)
    total_values = sum(s["values"] for s in stats.values())
    f64 = [s[64] for n, s in stats.items() if n not in drifting]
    but = f" (but the {len(drifting)} runs where torch drifts)" if drifting else ""
    lines.append(
        f"| **all** | {total_cases} | {total_values} | {max(s[32][0] for s in stats.values()):.1e} | "
        f"{max(s[32][1] for s in stats.values()):.2f} | {max(e[0] for e in f64):.1e}{but} | "
        f"{max(e[1] for e in f64):.2f}{but} |"
    )
    text = "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")
    print(text)
    if args.write:
        with open(os.path.join(ROOT, "docs", "parity.md"), "w") as f:
            f.write("<!-- written by scripts/parity_report.py --write -->\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
