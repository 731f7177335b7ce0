"""Runs every benchmark, writes ``benchmarks/results/*.json`` and ``benchmarks/results/RESULTS.md``.

    python -m benchmarks.run_all                 # everything (about 8 min on 2 idle CPU cores)
    python -m benchmarks.run_all --quick         # tiny sizes: checks that the harness works (about 40 s)
    python -m benchmarks.run_all --device gpu    # the JAX side on a GPU
    python -m benchmarks.run_all --only lr_table,compiles

Each benchmark is also a script of its own (``python -m benchmarks.lr_table --help`` etc.).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchmarks import _common

BENCHMARKS = ("lr_table", "train_step", "mnist", "main_job", "compiles")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_common_args(p)
    p.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    p.add_argument("--rounds", type=int, default=3, help="torch tables per scheduler (lr_table)")
    p.add_argument("--mnist-rounds", type=int, default=5, help="trainer runs per side and model (mnist)")
    p.add_argument("--pairs", type=int, default=20, help="lrjax/optax pairs per round (lr_table)")
    p.add_argument("--step-pairs", type=int, default=150, help="epoch pairs per schedule, linear model (train_step)")
    args = p.parse_args(argv)
    only = [s for s in args.only.split(",") if s] or list(BENCHMARKS)
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(BENCHMARKS)}")
    _common.select_device(args.device)
    command = "python -m benchmarks.run_all " + " ".join(argv if argv is not None else sys.argv[1:])
    start = time.perf_counter()
    timings = {}
    for name in only:
        t0 = time.perf_counter()
        if name == "lr_table":
            from benchmarks import lr_table

            if args.quick:
                lr_table.run(2000, 1, 2, out=args.out)
            else:
                lr_table.run(1_000_000, args.rounds, args.pairs, out=args.out)
        elif name == "train_step":
            from benchmarks import train_step

            if args.quick:
                train_step.run(
                    2,
                    ["linear"],
                    ["per_epoch(step_lr)", "cosine_annealing_lr", "reduce_lr_on_plateau"],
                    out=args.out,
                    steps=4,
                )
                train_step.run_sequential_diagnostic(2, args.out, steps=4)
            else:
                train_step.run(args.step_pairs, out=args.out)
                train_step.run_sequential_diagnostic(args.step_pairs, args.out)
        elif name == "mnist":
            from benchmarks import mnist

            if args.quick:
                mnist.run(1, ["linear", "cnn"], 2, args.out, train_examples=256, test_examples=128)
            else:
                mnist.run(args.mnist_rounds, out=args.out)
        elif name == "main_job":
            from benchmarks import main_job

            if args.quick:
                main_job.run(2, args.out, epochs=1)
            else:
                main_job.run(args.mnist_rounds, args.out)
        elif name == "compiles":
            from benchmarks import compiles

            if args.quick:
                compiles.run([1, 2], [1], 20, args.out, train_examples=128)
            else:
                compiles.run(out=args.out)
        timings[name] = time.perf_counter() - t0
        print(f"[{name}: {timings[name]:.0f} s]\n", flush=True)
    runtime = time.perf_counter() - start
    from benchmarks import report

    if set(only) == set(BENCHMARKS):  # a complete run: its command and time head RESULTS.md
        with open(os.path.join(args.out, "run_all.json"), "w") as f:
            json.dump(
                {
                    "command": command.strip(),
                    "runtime_s": runtime,
                    "seconds": timings,
                    "time_utc": _common.environment()["time_utc"],
                },
                f,
                indent=1,
            )
            f.write("\n")
    path = report.write(
        args.out,
        runtime if set(only) == set(BENCHMARKS) else None,
        command.strip() if set(only) == set(BENCHMARKS) else None,
    )
    print(f"wrote {path}")
    print("times: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f"; total {runtime:.0f} s")


if __name__ == "__main__":
    main()
