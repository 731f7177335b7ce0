"""Training loops with ReduceLROnPlateau in torch and with lrjax's optax shapes, for the plateau tests.

A run has ``E`` epochs of ``N`` updates. ``values[e][i]`` is the value (the batch loss) of update
``i`` of epoch ``e``. The plateau steps once per epoch, on ``total / N`` (torch's running sum
``total += loss.item()``: lrjax's ``accumulation_size=N``) or, when ``metrics`` is given, on
``metrics[e]`` (a validation metric: lrjax's ``accumulation_size=None`` and ``lrjax.plateau_step``).
Both sides return the lr each update used, one column per parameter group.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import strategies as st
from refcases.plateau import _boundary

import lrjax


def torch_bound(best: float, config: dict) -> float:
    """torch's threshold for improving on ``best`` (computed as torch does)."""
    return _boundary(best, {"threshold": 1e-4, "threshold_mode": "rel", "mode": "min", **config})


def groups_of(base_lr: Any) -> list[float]:
    return list(base_lr) if isinstance(base_lr, (list, tuple)) else [base_lr]


def torch_update_lrs(config: dict, base_lr: Any, values, metrics=None) -> np.ndarray:
    """torch: SGD over the groups, ReduceLROnPlateau stepped after each epoch; the lr of every update."""
    import torch

    bases = groups_of(base_lr)
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in bases]
    opt = torch.optim.SGD([{"params": [p], "lr": float(b)} for p, b in zip(params, bases)])
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **config)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e, row in enumerate(values):
            total = 0.0
            for v in row:
                out.append([g["lr"] for g in opt.param_groups])
                total += float(v)
                opt.step()
            sched.step(total / len(row) if metrics is None else float(metrics[e]))
    return np.array(out, dtype=np.float64)


def per_group_plateaus(config: dict, base_lr: Any) -> list[tuple[float, Any]]:
    """One single-group plateau per torch group: torch decides a reduction for all groups at once, from
    the metric alone, so G copies on the same metrics take the same decisions, each with its min_lr."""
    bases = groups_of(base_lr)
    min_lr = config.get("min_lr", 0.0)
    mins = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * len(bases)
    return [(float(b), lrjax.reduce_lr_on_plateau(**{**config, "min_lr": m})) for b, m in zip(bases, mins)]


def lrjax_tx(config: dict, base_lr: Any, shape: str, accumulation_size: int | None):
    """(tx, params): SGD with the plateau as ``shape`` ("transform": optax.chain(sgd, plateau.as_transform);
    "schedule": inject_hyperparams(sgd)(learning_rate=plateau.as_schedule)), one per group in a
    multi_transform when ``base_lr`` is a list."""
    txs = []
    for b, plateau in per_group_plateaus(config, base_lr):
        if shape == "transform":
            txs.append(optax.chain(optax.sgd(b), plateau.as_transform(b, accumulation_size=accumulation_size)))
        else:
            lr = plateau.as_schedule(b, accumulation_size=accumulation_size)
            txs.append(optax.inject_hyperparams(optax.sgd)(learning_rate=lr))
    if not isinstance(base_lr, (list, tuple)):
        return txs[0], jnp.zeros((), lrjax._base.float_dtype())
    names = [f"g{i}" for i in range(len(txs))]
    params = {f"p{i}": jnp.zeros((), lrjax._base.float_dtype()) for i in range(len(txs))}
    return optax.multi_transform(dict(zip(names, txs)), {f"p{i}": n for i, n in enumerate(names)}), params


def lrjax_runner(tx, params, external: bool):
    """A jitted ``(values[E, N], metrics[E]) -> lrs[E * N, G]``: a ``lax.scan`` over epochs, each a
    ``lax.scan`` over its updates (grads of 1, so an SGD update is ``-lr``), then, if ``external``,
    ``lrjax.plateau_step`` with the epoch's metric."""
    grads = jax.tree.map(jnp.ones_like, params)

    def run(values, metrics):
        def epoch(opt_state, inp):
            row, metric = inp

            def update(opt_state, v):
                kwargs = {} if external else {"value": v}
                updates, opt_state = tx.update(grads, opt_state, params, **kwargs)
                return opt_state, -jnp.stack(jax.tree.leaves(updates))

            opt_state, lrs = jax.lax.scan(update, opt_state, row)
            if external:
                opt_state = lrjax.plateau_step(opt_state, metric)
            return opt_state, lrs

        _, lrs = jax.lax.scan(epoch, tx.init(params), (values, metrics))
        return lrs.reshape(-1, lrs.shape[-1])

    return jax.jit(run)


