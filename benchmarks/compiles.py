"""Benchmark 4: how many times a training run compiles, and for how long.

Counts XLA compilations through ``jax.monitoring`` (every ``/jax/core/compile/backend_compile_duration``
event, with the name of the function compiled) and sums their seconds, plus tracing and lowering
seconds. Each run starts from empty caches (``jax.clear_caches()``).

* The MNIST trainer (``examples.mnist.train.train_and_evaluate``) for growing numbers of epochs:
  linear model (one ``lax.scan`` per epoch), CNN (a Python loop over a jitted step), and with
  ReduceLROnPlateau. Target: the count does not grow with the number of epochs (steps), and each
  step function compiles once.
* lrjax alone: a jitted train step called in a Python loop for 1,000 steps with a schedule inside;
  ``jax.jit(schedule)`` called with 1,000 Python ints; the schedule called eagerly at 1,000 steps.

    python -m benchmarks.compiles [--epochs 1,2,5,10]
"""

from __future__ import annotations

import argparse
import collections
import time
from typing import Any

from benchmarks import _common

BACKEND = "/jax/core/compile/backend_compile_duration"
TRACE = "/jax/core/compile/jaxpr_trace_duration"
LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"

# The trainer's jitted functions (train.Runner and train.create_model); everything else that
# compiles is an eager jnp operation (one small executable per operation and shape).
STEP_FUNCTIONS = ("scan_steps", "step_at", "eval_step", "update", "_init_params", "init_train_state")


class CompileCounter:
    """Collects compile events while active: ``with CompileCounter() as c: ...; c.count``."""

    def __init__(self):
        self.compiles: list[tuple[str, float]] = []
        self.trace_s = 0.0
        self.lower_s = 0.0

    def _listener(self, event: str, duration: float, **kwargs: Any) -> None:
        if event == BACKEND:
            name = str(kwargs.get("fun_name", "?"))
            if name.startswith("jit(") and name.endswith(")"):
                name = name[4:-1]
            self.compiles.append((name, duration))
        elif event == TRACE:
            self.trace_s += duration
        elif event == LOWER:
            self.lower_s += duration

    def __enter__(self) -> "CompileCounter":
        import jax

        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc) -> None:
        import jax

        jax.monitoring.unregister_event_duration_listener(self._listener)

    @property
    def count(self) -> int:
        return len(self.compiles)

    @property
    def compile_s(self) -> float:
        return sum(d for _, d in self.compiles)

    def by_name(self) -> dict[str, int]:
        return dict(collections.Counter(name for name, _ in self.compiles))

    def seconds_by_name(self) -> dict[str, float]:
        out: dict[str, float] = collections.defaultdict(float)
        for name, d in self.compiles:
            out[name] += d
        return dict(out)

    def summary(self) -> dict[str, Any]:
        names = self.by_name()
        steps = {k: v for k, v in names.items() if k in STEP_FUNCTIONS}
        return {
            "compiles": self.count,
            "step_function_compiles": steps,
            "eager_op_compiles": sum(v for k, v in names.items() if k not in STEP_FUNCTIONS),
            "backend_compile_s": self.compile_s,
            "trace_s": self.trace_s,
            "lower_s": self.lower_s,
            "by_name": names,
            "seconds_by_name": self.seconds_by_name(),
        }


def trainer_run(epochs: int, **changes: Any) -> dict[str, Any]:
    import jax

    from examples.mnist import train
    from examples.mnist.configs.default import get_config

    config = get_config().replace(**{"epochs": epochs, "progress": False, "plot": False, **changes})
    jax.clear_caches()
    start = time.perf_counter()
    with CompileCounter() as counter:
        result = train.train_and_evaluate(config, None, log=lambda line: None)
    out = counter.summary()
    out.update(
        {
            "epochs": epochs,
            "steps": int(result.state.step),
            "wall_s": time.perf_counter() - start,
            "final_accuracy": result.history[-1]["test_accuracy"],
        }
    )
    return out


