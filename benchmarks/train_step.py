"""Benchmark 2: what a schedule costs inside a jitted training step.

The seed's linear model (784 -> 10) and an MLP (784 -> 256 -> 256 -> 10, ReLU), batch 64, softmax
cross-entropy, Adam through ``optax.inject_hyperparams``; one epoch (62 batches of the embedded
MNIST digits) is one ``jax.lax.scan`` inside one ``jax.jit`` (state donated). The peer of every
schedule is the same epoch with a constant learning rate (``inject_hyperparams(adam)(learning_rate=1e-3)``),
timed alternately with it: the ratio is (epoch time with the schedule) / (epoch time with the
constant), median and interquartile range over the pairs.

Two ways of driving Adam's lr from a schedule, both through ``inject_hyperparams``:

* ``inject``: ``inject_hyperparams(optax.adam)(learning_rate=schedule)`` (optax evaluates it at its
  own update count); measured for both models;
* ``written``: ``inject_hyperparams(optax.adam)(learning_rate=1e-3)``, and each step writes
  ``schedule(opt_state.count)`` into ``opt_state.hyperparams`` (what the MNIST trainer does);
  measured for the linear model.

ReduceLROnPlateau: every step writes the plateau state's lr into the optimizer's hyperparameters,
and the epoch ends with ``plateau.update(state, mean loss)`` inside the same jitted function.

``--sequential-diagnostic`` runs the linear model's ``inject`` form again in a subprocess with
``XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false`` (see README.md for why).

    python -m benchmarks.train_step [--pairs 150] [--models linear,mlp] [--only cosine_annealing_lr,...]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from benchmarks import _common

BATCH = 64
LR = 1e-3
MODELS = {"linear": [784, 10], "mlp": [784, 256, 256, 10]}


def schedules(steps_per_epoch: int) -> dict[str, Callable[[], dict[str, Any]]]:
    """name -> factory of {"lr": schedule or float or "plateau", "b1": momentum schedule (optional), "what": str}
    (built only when measured: some schedules precompute tables)."""
    import jax.numpy as jnp
    import optax

    import lrjax

    def inv(t):
        return 1.0 / (1.0 + 1e-4 * jnp.asarray(t, jnp.float32))

    n = steps_per_epoch

    def spec(lr, what, **extra):
        return lambda: {"lr": lr(), "what": what, **{k: v() for k, v in extra.items()}}

    def warmup_cosine():
        return [
            lrjax.linear_lr(LR, start_factor=0.01, total_iters=5 * n),
            lrjax.cosine_annealing_lr(LR, T_max=100 * n, eta_min=1e-5),
        ]

    return {
        "constant (peer)": spec(lambda: LR, "inject_hyperparams(adam)(learning_rate=1e-3)"),
        "step_lr": spec(lambda: lrjax.step_lr(LR, step_size=2 * n, gamma=0.1), "step_size 2 epochs"),
        "per_epoch(step_lr)": spec(
            lambda: lrjax.per_epoch(lrjax.step_lr(LR, step_size=2, gamma=0.1), n),
            "the trainer's default: StepLR(2, 0.1) stepped per epoch",
        ),
        "multi_step_lr": spec(lambda: lrjax.multi_step_lr(LR, [10 * n, 20 * n, 30 * n], 0.1), "3 milestones"),
        "constant_lr": spec(lambda: lrjax.constant_lr(LR, factor=0.5, total_iters=5 * n), "factor 0.5, 5 epochs"),
        "linear_lr": spec(lambda: lrjax.linear_lr(LR, start_factor=0.1, total_iters=5 * n), "warm-up, 5 epochs"),
        "exponential_lr": spec(lambda: lrjax.exponential_lr(LR, gamma=0.9999), "gamma 0.9999"),
        "polynomial_lr": spec(lambda: lrjax.polynomial_lr(LR, total_iters=1000 * n, power=2.0), "power 2"),
        "cosine_annealing_lr": spec(
            lambda: lrjax.cosine_annealing_lr(LR, T_max=100 * n, eta_min=1e-5), "T_max 100 epochs"
        ),
        "cosine_annealing_warm_restarts": spec(
            lambda: lrjax.cosine_annealing_warm_restarts(LR, T_0=5 * n, T_mult=2), "T_0 5 epochs, T_mult 2"
        ),
        "cyclic_lr": spec(lambda: lrjax.cyclic_lr(1e-4, LR, step_size_up=2 * n), "triangular"),
        "one_cycle_lr": spec(lambda: lrjax.one_cycle_lr(LR, total_steps=1000 * n), "cos, 2 phases"),
        "one_cycle_lr + momentum": spec(
            lambda: lrjax.one_cycle_lr(LR, total_steps=1000 * n),
            "Adam's b1 cycled too, as torch's OneCycleLR does",
            b1=lambda: lrjax.one_cycle_momentum(total_steps=1000 * n),
        ),
        "lambda_lr": spec(lambda: lrjax.lambda_lr(LR, inv), "1 / (1 + 1e-4 t)"),
        "multiplicative_lr": spec(lambda: lrjax.multiplicative_lr(LR, lambda e: 0.9999), "constant factor"),
        "sequential_lr": spec(
            lambda: lrjax.sequential_lr(warmup_cosine(), milestones=[5 * n]), "linear warm-up, then cosine"
        ),
        "chained_scheduler": spec(
            lambda: lrjax.chained_scheduler(warmup_cosine()),
            "LinearLR x CosineAnnealingLR(eta_min>0): table, then closed form",
        ),
        "reduce_lr_on_plateau": spec(lambda: "plateau", "lr from the plateau state; update(mean loss) per epoch"),
        "optax.warmup_cosine_decay_schedule": spec(
            lambda: optax.warmup_cosine_decay_schedule(LR * 0.01, LR, 5 * n, 105 * n, 1e-5),
            "for reference: optax's own schedule",
        ),
    }


# ------------------------------------------------------------------------------------------------
# Model, data, epoch
# ------------------------------------------------------------------------------------------------


def init_params(sizes: list[int], seed: int = 0) -> list[dict[str, Any]]:
    """torch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        params.append(
            {
                "w": jnp.asarray(rng.uniform(-bound, bound, (fan_in, fan_out)), jnp.float32),
                "b": jnp.asarray(rng.uniform(-bound, bound, (fan_out,)), jnp.float32),
            }
        )
    return params


