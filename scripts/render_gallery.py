#!/usr/bin/env python
"""Renders one figure per torch scheduler, computed by lrjax, into ``docs/gallery/<Class>.png``.

    python scripts/render_gallery.py                 # every torch class of lrjax.registry
    python scripts/render_gallery.py CyclicLR --out /tmp/gallery --dpi 120

Each entry is the lrjax port of a torch scheduler with the hyperparameters of torch's docs or of
the usual recipes; the cyclic schedulers show their momentum on a second axis, ChainedScheduler
and SequentialLR their members, ReduceLROnPlateau the synthetic validation loss that drives it.
Those are written out below (``curated()``); a torch class of the registry without one gets a
figure of its registry example (``from_example()``), so every class has its figure.
``tests/test_plot.py`` renders every entry and checks the drawn values against the schedules.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import lrjax
from lrjax import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "gallery")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One gallery figure: ``schedules`` (label -> schedule) evaluated at ``range(steps)``."""

    name: str  # torch's class name, also the file name
    torch: str  # the torch line it ports
    code: str  # the lrjax line, shown under the title
    schedules: dict[str, Callable]
    steps: int
    momentum: dict[str, Callable] | None = None
    members: dict[str, Callable] | None = None  # drawn thin and dotted (composites)
    milestones: tuple[int, ...] = ()
    metric: np.ndarray | None = None  # ReduceLROnPlateau: the metric of each epoch (1..steps-1)
    plateau: Any = None  # ReduceLROnPlateau: the plateau the metric drives, from PLATEAU_LR
    note: str = ""


PLATEAU_LR = 0.1  # the lr a plateau figure starts from
STEPS = 100  # steps of a figure drawn from a registry example (or its total_steps)


def synthetic_val_loss(epochs: int) -> np.ndarray:
    """A validation loss that falls, then plateaus with small wiggles (deterministic)."""
    t = np.arange(1, epochs, dtype=np.float64)
    return 0.3 + 0.7 * np.exp(-t / 12.0) + 0.015 * np.sin(1.7 * t)


def plateau_lrs(plateau, base_lr: float, metric: np.ndarray) -> np.ndarray:
    """``lr[k]``: the lr after ``k`` calls of ``scheduler.step(metric)``, in one ``lax.scan``."""

    def step(state, m):
        state = plateau.update(state, m)
        return state, state.lr

    init = plateau.init(base_lr)
    _, lrs = jax.lax.scan(step, init, jnp.asarray(metric, init.best.dtype))
    return np.concatenate([[float(init.lr)], np.asarray(lrs)])


def table_schedule(values: np.ndarray) -> Callable:
    """A schedule that looks ``values[t]`` up (for a plateau's precomputed lrs)."""
    table = np.asarray(values)

    def schedule(t):
        return jnp.asarray(table)[jnp.clip(jnp.asarray(t), 0, len(table) - 1)]

    schedule.__name__ = "reduce_lr_on_plateau"
    return schedule


def entries() -> list[Entry]:
    """One entry per torch class of ``lrjax.registry``, in its order: the curated one, or one from its example."""
    chosen = {e.name: e for e in curated()}
    return [chosen.get(e.torch_class) or from_example(e) for e in registry.entries() if e.torch_class is not None]


def _call(config: dict[str, Any], torch: bool) -> str:
    """The call a config stands for: lrjax's ``step_lr(base_lr=0.1, step_size=30)`` or torch's
    ``StepLR(opt, step_size=30)`` (a composite: ``SequentialLR(optimizer=opt, schedulers=[...], ...)``)."""
    entry = registry.lookup(config["name"])
    args = [("optimizer=opt" if entry.composite else "opt")] if torch else []
    for key, value in config.items():
        if key == "name" or (torch and key == entry.torch_lr):
            continue
        if key == entry.members:
            calls = [_call(m, torch) for m in (value if isinstance(value, list) else [value])]
            text = f"[{', '.join(calls)}]" if isinstance(value, list) else calls[0]
            key = "schedulers" if torch else key
        else:
            text = value.__name__ if callable(value) else repr(value)
        args.append(f"{key}={text}")
    return f"{entry.torch_class if torch else entry.name}({', '.join(args)})"


def from_example(entry: registry.Entry) -> Entry:
    """The figure of a registry entry's example: its lr, its momentum partner's example, a composite's members
    dotted, a plateau driven by the synthetic validation loss."""
    config = entry.example_config()
    steps = int(config.get("total_steps") or STEPS)
    schedule = lrjax.from_config(config)
    momentum = members = metric = plateau = None
    code = _call(config, torch=False)
    if entry.momentum is not None:
        partner = registry.lookup(entry.momentum).example_config()
        momentum = {entry.name: lrjax.from_config(partner)}
        code += f"; {_call(partner, torch=False)}"
    if entry.composite:
        members = {f"{m['name']} (member)": lrjax.from_config(m) for m in config[entry.members]}
    if entry.role == "plateau":
        plateau, metric = schedule, synthetic_val_loss(steps)
        schedule = table_schedule(plateau_lrs(plateau, PLATEAU_LR, metric))
    return Entry(
        entry.torch_class,
        _call(config, torch=True),
        code,
        {entry.name: schedule},
        steps,
        momentum=momentum,
        members=members,
        metric=metric,
        plateau=plateau,
        note="registry example" if metric is None else "registry example; a synthetic validation loss",
    )


