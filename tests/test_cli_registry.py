"""The command line serves every schedule of ``lrjax.registry``: listed, printed (equal to torch) and plotted.

The cases are generated from the registry: a schedule added there (SWALR, ...) is covered here as soon
as it exists, with no change to the command line.
"""

from __future__ import annotations

import csv
import inspect
import io
import json

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

import lrjax
from lrjax import _cli, registry

matplotlib.use("Agg")

STEPS = 25
# Keyword arguments for each schedule (the inputs; the expected values come from lrjax and torch).
ARGUMENTS = {
    "step_lr": {"step_size": 3, "gamma": 0.5},
    "multi_step_lr": {"milestones": [2, 5], "gamma": 0.5},
    "constant_lr": {"factor": 0.5, "total_iters": 4},
    "linear_lr": {"start_factor": 0.25, "total_iters": 6},
    "exponential_lr": {"gamma": 0.8},
    "polynomial_lr": {"total_iters": 8, "power": 2.0},
    "cosine_annealing_lr": {"T_max": 7, "eta_min": 0.01},
    "cosine_annealing_warm_restarts": {"T_0": 3, "T_mult": 2, "eta_min": 0.001},
    "cyclic_lr": {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 3, "mode": "triangular2"},
    "one_cycle_lr": {"max_lr": 0.1, "total_steps": STEPS, "three_phase": True},
    "swalr": {"swa_lr": 0.05, "anneal_epochs": 4},
    "sequential_lr": {"schedules": [{"name": "LinearLR", "start_factor": 0.5, "total_iters": 3},
                                    {"name": "exponential_lr", "gamma": 0.9}], "milestones": [3]},
    "chained_scheduler": {"schedules": [{"name": "StepLR", "step_size": 3}, {"name": "exponential_lr", "gamma": 0.9}]},
    "cyclic_momentum": {"step_size_up": 3},
    "one_cycle_momentum": {"total_steps": STEPS},
    "per_epoch": {"schedule": {"name": "StepLR", "step_size": 2}, "steps_per_epoch": 3},
}
# What a command line cannot build, and why.
REFUSED = {"lambda_lr": "needs a Python function", "multiplicative_lr": "needs a Python function",
           "reduce_lr_on_plateau": "reduces the lr when a metric stops improving"}
NAMES = [n for n in registry.names() if n in ARGUMENTS]


def run(argv, capsys):
    code = _cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def tokens(name):
    """``TorchName key=json ...`` (torch's name where there is one)."""
    entry = registry.lookup(name)
    return [entry.torch_class or name] + [f"{k}={json.dumps(v)}" for k, v in ARGUMENTS[name].items()]


def float64_values(schedule):
    with jax.enable_x64(True):
        return np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(STEPS)), np.float64)


def torch_run(entry, kwargs):
    """lr (and momentum) torch's scheduler holds after t step() calls, t = 0 .. STEPS - 1."""
    torch = pytest.importorskip("torch")
    kwargs = dict(kwargs)
    lr = kwargs.pop("base_lr", 0.1) if entry.torch_lr == "base_lr" else 0.1
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)
    scheduler = entry.torch_type()(opt, **kwargs)
    lrs, momenta = [], []
    for _ in range(STEPS):
        lrs.append(opt.param_groups[0]["lr"])
        momenta.append(opt.param_groups[0]["momentum"])
        opt.step()
        scheduler.step()
    return np.asarray(lrs), np.asarray(momenta)


def test_every_registry_entry_is_covered():
    assert set(registry.names()) - set(ARGUMENTS) - set(REFUSED) == set()


def test_list_shows_every_entry(capsys):
    code, out, _ = run(["list"], capsys)
    assert code == 0
    lines = {line.split("(")[0]: line for line in out.splitlines()}
    assert list(lines) == registry.names()
    for entry in registry.entries():
        params = inspect.signature(entry.factory).parameters.values()
        signature = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params)
        assert lines[entry.name].startswith(f"{entry.name}({signature})")
        if entry.torch_class:
            assert f"(torch: {entry.torch_class}" in lines[entry.name]
            code, one, _ = run(["list", entry.torch_class], capsys)
            assert code == 0 and one == lines[entry.name] + "\n"


@pytest.mark.parametrize("name", NAMES)
def test_values_of_every_schedule(name, capsys):
    entry = registry.lookup(name)
    code, out, err = run(["values", *tokens(name), "--steps", str(STEPS), "--format", "csv"], capsys)
    assert code == 0 and err == ""
    rows = list(csv.reader(io.StringIO(out)))
    header, table = rows[0], np.asarray([[float(v) for v in row] for row in rows[1:]])
    np.testing.assert_array_equal(table[:, 0], np.arange(STEPS))
    lr_config, momentum_config = lrjax.split_momentum({"name": name, **ARGUMENTS[name]})
    np.testing.assert_array_equal(table[:, 1], float64_values(lrjax.from_config(lr_config, base_lr=0.1)))
    if momentum_config is not None:
        assert header[2].endswith(" momentum")
        np.testing.assert_array_equal(table[:, 2], float64_values(lrjax.from_config(momentum_config)))
    if entry.torch_class and not entry.composite:
        lrs, momenta = torch_run(entry, ARGUMENTS[name])
        np.testing.assert_allclose(table[:, 1], lrs, rtol=1e-11, atol=1e-13)
        if momentum_config is not None:
            np.testing.assert_allclose(table[:, 2], momenta, rtol=1e-11, atol=1e-13)


def test_plot_of_every_schedule(capsys):
    argv = ["plot"]
    for name in NAMES:
        argv += tokens(name) + ["--label", name]
    args = _cli.parse_args(argv + ["--steps", str(STEPS), "--no-momentum"])
    with jax.enable_x64(True):  # as the command line computes
        fig = _cli.figure(args)
    lines = {line.get_label(): line.get_ydata() for line in fig.axes[0].get_lines()}
    assert list(lines) == NAMES
    for name in NAMES:
        config, _ = lrjax.split_momentum({"name": name, **ARGUMENTS[name]})
        with jax.enable_x64(True):
            expected = np.asarray(jax.jit(jax.vmap(lrjax.from_config(config, base_lr=0.1)))(jnp.arange(STEPS)))
        np.testing.assert_array_equal(lines[name], expected)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_a_command_line_cannot_build(name, capsys):
    code, out, err = run(["values", registry.lookup(name).torch_class], capsys)
    assert code == 2 and out == "" and REFUSED[name] in err and err.count("\n") == 1
