"""lrjax schedules as optax schedules: inject_hyperparams, adam(schedule), join_schedules, lax.scan,
vmap over hyperparameters, one trace whatever the step, per-group lrs, and per-epoch stepping."""

from __future__ import annotations

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import requires_torch

import lrjax

# optax's own code is not written for strict promotion; these tests exercise optax, not lrjax.
pytestmark = pytest.mark.usefixtures("standard_promotion")


@pytest.fixture
def standard_promotion():
    with jax.numpy_dtype_promotion("standard"):
        yield


SCHEDULES = {
    "lambda_lr": lambda: lrjax.lambda_lr(0.1, lambda t: 0.9**t),
    "multiplicative_lr": lambda: lrjax.multiplicative_lr(0.1, lambda t: 0.9),
    "step_lr": lambda: lrjax.step_lr(0.1, 3, 0.5),
    "multi_step_lr": lambda: lrjax.multi_step_lr(0.1, [2, 5]),
    "constant_lr": lambda: lrjax.constant_lr(0.1, 0.5, 4),
    "linear_lr": lambda: lrjax.linear_lr(0.1, 0.1, 1.0, 6),
    "exponential_lr": lambda: lrjax.exponential_lr(0.1, 0.9),
    "polynomial_lr": lambda: lrjax.polynomial_lr(0.1, 8, 2.0),
    "cosine_annealing_lr": lambda: lrjax.cosine_annealing_lr(0.1, 5, 0.01),
    "cosine_annealing_warm_restarts": lambda: lrjax.cosine_annealing_warm_restarts(0.1, 3, 2),
    "cyclic_lr": lambda: lrjax.cyclic_lr(0.01, 0.1, 3),
    "cyclic_momentum": lambda: lrjax.cyclic_momentum(step_size_up=3),
    "one_cycle_lr": lambda: lrjax.one_cycle_lr(0.1, total_steps=20),
    "one_cycle_momentum": lambda: lrjax.one_cycle_momentum(total_steps=20),
    "chained_scheduler": lambda: lrjax.chained_scheduler(
        [lrjax.linear_lr(0.1, 0.1, total_iters=4), lrjax.cosine_annealing_lr(0.1, 10, eta_min=0.01)]
    ),
    "sequential_lr": lambda: lrjax.sequential_lr(
        [lrjax.linear_lr(0.1, 0.1, total_iters=4), lrjax.cosine_annealing_lr(0.1, 10)], [4]
    ),
    "per_epoch": lambda: lrjax.per_epoch(lrjax.step_lr(0.1, 2), steps_per_epoch=3),
}

ALL = pytest.mark.parametrize("name", list(SCHEDULES))


def _quadratic():
    params = {"w": jnp.asarray([1.0, -2.0, 3.0])}

    def loss(p):
        return 0.5 * jnp.sum(p["w"] ** 2)

    return params, loss


@ALL
def test_inject_hyperparams_sgd(name):
    """optax.inject_hyperparams evaluates schedule(count) and the update is -lr * grad."""
    schedule = SCHEDULES[name]()
    params, loss = _quadratic()
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, updates, grads

    for t in range(12):
        params, state, updates, grads = step(params, state)
        lr = schedule(t)
        # inject_hyperparams records the lr it used for update t, readable for logging:
        np.testing.assert_allclose(state.hyperparams["learning_rate"], lr, rtol=1e-6)
        np.testing.assert_allclose(updates["w"], -lr * grads["w"], rtol=1e-6)


@ALL
def test_adam_takes_the_schedule_directly(name):
    schedule = SCHEDULES[name]()
    params, loss = _quadratic()
    ours = optax.adam(schedule)
    reference = optax.chain(optax.scale_by_adam(), optax.scale_by_learning_rate(schedule))
    s1, s2 = ours.init(params), reference.init(params)
    for _ in range(6):
        g = jax.grad(loss)(params)
        u1, s1 = ours.update(g, s1, params)
        u2, s2 = reference.update(g, s2, params)
        chex.assert_trees_all_close(u1, u2, rtol=1e-6)
        params = optax.apply_updates(params, u1)