def lrjax_runs(steps: int) -> list[dict[str, Any]]:
    """Compiles of lrjax schedules called at many steps: jitted step in a loop, jit(schedule), eager."""
    import jax
    import jax.numpy as jnp
    import optax

    import lrjax

    rows = []
    schedule = lrjax.sequential_lr(
        [
            lrjax.linear_lr(0.1, start_factor=0.01, total_iters=100),
            lrjax.cosine_annealing_lr(0.1, T_max=900, eta_min=1e-4),
        ],
        milestones=[100],
    )
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=schedule)
    params = {"w": jnp.zeros((8,)), "b": jnp.zeros(())}

    @jax.jit
    def train_step(params, opt_state, x):
        grads = jax.grad(lambda p: jnp.sum((x * p["w"] + p["b"]) ** 2))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    jax.clear_caches()
    x = jnp.ones((8,))
    with CompileCounter() as c:
        opt_state = tx.init(params)
        for _ in range(steps):
            params, opt_state = train_step(params, opt_state, x)
        jax.block_until_ready(params)
    rows.append(
        {
            "case": f"jitted train step, {steps} calls (schedule inside, via inject_hyperparams)",
            "calls": steps,
            **c.summary(),
        }
    )

    jax.clear_caches()
    f = jax.jit(schedule)
    with CompileCounter() as c:
        for t in range(steps):
            f(t)
    rows.append({"case": f"jax.jit(schedule)(t) for t in range({steps}) (Python ints)", "calls": steps, **c.summary()})

    jax.clear_caches()
    with CompileCounter() as c:
        first = None
        for t in range(steps):
            schedule(t)
            if t == 0:
                first = c.count
    rows.append(
        {
            "case": f"schedule(t) eagerly for t in range({steps})",
            "calls": steps,
            "compiles_at_first_call": first,
            **c.summary(),
        }
    )
    return rows


CONFIGS = ("linear", "plateau", "progress", "cnn")


def run(
    epochs: list[int] | None = None,
    cnn_epochs: list[int] | None = None,
    lrjax_steps: int = 1000,
    out: str = _common.RESULTS_DIR,
    train_examples: int | None = None,
    configs: list[str] | None = None,
) -> dict[str, Any]:
    env = _common.print_environment("Compilations over a training run")
    epochs = epochs or [1, 2, 5, 10]
    cnn_epochs = cnn_epochs or [1, 2]
    rows = []
    runs = {
        "linear": ("linear", {}, epochs),
        "plateau": (
            "linear, ReduceLROnPlateau",
            {"schedule": {"name": "reduce_lr_on_plateau", "patience": 1}},
            epochs[:3],
        ),
        "progress": ("linear, progress bar (scan in 20 pieces)", {"progress": True}, epochs[:2]),
        "cnn": ("cnn", {"model": "cnn"}, cnn_epochs),
    }
    for label, changes, counts in (runs[c] for c in (configs or CONFIGS)):
        if train_examples is not None:
            changes = {**changes, "train_examples": train_examples, "test_examples": train_examples}
        print(f"\ntrainer, {label}:")
        for e in counts:
            if changes.get("progress"):
                import contextlib
                import io

                with contextlib.redirect_stderr(io.StringIO()):  # the progress bar
                    r = trainer_run(e, **changes)
            else:
                r = trainer_run(e, **changes)
            r["config"] = label
            rows.append(r)
            print(
                f"  {e:3d} epochs ({r['steps']:5d} steps): {r['compiles']:3d} compilations "
                f"({r['backend_compile_s']:.2f} s compiling, {r['trace_s'] + r['lower_s']:.2f} s tracing+lowering), "
                f"step functions {r['step_function_compiles']}, eager ops {r['eager_op_compiles']}",
                flush=True,
            )
    print("\nlrjax schedules at many steps:")
    lr_rows = lrjax_runs(lrjax_steps)
    for r in lr_rows:
        print(f"  {r['case']}: {r['compiles']} compilations ({r['backend_compile_s']:.2f} s) {r['by_name']}")
    params = {
        "epochs": epochs,
        "cnn_epochs": cnn_epochs,
        "lrjax_steps": lrjax_steps,
        "configs": configs or CONFIGS,
        "targets": {"compiles": "one per distinct step function; none as the step count grows"},
    }
    path = _common.write_result(out, "compiles", env, params, rows, lrjax=lr_rows)
    print(f"wrote {path}")
    return {"env": env, "params": params, "rows": rows, "lrjax": lr_rows}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_common_args(p)
    p.add_argument("--epochs", default="1,2,5,10", help="epoch counts for the linear model")
    p.add_argument("--cnn-epochs", default="1,2")
    args = p.parse_args(argv)
    _common.select_device(args.device)
    epochs = [int(e) for e in args.epochs.split(",")]
    cnn = [int(e) for e in args.cnn_epochs.split(",")]
    if args.quick:
        run([1, 2], [1], 20, args.out, train_examples=128)
    else:
        run(epochs, cnn, 1000, args.out)


if __name__ == "__main__":
    main()
