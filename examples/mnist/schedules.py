"""From the config to what the train step needs: the lr (and momentum) of every optimizer update.

Everything here runs in Python before anything is compiled, so a bad schedule name or keyword
fails at once with lrjax's message (which lists the valid names or keywords).

The schedules become functions of the optimizer's update count ``step`` (optax's convention):

* ``schedule_unit="epoch"``: torch's ``scheduler.step()`` after each epoch, through
  ``lrjax.per_epoch(schedule, steps_per_epoch)``;
* ``schedule_unit="step"``: ``scheduler.step()`` after each ``optimizer.step()`` (CyclicLR and
  OneCycleLR are meant to be used so), the schedule as it is;
* ReduceLROnPlateau: the lr is in the plateau's state, which the trainer updates after each
  evaluation with the validation loss or accuracy.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

import lrjax

from examples.mnist.configs.default import Config


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which, and what is valid."""


# torch's CyclicLR/OneCycleLR take cycle_momentum/base_momentum/max_momentum; lrjax splits the
# momentum off into its own schedule (same phases), which the trainer builds from these keywords.
_MOMENTUM_OF = {"cyclic_lr": "cyclic_momentum", "one_cycle_lr": "one_cycle_momentum"}
_MOMENTUM_KEYS = ("cycle_momentum", "base_momentum", "max_momentum")
_PER_STEP = ("cyclic_lr", "one_cycle_lr", "per_epoch")  # "auto" steps these per optimizer update
_MOMENTUM_SCHEDULES = ("cyclic_momentum", "one_cycle_momentum")
_FUNCTION_KEYS = ("lr_lambda", "scale_fn")
PLATEAU_METRICS = ("test_loss", "test_accuracy")


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
        if self.plateau is not None:
            lr = self.plateau.lr(plateau_state, step)
        else:
            lr = self.lr(step)
        out = {"learning_rate": jnp.asarray(lr, jnp.float32)}
        if self.momentum is not None:
            out[self.momentum_name] = jnp.asarray(self.momentum(step), jnp.float32)
        return out


def _plateau_alone(plateau: Any, base_lr: float) -> Any:
    """A plateau on its own, in the interface of ``lrjax.sequential_plateau``/``chained_plateau``."""
    def init():
        return plateau.init(base_lr)

    def update(state, metric, step):
        del step
        return plateau.update(state, metric)

    def lr(state, step):
        del step
        return state.lr

    return lrjax.PlateauSchedule(init=init, update=update, lr=lr)


def canonical_name(config: dict[str, Any]) -> str:
    """lrjax's name of the schedule in ``config`` (torch's class names become ``snake_case``)."""
    name = config.get("name") if isinstance(config, dict) else None
    if not isinstance(name, str):
        raise ConfigError(
            f"a schedule config needs a string 'name' (one of {', '.join(lrjax.available_schedules())}), got {config!r}")
    if name in lrjax.available_schedules():
        return name
    snake = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()  # OneCycleLR -> one_cycle_lr
    if snake in lrjax.available_schedules():
        return snake
    _build({"name": name})  # raises lrjax's message, which lists the valid names
    raise ConfigError(f"unknown schedule name {name!r}")


def _functions(config: Any) -> Any:
    """Turns ``"lambda epoch: ..."`` strings (lr_lambda, scale_fn) into functions, in nested configs too.

    The strings are Python expressions evaluated with ``jnp`` (jax.numpy) in scope: a config file
    is code you run, like a ``configs/*.py`` file.
    """
    if isinstance(config, list):
        return [_functions(c) for c in config]
    if not isinstance(config, dict):
        return config
    out = {}
    for key, value in config.items():
        if key in _FUNCTION_KEYS and isinstance(value, str):
            try:
                fn = eval(value, {"jnp": jnp, "jax": jax, "__builtins__": {"min": min, "max": max, "abs": abs}})  # noqa: S307
            except SyntaxError as e:
                raise ConfigError(f"{key} {value!r} is not a Python expression: {e.msg}") from None
            if not callable(fn):
                raise ConfigError(f"{key} must be a function such as 'lambda epoch: 0.95 ** epoch', got {value!r}")
            out[key] = fn
        else:
            out[key] = _functions(value)
    return out


def _build(config: dict[str, Any], **defaults: Any) -> Any:
    try:
        return lrjax.from_config(_functions(config), **defaults)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"schedule {config!r}: {e}") from None


