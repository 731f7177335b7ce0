"""The contract of SEMANTICS.md, generated over every public schedule and the whole space of steps.

For every schedule in ``lrjax.registry`` (learning-rate, momentum and wrapper roles, plus the
schedules SEMANTICS.md promises), configurations drawn by tests/strategies.py (one with scalar
hyperparameters, one with per-group ones, seeded by the schedule's name) are run through
tests/contract_harness.py in float32 and under x64: every step type and dtype, eager / jit /
vmap / lax.map, steps 0, 1, period boundaries, 2**31 - 1, 2**32 - 1, 2**64 - 1, fractional,
negative, NaN and infinite steps, each against torch 2.13 run live (tests/torchtwin.py).

A failure lists every problem of the configuration: the leg (eager NumPy array, jit, ...), the
step dtype, the step, lrjax's and torch's values and the allowance.

torch cannot be stepped 2**31 times: beyond the live run (~1000 steps) the reference is torch's
own epoch path (``_get_closed_form_lr()`` / ``get_lr()`` at ``last_epoch = t``), and for
CosineAnnealingLR, CosineAnnealingWarmRestarts and CyclicLR, whose float64 arithmetic is itself
inexact at huge steps (an unreduced ``cos(pi * t / T_max)``, ``1 + t / total - cycle``), torch's
formula evaluated exactly (fractions + 40-digit mpmath, the step reduced exactly);
``test_twin_forms_match_torch_stepping`` checks those forms against torch stepped live.
"""

from __future__ import annotations

import random

import contract_stats
import jax
import numpy as np
import pytest
import strategies
import torchref
import torchtwin
from conftest import requires_torch
from contract_harness import Contract

import lrjax

ROLES = ("lr", "momentum", "wrapper")
CASES_PER_SCHEDULE = 2


def contract_names() -> list[str]:
    """Every schedule the contract covers: the registry's (by role) and the promised ones."""
    names = [e.name for e in lrjax.registry.entries() if e.role in ROLES]
    return names + [n for n in strategies.PROMISED if n not in names]


def contract_config(name: str, index: int) -> dict:
    return strategies.draw(name, random.Random(f"contract:{name}:{index}"), per_group=index % 2 == 1)


def with_total_steps(cfg: dict, n: int) -> dict:
    """``cfg`` with ``total_steps=n`` on every chained_scheduler (the horizon torch's recursion is tabulated to)."""
    out = dict(cfg)
    if cfg["name"] == "chained_scheduler":
        out["total_steps"] = n
    if "schedules" in cfg:
        out["schedules"] = [with_total_steps(m, n) for m in cfg["schedules"]]
    if "schedule" in cfg:
        out["schedule"] = with_total_steps(cfg["schedule"], n)
    return out


def _has_chain(cfg: dict) -> bool:
    if cfg["name"] == "chained_scheduler":
        return True
    return any(_has_chain(m) for m in cfg.get("schedules", [])) or ("schedule" in cfg and _has_chain(cfg["schedule"]))


def run_contract(cfg: dict, x64: bool, category: str, legs: str = "all") -> list[str]:
    """Builds ``cfg`` with lrjax in the mode and runs the contract; returns the problems."""
    with jax.enable_x64(x64):
        limit = None
        try:
            schedule = torchtwin.build_lrjax(cfg)
        except ValueError as e:
            if not (_has_chain(cfg) and "total_steps" in str(e)):
                contract_stats.failed(category)
                return [f"construction raised ValueError, but torch runs this configuration: {e}"]
            # SEMANTICS.md: chains whose torch value depends on the whole history need total_steps.
            contract_stats.count(category + " (refused without total_steps)")
            inner = cfg["schedule"] if cfg["name"] == "per_epoch" else cfg
            n = torchtwin.live_horizon(inner) - 2
            cfg = with_total_steps(cfg, n)
            limit = n * cfg["steps_per_epoch"] if cfg["name"] == "per_epoch" else n
            try:
                schedule = torchtwin.build_lrjax(cfg)
            except Exception as e2:  # noqa: BLE001
                contract_stats.failed(category)
                return [f"construction with total_steps={n} raised {type(e2).__name__}: {e2}"]
        except Exception as e:  # noqa: BLE001
            contract_stats.failed(category)
            return [f"construction raised {type(e).__name__}: {str(e)[:400]}"]
        return Contract(cfg, schedule, x64, category=category, limit=limit, legs=legs).run()


def _fail(cfg, problems):
    head = f"{len(problems)} problem(s) for {torchtwin.describe(cfg)}:\n  "
    pytest.fail(head + "\n  ".join(problems[:40]) + ("\n  ..." if len(problems) > 40 else ""), pytrace=False)


CASES = [(n, i) for n in contract_names() for i in range(CASES_PER_SCHEDULE)]


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield
    contract_stats.report(__name__)


