"""ReduceLROnPlateau in optax's shapes against torch 2.13: the StatefulSchedule (``plateau.as_schedule``
in ``optax.inject_hyperparams``) and the transformation (``lrjax.scale_by_plateau`` in ``optax.chain``),
each with both ways of feeding the metric (``value=`` accumulated over ``N`` updates; a validation
metric through ``lrjax.plateau_step``), per parameter group (``optax.multi_transform``), under ``jit``
and ``lax.scan``; real optimizers (SGD, SGD with momentum, Adam, AdamW), a Flax NNX training loop,
warm-up then plateau, checkpoints, misuse, and how ``optax.contrib.reduce_on_plateau`` differs.
"""

from __future__ import annotations

import copy
import math
import pickle

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import requires_torch
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from plateau_loops import (
    EPOCH_LOSSES,
    STEPS_PER_EPOCH,
    assert_lrs_match,
    configs,
    instruction,
    lrjax_batch_lrs,
    lrjax_update_lrs,
    materialize,
    torch_cosine_times_plateau,
    torch_update_lrs,
    torch_warmup_then_plateau,
)
from refcases.plateau import to_f32

import lrjax

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")


def _values(rng, metrics, n, jitter):
    """Per-update values whose epoch means are the metrics (copies), or scattered around them."""
    if not jitter:
        return [[m] * n for m in metrics]
    return [[m + rng.uniform(-0.01, 0.01) * (abs(m) if math.isfinite(m) else 1.0) for _ in range(n)] for m in metrics]


# ---------------------------------------------------------------------------------------------
# Live hypothesis tests against torch
# ---------------------------------------------------------------------------------------------


def _live(setup, sequences, shape, feed, rng, bits):
    """1-3 metric sequences of one configuration, padded to one length (repeating the last metric, which
    torch sees too), in one vmapped, jitted run of the optax shape; every update's lr against torch."""
    config, base_lr = setup
    seqs = [materialize(config, instructions) for instructions in sequences]
    length = max(len(m) for m in seqs)
    seqs = [m + [m[-1]] * (length - len(m)) for m in seqs]
    if bits == 32:
        seqs = [to_f32(m) for m in seqs]
    n = rng.choice([1, 3]) if feed == "external" else int(feed)
    if feed == "external":  # values are not read: a validation metric per epoch, via plateau_step
        values, given = [[[rng.uniform(0, 1) for _ in range(n)] for _ in m] for m in seqs], seqs
    else:
        jitter = n > 1 and rng.random() < 0.5
        values, given = [_values(rng, m, n, jitter) for m in seqs], None
        if bits == 32:
            values = [[to_f32(row) for row in v] for v in values]
    note(f"metrics={seqs} values={values}")
    with jax.enable_x64(bits == 64):
        ours = lrjax_batch_lrs(config, base_lr, values, given, shape)
    for i, (v, m) in enumerate(zip(values, seqs)):
        theirs = torch_update_lrs(config, base_lr, v, m if given is not None else None)
        assert_lrs_match(ours[i], theirs, bits, f"{shape}/{feed}, sequence {i}")


SEQUENCES = st.lists(st.lists(instruction, min_size=3, max_size=14), min_size=1, max_size=3)
SHAPES = pytest.mark.parametrize("shape", ["transform", "schedule"])
FEEDS = pytest.mark.parametrize("feed", ["external", "accumulate"])


@requires_torch
@SHAPES
@FEEDS
@settings(deadline=None, max_examples=6, suppress_health_check=[HealthCheck.too_slow])
@given(setup=configs(), sequences=SEQUENCES, n=st.sampled_from([1, 2, 3]), rng=st.randoms(use_true_random=False))
def test_live_float64(shape, feed, setup, sequences, n, rng):
    """float64: every update's lr equals torch's (modes, thresholds, cooldown, eps, NaN/inf, 0-3 groups);
    ``accumulate``: the mean of ``n`` values per epoch."""
    _live(setup, sequences, shape, "external" if feed == "external" else str(n), rng, 64)


@requires_torch
@SHAPES
@FEEDS
@settings(deadline=None, max_examples=4, suppress_health_check=[HealthCheck.too_slow])
@given(setup=configs(max_groups=2), sequences=SEQUENCES, rng=st.randoms(use_true_random=False))
def test_live_float32(shape, feed, setup, sequences, rng):
    """float32 metrics (as torch gets them from a float32 loss): torch's float64 decisions, exactly
    (``accumulate``: one value per epoch; the float32 mean of several is tested below)."""
    _live(setup, sequences, shape, "external" if feed == "external" else "1", rng, 32)


