"""Every metric type a user can pass to the plateau gives torch's decision, or a clear TypeError/ValueError.

torch's ``scheduler.step(metric)`` computes ``float(metric)``. lrjax takes the same float64 value from
Python ints of any size, NumPy and JAX integers of every width (unsigned too), floats of every width
(float16, bfloat16, longdouble), 0-d arrays and NaN/inf; in float32 it rounds that value to float32
(and torch is compared on the rounded value, what it gets from a float32 loss). A generated test
over that space runs mixed sequences against torch, eagerly, through ``plateau_step`` and, for the
values JAX itself converts without loss, under ``jit``.
"""

from __future__ import annotations

import decimal
import fractions
import math

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest
from conftest import requires_torch
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from refcases.plateau import torch_trace

import lrjax

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")

# Magnitudes where rounding decides: neighbours that float32 (2**24 + 1) or float64 (2**53 + 1) merge.
POOL = [
    0,
    1,
    -1,
    3,
    -5,
    2**24,
    2**24 + 1,
    2**31 - 1,
    2**31,
    2**32 + 1,
    2**40,
    2**53,
    2**53 + 1,
    2**63 - 1,
    2**64 - 1,
    10**20,
    -(2**70),
    10**300,
]
INT_TYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
FLOAT_TYPES = [np.float16, np.float32, np.float64, np.longdouble, ml_dtypes.bfloat16]
JAX_INT = [jnp.int8, jnp.int16, jnp.int32, jnp.uint8, jnp.uint16, jnp.uint32]
JAX_FLOAT = [jnp.float16, jnp.bfloat16, jnp.float32]
SPECIAL = [math.nan, math.inf, -math.inf, 0.5, -0.25, 1e-30, 3.4e38, 1e39, 1e300]


def _fits(value: int, dtype) -> bool:
    info = np.iinfo(dtype)
    return info.min <= value <= info.max


@st.composite
def metric(draw, x64: bool):
    """``(make, jittable)``: ``make()`` builds the metric (inside the test's x64 setting); ``jittable``:
    whether JAX's own conversion of it as a jit argument keeps its value (JAX arrays)."""
    kind = draw(
        st.sampled_from(
            ["int", "np_int", "np_float", "np_array", "jax_int", "jax_float", "float", "fraction", "special"]
        )
    )
    v = draw(st.sampled_from(POOL))
    if kind == "int":
        return (lambda: v), False  # a Python int above int32 cannot be a jit argument (JAX raises OverflowError)
    if kind == "np_int":
        v = draw(st.sampled_from([x for x in POOL if any(_fits(x, t) for t in INT_TYPES)]))
        dtype = draw(st.sampled_from([t for t in INT_TYPES if _fits(v, t)]))
        return (lambda: dtype(v)), False  # JAX wraps NumPy int64 arguments to int32 with x64 off
    if kind == "np_float":
        dtype = draw(st.sampled_from(FLOAT_TYPES))
        x = float(draw(st.sampled_from(POOL[:14] + SPECIAL)))
        with np.errstate(over="ignore"):
            m = dtype(x)
        return (lambda: m), False
    if kind == "np_array":
        v = draw(st.sampled_from([x for x in POOL if any(_fits(x, t) for t in INT_TYPES)]))
        dtype = draw(st.sampled_from([t for t in INT_TYPES if _fits(v, t)] + [np.float32, np.float64]))
        return (lambda: np.array(v, dtype=dtype)), False
    if kind == "jax_int":
        candidates = JAX_INT + ([jnp.int64, jnp.uint64] if x64 else [])
        v = draw(st.sampled_from([x for x in POOL if any(_fits(x, t) for t in candidates)]))
        dtype = draw(st.sampled_from([t for t in candidates if _fits(v, t)]))
        return (lambda: jnp.asarray(v, dtype=dtype)), True
    if kind == "jax_float":
        dtype = draw(st.sampled_from(JAX_FLOAT + ([jnp.float64] if x64 else [])))
        x = float(draw(st.sampled_from(POOL[:13] + SPECIAL)))

        def make():
            with np.errstate(over="ignore"):
                return jnp.asarray(np.asarray(x).astype(dtype))

        return make, True
    if kind == "fraction":
        q = fractions.Fraction(v, draw(st.sampled_from([1, 3, 7])))
        return (lambda: q), False
    x = draw(st.sampled_from(SPECIAL))
    return (lambda: x), False


def torch_value(m) -> float:
    """What torch computes with: ``float(metric)``."""
    return float(np.asarray(m).item()) if isinstance(m, jax.Array) else float(m)


def expected(config, metrics, x64: bool):
    values = [torch_value(m) for m in metrics]
    if not x64:  # lrjax's float32 state holds the value rounded to float32; torch is given that value
        with np.errstate(over="ignore"):
            values = [float(np.float32(v)) for v in values]
    return torch_trace(config, 1.0, values), values


def check_states(states, trace, bits, what):
    for k, s in enumerate(states):
        assert float(s.lr) == pytest.approx(trace["lr"][0][k], rel=1e-6 if bits == 32 else 0), (what, k)
        assert int(s.num_bad_epochs) == trace["num_bad_epochs"][k], (what, k)
        best = trace["best"][k]
        got = float(s.best)
        want = float(np.float32(best)) if bits == 32 else best
        assert got == want or (math.isnan(got) and math.isnan(want)), (what, k, got, want)


_JITTED: dict = {}


def _jitted_update(config: dict, bits: int):
    """One jitted update per configuration and dtype (compiled once for all the examples)."""
    key = (tuple(sorted(config.items())), bits)
    if key not in _JITTED:
        _JITTED[key] = jax.jit(lrjax.reduce_lr_on_plateau(**config).update)
    return _JITTED[key]


