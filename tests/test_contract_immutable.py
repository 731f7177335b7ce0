"""Schedules are immutable, and repr / to_config / kwargs show the values the schedule uses (SEMANTICS.md).

For every contract configuration (tests/test_contract.py): assigning any attribute raises (the
schedule's own attributes, its keyword names, a new name); after the attempt its values, repr and
config are unchanged; mutating ``kwargs``, ``to_config``'s dict or the lists the schedule was
built from changes nothing; and ``from_config(to_config(s))`` gives the same values.
"""

from __future__ import annotations

import contract_stats
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torchtwin
from test_contract import CASES, contract_config

import lrjax

STEPS = jnp.arange(64)


def _values(s):
    return np.asarray(jax.vmap(s)(STEPS))


def _safe_values(s):
    """The values, or the error evaluating them (whether it evaluates is test_contract's question)."""
    try:
        return _values(s)
    except Exception as e:  # noqa: BLE001
        return np.asarray([hash(f"{type(e).__name__}: {e}")])


def _config_text(s):
    try:
        return repr(lrjax.to_config(s))
    except Exception as e:  # noqa: BLE001 - reported by the round-trip check
        return f"to_config raised {type(e).__name__}"


@pytest.mark.parametrize("name,index", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_schedules_are_immutable(name, index):
    cfg = contract_config(name, index)
    try:
        s = torchtwin.build_lrjax(cfg)
    except Exception as e:  # noqa: BLE001 - construction is test_contract's; nothing to mutate here
        pytest.fail(f"{torchtwin.describe(cfg)} does not build: {type(e).__name__}: {str(e)[:200]}", pytrace=False)
    before = (_safe_values(s), repr(s), _config_text(s))
    problems = []
    keywords = set(getattr(s, "kwargs", {}))
    names = sorted({a for a in dir(s) if not a.startswith("_")} | keywords | {"brand_new"})
    for attr in names:
        try:
            current = getattr(s, attr, None)
        except Exception as e:  # noqa: BLE001 - an earlier assignment broke the schedule
            problems.append(f"reading s.{attr} raised {type(e).__name__} after the assignments before it")
            continue
        if callable(current) and not isinstance(current, lrjax.LRSchedule) and attr not in keywords:
            continue  # methods
        replacement = 0.5 if not isinstance(current, (list, tuple)) else type(current)(current)
        try:
            setattr(s, attr, replacement)
        except (AttributeError, TypeError):
            continue
        problems.append(f"assigning s.{attr} = {repr(replacement)[:60]} did not raise")
    contract_stats.count("immutability (assignments tried)", len(names))
    kw = getattr(s, "kwargs", None)
    if isinstance(kw, dict):
        for k in list(kw):
            kw[k] = None
    try:
        c = lrjax.to_config(s)
        for k in list(c):
            if k != "name":
                c[k] = None
    except Exception:  # noqa: BLE001, S110 - a failing to_config is test_config_round_trip's
        pass
    try:
        after = (_safe_values(s), repr(s), _config_text(s))
    except Exception as e:  # noqa: BLE001
        problems.append(f"after the attempts the schedule raises {type(e).__name__}: {str(e)[:200]}")
        after = before
    if not np.array_equal(before[0], after[0], equal_nan=True):
        problems.append("the schedule's values changed after the attempts")
    if before[1] != after[1]:
        problems.append(f"repr changed: {before[1]} -> {after[1]}")
    if before[2] != after[2]:
        problems.append(f"to_config changed: {before[2]} -> {after[2]}")
    if problems:
        contract_stats.failed("immutability")
        pytest.fail(f"{torchtwin.describe(cfg)}:\n  " + "\n  ".join(problems[:20]), pytrace=False)


@pytest.mark.parametrize("name,index", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_config_round_trip(name, index):
    """from_config(to_config(s)) is the same schedule; kwargs and repr show the values it uses."""
    cfg = contract_config(name, index)
    s = torchtwin.build_lrjax(cfg)
    rebuilt = lrjax.from_config(lrjax.to_config(s))
    np.testing.assert_array_equal(_values(rebuilt), _values(s), err_msg=torchtwin.describe(cfg))
    assert repr(rebuilt) == repr(s)
    contract_stats.count("config round trips")


def test_no_aliasing_of_inputs():
    """Lists handed to a schedule are copied: mutating them afterwards changes nothing."""
    base, milestones = [0.1, 0.2], [3, 6]
    s = lrjax.multi_step_lr(base, milestones, gamma=0.5)
    before = _values(s)
    base[0], milestones[0] = 5.0, 1
    np.testing.assert_array_equal(_values(s), before)
    members = [lrjax.step_lr(0.1, 2), lrjax.exponential_lr(0.1, 0.9)]
    chain = lrjax.chained_scheduler(members)
    before = _values(chain)
    members.append(lrjax.constant_lr(0.1, 0.5, 3))
    np.testing.assert_array_equal(_values(chain), before)


def test_issue_example_gamma():
    """s = step_lr(0.1, 2); s.gamma = 0.5 must raise (it changed s(2) while repr and to_config still said 0.1)."""
    s = lrjax.step_lr(0.1, 2)
    with pytest.raises((AttributeError, TypeError)):
        s.gamma = 0.5
    assert float(s(2)) == pytest.approx(0.01, rel=1e-6)
