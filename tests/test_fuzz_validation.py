"""Validation fuzz: every constructor, every argument, odd values; a clear ValueError or torch's finite values.

For each public constructor (generated from ``lrjax.registry``, plus ``swalr`` and ``find_lr``) and
each of its arguments, the argument of a valid configuration is replaced by odd values: NaN,
+-inf, 1e39 (beyond float32), 1e-300, 5e-324, huge ints (2**31, 2**63, 2**70), negative, zero,
bool, str, None, arrays of the wrong shape, NumPy and JAX scalars, per-group lists, non-callables
and functions returning NaN / negative / huge values, wrong members, wrong milestones. In float32
and under x64, each must either

* raise ValueError at construction whose message names the argument (or is torch's own message
  for that input), or
* construct, and then give finite values equal to torch's (tests/torchtwin.py, torch run live)
  at a sample of steps, with no error at call time.

Values SEMANTICS.md requires to be refused (NaN, inf, bool, str, None, wrong shape, values that
overflow the float dtype) must raise; values it requires to be accepted (NumPy / JAX scalars of a
valid value, per-group lists where torch takes one per group, structural ints of any size) must
construct. Where torch itself raises or gives non-finite values, lrjax must raise ValueError.
"""

from __future__ import annotations

import json
import math
from typing import Any

import contract_stats
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torchref
import torchtwin
from conftest import requires_torch
from contract_harness import PAD
from torchtwin import Fn

import lrjax

NAN, INF = math.nan, math.inf
SAMPLE = [0, 1, 2, 3, 4, 5, 7, 10, 13, 21, 34, 55, 100]
HUGE_SAMPLE = [2**31 - 2, 2**31 - 1]


def _raising(e):
    raise RuntimeError("boom")


FLOAT_ODD = [
    NAN,
    INF,
    -INF,
    1e39,
    -1e39,
    1e-300,
    5e-324,
    0.0,
    -1.0,
    -0.5,
    2.0,
    1e300,
    True,
    False,
    "0.1",
    None,
    np.ones((2, 2)),
    [],
    [[0.1]],
    np.asarray([NAN, 0.1]),
    3,
    2**70,
]
INT_ODD = [
    0,
    -1,
    1.5,
    2.0,
    NAN,
    INF,
    True,
    False,
    "3",
    None,
    2**31,
    2**32 + 3,
    2**63,
    2**70,
    np.int64(7),
    np.uint64(2**40),
    np.int32(4),
    -(2**31),
    [3],
    1e39,
]
OPTION_ODD = ["foo", "", None, 1, True, "COS", "Linear"]
FLAG_ODD = [1, 0, "yes", None, 1.0, "False", np.asarray([True])]
FUNCTION_ODD = [
    1,
    "f",
    None,
    Fn("lambda e: nan", lambda e: math.nan),
    Fn("lambda e: -1.0", lambda e: -1.0),
    Fn("lambda e: inf", lambda e: math.inf),
    Fn("lambda e: 1e39", lambda e: 1e39),
    Fn("raises", _raising, kind="python"),
    Fn("lambda e: 'x'", lambda e: "x", kind="python"),
    Fn("lambda e: jnp.ones(2)", lambda e: jnp.ones(2), uses_jax=True),
]
STEPSIZE_ODD = INT_ODD + [0.5, 1e-300, 2.5, -2.5]
MILESTONES_ODD = [[NAN], [-1], [1.5], [True], [2**70], [2**31 + 1], [5, 3], "5", None, [np.int64(3)], 5, [INF], [3.0]]


# Values of a hyperparameter SEMANTICS.md requires lrjax to accept (given a valid base value v).
def _accepted_forms(v: float, per_group: bool) -> list:
    forms = [np.float64(v), np.float32(v), jnp.asarray(v)]
    if per_group:
        forms += [[v, v], np.asarray([v, v]), (v, v)]
    return forms


