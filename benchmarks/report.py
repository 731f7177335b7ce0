"""Builds ``benchmarks/results/RESULTS.md`` (Markdown tables) from the JSON results of the benchmarks.

python -m benchmarks.report [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from typing import Any

import lrjax
from benchmarks import _common
from benchmarks._common import fmt_ratio, fmt_seconds

NAMES = ("lr_table", "train_step", "train_step_sequential", "mnist", "main_job", "compiles")


def load(out: str) -> dict[str, dict[str, Any]]:
    results = {}
    for name in NAMES:
        path = os.path.join(out, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                results[name] = json.load(f)
    return results


def _env_line(res: dict[str, Any]) -> str:
    e = res["environment"]
    return (
        f"{e['backend']} ({e['device_kind']}), {e['cpu_count']} CPUs, load average {e['load_average']} "
        f"before / {res.get('load_average_after')} after; jax {e['jax']}, jaxlib {e['jaxlib']}, "
        f"optax {e['optax']}, flax {e['flax']}, torch {e['torch']} ({e['torch_num_threads']} threads); "
        f"XLA_FLAGS={e['XLA_FLAGS']!r}; {e['time_utc']}, commit {e['git_commit']}"
    )


def _ok(flag: bool | None) -> str:
    return "-" if flag is None else ("met" if flag else "**missed**")


# ------------------------------------------------------------------------------------------------
# Targets
# ------------------------------------------------------------------------------------------------


def targets(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, bool | None]]:
    """``(what, target, measured, met)`` rows."""
    out = []
    if "lr_table" in results:
        rows = [r for r in results["lr_table"]["rows"] if r["id"] != "ReduceLROnPlateau"]
        if rows:
            worst = min(rows, key=lambda r: r["speedup_vs_torch"]["median"])
            out.append(
                (
                    "LR table, lrjax vs torch (schedules)",
                    ">= 300x faster",
                    f"{len(rows)} schedulers: lowest {worst['speedup_vs_torch']['median']:,.0f}x ({worst['id']})",
                    all(r["speedup_vs_torch"]["median"] >= 300 for r in rows),
                )
            )
            vs = [r for r in rows if "lrjax_over_optax" in r]
            if vs:
                worst = max(vs, key=lambda r: r["lrjax_over_optax"]["median"])
                out.append(
                    (
                        "LR table, lrjax time / optax time",
                        "<= 1.25",
                        f"{len(vs)} with an optax peer: highest "
                        f"{worst['lrjax_over_optax']['median']:.2f} ({worst['id']})",
                        all(r["lrjax_over_optax"]["median"] <= 1.25 for r in vs),
                    )
                )
        for r in results["lr_table"]["rows"]:
            if r["id"] == "ReduceLROnPlateau":
                out.append(
                    (
                        "LR table, ReduceLROnPlateau (10^6 updates, lax.scan) vs torch",
                        ">= 300x faster",
                        f"{r['speedup_vs_torch']['median']:,.0f}x",
                        r["speedup_vs_torch"]["median"] >= 300,
                    )
                )
    if "train_step" in results:
        rows = [r for r in results["train_step"]["rows"] if not r["schedule"].startswith("optax")]
        for model, form in dict.fromkeys((r["model"], r.get("form", "inject")) for r in rows):
            mine = [r for r in rows if r["model"] == model and r.get("form", "inject") == form]
            worst = max(mine, key=lambda r: r["ratio"]["median"])
            out.append(
                (
                    f"Train step ({model}, schedule {_FORM_LABEL[form]}), time / constant lr's",
                    "<= 1.05",
                    f"{len(mine)} schedules: highest {worst['ratio']['median']:.3f} ({worst['schedule']})",
                    all(r["ratio"]["median"] <= 1.05 for r in mine),
                )
            )
    if "mnist" in results:
        for r in results["mnist"]["rows"]:
            target = 4.0 if r["model"] == "linear" else 1.0
            one = r.get("steady_ratio_vs_1thread")
            out.append(
                (
                    f"MNIST trainer vs PyTorch example, {r['model']}, images/s (steady)",
                    f">= {target:g}x",
                    f"{r['steady_ratio']['median']:.2f}x torch with its default threads"
                    + (f" ({one['median']:.2f}x torch with 1 thread)" if one else ""),
                    r["steady_ratio"]["median"] >= target,
                )
            )
            out.append(
                (
                    f"MNIST {r['model']}, final test accuracy gap",
                    "within 0.5 points",
                    f"{r['accuracy_gap_points']:+.2f} points",
                    abs(r["accuracy_gap_points"]) <= 0.5,
                )
            )
    if "main_job" in results:
        r = results["main_job"]["rows"][0]
        for side, target in (("cold", 0.6), ("warm", 0.6)):
            ratio = r[f"{side}_over_torch"]
            out.append(
                (
                    f"Main job end to end ({side} compilation cache) vs the seed's PyTorch script, wall time",
                    f"<= {target:g}x" + (" (and less than cold)" if side == "warm" else ""),
                    f"{ratio['median']:.2f}x [{ratio['min']:.2f}-{ratio['max']:.2f}]: "
                    f"{r[f'{side}_wall_s']['median']:.2f} s vs torch {r['torch_wall_s']['median']:.2f} s",
                    ratio["median"] <= target,
                )
            )
    if "compiles" in results:
        rows = results["compiles"]["rows"]
        grows = []
        once = True
        for config in dict.fromkeys(r["config"] for r in rows):
            counts = [r["compiles"] for r in rows if r["config"] == config]
            grows.append(max(counts) > min(counts))
            for r in rows:
                if r["config"] == config:
                    if config.startswith("linear, progress"):
                        continue  # two scan lengths, by design (see README)
                    once &= all(v == 1 for v in r["step_function_compiles"].values())
        out.append(
            (
                "Compilations as the step count grows",
                "none",
                "constant in every configuration" if not any(grows) else "grows",
                not any(grows),
            )
        )
        out.append(("Compilations per step function", "one", "one each" if once else "more than one", once))
    out.append(("GPU figures", "measured on a GPU", "not measured: no GPU was available", None))
    return out


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------


def lr_table_md(res: dict[str, Any]) -> list[str]:
    p = res["params"]
    lines = [
        f"### 1. LR table of {p['steps']:,} steps",
        "",
        f"_{_env_line(res)}. {p['rounds']} torch tables and {p['rounds'] * p['pairs']} lrjax/optax pairs per "
        "scheduler, interleaved. Ratios: median [interquartile range, or min-max with fewer than 5 "
        "samples]._",
        "",
        "| scheduler | torch | lrjax | lrjax speed-up vs torch | optax peer | optax | lrjax / optax time | "
        "lrjax compile (build) | optax compile | max rel. diff. vs torch |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        optax = r.get("optax_s")
        lines.append(
            f"| {r['id']} | {fmt_seconds(r['torch_s']['median'])} | {fmt_seconds(r['lrjax_s']['median'])} | "
            f"{fmt_ratio(r['speedup_vs_torch'], 0)} | {r.get('optax_peer') or '-'} | "
            f"{fmt_seconds(optax['median']) if optax else '-'} | {fmt_ratio(r.get('lrjax_over_optax'))} | "
            f"{fmt_seconds(r['lrjax_compile_s'])}"
            f"{' (' + fmt_seconds(r['lrjax_build_s']) + ')' if r.get('lrjax_build_s', 0) >= 1e-3 else ''} | "
            f"{fmt_seconds(r['optax_compile_s']) if 'optax_compile_s' in r else '-'} | "
            f"{r['max_rel_diff_vs_torch']:.1e} |"
        )
    notes = [f"{r['id']}: {r['note']}" for r in res["rows"] if r.get("note")]
    plateau = next((r for r in res["rows"] if r["id"] == "ReduceLROnPlateau"), None)
    if plateau and "lrjax_plain_over_lrjax" in plateau:
        notes.append(
            f"ReduceLROnPlateau: with plain float32 comparisons (a traced threshold turns off the exact "
            f"float64-equivalent test) the 10^6 updates take {fmt_seconds(plateau['lrjax_plain_s']['median'])}, "
            f"{fmt_ratio(plateau['lrjax_plain_over_lrjax'], 3)} the time of the exact test"
        )
    if notes:
        lines += [""] + [f"* {n}" for n in notes]
    return lines


_FORM_LABEL = {"inject": "given to inject_hyperparams", "written": "written into inject_hyperparams' lr"}


def train_step_md(res: dict[str, Any], heading: str = "### 2. Schedule cost inside a jitted train step") -> list[str]:
    p = res["params"]
    rows = res["rows"]
    columns = list(dict.fromkeys((r["model"], r.get("form", "inject")) for r in rows))
    lines = [
        heading,
        "",
        f"_{_env_line(res)}. Batch {p['batch']}, Adam via `inject_hyperparams`, an epoch of "
        f"{p['steps_per_epoch']} steps in one `lax.scan`; {p['pairs_linear']} (linear) / {p['pairs_mlp']} (MLP) "
        "interleaved epoch pairs. Ratio: epoch time with the schedule / with a constant lr, median "
        "[interquartile range]; below it, µs per step with the schedule (with the constant lr)._",
        "",
        "| schedule | "
        + " | ".join(f"{m} {tuple(p['models'][m])}, schedule {_FORM_LABEL[f]}" for m, f in columns)
        + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name in dict.fromkeys(r["schedule"] for r in rows):
        cells = []
        for m, f in columns:
            r = next(
                (x for x in rows if x["model"] == m and x.get("form", "inject") == f and x["schedule"] == name), None
            )
            cells.append(
                f"{fmt_ratio(r['ratio'], 3)}<br>{r['schedule_step_s']['median'] * 1e6:.1f} "
                f"({r['constant_step_s']['median'] * 1e6:.1f}) µs"
                if r
                else "-"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def mnist_md(res: dict[str, Any]) -> list[str]:
    p = res["params"]
    lines = [
        "### 3. MNIST trainer vs the PyTorch example",
        "",
        f"_{_env_line(res)}. {p['epochs']} epochs, batch 64, Adam 1e-3, StepLR(2, 0.1) per epoch, "
        f"same initial weights and data order; {p['rounds']} rounds, the runs alternating. Images/s: training "
        "images / epoch wall time (training loop + test evaluation, as both programs time an epoch); "
        "steady = median of epochs 2..N; ratios are per round, median [interquartile range; min-max "
        "with fewer than 5 rounds]. torch runs with its "
        "default threads (the target's peer) and, beside it, with 1 thread._",
        "",
        "| model | JAX loop | JAX img/s | torch img/s (default threads) | JAX / torch | torch img/s (1 thread) | "
        "JAX / torch 1 thread | JAX / torch, end to end (incl. compile) | JAX epoch 1 | final accuracy JAX / torch |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in res["rows"]:
        one = r.get("torch_1thread_steady_images_per_s")
        one_text = f"{one['median']:,.0f}" if one else "-"
        lines.append(
            f"| {r['model']} | {r['jax_loop']} | {r['jax_steady_images_per_s']['median']:,.0f} | "
            f"{r['torch_steady_images_per_s']['median']:,.0f} ({r.get('torch_threads', '?')} threads) | "
            f"{fmt_ratio(r['steady_ratio'])} | {one_text} | "
            f"{fmt_ratio(r.get('steady_ratio_vs_1thread'))} | {fmt_ratio(r['end_to_end_ratio'])} | "
            f"{fmt_seconds(r['jax_first_epoch_s']['median'])} | "
            f"{statistics.median(r['jax_final_accuracy']):.2f}% / {statistics.median(r['torch_final_accuracy']):.2f}% |"
        )
    return lines


def compiles_md(res: dict[str, Any]) -> list[str]:
    lines = [
        "### 4. Compilations",
        "",
        f"_{_env_line(res)}. Counted with `jax.monitoring` (backend compile events), caches cleared before each run._",
        "",
        "| run | epochs (steps) | compilations | of which step functions | eager ops | compile s | trace+lower s |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for r in res["rows"]:
        steps = ", ".join(f"{k} {v}" for k, v in r["step_function_compiles"].items())
        lines.append(
            f"| trainer, {r['config']} | {r['epochs']} ({r['steps']}) | {r['compiles']} | {steps} | "
            f"{r['eager_op_compiles']} | {r['backend_compile_s']:.2f} | {r['trace_s'] + r['lower_s']:.2f} |"
        )
    for r in res.get("lrjax", []):
        lines.append(
            f"| {r['case']} | - | {r['compiles']} | {', '.join(f'{k} {v}' for k, v in r['by_name'].items())} "
            f"| - | {r['backend_compile_s']:.2f} | {r['trace_s'] + r['lower_s']:.2f} |"
        )
    return lines


# LR-table ids (torch class names) -> train-step schedule names.
_STEP_NAME = lrjax.registry.torch_classes()


def ratios_md(results: dict[str, dict[str, Any]]) -> list[str]:
    """One row per scheduler: every ratio measured for it (medians; the spreads are in the full tables)."""
    table = {r["id"]: r for r in results.get("lr_table", {}).get("rows", [])}
    steps = results.get("train_step", {}).get("rows", [])

    def step(name: str, model: str, form: str) -> str:
        r = next(
            (x for x in steps if x["schedule"] == name and x["model"] == model and x.get("form", "inject") == form),
            None,
        )
        return f"{r['ratio']['median']:.2f}" if r else "-"

    lines = [
        "| scheduler | 10⁶-step table: speed-up vs torch | time vs optax's | train step / constant lr: "
        "linear, schedule in `inject_hyperparams` | linear, lr written | MLP, in `inject_hyperparams` |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for tid, name in _STEP_NAME.items():
        r = table.get(tid)
        if r is None and not any(x["schedule"] == name for x in steps):
            continue
        speed = f"{r['speedup_vs_torch']['median']:,.0f}x" if r else "-"
        vs = f"{r['lrjax_over_optax']['median']:.2f}" if r and "lrjax_over_optax" in r else "-"
        written = "(always written)" if name == "reduce_lr_on_plateau" else step(name, "linear", "written")
        lines.append(
            f"| {tid} | {speed} | {vs} | {step(name, 'linear', 'inject')} | {written} | {step(name, 'mlp', 'inject')} |"
        )
    return lines


def render(results: dict[str, dict[str, Any]], runtime_s: float | None = None, command: str | None = None) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python -m benchmarks.run_all` (see [README.md](../README.md)); every figure is a "
        "ratio against its peer measured in the same run.",
        "",
    ]
    if command:
        lines += [f"Command: `{command}`" + (f", {runtime_s / 60:.1f} min in all." if runtime_s else "."), ""]
    lines += ["## Targets", "", "| what | target | measured | |", "|---|---|---|---|"]
    for what, target, measured, met in targets(results):
        lines.append(f"| {what} | {target} | {measured} | {_ok(met)} |")
    lines.append("")
    if "lr_table" in results or "train_step" in results:
        lines += ["## Ratios per scheduler (medians)", ""] + ratios_md(results) + [""]
    for name, fn in (
        ("lr_table", lr_table_md),
        ("train_step", train_step_md),
        ("mnist", mnist_md),
        ("compiles", compiles_md),
    ):
        if name in results:
            lines += fn(results[name]) + [""]
        if name == "train_step" and "train_step_sequential" in results:
            lines += train_step_md(
                results["train_step_sequential"],
                "#### 2b. Diagnostic: the same with XLA's concurrency-optimized scheduler off",
            ) + [""]
    lines += [
        "### 5. GPU",
        "",
        "Not measured: no GPU was available to this run. `python -m benchmarks.run_all "
        "--device gpu` runs every benchmark above on the GPU (JAX side; torch schedulers and the PyTorch "
        "examples stay on the CPU).",
        "",
    ]
    return "\n".join(lines)


def write(out: str, runtime_s: float | None = None, command: str | None = None) -> str:
    """Writes RESULTS.md; without ``command``, the one ``run_all`` recorded in ``run_all.json`` (if any)."""
    results = load(out)
    run_path = os.path.join(out, "run_all.json")
    if command is None and os.path.exists(run_path):
        with open(run_path) as f:
            run = json.load(f)
        command, runtime_s = run.get("command"), run.get("runtime_s")
    text = render(results, runtime_s, command)
    path = os.path.join(out, "RESULTS.md")
    with open(path, "w") as f:
        f.write(text)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=_common.RESULTS_DIR)
    args = p.parse_args(argv)
    print(f"wrote {write(args.out)}")


if __name__ == "__main__":
    main()
