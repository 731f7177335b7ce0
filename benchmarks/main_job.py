"""Benchmark 5: the README's main job end to end, whole processes, against the seed's PyTorch script.

Each round runs, one after the other (the order rotating from round to round):

* ``torch``: ``python benchmarks/torch_seed.py``, the seed's PyTorch example on the same 4,000 /
  1,000 embedded digits (Adam, StepLR, batch 64, 5 epochs; torch's default threads);
* ``cold``: ``python -m examples.mnist.main`` with an empty JAX compilation cache and a new
  workdir: a user's first run (imports, data, compilation, training, checkpoints, logs);
* ``warm``: the same command with the cache the runs before it filled (every later run).

Each is a whole process timed with ``time.perf_counter`` around ``subprocess.run``; its CPU time
comes from ``resource.getrusage(RUSAGE_CHILDREN)``. The ratios cold / torch and warm / torch are
taken within each round, so that a machine whose speed drifts between rounds compares fairly;
the medians are reported with their spread. Every run's output is checked: the seed's ten lines.

    python -m benchmarks.main_job [--rounds 5] [--epochs 5]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks import _common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_LINES = re.compile(r"^(Epoch \d+, Loss: \d+\.\d{4}, LR: \S+|Test Accuracy: \d+\.\d{2}%)$", re.M)


def _timed(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}: {proc.stderr[-2000:]}")
    return {
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "seed_lines": len(SEED_LINES.findall(proc.stdout)),
        "stdout": proc.stdout,
    }


def run(rounds: int = 5, out: str = _common.RESULTS_DIR, epochs: int = 5) -> dict[str, Any]:
    env_info = _common.print_environment("The main job end to end (whole processes) vs the seed's PyTorch script")
    scratch = tempfile.mkdtemp(prefix="mnist-main-job-")
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    main = [sys.executable, "-m", "examples.mnist.main", "--epochs", str(epochs), "--no-progress"]
    warm_cache = os.path.join(scratch, "warm-cache")
    sides = {
        "torch": lambda r: [sys.executable, os.path.join("benchmarks", "torch_seed.py")],
        "cold": lambda r: (
            main
            + [
                "--workdir",
                os.path.join(scratch, f"cold-{r}"),
                "--compilation-cache",
                os.path.join(scratch, f"cold-cache-{r}"),
            ]
        ),
        "warm": lambda r: main + ["--workdir", os.path.join(scratch, f"warm-{r}"), "--compilation-cache", warm_cache],
    }
    try:
        _timed(sides["warm"](-1), env)  # fills the warm cache (and warms the disk cache for every side)
        _timed(sides["torch"](-1), env)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        names = list(sides)
        for r in range(rounds):
            for name in names[r % 3 :] + names[: r % 3]:
                result = _timed(sides[name](r), env)
                runs[name].append(result)
                print(
                    f"  round {r + 1} {name:5s}: {result['wall_s']:.2f} s wall, {result['cpu_s']:.2f} s CPU, "
                    f"{result['seed_lines']} seed lines",
                    flush=True,
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for name, results in runs.items():
        expected_lines = 10 if name == "torch" else 2 * epochs  # the seed script runs its 5 epochs
        for result in results:
            if result["seed_lines"] != expected_lines:
                raise RuntimeError(
                    f"{name} printed {result['seed_lines']} seed-style lines, not {expected_lines}:\n{result['stdout']}"
                )
    wall = {name: [x["wall_s"] for x in results] for name, results in runs.items()}
    row = {
        "job": f"python -m examples.mnist.main (linear, Adam + StepLR, batch 64, {epochs} epochs, "
        "4,000 / 1,000 digits)",
        "peer": "python benchmarks/torch_seed.py (the seed's PyTorch example, same digits, torch's default threads)",
        **{f"{name}_wall_s": _common.summary(wall[name]) for name in sides},
        **{f"{name}_cpu_s": _common.summary([x["cpu_s"] for x in runs[name]]) for name in sides},
        "cold_over_torch": _common.ratios(wall["cold"], wall["torch"]),
        "warm_over_torch": _common.ratios(wall["warm"], wall["torch"]),
        "target": "cold <= 0.6x torch's wall time, warm less",
    }
    print(
        f"  => whole process, median of {rounds} rounds: torch {row['torch_wall_s']['median']:.2f} s, "
        f"JAX cold {row['cold_wall_s']['median']:.2f} s ({_common.fmt_ratio(row['cold_over_torch'])} torch), "
        f"warm {row['warm_wall_s']['median']:.2f} s ({_common.fmt_ratio(row['warm_over_torch'])} torch)",
        flush=True,
    )
    params = {"rounds": rounds, "epochs": epochs}
    path = _common.write_result(out, "main_job", env_info, params, [row])
    print(f"wrote {path}")
    return {"env": env_info, "params": params, "rows": [row]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--out", default=_common.RESULTS_DIR)
    p.add_argument("--quick", action="store_true", help="2 rounds of 1 epoch: checks the harness only")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.epochs = 2, 1
    run(args.rounds, args.out, args.epochs)


if __name__ == "__main__":
    main()