# constructor -> (a valid configuration, {argument: kind})
SPECS: dict[str, tuple[dict, dict[str, str]]] = {
    "step_lr": (
        {"name": "step_lr", "base_lr": 0.1, "step_size": 3, "gamma": 0.5},
        {"base_lr": "lr", "step_size": "int1", "gamma": "float"},
    ),
    "multi_step_lr": (
        {"name": "multi_step_lr", "base_lr": 0.1, "milestones": [2, 5], "gamma": 0.5},
        {"base_lr": "lr", "milestones": "milestones", "gamma": "float"},
    ),
    "constant_lr": (
        {"name": "constant_lr", "base_lr": 0.1, "factor": 0.5, "total_iters": 4},
        {"base_lr": "lr", "factor": "float", "total_iters": "int0"},
    ),
    "linear_lr": (
        {"name": "linear_lr", "base_lr": 0.1, "start_factor": 0.25, "end_factor": 1.0, "total_iters": 4},
        {"base_lr": "lr", "start_factor": "float", "end_factor": "float", "total_iters": "int0"},
    ),
    "exponential_lr": ({"name": "exponential_lr", "base_lr": 0.1, "gamma": 0.9}, {"base_lr": "lr", "gamma": "float"}),
    "polynomial_lr": (
        {"name": "polynomial_lr", "base_lr": 0.1, "total_iters": 6, "power": 2.0},
        {"base_lr": "lr", "total_iters": "int0", "power": "float"},
    ),
    "cosine_annealing_lr": (
        {"name": "cosine_annealing_lr", "base_lr": 0.1, "T_max": 10, "eta_min": 0.001},
        {"base_lr": "lr", "T_max": "int1", "eta_min": "float"},
    ),
    "cosine_annealing_warm_restarts": (
        {"name": "cosine_annealing_warm_restarts", "base_lr": 0.1, "T_0": 5, "T_mult": 2, "eta_min": 1e-4},
        {"base_lr": "lr", "T_0": "int1", "T_mult": "int1", "eta_min": "float"},
    ),
    "cyclic_lr": (
        {
            "name": "cyclic_lr",
            "base_lr": 0.01,
            "max_lr": 0.1,
            "step_size_up": 4,
            "step_size_down": 6,
            "mode": "exp_range",
            "gamma": 0.99,
        },
        {
            "base_lr": "lr",
            "max_lr": "lr",
            "step_size_up": "stepsize",
            "step_size_down": "stepsize",
            "mode": "option",
            "gamma": "float",
            "scale_fn": "function",
            "scale_mode": "option",
        },
    ),
    "cyclic_momentum": (
        {"name": "cyclic_momentum", "base_momentum": 0.8, "max_momentum": 0.9, "step_size_up": 4},
        {
            "base_momentum": "lr",
            "max_momentum": "lr",
            "step_size_up": "stepsize",
            "step_size_down": "stepsize",
            "mode": "option",
            "gamma": "float",
            "scale_fn": "function",
        },
    ),
    "one_cycle_lr": (
        {"name": "one_cycle_lr", "max_lr": 0.1, "total_steps": 200},
        {
            "max_lr": "lr",
            "total_steps": "int1",
            "pct_start": "pct",
            "anneal_strategy": "option",
            "div_factor": "float",
            "final_div_factor": "float",
            "three_phase": "flag",
        },
    ),
    "one_cycle_lr/epochs": (
        {"name": "one_cycle_lr", "max_lr": 0.1, "epochs": 20, "steps_per_epoch": 10},
        {"epochs": "int1", "steps_per_epoch": "int1"},
    ),
    "one_cycle_momentum": (
        {"name": "one_cycle_momentum", "total_steps": 200},
        {
            "total_steps": "int1",
            "pct_start": "pct",
            "base_momentum": "lr",
            "max_momentum": "lr",
            "three_phase": "flag",
            "anneal_strategy": "option",
        },
    ),
    "lambda_lr": (
        {
            "name": "lambda_lr",
            "base_lr": 0.1,
            "lr_lambda": Fn("jnp.exp(-e / 100)", lambda e: jnp.exp(-e / 100), uses_jax=True),
        },
        {"base_lr": "lr", "lr_lambda": "function", "total_steps": "table"},
    ),
    "multiplicative_lr": (
        {"name": "multiplicative_lr", "base_lr": 0.1, "lr_lambda": Fn("lambda e: 0.9", lambda e: 0.9, constant=0.9)},
        {"base_lr": "lr", "lr_lambda": "function", "total_steps": "table"},
    ),
    "swalr": (
        {"name": "swalr", "base_lr": 0.1, "swa_lr": 0.05, "anneal_epochs": 5},
        {"base_lr": "lr", "swa_lr": "lr", "anneal_epochs": "int0", "anneal_strategy": "option"},
    ),
    "chained_scheduler": (
        {
            "name": "chained_scheduler",
            "schedules": [
                {"name": "constant_lr", "base_lr": 0.1, "factor": 0.5, "total_iters": 3},
                {"name": "exponential_lr", "base_lr": 0.1, "gamma": 0.9},
            ],
        },
        {"schedules": "members", "total_steps": "table"},
    ),
    "sequential_lr": (
        {
            "name": "sequential_lr",
            "milestones": [3],
            "schedules": [
                {"name": "linear_lr", "base_lr": 0.1, "start_factor": 0.1, "total_iters": 3},
                {"name": "exponential_lr", "base_lr": 0.1, "gamma": 0.9},
            ],
        },
        {"schedules": "members", "milestones": "milestones"},
    ),
    "per_epoch": (
        {
            "name": "per_epoch",
            "schedule": {"name": "step_lr", "base_lr": 0.1, "step_size": 2},
            "steps_per_epoch": 3,
            "fractional": False,
        },
        {"schedule": "member", "steps_per_epoch": "int1", "fractional": "flag"},
    ),
}


