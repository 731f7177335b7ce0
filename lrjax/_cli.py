"""The ``lrjax`` command line: plot schedules to PNG, print their values, list the names.

    lrjax plot StepLR step_size=30 ExponentialLR gamma=0.95 --base-lr 0.05 --steps 100 -o cmp.png
    lrjax plot '{"name": "one_cycle_lr", "max_lr": 0.1, "total_steps": 1000}' --steps 1000
    lrjax values CyclicLR base_lr=0.01 max_lr=0.1 step_size_up=4 --steps 10
    lrjax list

A schedule is a name (lrjax's, ``step_lr``, or torch's, ``StepLR``) followed by its torch keyword
arguments as ``key=value`` (values are JSON or Python literals, else strings), or a JSON config
(what ``lrjax.from_config`` takes), or ``@file.json`` holding one config or a list of them.
"""

from __future__ import annotations

import argparse
import ast
import csv
import inspect
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

class UsageError(Exception):
    """A mistake in the command line: reported on stderr with exit status 2."""


# ----------------------------------------------------------------------------------------------
# Parsing schedule specifications
# ----------------------------------------------------------------------------------------------


def _value(text: str) -> Any:
    """``30`` -> 30, ``[30,80]`` / ``30,80`` -> [30, 80], ``true``/``True`` -> True, ``cos`` -> 'cos'."""
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return list(value) if isinstance(value, tuple) else value
    return text


def _configs_from(value: Any, origin: str) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            raise UsageError(f"{origin}: a schedule config must be a JSON object with a 'name', got {item!r}")
    return [dict(item) for item in items]


def parse_specs(tokens: Sequence[str]) -> list[dict[str, Any]]:
    """Schedule configs from command-line tokens: ``NAME key=value ...``, JSON configs, ``@file``."""
    configs: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for token in tokens:
        stripped = token.strip()
        if stripped.startswith("@"):
            path = stripped[1:]
            try:
                with open(path) as f:
                    loaded = json.load(f)
            except OSError as e:
                raise UsageError(f"cannot read {path}: {e.strerror}") from e
            except json.JSONDecodeError as e:
                raise UsageError(f"{path} is not valid JSON: {e}") from e
            configs += _configs_from(loaded, path)
            current = None
        elif stripped.startswith(("{", "[")):
            try:
                loaded = json.loads(stripped)
            except json.JSONDecodeError as e:
                raise UsageError(f"schedule config is not valid JSON: {e}: {token}") from e
            configs += _configs_from(loaded, "config")
            current = None
        elif "=" in token:
            key, _, text = token.partition("=")
            if current is None:
                raise UsageError(f"{token!r} comes before any schedule name; write NAME {token} (e.g. StepLR {token})")
            if not key.isidentifier():
                raise UsageError(f"{key!r} is not a keyword name (in {token!r})")
            if key in current:
                raise UsageError(f"{key} is given twice for {current['name']}")
            current[key] = _value(text)
        else:
            current = {"name": token}
            configs.append(current)
    if not configs:
        raise UsageError("give at least one schedule, e.g. StepLR step_size=30 (see `lrjax list`)")
    return configs


def build(config: dict[str, Any], base_lr: float | None) -> tuple[Any, Any]:
    """``(lr_schedule, momentum_schedule or None)`` from a config with torch's keyword arguments.

    CyclicLR/OneCycleLR configs may carry torch's ``cycle_momentum`` (default True),
    ``base_momentum`` and ``max_momentum``: they build the momentum schedule.
    """
    import lrjax
    from lrjax import _config

    defaults = {} if base_lr is None else {"base_lr": base_lr}
    try:
        config, momentum_config = _config.split_momentum(config)
        momentum = lrjax.from_config(momentum_config) if momentum_config is not None else None
    except ValueError as e:
        raise UsageError(f"{config.get('name')}: {e}") from e
    try:
        schedule = lrjax.from_config(config, **defaults)
    except ValueError as e:
        raise UsageError(str(e)) from e
    if getattr(schedule, "is_plateau", False):
        raise UsageError(
            f"{config['name']} reduces the lr when a metric stops improving: without a metric it has no "
            "values to plot or print (scripts/render_gallery.py drives one with a synthetic metric)."
        )
    return schedule, momentum


def _steps(args: argparse.Namespace) -> np.ndarray:
    if args.steps < 1:
        raise UsageError(f"--steps must be positive, got {args.steps}")
    return np.arange(args.steps)


def _labels(args: argparse.Namespace, configs: list[dict[str, Any]], schedules: list[Any]) -> list[str]:
    from lrjax._plot import label_of

    if args.label:
        if len(args.label) != len(configs):
            raise UsageError(f"give one --label per schedule ({len(configs)}), got {len(args.label)}")
        return list(args.label)
    return [label_of(s) for s in schedules]


def _build_all(args: argparse.Namespace) -> tuple[list[str], list[Any], list[Any]]:
    configs = parse_specs(args.schedules)
    built = [build(c, args.base_lr) for c in configs]
    schedules = [s for s, _ in built]
    momenta = [m if args.momentum else None for _, m in built]
    return _labels(args, configs, schedules), schedules, momenta


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------


def figure(args: argparse.Namespace):
    """The matplotlib figure ``lrjax plot`` saves."""
    import lrjax

    labels, schedules, momenta = _build_all(args)
    figsize = tuple(args.size) if args.size else None
    return lrjax.plot(schedules, _steps(args), labels=labels, momentum=momenta, title=args.title, logy=args.logy,
                      figsize=figsize, drawstyle="steps-post" if args.steps_post else "default")


