"""Random nested composites (ChainedScheduler / SequentialLR of any members, any depth) live against torch.

Each example draws a tree (tests/strategies.py ``composite``): members of every chainable class on
one shared lr (scalar or per group), chained and sequential nodes nested up to depth 3, composite
members of a SequentialLR only at the index active at step 0 (SEMANTICS.md "Composites"). torch
builds it in the natural order and steps it; lrjax's schedule (built from the same configuration)
and ``lrjax.from_torch`` of the torch object must equal torch at every step of the run, integer
and fractional (floored), in float32 and float64, or be refused at construction with a ValueError:
only where torch itself fails (a composite entered at a milestone), or asking for ``total_steps``
where torch's value depends on the whole history (then rebuilt with it).
"""

from __future__ import annotations

import random

import contract_stats
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import strategies
import torchref
import torchtwin
from conftest import requires_torch
from contract_stats import error_ratio as _ratio
from hypothesis import given
from hypothesis import strategies as st
from test_contract import with_total_steps

import lrjax


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield
    contract_stats.report(__name__)


@st.composite
def trees(draw, *, invalid: bool = False, names=strategies.LEAVES):
    rnd = draw(st.randoms(use_true_random=False))
    G = draw(st.sampled_from([None, None, 2, 3]))
    base = strategies._base(rnd, G)
    depth = draw(st.integers(1, 3))
    if invalid:
        # A SequentialLR that switches to a composite at a milestone: torch raises NotImplementedError there.
        inner = strategies.composite(rnd, base, 1)
        first = strategies.leaf(rnd, base, names=names)
        m = draw(st.integers(1, 20))
        cfg = {"name": "sequential_lr", "schedules": [first, inner], "milestones": [m]}
        if draw(st.booleans()):
            cfg = {"name": "chained_scheduler", "schedules": [strategies.leaf(rnd, base), cfg]}
        return cfg, m + draw(st.integers(1, 20))
    cfg = strategies.composite(rnd, base, depth, names=names)
    return cfg, draw(st.integers(1, 150))


def _torch_table(cfg, horizon):
    """torch's values over 0..horizon, or the exception torch raises building or stepping it."""
    try:
        return torchtwin.build_torch(cfg).run(horizon), None
    except Exception as e:  # noqa: BLE001 - torch's failure is the expectation
        return None, e


def _build(build, cfg, horizon):
    """(schedule, cfg used, horizon limit) or raises; retries with total_steps when asked for it."""
    try:
        return build(cfg, None), cfg
    except ValueError as e:
        if "total_steps" not in str(e):
            raise
        contract_stats.count("nested (asked for total_steps)")
        cfg = with_total_steps(cfg, horizon)
        return build(cfg, horizon), cfg


def _lrjax(cfg, _):
    return torchtwin.build_lrjax(cfg)


def _from_torch(cfg, total_steps):
    return lrjax.from_torch(torchtwin.build_torch(cfg, raw=True).scheduler, total_steps=total_steps)


