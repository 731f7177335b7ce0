"""lrjax.reduce_lr_on_plateau against torch 2.13.0's ReduceLROnPlateau.

* Stored references (tests/data/plateau.json, from tests/refcases/plateau.py): every case runs
  eagerly, with a jitted ``update`` step by step, and inside a jitted ``lax.scan`` (the cases that
  share a configuration share the compilations), in float32 and float64. Compared: the lr of every group,
  ``best``, ``num_bad_epochs`` and ``cooldown_counter`` after every step. float64 must equal torch
  bit for bit; float32 must take the same decisions as torch given the float32-rounded metrics
  (equal counters and best) with lrs within the float32 contract (rtol 1e-5, atol 1e-7 max|lr|).
* Live hypothesis tests against torch on random configurations and metric sequences.
* Validation, composition with schedules, an optax optimizer in jitted train/eval steps,
  checkpointing, and how optax.contrib.reduce_on_plateau differs from torch.
"""

from __future__ import annotations

import collections
import json
import math
from fractions import Fraction

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import refdata
from conftest import requires_torch
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from plateau_loops import (
    EPOCH_LOSSES,
    STEPS_PER_EPOCH,
    instruction,
    materialize,
    torch_bound,
    torch_cosine_times_plateau,
    torch_warmup_then_plateau,
)
from refcases.plateau import dec, eps_tie, to_f32, torch_trace
from torchref import tolerance

import lrjax

CASES = refdata.load("plateau")

# Metrics like 1e300 become inf in float32, as float32(1e300) does; numpy says so when casting.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")


# ---------------------------------------------------------------------------------------------
# Running lrjax and comparing with torch
# ---------------------------------------------------------------------------------------------


def _stack(states):
    return lrjax.PlateauState(*(np.stack([np.asarray(x) for x in field]) for field in zip(*states)))


def run_eager(plateau, base_lr, metrics, update=None):
    """Initial state and the state after every metric, stacked along axis 0 (``update`` may be jitted)."""
    update = update or plateau.update
    state = plateau.init(base_lr)
    states = [state]
    for m in metrics:
        state = update(state, m)
        states.append(state)
    return _stack(states)


def scan_runner(plateau, batched: bool = False):
    """A jitted ``(base_lr, metrics[steps]) -> states[steps + 1]`` (initial state first) running
    ``update`` in a ``lax.scan``; ``batched``: vmapped over a leading axis of both."""

    def run(base_lr, metrics):
        s0 = plateau.init(base_lr)

        def body(state, metric):
            state = plateau.update(state, metric)
            return state, state

        _, states = jax.lax.scan(body, s0, metrics)
        return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), s0, states)

    return jax.jit(jax.vmap(run) if batched else run)


def run_scan(plateau, base_lrs, sequences, batched=False):
    """Runs ``sequences`` (lists of floats) in a jitted scan, all padded to one length (one compilation),
    one after the other or (``batched``) in one vmapped call; returns one stacked trace per sequence."""
    runner = scan_runner(plateau, batched)
    length = 1 << max(len(s) - 1 for s in sequences).bit_length()
    dtype = lrjax._base.float_dtype()
    padded = [jnp.asarray(np.array(list(s) + [0.0] * (length - len(s)), np.float64), dtype) for s in sequences]
    bases = [jnp.asarray(np.array(b, np.float64), dtype) for b in base_lrs]
    if batched:
        out = jax.tree.map(np.asarray, runner(jnp.stack(bases), jnp.stack(padded)))
        outs = [jax.tree.map(lambda x, i=i: x[i], out) for i in range(len(sequences))]
    else:
        outs = [jax.tree.map(np.asarray, runner(b, m)) for b, m in zip(bases, padded)]
    return [lrjax.PlateauState(*(x[: len(s) + 1] for x in out)) for out, s in zip(outs, sequences)]


def expected_trace(trace: dict, bits: int) -> dict:
    """A torch trace (from torch_trace or the stored data) as arrays in lrjax's layout and dtype."""
    best = np.array([dec(b) for b in trace["best"]], dtype=np.float64)
    return {
        "lr": np.array(trace["lr"], dtype=np.float64).T,  # (steps + 1, groups)
        "best": best.astype(np.float32) if bits == 32 else best,
        "num_bad_epochs": np.array(trace["num_bad_epochs"]),
        "cooldown_counter": np.array(trace["cooldown_counter"]),
    }


def stored_expected(case: dict, bits: int) -> dict:
    exp = case["expected"]
    # "f32" (torch on the float32-rounded metrics) is stored only where it differs from "f64" by
    # more than the rounding of best.
    return expected_trace(exp["f32"] if bits == 32 and "f32" in exp else exp["f64"], bits)