@requires_torch
def test_float32_mean_of_values_follows_torch_on_training_curves():
    """float32 values averaged over N = 5 updates: the compensated float32 sum gives torch's float64
    mean to within a float32 ulp, so decisions away from an exact tie are torch's."""
    rng = np.random.default_rng(3)
    curve = 2.0 * np.cumprod(1 - rng.uniform(0, 0.02, (60, 5)) * (np.arange(60)[:, None] % 20 < 10)).reshape(60, 5)
    curve = curve * (1 + rng.normal(0, 0.01, curve.shape))
    values = [to_f32(row) for row in curve.tolist()]
    for config in (
        {"factor": 0.5, "patience": 2, "cooldown": 1},
        {"threshold_mode": "abs", "threshold": 1e-3, "patience": 1, "factor": 0.5},
    ):
        theirs = torch_update_lrs(config, 0.1, values)
        for shape in ("transform", "schedule"):
            with jax.enable_x64(False):
                ours = lrjax_update_lrs(config, 0.1, values, None, shape)
            assert_lrs_match(ours, theirs, 32, f"{config} {shape}")
        assert len(set(theirs[:, 0])) >= 2  # the plateau reduced


# ---------------------------------------------------------------------------------------------
# Real optimizers: scaling the updates is torch's lr change
# ---------------------------------------------------------------------------------------------

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(32, 3)), RNG.normal(size=32)
XV, YV = RNG.normal(size=(16, 3)), RNG.normal(size=16)
W0 = np.array([0.5, -0.3, 0.2])
EPOCHS, BATCHES = 14, 4
PLATEAU = {"factor": 0.5, "patience": 1, "threshold": 1e-3}