def test_join_schedules_and_sequential_lr_agree():
    warmup = lrjax.linear_lr(0.1, start_factor=0.01, total_iters=10)
    decay = lrjax.cosine_annealing_lr(0.1, T_max=90, eta_min=1e-4)
    joined = optax.join_schedules([warmup, decay], [10])
    sequence = lrjax.sequential_lr([warmup, decay], [10])
    steps = jnp.arange(150)
    np.testing.assert_array_equal(jax.vmap(joined)(steps), jax.vmap(sequence)(steps))


@ALL
def test_inside_lax_scan(name):
    schedule = SCHEDULES[name]()

    def body(carry, t):
        return carry + schedule(t), schedule(t)

    total, values = jax.lax.scan(body, jnp.zeros(()), jnp.arange(30))
    np.testing.assert_allclose(values, jax.vmap(schedule)(jnp.arange(30)), rtol=1e-6)
    np.testing.assert_allclose(total, jnp.sum(values), rtol=1e-5)


@ALL
def test_one_trace_whatever_the_step(name):
    """An int32 step counter (as optax's) never retraces the schedule, whatever its value."""
    chex.clear_trace_counter()
    schedule = SCHEDULES[name]()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def lr_at(step):
        return schedule(step)

    for t in [0, 1, 7, 100, 12345, 2**31 - 1]:
        lr_at(jnp.asarray(t, dtype=jnp.int32))


def test_hyperparameters_as_arrays_no_recompile_or_vmapped():
    """Float hyperparameters may be JAX arrays: change them without retracing, or vmap over them."""
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def lr(base_lr, gamma, eta_min, max_lr, step):
        return (
            lrjax.step_lr(base_lr, 3, gamma)(step),
            lrjax.exponential_lr(base_lr, gamma)(step),
            lrjax.cosine_annealing_lr(base_lr, 10, eta_min)(step),
            lrjax.cyclic_lr(base_lr, max_lr, 4)(step),
            lrjax.one_cycle_lr(max_lr, total_steps=50)(step),
            lrjax.linear_lr(base_lr, gamma, 1.0, 8)(step),
            lrjax.polynomial_lr(base_lr, 10, gamma)(step),
        )

    for base, gamma in [(0.1, 0.5), (0.2, 0.9), (0.05, 0.7)]:
        args = [jnp.asarray(x, jnp.float32) for x in (base, gamma, 0.001, 1.0)]
        got = lr(*args, jnp.asarray(6, jnp.int32))
        want = (
            lrjax.step_lr(base, 3, gamma)(6),
            lrjax.exponential_lr(base, gamma)(6),
            lrjax.cosine_annealing_lr(base, 10, 0.001)(6),
            lrjax.cyclic_lr(base, 1.0, 4)(6),
            lrjax.one_cycle_lr(1.0, total_steps=50)(6),
            lrjax.linear_lr(base, gamma, 1.0, 8)(6),
            lrjax.polynomial_lr(base, 10, gamma)(6),
        )
        chex.assert_trees_all_close(got, want, rtol=1e-6)

    gammas = jnp.asarray([0.5, 0.8, 0.9, 0.99])
    batched = jax.vmap(lambda g: lrjax.exponential_lr(0.1, g)(10))(gammas)
    np.testing.assert_allclose(batched, [float(lrjax.exponential_lr(0.1, float(g))(10)) for g in gammas], rtol=1e-6)
    bases = jnp.asarray([0.1, 0.2])
    grid = jax.vmap(lambda b: jax.vmap(lrjax.cosine_annealing_lr(b, 5))(jnp.arange(8)))(bases)
    assert grid.shape == (2, 8)