def _members_odd() -> list:
    step = {"name": "step_lr", "base_lr": 0.1, "step_size": 2}
    groups2 = {"name": "step_lr", "base_lr": [0.1, 0.2], "step_size": 2}
    groups3 = {"name": "exponential_lr", "base_lr": [0.1, 0.2, 0.3], "gamma": 0.9}
    return [
        [],
        None,
        "step_lr",
        [None],
        [1.0],
        [lambda t: 0.1],
        [step, {"name": "one_cycle_lr", "max_lr": 0.1, "total_steps": 10}],
        [step, {"name": "cyclic_momentum", "step_size_up": 3}],
        [step, {"name": "per_epoch", "schedule": step, "steps_per_epoch": 2}],
        [groups2, groups3],
        "plateau",
    ]


def odd_values(kind: str, base_value: Any) -> list:
    if kind == "lr":
        return FLOAT_ODD + _accepted_forms(base_value, True)
    if kind == "float":
        return FLOAT_ODD + [[0.1, 0.2]] + _accepted_forms(base_value, False)
    if kind == "pct":
        return FLOAT_ODD + [0.0, 1.0, 1, np.float64(0.3)]
    if kind in ("int0", "int1"):
        return INT_ODD
    if kind == "table":  # a table's horizon: tabulating 2**31 steps is no test of validation
        return [v for v in INT_ODD if not (isinstance(v, (int, float, np.integer)) and v > 2**20)]
    if kind == "stepsize":
        return STEPSIZE_ODD
    if kind == "option":
        return OPTION_ODD
    if kind == "flag":
        return FLAG_ODD
    if kind == "function":
        return FUNCTION_ODD
    if kind == "milestones":
        return MILESTONES_ODD
    if kind == "members":
        return _members_odd()
    if kind == "member":
        return [None, 3, "step_lr", lambda t: 0.1, {"name": "cyclic_momentum", "step_size_up": 3}]
    raise KeyError(kind)