def precheck(config: Config) -> None:
    """Checks the schedule's and optimizer's names and keywords (not their values), without the data."""
    for field in ("schedule", "momentum_schedule"):
        cfg = getattr(config, field)
        if cfg is None and field == "momentum_schedule":
            continue
        if not isinstance(cfg, dict):
            raise ConfigError(f"{field} must be a dict {{'name': ..., **kwargs}}, got {cfg!r}")
        name = canonical_name(cfg)
        valid = list(inspect.signature(getattr(lrjax, name)).parameters)
        if name in _MOMENTUM_OF:
            valid += list(_MOMENTUM_KEYS)
        unknown = [k for k in cfg if k not in valid and k != "name"]
        if unknown:
            raise ConfigError(
                f"unknown keyword{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for {name}. "
                f"Valid keywords: {', '.join(valid)}.")
    optimizer_kwargs(config)


def resolve_unit(config: Config) -> str:
    if config.schedule_unit not in ("auto", "epoch", "step"):
        raise ConfigError(f"schedule_unit must be 'auto', 'epoch' or 'step', got {config.schedule_unit!r}")
    if config.schedule_unit != "auto":
        return config.schedule_unit
    return "step" if canonical_name(config.schedule) in _PER_STEP else "epoch"


def make_plan(config: Config, steps_per_epoch: int) -> Plan:
    """The lr/momentum plan of ``config`` for ``steps_per_epoch`` updates per epoch.

    Raises:
        ConfigError: for any invalid schedule name, keyword or value.
    """
    if not isinstance(config.schedule, dict):
        raise ConfigError(f"schedule must be a dict {{'name': ..., **kwargs}}, got {config.schedule!r}")
    schedule_cfg = copy.deepcopy(config.schedule)
    name = canonical_name(schedule_cfg)
    if name in _MOMENTUM_SCHEDULES:
        raise ConfigError(f"{name} is a momentum schedule; give it as momentum_schedule (--momentum-schedule), "
                          "and a learning-rate schedule as schedule.")
    unit = resolve_unit(config)
    units = config.epochs * (steps_per_epoch if unit == "step" else 1)
    per_unit_steps = steps_per_epoch if unit == "step" else 1
    # Keywords torch requires that follow from the run: the lr, T_max (the whole run), and the
    # length of a one-cycle. A value in the config wins.
    defaults = {"base_lr": config.learning_rate, "T_max": max(units - config.warmup, 1), "epochs": config.epochs,
                "steps_per_epoch": per_unit_steps}

    momentum_cfg = copy.deepcopy(config.momentum_schedule) if config.momentum_schedule is not None else None
    torch_momentum = {k: schedule_cfg.pop(k) for k in _MOMENTUM_KEYS if k in schedule_cfg}
    if torch_momentum and name not in _MOMENTUM_OF:
        raise ConfigError(f"{', '.join(torch_momentum)}: only CyclicLR and OneCycleLR cycle the momentum, not {name}.")
    if name in _MOMENTUM_OF and momentum_cfg is None and torch_momentum.pop("cycle_momentum", True):
        # torch's default cycle_momentum=True: the momentum schedule shares the lr schedule's phases.
        mom_name = _MOMENTUM_OF[name]
        shared = set(inspect.signature(getattr(lrjax, mom_name)).parameters) - {"base_momentum", "max_momentum"}
        momentum_cfg = {"name": mom_name, **{k: v for k, v in schedule_cfg.items() if k in shared}, **torch_momentum}

    plateau = lr = None
    if name == "reduce_lr_on_plateau":
        if config.plateau_metric not in PLATEAU_METRICS:
            raise ConfigError(f"plateau_metric must be one of {', '.join(PLATEAU_METRICS)}, got {config.plateau_metric!r}")
        if "mode" not in schedule_cfg:
            schedule_cfg["mode"] = "max" if config.plateau_metric == "test_accuracy" else "min"
        reduce = _build(schedule_cfg)
        description = f"{reduce!r} on {config.plateau_metric}, stepped per epoch"
        if config.warmup:
            # Warm-up, then the plateau from the warm-up's final lr: torch's SequentialLR cannot
            # hold a ReduceLROnPlateau; lrjax.sequential_plateau can.
            warm = lrjax.linear_lr(config.learning_rate, start_factor=config.warmup_start_factor, end_factor=1.0,
                                   total_iters=config.warmup)
            milestone = config.warmup * (steps_per_epoch if unit == "epoch" else 1)
            warm = lrjax.per_epoch(warm, steps_per_epoch) if unit == "epoch" else warm
            plateau = lrjax.sequential_plateau(warm, reduce, milestone=milestone)
            description = f"{warm!r} for {milestone} updates, then {description}"
        else:
            plateau = _plateau_alone(reduce, config.learning_rate)
    else:
        schedule = _build(schedule_cfg, **defaults)
        if isinstance(schedule, getattr(lrjax, "PlateauSchedule", ())):
            plateau, description = schedule, f"{schedule!r} on {config.plateau_metric}"  # a combination from a config
        else:
            if config.warmup:
                warm = lrjax.linear_lr(config.learning_rate, start_factor=config.warmup_start_factor, end_factor=1.0,
                                       total_iters=config.warmup)
                try:
                    schedule = lrjax.sequential_lr([warm, schedule], milestones=[config.warmup])
                except ValueError as e:
                    raise ConfigError(f"warm-up followed by {name}: {e}") from None
            lr = lrjax.per_epoch(schedule, steps_per_epoch) if unit == "epoch" else schedule
            description = f"{schedule!r}" + (f" stepped per epoch ({steps_per_epoch} updates)" if unit == "epoch"
                                             else " stepped per update")

    momentum = momentum_name = None
    if momentum_cfg is not None:
        if canonical_name(momentum_cfg) not in _MOMENTUM_SCHEDULES:
            raise ConfigError(f"momentum_schedule must be one of {', '.join(_MOMENTUM_SCHEDULES)}, "
                              f"got {momentum_cfg.get('name')!r}")
        momentum = _build(momentum_cfg, **defaults)
        momentum = lrjax.per_epoch(momentum, steps_per_epoch) if unit == "epoch" else momentum
        momentum_name = _momentum_hyperparam(config.optimizer)
        description += f"; {momentum_name} = {momentum!r}"
    return Plan(unit, lr, plateau, momentum, momentum_name, description)