def test_parameter_groups_drive_multi_transform():
    """One value per parameter group: schedule(t) has shape (G,), group g uses schedule(t)[g]."""
    schedule = lrjax.step_lr(jnp.asarray([0.1, 0.01]), step_size=2, gamma=0.5)
    assert schedule(0).shape == (2,)
    params = {"body": jnp.ones(3), "head": jnp.ones(2)}
    labels = {"body": "body", "head": "head"}
    opt = optax.multi_transform(
        {"body": optax.sgd(lambda t: schedule(t)[0]), "head": optax.sgd(lambda t: schedule(t)[1])}, labels
    )
    state = opt.init(params)
    grads = {"body": jnp.ones(3), "head": jnp.ones(2)}
    for t in range(5):
        updates, state = opt.update(grads, state, params)
        np.testing.assert_allclose(updates["body"], -schedule(t)[0] * jnp.ones(3), rtol=1e-6)
        np.testing.assert_allclose(updates["head"], -schedule(t)[1] * jnp.ones(2), rtol=1e-6)


def test_momentum_schedules_drive_sgd_and_adam():
    lr = lrjax.one_cycle_lr(0.1, total_steps=30)
    momentum = lrjax.one_cycle_momentum(total_steps=30)
    sgd = optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=momentum)
    adam = optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=momentum)
    params = {"w": jnp.ones(2)}
    s1, s2 = sgd.init(params), adam.init(params)
    for t in range(8):
        _, s1 = sgd.update(params, s1)
        _, s2 = adam.update(params, s2)
        np.testing.assert_allclose(s1.hyperparams["momentum"], momentum(t), rtol=1e-6)
        np.testing.assert_allclose(s2.hyperparams["b1"], momentum(t), rtol=1e-6)


# -- per-epoch stepping ---------------------------------------------------------------------------


def _torch_used_lrs(make, epochs, iters, fractional):
    """The lr each optimizer update uses in torch's loops (recorded before optimizer.step())."""
    import torch
    from torch.optim import lr_scheduler as L

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    used = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = make(L, opt)
        for epoch in range(epochs):
            for i in range(iters):
                used.append(opt.param_groups[0]["lr"])
                opt.step()
                if fractional:
                    s.step(epoch + i / iters)
            if not fractional:
                s.step()
    return np.asarray(used)


@requires_torch
def test_per_epoch_matches_torch_epoch_loop():
    epochs, iters = 7, 5
    expected = _torch_used_lrs(lambda L, o: L.StepLR(o, step_size=2, gamma=0.5), epochs, iters, fractional=False)
    schedule = lrjax.per_epoch(lrjax.step_lr(0.1, 2, 0.5), steps_per_epoch=iters)
    with jax.enable_x64(True):
        got = np.asarray(jax.vmap(schedule)(jnp.arange(epochs * iters)))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@requires_torch
def test_per_epoch_fractional_matches_torch_warm_restarts_pattern():
    """torch's documented loop: scheduler.step(epoch + i / iters) after every update."""
    epochs, iters = 9, 4
    expected = _torch_used_lrs(
        lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2, eta_min=0.001), epochs, iters, fractional=True
    )
    schedule = lrjax.per_epoch(lrjax.cosine_annealing_warm_restarts(0.1, 2, 2, 0.001), iters, fractional=True)
    with jax.enable_x64(True):
        got = np.asarray(jax.vmap(schedule)(jnp.arange(epochs * iters)))
    np.testing.assert_allclose(got, expected, rtol=1e-11)


def test_per_epoch_with_inject_hyperparams():
    schedule = lrjax.per_epoch(lrjax.step_lr(1e-3, step_size=2, gamma=0.1), steps_per_epoch=10)
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=schedule)
    params = {"w": jnp.ones(2)}
    state = opt.init(params)
    seen = []
    for _ in range(45):
        _, state = opt.update(params, state)
        seen.append(float(state.hyperparams["learning_rate"]))
    np.testing.assert_allclose(seen[:20], 1e-3, rtol=1e-6)
    np.testing.assert_allclose(seen[20:40], 1e-4, rtol=1e-6)
    np.testing.assert_allclose(seen[40:], 1e-5, rtol=1e-6)