def forward(params, x):
    import jax

    for i, layer in enumerate(params):
        x = x @ layer["w"] + layer["b"][None, :]
        if i < len(params) - 1:
            x = jax.nn.relu(x)
    return x


def load_batches(steps: int | None = None) -> dict[str, Any]:
    """The 4,000 training digits of the embedded MNIST (the trainer's data), shuffled once, as
    ``steps`` full batches: (steps, 64, 784) uint8 images and (steps, 64) int32 labels."""
    import jax
    import numpy as np

    from examples.mnist import input_pipeline

    train_ds, _ = input_pipeline.load("embedded")
    order = np.random.default_rng(0).permutation(len(train_ds))
    n = len(train_ds) // BATCH if steps is None else steps
    idx = np.resize(order, n * BATCH)
    images = train_ds.images[idx].reshape(n, BATCH, 784)
    labels = train_ds.labels[idx].astype(np.int32).reshape(n, BATCH)
    return jax.device_put({"image": images, "label": labels})


FORMS = ("inject", "written")


def make_epoch(sizes: list[int], spec: dict[str, Any], form: str = "inject") -> tuple[Callable, Any]:
    """``(epoch(carry, batches) -> (carry, losses), carry0)``: one jitted, donated lax.scan over the batches.

    ``form="inject"``: the schedule is given to ``inject_hyperparams(adam)(learning_rate=schedule)``,
    which evaluates it at its own update count. ``form="written"``: ``inject_hyperparams(adam)`` holds
    a number, and each step writes ``schedule(count)`` into its hyperparameters, as the MNIST trainer
    does (and as ReduceLROnPlateau's lr is always written).
    """
    import jax
    import jax.numpy as jnp
    import optax

    import lrjax

    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    plateau = lrjax.reduce_lr_on_plateau(factor=0.5, patience=2) if spec["lr"] == "plateau" else None
    scheduled = {k: spec[k] for k in ("lr", "b1") if k in spec and callable(spec[k])}
    names = {"lr": "learning_rate", "b1": "b1"}
    if form == "inject" or plateau is not None:
        kwargs = {names[k]: v for k, v in scheduled.items()}
        written = {}
    else:
        kwargs = {names[k]: float(v(0)) for k, v in scheduled.items()}  # placeholders, overwritten each step
        written = {names[k]: v for k, v in scheduled.items()}
    kwargs.setdefault("learning_rate", spec["lr"] if isinstance(spec["lr"], float) else LR)
    tx = optax.inject_hyperparams(optax.adam)(**kwargs)

    def loss_fn(params, batch):
        logits = forward(params, batch["image"].astype(jnp.float32) / 255.0)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()

    def step(carry, batch):
        params, opt_state, pstate = carry
        values = {name: fn(opt_state.count) for name, fn in written.items()}
        if plateau is not None:
            values["learning_rate"] = pstate.lr
        if values:
            hyperparams = dict(opt_state.hyperparams)
            for name, value in values.items():
                hyperparams[name] = jnp.asarray(value, hyperparams[name].dtype)
            opt_state = opt_state._replace(hyperparams=hyperparams)
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, pstate), loss

    def epoch(carry, batches):
        carry, losses = jax.lax.scan(step, carry, batches)
        if plateau is not None:
            params, opt_state, pstate = carry
            carry = (params, opt_state, plateau.update(pstate, jnp.mean(losses)))
        return carry, losses

    params = init_params(sizes)
    pstate = plateau.init(LR) if plateau is not None else None
    carry = (params, tx.init(params), pstate)
    carry = jax.tree.map(lambda a: jnp.array(a, copy=True), carry)  # distinct buffers, so they can be donated
    return jax.jit(epoch, donate_argnums=0), carry


