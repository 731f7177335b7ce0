"""Benchmark 3: the MNIST trainer (examples/mnist) against the PyTorch example, same data, batches, schedule.

Both sides run the seed's recipe: Adam (lr 1e-3), ``StepLR(step_size=2, gamma=0.1)`` stepped after
each epoch, batch 64, 5 epochs, on the 4,000 / 1,000 embedded MNIST digits, from the same initial
weights and in the same data order (``input_pipeline.epoch_order``).

* JAX: ``examples.mnist.train.train_and_evaluate`` (the trainer as ``python -m examples.mnist.main``
  runs it; no progress bar, no plot, no files), linear model and CNN, with its own loop choice.
* torch (default threads): ``examples.mnist.torch_reference.train_torch`` for the linear model; for
  the CNN, ``benchmarks/torch_cnn.py`` (the same loop with the Flax CNN's architecture and weights).

Throughput: 4,000 training images / epoch wall time, where an epoch is what both programs time:
the training loop plus the evaluation on the 1,000 test digits. "Steady" is the median over
epochs 2..5 (JAX compiles during epoch 1); "end to end" includes epoch 1. Runs alternate (JAX,
torch, torch with 1 thread; the order rotating) for ``--rounds`` rounds; the ratio is JAX / torch
per round. torch's default thread pool (one thread per core) suffers badly when other processes
share the cores, so each round also runs torch with ``torch.set_num_threads(1)``, reported beside it.

    python -m benchmarks.mnist [--rounds 5] [--models linear,cnn] [--epochs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from benchmarks import _common


def _data(config):
    from examples.mnist import input_pipeline

    train_ds, test_ds = input_pipeline.load(
        config.dataset, config.data_dir, config.train_examples, config.test_examples
    )
    orders = [input_pipeline.epoch_order(config.seed, e, len(train_ds)) for e in range(1, config.epochs + 1)]
    return train_ds, test_ds, orders


def run_jax(config) -> dict[str, Any]:
    from examples.mnist import train

    lines: list[str] = []
    start = time.perf_counter()
    result = train.train_and_evaluate(config, None, log=lines.append)
    wall = time.perf_counter() - start
    return {
        "history": [
            {k: row[k] for k in ("epoch", "lr", "train_loss", "test_accuracy", "seconds")} for row in result.history
        ],
        "wall_s": wall,
        "log": lines,
    }


def run_torch(config, model: str, threads: int | None = None) -> dict[str, Any]:
    """The PyTorch example; ``threads``: ``torch.set_num_threads`` for this run (None: torch's default)."""
    import torch

    default = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        out = _run_torch(config, model)
    finally:
        torch.set_num_threads(default)
    out["threads"] = threads or default
    return out


def _run_torch(config, model: str) -> dict[str, Any]:
    import numpy as np

    from examples.mnist import train

    train_ds, test_ds, orders = _data(config)
    _, params = train.create_model(config)
    lines: list[str] = []
    start = time.perf_counter()
    if model == "linear":
        from examples.mnist.torch_reference import train_torch

        history, _ = train_torch(
            np.asarray(params["fc"]["kernel"][...]),
            np.asarray(params["fc"]["bias"][...]),
            (train_ds.images, train_ds.labels),
            (test_ds.images, test_ds.labels),
            orders,
            batch_size=config.batch_size,
            optimizer="Adam",
            optimizer_kwargs={"lr": config.learning_rate},
            scheduler="StepLR",
            scheduler_kwargs={"step_size": 2, "gamma": 0.1},
            log=lines.append,
        )
    else:
        from benchmarks.torch_cnn import train_torch_cnn

        history = train_torch_cnn(
            params,
            (train_ds.images, train_ds.labels),
            (test_ds.images, test_ds.labels),
            orders,
            batch_size=config.batch_size,
            lr=config.learning_rate,
            step_size=2,
            gamma=0.1,
            log=lines.append,
        )
    wall = time.perf_counter() - start
    return {
        "history": [{k: row[k] for k in ("epoch", "lr", "train_loss", "test_accuracy", "seconds")} for row in history],
        "wall_s": wall,
        "log": lines,
    }


def _throughput(run: dict[str, Any], images: int) -> dict[str, float]:
    seconds = [row["seconds"] for row in run["history"]]
    steady = seconds[1:] or seconds
    return {
        "steady_images_per_s": images / statistics.median(steady),
        "end_to_end_images_per_s": images * len(seconds) / sum(seconds),
        "first_epoch_s": seconds[0],
        "steady_epoch_s": statistics.median(steady),
    }


def bench_model(model: str, rounds: int, epochs: int, train_examples: int | None, test_examples: int | None):
    from examples.mnist.configs.default import get_config

    config = get_config().replace(
        model=model,
        epochs=epochs,
        progress=False,
        plot=False,
        train_examples=train_examples,
        test_examples=test_examples,
        schedule={"name": "step_lr", "step_size": 2, "gamma": 0.1},
    )
    train_ds, _, _ = _data(config)
    images = len(train_ds)
    runs: dict[str, list[dict[str, Any]]] = {"jax": [], "torch": [], "torch_1thread": []}
    sides = list(runs)
    for r in range(rounds):
        for side in sides[r % 3 :] + sides[: r % 3]:  # rotate the order from round to round
            if side == "jax":
                out = run_jax(config)
            else:
                out = run_torch(config, model, threads=1 if side == "torch_1thread" else None)
            out["throughput"] = _throughput(out, images)
            runs[side].append(out)
            print(
                f"  round {r + 1} {side:13s}: steady {out['throughput']['steady_images_per_s']:9.0f} img/s, "
                f"epoch 1 {out['throughput']['first_epoch_s']:.2f} s, "
                f"final accuracy {out['history'][-1]['test_accuracy']:.2f}%",
                flush=True,
            )

    def ratio(key: str, peer: str) -> list[float]:
        return [j["throughput"][key] / t["throughput"][key] for j, t in zip(runs["jax"], runs[peer])]

    steady, e2e = ratio("steady_images_per_s", "torch"), ratio("end_to_end_images_per_s", "torch")
    steady_1, e2e_1 = ratio("steady_images_per_s", "torch_1thread"), ratio("end_to_end_images_per_s", "torch_1thread")
    acc_j = [run["history"][-1]["test_accuracy"] for run in runs["jax"]]
    acc_t = [run["history"][-1]["test_accuracy"] for run in runs["torch"]]
    row = {
        "model": model,
        "epochs": epochs,
        "train_images": images,
        "batch_size": config.batch_size,
        "schedule": "Adam(1e-3) + StepLR(step_size=2, gamma=0.1) per epoch",
        "jax_loop": _loop(config),
        "jax_steady_images_per_s": _common.summary([r["throughput"]["steady_images_per_s"] for r in runs["jax"]]),
        "torch_steady_images_per_s": _common.summary([r["throughput"]["steady_images_per_s"] for r in runs["torch"]]),
        "jax_end_to_end_images_per_s": _common.summary(
            [r["throughput"]["end_to_end_images_per_s"] for r in runs["jax"]]
        ),
        "torch_end_to_end_images_per_s": _common.summary(
            [r["throughput"]["end_to_end_images_per_s"] for r in runs["torch"]]
        ),
        "jax_first_epoch_s": _common.summary([r["throughput"]["first_epoch_s"] for r in runs["jax"]]),
        "torch_threads": runs["torch"][0]["threads"],
        "torch_1thread_steady_images_per_s": _common.summary(
            [r["throughput"]["steady_images_per_s"] for r in runs["torch_1thread"]]
        ),
        "steady_ratio": _common.summary(steady),
        "end_to_end_ratio": _common.summary(e2e),
        "steady_ratio_vs_1thread": _common.summary(steady_1),
        "end_to_end_ratio_vs_1thread": _common.summary(e2e_1),
        "jax_final_accuracy": acc_j,
        "torch_final_accuracy": acc_t,
        "accuracy_gap_points": statistics.median(acc_j) - statistics.median(acc_t),
        "runs": runs,
    }
    return row


def _loop(config) -> str:
    from examples.mnist import epochs

    try:
        return epochs.choose_loop(config.loop, config.model)
    except Exception:  # noqa: BLE001 - the trainer's API may change; the figure does not depend on it
        return "?"


def run(
    rounds: int = 5,
    models: list[str] | None = None,
    epochs: int = 5,
    out: str = _common.RESULTS_DIR,
    train_examples: int | None = None,
    test_examples: int | None = None,
) -> dict[str, Any]:
    env = _common.print_environment("MNIST trainer (examples/mnist) vs the PyTorch example: throughput and accuracy")
    rows = []
    for model in models or ["linear", "cnn"]:
        print(f"\n{model}: {epochs} epochs, batch 64, {rounds} rounds", flush=True)
        row = bench_model(model, rounds, epochs, train_examples, test_examples)
        rows.append(row)
        print(
            f"  => steady throughput JAX/torch {_common.fmt_ratio(row['steady_ratio'])} "
            f"(torch 1 thread: {_common.fmt_ratio(row['steady_ratio_vs_1thread'])}), end to end "
            f"{_common.fmt_ratio(row['end_to_end_ratio'])}; accuracy JAX {row['jax_final_accuracy']} "
            f"torch {row['torch_final_accuracy']}",
            flush=True,
        )
    params = {
        "rounds": rounds,
        "epochs": epochs,
        "train_examples": train_examples,
        "test_examples": test_examples,
        "targets": {"linear": ">= 4x torch", "cnn": ">= 1.0x torch", "accuracy": "within 0.5 points"},
    }
    path = _common.write_result(out, "mnist", env, params, rows)
    print(f"wrote {path}")
    return {"env": env, "params": params, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_common_args(p)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--models", default="linear,cnn")
    args = p.parse_args(argv)
    _common.select_device(args.device)
    train_examples = test_examples = None
    if args.quick:
        args.rounds, args.epochs, train_examples, test_examples = 1, 2, 256, 128
    run(args.rounds, [m for m in args.models.split(",") if m], args.epochs, args.out, train_examples, test_examples)


if __name__ == "__main__":
    main()
