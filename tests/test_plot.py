"""``lrjax.plot`` and the gallery script: the drawn lines hold the schedules' values."""

from __future__ import annotations

import importlib.util
import os
import sys

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

import lrjax

matplotlib.use("Agg")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def schedule_values(schedule, steps):
    return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)))


def lr_lines(fig):
    return fig.axes[0].get_lines()


def test_one_schedule(bits):
    schedule = lrjax.one_cycle_lr(0.1, total_steps=50)
    fig = lrjax.plot(schedule, 50)
    (line,) = lr_lines(fig)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(50))
    np.testing.assert_array_equal(line.get_ydata(), schedule_values(schedule, np.arange(50)))
    assert line.get_ydata().dtype == (np.float64 if bits == 64 else np.float32)
    assert line.get_label() == "one_cycle_lr(max_lr=0.1, total_steps=50)"
    assert fig.axes[0].get_legend() is None  # a single line needs none


def test_several_schedules_with_labels_and_momentum():
    cyclic = dict(step_size_up=5, mode="triangular2")
    schedules = {"cyclic": lrjax.cyclic_lr(0.01, 0.1, **cyclic), "cosine": lrjax.cosine_annealing_lr(0.1, T_max=20)}
    momentum = {"cyclic": lrjax.cyclic_momentum(0.8, 0.9, **cyclic)}
    fig = lrjax.plot(schedules, 40, momentum=momentum, title="compare", logy=True)
    ax, twin = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["cyclic", "cosine"]
    for line, schedule in zip(ax.get_lines(), schedules.values()):
        np.testing.assert_array_equal(line.get_ydata(), schedule_values(schedule, np.arange(40)))
    (mline,) = twin.get_lines()
    np.testing.assert_array_equal(mline.get_ydata(), schedule_values(momentum["cyclic"], np.arange(40)))
    assert mline.get_color() == ax.get_lines()[0].get_color() and mline.get_linestyle() == "--"
    assert twin.get_ylabel() == "momentum" and ax.get_yscale() == "log" and ax.get_title() == "compare"
    assert len(ax.get_legend().get_texts()) == 3


def test_list_with_labels_and_momentum_list():
    schedules = [lrjax.step_lr(0.1, 10), lrjax.one_cycle_lr(0.1, total_steps=30)]
    momentum = [None, lrjax.one_cycle_momentum(total_steps=30)]
    fig = lrjax.plot(schedules, 30, labels=["step", "1cycle"], momentum=momentum)
    assert [line.get_label() for line in lr_lines(fig)] == ["step", "1cycle"]
    assert len(fig.axes[1].get_lines()) == 1


