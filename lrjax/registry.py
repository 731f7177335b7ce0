"""The one table of lrjax's schedules: names, torch classes, factories, converters, momentum partners.

Everything that needs to know which schedules exist reads this table: ``lrjax.from_config`` and
``lrjax.to_config``, ``lrjax.from_torch``, the ``lrjax`` command line, the tests (which generate
their every-schedule checks from it), the benchmarks and the MNIST example.

Examples:
    >>> from lrjax import registry
    >>> entry = registry.lookup("StepLR")
    >>> entry.name, entry.torch_class, entry.keywords
    ('step_lr', 'StepLR', ('base_lr', 'step_size', 'gamma'))
    >>> registry.lookup("one_cycle_lr").momentum
    'one_cycle_momentum'
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any, Literal

Role = Literal["lr", "momentum", "plateau", "wrapper"]

__all__ = ["Entry", "entries", "lookup", "names", "torch_classes"]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One schedule lrjax provides.

    Attributes:
        name: the lrjax function, e.g. ``"step_lr"``.
        module: the private module that defines it (and its torch converter), e.g. ``"_step"``.
        torch_class: the torch class it ports (``"StepLR"``), or None for lrjax's own helpers.
        torch_module: where torch defines that class.
        role: ``"lr"`` (a learning-rate schedule), ``"momentum"`` (the momentum a CyclicLR or
            OneCycleLR writes), ``"plateau"`` (a metric-driven state machine) or ``"wrapper"``
            (a function of another schedule, e.g. ``per_epoch``).
        momentum: for CyclicLR / OneCycleLR, the name of the momentum schedule over the same phases.
        torch_lr: the keyword that plays torch's optimizer ``lr`` (``"base_lr"``), or None where torch
            overwrites the optimizer's lr (CyclicLR, OneCycleLR) or there is none.
        composite: whether the schedule combines member schedules (ChainedScheduler, SequentialLR).
        members: for composites and wrappers, the keyword holding the member config(s).
        example: keyword arguments of a typical use (the torch docs' or the usual recipe's), for
            :meth:`example_config`, the command line's ``lrjax list``, the docs and the tests.
    """

    name: str
    module: str
    torch_class: str | None = None
    torch_module: str = "torch.optim.lr_scheduler"
    role: Role = "lr"
    momentum: str | None = None
    torch_lr: str | None = "base_lr"
    composite: bool = False
    members: str | None = None
    example: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def factory(self) -> Callable[..., Any]:
        """The public function that builds the schedule."""
        return getattr(importlib.import_module(f"lrjax.{self.module}"), self.name)

    @property
    def keywords(self) -> tuple[str, ...]:
        """The factory's keyword arguments, in order (torch's names)."""
        return tuple(inspect.signature(self.factory).parameters)

    @property
    def converter(self) -> Callable[..., Any] | None:
        """``convert(torch_scheduler, total_steps) -> schedule`` for ``lrjax.from_torch``, or None."""
        if self.torch_class is None and self.role != "momentum":
            return None
        return getattr(importlib.import_module(f"lrjax.{self.module}"), f"_from_torch_{self.name}", None)

    @property
    def torch_link(self) -> str | None:
        """The torch documentation page of the class."""
        if self.torch_class is None:
            return None
        return f"https://pytorch.org/docs/stable/generated/{self.torch_module}.{self.torch_class}.html"

    def example_config(self) -> dict[str, Any]:
        """``{"name": ..., **example}``, a config :func:`lrjax.from_config` builds (a fresh copy)."""
        return {"name": self.name, **copy.deepcopy(self.example)}

    def torch_type(self) -> type:
        """The torch class itself (imports torch)."""
        if self.torch_class is None:
            raise ValueError(f"{self.name} has no torch class")
        return getattr(importlib.import_module(self.torch_module), self.torch_class)


def _decay(epoch: Any) -> Any:
    """``0.95 ** epoch``: a LambdaLR factor that torch (Python ints) and lrjax (JAX arrays) both evaluate."""
    return 0.95**epoch


def _constant(epoch: Any) -> float:
    """``0.95`` at every step: MultiplicativeLR's usual factor."""
    return 0.95


def _warmup_cosine() -> list[dict[str, Any]]:
    return [
        {"name": "linear_lr", "base_lr": 0.1, "start_factor": 0.1, "total_iters": 10},
        {"name": "cosine_annealing_lr", "base_lr": 0.1, "T_max": 90},
    ]


_ENTRIES: tuple[Entry, ...] = (
    Entry("lambda_lr", "_lambda", "LambdaLR", example={"base_lr": 0.1, "lr_lambda": _decay}),
    Entry("multiplicative_lr", "_lambda", "MultiplicativeLR", example={"base_lr": 0.1, "lr_lambda": _constant}),
    Entry("step_lr", "_step", "StepLR", example={"base_lr": 0.1, "step_size": 30, "gamma": 0.1}),
    Entry("multi_step_lr", "_step", "MultiStepLR", example={"base_lr": 0.1, "milestones": [30, 80], "gamma": 0.1}),
    Entry("constant_lr", "_linear", "ConstantLR", example={"base_lr": 0.1, "factor": 0.5, "total_iters": 4}),
    Entry("linear_lr", "_linear", "LinearLR", example={"base_lr": 0.1, "start_factor": 0.1, "total_iters": 10}),
    Entry("exponential_lr", "_step", "ExponentialLR", example={"base_lr": 0.1, "gamma": 0.95}),
    Entry("polynomial_lr", "_linear", "PolynomialLR", example={"base_lr": 0.1, "total_iters": 50, "power": 2.0}),
    Entry(
        "cosine_annealing_lr", "_cosine", "CosineAnnealingLR", example={"base_lr": 0.1, "T_max": 50, "eta_min": 0.001}
    ),
    Entry(
        "cosine_annealing_warm_restarts",
        "_cosine",
        "CosineAnnealingWarmRestarts",
        example={"base_lr": 0.1, "T_0": 10, "T_mult": 2, "eta_min": 0.001},
    ),
    Entry(
        "cyclic_lr",
        "_cyclic",
        "CyclicLR",
        momentum="cyclic_momentum",
        torch_lr=None,
        example={"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 20, "mode": "triangular2"},
    ),
    Entry(
        "one_cycle_lr",
        "_one_cycle",
        "OneCycleLR",
        momentum="one_cycle_momentum",
        torch_lr=None,
        example={"max_lr": 0.1, "total_steps": 100},
    ),
    Entry(
        "swalr",
        "_swa",
        "SWALR",
        torch_module="torch.optim.swa_utils",
        example={"base_lr": 0.1, "swa_lr": 0.02, "anneal_epochs": 10},
    ),
    Entry(
        "chained_scheduler",
        "_compose",
        "ChainedScheduler",
        torch_lr=None,
        composite=True,
        members="schedules",
        example={
            "schedules": [
                {"name": "constant_lr", "base_lr": 0.1, "factor": 0.1, "total_iters": 20},
                {"name": "exponential_lr", "base_lr": 0.1, "gamma": 0.95},
            ]
        },
    ),
    Entry(
        "sequential_lr",
        "_compose",
        "SequentialLR",
        torch_lr=None,
        composite=True,
        members="schedules",
        example={"schedules": _warmup_cosine(), "milestones": [10]},
    ),
    Entry(
        "reduce_lr_on_plateau",
        "_plateau",
        "ReduceLROnPlateau",
        role="plateau",
        torch_lr=None,
        example={"factor": 0.5, "patience": 5},
    ),
    Entry(
        "cyclic_momentum",
        "_cyclic",
        role="momentum",
        torch_lr=None,
        example={"base_momentum": 0.8, "max_momentum": 0.9, "step_size_up": 20, "mode": "triangular2"},
    ),
    Entry("one_cycle_momentum", "_one_cycle", role="momentum", torch_lr=None, example={"total_steps": 100}),
    Entry(
        "per_epoch",
        "_epoch",
        role="wrapper",
        torch_lr=None,
        members="schedule",
        example={"schedule": {"name": "step_lr", "base_lr": 0.1, "step_size": 2}, "steps_per_epoch": 10},
    ),
)


def entries(role: Role | None = None) -> tuple[Entry, ...]:
    """Every entry (or those of one ``role``), in the order of torch's documentation."""
    return tuple(e for e in _ENTRIES if role is None or e.role == role)


def names() -> list[str]:
    """Every lrjax schedule name, sorted."""
    return sorted(e.name for e in _ENTRIES)


def torch_classes() -> dict[str, str]:
    """``{torch class name: lrjax name}`` for every torch class lrjax ports."""
    return {e.torch_class: e.name for e in _ENTRIES if e.torch_class is not None}


@functools.lru_cache(maxsize=None)
def _index() -> dict[str, Entry]:
    index = {e.name: e for e in _ENTRIES}
    index.update({e.torch_class: e for e in _ENTRIES if e.torch_class is not None})
    return index


def lookup(name: Any) -> Entry:
    """The entry of an lrjax name (``"step_lr"``) or a torch class name (``"StepLR"``).

    Raises:
        ValueError: for anything else, suggesting the closest name and listing the valid ones.
    """
    if not isinstance(name, str):
        raise ValueError(f"a schedule name must be a string, got {name!r}")
    index = _index()
    if name in index:
        return index[name]
    close = difflib.get_close_matches(name, list(index), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown schedule name {name!r}.{hint} Valid names: {', '.join(names())}.")
