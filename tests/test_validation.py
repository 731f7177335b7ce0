"""Every error path: torch's rejections with torch's messages, and the inputs on which torch crashes
later or silently misbehaves, rejected at construction with a ValueError naming the argument."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lrjax

BAD_LRS = [-0.1, float("nan"), float("inf"), "0.1", [[0.1]], [], None, [0.1, -1.0]]


def raises(match):
    return pytest.raises(ValueError, match=match)


@pytest.mark.parametrize("value", BAD_LRS, ids=repr)
@pytest.mark.parametrize(
    "build",
    [
        lambda b: lrjax.lambda_lr(b, lambda t: 1.0),
        lambda b: lrjax.multiplicative_lr(b, lambda t: 0.9),
        lambda b: lrjax.step_lr(b, 3),
        lambda b: lrjax.multi_step_lr(b, [3]),
        lambda b: lrjax.constant_lr(b),
        lambda b: lrjax.linear_lr(b),
        lambda b: lrjax.exponential_lr(b, 0.9),
        lambda b: lrjax.polynomial_lr(b),
        lambda b: lrjax.cosine_annealing_lr(b, 10),
        lambda b: lrjax.cosine_annealing_warm_restarts(b, 10),
        lambda b: lrjax.cyclic_lr(b, 1.0),
        lambda b: lrjax.cyclic_lr(0.01, b),
        lambda b: lrjax.one_cycle_lr(b, total_steps=10),
    ],
    ids=[
        "lambda",
        "multiplicative",
        "step",
        "multistep",
        "constant",
        "linear",
        "exponential",
        "polynomial",
        "cosine",
        "warm_restarts",
        "cyclic-base",
        "cyclic-max",
        "one_cycle",
    ],
)
def test_bad_learning_rates(build, value):
    with raises(r"base_lr|max_lr|real number|finite|empty|shape|>= 0"):
        build(value)


# -- LambdaLR / MultiplicativeLR ------------------------------------------------------------------


def test_lambda_lr_errors():
    with raises("lr_lambda should be a function, but got int"):
        lrjax.lambda_lr(0.1, 3)
    with raises("Expected 2 lr_lambdas, but got 3"):
        lrjax.lambda_lr([0.1, 0.2], [lambda t: 1.0] * 3)
    with raises("Expected 1 lr_lambdas, but got 2"):
        lrjax.lambda_lr(0.1, [lambda t: 1.0] * 2)
    with raises(r"(?s)cannot be traced by JAX.*jnp.minimum.*total_steps"):
        lrjax.lambda_lr(0.1, lambda e: min(e / 10, 1.0))
    with raises("one real number per step"):
        lrjax.lambda_lr(0.1, lambda e: jnp.ones(3))
    with raises(r"lr_lambda\(3\) = -1.0.*non-negative"):
        lrjax.lambda_lr(0.1, lambda e: 1.0 if e < 3 else -1.0, total_steps=10)
    with raises("total_steps"):
        lrjax.lambda_lr(0.1, lambda e: 1.0, total_steps=-1)


def test_multiplicative_lr_errors():
    with raises("lr_lambda should be a function, but got int"):
        lrjax.multiplicative_lr(0.1, 3)
    with raises("Expected 2 lr_lambdas, but got 1"):
        lrjax.multiplicative_lr([0.1, 0.2], [lambda t: 0.9])
    with raises(r"depends on the step.*total_steps=N"):
        lrjax.multiplicative_lr(0.1, lambda e: 0.9 + 0.0 * e.astype(float))
    with raises(r"(?s)cannot be traced.*total_steps"):
        lrjax.multiplicative_lr(0.1, lambda e: 0.5 if e > 3 else 1.0)
    with raises("lr_lambda"):
        lrjax.multiplicative_lr(0.1, lambda e: -0.9)
    with raises(r"lr_lambda\(5\) = nan"):
        lrjax.multiplicative_lr(0.1, lambda e: float("nan") if e == 5 else 0.9, total_steps=10)


# -- step / multi-step / exponential --------------------------------------------------------------


@pytest.mark.parametrize("step_size", [0, -3, 2.5, True, "3", None])
def test_step_lr_step_size(step_size):
    with raises("step_size"):
        lrjax.step_lr(0.1, step_size)


@pytest.mark.parametrize("gamma", [-0.1, float("nan"), float("inf"), [0.1, 0.2]])
def test_gamma(gamma):
    for build in (
        lambda: lrjax.step_lr(0.1, 3, gamma),
        lambda: lrjax.multi_step_lr(0.1, [2], gamma),
        lambda: lrjax.exponential_lr(0.1, gamma),
        lambda: lrjax.cyclic_lr(0.1, 1.0, gamma=gamma),
    ):
        with raises("gamma"):
            build()


def test_step_lr_accepts_integral_floats():
    assert float(lrjax.step_lr(0.1, 3.0)(3)) == pytest.approx(0.01)


@pytest.mark.parametrize("milestones", [[3, -1], [2.5], 5, "30", [None]])
def test_multi_step_lr_milestones(milestones):
    with raises("milestones"):
        lrjax.multi_step_lr(0.1, milestones)


# -- constant / linear / polynomial ---------------------------------------------------------------


def test_constant_lr_errors():
    for factor in (1.5, -0.1):
        with raises(re.escape("Constant multiplicative factor expected to be between 0 and 1.")):
            lrjax.constant_lr(0.1, factor=factor)
    with raises(r"factor=0 with total_iters > 0.*ZeroDivisionError"):
        lrjax.constant_lr(0.1, factor=0.0, total_iters=3)
    with raises("total_iters"):
        lrjax.constant_lr(0.1, total_iters=-1)
    assert float(lrjax.constant_lr(0.1, factor=0.0, total_iters=0)(5)) == 0.0  # torch: 0 forever, no crash


def test_linear_lr_errors():
    for start in (0.0, 1.5, -1.0):
        with raises(re.escape("Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")):
            lrjax.linear_lr(0.1, start_factor=start)
    for end in (1.5, -0.1):
        with raises(re.escape("Ending multiplicative factor expected to be between 0 and 1.")):
            lrjax.linear_lr(0.1, end_factor=end)
    with raises("total_iters"):
        lrjax.linear_lr(0.1, total_iters=-1)


def test_polynomial_lr_errors():
    with raises("total_iters"):
        lrjax.polynomial_lr(0.1, total_iters=-3)
    with raises("power"):
        lrjax.polynomial_lr(0.1, power=-2.0)


# -- cosine ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("T_max", [0, -4, 2.5, None])
def test_cosine_t_max(T_max):
    with raises("T_max"):
        lrjax.cosine_annealing_lr(0.1, T_max)


def test_cosine_eta_min():
    with raises("eta_min"):
        lrjax.cosine_annealing_lr(0.1, 10, eta_min=-0.01)


def test_warm_restarts_errors():
    for T_0 in (0, -1, 2.0):
        with raises(re.escape(f"Expected positive integer T_0, but got {T_0}")):
            lrjax.cosine_annealing_warm_restarts(0.1, T_0)
    for T_mult in (0, 2.0):
        with raises(re.escape(f"Expected integer T_mult >= 1, but got {T_mult}")):
            lrjax.cosine_annealing_warm_restarts(0.1, 1, T_mult=T_mult)
    with raises(re.escape("Expected float or int eta_min, but got 0 of type <class 'str'>")):
        lrjax.cosine_annealing_warm_restarts(0.1, 1, eta_min="0")
    with raises("eta_min"):
        lrjax.cosine_annealing_warm_restarts(0.1, 1, eta_min=-1.0)


# -- cyclic ---------------------------------------------------------------------------------------


def test_cyclic_errors():
    with raises("mode is invalid and scale_fn is None"):
        lrjax.cyclic_lr(0.1, 1.0, mode="foo")
    with raises("mode must be one of"):
        lrjax.cyclic_lr(0.1, 1.0, mode="foo", scale_fn=lambda x: 1.0)
    with raises("scale_mode must be one of"):
        lrjax.cyclic_lr(0.1, 1.0, scale_mode="bogus")
    for up, down in [(0, None), (-2, None), (3, 0), (float("nan"), None), (True, None)]:
        with raises("step_size_"):
            lrjax.cyclic_lr(0.1, 1.0, step_size_up=up, step_size_down=down)
    with raises(r"max_lr must have the same length as base_lr.*max_lr has 3 values, base_lr has 2"):
        lrjax.cyclic_lr([0.1, 0.2], [1.0, 1.0, 1.0])
    with raises("scale_fn cannot be traced"):
        lrjax.cyclic_lr(0.1, 1.0, scale_fn=lambda x: 1.0 if x < 2 else 0.5)
    with raises("scale_fn should be a function"):
        lrjax.cyclic_lr(0.1, 1.0, scale_fn=3)
    for m in (1.5, -0.1):
        with raises("momentum"):
            lrjax.cyclic_momentum(base_momentum=m)


# -- one cycle ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"total_steps": 0}, "Expected positive integer total_steps, but got 0"),
        ({"total_steps": 10.0}, "Expected positive integer total_steps, but got 10.0"),
        ({"epochs": 0, "steps_per_epoch": 5}, "Expected positive integer epochs, but got 0"),
        ({"epochs": 2, "steps_per_epoch": 0}, "Expected positive integer steps_per_epoch, but got 0"),
        ({"epochs": 2}, "You must define either total_steps OR (epochs AND steps_per_epoch)"),
        ({"total_steps": 10, "pct_start": 1.5}, "Expected float between 0 and 1 pct_start, but got 1.5"),
        ({"total_steps": 10, "pct_start": 1}, "Expected float between 0 and 1 pct_start, but got 1"),
        (
            {"total_steps": 10, "anneal_strategy": "foo"},
            "anneal_strategy must be one of 'cos' or 'linear', instead got foo",
        ),
    ],
)
def test_one_cycle_torch_messages(kwargs, message):
    with raises(re.escape(message)):
        lrjax.one_cycle_lr(1.0, **kwargs)
    momentum_kwargs = {k: v for k, v in kwargs.items()}
    with raises(re.escape(message)):
        lrjax.one_cycle_momentum(**momentum_kwargs)


def test_one_cycle_zero_length_phases():
    with raises(r"warm-up phase zero steps long"):
        lrjax.one_cycle_lr(1.0, total_steps=10, pct_start=0.1)  # torch: ZeroDivisionError at construction
    with raises(r"last phase zero steps long"):
        lrjax.one_cycle_lr(1.0, total_steps=10, pct_start=1.0)  # torch: ZeroDivisionError at t=total_steps
    with raises(r"last phase zero steps long"):
        lrjax.one_cycle_lr(1.0, total_steps=10, pct_start=0.55, three_phase=True)
    lrjax.one_cycle_lr(1.0, total_steps=10, pct_start=0.0)  # accepted, as in torch


def test_one_cycle_factors_and_momenta():
    for kw in ({"div_factor": 0.0}, {"div_factor": -25.0}, {"final_div_factor": 0.0}):
        with raises(next(iter(kw))):
            lrjax.one_cycle_lr(1.0, total_steps=10, **kw)
    with raises("base_momentum"):
        lrjax.one_cycle_momentum(total_steps=10, base_momentum=1.5)


# -- composites -----------------------------------------------------------------------------------


def test_chained_errors():
    with raises(re.escape("ChainedScheduler expects at least one scheduler to be chained, but got no scheduler.")):
        lrjax.chained_scheduler([])
    with raises("must share base_lr"):
        lrjax.chained_scheduler([lrjax.step_lr(0.1, 2), lrjax.exponential_lr(0.2, 0.9)])
    with raises("torch raises NotImplementedError there"):
        lrjax.sequential_lr([lrjax.step_lr(0.1, 2), lrjax.chained_scheduler([lrjax.step_lr(0.1, 2)])], [3])
    with raises("torch raises NotImplementedError there"):
        lrjax.sequential_lr([lrjax.step_lr(0.1, 2), lrjax.sequential_lr([lrjax.step_lr(0.1, 2)], [])], [3])
    with raises("cannot contain one_cycle_lr"):
        lrjax.chained_scheduler([lrjax.one_cycle_lr(0.1, total_steps=10)])
    with raises("momentum schedule"):
        lrjax.chained_scheduler([lrjax.cyclic_momentum()])
    with raises("combines lrjax's torch schedules"):
        lrjax.chained_scheduler([lambda t: 0.1])
    with raises(r"no closed form in torch.*total_steps=N"):
        lrjax.chained_scheduler([lrjax.exponential_lr(1.0, 0.9), lrjax.cosine_annealing_lr(1.0, 5, eta_min=0.1)])
    with raises(r"CyclicLR constructed first.*base_lr=0.1"):
        lrjax.chained_scheduler([lrjax.cyclic_lr(0.1, 1.0), lrjax.cosine_annealing_lr(1.0, 5)])
    with raises("list of lrjax schedules"):
        lrjax.chained_scheduler(lrjax.step_lr(0.1, 2))


def test_sequential_errors():
    with raises(re.escape("SequentialLR expects at least one scheduler, but got no scheduler.")):
        lrjax.sequential_lr([], [])
    with raises(
        re.escape(
            "Sequential Schedulers expects number of schedulers provided to be one more than the number of milestone "
            "points, but got number of schedulers 2 and the number of milestones to be equal to 2"
        )
    ):
        lrjax.sequential_lr([lrjax.step_lr(0.1, 2), lrjax.step_lr(0.1, 3)], [1, 2])
    with raises("non-decreasing"):
        lrjax.sequential_lr([lrjax.step_lr(0.1, 2)] * 3, [6, 3])
    with raises("milestones must be non-negative integers"):
        lrjax.sequential_lr([lrjax.step_lr(0.1, 2)] * 2, [-1])
    for late in (lrjax.linear_lr(0.1, total_iters=0), lrjax.polynomial_lr(0.1, total_iters=0)):
        with raises(r"divides by total_iters=0"):
            lrjax.sequential_lr([lrjax.step_lr(0.1, 2), late], [3])
    lrjax.sequential_lr([lrjax.linear_lr(0.1, total_iters=0), lrjax.step_lr(0.1, 2)], [3])  # fine at index 0


def test_per_epoch_errors():
    with raises("steps_per_epoch"):
        lrjax.per_epoch(lrjax.step_lr(0.1, 2), 0)
    with raises("schedule must be a schedule"):
        lrjax.per_epoch(0.1, 10)


def test_step_dtype():
    with pytest.raises(TypeError, match="step must be an integer or a float"):
        lrjax.step_lr(0.1, 2)(jnp.asarray(True))


# -- no valid configuration produces NaN or inf ---------------------------------------------------

VALID = st.one_of(
    st.builds(lambda g, s: lrjax.step_lr(0.1, s, g), st.floats(0, 10), st.integers(1, 10**9)),
    st.builds(lambda g: lrjax.exponential_lr(0.1, g), st.floats(0, 10)),
    st.builds(lambda f, n: lrjax.constant_lr(0.1, f, n), st.floats(1e-6, 1), st.integers(0, 10**9)),
    st.builds(
        lambda s, e, n: lrjax.linear_lr(0.1, s, e, n), st.floats(1e-9, 1), st.floats(0, 1), st.integers(0, 10**9)
    ),
    st.builds(lambda n, p: lrjax.polynomial_lr(0.1, n, p), st.integers(0, 10**9), st.floats(0, 100)),
    st.builds(lambda T, e: lrjax.cosine_annealing_lr(0.1, T, e), st.integers(1, 2**31 - 1), st.floats(0, 10)),
    st.builds(lambda T, m: lrjax.cosine_annealing_warm_restarts(0.1, T, m), st.integers(1, 10**9), st.integers(1, 10)),
    st.builds(
        lambda u, d, mode, g: lrjax.cyclic_lr(0.1, 1.0, u, d, mode, g),
        st.integers(1, 10**9),
        st.integers(1, 10**9),
        st.sampled_from(["triangular", "triangular2", "exp_range"]),
        st.floats(0, 2),
    ),
    st.builds(
        lambda T, p, a, three: lrjax.one_cycle_lr(
            1.0, total_steps=T, pct_start=p, anneal_strategy=a, three_phase=three
        ),
        st.integers(2, 2**31 - 1),
        st.sampled_from([0.0, 0.25, 0.3, 0.5, 0.75]),
        st.sampled_from(["cos", "linear"]),
        st.booleans(),
    ),
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(schedule=VALID, steps=st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=8))
def test_valid_configurations_are_finite(schedule, steps):
    try:
        values = np.asarray(jax.vmap(schedule)(jnp.asarray(steps, dtype=jnp.int32)))
    except ValueError:
        return
    assert np.all(np.isfinite(values)), (schedule, steps, values)
