"""torch behaviours from docs/torch_quirks.md that the stored references cannot show on their own.

The examples of the document that concern valid input are stored cases (ids with "§", checked by
test_parity.py); this file checks that they stay there, and covers the ones that need torch live:
where torch raises, or where lrjax deliberately gives the exact value instead of torch's.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import refdata
from conftest import requires_torch

import lrjax

QUIRK_CASES = {
    "§1": ["CosineAnnealingLR/§1-3000"],
    "§2": ["ConstantLR/f0.5-n0", "LinearLR/s0.5-e1.0-n0", "PolynomialLR/n0-p1.0"],
    "§4": ["CosineAnnealingLR/T3-eta0.0", "CosineAnnealingLR/T1-eta0.1", "CosineAnnealingLR/T5-eta2.0"],
    "§5": [
        "ChainedScheduler/§5-linear-cos-eta",
        "ChainedScheduler/§5-cos-eta-linear",
        "ChainedScheduler/§5-exp-cos-past-Tmax",
        "ChainedScheduler/§5-lambda-exp",
        "ChainedScheduler/§5-docs-constant-exp",
    ],
    "§6": [
        "SequentialLR/§6-exp-mult",
        "SequentialLR/§6-exp-lambda",
        "SequentialLR/§6-warmup-cut-short",
        "SequentialLR/§6-milestone0",
        "SequentialLR/§6-docs",
    ],
    "§7": [
        "OneCycleLR/§7-max1-T10",
        "OneCycleLR/T500-p0.3-linear-3pFalse-d25.0-10000.0",
        "OneCycleLR/T10-p0.0-cos-3pFalse-d25.0-10000.0",
        "OneCycleLR/total-wins",
    ],
    "§8": [
        "CyclicLR/up2-down3-triangular-g1.0",
        "CyclicLR/§8-adam-betas",
        "CyclicLR/§8-scale_fn-iterations",
        "CyclicLR/exp_range-forced-iterations",
        "CyclicLR/triangular2-forced-cycle",
        "CyclicLR/inverted",
        "CyclicLR/up3-down7-triangular-g1.0",
    ],
    "§10": ["MultiStepLR/[5, 2, 5, 2, 8]-g0.5", "MultiStepLR/[0, 3]-g0.5"],
    "§12": ["LambdaLR/docs-div30", "MultiplicativeLR/§12-skip0"],
    "§14": ["PolynomialLR/n50-p0.9", "LinearLR/s0.05-e1.0-n40", "PolynomialLR/n4-p1.0", "LinearLR/s0.5-e1.0-n4"],
}


def test_quirk_examples_are_stored_references():
    ids = {c["id"] for c in refdata.load("schedules")}
    missing = [cid for cases in QUIRK_CASES.values() for cid in cases if cid not in ids]
    assert not missing


def test_stored_quirk_numbers():
    """A few numbers of docs/torch_quirks.md, read from the stored torch output (not typed from the document)."""
    by_id = {c["id"]: c["expected"]["lr"][0] for c in refdata.load("schedules")}
    # §4: T_max=3, base 0.1 -> 0.1 * [1, .75, .25, 0, .25, .75, 1, .75] (periodic, rises after T_max)
    cos = lrjax.cosine_annealing_lr(0.1, 3)
    np.testing.assert_allclose(
        [float(cos(t)) for t in range(8)], by_id["CosineAnnealingLR/T3-eta0.0"][:8], rtol=1e-6, atol=1e-7
    )
    assert by_id["CosineAnnealingLR/T3-eta0.0"][3] == 0.0 and float(cos(3)) == 0.0
    # §7: with "linear", the lr at t = total_steps is negative
    assert by_id["OneCycleLR/T500-p0.3-linear-3pFalse-d25.0-10000.0"][500] < 0
    one = lrjax.one_cycle_lr(0.1, total_steps=500, anneal_strategy="linear")
    assert float(one(500)) < 0


@requires_torch
@pytest.mark.parametrize("T_0", [1, 2, 5])
def test_warm_restarts_exact_where_torch_log_is_off(T_0):
    """§13: torch's step(epoch) finds the cycle with math.log, one cycle short at the 5th and 10th restarts
    for T_mult=3; lrjax gives the restart value there, which is what torch's own step() gives."""
    import torch
    from torch.optim import lr_scheduler as L

    for n in (5, 10):
        restart = T_0 * (3**n - 1) // 2
        assert int(math.log(restart / T_0 * 2 + 1, 3)) == n - 1  # the defect is real at this step
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
            by_epoch = L.CosineAnnealingWarmRestarts(opt, T_0=T_0, T_mult=3)
            by_epoch.step(float(restart))
            torch_epoch = opt.param_groups[0]["lr"]
            opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
            by_step = L.CosineAnnealingWarmRestarts(opt2, T_0=T_0, T_mult=3)
            for _ in range(restart):
                by_step.step()
            torch_step = opt2.param_groups[0]["lr"]
        schedule = lrjax.cosine_annealing_warm_restarts(0.1, T_0, T_mult=3)
        with jax.enable_x64(True):
            ours_int, ours_float = float(schedule(restart)), float(schedule(float(restart)))
        assert torch_epoch < 1e-9  # torch's step(epoch): eta_min at the end of the previous cycle
        assert torch_step == pytest.approx(0.1, rel=1e-12)  # torch's step(): the restart
        assert ours_int == pytest.approx(torch_step, rel=1e-12)
        assert ours_float == pytest.approx(torch_step, rel=1e-12)


@requires_torch
def test_one_cycle_past_total_steps():
    """§7: torch raises after total_steps; lrjax holds the schedule's final value (min_lr)."""
    import torch
    from torch.optim import lr_scheduler as L

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)
    s = L.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(9):
            opt.step()
            s.step()
        final = opt.param_groups[0]["lr"]
        opt.step()
        s.step()  # t = total_steps: accepted, extrapolated
        at_total = opt.param_groups[0]["lr"]
        with pytest.raises(ValueError, match="Tried to step 11 times"):
            s.step()
    schedule = lrjax.one_cycle_lr(1.0, total_steps=10)
    with jax.enable_x64(True):
        assert float(schedule(10)) == pytest.approx(at_total, rel=1e-12)
        for t in (11, 12, 10**6):
            assert float(schedule(t)) == pytest.approx(final, rel=1e-12)


def test_cyclic_momentum_starts_at_max_momentum():
    """§8: momentum(0) = max_momentum whatever the optimizer had (torch overwrites it)."""
    m = lrjax.cyclic_momentum(base_momentum=0.8, max_momentum=0.9, step_size_up=2, step_size_down=3)
    np.testing.assert_allclose(
        jax.vmap(m)(jnp.arange(6)), [0.9, 0.85, 0.8, 0.8 + 0.1 / 3, 0.8 + 0.2 / 3, 0.9], rtol=1e-6
    )