def _check(cfg, horizon, category):
    table, torch_error = _torch_table(cfg, horizon)
    desc = torchtwin.describe(cfg)
    problems = []
    G = torchtwin.groups(cfg)
    for label, build in (("lrjax", _lrjax), ("from_torch", _from_torch)):
        if label == "from_torch" and torch_error is not None:
            continue  # there is no torch object to convert
        # lrjax's own schedule in both modes; from_torch's in one, alternating with the horizon's parity.
        for x64 in (False, True) if label == "lrjax" else (bool(horizon % 2),):
            bits = 64 if x64 else 32
            with jax.enable_x64(x64):
                try:
                    schedule, _ = _build(build, cfg, horizon)
                except ValueError as e:
                    if torch_error is None:
                        problems.append(f"{label} [{bits}]: refused ({e}), but torch runs it")
                    continue
                except Exception as e:  # noqa: BLE001
                    problems.append(f"{label} [{bits}]: raised {type(e).__name__} at construction: {str(e)[:300]}")
                    continue
                if torch_error is not None:
                    problems.append(
                        f"{label} [{bits}]: accepted, but torch raises {type(torch_error).__name__}: "
                        f"{torch_error} (SEMANTICS.md: refuse at construction)"
                    )
                    continue
                steps = jnp.arange(horizon + 1)  # vmapped: the shape rule of arrays is test_contract's
                try:
                    mapped = jax.vmap(schedule)
                    ints, fracs = jax.jit(lambda a, b, f=mapped: (f(a), f(b)))(steps, steps.astype(float) + 0.5)
                except Exception as e:  # noqa: BLE001
                    problems.append(f"{label} [{bits}]: evaluation raised {type(e).__name__}: {str(e)[:300]}")
                    continue
                expected = table if G is not None else table[:, 0]
                for what, ours in (("integer steps", ints), ("fractional steps t + 0.5 (floored)", fracs)):
                    ours = np.asarray(ours, np.float64)
                    if ours.shape != expected.shape:
                        problems.append(f"{label} [{bits}] {what}: shape {ours.shape}, torch {expected.shape}")
                        continue
                    try:
                        ratio, _ = torchref.compare(ours, expected, bits)
                        contract_stats.count(category, ours.size)
                        contract_stats.worst(category, ratio, desc)
                    except AssertionError as e:
                        contract_stats.worst(category, _ratio(ours, expected, bits), desc)
                        problems.append(f"{label} [{bits}] {what}: {e}")
    if problems:
        contract_stats.failed(category)
        pytest.fail(f"{desc}, {horizon} steps:\n  " + "\n  ".join(problems), pytrace=False)


@requires_torch
@strategies.fuzz_settings(10)
@given(tree=trees())
def test_nested_composites(tree):
    cfg, horizon = tree
    _check(cfg, horizon, "nested")


@requires_torch
@strategies.fuzz_settings(8)
@given(tree=trees(invalid=True))
def test_composite_entered_at_milestone_is_refused(tree):
    """torch raises NotImplementedError when SequentialLR switches to a composite; lrjax refuses it up front."""
    cfg, horizon = tree
    _, torch_error = _torch_table(cfg, horizon)
    assert torch_error is not None, f"torch ran {torchtwin.describe(cfg)}"
    for x64 in (False, True):
        with jax.enable_x64(x64), pytest.raises(ValueError):
            torchtwin.build_lrjax(cfg)
    contract_stats.count("nested (refused: composite after a milestone)")


@st.composite
def swa_trees(draw):
    """The SWA recipe and its variants: a schedule (possibly composite), then SWALR from a milestone on."""
    rnd = draw(st.randoms(use_true_random=False))
    G = draw(st.sampled_from([None, 2]))
    base = strategies._base(rnd, G)
    swa = strategies.DRAWS["swalr"](rnd, G, base)
    first = strategies.member(rnd, base, draw(st.integers(0, 2)))
    m = draw(st.integers(1, 40))
    cfg = {"name": "sequential_lr", "schedules": [first, swa], "milestones": [m]}
    if draw(st.booleans()):
        cfg = {"name": "chained_scheduler", "schedules": [cfg, strategies.leaf(rnd, base)]}
    if draw(st.booleans()):
        cfg = {"name": "chained_scheduler", "schedules": [swa, strategies.leaf(rnd, base)]}
    return cfg, m + draw(st.integers(1, 60))


@requires_torch
@strategies.fuzz_settings(4)
@given(tree=swa_trees())
def test_nested_with_swalr_members(tree):
    """SWALR as a member (SEMANTICS.md "SWALR": after a milestone it anneals from the lr reached so far)."""
    cfg, horizon = tree
    _check(cfg, horizon, "nested with swalr")


def test_torch_sequentiallr5():
    """torch's own test_sequentiallr5: a ChainedScheduler inside a SequentialLR."""
    cfg = {
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
    }
    _check(cfg, 12, "nested")


def test_swalr_leaf_draws_are_valid():
    """The strategy for swalr members draws configurations torch accepts."""
    rnd = random.Random(0)
    for _ in range(5):
        cfg = strategies.draw("swalr", rnd)
        torchtwin.build_torch(cfg).run(3)
