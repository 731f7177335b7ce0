"""Drawing schedules with matplotlib (an optional dependency: ``pip install lrjax[plot]``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax._base import LRSchedule, fmt

_MAX_LABEL = 90


def require_matplotlib():
    """Imports matplotlib lazily; a clear ImportError when it is missing."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            "lrjax's plots need matplotlib, an optional dependency: pip install 'lrjax[plot]' "
            "(or pip install matplotlib)."
        ) from e
    return Figure


def new_axes(ax: Any = None, figsize: tuple[float, float] | None = None):
    """``ax`` and its figure, or a new pyplot-free Figure with one Axes."""
    Figure = require_matplotlib()
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize or (6.4, 3.6), layout="constrained")
    return fig, fig.add_subplot()


def label_of(schedule: Callable) -> str:
    """A legend label: the schedule's name and the arguments that differ from their defaults
    (``step_lr(base_lr=0.1, step_size=30)``), its name alone if that is long, or a function's name."""
    if isinstance(schedule, LRSchedule):
        import lrjax

        fn = getattr(lrjax, schedule.name, None)
        defaults = {}
        if fn is not None:
            defaults = {
                k: p.default
                for k, p in inspect.signature(fn).parameters.items()
                if p.default is not inspect.Parameter.empty
            }
        args = ", ".join(
            f"{k}={fmt(v)}" for k, v in schedule.kwargs.items() if k not in defaults or fmt(v) != fmt(defaults[k])
        )
        text = f"{schedule.name}({args})"
        return text if len(text) <= _MAX_LABEL else schedule.name
    return getattr(schedule, "__name__", type(schedule).__name__)


def as_steps(steps: int | Sequence[float] | np.ndarray) -> np.ndarray:
    """``range(steps)`` for an int, else the given steps (a 1-D array of ints or floats)."""
    if isinstance(steps, (bool, np.bool_)):
        raise ValueError(f"steps must be a positive int or a 1-D array of steps, got {steps!r}")
    if isinstance(steps, (int, np.integer)):
        if steps < 1:
            raise ValueError(f"steps must be a positive number of steps, got {steps!r}")
        return np.arange(int(steps))
    ts = np.asarray(steps)
    if ts.ndim != 1 or ts.size == 0 or ts.dtype.kind not in "iuf":
        raise ValueError(f"steps must be a positive int or a non-empty 1-D array of numbers, got {steps!r}")
    return ts


def evaluate(schedule: Callable, steps: np.ndarray) -> np.ndarray:
    """``[schedule(t) for t in steps]`` as an array of shape ``(len(steps),)`` or ``(len(steps), groups)``.

    Vectorised with ``jax.vmap``; a schedule JAX cannot trace is called once per step with Python numbers.
    """
    try:
        values = np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)))
    except Exception:  # noqa: BLE001 - not traceable: call it as torch would, with Python numbers
        values = np.asarray([np.asarray(schedule(t.item())) for t in steps])
    if values.ndim > 2 or values.shape[0] != steps.shape[0]:
        raise ValueError(
            f"a schedule must return one value (or one per parameter group) per step; {label_of(schedule)} "
            f"returned shape {values.shape[1:]}"
        )
    return values


def _named(items: Any, what: str, labels: Sequence[str] | None) -> list[tuple[str, Callable]]:
    """Normalises one callable / a sequence / a mapping of them to ``[(label, callable)]``."""
    if isinstance(items, Mapping):
        pairs = [(str(k), v) for k, v in items.items()]
    elif callable(items):
        pairs = [(None, items)]
    elif isinstance(items, Sequence) and not isinstance(items, (str, bytes)):
        pairs = [(None, v) for v in items]
    else:
        raise ValueError(f"{what} must be a schedule, a list of schedules or a dict of them, got {items!r}")
    if not pairs:
        raise ValueError(f"{what} must not be empty")
    for _, v in pairs:
        if not callable(v):
            raise ValueError(f"{what} must hold schedules (callables step -> value), got {v!r}")
    if labels is not None:
        labels = [labels] if isinstance(labels, str) else list(labels)
        if len(labels) != len(pairs):
            raise ValueError(f"labels must have one label per schedule ({len(pairs)}), got {len(labels)}")
        pairs = [(str(lab), v) for lab, (_, v) in zip(labels, pairs)]
    return [(lab if lab is not None else label_of(v), v) for lab, v in pairs]


def _lines(ax, steps, values, label, **kwargs) -> list:
    if values.ndim == 1:
        return ax.plot(steps, values, label=label, **kwargs)
    lines = []
    for g in range(values.shape[1]):
        lines += ax.plot(steps, values[:, g], label=f"{label} [group {g}]", **kwargs)
    return lines