OPTIMIZERS = {  # torch optimizer, optax optimizer factory, lr
    "SGD": (lambda p, lr: __import__("torch").optim.SGD(p, lr=lr), lambda lr: optax.sgd(lr), 0.3),
    "SGD-momentum": (
        lambda p, lr: __import__("torch").optim.SGD(p, lr=lr, momentum=0.9),
        lambda lr: optax.sgd(lr, momentum=0.9),
        0.05,
    ),
    "SGD-nesterov-decay": (
        lambda p, lr: __import__("torch").optim.SGD(p, lr=lr, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda lr: optax.chain(optax.add_decayed_weights(0.01), optax.sgd(lr, momentum=0.9, nesterov=True)),
        0.05,
    ),
    "Adam": (lambda p, lr: __import__("torch").optim.Adam(p, lr=lr), lambda lr: optax.adam(lr), 0.3),
    "AdamW": (
        lambda p, lr: __import__("torch").optim.AdamW(p, lr=lr, weight_decay=0.1),
        lambda lr: optax.adamw(lr, weight_decay=0.1),
        0.3,
    ),
}


def _loss(w, x, y):
    return jnp.mean((x @ w - y) ** 2)


def torch_training(make_opt, lr, feed):
    """torch: EPOCHS epochs of BATCHES mini-batches; ReduceLROnPlateau on the mean batch loss ("value")
    or on the validation loss ("external"). Returns params after every epoch and the lrs."""
    import torch

    p = torch.nn.Parameter(torch.tensor(W0))
    opt = make_opt([p], lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **PLATEAU)
    x, y, xv, yv = map(torch.tensor, (X, Y, XV, YV))
    ws, lrs = [], []
    for _ in range(EPOCHS):
        total = 0.0
        for b in range(BATCHES):
            lrs.append(opt.param_groups[0]["lr"])
            opt.zero_grad()
            loss = torch.mean((x[b::BATCHES] @ p - y[b::BATCHES]) ** 2)
            total += loss.item()
            loss.backward()
            opt.step()
        with torch.no_grad():
            val = float(torch.mean((xv @ p - yv) ** 2))
        sched.step(total / BATCHES if feed == "value" else val)
        ws.append(p.detach().numpy().copy())
    return np.array(ws), np.array(lrs)


def lrjax_training(tx, feed):
    """The same loop: one jitted train step (``value=loss`` or none), ``plateau_step`` on the
    validation loss after each epoch for the external feed."""
    params = jnp.asarray(W0)
    opt_state = tx.init(params)

    xs = jnp.stack([jnp.asarray(X)[b::BATCHES] for b in range(BATCHES)])
    ys = jnp.stack([jnp.asarray(Y)[b::BATCHES] for b in range(BATCHES)])

    traces = []

    @jax.jit
    def train_step(params, opt_state, b):
        traces.append(1)
        loss, grads = jax.value_and_grad(_loss)(params, xs[b], ys[b])
        kwargs = {"value": loss} if feed == "value" else {}
        updates, opt_state = tx.update(grads, opt_state, params, **kwargs)
        return optax.apply_updates(params, updates), opt_state

    ws, lrs = [], []
    for _ in range(EPOCHS):
        for b in range(BATCHES):
            lrs.append(float(lrjax.plateau_lr(opt_state)))
            params, opt_state = train_step(params, opt_state, b)
        if feed == "external":
            opt_state = lrjax.plateau_step(opt_state, _loss(params, jnp.asarray(XV), jnp.asarray(YV)))
        ws.append(np.asarray(params))
    assert len(traces) == 1  # the plateau's state keeps its types and shapes: traced once
    return np.array(ws), np.array(lrs)


@requires_torch
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("shape, feed", [("transform", "value"), ("schedule", "external")])
def test_optimizer_trajectories_equal_torch(name, shape, feed):
    """Parameters after every epoch and the lr of every update equal torch's (float64): for SGD (also
    with momentum, Nesterov and weight decay), Adam and AdamW, multiplying the updates by
    ``lr / base_lr`` after the optimizer, and injecting the lr, are both torch's lr change."""
    make_torch, make_optax, lr = OPTIMIZERS[name]
    theirs_w, theirs_lr = torch_training(make_torch, lr, feed)
    acc = BATCHES if feed == "value" else None
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):  # optax's own code mixes int32 and float64
        plateau = lrjax.reduce_lr_on_plateau(**PLATEAU)
        if shape == "transform":
            tx = optax.chain(make_optax(lr), plateau.as_transform(lr, accumulation_size=acc))
        elif name == "SGD-nesterov-decay":
            tx = optax.chain(
                optax.add_decayed_weights(0.01),
                optax.inject_hyperparams(optax.sgd)(
                    learning_rate=plateau.as_schedule(lr, accumulation_size=acc), momentum=0.9, nesterov=True
                ),
            )
        else:
            factory = {"SGD": optax.sgd, "SGD-momentum": optax.sgd, "Adam": optax.adam, "AdamW": optax.adamw}[name]
            extra = {"SGD-momentum": {"momentum": 0.9}, "AdamW": {"weight_decay": 0.1}}.get(name, {})
            tx = optax.inject_hyperparams(factory)(
                learning_rate=plateau.as_schedule(lr, accumulation_size=acc), **extra
            )
        ours_w, ours_lr = lrjax_training(tx, feed)
    np.testing.assert_allclose(ours_lr, theirs_lr, rtol=1e-12)
    np.testing.assert_allclose(ours_w, theirs_w, rtol=1e-9, atol=1e-12)
    assert len(set(theirs_lr)) >= 3  # at least two reductions happened