def must_refuse(value: Any, kind: str, x64: bool, spec: str = "", default: Any = 0.1) -> bool:
    """Odd values SEMANTICS.md requires to be refused with ValueError (an optional argument's None is its default)."""
    if value is None and default is None:
        return False
    if kind == "members":
        return True
    if kind == "member":  # per_epoch takes any epoch -> lr function
        return not callable(value) and not isinstance(value, dict)
    if kind == "flag":
        return not isinstance(value, bool)
    if isinstance(value, (bool, np.bool_, str)) or value is None:
        return True
    if kind == "function":
        return not (isinstance(value, Fn) or callable(value))
    if kind == "milestones":
        if not isinstance(value, list):
            return True
        if spec.startswith("sequential") and len(value) != 1:
            return True
        return any(
            isinstance(m, (bool, str)) or m is None or (isinstance(m, float) and not math.isfinite(m)) for m in value
        )
    if kind in ("lr", "float", "pct"):
        arr = np.asarray(value, dtype=object)
        if arr.ndim > (1 if kind == "lr" else 0) or arr.size == 0:
            return True
        try:
            f = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return True
        if not np.all(np.isfinite(f)):
            return True
        if not x64 and np.any(np.abs(f) > np.finfo(np.float32).max):
            return True
    if kind in ("int0", "int1", "stepsize", "table"):
        if isinstance(value, list):
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return True
    return False


def must_accept(value: Any, kind: str, base_value: Any, spec: str = "") -> bool:
    """Odd values SEMANTICS.md requires to be accepted: valid values in other types, structural ints of any size."""
    if kind in ("lr", "float"):
        return any(value is v for v in _accepted_forms(base_value, kind == "lr"))
    if kind in ("int0", "int1", "stepsize", "table"):
        return (
            isinstance(value, (int, np.integer))
            and not isinstance(value, (bool, np.bool_))
            and value >= (1 if kind in ("int1", "stepsize") else 0)
        )
    if kind == "milestones":
        ok = isinstance(value, list) and all(
            isinstance(m, (int, np.integer)) and not isinstance(m, bool) and m >= 0 for m in value
        )
        if spec.startswith("sequential"):
            return ok and len(value) == 1
        return ok
    return False


def _names_argument(msg: str, arg: str, torch_msgs: list[str]) -> bool:
    """The message names the argument, or is one of torch's own messages for it (members: names them)."""
    if arg in ("schedules", "schedule") and ("schedul" in msg.lower() or "member" in msg.lower()):
        return True
    return arg in msg or any(m and m in msg for m in torch_msgs)


_TORCH_MESSAGES: dict[tuple[str, str], list[str]] = {}


def torch_messages(spec: str, arg: str) -> list[str]:
    """torch's ValueError messages for bad values of ``arg`` (probed with a few)."""
    k = (spec, arg)
    if k not in _TORCH_MESSAGES:
        base_cfg, _ = SPECS[spec]
        msgs = []
        if _torchable(base_cfg):
            for bad in (-1, -1.0, 2.0, 0, 0.0, 1.5, "x", 10):
                _, _, m = _torch_outcome(_set(base_cfg, arg, bad), [0, 1])
                if m:
                    msgs.append(m)
        _TORCH_MESSAGES[k] = msgs
    return _TORCH_MESSAGES[k]


def _torch_outcome(cfg: dict, steps: list[int]):
    """(values at ``steps`` or None, torch's exception or None, ValueError message or None)."""
    try:
        with np.errstate(all="ignore"):
            run = torchtwin.build_torch(cfg)
            table = run.run(max(steps))
    except Exception as e:  # noqa: BLE001 - torch's failure is what we compare with
        return None, e, str(e) if isinstance(e, ValueError) else None
    return table[steps], None, None


def _set(cfg: dict, arg: str, value: Any) -> dict:
    out = dict(cfg)
    if value is _MISSING:
        out.pop(arg, None)
    else:
        out[arg] = value
    return out


_MISSING = object()