def lrjax_update_lrs(config, base_lr, values, metrics=None, shape="transform") -> np.ndarray:
    """The lr of every update, ``[E * N, G]``; with ``batched=True`` semantics see :func:`lrjax_batch_lrs`."""
    return lrjax_batch_lrs(config, base_lr, [values], None if metrics is None else [metrics], shape)[0]


def lrjax_batch_lrs(config, base_lr, values, metrics=None, shape="transform") -> np.ndarray:
    """Several runs of one configuration at once (``jax.vmap`` over ``values[R][E][N]`` and
    ``metrics[R][E]``): one compilation; returns ``[R, E * N, G]``."""
    n = len(values[0][0])
    external = metrics is not None
    tx, params = lrjax_tx(config, base_lr, shape, None if external else n)
    dtype = lrjax._base.float_dtype()
    vals = jnp.asarray(np.array(values, np.float64), dtype)
    ms = jnp.asarray(np.array(metrics if external else np.zeros(vals.shape[:2]), np.float64), dtype)
    return np.asarray(jax.jit(jax.vmap(lrjax_runner(tx, params, external)))(vals, ms))


def assert_lrs_match(ours: np.ndarray, theirs: np.ndarray, bits: int, what: str = "") -> None:
    """Every update's lr within lrjax's contract (float64 ``1e-11 |lr| + 1e-12 max``; float32 ``1e-5``, ``1e-7``)."""
    rtol, atol = lrjax.testing.tolerance(np.float32 if bits == 32 else np.float64)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    allowed = rtol * np.abs(theirs) + atol * np.max(np.abs(theirs), axis=0)
    bad = np.argwhere(~(np.abs(ours - theirs) <= allowed))
    if bad.size:
        k, g = bad[0]
        raise AssertionError(f"{what}: update {k}, group {g}: lrjax {ours[k, g]!r}, torch {theirs[k, g]!r}")


# ---------------------------------------------------------------------------------------------
# Hypothesis: configurations and metric sequences (values at and near torch's threshold)
# ---------------------------------------------------------------------------------------------

_REL = [0.0, 1e-15, -1e-15, 1e-12, -1e-12, 1e-9, -1e-9, 1e-7, -1e-7, 1e-4, -1e-4, 1e-2, -1e-2]

instruction = st.one_of(
    st.tuples(
        st.just("value"),
        st.one_of(
            st.sampled_from([0.0, 1.0, -1.0, 0.5, 0.9999, 1e4, 9999.0, 1e-3, 2.0]),
            st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False),
            st.integers(-5, 5).map(float),
        ),
    ),
    st.tuples(st.just("edge"), st.sampled_from(_REL)),  # at / near torch's threshold for the current best
    st.tuples(st.just("repeat"), st.just(0.0)),  # the current best again
    st.tuples(st.just("special"), st.sampled_from([math.nan, math.inf, -math.inf])),
)


@st.composite
def configs(draw, max_groups: int = 3):
    config = {
        "mode": draw(st.sampled_from(["min", "max"])),
        "threshold_mode": draw(st.sampled_from(["rel", "abs"])),
        "factor": draw(st.one_of(st.sampled_from([0.0, 0.1, 0.5, 0.9]), st.floats(1e-3, 0.999))),
        "patience": draw(st.integers(0, 3)),
        "threshold": draw(
            st.one_of(st.sampled_from([0.0, 1e-4, 1e-3, 0.01, 0.1, 0.5]), st.floats(0.0, 1.0, allow_subnormal=False))
        ),
        "cooldown": draw(st.integers(0, 2)),
        "eps": draw(st.sampled_from([1e-8, 0.0, 1e-4, 1e-2])),
    }
    groups = draw(st.integers(0, max_groups))
    lr = st.one_of(st.sampled_from([1.0, 0.1, 1e-3, 1e-7]), st.floats(1e-8, 1.0))
    base_lr = draw(lr) if groups == 0 else draw(st.lists(lr, min_size=groups, max_size=groups))
    min_lr = st.sampled_from([0.0, 1e-4, 0.01, 0.05])
    config["min_lr"] = (
        draw(min_lr) if groups == 0 or draw(st.booleans()) else draw(st.lists(min_lr, min_size=groups, max_size=groups))
    )
    return config, base_lr


