"""The learning-rate range test (Smith, 2015): ``find_lr``, in one jitted ``lax.scan``."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _base, _validate
from lrjax._step import exponential_lr


class FindLRResult(NamedTuple):
    """The curve of an LR range test, up to the step where the loss diverged.

    ``lrs[i]`` is the learning rate of step ``i``'s update and ``losses[i]`` the loss of step
    ``i``'s batch computed *before* that update (the convention of fastai's ``lr_find`` and
    Lightning's ``LearningRateFinder``), so ``losses[i]`` shows the effect of ``lrs[:i]``.
    """

    lrs: np.ndarray  # shape=(num_steps_run,), float64
    losses: np.ndarray  # shape=(num_steps_run,), float64; raw loss_fn values
    smoothed_losses: np.ndarray  # shape=(num_steps_run,), float64; bias-corrected EMA of losses
    suggested_lr: float | None  # see find_lr's docstring; None if the curve is too short
    num_steps_run: int  # steps run before stopping (the diverging step included)
    diverged: bool  # whether the sweep stopped on divergence before its last step

    @property
    def diverged_lr(self) -> float | None:
        """The learning rate of the step at which the loss diverged (``None`` if it did not)."""
        return float(self.lrs[-1]) if self.diverged else None

    @property
    def min_loss_lr(self) -> float:
        """The learning rate at the minimum of the smoothed loss."""
        return float(self.lrs[int(np.nanargmin(self.smoothed_losses))])

    def suggest(self, skip_start: int = 10, skip_end: int = 1) -> float | None:
        """The rule behind ``suggested_lr``, with its skips adjustable; see :func:`find_lr`."""
        return _suggest(self.lrs, self.smoothed_losses, skip_start, skip_end)

    def plot(self, ax: Any = None, *, title: str | None = None, raw: bool = True):
        """Plots the curve; see :func:`plot_lr_find`."""
        return plot_lr_find(self, ax=ax, title=title, raw=raw)


def _suggest(lrs: np.ndarray, smoothed: np.ndarray, skip_start: int, skip_end: int) -> float | None:
    """The lr of the steepest descent of the smoothed loss against log(lr), inside the skipped range."""
    skip_start = _validate.integer(
        skip_start,
        "skip_start",
        minimum=0,
        strict_type=True,
        message=f"skip_start must be an integer >= 0, got {skip_start=}",
    )
    skip_end = _validate.integer(
        skip_end, "skip_end", minimum=0, strict_type=True, message=f"skip_end must be an integer >= 0, got {skip_end=}"
    )
    stop = len(smoothed) - skip_end
    if stop - skip_start < 3:
        return None
    log_lr = np.log(lrs[skip_start:stop])
    loss = smoothed[skip_start:stop]
    finite = np.isfinite(loss)
    if finite.sum() < 3:
        return None
    slope = np.gradient(loss[finite], log_lr[finite])
    return float(lrs[skip_start:stop][finite][int(np.argmin(slope))])


class _Carry(NamedTuple):
    params: Any
    opt_state: Any
    avg: jax.Array  # shape=(), float: the EMA of the loss, not yet bias-corrected
    decay_power: jax.Array  # shape=(), float: smooth ** (steps run)
    best: jax.Array  # shape=(), float: the lowest smoothed loss so far
    stopped: jax.Array  # shape=(), bool: the loss has diverged; no more updates


def _sweep(params, batches, start_lr, end_lr, smooth, diverge_factor, *, loss_fn, optimizer, num_steps, has_aux):
    dtype = _base.float_dtype()
    # lr_i = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1)), the optimizer's count being i.
    gamma = jnp.exp((jnp.log(end_lr) - jnp.log(start_lr)) / (num_steps - 1))
    schedule = exponential_lr(start_lr, gamma=gamma)
    tx = optimizer(learning_rate=schedule)
    value_and_grad = jax.value_and_grad(loss_fn, has_aux=has_aux)

    def active(carry: _Carry, step, batch):
        loss, grads = value_and_grad(carry.params, batch)
        if has_aux:
            loss = loss[0]
        loss = jnp.asarray(loss).astype(dtype)
        avg = smooth * carry.avg + (1 - smooth) * loss
        decay_power = carry.decay_power * smooth
        smoothed = avg / (1 - decay_power)
        best = jnp.minimum(carry.best, smoothed)
        diverged = ~jnp.isfinite(loss) | ~jnp.isfinite(smoothed)
        if diverge_factor is not None:
            diverged = diverged | (smoothed > diverge_factor * best)
        updates, opt_state = tx.update(grads, carry.opt_state, carry.params)
        new_params = optax.apply_updates(carry.params, updates)
        # After divergence the parameters and optimizer state stay as they were.
        keep = lambda old, new: jnp.where(diverged, old, new)  # noqa: E731
        carry = _Carry(
            jax.tree.map(keep, carry.params, new_params),
            jax.tree.map(keep, carry.opt_state, opt_state),
            avg,
            decay_power,
            best,
            diverged,
        )
        return carry, (loss, smoothed, jnp.asarray(True))

    def idle(carry: _Carry, step, batch):
        nan = jnp.full((), jnp.nan, dtype)
        return carry, (nan, nan, jnp.asarray(False))

    def body(carry: _Carry, xs):
        step, batch = xs
        carry, (loss, smoothed, ran) = jax.lax.cond(carry.stopped, idle, active, carry, step, batch)
        return carry, (schedule(step), loss, smoothed, ran)

    zero = jnp.zeros((), dtype)
    init = _Carry(params, tx.init(params), zero, jnp.ones((), dtype), jnp.full((), jnp.inf, dtype), jnp.asarray(False))
    steps = jnp.arange(num_steps, dtype=jnp.int32)
    final, (lrs, losses, smoothed, ran) = jax.lax.scan(body, init, (steps, batches))
    return lrs, losses, smoothed, ran, final.stopped


_STATIC = ("loss_fn", "optimizer", "num_steps", "has_aux")
_sweep_jit = jax.jit(_sweep, static_argnames=_STATIC)


def _hashable(*xs: Any) -> bool:
    try:
        for x in xs:
            hash(x)
    except TypeError:
        return False
    return True


def find_lr(
    loss_fn: Callable[[Any, Any], jax.Array],
    params: Any,
    batches: Any,
    *,
    optimizer: Callable[..., optax.GradientTransformation] = optax.sgd,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int | None = None,
    smooth: float = 0.98,
    diverge_factor: float | None = 4.0,
    skip_start: int = 10,
    skip_end: int = 1,
    has_aux: bool = False,
) -> FindLRResult:
    r"""The learning-rate range test: train briefly while the lr grows exponentially, watch the loss.

    Smith's LR range test (`Cyclical Learning Rates for Training Neural Networks
    <https://arxiv.org/abs/1506.01186>`_, section 3.3), as fastai's ``lr_find`` and Lightning's
    ``LearningRateFinder`` run it. Step ``i`` of ``num_steps`` evaluates ``loss_fn(params, batch_i)``
    and its gradient, then updates the parameters with

    .. math:: \eta_i = \eta_{start} \left(\frac{\eta_{end}}{\eta_{start}}\right)^{i / (n - 1)}

    (``lrjax.exponential_lr`` as the optimizer's schedule). The loss is smoothed with a
    bias-corrected exponential moving average, :math:`\bar\ell_i = a_i / (1 - \beta^{i+1})`,
    :math:`a_i = \beta a_{i-1} + (1 - \beta)\ell_i`. The sweep stops at the first step whose loss
    is not finite or whose smoothed loss exceeds ``diverge_factor`` times the lowest smoothed loss so
    far (fastai's rule): from then on the parameters are frozen and the remaining steps skip their
    computation. All of it runs in **one** jitted ``lax.scan`` (compiled once per ``loss_fn``,
    ``optimizer``, shapes; ``start_lr``, ``end_lr``, ``smooth`` and ``diverge_factor`` are traced).

    **Suggested lr**: the lr where the smoothed loss falls fastest, i.e. the minimum of
    :math:`d\bar\ell / d\log\eta` (numpy.gradient), ignoring the first ``skip_start`` and the
    last ``skip_end`` steps run. This is Lightning's ``LearningRateFinder.suggestion()``
    (``skip_begin=10, skip_end=1``) and fastai's ``steep`` suggestion. The lr at the minimum of the
    smoothed loss is ``result.min_loss_lr`` (fastai's older rule suggests a tenth of it).

    The caller's values are never touched: ``params`` are read, a fresh optimizer state is built
    with ``optimizer(learning_rate=...).init(params)``, and nothing is donated, so a trainer can run
    the test and then start training from its own, unchanged state.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar loss`` (positive, as a training loss is),
            differentiable in ``params`` and written in JAX (``-> (loss, aux)`` with ``has_aux``).
        params: a pytree of arrays (for Flax NNX: ``nnx.split(model)`` and merge inside
            ``loss_fn``).
        batches: a pytree whose leaves all have a leading axis of length ``num_steps``: batch
            ``i`` is ``jax.tree.map(lambda x: x[i], batches)``.
        optimizer: a function of ``learning_rate`` returning an optax GradientTransformation:
            ``optax.sgd``, ``optax.adam``, ``functools.partial(optax.sgd, momentum=0.9)``.
        start_lr, end_lr: the range of the sweep, ``0 < start_lr < end_lr``.
        num_steps: the number of steps; must equal the leading axis of ``batches`` (default: that
            length). At least 2.
        smooth: the EMA coefficient ``beta`` in ``[0, 1)`` (0: no smoothing).
        diverge_factor: stop when the smoothed loss exceeds this multiple of its minimum; ``> 1``, or
            ``None`` to stop only on a non-finite loss.
        skip_start, skip_end: steps left out at the ends of the curve when suggesting an lr.
        has_aux: ``loss_fn`` returns ``(loss, aux)`` (as for ``jax.value_and_grad``); aux is dropped.

    Returns:
        A :class:`FindLRResult`: ``lrs``, ``losses``, ``smoothed_losses`` for the steps run (up to
        and including the diverging step), ``suggested_lr``, ``num_steps_run``, ``diverged``;
        ``result.diverged_lr``, ``result.min_loss_lr``, ``result.plot()``.

    Raises:
        ValueError: for ``start_lr``/``end_lr`` not finite and ``0 < start_lr < end_lr``, ``smooth``
            outside ``[0, 1)``, ``diverge_factor <= 1``, ``batches`` without leaves or whose leaves
            disagree on the leading axis, ``num_steps`` different from it or ``< 2``, an
            ``optimizer`` that is already a GradientTransformation.

    Examples:
        >>> import jax.numpy as jnp, lrjax
        >>> # loss 0.5 (w - b)^2 for a target b per step: the Hessian is 1, SGD is stable for lr < 2
        >>> loss_fn = lambda w, b: 0.5 * (w - b) ** 2
        >>> targets = jnp.linspace(2.0, 4.0, 100)  # one batch (here: one target) per step
        >>> result = lrjax.find_lr(loss_fn, jnp.zeros(()), targets, start_lr=1e-3, end_lr=100.0)
        >>> result.diverged, result.diverged_lr > 2.0, result.suggested_lr < 2.0
        (True, True, True)
        >>> fig = result.plot()  # doctest: +SKIP
    """
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a function loss_fn(params, batch) -> scalar, got {loss_fn!r}")
    if isinstance(optimizer, optax.GradientTransformation) or not callable(optimizer):
        raise ValueError(
            "optimizer must be a function of learning_rate returning an optax GradientTransformation "
            f"(e.g. optax.adam, not optax.adam(1e-3)), got {optimizer!r}"
        )
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.number))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ValueError(f"{name} must be a positive finite number, got {name}={value!r}")
        _validate.representable(name, value)  # 1e39 overflows float32
        tiny = float(np.finfo(_base.float_dtype()).tiny)
        if value < tiny:
            raise ValueError(
                f"{name}={value!r} underflows {np.dtype(_base.float_dtype()).name} (smallest normal "
                f"{tiny:.3g}); its log would be -inf"
            )
    if not start_lr < end_lr:
        raise ValueError(f"start_lr must be below end_lr, got start_lr={start_lr!r}, end_lr={end_lr!r}")
    if isinstance(smooth, (bool, np.bool_)) or not (isinstance(smooth, (int, float, np.number)) and 0 <= smooth < 1):
        raise ValueError(f"smooth must be in [0, 1), got smooth={smooth!r}")
    if diverge_factor is not None and (
        isinstance(diverge_factor, (bool, np.bool_))
        or not (
            isinstance(diverge_factor, (int, float, np.number)) and math.isfinite(diverge_factor) and diverge_factor > 1
        )
    ):
        raise ValueError(f"diverge_factor must be a finite number > 1 or None, got diverge_factor={diverge_factor!r}")
    for name, value in (("skip_start", skip_start), ("skip_end", skip_end)):
        _validate.integer(
            value, name, minimum=0, strict_type=True, message=f"{name} must be an integer >= 0, got {value!r}"
        )
    leaves = jax.tree.leaves(batches)
    if not leaves:
        raise ValueError(
            "batches must be a pytree of arrays with a leading axis of one batch per step; it has no leaves"
        )
    lengths = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
    if None in lengths or len(lengths) != 1:
        raise ValueError(
            f"every leaf of batches needs the same leading axis (one batch per step); got leading sizes "
            f"{sorted(str(n) for n in lengths)}"
        )
    length = lengths.pop()
    if num_steps is None:
        num_steps = length
    num_steps = _base.integer(
        num_steps, "num_steps", minimum=2, message=f"num_steps must be an integer >= 2, got num_steps={num_steps!r}"
    )
    if num_steps != length:
        raise ValueError(f"num_steps={num_steps} but batches have a leading axis of {length}: give one batch per step")

    dtype = _base.float_dtype()
    args = (params, batches, jnp.asarray(start_lr, dtype), jnp.asarray(end_lr, dtype), jnp.asarray(smooth, dtype))
    factor = None if diverge_factor is None else jnp.asarray(diverge_factor, dtype)
    static = {"loss_fn": loss_fn, "optimizer": optimizer, "num_steps": num_steps, "has_aux": bool(has_aux)}
    if _hashable(loss_fn, optimizer):
        out = _sweep_jit(*args, factor, **static)
    else:  # unhashable callables cannot be static arguments: compile a closure (once per call)
        out = jax.jit(functools.partial(_sweep, **static))(*args, factor)
    lrs, losses, smoothed, ran, stopped = (np.asarray(x) for x in jax.device_get(out))
    n = int(ran.sum())
    diverged = bool(stopped)
    lrs, losses, smoothed = (x[:n].astype(np.float64) for x in (lrs, losses, smoothed))
    return FindLRResult(lrs, losses, smoothed, _suggest(lrs, smoothed, skip_start, skip_end), n, diverged)


def plot_lr_find(result: FindLRResult, ax: Any = None, *, title: str | None = None, raw: bool = True):
    """Plots an LR range test: smoothed loss (and the raw loss, faint) against the lr, log x axis.

    The suggested lr is marked with a dot on a dotted vertical line, the diverging step with a dashed one.

    Args:
        result: what :func:`find_lr` returned.
        ax: a matplotlib Axes to draw into; default: a new figure.
        title: the axes title; default: the suggestion.
        raw: also draw the raw losses.

    Returns:
        The matplotlib ``Figure``; its first line is the smoothed loss (x: ``result.lrs``).
    """
    from lrjax._plot import new_axes

    fig, ax = new_axes(ax, (6.4, 3.6))
    ax.plot(result.lrs, result.smoothed_losses, label="smoothed loss", color="C0")
    if raw:
        ax.plot(result.lrs, result.losses, label="loss", color="C0", alpha=0.25, linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    smoothed = result.smoothed_losses[np.isfinite(result.smoothed_losses)]
    if smoothed.size:
        # From below the lowest loss drawn to a little above the start: the divergence runs off the top.
        shown = np.concatenate([smoothed, result.losses[np.isfinite(result.losses)]]) if raw else smoothed
        low, start = float(np.min(shown)), float(smoothed[0])
        pad = 0.05 * (start - low) if start > low else 0.05 * abs(start) + 1e-12
        ax.set_ylim(low - pad, start + 4 * pad)
    if result.suggested_lr is not None:
        i = int(np.flatnonzero(result.lrs == result.suggested_lr)[0])
        ax.axvline(result.suggested_lr, color="C3", linestyle=":", linewidth=1)
        ax.plot(
            [result.suggested_lr],
            [result.smoothed_losses[i]],
            "o",
            color="C3",
            label=f"suggested lr {result.suggested_lr:.3g}",
        )
    if result.diverged:
        ax.axvline(
            result.lrs[-1], color="0.3", linestyle="--", linewidth=1, label=f"diverged at lr {result.lrs[-1]:.3g}"
        )
    ax.set_title(title if title is not None else "LR range test")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig
