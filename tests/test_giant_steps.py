"""Step counts up to 2**31 - 1 (int32 optimizer counters), against torch's value at that step.

torch cannot be stepped 2**31 times, so the expected value is torch's own evaluation at step t:
``_get_closed_form_lr()`` with ``last_epoch = t`` where torch has one (equal to its recursion up
to rounding, see test_parity.py), ``get_lr()`` at ``last_epoch = t`` for the schedulers whose
``get_lr`` reads only ``last_epoch`` (LambdaLR, CyclicLR, OneCycleLR), and ``step(t)`` for
CosineAnnealingWarmRestarts. torch's CosineAnnealingLR formula is periodic with period
``2 T_max`` but torch evaluates ``cos(pi t / T_max)`` unreduced, which at t ~ 2**31 costs it ~1e-7 of
precision; it is evaluated at ``t mod 2 T_max``, the same value in exact arithmetic. torch's
CyclicLR computes its position in the cycle as ``1 + t / total - cycle`` in float64, which at
t ~ 2**31 is off by ~1e-11; where that puts torch outside the float64 contract, lrjax must be
within the contract of the exact value (fractions + mpmath) and closer to it than torch.
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import torchref
from conftest import requires_torch

import lrjax

BIG = 2**31 - 1
STEPS = [BIG, BIG - 1, 2**31 - 12_345, 2**30 + 7, 1_999_999_999, 123_456_789]


def _torch_values(make, steps, how, period=None):
    import torch
    from torch.optim import lr_scheduler as L

    lrs, moms = [], []
    for t in steps:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = make(L, opt)
            if how == "closed":
                s.last_epoch = t % period if period else t
                lr = s._get_closed_form_lr()[0]
            elif how == "get_lr":
                s.last_epoch = t
                lr = s.get_lr()[0]
            else:  # step(epoch)
                s.step(t)
                lr = opt.param_groups[0]["lr"]
        lrs.append(lr)
        moms.append(opt.param_groups[0]["momentum"])
    return np.asarray(lrs), np.asarray(moms)


def _exact_cyclic(base, high, up, down, mode="triangular", gamma=1.0):
    """torch's CyclicLR formula in exact arithmetic: (lr(t), momentum(t)) with the default momenta 0.8/0.9."""

    def value(t):
        total = up + down
        cycle = 1 + t // total
        x = Fraction(t, total) + 1 - cycle
        ratio = Fraction(up, total)
        height = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        with mpmath.workdps(40):
            amplitude = mpmath.mpf(height.numerator) / height.denominator
            if mode == "exp_range":
                amplitude *= mpmath.mpf(gamma) ** t
            return float(base + (mpmath.mpf(high) - base) * amplitude), float(0.9 - (0.9 - mpmath.mpf(0.8)) * amplitude)

    return value


EXACT = {
    "CyclicLR/triangular": _exact_cyclic(0.001, 0.1, 5000, 7001),
    "CyclicLR/exp_range": _exact_cyclic(0.001, 0.1, 777, 777, "exp_range", 1 - 1e-10),
}


def _check(name, which, values, expected, scale, bits):
    """The contract against torch, or where torch's float64 formula is inexact, against the exact value."""
    rtol, atol = torchref.tolerance(bits)
    allowed = rtol * np.abs(expected) + atol * scale
    for t, ours_t, torch_t, ok in zip(STEPS, values, expected, np.abs(values - expected) <= allowed):
        if not ok:
            assert name in EXACT, f"t={t}: lrjax {ours_t!r}, torch {torch_t!r}"
            exact = EXACT[name](t)[which]
            assert abs(ours_t - exact) <= rtol * abs(exact) + atol * scale, (t, ours_t, exact)
            assert abs(ours_t - exact) < abs(torch_t - exact), (t, ours_t, torch_t, exact)


GIANT = [
    (
        "StepLR",
        lambda: lrjax.step_lr(0.1, step_size=10**8, gamma=0.5),
        lambda L, o: L.StepLR(o, step_size=10**8, gamma=0.5),
        "closed",
        None,
    ),
    (
        "MultiStepLR",
        lambda: lrjax.multi_step_lr(0.1, [10**9, BIG - 1, 123_456_789], gamma=0.5),
        lambda L, o: L.MultiStepLR(o, [10**9, BIG - 1, 123_456_789], gamma=0.5),
        "closed",
        None,
    ),
    (
        "ConstantLR",
        lambda: lrjax.constant_lr(0.1, factor=0.5, total_iters=BIG - 1),
        lambda L, o: L.ConstantLR(o, factor=0.5, total_iters=BIG - 1),
        "closed",
        None,
    ),
    (
        "LinearLR",
        lambda: lrjax.linear_lr(0.1, start_factor=0.01, end_factor=0.5, total_iters=BIG),
        lambda L, o: L.LinearLR(o, start_factor=0.01, end_factor=0.5, total_iters=BIG),
        "closed",
        None,
    ),
    (
        "ExponentialLR",
        lambda: lrjax.exponential_lr(0.1, gamma=1 - 1e-9),
        lambda L, o: L.ExponentialLR(o, gamma=1 - 1e-9),
        "closed",
        None,
    ),
    (
        "PolynomialLR",
        lambda: lrjax.polynomial_lr(0.1, total_iters=BIG, power=2.0),
        lambda L, o: L.PolynomialLR(o, total_iters=BIG, power=2.0),
        "closed",
        None,
    ),
    (
        "CosineAnnealingLR/T25",
        lambda: lrjax.cosine_annealing_lr(0.1, T_max=25, eta_min=1e-4),
        lambda L, o: L.CosineAnnealingLR(o, T_max=25, eta_min=1e-4),
        "closed",
        50,
    ),
    (
        "CosineAnnealingLR/T1e9",
        lambda: lrjax.cosine_annealing_lr(0.1, T_max=10**9 + 7),
        lambda L, o: L.CosineAnnealingLR(o, T_max=10**9 + 7),
        "closed",
        2 * (10**9 + 7),
    ),
    (
        "CosineAnnealingWarmRestarts/Tmult1",
        lambda: lrjax.cosine_annealing_warm_restarts(0.1, T_0=10**9 + 9),
        lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=10**9 + 9),
        "step",
        None,
    ),
    (
        "CosineAnnealingWarmRestarts/Tmult2",
        lambda: lrjax.cosine_annealing_warm_restarts(0.1, T_0=1000, T_mult=2),
        lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=1000, T_mult=2),
        "step",
        None,
    ),
    (
        "LambdaLR",
        lambda: lrjax.lambda_lr(0.1, lambda t: 1 / (1 + 1e-9 * t.astype(float))),
        lambda L, o: L.LambdaLR(o, lambda t: 1 / (1 + 1e-9 * t)),
        "get_lr",
        None,
    ),
    (
        "CyclicLR/triangular",
        lambda: lrjax.cyclic_lr(0.001, 0.1, step_size_up=5000, step_size_down=7001),
        lambda L, o: L.CyclicLR(o, 0.001, 0.1, step_size_up=5000, step_size_down=7001),
        "get_lr",
        None,
    ),
    (
        "CyclicLR/exp_range",
        lambda: lrjax.cyclic_lr(0.001, 0.1, step_size_up=777, mode="exp_range", gamma=1 - 1e-10),
        lambda L, o: L.CyclicLR(o, 0.001, 0.1, step_size_up=777, mode="exp_range", gamma=1 - 1e-10),
        "get_lr",
        None,
    ),
    (
        "OneCycleLR/cos",
        lambda: lrjax.one_cycle_lr(0.1, total_steps=BIG),
        lambda L, o: L.OneCycleLR(o, 0.1, total_steps=BIG),
        "get_lr",
        None,
    ),
    (
        "OneCycleLR/linear",
        lambda: lrjax.one_cycle_lr(0.1, total_steps=BIG, anneal_strategy="linear", three_phase=True),
        lambda L, o: L.OneCycleLR(o, 0.1, total_steps=BIG, anneal_strategy="linear", three_phase=True),
        "get_lr",
        None,
    ),
]