@requires_torch
def test_where_scaling_is_not_torchs_lr_change():
    """Documented limits: the scale placed *before* Adam is normalised away; optax.rmsprop with
    momentum applies an injected lr before its momentum trace (torch after it), so injecting the lr
    differs from torch after a reduction, while scaling rmsprop's output matches torch."""
    import torch

    def torch_rmsprop():
        return torch_training(
            lambda p, lr: torch.optim.RMSprop(p, lr=lr, momentum=0.9, alpha=0.9, eps=1e-8), 0.01, "value"
        )

    theirs_w, _ = torch_training(OPTIMIZERS["Adam"][0], 0.3, "value")
    rms_w, _ = torch_rmsprop()
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        plateau = lrjax.reduce_lr_on_plateau(**PLATEAU)
        before, _ = lrjax_training(
            optax.chain(plateau.as_transform(0.3, accumulation_size=BATCHES), optax.adam(0.3)), "value"
        )
        after_rms, _ = lrjax_training(
            optax.chain(
                optax.rmsprop(0.01, decay=0.9, eps=1e-8, eps_in_sqrt=False, momentum=0.9),
                plateau.as_transform(0.01, accumulation_size=BATCHES),
            ),
            "value",
        )
        inject_rms, _ = lrjax_training(
            optax.inject_hyperparams(optax.rmsprop)(
                learning_rate=plateau.as_schedule(0.01, accumulation_size=BATCHES),
                decay=0.9,
                eps=1e-8,
                eps_in_sqrt=False,
                momentum=0.9,
            ),
            "value",
        )
    assert not np.allclose(before, theirs_w, rtol=1e-3)
    np.testing.assert_allclose(after_rms, rms_w, rtol=1e-8, atol=1e-12)
    assert not np.allclose(inject_rms, rms_w, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Flax NNX
# ---------------------------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("feed", ["value", "external"])
def test_flax_nnx_optimizer_training_loop_equals_torch(feed):
    """``nnx.Optimizer(model, tx, wrt=nnx.Param).update(model, grads, value=loss)`` with the plateau in
    ``optax.chain`` (or stepped by ``plateau_step(optimizer.opt_state, val_loss)``, in place): an
    nnx.Linear trained with Adam follows torch's Linear + Adam + ReduceLROnPlateau (float64)."""
    import torch
    from flax import nnx

    kernel0, bias0 = np.array([[0.4], [-0.2], [0.1]]), np.array([0.05])
    lin = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(kernel0.T))
        lin.bias.copy_(torch.tensor(bias0))
    opt = torch.optim.Adam(lin.parameters(), lr=0.2)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **PLATEAU)
    x, y, xv, yv = torch.tensor(X), torch.tensor(Y)[:, None], torch.tensor(XV), torch.tensor(YV)[:, None]
    theirs, theirs_lr = [], []
    for _ in range(EPOCHS):
        total = 0.0
        for b in range(BATCHES):
            theirs_lr.append(opt.param_groups[0]["lr"])
            opt.zero_grad()
            loss = torch.mean((lin(x[b::BATCHES]) - y[b::BATCHES]) ** 2)
            total += loss.item()
            loss.backward()
            opt.step()
        with torch.no_grad():
            val = float(torch.mean((lin(xv) - yv) ** 2))
        sched.step(total / BATCHES if feed == "value" else val)
        theirs.append(lin.weight.detach().numpy().T.copy())

    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        model = nnx.Linear(3, 1, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
        model.kernel.set_value(jnp.asarray(kernel0))
        model.bias.set_value(jnp.asarray(bias0))
        tx = optax.chain(
            optax.adam(0.2),
            lrjax.scale_by_plateau(0.2, **PLATEAU, accumulation_size=BATCHES if feed == "value" else None),
        )
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def train_step(model, optimizer, xb, yb):
            loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(xb) - yb) ** 2))(model)
            if feed == "value":
                optimizer.update(model, grads, value=loss)
            else:
                optimizer.update(model, grads)

        ours, ours_lr = [], []
        xj, yj = jnp.asarray(X), jnp.asarray(Y)[:, None]
        for _ in range(EPOCHS):
            for b in range(BATCHES):
                ours_lr.append(float(lrjax.plateau_lr(optimizer.opt_state)))
                train_step(model, optimizer, xj[b::BATCHES], yj[b::BATCHES])
            if feed == "external":
                val = jnp.mean((model(jnp.asarray(XV)) - jnp.asarray(YV)[:, None]) ** 2)
                assert lrjax.plateau_step(optimizer.opt_state, val) is optimizer.opt_state  # in place
            ours.append(np.asarray(model.kernel.get_value()))
    np.testing.assert_allclose(ours_lr, theirs_lr, rtol=1e-12)
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-9, atol=1e-12)
    assert len(set(theirs_lr)) >= 2


# ---------------------------------------------------------------------------------------------
# Warm-up then plateau, and a schedule times a plateau, in optax's shapes
# ---------------------------------------------------------------------------------------------

STEPS = STEPS_PER_EPOCH


