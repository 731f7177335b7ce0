"""``per_epoch(..., fractional=True)`` over a whole run of torch's documented CosineAnnealingWarmRestarts loop.

torch's documentation steps CosineAnnealingWarmRestarts after every batch with
``scheduler.step(epoch + i / iters)``; the update of batch ``i`` uses the lr set after batch
``i - 1``. SEMANTICS.md: ``per_epoch(schedule, n, fractional=True)`` passes that epoch to the
schedule exactly, so the contract holds at every update. This runs 300 epochs of 1000 updates
(300,000 updates), evaluates lrjax at every one of them (one jitted call), and compares with torch
at 20,000 of them (every update of the first two epochs, every update next to a restart, and a
stride through the rest; with T_mult = 1 torch's ``step(epoch)`` does not depend on the earlier
calls, so any subset of the loop is torch's own value).
"""

from __future__ import annotations

import warnings

import contract_stats
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torchref
from conftest import requires_torch

import lrjax

EPOCHS, ITERS, T_0, ETA_MIN, BASE = 300, 1000, 10, 1e-4, 0.1


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield
    contract_stats.report(__name__)


def _torch_loop_values(counts: np.ndarray) -> np.ndarray:
    """The lr torch's loop uses for update ``g`` (the one set after update g - 1), at the given updates."""
    import torch
    from torch.optim import lr_scheduler as L

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
    sched = L.CosineAnnealingWarmRestarts(opt, T_0=T_0, eta_min=ETA_MIN)
    out = np.empty(len(counts))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt.step()
        for j, g in enumerate(counts):
            if g == 0:
                out[j] = BASE  # before any step(epoch) call: the lr set at construction
                continue
            epoch, i = divmod(int(g) - 1, ITERS)
            sched.step(epoch + i / ITERS)
            out[j] = opt.param_groups[0]["lr"]
    return out


@requires_torch
@pytest.mark.parametrize("x64", [False, True], ids=["float32", "x64"])
def test_per_epoch_fractional_warm_restarts_whole_run(x64):
    total = EPOCHS * ITERS
    rng = np.random.default_rng(0)
    restarts = np.arange(0, total + 1, T_0 * ITERS)
    near = (restarts[:, None] + np.arange(-3, 4)[None, :]).reshape(-1)
    sample = np.unique(np.concatenate([np.arange(2 * ITERS), near, rng.integers(0, total, 16_000)]))
    sample = sample[(sample >= 0) & (sample < total)]
    expected = _torch_loop_values(sample)
    with jax.enable_x64(x64):
        schedule = lrjax.per_epoch(
            lrjax.cosine_annealing_warm_restarts(BASE, T_0=T_0, eta_min=ETA_MIN), ITERS, fractional=True
        )
        ours = np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(total, dtype=jnp.int32)), np.float64)
    bits = 64 if x64 else 32
    rtol, atol = torchref.tolerance(bits)
    allowed = rtol * np.abs(expected) + atol * BASE
    err = np.abs(ours[sample] - expected)
    bad = np.flatnonzero(err > allowed)
    contract_stats.count("per_epoch fractional run", len(sample))
    contract_stats.worst("per_epoch fractional run", float(np.max(err / allowed)), f"x64={x64}")
    if bad.size:
        contract_stats.failed("per_epoch fractional run")
        g = int(sample[bad[0]])
        worst = int(np.argmax(err / allowed))
        pytest.fail(
            f"per_epoch(cosine_annealing_warm_restarts({BASE}, T_0={T_0}, eta_min={ETA_MIN}), {ITERS}, "
            f"fractional=True), {'x64' if x64 else 'float32'}: {bad.size} of {len(sample)} sampled updates "
            f"(of {total}) leave the contract; first at update {g}: lrjax {ours[g]!r}, torch {expected[bad[0]]!r}, "
            f"allowance {allowed[bad[0]]:.3g}; worst {float(err[worst] / allowed[worst]):.3g}x the allowance at "
            f"update {int(sample[worst])}",
            pytrace=False,
        )