def _cmd_plot(args: argparse.Namespace) -> int:
    try:
        from lrjax._plot import require_matplotlib

        require_matplotlib()
    except ImportError as e:
        raise UsageError(str(e)) from e
    fig = figure(args)
    out = args.output
    if os.path.dirname(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=args.dpi)
    print(f"wrote {out}")
    return 0


def table(args: argparse.Namespace) -> tuple[list[str], np.ndarray]:
    """The header and rows ``lrjax values`` prints: the step, then every lr (per group) and momentum."""
    from lrjax._plot import evaluate

    labels, schedules, momenta = _build_all(args)
    steps = _steps(args)
    header, columns = ["step"], [steps.astype(np.float64)]
    for label, schedule, momentum in zip(labels, schedules, momenta):
        for suffix, fn in (("", schedule), (" momentum", momentum)):
            if fn is None:
                continue
            values = evaluate(fn, steps).astype(np.float64)
            if values.ndim == 1:
                header.append(label + suffix)
                columns.append(values)
            else:
                for g in range(values.shape[1]):
                    header.append(f"{label}{suffix} [group {g}]")
                    columns.append(values[:, g])
    return header, np.stack(columns, axis=1)


def _cmd_values(args: argparse.Namespace) -> int:
    header, rows = table(args)
    if args.format == "json":
        out = {"step": [int(s) for s in rows[:, 0]]}
        out.update({h: rows[:, i].tolist() for i, h in enumerate(header) if i})
        json.dump(out, sys.stdout)
        sys.stdout.write("\n")
        return 0
    writer = csv.writer(sys.stdout, delimiter="\t" if args.format == "tsv" else ",", lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([str(int(row[0]))] + [repr(float(v)) for v in row[1:]])
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    import lrjax
    from lrjax import _config

    torch_names = {v: k for k, v in _config._TORCH_NAMES.items()}
    names = lrjax.available_schedules()
    if args.name:
        try:
            names = [_config._lookup(args.name).__name__]
        except ValueError as e:
            raise UsageError(str(e)) from e
    for name in names:
        signature = inspect.signature(getattr(lrjax, name))
        params = ", ".join(
            p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
            for p in signature.parameters.values()
        )
        alias = f"  (torch: {torch_names[name]})" if name in torch_names else ""
        print(f"{name}({params}){alias}")
    return 0


# ----------------------------------------------------------------------------------------------
# Argument parser
# ----------------------------------------------------------------------------------------------


def _schedule_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("schedules", nargs="+", metavar="SCHEDULE",
                   help="NAME key=value ... (torch keyword arguments), a JSON config, or @config.json; "
                        "several schedules go on one figure / table")
    p.add_argument("--steps", type=int, default=100, help="number of steps, 0 .. STEPS-1 (default 100)")
    p.add_argument("--base-lr", type=float, default=0.1,
                   help="base_lr for schedules that take one and do not set it (the optimizer's lr in torch; "
                        "default 0.1)")
    p.add_argument("--label", action="append", help="legend label / column name, once per schedule")
    p.add_argument("--no-momentum", dest="momentum", action="store_false",
                   help="leave out the momentum CyclicLR/OneCycleLR cycle (shown by default, as torch's "
                        "cycle_momentum=True; a config may set cycle_momentum=false)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="lrjax", description="Plot torch's learning-rate schedulers, ported to JAX by lrjax.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  lrjax plot StepLR step_size=30 ExponentialLR gamma=0.95 --base-lr 0.05 -o cmp.png\n"
               "  lrjax plot '{\"name\": \"OneCycleLR\", \"max_lr\": 0.1, \"total_steps\": 1000}' --steps 1000\n"
               "  lrjax values CyclicLR base_lr=0.01 max_lr=0.1 step_size_up=4 --steps 10\n"
               "  lrjax list",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="{plot,values,list}")
    p = sub.add_parser("plot", help="render schedules (and momentum) to a PNG")
    _schedule_arguments(p)
    p.add_argument("-o", "--output", default="lrjax-plot.png", help="output image (default lrjax-plot.png)")
    p.add_argument("--title")
    p.add_argument("--logy", action="store_true", help="log-scale learning-rate axis")
    p.add_argument("--steps-post", action="store_true", help="draw each value as a step held until the next")
    p.add_argument("--dpi", type=int, default=100)
    p.add_argument("--size", type=float, nargs=2, metavar=("W", "H"), help="figure size in inches")
    p.set_defaults(run=_cmd_plot)
    v = sub.add_parser("values", help="print the values, one row per step (float64 unless --float32)")
    _schedule_arguments(v)
    v.add_argument("--format", choices=("tsv", "csv", "json"), default="tsv")
    v.add_argument("--float32", action="store_true", help="compute in float32 (JAX's default) instead of float64")
    v.set_defaults(run=_cmd_values)
    ls = sub.add_parser("list", help="list the schedule names and their keyword arguments")
    ls.add_argument("name", nargs="?", help="only this schedule")
    ls.set_defaults(run=_cmd_list)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (2 for usage errors, with a message on stderr)."""
    args = parser().parse_args(argv)
    import jax

    try:
        with jax.enable_x64(not getattr(args, "float32", False)):
            return args.run(args)
    except UsageError as e:
        print(f"lrjax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lrjax values ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