def check(got: lrjax.PlateauState, exp: dict, bits: int, metrics, what: str) -> None:
    """Every field after every step; float64 bit for bit, float32 lrs within the contract."""
    n = len(metrics) + 1
    float_type = np.float32 if bits == 32 else np.float64
    assert got.lr.dtype == float_type and got.best.dtype == float_type, what
    assert got.num_bad_epochs.dtype == np.int32 and got.cooldown_counter.dtype == np.int32, what
    np.testing.assert_array_equal(got.num_updates, np.arange(n), err_msg=what)
    lr = got.lr.reshape(n, -1)

    def where(k):
        return f"{what}: step {k} (metric {metrics[k - 1] if k else None!r})"

    for field in ("best", "num_bad_epochs", "cooldown_counter"):
        ours, theirs = np.asarray(getattr(got, field)), exp[field]
        bad = np.flatnonzero(ours != theirs)
        assert not bad.size, f"{where(bad[0])}: {field} {ours[bad[0]]!r}, torch {theirs[bad[0]]!r}"
    theirs = exp["lr"]
    assert lr.shape == theirs.shape, f"{what}: lr shape {lr.shape}, torch {theirs.shape}"
    if bits == 64:
        bad = np.argwhere(lr != theirs)
    else:
        rtol, atol = tolerance(32)
        allowed = rtol * np.abs(theirs) + atol * np.max(np.abs(theirs), axis=0)
        bad = np.argwhere(np.abs(lr.astype(np.float64) - theirs) > allowed)
    if bad.size:
        k, g = bad[0]
        raise AssertionError(f"{where(k)}: lr of group {g} is {lr[k, g]!r}, torch {theirs[k, g]!r}")


# ---------------------------------------------------------------------------------------------
# Stored references
# ---------------------------------------------------------------------------------------------


def _group_key(case):
    groups = len(case["base_lr"]) if isinstance(case["base_lr"], list) else 0
    return json.dumps(case["config"], sort_keys=True), groups


GROUPS = collections.defaultdict(list)
for _c in CASES:
    GROUPS[_group_key(_c)].append(_c)
GROUP_LIST = list(GROUPS.values())


def test_stored_data_is_large_and_covers_the_quirks():
    ids = {c["id"] for c in CASES}
    assert len(CASES) >= 300 and len(ids) == len(CASES)
    assert sum(len(c["metrics"]) for c in CASES) >= 7_000
    for quirk in (
        "§9/nan-always-bad",
        "§9/+inf-bad-in-min",
        "§9/-inf-best-forever",
        "§9/negative-best-lenient",
        "§9/best-zero-rel",
        "§9/eps-floor",
        "§9/base-below-min-lr",
        "§9/factor-0",
    ):
        assert quirk in ids
    metrics = [m for c in CASES for m in c["metrics"]]
    assert {"nan", "inf", "-inf"} <= set(m for m in metrics if isinstance(m, str))
    configs = [c["config"] for c in CASES]
    assert any(c.get("mode") == "max" and c.get("threshold_mode") == "abs" for c in configs)
    assert any(c.get("cooldown", 0) > 0 for c in configs)
    assert any(isinstance(c.get("min_lr"), list) for c in configs)
    assert sum(len(c["metrics"]) >= 200 for c in CASES) >= 5
    # The float32 variants differ from float64 in many cases: the float32 path is really tested.
    assert sum("f32" in c["expected"] for c in CASES) >= 50


@pytest.mark.parametrize("group", GROUP_LIST, ids=[g[0]["id"] for g in GROUP_LIST])
def test_stored_torch_values(group, bits):
    plateau = lrjax.reduce_lr_on_plateau(**group[0]["config"])
    update = jax.jit(plateau.update)
    metrics = [[dec(m) for m in case["metrics"]] for case in group]
    scanned = run_scan(plateau, [case["base_lr"] for case in group], metrics)
    for case, ms, from_scan in zip(group, metrics, scanned):
        exp = stored_expected(case, bits)
        check(run_eager(plateau, case["base_lr"], ms), exp, bits, ms, f"{case['id']} eager")
        check(run_eager(plateau, case["base_lr"], ms, update), exp, bits, ms, f"{case['id']} jit")
        check(from_scan, exp, bits, ms, f"{case['id']} scan")


# ---------------------------------------------------------------------------------------------
# Live hypothesis tests against torch
# ---------------------------------------------------------------------------------------------


@st.composite
def plateau_setups(draw):
    mode = draw(st.sampled_from(["min", "max"]))
    threshold_mode = draw(st.sampled_from(["rel", "abs"]))
    config = {
        "mode": mode,
        "threshold_mode": threshold_mode,
        "factor": draw(st.one_of(st.sampled_from([0.0, 0.1, 0.5, 0.9]), st.floats(1e-3, 0.999))),
        "patience": draw(st.integers(0, 4)),
        "threshold": draw(
            st.one_of(st.sampled_from([0.0, 1e-4, 1e-3, 0.01, 0.1, 0.5]), st.floats(0.0, 1.0, allow_subnormal=False))
        ),
        "cooldown": draw(st.integers(0, 3)),
        "eps": draw(st.sampled_from([1e-8, 0.0, 1e-4, 1e-2])),
    }
    groups = draw(st.integers(0, 3))
    lr = st.one_of(st.sampled_from([1.0, 0.1, 1e-3, 1e-7]), st.floats(1e-8, 1.0))
    base_lr = draw(lr) if groups == 0 else draw(st.lists(lr, min_size=groups, max_size=groups))
    min_lr = st.sampled_from([0.0, 1e-4, 0.01, 0.05])
    config["min_lr"] = (
        draw(min_lr) if groups == 0 or draw(st.booleans()) else draw(st.lists(min_lr, min_size=groups, max_size=groups))
    )
    sequences = draw(st.lists(st.lists(instruction, min_size=4, max_size=40), min_size=1, max_size=3))
    return config, base_lr, sequences


