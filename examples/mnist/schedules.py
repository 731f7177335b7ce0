"""From the config to what the train step needs: the lr (and momentum) of every optimizer update.

Everything here runs in Python before anything is compiled, so a bad schedule name, keyword or
value fails at once with lrjax's message (which lists the valid names or keywords). Which
schedules exist, their torch class names and their momentum partners come from
``lrjax.registry``; torch's ``cycle_momentum`` keywords are split off by ``lrjax.split_momentum``.

The schedules become functions of the optimizer's update count ``step`` (optax's convention):

* ``schedule_unit="epoch"``: torch's ``scheduler.step()`` after each epoch, through
  ``lrjax.per_epoch(schedule, steps_per_epoch)``;
* ``schedule_unit="step"``: ``scheduler.step()`` after each ``optimizer.step()`` (CyclicLR and
  OneCycleLR, the schedules with a momentum partner, are meant to be used so);
* ReduceLROnPlateau: the lr is in the plateau's state, which the trainer updates after each
  evaluation with the test loss or accuracy.

A schedule keyword that takes a function (``lr_lambda``, ``scale_fn``) takes a Python function,
from a Python config file (``configs/lambda_lr.py``). Text is never evaluated: a JSON file or a
flag cannot carry a function.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

import lrjax
from examples.mnist.configs.default import Config
from examples.mnist.validation import ConfigError, check_numbers
from lrjax import registry

PLATEAU_METRICS = ("test_loss", "test_accuracy")
FUNCTION_HINT = (
    "A JSON file or a flag holds data, never code: write a Python config file whose get_config() "
    "sets the function (see examples/mnist/configs/lambda_lr.py) and pass --config FILE.py."
)


@dataclasses.dataclass(frozen=True)
class Plan:
    """How the lr and momentum of each update are computed.

    Attributes:
        unit: "epoch" or "step": when the schedule's torch ``scheduler.step()`` happens.
        lr: ``step -> lr``, a function of the number of updates done (None with a plateau).
        plateau: with ReduceLROnPlateau, an ``lrjax.PlateauSchedule``: ``init()``,
            ``update(state, metric, step)``, ``lr(state, step)``; else None.
        momentum: ``step -> momentum`` or None.
        momentum_name: the optax hyperparameter the momentum drives ("momentum" for SGD, "b1" for Adam).
        description: for the log.
    """

    unit: str
    lr: Callable[[jax.Array], jax.Array] | None
    plateau: Any
    momentum: Callable[[jax.Array], jax.Array] | None
    momentum_name: str | None
    description: str

    def hyperparams(self, step: jax.Array, plateau_state: Any) -> dict[str, jax.Array]:
        """The optimizer hyperparameters of the update that follows ``step`` updates (traceable)."""
        lr = self.plateau.lr(plateau_state, step) if self.plateau is not None else self.lr(step)
        out = {"learning_rate": jnp.asarray(lr, jnp.float32)}
        if self.momentum is not None:
            out[self.momentum_name] = jnp.asarray(self.momentum(step), jnp.float32)
        return out


def entry(config: Any) -> registry.Entry:
    """The registry entry of the schedule config ``config`` (lrjax's or torch's name)."""
    name = config.get("name") if isinstance(config, dict) else None
    try:
        return registry.lookup(name)
    except ValueError as e:
        raise ConfigError(
            str(e)
            if isinstance(name, str)
            else f"a schedule config needs a string 'name' (one of {', '.join(registry.names())}), got {config!r}"
        ) from None


def _split(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    try:
        return lrjax.split_momentum(config)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _check_keywords(config: Any, where: str) -> None:
    """Names, keywords and value types of a schedule config (nested members too), without building it."""
    if not isinstance(config, dict):
        raise ConfigError(f"{where} must be a dict {{'name': ..., **kwargs}}, got {config!r}")
    e = entry(config)
    lr_part, momentum_part = _split(config) if e.momentum else (config, None)
    params = inspect.signature(e.factory).parameters
    unknown = [k for k in lr_part if k != "name" and k not in params]
    if unknown:
        valid = list(params) + (["cycle_momentum", "base_momentum", "max_momentum"] if e.momentum else [])
        raise ConfigError(
            f"unknown keyword{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
            f"{e.name}. Valid keywords: {', '.join(valid)}."
        )
    for key, value in lr_part.items():
        annotation = str(params[key].annotation) if key in params else ""
        if ("Callable" in annotation or "Lambda" in annotation) and not _callables(value):
            raise ConfigError(f"{key} of {e.name} must be a Python function, got {value!r}. {FUNCTION_HINT}")
        if e.members == key:
            for member in value if isinstance(value, list) else [value]:
                _check_keywords(member, f"a member of {e.name}")
    check_numbers(lr_part, f"schedule {e.name}")
    if momentum_part is not None:
        _check_keywords(momentum_part, f"the momentum of {e.name}")


def _callables(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(callable(v) for v in value)
    return callable(value) or value is None


def _build(config: dict[str, Any], **defaults: Any) -> Any:
    try:
        return lrjax.from_config(config, **defaults)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"schedule {_show(config)}: {e}") from None


def _show(config: Any) -> str:
    """``config`` for a message (functions by name)."""
    if isinstance(config, dict):
        return "{" + ", ".join(f"{k!r}: {_show(v)}" for k, v in config.items()) + "}"
    if isinstance(config, list):
        return "[" + ", ".join(_show(v) for v in config) + "]"
    return getattr(config, "__qualname__", None) or repr(config) if callable(config) else repr(config)


def precheck(config: Config) -> None:
    """Checks the schedules' and the optimizer's names, keywords and value types, without the data."""
    _check_keywords(config.schedule, "schedule")
    if entry(config.schedule).role == "momentum":
        raise ConfigError(
            f"{entry(config.schedule).name} is a momentum schedule; give it as momentum_schedule "
            "(--momentum-schedule), and a learning-rate schedule as schedule."
        )
    if config.momentum_schedule is not None:
        _check_keywords(config.momentum_schedule, "momentum_schedule")
        if entry(config.momentum_schedule).role != "momentum":
            valid = ", ".join(e.name for e in registry.entries("momentum"))
            raise ConfigError(f"momentum_schedule must be one of {valid}, got {entry(config.momentum_schedule).name}")
    optimizer_kwargs(config)


def resolve_unit(config: Config) -> str:
    """``config.schedule_unit``; ``"auto"`` steps schedules with a momentum partner (CyclicLR, OneCycleLR)
    and wrappers (``per_epoch``, which counts epochs itself) per update, every other per epoch."""
    if config.schedule_unit not in ("auto", "epoch", "step"):
        raise ConfigError(f"schedule_unit must be 'auto', 'epoch' or 'step', got {config.schedule_unit!r}")
    if config.schedule_unit != "auto":
        return config.schedule_unit
    e = entry(config.schedule)
    return "step" if e.momentum or e.role == "wrapper" else "epoch"


def make_plan(config: Config, steps_per_epoch: int) -> Plan:
    """The lr/momentum plan of ``config`` for ``steps_per_epoch`` updates per epoch.

    Raises:
        ConfigError: for any invalid schedule name, keyword or value.
    """
    precheck(config)
    e = entry(config.schedule)
    unit = resolve_unit(config)
    if config.epochs * steps_per_epoch >= 2**31:
        raise ConfigError(
            f"{config.epochs} epochs of {steps_per_epoch} updates are {config.epochs * steps_per_epoch} "
            "updates: the update count is an int32, so a run has fewer than 2**31."
        )
    units = config.epochs * (steps_per_epoch if unit == "step" else 1)
    # Keywords torch requires that follow from the run: the lr, T_max (the whole run), and the
    # length of a one-cycle. A value in the config wins.
    defaults = {
        "base_lr": config.learning_rate,
        "T_max": max(units - config.warmup, 1),
        "epochs": config.epochs,
        "steps_per_epoch": steps_per_epoch if unit == "step" else 1,
    }
    schedule_cfg, momentum_cfg = _split(copy.copy(config.schedule))
    if config.momentum_schedule is not None:
        momentum_cfg = dict(config.momentum_schedule)

    def per_unit(schedule):
        return lrjax.per_epoch(schedule, steps_per_epoch) if unit == "epoch" else schedule

    warm = None
    if config.warmup:
        warm = lrjax.linear_lr(
            config.learning_rate, start_factor=config.warmup_start_factor, end_factor=1.0, total_iters=config.warmup
        )
    plateau = lr = None
    if e.role == "plateau":
        if config.plateau_metric not in PLATEAU_METRICS:
            raise ConfigError(
                f"plateau_metric must be one of {', '.join(PLATEAU_METRICS)}, got {config.plateau_metric!r}"
            )
        schedule_cfg.setdefault("mode", "max" if config.plateau_metric == "test_accuracy" else "min")
        reduce = _build(schedule_cfg)
        description = f"{reduce!r} on {config.plateau_metric}, stepped per epoch"
        if warm is not None:
            # Warm-up, then the plateau from the warm-up's final lr: torch's SequentialLR cannot
            # hold a ReduceLROnPlateau; lrjax.sequential_plateau can.
            milestone = config.warmup * (steps_per_epoch if unit == "epoch" else 1)
            plateau = lrjax.sequential_plateau(per_unit(warm), reduce, milestone=milestone)
            description = f"{warm!r} for {milestone} updates, then {description}"
        else:
            plateau = _plateau_alone(reduce, config.learning_rate)
    else:
        schedule = _build(schedule_cfg, **defaults)
        if isinstance(schedule, lrjax.PlateauSchedule):  # a combination with a plateau, from a config
            plateau, description = schedule, f"{schedule!r} on {config.plateau_metric}"
        else:
            if warm is not None:
                try:
                    schedule = lrjax.sequential_lr([warm, schedule], milestones=[config.warmup])
                except ValueError as err:
                    raise ConfigError(f"warm-up followed by {e.name}: {err}") from None
            lr = per_unit(schedule)
            description = f"{schedule!r}" + (
                f" stepped per epoch ({steps_per_epoch} updates)" if unit == "epoch" else " stepped per update"
            )
    momentum = momentum_name = None
    if momentum_cfg is not None:
        momentum = per_unit(_build(momentum_cfg, **defaults))
        momentum_name = _momentum_hyperparam(config.optimizer)
        description += f"; {momentum_name} = {momentum!r}"
    return Plan(unit, lr, plateau, momentum, momentum_name, description)


def _plateau_alone(plateau: Any, base_lr: float) -> lrjax.PlateauSchedule:
    """A plateau on its own, in the interface of ``lrjax.sequential_plateau``/``chained_plateau``."""
    return lrjax.PlateauSchedule(
        init=lambda: plateau.init(base_lr),
        update=lambda state, metric, step: plateau.update(state, metric),
        lr=lambda state, step: state.lr,
    )


# ------------------------------------------------------------------------------------------------
# Optimizers
# ------------------------------------------------------------------------------------------------


def optimizer_factory(name: str) -> Callable[..., optax.GradientTransformation]:
    factory = getattr(optax, name, None) if isinstance(name, str) and not name.startswith("_") else None
    if not callable(factory) or "learning_rate" not in _parameters(factory):
        valid = sorted(
            n
            for n in dir(optax)
            if not n.startswith("_")
            and n.islower()
            and callable(getattr(optax, n))
            and "learning_rate" in _parameters(getattr(optax, n))
        )
        raise ConfigError(
            f"unknown optimizer {name!r}; any optax optimizer taking a learning_rate: {', '.join(valid)}."
        )
    return factory


def _parameters(fn: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}


def _momentum_hyperparam(optimizer: str) -> str:
    params = _parameters(optimizer_factory(optimizer))
    for name in ("momentum", "b1"):
        if name in params:
            return name
    raise ConfigError(
        f"the momentum schedule needs an optimizer with a momentum (sgd) or b1 (adam, adamw, ...); "
        f"optax.{optimizer} has neither. Set cycle_momentum=False in the schedule to keep it off."
    )


def _kind(param: inspect.Parameter) -> str:
    """What an optax argument takes: "bool", "number", or "any" (dtypes, masks, ...), from its default
    and annotation."""
    annotation = str(param.annotation)
    if isinstance(param.default, bool) or annotation in ("<class 'bool'>", "bool"):
        return "bool"
    if isinstance(param.default, (int, float)) or ("float" in annotation and "Any" not in annotation):
        return "number"
    return "any"


def optimizer_kwargs(config: Config) -> dict[str, Any]:
    """``config.optimizer_args``, checked against the optax optimizer's signature: names and value types."""
    params = _parameters(optimizer_factory(config.optimizer))
    if not isinstance(config.optimizer_args, dict):
        raise ConfigError(f"optimizer_args must be a dict, got {config.optimizer_args!r}")
    kwargs = dict(config.optimizer_args)
    unknown = [k for k in kwargs if k not in params or k == "learning_rate"]
    if unknown:
        valid = [k for k in params if k != "learning_rate"]
        raise ConfigError(
            f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
            f"optax.{config.optimizer} (give the lr as learning_rate / --lr). Valid: {', '.join(valid)}."
        )
    for key, value in kwargs.items():
        kind = _kind(params[key])
        if kind == "bool" and not isinstance(value, bool):
            raise ConfigError(f"{key} of optax.{config.optimizer} must be true or false, got {value!r}")
        if (
            kind == "number"
            and not (value is None and params[key].default is None)
            and (isinstance(value, bool) or not isinstance(value, (int, float)))
        ):
            raise ConfigError(f"{key} of optax.{config.optimizer} must be a number, got {value!r}")
    check_numbers(kwargs, f"optax.{config.optimizer}")
    return kwargs


def make_optimizer(config: Config, plan: Plan) -> optax.GradientTransformation:
    """``optax.<config.optimizer>`` whose lr (and momentum) the train step sets before each update.

    ``optax.inject_hyperparams`` keeps the hyperparameters in the optimizer state: the train step
    writes the scheduled values there before every update, so the state also records the lr and
    momentum the last update used (and a checkpoint holds them). Before the first update they
    hold 0: the schedule is not evaluated here (eagerly, it would compile each of its operations).
    """
    factory = optimizer_factory(config.optimizer)
    kwargs = optimizer_kwargs(config)
    if plan.momentum is not None:
        kwargs[plan.momentum_name] = 0.0  # a number, so inject_hyperparams holds it in the state
    # Every numeric hyperparameter lives in the state as a float32 array (inject_hyperparams'
    # default). Measured against torch's Adam in tests/test_mnist_parity.py: the per-epoch loss
    # then agrees to 3e-7; keeping b1/b2/eps static Python floats gave 4.5e-6.
    try:
        return optax.inject_hyperparams(factory)(learning_rate=0.0, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optax.{config.optimizer}({kwargs}): {e}") from None