def plot(
    schedules: Callable | Sequence[Callable] | Mapping[str, Callable],
    steps: int | Sequence[float] | np.ndarray,
    *,
    labels: Sequence[str] | None = None,
    momentum: Callable | Sequence[Callable | None] | Mapping[str, Callable | None] | None = None,
    ax: Any = None,
    title: str | None = None,
    logy: bool = False,
    xlabel: str = "step",
    ylabel: str = "learning rate",
    momentum_label: str = "momentum",
    figsize: tuple[float, float] | None = None,
    legend: bool | None = None,
    **line_kwargs: Any,
):
    r"""Plots one or several schedules (and momentum schedules) against the step.

    Each schedule is evaluated at ``steps`` (``range(steps)`` for an int) and drawn as a line; a
    schedule with one value per parameter group draws one line per group. Momentum schedules
    (:func:`lrjax.cyclic_momentum`, :func:`lrjax.one_cycle_momentum`) go on a second y axis, on
    the right, dashed, in the colour of their learning rate.

    matplotlib is imported only here (install ``lrjax[plot]``). No pyplot state is touched: the
    figure is a ``matplotlib.figure.Figure`` (``fig.savefig("lr.png")``; Jupyter displays it), or
    the figure of ``ax`` when given (e.g. ``ax=plt.gca()`` to draw into pyplot).

    Args:
        schedules: a schedule (any ``step -> value`` callable), a list of them, or a dict
            ``{label: schedule}``.
        steps: number of steps to draw (``0 .. steps - 1``), or the steps themselves (fractional
            steps allowed, e.g. for :func:`lrjax.cosine_annealing_warm_restarts`).
        labels: legend labels, one per schedule; default: the schedule's repr.
        momentum: a momentum schedule (with one schedule), or a list aligned with ``schedules``
            (``None`` where a schedule has none), or a dict keyed like ``schedules``.
        ax: a matplotlib Axes to draw into; default: a new figure.
        title: the axes title.
        logy: log scale for the learning-rate axis.
        xlabel, ylabel, momentum_label: axis labels.
        figsize: size of a new figure, in inches (default ``(6.4, 3.6)``).
        legend: draw a legend; default: when there is more than one line.
        **line_kwargs: passed to ``Axes.plot`` for the learning-rate lines (e.g.
            ``drawstyle="steps-post"``, ``marker="."``).

    Returns:
        The matplotlib ``Figure``. Its axes hold one ``Line2D`` per schedule (and group), whose
        ``get_ydata()`` are the schedule's values.

    Raises:
        ImportError: if matplotlib is not installed.
        ValueError: for empty or non-callable schedules, labels or momenta that do not match the
            schedules, bad ``steps``.

    Examples:
        >>> import lrjax
        >>> fig = lrjax.plot({"1cycle": lrjax.one_cycle_lr(0.1, total_steps=100),
        ...                   "cosine": lrjax.cosine_annealing_lr(0.1, T_max=100)}, 100,
        ...                  momentum={"1cycle": lrjax.one_cycle_momentum(total_steps=100)})
        >>> [line.get_label() for line in fig.axes[0].get_lines()]
        ['1cycle', 'cosine']
        >>> fig.savefig("compare.png")  # doctest: +SKIP
    """
    pairs = _named(schedules, "schedules", labels)
    ts = as_steps(steps)
    momenta: list[Callable | None] = [None] * len(pairs)
    if momentum is not None:
        if isinstance(momentum, Mapping):
            keys = list(schedules) if isinstance(schedules, Mapping) else []
            unknown = [k for k in momentum if k not in keys]
            if unknown:
                raise ValueError(
                    f"momentum keys {unknown!r} name no schedule; pass schedules as a dict with the same keys"
                )
            if not isinstance(schedules, Mapping):  # an empty dict
                raise ValueError(
                    "momentum is an empty dict, keyed like no schedule: pass schedules as a dict with "
                    "the same keys, or momentum as a list (None where there is none)"
                )
            momenta = [momentum.get(k) for k in keys]
        elif callable(momentum):
            if len(pairs) != 1:
                raise ValueError("with several schedules, pass momentum as a list (None where there is none) or a dict")
            momenta = [momentum]
        else:
            momenta = list(momentum)
            if len(momenta) != len(pairs):
                raise ValueError(f"momentum must have one entry per schedule ({len(pairs)}), got {len(momenta)}")
        for m in momenta:
            if m is not None and not callable(m):
                raise ValueError(f"momentum must hold schedules (callables step -> value) or None, got {m!r}")

    fig, ax = new_axes(ax, figsize)
    twin = None
    n_lines = 0
    for (label, schedule), mom in zip(pairs, momenta):
        lines = _lines(ax, ts, evaluate(schedule, ts), label, **line_kwargs)
        n_lines += len(lines)
        if mom is not None:
            if twin is None:
                twin = ax.twinx()
                twin.set_ylabel(momentum_label)
            values = evaluate(mom, ts)
            colors = [line.get_color() for line in lines]
            if values.ndim == 1:
                twin.plot(ts, values, linestyle="--", color=colors[0], label=f"{momentum_label}: {label}")
            else:
                for g in range(values.shape[1]):
                    twin.plot(
                        ts,
                        values[:, g],
                        linestyle="--",
                        color=colors[min(g, len(colors) - 1)],
                        label=f"{momentum_label}: {label} [group {g}]",
                    )
            n_lines += values.shape[1] if values.ndim == 2 else 1
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title is not None:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if legend if legend is not None else n_lines > 1:
        handles, names = ax.get_legend_handles_labels()
        if twin is not None:
            h2, n2 = twin.get_legend_handles_labels()
            handles, names = handles + h2, names + n2
        ax.legend(handles, names, fontsize="small")
    return fig