@requires_torch
@settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from([32, 64]), st.sampled_from(["min", "max"]), st.sampled_from([0.0, 1e-4]))
def test_every_metric_type_gives_torchs_decision(data, bits, mode, threshold):
    x64 = bits == 64
    pairs = data.draw(st.lists(metric(x64), min_size=2, max_size=5))
    config = {"mode": mode, "threshold": threshold, "patience": 0, "factor": 0.5}
    with jax.enable_x64(x64):
        metrics = [make() for make, _ in pairs]
        trace, values = expected(config, metrics, x64)
        note(f"metrics={metrics!r} values={values}")
        plateau = lrjax.reduce_lr_on_plateau(**config)
        state, states = plateau.init(1.0), []
        states.append(state)
        for m in metrics:
            state = plateau.update(state, m)
            states.append(state)
        check_states(states, trace, bits, "eager update")

        # The optax shapes take the same metrics (lrjax.plateau_step converts on the host, exactly).
        sched = plateau.as_schedule(1.0, accumulation_size=None)
        opt_state = sched.init()
        lrs = [float(sched(opt_state))]
        for m in metrics:
            opt_state = lrjax.plateau_step(opt_state, m)
            lrs.append(float(sched(opt_state)))
        np.testing.assert_allclose(lrs, trace["lr"][0], rtol=1e-6 if bits == 32 else 0)

        # Under jit JAX converts the arguments first; the ones it keeps exact give the same decisions.
        jitted = [m for m, (_, ok) in zip(metrics, pairs) if ok]
        if jitted:
            step = _jitted_update(config, bits)
            state, states = plateau.init(1.0), [plateau.init(1.0)]
            for m in jitted:
                state = step(state, m)
                states.append(state)
            check_states(states, expected(config, jitted, x64)[0], bits, "jitted update")


def test_the_reported_truncations_are_fixed():
    """x64 off: ``np.int64(2**40)`` was truncated to 0 and ``10**20`` raised OverflowError."""
    with jax.enable_x64(False):
        plateau = lrjax.reduce_lr_on_plateau(mode="max", patience=0)
        assert float(plateau.update(plateau.init(1.0), np.int64(2**40)).best) == float(np.float32(2.0**40))
        assert float(plateau.update(plateau.init(1.0), 10**20).best) == float(np.float32(1e20))
        assert float(plateau.update(plateau.init(1.0), np.uint64(2**64 - 1)).best) == float(np.float32(2.0**64))
    with jax.enable_x64(True):
        plateau = lrjax.reduce_lr_on_plateau(mode="max", patience=0, threshold=0.0)
        s = plateau.update(plateau.update(plateau.init(1.0), 2**53), 2**53 + 2)
        assert float(s.best) == 2.0**53 + 2 and int(s.num_bad_epochs) == 0


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (True, TypeError, "got the bool True"),
        (np.bool_(False), TypeError, "got the bool False"),
        (np.array(True), TypeError, "got dtype bool"),
        (jnp.asarray(True), TypeError, "got dtype bool"),
        ("0.5", TypeError, r"got str '0.5' \(convert it with float\(\)\)"),
        (b"1", TypeError, "got bytes"),
        (None, TypeError, "got NoneType None"),
        (1 + 2j, TypeError, "got complex"),
        (np.complex64(1), TypeError, "got dtype complex64"),
        (jnp.asarray(1 + 1j), TypeError, "got dtype complex64"),
        (decimal.Decimal("0.5"), TypeError, "got Decimal"),
        ([1.0], TypeError, "got list"),
        (np.array([1.0]), ValueError, r"metric must be a scalar \(shape \(\)\), got shape \(1,\)"),
        (np.zeros((2, 2)), ValueError, "got shape"),
        (jnp.ones(3), ValueError, "got shape"),
        (10**400, ValueError, "with 401 digits is too large for a float64"),
        (-(10**400), ValueError, "too large for a float64"),
        (np.array("x"), TypeError, "got dtype <U1"),
        (object(), TypeError, "got object"),
    ],
)
def test_bad_metrics_raise_clear_errors(bad, error, message):
    plateau = lrjax.reduce_lr_on_plateau()
    with pytest.raises(error, match=message):
        plateau.update(plateau.init(1.0), bad)
    tx = optax.chain(optax.sgd(1.0), plateau.as_transform(1.0))
    with pytest.raises(error, match="pass value=<loss>" if bad is None else message.replace("metric", "value")):
        tx.update(jnp.zeros(()), tx.init(jnp.zeros(())), jnp.zeros(()), value=bad)
    with pytest.raises(error, match=message):
        lrjax.plateau_step(plateau.as_schedule(1.0, accumulation_size=None).init(), bad)


def test_traced_metrics_of_every_jax_dtype():
    """Inside jit the metric's dtype is known: every integer and float dtype is cast to the state's float."""
    with jax.enable_x64(True):
        plateau = lrjax.reduce_lr_on_plateau(mode="max", patience=0)
        step = jax.jit(plateau.update)
        dtypes = (
            jnp.int8,
            jnp.int16,
            jnp.int32,
            jnp.int64,
            jnp.uint8,
            jnp.uint16,
            jnp.uint32,
            jnp.uint64,
            jnp.float16,
            jnp.bfloat16,
            jnp.float32,
            jnp.float64,
        )
        states = jax.jit(lambda *ms: [plateau.update(plateau.init(1.0), m) for m in ms])(
            *[jnp.asarray(7, dtype) for dtype in dtypes]
        )  # one compilation, every dtype traced
        for dtype, s in zip(dtypes, states):
            assert float(s.best) == 7.0 and s.best.dtype == np.float64, dtype
        with pytest.raises(TypeError, match="metric must be a real number"):
            step(plateau.init(1.0), jnp.asarray(True))