MOMENTUM = {
    "CyclicLR/triangular": lambda: lrjax.cyclic_momentum(step_size_up=5000, step_size_down=7001),
    "CyclicLR/exp_range": lambda: lrjax.cyclic_momentum(step_size_up=777, mode="exp_range", gamma=1 - 1e-10),
    "OneCycleLR/cos": lambda: lrjax.one_cycle_momentum(total_steps=BIG),
    "OneCycleLR/linear": lambda: lrjax.one_cycle_momentum(total_steps=BIG, anneal_strategy="linear", three_phase=True),
}


@requires_torch
@pytest.mark.parametrize("name,ours,theirs,how,period", GIANT, ids=[g[0] for g in GIANT])
def test_giant_steps(name, ours, theirs, how, period, bits):
    expected_lr, expected_momentum = _torch_values(theirs, STEPS, how, period)
    steps = jnp.asarray(STEPS, dtype=jnp.int32)  # an int32 optimizer counter, in both precisions
    values = np.asarray(jax.jit(jax.vmap(ours()))(steps))
    # The contract's atol scale is the schedule's maximum, not the maximum of these few samples.
    scale = max(float(np.max(np.abs(expected_lr))), 0.1)
    _check(name, 0, values, expected_lr, scale, bits)
    if name in MOMENTUM:
        m = np.asarray(jax.jit(jax.vmap(MOMENTUM[name]()))(steps))
        _check(name, 1, m, expected_momentum, 1.0, bits)


def test_multiplicative_lr_constant_lambda_at_giant_steps(bits):
    """MultiplicativeLR has no closed form in torch; with a constant factor it equals ExponentialLR's."""
    ours = lrjax.multiplicative_lr(0.1, lambda e: 1 - 1e-9)
    reference = lrjax.exponential_lr(0.1, gamma=1 - 1e-9)
    steps = jnp.asarray(STEPS, dtype=jnp.int32)
    np.testing.assert_array_equal(np.asarray(jax.vmap(ours)(steps)), np.asarray(jax.vmap(reference)(steps)))


def test_naive_float32_formulas_miss_the_contract():
    """The reason for exp(t log gamma) and reduced cosines: the naive float32 forms fail at these steps."""
    with jax.enable_x64(False):
        t = jnp.asarray(STEPS, dtype=jnp.int32)
        naive_exp = 0.1 * jnp.float32(1 - 1e-9) ** t.astype(jnp.float32)
        naive_cos = 1e-4 + (0.1 - 1e-4) * (1 + jnp.cos(jnp.float32(np.pi) * t.astype(jnp.float32) / 25)) / 2
        ours_exp = jax.vmap(lrjax.exponential_lr(0.1, gamma=1 - 1e-9))(t)
        ours_cos = jax.vmap(lrjax.cosine_annealing_lr(0.1, T_max=25, eta_min=1e-4))(t)
    exact_exp = 0.1 * (1 - 1e-9) ** np.asarray(STEPS, dtype=np.float64)
    exact_cos = 1e-4 + (0.1 - 1e-4) * (1 + np.cos(np.pi * (np.asarray(STEPS) % 50) / 25)) / 2
    assert np.max(np.abs(np.asarray(naive_exp) - exact_exp) / exact_exp) > 1e-2
    assert np.max(np.abs(np.asarray(naive_cos) - exact_cos)) > 1e-3
    assert np.max(np.abs(np.asarray(ours_exp) - exact_exp) / exact_exp) < 1e-5
    assert np.max(np.abs(np.asarray(ours_cos) - exact_cos)) < 1e-7 * 0.1 + 1e-5 * np.max(exact_cos)