def _lrjax_lrs(tx, feed):
    """The lr of every update (SGD with grads of 1): value=epoch loss on each of its updates
    (accumulation_size=STEPS: the mean is the loss), or plateau_step after each epoch."""
    params = jnp.zeros(())
    state, lrs = tx.init(params), []
    step = jax.jit(lambda s, v: tx.update(jnp.ones(()), s, params, **({"value": v} if feed == "value" else {})))
    for t in range(len(EPOCH_LOSSES) * STEPS):
        loss = EPOCH_LOSSES[t // STEPS]
        updates, state = step(state, jnp.asarray(loss, jnp.float64))
        lrs.append(-float(updates))
        if feed == "external" and (t + 1) % STEPS == 0:
            state = lrjax.plateau_step(state, loss)
    return np.array(lrs)


@requires_torch
@pytest.mark.parametrize("shape", ["transform", "schedule"])
@pytest.mark.parametrize("feed", ["value", "external"])
def test_warmup_then_plateau_in_optax_shapes_equals_torch(shape, feed):
    kw = {"factor": 0.5, "patience": 1, "cooldown": 1}
    milestone = 10
    theirs = torch_warmup_then_plateau(milestone, kw)
    with jax.enable_x64(True):
        sched = lrjax.sequential_plateau(
            lrjax.linear_lr(0.1, start_factor=0.1, total_iters=milestone), lrjax.reduce_lr_on_plateau(**kw), milestone
        )
        acc = STEPS if feed == "value" else None
        if shape == "transform":
            tx = optax.chain(optax.sgd(0.1), sched.as_transform(0.1, accumulation_size=acc))
        else:
            tx = optax.inject_hyperparams(optax.sgd)(learning_rate=sched.as_schedule(accumulation_size=acc))
        ours = _lrjax_lrs(tx, feed)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert min(theirs[milestone:]) < theirs[milestone] and theirs[0] < theirs[milestone]


@requires_torch
@pytest.mark.parametrize("shape", ["transform", "schedule"])
def test_chained_plateau_in_optax_shapes_equals_torch(shape):
    """torch: CosineAnnealingLR on one optimizer times the lr of a ReduceLROnPlateau started at 1.0."""
    kw = {"factor": 0.5, "patience": 1, "min_lr": 0.1}
    theirs, _ = torch_cosine_times_plateau(kw)
    with jax.enable_x64(True):
        sched = lrjax.chained_plateau(lrjax.cosine_annealing_lr(0.1, T_max=30), lrjax.reduce_lr_on_plateau(**kw))
        if shape == "transform":
            tx = optax.chain(optax.sgd(0.1), sched.as_transform(0.1, accumulation_size=STEPS))
        else:
            tx = optax.inject_hyperparams(optax.sgd)(learning_rate=sched.as_schedule(accumulation_size=STEPS))
        ours = _lrjax_lrs(tx, "value")
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# The injected hyperparameter, momentum beside it, plateau_step / plateau_lr
# ---------------------------------------------------------------------------------------------


def test_injected_lr_is_readable_and_momentum_cycles_beside_it():
    plateau = lrjax.reduce_lr_on_plateau(factor=0.5, patience=0)
    momentum = lrjax.cyclic_momentum(base_momentum=0.8, max_momentum=0.9, step_size_up=2)
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=plateau.as_schedule(0.1), momentum=momentum)
    assert isinstance(plateau.as_schedule(0.1), optax.schedules.StatefulSchedule)
    params = jnp.zeros(2)
    state = tx.init(params)
    step = jax.jit(lambda s, v: tx.update(jnp.ones(2), s, params, value=v)[1])
    lrs, moms = [], []
    for _ in range(6):
        state = step(state, 1.0)
        lrs.append(float(state.hyperparams["learning_rate"]))  # the lr of this update
        moms.append(float(state.hyperparams["momentum"]))
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.05, 0.025, 0.0125, 0.00625], rtol=1e-6)
    np.testing.assert_allclose(moms, [float(momentum(t)) for t in range(6)], rtol=1e-6)
    assert float(lrjax.plateau_lr(state)) == pytest.approx(0.003125)  # the lr of the next update