def _lrjax_build(cfg: dict):
    kw = {}
    for k, v in cfg.items():
        if k == "name":
            continue
        if k == "schedules" and isinstance(v, list):
            v = [
                torchtwin.build_lrjax(m)
                if isinstance(m, dict)
                else (lrjax.reduce_lr_on_plateau() if m == "plateau" else m)
                for m in v
            ]
        elif k == "schedules" and v == "plateau":
            v = [lrjax.step_lr(0.1, 2), lrjax.reduce_lr_on_plateau()]
        elif k == "schedule" and isinstance(v, dict):
            v = torchtwin.build_lrjax(v)
        else:
            v = v.raw if isinstance(v, Fn) else v
        kw[k] = v
    return torchtwin.lrjax_function(cfg["name"])(**kw)


def check_value(spec_name: str, arg: str, kind: str, value: Any, x64: bool) -> str | None:
    """One odd value in one mode; returns the problem, or None."""
    base_cfg, _ = SPECS[spec_name]
    cfg = _set(base_cfg, arg, value)
    label = f"{spec_name}({arg}={_short(value)}) [{'x64' if x64 else 'float32'}]"
    base_value = base_cfg.get(arg, _default(base_cfg["name"], arg))
    with jax.enable_x64(x64):
        try:
            schedule = _lrjax_build(cfg)
        except ValueError as e:
            # SEMANTICS.md: CyclicLR step sizes more than 2**32 apart are refused (torch's float64 loses the cycle).
            if must_accept(value, kind, base_value, spec_name) and not (
                kind == "stepsize" and "less than 2**-32 of the cycle" in str(e)
            ):
                return f"{label}: refused a value SEMANTICS.md requires to be accepted: {e}"
            msgs = []
            if kind not in ("members", "member") and _torchable(cfg):
                msgs = [m for m in [_torch_outcome(cfg, [0, 1])[2]] if m] + torch_messages(spec_name, arg)
            if not _names_argument(str(e), arg, msgs):
                return f"{label}: the ValueError does not name {arg!r}: {e}"
            contract_stats.count("validation (refused with ValueError)")
            return None
        except Exception as e:  # noqa: BLE001
            return f"{label}: raised {type(e).__name__} at construction (expected ValueError naming {arg!r}): {e}"
        if must_refuse(value, kind, x64, spec_name, _default(base_cfg["name"], arg)):
            return f"{label}: accepted a value SEMANTICS.md requires to be refused with ValueError"
        if spec_name == "per_epoch" and kind == "member":
            return None
        try:
            ours, huge = _evaluate(schedule, torchtwin.groups(cfg) is not None)
        except Exception as e:  # noqa: BLE001
            return f"{label}: accepted, then the call raised {type(e).__name__}: {str(e)[:300]}"
        if not (np.all(np.isfinite(ours)) and np.all(np.isfinite(huge))):
            return f"{label}: accepted, then gave non-finite values {ours.tolist()} / {huge.tolist()}"
        if not _torchable(cfg):
            contract_stats.count("validation (accepted, finite)")
            return None
        sample = _sample(cfg)
        expected, torch_error, _ = _torch_outcome(cfg, sample)
        if torch_error is None and kind == "table" and value is not None:
            # A table built with total_steps=N holds its value at N after it (a chain's may not: compare up to N).
            n = int(value)
            if cfg["name"] == "chained_scheduler":
                keep_steps = [i for i, k in enumerate(sample) if k <= n]
                sample, expected, ours = [sample[i] for i in keep_steps], expected[keep_steps], ours[keep_steps]
            else:
                expected = np.asarray([torchtwin.value(cfg, k) for k in sample], np.float64)
        if torch_error is not None:
            return (
                f"{label}: accepted, but torch raises {type(torch_error).__name__}: {str(torch_error)[:200]} "
                "(lrjax must raise ValueError at construction)"
            )
        G = torchtwin.groups(cfg)
        theirs = expected if G is not None else expected[:, 0]
        ours = ours[: len(sample)].reshape(theirs.shape) if ours[: len(sample)].size == theirs.size else ours
        # A growing schedule (gamma > 1) leaves the float range at some step in torch too; compare where torch's
        # value is finite and representable in the mode's float dtype.
        fmax = np.finfo(np.float64 if x64 else np.float32).max
        with np.errstate(invalid="ignore"):
            keep = np.all(np.isfinite(theirs) & (np.abs(theirs) <= fmax), axis=tuple(range(1, theirs.ndim)))
        if np.any(~keep) and not np.any(np.isfinite(theirs)):
            return f"{label}: accepted, but torch gives only non-finite values {theirs.tolist()} (must be refused)"
        try:
            torchref.compare(ours[keep], theirs[keep], 64 if x64 else 32)
        except AssertionError as e:
            return f"{label}: accepted, values differ from torch at steps {np.asarray(sample)[keep].tolist()}: {e}"
        contract_stats.count("validation (accepted, equal to torch)")
    return None