def test_parameter_groups_are_separate_lines():
    schedule = lrjax.lambda_lr([0.05, 0.1], [lambda e: e // 30, lambda e: 1 / (1 + e // 10)])
    fig = lrjax.plot(schedule, 100, labels=["lambda"])
    lines = lr_lines(fig)
    values = schedule_values(schedule, np.arange(100))
    assert values.shape == (100, 2) and len(lines) == 2
    for g, line in enumerate(lines):
        assert line.get_label() == f"lambda [group {g}]"
        np.testing.assert_array_equal(line.get_ydata(), values[:, g])


def test_fractional_steps():
    schedule = lrjax.cosine_annealing_warm_restarts(0.1, T_0=2, T_mult=2)
    steps = np.linspace(0.0, 10.0, 41)
    (line,) = lr_lines(lrjax.plot(schedule, steps))
    np.testing.assert_array_equal(line.get_xdata(), steps)
    np.testing.assert_array_equal(line.get_ydata(), schedule_values(schedule, steps))


def test_untraceable_python_function_is_called_per_step():
    def staircase(step):
        return 0.1 if step < 5 else 0.01  # Python control flow: not traceable

    (line,) = lr_lines(lrjax.plot(staircase, 10))
    np.testing.assert_array_equal(line.get_ydata(), [0.1] * 5 + [0.01] * 5)
    assert line.get_label() == "staircase"


def test_draws_into_given_axes_and_passes_line_kwargs():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    out = lrjax.plot(lrjax.step_lr(0.1, 3), 10, ax=ax, drawstyle="steps-post", marker=".")
    assert out is fig and ax.get_lines()[0].get_drawstyle() == "steps-post"


def test_saves_png(tmp_path):
    path = tmp_path / "lr.png"
    lrjax.plot(lrjax.exponential_lr(0.1, 0.9), 20).savefig(path, dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        (([], 10), {}, "must not be empty"),
        (([1.0], 10), {}, "callables"),
        (("step_lr", 10), {}, "must be a schedule"),
        ((lrjax.step_lr(0.1, 3), 0), {}, "steps must be a positive"),
        ((lrjax.step_lr(0.1, 3), [[1, 2]]), {}, "1-D array"),
        (([lrjax.step_lr(0.1, 3)], 5), {"labels": ["a", "b"]}, "one label per schedule"),
        (([lrjax.step_lr(0.1, 3)] * 2, 5), {"momentum": lrjax.cyclic_momentum()}, "as a list"),
        (([lrjax.step_lr(0.1, 3)] * 2, 5), {"momentum": [None]}, "one entry per schedule"),
        (({"a": lrjax.step_lr(0.1, 3)}, 5), {"momentum": {"b": lrjax.cyclic_momentum()}}, "name no schedule"),
    ],
)
def test_validation(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        lrjax.plot(*args, **kwargs)


def test_missing_matplotlib_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"lrjax\[plot\]"):
        lrjax.plot(lrjax.step_lr(0.1, 3), 10)


# ----------------------------------------------------------------------------------------------
# The gallery
# ----------------------------------------------------------------------------------------------

gallery = load_script("render_gallery")
ENTRIES = gallery.entries()
TORCH_CLASSES = [e.torch_class for e in lrjax.registry.entries() if e.torch_class is not None]
# The figure each torch class gets from its registry example where the gallery has no curated entry.
FROM_EXAMPLES = [gallery.from_example(e) for e in lrjax.registry.entries() if e.torch_class is not None]


def test_gallery_has_one_entry_per_torch_scheduler():
    assert sorted(e.name for e in ENTRIES) == sorted(TORCH_CLASSES)


@pytest.mark.parametrize(
    "entry", ENTRIES + FROM_EXAMPLES, ids=[e.name for e in ENTRIES] + [f"{e.name}-example" for e in FROM_EXAMPLES]
)
def test_gallery_entry_draws_the_schedule(entry, tmp_path):
    fig, path = gallery.render(entry, str(tmp_path), dpi=40)
    assert os.path.basename(path) == f"{entry.name}.png"
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    steps = np.arange(entry.steps)
    expected = []
    for schedule in list(entry.schedules.values()) + list((entry.members or {}).values()):
        values = schedule_values(schedule, steps)
        expected += [values] if values.ndim == 1 else list(values.T)
    lines = lr_lines(fig)[: len(expected)]
    assert len(lines) == len(expected)
    for line, values in zip(lines, expected):
        np.testing.assert_array_equal(line.get_xdata(), steps)
        np.testing.assert_array_equal(line.get_ydata(), values)
    if entry.momentum:
        (momentum,) = entry.momentum.values()
        np.testing.assert_array_equal(fig.axes[1].get_lines()[0].get_ydata(), schedule_values(momentum, steps))
    if entry.metric is not None:
        # The plateau's lrs, recomputed step by step in Python: lr after k metrics.
        plateau = entry.plateau
        state = plateau.init(gallery.PLATEAU_LR)
        lrs = [float(state.lr)]
        for m in entry.metric:
            state = plateau.update(state, m)
            lrs.append(float(state.lr))
        np.testing.assert_allclose(lines[0].get_ydata(), lrs, rtol=1e-6)
        assert min(lrs) < lrs[0]  # the synthetic metric does trigger reductions
        np.testing.assert_array_equal(fig.axes[1].get_lines()[0].get_ydata(), entry.metric)


def test_gallery_torch_parity():
    """Each gallery entry with a torch counterpart equals torch (so the pictures show torch's values)."""
    torch = pytest.importorskip("torch")
    L = torch.optim.lr_scheduler
    builders = {
        "StepLR": lambda o: L.StepLR(o, step_size=30, gamma=0.1),
        "ChainedScheduler": lambda o: L.ChainedScheduler([L.ConstantLR(o, 0.1, 20), L.ExponentialLR(o, 0.95)]),
        "SequentialLR": lambda o: L.SequentialLR(
            o, [L.LinearLR(o, 0.1, total_iters=10), L.CosineAnnealingLR(o, 90)], milestones=[10]
        ),
        "CyclicLR": lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=25, mode="triangular2"),
    }
    base = {"StepLR": 0.05, "ChainedScheduler": 0.05, "SequentialLR": 0.1, "CyclicLR": 0.1}
    by_name = {e.name: e for e in ENTRIES}
    with jax.enable_x64(True):
        for name, make in builders.items():
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base[name], momentum=0.9)
            converted = lrjax.from_torch(make(opt))
            entry = by_name[name]
            (schedule,) = entry.schedules.values()
            steps = np.arange(entry.steps)
            np.testing.assert_allclose(
                schedule_values(schedule, steps), schedule_values(converted, steps), rtol=1e-12, atol=1e-15
            )