# ------------------------------------------------------------------------------------------------
# Optimizers
# ------------------------------------------------------------------------------------------------


def _optimizer_factory(name: str) -> Callable[..., optax.GradientTransformation]:
    factory = getattr(optax, name, None) if isinstance(name, str) and not name.startswith("_") else None
    if not callable(factory) or "learning_rate" not in _parameters(factory):
        valid = sorted(n for n in dir(optax) if not n.startswith("_") and n.islower()
                       and callable(getattr(optax, n)) and "learning_rate" in _parameters(getattr(optax, n)))
        raise ConfigError(f"unknown optimizer {name!r}; any optax optimizer taking a learning_rate: {', '.join(valid)}.")
    return factory


def _parameters(fn: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}


def _momentum_hyperparam(optimizer: str) -> str:
    params = _parameters(_optimizer_factory(optimizer))
    for name in ("momentum", "b1"):
        if name in params:
            return name
    raise ConfigError(f"the momentum schedule needs an optimizer with a momentum (sgd) or b1 (adam, adamw, ...); "
                      f"optax.{optimizer} has neither. Set cycle_momentum=False in the schedule to keep it off.")


def optimizer_kwargs(config: Config) -> dict[str, Any]:
    """``config.optimizer_args``, checked against the optax optimizer's signature."""
    params = _parameters(_optimizer_factory(config.optimizer))
    if not isinstance(config.optimizer_args, dict):
        raise ConfigError(f"optimizer_args must be a dict, got {config.optimizer_args!r}")
    kwargs = dict(config.optimizer_args)
    unknown = [k for k in kwargs if k not in params or k == "learning_rate"]
    if unknown:
        valid = [k for k in params if k != "learning_rate"]
        raise ConfigError(f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
                          f"optax.{config.optimizer} (give the lr as learning_rate / --lr). Valid: {', '.join(valid)}.")
    return kwargs


def make_optimizer(config: Config, plan: Plan) -> optax.GradientTransformation:
    """``optax.<config.optimizer>`` whose lr (and momentum) the train step sets before each update.

    ``optax.inject_hyperparams`` keeps the hyperparameters in the optimizer state: the train step
    writes the scheduled values there before every update, so the state also records the lr and
    momentum the last update used (and a checkpoint holds them).
    """
    factory = _optimizer_factory(config.optimizer)
    kwargs = optimizer_kwargs(config)
    if plan.momentum is not None:
        kwargs[plan.momentum_name] = float(plan.momentum(0))  # a number, so inject_hyperparams holds it in the state
    lr0 = plan.plateau.lr(plan.plateau.init(), 0) if plan.plateau is not None else plan.lr(0)
    # Every numeric hyperparameter lives in the state as a float32 array (inject_hyperparams'
    # default). Measured against torch's Adam in tests/test_mnist_parity.py: the per-epoch loss
    # then agrees to 3e-7; keeping b1/b2/eps static Python floats gave 4.5e-6.
    try:
        return optax.inject_hyperparams(factory)(learning_rate=float(lr0), **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optax.{config.optimizer}({kwargs}): {e}") from None