def _live(config, base_lr, sequences, bits):
    """Each metric sequence against torch: eagerly, with a jitted update, and in a scan."""
    metrics = [materialize(config, instructions) for instructions in sequences]
    traces = []
    for i, ms in enumerate(metrics):
        if bits == 32:
            metrics[i] = ms = to_f32(ms)
        attempts: list = []
        traces.append(torch_trace(config, base_lr, ms, attempts))
        if bits == 32:
            assume(not eps_tie(config, attempts))  # see test_float32_eps_ties
    note(f"metrics={metrics}")
    with jax.enable_x64(bits == 64):
        plateau = lrjax.reduce_lr_on_plateau(**config)
        update = jax.jit(plateau.update)
        scanned = run_scan(plateau, [base_lr] * len(metrics), metrics)
        for ms, trace, from_scan in zip(metrics, traces, scanned):
            exp = expected_trace(trace, bits)
            check(run_eager(plateau, base_lr, ms), exp, bits, ms, "eager")
            check(run_eager(plateau, base_lr, ms, update), exp, bits, ms, "jit")
            check(from_scan, exp, bits, ms, "scan")


@requires_torch
@settings(deadline=None, max_examples=90, suppress_health_check=[HealthCheck.too_slow])
@given(plateau_setups())
def test_live_float64_against_torch(setup):
    _live(*setup, bits=64)


@requires_torch
@settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(plateau_setups())
def test_live_float32_against_torch(setup):
    """float32 metrics (as torch gets them from a float32 loss): the same decisions as torch's float64."""
    _live(*setup, bits=32)


@requires_torch
@settings(deadline=None, max_examples=12, suppress_health_check=[HealthCheck.too_slow])
@given(plateau_setups(), st.integers(2, 6), st.randoms(use_true_random=False))
def test_live_vmap_over_runs(setup, runs, rng):
    """A batch of runs (different base lrs and metric sequences, one configuration) in one vmapped scan."""
    config, base_lr, (instructions, *_) = setup
    groups = len(base_lr) if isinstance(base_lr, list) else 0
    bases = [base_lr] + [
        [rng.uniform(1e-4, 1.0) for _ in range(groups)] if groups else rng.uniform(1e-4, 1.0) for _ in range(runs - 1)
    ]
    sequences = [materialize(config, rng.sample(instructions, len(instructions))) for _ in range(runs)]
    with jax.enable_x64(True):
        plateau = lrjax.reduce_lr_on_plateau(**config)
        for b, ms, got in zip(bases, sequences, run_scan(plateau, bases, sequences, batched=True)):
            check(got, expected_trace(torch_trace(config, b, ms), 64), 64, ms, "vmap")


# ---------------------------------------------------------------------------------------------
# float32: what the emulated threshold buys, and what stays different
# ---------------------------------------------------------------------------------------------


@requires_torch
def test_float32_threshold_follows_torch_where_naive_float32_does_not():
    metrics = [1.0, 0.9999]  # float32(0.9999) = 0.99989998... < 1.0 * (1 - 1e-4) in float64
    a, best = np.float32(metrics[1]), np.float32(metrics[0])
    naive = bool(a < best * np.float32(1.0 - 1e-4))
    torch64 = float(a) < float(best) * (1.0 - 1e-4)
    assert torch64 and not naive  # a naive float32 port would not see the improvement
    trace = torch_trace({"patience": 0}, 1.0, to_f32(metrics))
    with jax.enable_x64(False):
        plateau = lrjax.reduce_lr_on_plateau(patience=0)
        state = run_eager(plateau, 1.0, metrics)
    check(state, expected_trace(trace, 32), 32, metrics, "float32")
    assert state.lr.tolist() == [1.0, 1.0, 1.0]