@requires_torch
@pytest.mark.parametrize("x64", [False, True], ids=["float32", "x64"])
@pytest.mark.parametrize("name,index", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_contract(name, index, x64):
    cfg = contract_config(name, index)
    problems = run_contract(cfg, x64, f"contract/{name}")
    if problems:
        _fail(cfg, problems)


# The issue's own examples, run through the same generated contract (torch gives the expected values).
ISSUE_EXAMPLES = {
    "one_cycle-three-phase-linear": {
        "name": "one_cycle_lr",
        "max_lr": 0.1,
        "total_steps": 200,
        "three_phase": True,
        "anneal_strategy": "linear",
    },
    "one_cycle-1000": {"name": "one_cycle_lr", "max_lr": 0.1, "total_steps": 1000},
    "one_cycle-2**31": {"name": "one_cycle_lr", "max_lr": 0.1, "total_steps": 2**31},
    "cyclic-exp-range": {
        "name": "cyclic_lr",
        "base_lr": 0.01,
        "max_lr": 0.1,
        "step_size_up": 200,
        "mode": "exp_range",
        "gamma": 0.999,
    },
    "cyclic-2**31": {"name": "cyclic_lr", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2**31},
    "cyclic-2.5-3.7": {"name": "cyclic_lr", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2.5, "step_size_down": 3.7},
    "cyclic-781.25": {"name": "cyclic_lr", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 781.25},
    "step-2**31": {"name": "step_lr", "base_lr": 0.1, "step_size": 2**31},
    "chained-warmup-cosine": {
        "name": "chained_scheduler",
        "schedules": [
            {"name": "linear_lr", "base_lr": 0.1, "start_factor": 0.1, "end_factor": 1.0, "total_iters": 5},
            {"name": "cosine_annealing_lr", "base_lr": 0.1, "T_max": 20, "eta_min": 0.001},
        ],
    },
    "per-epoch-chained": {
        "name": "per_epoch",
        "steps_per_epoch": 10,
        "fractional": True,
        "schedule": {
            "name": "chained_scheduler",
            "schedules": [
                {"name": "linear_lr", "base_lr": 0.1, "start_factor": 0.1, "end_factor": 1.0, "total_iters": 5},
                {"name": "cosine_annealing_lr", "base_lr": 0.1, "T_max": 20, "eta_min": 0.001},
            ],
        },
    },
    "torch-test_sequentiallr5": {
        "name": "sequential_lr",
        "milestones": [5],
        "schedules": [
            {
                "name": "chained_scheduler",
                "schedules": [
                    {"name": "linear_lr", "base_lr": 0.05, "start_factor": 0.1, "total_iters": 5},
                    {"name": "constant_lr", "base_lr": 0.05, "factor": 0.1, "total_iters": 5},
                ],
            },
            {"name": "constant_lr", "base_lr": 0.05, "factor": 0.5, "total_iters": 5},
        ],
    },
    "multi_step-2**70": {"name": "multi_step_lr", "base_lr": 0.1, "milestones": [3, 2**70]},
    "swalr": {"name": "swalr", "base_lr": 0.1, "swa_lr": 0.05, "anneal_epochs": 5, "anneal_strategy": "cos"},
}


@requires_torch
@pytest.mark.parametrize("x64", [False, True], ids=["float32", "x64"])
@pytest.mark.parametrize("example", sorted(ISSUE_EXAMPLES))
def test_contract_issue_examples(example, x64):
    cfg = ISSUE_EXAMPLES[example]
    problems = run_contract(cfg, x64, "contract/issue-examples")
    if problems:
        _fail(cfg, problems)


def test_every_registry_schedule_has_cases():
    """A schedule added to the registry must get a strategy (and so contract cases) and a torch twin."""
    missing = [e.name for e in lrjax.registry.entries() if e.role in ROLES and e.name not in strategies.DRAWS]
    assert not missing, f"registry schedules without strategies in tests/strategies.py: {missing}"
    for e in lrjax.registry.entries():
        if e.role in ("lr", "momentum") and e.name != "per_epoch":
            twin = torchtwin.torch_class(e.name)
            assert twin is not None, f"{e.name} has no torch twin in tests/torchtwin.py"
            if e.torch_class is not None:
                assert twin == (e.torch_module, e.torch_class), (e.name, twin, e.torch_module, e.torch_class)
    covered = {n for n, _ in CASES}
    assert set(contract_names()) <= covered


def test_promised_schedules_exist():
    """SEMANTICS.md promises these (lrjax.swalr for torch.optim.swa_utils.SWALR), in the registry too."""
    for name in strategies.PROMISED:
        assert hasattr(lrjax, name), f"lrjax.{name} does not exist"
        entry = lrjax.registry.lookup(name)
        assert (entry.torch_module, entry.torch_class) == torchtwin.torch_class(name)


@requires_torch
@pytest.mark.parametrize("name", sorted(set(contract_names()) - {"per_epoch"}))
def test_twin_forms_match_torch_stepping(name):
    """The twin's references beyond the live run (torch's epoch path, the exact formulas, the closed forms of
    composites) equal torch stepped live over the live run, within the float64 contract."""
    checked = 0
    for index in range(CASES_PER_SCHEDULE):
        cfg = contract_config(name, index)
        L = torchtwin.live_horizon(cfg)
        live = torchtwin.run_torch(cfg, L)
        steps = sorted(set(list(range(min(L, 400))) + [b for b in torchtwin.boundaries(cfg) if b <= L]))
        if cfg["name"] in ("lambda_lr", "multiplicative_lr") and cfg.get("total_steps") is not None:
            steps = [k for k in steps if k <= cfg["total_steps"]]  # past N the table holds, torch goes on
        scale = torchtwin.scale(cfg)
        rtol, atol = torchref.tolerance(64)
        for k in steps:
            far = torchtwin.far_value(cfg, k)
            if far is None:
                continue
            checked += 1
            expected = live[k]
            assert np.allclose(far, expected, rtol=rtol, atol=atol * scale), (torchtwin.describe(cfg), k, far, expected)
        if name in ("cyclic_lr", "cyclic_momentum", "one_cycle_lr", "one_cycle_momentum"):
            # torch writes the same lr / momentum into Adam (betas[0]) as into SGD (momentum 0.9).
            adam = torchtwin.run_torch(cfg, L, optimizer="Adam")
            np.testing.assert_array_equal(adam, live, err_msg=f"Adam vs SGD: {torchtwin.describe(cfg)}")
    contract_stats.count("twin self-check", checked)