def test_plateau_step_refreshes_injected_lr_and_steps_every_plateau():
    p1 = lrjax.reduce_lr_on_plateau(factor=0.5, patience=0)
    p2 = lrjax.reduce_lr_on_plateau(factor=0.1, patience=0, min_lr=1e-3)
    tx = optax.multi_transform(
        {
            "a": optax.inject_hyperparams(optax.sgd)(learning_rate=p1.as_schedule(0.1, accumulation_size=None)),
            "b": optax.chain(optax.sgd(0.01), p2.as_transform(0.01, accumulation_size=None)),
        },
        {"x": "a", "y": "b"},
    )
    params = {"x": jnp.zeros(()), "y": jnp.zeros(())}
    state = tx.init(params)
    _, state = tx.update({"x": jnp.ones(()), "y": jnp.ones(())}, state, params)
    for _ in range(2):
        state = jax.jit(lrjax.plateau_step)(state, 1.0)
    a, b = state.inner_states["a"].inner_state, state.inner_states["b"].inner_state
    assert float(a.hyperparams["learning_rate"]) == pytest.approx(0.05)  # refreshed: the next update's lr
    assert float(lrjax.plateau_lr(a)) == pytest.approx(0.05)
    assert float(lrjax.plateau_lr(b)) == pytest.approx(1e-3)  # its own settings: factor 0.1, min_lr
    with pytest.raises(ValueError, match="found 2"):
        lrjax.plateau_lr(state)
    with pytest.raises(ValueError, match="found no lrjax plateau state"):
        lrjax.plateau_step(optax.adam(1e-3).init(params), 1.0)


def test_state_pytree_jit_scan_retracing_and_checkpoints(tmp_path, bits):
    import orbax.checkpoint as ocp
    from flax import serialization

    tx = optax.chain(optax.sgd(0.1), lrjax.scale_by_plateau(0.1, factor=0.5, patience=1, accumulation_size=2))
    params = jnp.zeros(3)

    traces = []

    @jax.jit
    def run(state, values):
        traces.append(1)

        def body(s, v):
            u, s = tx.update(jnp.ones(3), s, params, value=v)
            return s, -u[0]

        return jax.lax.scan(body, state, values)

    values = jnp.asarray([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5], lrjax._base.float_dtype())
    full, lrs = run(tx.init(params), values)
    again, _ = run(tx.init(params), values + 1)  # same types and shapes: no new trace
    assert len(traces) == 1
    eager, eager_lrs = tx.init(params), []
    for v in values:
        u, eager = tx.update(jnp.ones(3), eager, params, value=v)
        eager_lrs.append(float(-u[0]))
    np.testing.assert_allclose(lrs, eager_lrs, rtol=1e-6)
    assert sorted(set(np.round(np.asarray(lrs, np.float64), 6).tolist()), reverse=True) == [0.1, 0.05]
    assert type(full[1]) is type(tx.init(params)[1])  # the plateau's own state type survives jit and scan

    restored = serialization.from_bytes(tx.init(params), serialization.to_bytes(full))
    assert type(restored[1]) is type(full[1])
    chex.assert_trees_all_equal(restored, full)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(tmp_path / "state", full)
        ckptr.wait_until_finished()
        back = ckptr.restore(tmp_path / "state", jax.tree.map(ocp.utils.to_shape_dtype_struct, tx.init(params)))
    chex.assert_trees_all_equal(back, full)
    assert float(lrjax.plateau_lr(back)) == float(lrjax.plateau_lr(full))
    assert type(copy.deepcopy(full)[1]) is type(full[1]) and type(copy.copy(full[1])) is type(full[1])
    detached = pickle.loads(pickle.dumps(full[1]))
    with pytest.raises(ValueError, match="belongs to no plateau"):
        lrjax.plateau_step(detached, 1.0)


# ---------------------------------------------------------------------------------------------
# Misuse gets a clear error
# ---------------------------------------------------------------------------------------------


