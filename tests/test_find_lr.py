"""``lrjax.find_lr``: the LR range test on problems whose stable learning rates are known."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
import pytest

import lrjax

matplotlib.use("Agg")


def least_squares(seed=0, n=256, d=12, bits=32):
    """``0.5 * mean((A w - y)^2)``: Hessian ``A^T A / n``, so plain SGD is stable iff lr < 2 / L."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d)) * np.linspace(0.3, 2.0, d)
    y = a @ rng.normal(size=d) + 0.1 * rng.normal(size=n)  # noisy: the optimum loss is positive
    largest = float(np.linalg.eigvalsh(a.T @ a / n).max())
    dtype = jnp.float64 if bits == 64 else jnp.float32
    a_j, y_j = jnp.asarray(a, dtype), jnp.asarray(y, dtype)

    def loss_fn(w, batch):
        del batch  # full batch: the loss is deterministic
        r = a_j @ w - y_j
        return 0.5 * jnp.mean(r * r)

    return loss_fn, jnp.zeros(d, dtype), 2.0 / largest


def test_least_squares_diverges_past_2_over_L_and_suggests_below(bits):
    loss_fn, w0, critical = least_squares(bits=bits)
    result = lrjax.find_lr(loss_fn, w0, jnp.zeros((300,)), start_lr=1e-5, end_lr=100.0)
    assert result.diverged and result.num_steps_run < 300
    assert result.diverged_lr > critical
    # Below 2 / L every update lowers the loss: the first step whose update raised it used lr > 2 / L.
    rises = np.flatnonzero(result.losses[1:] > result.losses[:-1] * (1 + 1e-4))
    assert rises.size and result.lrs[rises[0]] > critical
    assert 1e-5 < result.suggested_lr < critical
    assert result.min_loss_lr < result.diverged_lr
    # The curve stops at the diverging step: everything before it is finite.
    assert np.all(np.isfinite(result.smoothed_losses[:-1]))
    assert len(result.lrs) == len(result.losses) == len(result.smoothed_losses) == result.num_steps_run


@pytest.mark.parametrize(
    "optimizer", [optax.adam, functools.partial(optax.sgd, momentum=0.9)], ids=["adam", "sgd-momentum"]
)
@jax.numpy_dtype_promotion("standard")  # optax.adam's bias correction mixes int32 and float
def test_other_optimizers_also_stop_and_suggest_a_working_lr(optimizer):
    loss_fn, w0, _ = least_squares()
    result = lrjax.find_lr(loss_fn, w0, jnp.zeros((200,)), optimizer=optimizer, start_lr=1e-6, end_lr=1e3)
    assert result.diverged
    tx = optimizer(learning_rate=result.suggested_lr)

    @jax.jit
    def train(w):
        def step(carry, _):
            w, state = carry
            updates, state = tx.update(jax.grad(loss_fn)(w, None), state, w)
            return (optax.apply_updates(w, updates), state), None

        return jax.lax.scan(step, (w, tx.init(w)), length=50)[0][0]

    assert loss_fn(train(w0), None) < 0.5 * loss_fn(w0, None)


def test_the_recorded_lr_is_the_lr_the_optimizer_used():
    # A linear loss c + w.b: each SGD update lowers it by exactly lr_i |b|^2.
    def loss_fn(w, batch):
        b = jnp.asarray([0.6, 0.8], w.dtype)  # |b| = 1
        return 100.0 + jnp.dot(w, b) + 0.0 * batch

    with jax.enable_x64(True):
        result = lrjax.find_lr(loss_fn, jnp.zeros(2), jnp.zeros((40,)), start_lr=1e-3, end_lr=1.0, diverge_factor=None)
        np.testing.assert_allclose(result.losses[:-1] - result.losses[1:], result.lrs[:-1], rtol=1e-9)
        expected = 1e-3 * (1.0 / 1e-3) ** (np.arange(40) / 39)
        np.testing.assert_allclose(result.lrs, expected, rtol=1e-12)
    assert not result.diverged and result.num_steps_run == 40 and result.diverged_lr is None