def _default(name: str, arg: str):
    import inspect

    if not hasattr(lrjax, name):
        return 0.1
    p = inspect.signature(torchtwin.lrjax_function(name)).parameters.get(arg)
    return p.default if p is not None and p.default is not inspect.Parameter.empty else 0.1


def _sample(cfg: dict) -> list[int]:
    """SAMPLE, within a OneCycleLR's total_steps (torch raises beyond it)."""
    if cfg["name"].startswith("one_cycle"):
        try:
            T = torchtwin.one_cycle_total(cfg)
        except Exception:  # noqa: BLE001 - an odd total: torch decides
            return SAMPLE
        return [k for k in SAMPLE if k <= T] or [0]
    return SAMPLE


def _evaluate(schedule, per_group: bool):
    """Values at SAMPLE and HUGE_SAMPLE: one eager call on an int32 array padded as test_contract pads (so the
    compiled primitives are shared), or for per-group schedules one call per step (the shape rule of step
    arrays is test_contract's)."""
    steps = np.asarray(SAMPLE + HUGE_SAMPLE, np.int32)  # optax's counter; other dtypes are test_contract's
    if per_group:
        out = np.stack([np.asarray(jax.block_until_ready(schedule(k)), np.float64) for k in steps])
    else:
        padded = np.concatenate([steps, np.repeat(steps[-1:], PAD - len(steps))])
        out = np.asarray(jax.block_until_ready(schedule(padded)), np.float64)[: len(steps)]
    return out[: len(SAMPLE)], out[len(SAMPLE) :]


def _torchable(cfg: dict) -> bool:
    """Whether the configuration has a torch twin to compare with (members given as configs)."""
    if cfg["name"] == "per_epoch":
        return False
    if "schedules" in cfg:
        return isinstance(cfg["schedules"], list) and all(
            isinstance(m, dict) and torchtwin.torch_class(m["name"]) for m in cfg["schedules"]
        )
    return True


def _short(v) -> str:
    r = repr(v)
    return r if len(r) < 40 else r[:37] + "..."


CASES = [(spec, arg, kind) for spec, (_, args) in SPECS.items() for arg, kind in args.items()]


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield
    contract_stats.report(__name__)


@requires_torch
@pytest.mark.parametrize("spec,arg,kind", CASES, ids=[f"{s}-{a}" for s, a, _ in CASES])
def test_odd_arguments(spec, arg, kind):
    base_cfg, _ = SPECS[spec]
    if spec.split("/")[0] not in [e.name for e in lrjax.registry.entries()] and not hasattr(lrjax, spec.split("/")[0]):
        pytest.fail(f"lrjax has no {spec.split('/')[0]} (SEMANTICS.md promises it)", pytrace=False)
    problems = []
    values = odd_values(kind, base_cfg.get(arg, _default(base_cfg["name"], arg)))
    for x64 in (False, True):
        for v in values:
            p = check_value(spec, arg, kind, v, x64)
            contract_stats.count("validation")
            if p:
                problems.append(p)
    if problems:
        contract_stats.failed("validation")
        pytest.fail(f"{len(problems)} problem(s):\n  " + "\n  ".join(problems[:40]), pytrace=False)


def test_every_constructor_has_a_validation_spec():
    names = {e.name for e in lrjax.registry.entries() if e.role in ("lr", "momentum", "wrapper")}
    assert names <= {s.split("/")[0] for s in SPECS}, names - {s.split("/")[0] for s in SPECS}
    for spec, (cfg, args) in SPECS.items():
        fn = torchtwin.lrjax_function(cfg["name"]) if hasattr(lrjax, cfg["name"]) else None
        if fn is not None:
            import inspect

            params = set(inspect.signature(fn).parameters)
            assert set(args) <= params, (spec, set(args) - params)


# -- find_lr ----------------------------------------------------------------------------------------

FIND_LR_ARGS = {
    "start_lr": "float",
    "end_lr": "float",
    "num_steps": "int1",
    "smooth": "float",
    "diverge_factor": "float",
    "skip_start": "int0",
    "skip_end": "int0",
}
_FIND_LR_PARAMS = dict(__import__("inspect").signature(lrjax.find_lr).parameters)
_FIND_LR_DEFAULTS = {k: p.default for k, p in _FIND_LR_PARAMS.items()}


@pytest.mark.parametrize("arg", sorted(FIND_LR_ARGS))
def test_find_lr_odd_arguments(arg):
    kind = FIND_LR_ARGS[arg]
    values = FLOAT_ODD if kind == "float" else [v for v in INT_ODD if not (isinstance(v, int) and v > 2**20)]
    problems = []

    def loss(p, b):
        return jnp.sum((p - b) ** 2)

    for x64 in (False, True):
        with jax.enable_x64(x64):
            batches = jnp.ones((8, 2))
            for v in values:
                kw = {arg: v}
                label = f"find_lr({arg}={_short(v)}) [{'x64' if x64 else 'float32'}]"
                if arg == "num_steps" and isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0:
                    kw_batches = jnp.ones((int(v), 2)) if v < 1000 else batches
                else:
                    kw_batches = batches
                contract_stats.count("validation/find_lr")
                try:
                    result = lrjax.find_lr(loss, jnp.zeros(2), kw_batches, **kw)
                except ValueError as e:
                    if arg not in str(e):
                        problems.append(f"{label}: the ValueError does not name {arg!r}: {e}")
                    continue
                except Exception as e:  # noqa: BLE001
                    problems.append(f"{label}: raised {type(e).__name__} (expected ValueError naming {arg!r}): {e}")
                    continue
                # None where the signature allows it; the float32 range rule for the learning rates only.
                optional = "None" in str(_FIND_LR_PARAMS[arg].annotation)
                refuse = must_refuse(
                    v,
                    kind,
                    x64 or arg not in ("start_lr", "end_lr"),
                    "find_lr",
                    None if optional else _FIND_LR_DEFAULTS[arg],
                )
                if refuse:
                    problems.append(f"{label}: accepted a value SEMANTICS.md requires to be refused")
                elif not np.all(np.isfinite(result.lrs)):
                    problems.append(f"{label}: accepted, then gave non-finite learning rates {result.lrs[:4]}...")
    if problems:
        pytest.fail(f"{len(problems)} problem(s):\n  " + "\n  ".join(problems[:40]), pytrace=False)


# -- from_config --------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [50, 2000])
def test_from_config_deeply_nested(depth):
    """Deep nesting (of configs, or of JSON itself) is a ValueError, not a RecursionError."""
    inner = '{"name": "step_lr", "base_lr": 0.1, "step_size": 2}'
    text = inner
    for _ in range(depth):
        text = '{"name": "chained_scheduler", "schedules": [' + text + "]}"
    for payload in (
        text,
        "[" * depth + "]" * depth,
        {"name": "per_epoch", "steps_per_epoch": 2, "schedule": json.loads(inner)},
    ):
        try:
            lrjax.from_config(payload)
        except ValueError:
            pass
        except Exception as e:  # noqa: BLE001
            pytest.fail(
                f"from_config of a {depth}-deep config raised {type(e).__name__} (expected ValueError or a "
                f"schedule): {str(e)[:200]}",
                pytrace=False,
            )