def materialize(config: dict, instructions) -> list[float]:
    """Instructions to metrics, asking torch for its best as it goes ("edge": threshold * (1 + rel))."""
    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **{**config, "min_lr": 0.0})
    metrics = []
    for kind, x in instructions:
        best = sched.best
        if kind == "edge" and math.isfinite(best):
            m = torch_bound(best, config) * (1 + x)
        elif kind == "repeat" and math.isfinite(best):
            m = best
        elif kind in ("edge", "repeat"):
            m = 1.0
        else:
            m = x
        if 0 < abs(m) < 1.2e-38:  # XLA flushes subnormal floats to 0 (documented)
            m = 0.0
        metrics.append(m)
        opt.step()
        sched.step(m)
    return metrics


# ---------------------------------------------------------------------------------------------
# torch loops for schedules combined with a plateau (what torch's SequentialLR / ChainedScheduler refuse)
# ---------------------------------------------------------------------------------------------

EPOCH_LOSSES = [1.0, 0.8, 0.7, 0.7, 0.69, 0.7, 0.71, 0.72, 0.6, 0.6, 0.6, 0.6, 0.61, 0.6, 0.59, 0.6]
STEPS_PER_EPOCH = 4


def torch_warmup_then_plateau(milestone: int, kw: dict) -> np.ndarray:
    """torch: LinearLR(start_factor=0.1) for ``milestone`` updates, then ReduceLROnPlateau on the same
    optimizer, stepped after each epoch with the metrics measured after the switch. The lr of every
    update. (milestone 0: the plateau starts where the schedule is at step 0, 0.1 * start_factor.)"""
    import torch
    from torch.optim import lr_scheduler as L

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1 if milestone else 0.01)
    warmup = L.LinearLR(opt, start_factor=0.1, total_iters=milestone) if milestone else None
    plateau = L.ReduceLROnPlateau(opt, **kw) if milestone == 0 else None
    lrs = []
    for t in range(len(EPOCH_LOSSES) * STEPS_PER_EPOCH):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if t + 1 <= milestone:
            warmup.step()
        if t + 1 == milestone:
            plateau = L.ReduceLROnPlateau(opt, **kw)
        if (t + 1) % STEPS_PER_EPOCH == 0 and t + 1 > milestone:
            plateau.step(EPOCH_LOSSES[(t + 1) // STEPS_PER_EPOCH - 1])
    return np.array(lrs)


def torch_cosine_times_plateau(kw: dict) -> tuple[np.ndarray, float]:
    """torch: CosineAnnealingLR(0.1, T_max=30) on one optimizer times the lr of a ReduceLROnPlateau
    started at 1.0 on another, stepped per epoch. The lr of every update, and the final multiplier."""
    import torch
    from torch.optim import lr_scheduler as L

    o1 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    o2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cosine, plateau = L.CosineAnnealingLR(o1, T_max=30), L.ReduceLROnPlateau(o2, **kw)
    lrs = []
    for t in range(len(EPOCH_LOSSES) * STEPS_PER_EPOCH):
        lrs.append(o1.param_groups[0]["lr"] * o2.param_groups[0]["lr"])
        o1.step()
        o2.step()
        cosine.step()
        if (t + 1) % STEPS_PER_EPOCH == 0:
            plateau.step(EPOCH_LOSSES[(t + 1) // STEPS_PER_EPOCH - 1])
    return np.array(lrs), o2.param_groups[0]["lr"]