def curated() -> list[Entry]:
    """The hand-written gallery entries, in torch's documentation order."""
    one_cycle = dict(total_steps=200)
    cyclic = dict(step_size_up=25, mode="triangular2")
    plateau = lrjax.reduce_lr_on_plateau(factor=0.5, patience=5)
    metric = synthetic_val_loss(100)
    constant = lrjax.constant_lr(0.05, factor=0.1, total_iters=20)
    exponential = lrjax.exponential_lr(0.05, gamma=0.95)
    warmup = lrjax.linear_lr(0.1, start_factor=0.1, total_iters=10)
    cosine = lrjax.cosine_annealing_lr(0.1, T_max=90)
    return [
        Entry(
            "LambdaLR",
            "LambdaLR(opt, lr_lambda=[lambda epoch: epoch // 30, lambda epoch: 0.95 ** epoch])",
            "lambda_lr([0.05, 0.05], [lambda e: e // 30, lambda e: 0.95 ** e], total_steps=100)",
            {
                "lambda_lr": lrjax.lambda_lr(
                    [0.05, 0.05], [lambda epoch: epoch // 30, lambda epoch: 0.95**epoch], total_steps=100
                )
            },
            100,
            note="two parameter groups; torch's Python lambdas, tabulated with total_steps",
        ),
        Entry(
            "MultiplicativeLR",
            "MultiplicativeLR(opt, lr_lambda=lambda epoch: 0.95)",
            "multiplicative_lr(0.05, lambda epoch: 0.95)",
            {"multiplicative_lr": lrjax.multiplicative_lr(0.05, lambda epoch: 0.95)},
            100,
        ),
        Entry(
            "StepLR",
            "StepLR(opt, step_size=30, gamma=0.1)",
            "step_lr(0.05, step_size=30, gamma=0.1)",
            {"step_lr": lrjax.step_lr(0.05, step_size=30, gamma=0.1)},
            100,
        ),
        Entry(
            "MultiStepLR",
            "MultiStepLR(opt, milestones=[30, 80], gamma=0.1)",
            "multi_step_lr(0.05, milestones=[30, 80], gamma=0.1)",
            {"multi_step_lr": lrjax.multi_step_lr(0.05, milestones=[30, 80], gamma=0.1)},
            100,
        ),
        Entry(
            "ConstantLR",
            "ConstantLR(opt, factor=0.5, total_iters=40)",
            "constant_lr(0.05, factor=0.5, total_iters=40)",
            {"constant_lr": lrjax.constant_lr(0.05, factor=0.5, total_iters=40)},
            100,
        ),
        Entry(
            "LinearLR",
            "LinearLR(opt, start_factor=0.1, total_iters=40)",
            "linear_lr(0.05, start_factor=0.1, total_iters=40)",
            {"linear_lr": lrjax.linear_lr(0.05, start_factor=0.1, total_iters=40)},
            100,
        ),
        Entry(
            "ExponentialLR",
            "ExponentialLR(opt, gamma=0.95)",
            "exponential_lr(0.05, gamma=0.95)",
            {"exponential_lr": lrjax.exponential_lr(0.05, gamma=0.95)},
            100,
        ),
        Entry(
            "PolynomialLR",
            "PolynomialLR(opt, total_iters=80, power=2.0)",
            "polynomial_lr(0.05, total_iters=80, power=2.0)",
            {"polynomial_lr": lrjax.polynomial_lr(0.05, total_iters=80, power=2.0)},
            100,
        ),
        Entry(
            "CosineAnnealingLR",
            "CosineAnnealingLR(opt, T_max=50, eta_min=0.001)",
            "cosine_annealing_lr(0.1, T_max=50, eta_min=0.001)",
            {"cosine_annealing_lr": lrjax.cosine_annealing_lr(0.1, T_max=50, eta_min=0.001)},
            150,
            note="as in torch, the lr rises again after T_max (period 2 T_max)",
        ),
        Entry(
            "CosineAnnealingWarmRestarts",
            "CosineAnnealingWarmRestarts(opt, T_0=10, T_mult=2, eta_min=0.001)",
            "cosine_annealing_warm_restarts(0.1, T_0=10, T_mult=2, eta_min=0.001)",
            {
                "cosine_annealing_warm_restarts": lrjax.cosine_annealing_warm_restarts(
                    0.1, T_0=10, T_mult=2, eta_min=0.001
                )
            },
            150,
        ),
        Entry(
            "CyclicLR",
            "CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=25, mode='triangular2')",
            "cyclic_lr(0.01, 0.1, step_size_up=25, mode='triangular2'); cyclic_momentum(0.8, 0.9, ...)",
            {"cyclic_lr": lrjax.cyclic_lr(0.01, 0.1, **cyclic)},
            200,
            momentum={"cyclic_lr": lrjax.cyclic_momentum(0.8, 0.9, **cyclic)},
        ),
        Entry(
            "OneCycleLR",
            "OneCycleLR(opt, max_lr=0.1, total_steps=200)",
            "one_cycle_lr(0.1, total_steps=200); one_cycle_momentum(total_steps=200)",
            {"one_cycle_lr": lrjax.one_cycle_lr(0.1, **one_cycle)},
            200,
            momentum={"one_cycle_lr": lrjax.one_cycle_momentum(**one_cycle)},
        ),
        Entry(
            "SWALR",
            "SequentialLR(opt, [CosineAnnealingLR(opt, T_max=100), SWALR(opt, swa_lr=0.02, "
            "anneal_epochs=15)], milestones=[60])",
            "sequential_lr([cosine_annealing_lr(0.1, 100), swalr(0.1, swa_lr=0.02, anneal_epochs=15)], [60])",
            {
                "sequential_lr": lrjax.sequential_lr(
                    [lrjax.cosine_annealing_lr(0.1, T_max=100), lrjax.swalr(0.1, swa_lr=0.02, anneal_epochs=15)],
                    milestones=[60],
                ),
                "swalr alone": lrjax.swalr(0.1, swa_lr=0.02, anneal_epochs=15),
            },
            100,
            milestones=(60,),
            note="SWA: after the milestone SWALR anneals from the lr reached to swa_lr",
        ),
        Entry(
            "ChainedScheduler",
            "ChainedScheduler([ConstantLR(opt, 0.1, 20), ExponentialLR(opt, 0.95)])",
            "chained_scheduler([constant_lr(0.05, 0.1, 20), exponential_lr(0.05, 0.95)])",
            {"chained_scheduler": lrjax.chained_scheduler([constant, exponential])},
            60,
            members={"constant_lr (member)": constant, "exponential_lr (member)": exponential},
            note="every step applies both members to the lr",
        ),
        Entry(
            "SequentialLR",
            "SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=10), CosineAnnealingLR(opt, 90)], milestones=[10])",
            "sequential_lr([linear_lr(0.1, 0.1, total_iters=10), cosine_annealing_lr(0.1, 90)], [10])",
            {"sequential_lr": lrjax.sequential_lr([warmup, cosine], milestones=[10])},
            100,
            milestones=(10,),
            note="linear warm-up, then cosine decay",
        ),
        Entry(
            "ReduceLROnPlateau",
            "ReduceLROnPlateau(opt, factor=0.5, patience=5); scheduler.step(val_loss)",
            "reduce_lr_on_plateau(factor=0.5, patience=5); state = plateau.update(state, val_loss)",
            {"reduce_lr_on_plateau": table_schedule(plateau_lrs(plateau, PLATEAU_LR, metric))},
            100,
            metric=metric,
            plateau=plateau,
            note="driven by a synthetic validation loss (right axis)",
        ),
    ]


def figure(entry: Entry):
    """The matplotlib figure of one entry (its first lines are ``entry.schedules``, then ``entry.members``)."""
    fig = lrjax.plot(entry.schedules, entry.steps, momentum=entry.momentum, figsize=(6.4, 3.8), legend=False)
    ax = fig.axes[0]
    if entry.members:
        lrjax.plot(entry.members, entry.steps, ax=ax, linestyle=":", linewidth=1.2, legend=False)
    for m in entry.milestones:
        ax.axvline(m, color="0.5", linewidth=0.8, linestyle="--")
    if entry.metric is not None:
        twin = ax.twinx()
        twin.plot(
            np.arange(1, entry.steps),
            entry.metric,
            color="C1",
            linewidth=1,
            alpha=0.8,
            label="validation loss (metric)",
        )
        twin.set_ylabel("metric")
    handles, names = [], []
    for a in fig.axes:
        h, n = a.get_legend_handles_labels()
        handles, names = handles + h, names + n
    if handles:
        fig.legend(
            handles, names, loc="outside lower center", ncols=min(len(handles), 3), fontsize="x-small", frameon=False
        )
    fig.suptitle(entry.name, fontsize=10, fontweight="bold")
    ax.set_title(f"lrjax.{entry.code}" + (f"\n({entry.note})" if entry.note else ""), fontsize=7.5)
    ax.set_xlabel("step (batch)" if entry.name in ("CyclicLR", "OneCycleLR") else "step (epoch)")
    return fig


def render(entry: Entry, out_dir: str = OUT, dpi: int = 80) -> tuple[object, str]:
    """Writes ``<out_dir>/<entry.name>.png``; returns the figure and the path."""
    fig = figure(entry)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{entry.name}.png")
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    return fig, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="torch class names (default: all)")
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--dpi", type=int, default=80)
    args = parser.parse_args(argv)
    chosen = entries()
    if args.names:
        known = {e.name for e in chosen}
        unknown = sorted(set(args.names) - known)
        if unknown:
            parser.error(f"unknown entries {unknown}; choose from {sorted(known)}")
        chosen = [e for e in chosen if e.name in args.names]
    for entry in chosen:
        _, path = render(entry, args.out, args.dpi)
        print(f"{os.path.relpath(path)} ({os.path.getsize(path) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