@requires_torch
@pytest.mark.parametrize(
    "mode, threshold_mode, threshold, multiple",
    [
        ("min", "rel", 1e-4, 10_000),
        ("max", "rel", 0.1, 10),
        ("min", "rel", 0.3, 10),
        ("max", "rel", 1e-3, 1000),
        ("min", "abs", 0.1, 0),
        ("max", "abs", 1e-3, 0),
    ],
)
def test_float32_decisions_equal_torch_at_exact_float64_ties(mode, threshold_mode, threshold, multiple):
    """Metrics within a float32 ulp of torch's threshold, for decimal bests and for bests that are
    multiples of ``multiple`` (times powers of two), where ``best * (1 -/+ threshold)`` is exactly a
    float32 number and only torch's float64 rounding decides, both ways. lrjax float32 agrees with
    torch's scheduler on every one; a naive float32 comparison does not."""
    rng = np.random.default_rng(0)
    n = 3000
    config = {"mode": mode, "threshold_mode": threshold_mode, "threshold": threshold, "patience": 0}
    # Decimal bests, and metrics at the float32 numbers nearest torch's threshold (or one ulp away).
    best = (np.round(rng.uniform(-2.0, 2.0, n), 3) * 10.0 ** rng.integers(-3, 4, n)).astype(np.float32)
    if multiple:
        mult = (rng.integers(-50, 50, n) * multiple * 2.0 ** rng.integers(-12, 12, n)).astype(np.float32)
        best = np.where(rng.random(n) < 0.5, mult, best)
    best = np.where(best == 0, np.float32(1.0), best)  # next to 0 lie subnormals, which XLA flushes to 0
    metric = np.array([torch_bound(float(b), config) for b in best]).astype(np.float32)
    step = rng.choice([0, 0, 1, -1], n)
    metric = np.where(
        step > 0,
        np.nextafter(metric, np.float32(np.inf)),
        np.where(step < 0, np.nextafter(metric, np.float32(-np.inf)), metric),
    )
    # Exact float64 ties: torch's exact threshold within 2**-50 of the float32 metric.
    c = Fraction(1.0 - threshold if mode == "min" else threshold + 1.0)
    sign = 1 if mode == "min" else -1
    exact = [
        Fraction(float(b)) * c if threshold_mode == "rel" else Fraction(float(b)) - sign * Fraction(threshold)
        for b in best
    ]
    ties = sum(abs(Fraction(float(m)) - x) <= abs(x) / 2**50 for m, x in zip(metric, exact))

    # torch's scheduler decides: after a best b, does m improve (no reduction with patience 0)?
    want = np.array([torch_trace(config, 1.0, [float(b), float(m)])["lr"][0][2] == 1.0 for b, m in zip(best, metric)])
    with jax.enable_x64(False):
        plateau = lrjax.reduce_lr_on_plateau(**config)
        states = jax.jit(jax.vmap(lambda b, m: plateau.update(plateau.update(plateau.init(1.0), b), m)))(
            jnp.asarray(best), jnp.asarray(metric)
        )
    got = np.asarray(states.lr) == 1.0
    assert 0 < want.sum() < n and (ties > 100 or not multiple), (want.sum(), ties)
    np.testing.assert_array_equal(got, want)

    # A naive float32 port (the constant and the product in float32) disagrees with torch on some.
    if threshold_mode == "rel":
        bound32 = best * np.float32(float(c))
    else:
        bound32 = best - sign * np.float32(threshold)
    naive = metric < bound32 if mode == "min" else metric > bound32
    assert (naive != want).sum() > 0


@requires_torch
def test_float32_eps_ties():
    """Decimal ties ``lr * (1 - factor) == eps``: torch's float64 rounding applies some and skips
    others; float64 lrjax follows torch bit for bit; float32 lrjax skips them all (documented: a
    reduction exceeding eps by less than 4 float32 ulps of the lr is skipped)."""
    cases = [(1.0000000000000002e-08, 0.0, 1e-8)] + [
        (lr, factor, round(lr * (1 - factor), 12)) for lr in (0.1, 0.3, 0.7, 3e-3, 1e-6) for factor in (0.5, 0.9, 0.99)
    ]
    applied = []
    for base_lr, factor, eps in cases:
        config = {"patience": 0, "factor": factor, "eps": eps}
        attempts: list = []
        theirs = torch_trace(config, base_lr, [1.0, 1.0], attempts)["lr"][0][-1]
        assert eps_tie(config, attempts)
        applied.append(theirs != base_lr)
        with jax.enable_x64(True):
            assert float(run_eager(lrjax.reduce_lr_on_plateau(**config), base_lr, [1.0, 1.0]).lr[-1]) == theirs
        with jax.enable_x64(False):
            ours = float(run_eager(lrjax.reduce_lr_on_plateau(**config), base_lr, [1.0, 1.0]).lr[-1])
        assert ours == float(np.float32(base_lr))
    assert any(applied) and not all(applied), applied


@requires_torch
def test_subnormal_metrics_compare_as_zero_on_cpu():
    """XLA on CPU flushes subnormal floats to zero (documented): 5e-41 does not improve on 1e-40 in
    float32, where torch's float64 says it does."""
    metrics = to_f32([1e-40, 5e-41])  # subnormal float32 numbers
    assert torch_trace({"patience": 0, "factor": 0.5}, 1.0, metrics)["lr"][0] == [1.0, 1.0, 1.0]
    with jax.enable_x64(False):
        state = run_eager(lrjax.reduce_lr_on_plateau(patience=0, factor=0.5), 1.0, metrics)
    if jax.default_backend() != "cpu":
        pytest.skip("documents XLA's behaviour on CPU")
    assert state.lr.tolist() == [1.0, 1.0, 0.5]


# ---------------------------------------------------------------------------------------------
# jit, vmap, traced hyperparameters, retracing
# ---------------------------------------------------------------------------------------------


def test_state_fields_shapes_and_dtypes(bits):
    plateau = lrjax.reduce_lr_on_plateau(min_lr=[0.0, 0.1])
    state = plateau.init([1.0, 0.5])
    f = np.float32 if bits == 32 else np.float64
    assert state.lr.shape == (2,) and state.lr.dtype == f
    assert state.best.shape == () and state.best.dtype == f and float(state.best) == math.inf
    for field in (state.num_bad_epochs, state.cooldown_counter, state.num_updates):
        assert field.shape == () and field.dtype == np.int32 and int(field) == 0
    assert lrjax.reduce_lr_on_plateau(mode="max").init(1.0).best == -math.inf
    new = jax.jit(plateau.update)(state, 1.0)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), new) == jax.tree.map(lambda x: (x.shape, x.dtype), state)