class Runner:
    """A callable that runs one epoch (and waits for it), keeping its training state between calls."""

    def __init__(self, sizes, spec, batches, form: str = "inject"):
        import jax

        self.fn, self.carry = make_epoch(sizes, spec, form)
        self.batches = batches
        self._jax = jax

    def __call__(self):
        self.carry, losses = self.fn(self.carry, self.batches)
        self._jax.block_until_ready((self.carry, losses))


def run(
    pairs: int = 100,
    models: list[str] | None = None,
    only: list[str] | None = None,
    out: str = _common.RESULTS_DIR,
    steps: int | None = None,
    forms: dict[str, list[str]] | None = None,
    name: str = "train_step",
    title: str = "",
) -> dict[str, Any]:
    """Measures every schedule (or ``only`` those) against the constant lr, per model and form.

    ``forms``: model -> forms to measure (default: both forms for the linear model, ``inject`` for the MLP).
    """
    import time

    env = _common.print_environment(
        "Schedule cost inside a jitted train step (epoch = lax.scan, Adam via "
        "inject_hyperparams)" + (f": {title}" if title else "")
    )
    batches = load_batches(steps)
    steps_per_epoch = int(batches["label"].shape[0])
    models = models or list(MODELS)
    forms = forms or {"linear": list(FORMS), "mlp": ["inject"]}
    rows = []
    for model in models:
        sizes = MODELS[model]
        specs = schedules(steps_per_epoch)
        peer_spec = specs.pop("constant (peer)")()
        t0 = time.perf_counter()
        peer = Runner(sizes, peer_spec, batches)
        peer()
        peer_compile = time.perf_counter() - t0
        model_pairs = pairs if model == "linear" else max(2, pairs // 4)
        print(
            f"\n{model} {sizes}: {steps_per_epoch} steps of batch {BATCH} per epoch, {model_pairs} pairs; "
            f"constant-lr epoch compiled in {peer_compile:.2f} s",
            flush=True,
        )
        for sched_name, make_spec in specs.items():
            if only and sched_name not in only:
                continue
            spec = make_spec()
            for form in forms.get(model, ["inject"]):
                if form == "written" and (spec["lr"] == "plateau" or sched_name.startswith("optax")):
                    continue  # the plateau's lr is always written; optax's schedule: inject only
                t0 = time.perf_counter()
                runner = Runner(sizes, spec, batches, form)
                runner()
                first = time.perf_counter() - t0
                times = _common.interleave({"peer": peer, "schedule": runner}, model_pairs, warmup=1)
                row = {
                    "model": model,
                    "sizes": sizes,
                    "schedule": sched_name,
                    "form": form,
                    "what": spec["what"],
                    "steps_per_epoch": steps_per_epoch,
                    "ratio": _common.ratios(times["schedule"], times["peer"]),
                    "ratio_of_minima": min(times["schedule"]) / min(times["peer"]),
                    "schedule_step_s": _common.summary([t / steps_per_epoch for t in times["schedule"]]),
                    "constant_step_s": _common.summary([t / steps_per_epoch for t in times["peer"]]),
                    "first_call_s": first,
                }
                rows.append(row)
                print(
                    f"  {sched_name:36s} {form:8s} {row['schedule_step_s']['median'] * 1e6:8.1f} us/step vs "
                    f"{row['constant_step_s']['median'] * 1e6:8.1f}  ratio {_common.fmt_ratio(row['ratio'], 3)}"
                    f"  (minima {row['ratio_of_minima']:.3f})",
                    flush=True,
                )
    params = {
        "pairs_linear": pairs,
        "pairs_mlp": max(2, pairs // 4),
        "batch": BATCH,
        "lr": LR,
        "models": {m: MODELS[m] for m in models},
        "forms": forms,
        "steps_per_epoch": steps_per_epoch,
        "title": title,
        "target": {"ratio": "<= 1.05"},
    }
    path = _common.write_result(out, name, env, params, rows)
    print(f"wrote {path}")
    return {"env": env, "params": params, "rows": rows}


# The XLA:CPU flag that the diagnostic run sets: with it, the schedule's scalar work in the loop body
# is not run concurrently with the rest of the step (see README: what limits the linear model's ratio).
SEQUENTIAL_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
DIAGNOSTIC_SCHEDULES = ["step_lr", "cosine_annealing_lr", "one_cycle_lr", "optax.warmup_cosine_decay_schedule"]


def run_sequential_diagnostic(pairs: int, out: str, steps: int | None = None) -> None:
    """The linear model's inject form again, in a subprocess with ``XLA_FLAGS=SEQUENTIAL_FLAG``."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + SEQUENTIAL_FLAG).strip()
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.train_step",
        "--models",
        "linear",
        "--forms",
        "inject",
        "--only",
        ",".join(DIAGNOSTIC_SCHEDULES),
        "--pairs",
        str(pairs),
        "--out",
        out,
        "--name",
        "train_step_sequential",
        "--title",
        f"diagnostic, XLA_FLAGS={SEQUENTIAL_FLAG}",
    ]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    subprocess.run(cmd, check=True, env=env, cwd=_common.ROOT)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_common_args(p)
    p.add_argument(
        "--pairs", type=int, default=150, help="interleaved epoch pairs for the linear model (MLP: a quarter)"
    )
    p.add_argument("--models", default="linear,mlp")
    p.add_argument("--forms", default="", help="inject and/or written (default: both for linear, inject for the MLP)")
    p.add_argument("--only", default="", help="comma-separated schedule names")
    p.add_argument("--steps", type=int, default=None, help="batches per epoch (default: the 62 full batches)")
    p.add_argument("--name", default="train_step", help="results file name")
    p.add_argument("--title", default="")
    p.add_argument(
        "--sequential-diagnostic",
        action="store_true",
        help=f"also run the linear model's inject form with XLA_FLAGS={SEQUENTIAL_FLAG}",
    )
    args = p.parse_args(argv)
    _common.select_device(args.device)
    steps = args.steps
    if args.quick:
        args.pairs, steps = 2, 4
    models = [m for m in args.models.split(",") if m]
    forms = {m: args.forms.split(",") for m in models} if args.forms else None
    run(
        args.pairs,
        models,
        [s for s in args.only.split(",") if s] or None,
        args.out,
        steps,
        forms,
        args.name,
        args.title,
    )
    if args.sequential_diagnostic:
        run_sequential_diagnostic(args.pairs, args.out, steps)


if __name__ == "__main__":
    main()