def test_smoothing_is_the_bias_corrected_ema():
    loss_fn, w0, _ = least_squares()
    result = lrjax.find_lr(loss_fn, w0, jnp.zeros((60,)), start_lr=1e-4, end_lr=1e-2, smooth=0.9)
    avg, expected = 0.0, []
    for i, loss in enumerate(result.losses):
        avg = 0.9 * avg + 0.1 * loss
        expected.append(avg / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(result.smoothed_losses, expected, rtol=1e-5)
    raw = lrjax.find_lr(loss_fn, w0, jnp.zeros((60,)), start_lr=1e-4, end_lr=1e-2, smooth=0.0)
    np.testing.assert_allclose(raw.smoothed_losses, raw.losses, rtol=1e-6)


def test_stops_at_the_first_step_past_the_divergence_factor():
    loss_fn, w0, _ = least_squares()
    result = lrjax.find_lr(loss_fn, w0, jnp.zeros((300,)), start_lr=1e-5, end_lr=100.0, diverge_factor=2.0)
    best = np.minimum.accumulate(result.smoothed_losses)
    assert np.all(result.smoothed_losses[:-1] <= 2.0 * best[:-1])
    assert result.smoothed_losses[-1] > 2.0 * best[-1]


def test_stops_on_a_non_finite_loss():
    def loss_fn(w, batch):  # NaN once w passes 1
        return jnp.where(w > 1.0, jnp.nan, (w - 3.0) ** 2 + batch)

    result = lrjax.find_lr(loss_fn, jnp.zeros(()), jnp.zeros((100,)), start_lr=1e-4, end_lr=1.0, diverge_factor=None)
    assert result.diverged and result.num_steps_run < 100
    assert np.isnan(result.losses[-1]) and np.all(np.isfinite(result.losses[:-1]))


def test_suggestion_is_the_steepest_descent_of_the_smoothed_loss():
    loss_fn, w0, _ = least_squares()
    result = lrjax.find_lr(loss_fn, w0, jnp.zeros((200,)), start_lr=1e-5, end_lr=100.0)
    inner = slice(10, result.num_steps_run - 1)
    slope = np.gradient(result.smoothed_losses[inner], np.log(result.lrs[inner]))
    assert result.suggested_lr == result.lrs[inner][np.argmin(slope)]
    assert result.suggest(skip_start=10, skip_end=1) == result.suggested_lr
    assert result.suggest(skip_start=result.num_steps_run) is None


def test_inputs_are_untouched():
    loss_fn, _, _ = least_squares()
    params = {"w": np.linspace(0.0, 1.0, 12).astype(np.float32)}
    batches = np.zeros((50, 3), np.float32)
    before = (params["w"].copy(), batches.copy())
    jax_params = jax.tree.map(jnp.asarray, params)
    lrjax.find_lr(lambda p, b: loss_fn(p["w"], b), params, batches, start_lr=1e-4, end_lr=10.0)
    lrjax.find_lr(lambda p, b: loss_fn(p["w"], b), jax_params, batches, start_lr=1e-4, end_lr=10.0)
    np.testing.assert_array_equal(params["w"], before[0])
    np.testing.assert_array_equal(batches, before[1])
    np.testing.assert_array_equal(np.asarray(jax_params["w"]), before[0])
    assert not jax_params["w"].is_deleted()


def test_one_compilation_for_repeated_sweeps():
    loss_fn, w0, _ = least_squares()
    traces = []

    def counted(w, batch):
        traces.append(1)
        return loss_fn(w, batch)

    batches = jnp.zeros((80,))
    first = lrjax.find_lr(counted, w0, batches, start_lr=1e-5, end_lr=100.0)
    second = lrjax.find_lr(counted, w0, batches, start_lr=1e-4, end_lr=10.0, smooth=0.9, diverge_factor=3.0)
    assert len(traces) == 1  # the scan body is traced once; start/end/smooth/factor are traced values
    assert first.lrs[0] != second.lrs[0]


def test_unhashable_loss_fn():
    loss_fn, w0, _ = least_squares()

    class Loss:  # a dataclass-like callable with __eq__ and no __hash__
        __hash__ = None

        def __call__(self, w, b):
            return loss_fn(w, b)

    result = lrjax.find_lr(Loss(), w0, jnp.zeros((30,)), start_lr=1e-5, end_lr=100.0)
    expected = lrjax.find_lr(loss_fn, w0, jnp.zeros((30,)), start_lr=1e-5, end_lr=100.0)
    np.testing.assert_array_equal(result.losses, expected.losses)


def test_has_aux():
    loss_fn, w0, _ = least_squares()
    plain = lrjax.find_lr(loss_fn, w0, jnp.zeros((50,)), start_lr=1e-5, end_lr=100.0)
    with_aux = lrjax.find_lr(
        lambda w, b: (loss_fn(w, b), {"logits": w}), w0, jnp.zeros((50,)), start_lr=1e-5, end_lr=100.0, has_aux=True
    )
    np.testing.assert_array_equal(with_aux.losses, plain.losses)


def test_plot_draws_the_smoothed_curve():
    loss_fn, w0, _ = least_squares()
    result = lrjax.find_lr(loss_fn, w0, jnp.zeros((120,)), start_lr=1e-5, end_lr=100.0)
    fig = result.plot()
    ax = fig.axes[0]
    line = ax.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), result.lrs)
    np.testing.assert_array_equal(line.get_ydata(), result.smoothed_losses)
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("suggested" in t for t in labels) and any("diverged" in t for t in labels)
    assert lrjax.plot_lr_find(result).axes[0].get_lines()[0].get_label() == "smoothed loss"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"start_lr": 0.0}, "start_lr"),
        ({"start_lr": -1e-3}, "start_lr"),
        ({"end_lr": float("inf")}, "end_lr"),
        ({"start_lr": 1.0, "end_lr": 0.1}, "start_lr must be below end_lr"),
        ({"smooth": 1.0}, "smooth"),
        ({"smooth": -0.1}, "smooth"),
        ({"diverge_factor": 1.0}, "diverge_factor"),
        ({"num_steps": 20}, "num_steps=20 but batches have a leading axis of 10"),
        ({"optimizer": optax.sgd(0.1)}, "not optax.adam"),
    ],
)
def test_validation(kwargs, match):
    loss_fn, w0, _ = least_squares()
    with pytest.raises(ValueError, match=match):
        lrjax.find_lr(loss_fn, w0, jnp.zeros((10,)), **kwargs)


def test_validation_of_batches():
    loss_fn, w0, _ = least_squares()
    with pytest.raises(ValueError, match="same leading axis"):
        lrjax.find_lr(loss_fn, w0, {"x": jnp.zeros((10, 2)), "y": jnp.zeros((9,))})
    with pytest.raises(ValueError, match="no leaves"):
        lrjax.find_lr(loss_fn, w0, {})
    with pytest.raises(ValueError, match="num_steps must be an integer >= 2"):
        lrjax.find_lr(loss_fn, w0, jnp.zeros((1,)))
