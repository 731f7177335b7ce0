"""How fast is an epoch: ``lax.scan`` over the epoch vs a Python loop over a jitted step, per model.

``python -m examples.mnist.benchmark`` measures, on the machine at hand, the train-step time of

* ``scan``: the whole epoch as one ``jax.lax.scan`` (one dispatch per epoch);
* ``scan/20``: the epoch as 20 scans (what the trainer does to move its progress bar);
* ``python``: a Python loop calling the jitted step once per batch;
* ``python, no inject``: the same loop with ``optax.adam(learning_rate=schedule)`` instead of
  ``optax.inject_hyperparams`` (what the injected lr/momentum cost);
* ``torch``: the PyTorch example's loop (linear model only; needs torch).

Each figure is the median over ``--repeats`` timed epochs after a compiled warm-up, with
``block_until_ready``. The results decide ``epochs._LOOP``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import numpy as np
import optax

from examples.mnist import epochs, input_pipeline, train
from examples.mnist.configs.default import get_config


def _time(fn, repeats: int) -> float:
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_model(model: str, steps: int, repeats: int) -> dict[str, float]:
    config = get_config().replace(model=model, progress=False)
    train_ds, _ = input_pipeline.load(config.dataset)
    batches = input_pipeline.batch(train_ds, input_pipeline.epoch_order(0, 1, len(train_ds)), config.batch_size)
    batches = jax.device_put(jax.tree.map(lambda a: a[:steps], batches))
    plan, tx, graphdef, _ = train.setup(config, steps)
    state0 = train.create_train_state(config, tx, plan)
    results = {}

    def fresh():
        return jax.tree.map(lambda x: x.copy(), state0)

    scan_runner = epochs.Runner(
        train.make_train_step(graphdef, tx, plan), train.make_eval_step(graphdef), None, "scan", progress=False
    )

    def run_scan(pieces):
        def go():
            state = fresh()
            first = jax.device_put(np.int32(0))
            for a, b in epochs.chunks(steps, pieces):
                state, _ = scan_runner._scan(state, batches, first, b - a)
            jax.block_until_ready(state)

        return go

    def run_python(step_at):
        def go():
            state = fresh()
            first = jax.device_put(np.int32(0))
            for i in range(steps):
                state, _ = step_at(state, batches, first)
            jax.block_until_ready(state)

        return go

    results["scan"] = _time(run_scan(1), repeats)
    results["scan/20"] = _time(run_scan(20), repeats)
    results["python"] = _time(run_python(scan_runner._step_at), repeats)

    # The same loop without inject_hyperparams: the schedule inside optax.adam.
    plain_tx = optax.adam(learning_rate=plan.lr)
    loss_fn = train.make_loss_fn(graphdef)

    def plain_step(carry, batches, i):
        params, opt_state = carry
        batch = jax.tree.map(lambda a: a[i], batches)
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
        updates, opt_state = plain_tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    plain_step = jax.jit(plain_step, donate_argnums=0)

    def run_plain():
        carry = (jax.tree.map(lambda x: x.copy(), state0.params), plain_tx.init(state0.params))
        for i in range(steps):
            carry, _ = plain_step(carry, batches, np.int32(i))
        jax.block_until_ready(carry)

    results["python, no inject"] = _time(run_plain, repeats)
    results["python, nnx.jit"] = _time(_nnx_jit_loop(model, plan.lr, batches, steps), repeats)
    if model == "linear":
        results.update(bench_torch(train_ds, steps, config.batch_size, repeats))
    return results


def _nnx_jit_loop(model_name: str, schedule, batches, steps: int):
    """The idiomatic NNX loop: ``nnx.jit`` on (model, nnx.Optimizer) objects, optax.adam(schedule)."""
    from flax import nnx

    from examples.mnist import models

    per_step = [jax.tree.map(lambda a, i=i: a[i], batches) for i in range(steps)]  # sliced beforehand

    @nnx.jit
    def step(model, optimizer, batch):
        def loss_fn(model):
            logits = model(batch["image"].astype(jax.numpy.float32) / 255.0)
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
            return jax.numpy.sum(losses * batch["mask"]) / jax.numpy.sum(batch["mask"])

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    model = models.create(model_name, 0)
    optimizer = nnx.Optimizer(model, optax.adam(schedule), wrt=nnx.Param)

    def go():  # keeps training the same model: the time per step does not depend on the values
        for batch in per_step:
            loss = step(model, optimizer, batch)
        jax.block_until_ready((loss, nnx.state(model)))

    return go


def bench_torch(train_ds, steps: int, batch_size: int, repeats: int) -> dict[str, float]:
    try:
        import torch
    except ImportError:
        return {}
    from examples.mnist.torch_reference import SimpleNet, _tensors

    data = _tensors(train_ds.images, train_ds.labels)
    order = input_pipeline.epoch_order(0, 1, len(train_ds))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, sampler=[int(i) for i in order])
    batches = [b for _, b in zip(range(steps), loader)]
    model = SimpleNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    criterion = torch.nn.CrossEntropyLoss()

    def epoch(source) -> None:  # the seed's loop body, loss.item() (a sync per step) included
        total = 0
        for x, y in source:
            opt.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            opt.step()
            total += loss.item()
        sched.step()

    out = {"torch (batches prebuilt)": _time(lambda: epoch(batches), repeats)}
    if steps >= len(loader):
        out["torch (DataLoader, as the seed)"] = _time(lambda: epoch(loader), repeats)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # torch's thread pool suffers most when other processes share the cores
    out["torch (batches prebuilt, 1 thread)"] = _time(lambda: epoch(batches), repeats)
    torch.set_num_threads(threads)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["linear", "cnn"])
    p.add_argument("--steps", type=int, nargs="+", default=[63, 16], help="batches per timed epoch, per model")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    print(
        f"jax {jax.__version__}, optax {optax.__version__}, backend {jax.default_backend()}, "
        f"devices {jax.devices()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    for model, steps in zip(args.models, args.steps + args.steps[-1:] * len(args.models)):
        results = bench_model(model, steps, args.repeats)
        base = results["python"]
        print(f"\n{model}: {steps} steps of batch 64, median of {args.repeats}")
        for name, seconds in results.items():
            print(
                f"  {name:36s} {seconds * 1e3:9.2f} ms/epoch  {seconds / steps * 1e6:9.1f} us/step  "
                f"{base / seconds:6.2f}x the python loop's speed"
            )


if __name__ == "__main__":
    main()