def test_the_state_machine_is_not_an_optax_object_and_says_what_to_use():
    plateau = lrjax.reduce_lr_on_plateau()
    params = {"w": jnp.zeros(2)}
    with pytest.raises(TypeError, match=r"In optax.chain use lrjax.scale_by_plateau\(base_lr"):
        optax.chain(optax.adam(1e-3), plateau).init(params)
    with pytest.raises(TypeError, match=r"optax.inject_hyperparams use plateau.as_schedule\(base_lr\)"):
        optax.inject_hyperparams(optax.adam)(learning_rate=plateau).init(params)
    with pytest.raises(TypeError, match="update\\(\\) takes a PlateauState"):
        plateau.update(params, 1.0, params, value=1.0)
    seq = lrjax.sequential_plateau(lrjax.constant_lr(0.1), plateau, 2)
    with pytest.raises(TypeError, match=r"\.as_transform\(base_lr\)"):
        optax.chain(optax.adam(1e-3), seq).init(params)
    with pytest.raises(TypeError, match="not an optax GradientTransformation or learning rate"):
        optax.adam(seq)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: lrjax.scale_by_plateau(0.0), ValueError, "base_lr must be one positive number"),
        (lambda: lrjax.scale_by_plateau([0.1, 0.2]), ValueError, "base_lr must be one positive number"),
        (lambda: lrjax.scale_by_plateau(0.1, factor=1.0), ValueError, "Factor should be < 1.0."),
        (
            lambda: lrjax.scale_by_plateau(0.1, accumulation_size=0),
            ValueError,
            "accumulation_size must be an integer >= 1 or None",
        ),
        (
            lambda: lrjax.scale_by_plateau(0.1, accumulation_size=2.5),
            ValueError,
            "accumulation_size must be an integer",
        ),
        (
            lambda: lrjax.reduce_lr_on_plateau(min_lr=[0.0, 0.1]).as_schedule(0.1),
            ValueError,
            "expected 1 min_lrs, got 2",
        ),
        (
            lambda: lrjax.chained_plateau(lrjax.step_lr([0.1, 0.2], 2), lrjax.reduce_lr_on_plateau()).as_transform(0.1),
            ValueError,
            "optax.multi_transform",
        ),
    ],
)
def test_construction_errors(call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        call()


def test_value_is_required_when_accumulating():
    tx = optax.chain(optax.sgd(0.1), lrjax.scale_by_plateau(0.1))
    state = tx.init(jnp.zeros(()))
    with pytest.raises(TypeError, match="pass value=<loss> to tx.update"):
        tx.update(jnp.ones(()), state, jnp.zeros(()))
    with pytest.raises(TypeError, match="value must be a real number"):
        tx.update(jnp.ones(()), state, jnp.zeros(()), value="0.5")
    with pytest.raises(ValueError, match="value must be a scalar"):
        tx.update(jnp.ones(()), state, jnp.zeros(()), value=jnp.ones(3))


# ---------------------------------------------------------------------------------------------
# optax.contrib.reduce_on_plateau is not torch's
# ---------------------------------------------------------------------------------------------


@requires_torch
def test_optax_contrib_reduce_on_plateau_differs_from_torch_in_chain():
    """The same chain, the same values (one per update, accumulation_size=1): torch and lrjax keep the
    lr for patience + 1 bad values and apply a reduction from the next update; optax.contrib
    reduces when the count of bad values *reaches* patience, and scales the very update whose value
    triggered it, so its first reduction comes two updates earlier."""
    from optax import contrib

    patience, values = 2, [1.0, 0.5] + [0.5] * 10
    theirs = torch_update_lrs({"factor": 0.5, "patience": patience}, 1.0, [[v] for v in values])[:, 0]
    with jax.numpy_dtype_promotion("standard"):  # optax.contrib mixes int32 and float32
        ours = lrjax_update_lrs({"factor": 0.5, "patience": patience}, 1.0, [[v] for v in values])[:, 0]
        tx = optax.chain(optax.sgd(1.0), contrib.reduce_on_plateau(factor=0.5, patience=patience, rtol=1e-4))
        state, contrib_lrs = tx.init(jnp.zeros(())), []
        for v in values:
            u, state = tx.update(jnp.ones(()), state, jnp.zeros(()), value=jnp.asarray(v))
            contrib_lrs.append(-float(u))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)

    def first_drop(lrs):
        return next(i for i in range(1, len(lrs)) if lrs[i] < lrs[i - 1])

    t, c = first_drop(theirs), first_drop(contrib_lrs)
    assert t == 1 + (patience + 1) + 1  # best at update 1, patience + 1 bad values, applied from the next
    assert c == t - 2
    assert set(np.diff([i for i in range(1, 12) if theirs[i] < theirs[i - 1]]).tolist()) == {patience + 1}
    assert set(np.diff([i for i in range(1, 12) if contrib_lrs[i] < contrib_lrs[i - 1]]).tolist()) == {patience}
    # No mode="max", no threshold_mode, no eps: a maximised metric only counts as bad for optax.contrib.
    accuracy = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert set(torch_update_lrs({"mode": "max", "patience": 0}, 1.0, [[a] for a in accuracy])[:, 0]) == {1.0}