@requires_torch
def test_update_is_traced_once():
    plateau = lrjax.reduce_lr_on_plateau(patience=1)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, metric):
        return plateau.update(state, metric)

    state, metrics = plateau.init(0.1), [1.0, 2.0, 3.0, 0.5, float("nan"), 4.0]
    for m in metrics:
        state = step(state, jnp.float32(m))
    assert float(state.lr) == pytest.approx(torch_trace({"patience": 1}, 0.1, metrics)["lr"][0][-1], rel=1e-6)


@requires_torch
def test_vmap_over_states_and_over_factor(run):
    """A batch of states, and a batch of hyperparameters (traced factor / min_lr / threshold)."""
    plateau = lrjax.reduce_lr_on_plateau(patience=0, factor=0.5)
    bases, metrics = [1.0, 0.1, 0.01], [[1.0, 1.0], [1.0, 0.5], [0.0, 0.0]]
    states = jax.vmap(plateau.init)(jnp.array(bases))
    for k in range(2):
        states = run(jax.vmap(plateau.update), states, jnp.array([m[k] for m in metrics]))
    want = [torch_trace({"patience": 0, "factor": 0.5}, b, m)["lr"][0][-1] for b, m in zip(bases, metrics)]
    np.testing.assert_allclose(states.lr, want, rtol=1e-7)
    assert want == [0.5, 0.1, 0.005]  # a bad epoch, an improvement, and 0 that does not improve on 0

    def final_lr(factor, min_lr, threshold):
        p = lrjax.reduce_lr_on_plateau(patience=0, factor=factor, min_lr=min_lr, threshold=threshold)
        s = p.init(1.0)
        for m in [1.0, 0.95, 0.9, 0.85]:
            s = p.update(s, m)
        return s.lr

    hypers = [(0.5, 0.0, 0.1), (0.1, 0.0, 0.1), (0.5, 0.3, 0.0)]
    got = run(jax.vmap(final_lr), *(jnp.array(h) for h in zip(*hypers)))
    metrics = [1.0, 0.95, 0.9, 0.85]
    want = [
        torch_trace({"patience": 0, "factor": f, "min_lr": m, "threshold": t}, 1.0, metrics)["lr"][0][-1]
        for f, m, t in hypers
    ]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert len(set(want)) == 3


def test_integer_and_array_metrics(run):
    plateau = lrjax.reduce_lr_on_plateau(patience=0, factor=0.5)
    state = plateau.init(1.0)
    for m in [3, np.int64(3), np.float64(3.0), jnp.asarray(3, jnp.int32), jnp.asarray(3.0, jnp.bfloat16)]:
        state = run(plateau.update, state, m)
    assert float(state.lr) == 0.5**4 and float(state.best) == 3.0


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"factor": 1.0}, "Factor should be < 1.0."),
        ({"factor": 2}, "Factor should be < 1.0."),
        ({"factor": math.inf}, "Factor should be < 1.0."),
        ({"mode": "mean"}, "mode mean is unknown!"),
        ({"threshold_mode": "x"}, "threshold mode x is unknown!"),
        ({"factor": -0.5}, "factor must be >= 0.0"),
        ({"factor": math.nan}, "factor must be finite"),
        ({"factor": [0.1, 0.2]}, "factor must be a scalar"),
        ({"patience": -1}, "patience must be an integer >= 0, got -1"),
        ({"patience": 2.5}, "patience must be an integer >= 0, got 2.5"),
        ({"patience": True}, "patience must be an integer >= 0"),
        ({"cooldown": -2}, "cooldown must be an integer >= 0, got -2"),
        ({"threshold": -1.0}, "threshold must be >= 0.0"),
        ({"threshold": 1e39}, "threshold must be <= 3.4"),
        ({"threshold": math.inf}, "threshold must be finite"),
        ({"eps": -1e-8}, "eps must be >= 0.0"),
        ({"min_lr": -0.1}, "min_lr must be >= 0.0"),
        ({"min_lr": [[0.1]]}, "min_lr must be a scalar or a 1-D array"),
        ({"min_lr": "0.1"}, "Expected a real number for min_lr"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError) as info:
        lrjax.reduce_lr_on_plateau(**kwargs)
    assert str(info.value).startswith(message), str(info.value)


@requires_torch
@pytest.mark.parametrize("kwargs", [{"factor": 1.0}, {"mode": "mean"}, {"threshold_mode": "x"}])
def test_validation_messages_are_torchs(kwargs):
    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError) as theirs:
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    with pytest.raises(ValueError) as ours:
        lrjax.reduce_lr_on_plateau(**kwargs)
    assert str(ours.value) == str(theirs.value)


@requires_torch
@pytest.mark.parametrize("base_lr, min_lr", [(1.0, [0.1, 0.2]), ([1.0, 2.0], [0.1]), ([1.0, 2.0], [0.1, 0.2, 0.3])])
def test_min_lr_length_is_checked_at_init_with_torchs_message(base_lr, min_lr):
    import torch

    groups = base_lr if isinstance(base_lr, list) else [base_lr]
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": b} for b in groups])
    with pytest.raises(ValueError) as theirs:
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, min_lr=min_lr)
    plateau = lrjax.reduce_lr_on_plateau(min_lr=min_lr)  # the group count is only known at init
    with pytest.raises(ValueError) as ours:
        plateau.init(base_lr)
    assert str(ours.value) == str(theirs.value)


def test_init_and_update_errors():
    plateau = lrjax.reduce_lr_on_plateau()
    for bad, message in [
        (-1.0, "base_lr must be >= 0.0"),
        ([[1.0]], "base_lr must be a scalar or a 1-D array"),
        (math.nan, "base_lr must be finite"),
        ([], "base_lr must not be empty"),
    ]:
        with pytest.raises(ValueError, match=message.replace("[", r"\[")):
            plateau.init(bad)
    state = plateau.init(1.0)
    for metric in [jnp.ones(3), jnp.ones((1,)), np.zeros((2, 2))]:
        with pytest.raises(ValueError, match=r"metric must be a scalar \(shape \(\)\), got shape"):
            plateau.update(state, metric)
        with pytest.raises(ValueError, match="metric must be a scalar"):
            jax.jit(plateau.update)(state, metric)  # the shape is known when tracing
    for metric in [True, jnp.asarray(1 + 1j)]:
        with pytest.raises(TypeError, match="metric must be a real number"):
            plateau.update(state, metric)
    with pytest.raises(ValueError, match="expected 1 min_lrs, got 2"):
        lrjax.reduce_lr_on_plateau(min_lr=[0.1, 0.2]).update(state, 1.0)  # a state with the wrong groups


@requires_torch
def test_torch_accepts_what_lrjax_rejects():
    """torch's constructor takes these (docs/torch_quirks.md §15); lrjax raises (see the docstring)."""
    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=-1, cooldown=-2, threshold=-1.0, eps=-1.0, factor=-3.0)
    for kwargs in [{"patience": -1}, {"cooldown": -2}, {"threshold": -1.0}, {"eps": -1.0}, {"factor": -3.0}]:
        with pytest.raises(ValueError):
            lrjax.reduce_lr_on_plateau(**kwargs)


@requires_torch
def test_defaults_are_torchs():
    import inspect

    import torch

    theirs = inspect.signature(torch.optim.lr_scheduler.ReduceLROnPlateau).parameters
    ours = inspect.signature(lrjax.reduce_lr_on_plateau).parameters
    assert list(ours) == [k for k in theirs if k != "optimizer"]
    for name, p in ours.items():
        assert p.default == theirs[name].default, name


def test_plateau_is_rejected_by_chained_scheduler_and_sequential_lr():
    plateau = lrjax.reduce_lr_on_plateau()
    sched = lrjax.sequential_plateau(lrjax.constant_lr(0.1), plateau, 5)
    for p in (plateau, sched):
        assert p.is_plateau
        with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
            lrjax.chained_scheduler([lrjax.step_lr(0.1, 2), p])
        with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
            lrjax.sequential_lr([lrjax.step_lr(0.1, 2), p], milestones=[3])


def test_config_repr_and_round_trip():
    plateau = lrjax.reduce_lr_on_plateau(mode="max", factor=0.5, patience=3, min_lr=[0.0, 0.1])
    assert repr(plateau).startswith("lrjax.reduce_lr_on_plateau(mode='max', factor=0.5, patience=3")
    config = lrjax.to_config(plateau)
    assert config["name"] == "reduce_lr_on_plateau" and config["min_lr"] == [0.0, 0.1]
    rebuilt = lrjax.from_config(json.loads(json.dumps(config)))
    assert lrjax.to_config(rebuilt) == config
    assert lrjax.from_config({"name": "ReduceLROnPlateau", "patience": 2}).config["patience"] == 2


def test_composition_errors():
    plateau = lrjax.reduce_lr_on_plateau()
    with pytest.raises(ValueError, match="plateau must come from lrjax.reduce_lr_on_plateau"):
        lrjax.sequential_plateau(lrjax.constant_lr(0.1), lrjax.step_lr(0.1, 2), 3)
    with pytest.raises(ValueError, match="schedule must be a function"):
        lrjax.chained_plateau(plateau, plateau)
    with pytest.raises(ValueError, match="schedule must be a function"):
        lrjax.chained_plateau(0.1, plateau)
    with pytest.raises(ValueError, match="milestone must be an integer >= 0"):
        lrjax.sequential_plateau(lrjax.constant_lr(0.1), plateau, -1)


# ---------------------------------------------------------------------------------------------
# Composition with schedules (what torch cannot do), checked against torch run by hand
# ---------------------------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("milestone", [0, 8, 10, 12])
def test_sequential_plateau_equals_torch_warmup_then_plateau(milestone, run):
    """torch: LinearLR for ``milestone`` steps, then ReduceLROnPlateau on the same optimizer, stepped
    with the metrics measured after the switch (what SequentialLR would do if it accepted it)."""
    kw = {"factor": 0.5, "patience": 1, "cooldown": 1}
    theirs, steps = torch_warmup_then_plateau(milestone, kw), len(EPOCH_LOSSES) * STEPS_PER_EPOCH

    with jax.enable_x64(True):
        sched = lrjax.sequential_plateau(
            lrjax.linear_lr(0.1, start_factor=0.1, total_iters=max(milestone, 1)),
            lrjax.reduce_lr_on_plateau(**kw),
            milestone,
        )
        state, ours = sched.init(), []
        for t in range(steps):
            ours.append(float(run(sched.lr, state, t)))
            if (t + 1) % STEPS_PER_EPOCH == 0:
                state = run(sched.update, state, EPOCH_LOSSES[(t + 1) // STEPS_PER_EPOCH - 1], t + 1)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
        assert min(theirs[milestone:]) < theirs[milestone]  # the plateau did reduce


@requires_torch
def test_chained_plateau_equals_torch_schedule_times_plateau_factor(run):
    """torch: CosineAnnealingLR on one optimizer times the lr of a ReduceLROnPlateau started at 1.0."""
    kw = {"factor": 0.5, "patience": 1, "min_lr": 0.1}
    theirs, multiplier = torch_cosine_times_plateau(kw)
    steps = len(EPOCH_LOSSES) * STEPS_PER_EPOCH

    with jax.enable_x64(True):
        sched = lrjax.chained_plateau(lrjax.cosine_annealing_lr(0.1, T_max=30), lrjax.reduce_lr_on_plateau(**kw))
        state, ours = sched.init(), []
        for t in range(steps):
            ours.append(float(run(sched.lr, state, t)))
            if (t + 1) % STEPS_PER_EPOCH == 0:
                state = run(sched.update, state, EPOCH_LOSSES[(t + 1) // STEPS_PER_EPOCH - 1], t + 1)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
        assert float(state.lr) == multiplier < 1.0  # the multiplier, reduced


def test_composed_per_group_and_in_scan():
    """Per-group schedules, min_lr per group, and the combined lr inside one jitted scan over steps."""
    warmup = lrjax.linear_lr([0.1, 0.01], start_factor=0.5, total_iters=4)
    sequential = lrjax.sequential_plateau(warmup, lrjax.reduce_lr_on_plateau(patience=0, min_lr=[0.0, 0.005]), 4)
    chained = lrjax.chained_plateau(warmup, lrjax.reduce_lr_on_plateau(patience=0, min_lr=[0.0, 0.5]))
    for sched in (sequential, chained):

        @jax.jit
        def train(state, losses):
            def body(state, inp):
                step, loss = inp
                lr = sched.lr(state, step)
                return sched.update(state, loss, step + 1), lr

            return jax.lax.scan(body, state, (jnp.arange(losses.shape[0]), losses))

        state, lrs = train(sched.init(), jnp.ones(10))
        assert lrs.shape == (10, 2)
        eager, s = [], sched.init()
        for t in range(10):
            eager.append(sched.lr(s, t))
            s = sched.update(s, 1.0, t + 1)
        np.testing.assert_allclose(lrs, np.stack(eager), rtol=1e-6)
        if sched is sequential:  # the warm-up, untouched by the metrics of its steps
            np.testing.assert_allclose(lrs[:4], np.stack([warmup(t) for t in range(4)]), rtol=1e-6)
        assert np.all(state.lr < sched.init().lr)  # both groups reduced (down to their min_lr)


# ---------------------------------------------------------------------------------------------
# An optax optimizer driven by the plateau, in jitted train and eval steps
# ---------------------------------------------------------------------------------------------


@requires_torch
def test_optax_adam_in_jitted_train_and_eval_steps_equals_torch():
    """Adam on a small least-squares problem, its lr set from the plateau state inside a jitted train
    step, the plateau stepped in a jitted eval step: params, validation losses and lrs equal torch's
    Adam + ReduceLROnPlateau (float64)."""
    import torch

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)), rng.normal(size=32)
    xv, yv = rng.normal(size=(16, 3)), rng.normal(size=16)
    kw = {"factor": 0.5, "patience": 1, "threshold": 1e-3}
    epochs, w0 = 25, np.array([0.5, -0.3, 0.2])

    p = torch.nn.Parameter(torch.tensor(w0))
    opt = torch.optim.Adam([p], lr=0.3)
    sched_t = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    tx_, ty_, txv, tyv = map(torch.tensor, (x, y, xv, yv))
    torch_lrs, torch_val, torch_w = [], [], []
    for _ in range(epochs):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        torch.mean((tx_ @ p - ty_) ** 2).backward()
        opt.step()
        with torch.no_grad():
            val = float(torch.mean((txv @ p - tyv) ** 2))
        sched_t.step(val)
        torch_val.append(val)
        torch_w.append(p.detach().numpy().copy())

    # optax.adam mixes its int32 step count with float64 under strict promotion; lrjax does not.
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        plateau = lrjax.reduce_lr_on_plateau(**kw)
        tx = optax.inject_hyperparams(optax.adam)(learning_rate=0.3)
        params, state = jnp.asarray(w0), plateau.init(0.3)
        opt_state = tx.init(params)
        opt_state.hyperparams["learning_rate"] = state.lr  # same type as in the loop: traced once

        def loss_fn(w, a, b):
            return jnp.mean((a @ w - b) ** 2)

        @jax.jit
        @chex.assert_max_traces(n=1)
        def train_step(params, opt_state, state):
            opt_state.hyperparams["learning_rate"] = state.lr
            grads = jax.grad(loss_fn)(params, x, y)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        @jax.jit
        @chex.assert_max_traces(n=1)
        def eval_step(params, state):
            val = loss_fn(params, xv, yv)
            return plateau.update(state, val), val

        lrs, vals, ws = [], [], []
        for _ in range(epochs):
            lrs.append(float(state.lr))  # logging: the lr of this epoch
            params, opt_state = train_step(params, opt_state, state)
            assert float(opt_state.hyperparams["learning_rate"]) == lrs[-1]  # adam used it
            state, val = eval_step(params, state)
            vals.append(float(val))
            ws.append(np.asarray(params))

    np.testing.assert_allclose(ws, torch_w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(vals, torch_val, rtol=1e-9)
    np.testing.assert_allclose(lrs, torch_lrs, rtol=1e-12)
    assert len(set(lrs)) >= 3  # the plateau reduced the lr at least twice


# ---------------------------------------------------------------------------------------------
# Checkpointing
# ---------------------------------------------------------------------------------------------


def _run(plateau, state, metrics):
    step = jax.jit(plateau.update)
    for m in metrics:
        state = step(state, m)
    return state


def _assert_same(a, b):
    for x, y in zip(a, b):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


METRICS = [1.0, 0.9, 0.95, 0.95, 0.95, math.nan, 0.89, 0.9, 0.9, 0.9, 0.9, 0.9, -math.inf, 0.0, 0.0]


def test_flax_serialization_round_trip_and_resume(bits):
    from flax import serialization

    plateau = lrjax.reduce_lr_on_plateau(patience=1, cooldown=1, factor=0.5, min_lr=[0.0, 0.01])
    full = _run(plateau, plateau.init([0.1, 0.02]), METRICS)
    half = _run(plateau, plateau.init([0.1, 0.02]), METRICS[:7])
    blob = serialization.to_bytes(half)
    restored = serialization.from_bytes(plateau.init([0.0, 0.0]), blob)
    assert isinstance(restored, lrjax.PlateauState)
    _assert_same(restored, half)
    _assert_same(_run(plateau, restored, METRICS[7:]), full)
    as_dict = serialization.to_state_dict(half)
    assert set(as_dict) == set(lrjax.PlateauState._fields)
    _assert_same(serialization.from_state_dict(plateau.init([0.0, 0.0]), as_dict), half)


def test_orbax_checkpoint_round_trip_and_resume(tmp_path, bits):
    import orbax.checkpoint as ocp

    plateau = lrjax.reduce_lr_on_plateau(mode="max", patience=0, factor=0.5)
    metrics = [-m for m in METRICS]
    full = _run(plateau, plateau.init(1.0), metrics)
    half = _run(plateau, plateau.init(1.0), metrics[:8])
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(tmp_path / "plateau", half)
        ckptr.wait_until_finished()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, plateau.init(1.0))
        restored = ckptr.restore(tmp_path / "plateau", abstract)
    assert isinstance(restored, lrjax.PlateauState)
    _assert_same(restored, half)
    _assert_same(_run(plateau, restored, metrics[8:]), full)


# ---------------------------------------------------------------------------------------------
# optax.contrib.reduce_on_plateau is not torch's
# ---------------------------------------------------------------------------------------------


@requires_torch
def test_optax_contrib_reduce_on_plateau_differs_from_torch():
    """Same inputs: optax.contrib reduces when the count of bad epochs *reaches* patience, one update
    before torch (and lrjax), which reduce when it exceeds it; so it reduces every ``patience``
    bad epochs instead of every ``patience + 1``."""
    from optax import contrib

    def optax_scales(metrics, **kw):
        tx = contrib.reduce_on_plateau(factor=0.5, rtol=1e-4, atol=0.0, **kw)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 and float32 in its update
            state, out = tx.init(jnp.zeros(1)), []
            for m in metrics:
                _, state = tx.update(jnp.zeros(1), state, value=jnp.asarray(m))
                out.append(float(state.scale))
        return out

    def drops(lrs):
        return [i for i in range(1, len(lrs)) if lrs[i] < lrs[i - 1]]

    patience, metrics = 2, [1.0, 0.5] + [0.5] * 10
    torch_lrs = torch_trace({"factor": 0.5, "patience": patience}, 1.0, metrics)["lr"][0][1:]
    ours = run_eager(lrjax.reduce_lr_on_plateau(factor=0.5, patience=patience), 1.0, metrics).lr[1:].tolist()
    theirs = optax_scales(metrics, patience=patience)
    assert ours == torch_lrs
    t, o = drops(torch_lrs), drops(theirs)
    assert t[0] == 1 + patience + 1 and o[0] == t[0] - 1  # best at index 1, then patience + 1 bad epochs
    assert set(np.diff(t)) == {patience + 1} and set(np.diff(o)) == {patience}
    assert theirs[-1] < torch_lrs[-1]

    # With a cooldown, and with NaN metrics, the schedules differ in the same way.
    same = [1.0] * 10
    with_cooldown = torch_trace({"factor": 0.5, "patience": 1, "cooldown": 2}, 1.0, same)["lr"][0][1:]
    assert optax_scales(same, patience=1, cooldown=2) != with_cooldown
    nans = [1.0] + [math.nan] * 3
    assert optax_scales(nans, patience=1) != torch_trace({"factor": 0.5, "patience": 1}, 1.0, nans)["lr"][0][1:]
