"""The command line serves every schedule of ``lrjax.registry``: listed, printed (equal to torch) and plotted.

The cases are the registry's own examples (``Entry.example``): a schedule added there is covered here as
soon as it exists, with no change to the command line or to this file. What a command line cannot express
is derived from the example too: a Python function in it (``lr_lambda``), or a metric-driven schedule.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import shlex

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
import torchtwin

import lrjax
from lrjax import _cli, registry

matplotlib.use("Agg")

STEPS = 100  # the examples' periods, milestones and phases (30, 50, 10 + 90, ...) fall inside


def holds_function(value) -> bool:
    """Whether a value (a keyword of an example, its member configs included) holds a Python function."""
    if isinstance(value, dict):
        return any(holds_function(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_function(v) for v in value)
    return callable(value)


def refusal(entry) -> str | None:
    """What the command line says when it cannot build the entry's example, or None where it can."""
    if entry.role == "plateau":
        return "reduces the lr when a metric stops improving"
    if holds_function(entry.example):
        return "Python function"
    return None


# What a command line cannot build, and the words of its refusal.
REFUSED = {e.name: refusal(e) for e in registry.entries() if refusal(e) is not None}
# Keyword arguments for each schedule: its registry example (the expected values come from lrjax and torch).
ARGUMENTS = {
    e.name: {k: v for k, v in e.example_config().items() if k != "name"}
    for e in registry.entries()
    if e.name not in REFUSED
}
NAMES = [n for n in registry.names() if n in ARGUMENTS]


def steps_of(config) -> int:
    """STEPS, or fewer where the config ends sooner (torch's OneCycleLR refuses to step past total_steps)."""
    total = config.get("total_steps")
    if total is None and config.get("epochs") is not None and config.get("steps_per_epoch") is not None:
        total = config["epochs"] * config["steps_per_epoch"]
    return min(STEPS, total) if total is not None else STEPS


def split(config):
    """``(lr config, momentum config or None)`` as the command line builds them: torch's momentum keywords of
    CyclicLR/OneCycleLR go to the momentum partner; a momentum schedule keeps its own."""
    if registry.lookup(config["name"]).momentum is None:
        return config, None
    return lrjax.split_momentum(config)


def run(argv, capsys):
    code = _cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def tokens(name):
    """``TorchName key=json ...`` (torch's name where there is one)."""
    entry = registry.lookup(name)
    return [entry.torch_class or name] + [f"{k}={json.dumps(v)}" for k, v in ARGUMENTS[name].items()]


def float64_values(schedule, steps=STEPS):
    with jax.enable_x64(True):
        return np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(steps)), np.float64)


def torch_run(entry, kwargs, steps):
    """lr (and momentum) torch's scheduler holds after t step() calls, t = 0 .. steps - 1: the torch class
    built with the same keywords (``base_lr`` as the optimizer's lr where torch takes it from there)."""
    torch = pytest.importorskip("torch")
    kwargs = dict(kwargs)
    lr = kwargs.pop(entry.torch_lr) if entry.torch_lr is not None else 0.1
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)
    scheduler = entry.torch_type()(opt, **kwargs)
    lrs, momenta = [], []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        momenta.append(opt.param_groups[0]["momentum"])
        opt.step()
        scheduler.step()
    return np.asarray(lrs), np.asarray(momenta)


def listing(out):
    """``{name: [its line, its example line if any]}`` of ``lrjax list``'s output, in order."""
    entries, name = {}, None
    for line in out.splitlines():
        if line.startswith(" "):
            entries[name].append(line)
        else:
            name = line.split("(")[0]
            entries[name] = [line]
    return entries


def test_every_registry_entry_is_covered():
    assert set(ARGUMENTS) | set(REFUSED) == set(registry.names()) and not set(ARGUMENTS) & set(REFUSED)
    assert "reduce_lr_on_plateau" in REFUSED and "lambda_lr" in REFUSED and "step_lr" in ARGUMENTS
    for entry in registry.entries():  # every example builds, and a new schedule has one
        assert entry.example, f"{entry.name} has no example in lrjax/registry.py"
        lrjax.from_config(entry.example_config())


def test_list_shows_every_entry(capsys):
    code, out, _ = run(["list"], capsys)
    assert code == 0
    lines = listing(out)
    assert list(lines) == registry.names()
    for entry in registry.entries():
        params = inspect.signature(entry.factory).parameters.values()
        signature = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params)
        assert lines[entry.name][0].startswith(f"{entry.name}({signature})")
        if entry.torch_class:
            assert f"(torch: {entry.torch_class}" in lines[entry.name][0]
            code, one, _ = run(["list", entry.torch_class], capsys)
            assert code == 0 and one == "\n".join(lines[entry.name]) + "\n"


@pytest.mark.parametrize("name", registry.names())
def test_list_shows_each_example_as_a_command_line_to_paste(name, capsys):
    """``lrjax list``'s example line, split as a shell does, is ``lrjax plot`` and the registry's example (under
    torch's name); it runs. Where a command line cannot give the example, there is no such line."""
    entry = registry.lookup(name)
    code, out, _ = run(["list", name], capsys)
    assert code == 0
    example = out.splitlines()[1:]
    if name in REFUSED:
        assert example == []
        return
    (line,) = example
    assert line.startswith("  e.g. lrjax plot ")
    argv = shlex.split(line.removeprefix("  e.g. "))
    assert argv[:2] == ["lrjax", "plot"]
    expected = {"name": entry.torch_class or name, **json.loads(json.dumps(ARGUMENTS[name]))}  # tuples as lists
    assert _cli.parse_specs(argv[2:]) == [expected]
    code, out, err = run(["values", *argv[2:], "--steps", "3"], capsys)
    assert code == 0 and err == "" and len(out.splitlines()) == 4


@pytest.mark.parametrize("name", NAMES)
def test_values_of_every_schedule(name, capsys):
    """Every column equals lrjax's schedule built from the config, and torch's scheduler run live: the torch class
    built with the same keywords, or tests/torchtwin.py's twin (composites of torch schedulers, momentum)."""
    entry = registry.lookup(name)
    config = {"name": name, **ARGUMENTS[name]}
    steps = steps_of(config)
    code, out, err = run(["values", *tokens(name), "--steps", str(steps), "--format", "csv"], capsys)
    assert code == 0 and err == ""
    rows = list(csv.reader(io.StringIO(out)))
    header, table = rows[0], np.asarray([[float(v) for v in row] for row in rows[1:]])
    np.testing.assert_array_equal(table[:, 0], np.arange(steps))
    lr_config, momentum_config = split(config)
    np.testing.assert_array_equal(table[:, 1], float64_values(lrjax.from_config(lr_config, base_lr=0.1), steps))
    if momentum_config is not None:
        assert header[2].endswith(" momentum")
        np.testing.assert_array_equal(table[:, 2], float64_values(lrjax.from_config(momentum_config), steps))
    if entry.torch_class and not entry.composite:
        lrs, momenta = torch_run(entry, ARGUMENTS[name], steps)
        np.testing.assert_allclose(table[:, 1], lrs, rtol=1e-11, atol=1e-13)
        if momentum_config is not None:
            np.testing.assert_allclose(table[:, 2], momenta, rtol=1e-11, atol=1e-13)
    elif torchtwin.torch_class(name) is not None:
        pytest.importorskip("torch")
        twin = torchtwin.run_torch(config, steps - 1)[:, 0]
        np.testing.assert_allclose(table[:, 1], twin, rtol=1e-11, atol=1e-13)


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
        config, _ = split({"name": name, **ARGUMENTS[name]})
        with jax.enable_x64(True):
            expected = np.asarray(jax.jit(jax.vmap(lrjax.from_config(config, base_lr=0.1)))(jnp.arange(STEPS)))
        np.testing.assert_array_equal(lines[name], expected)


def spelled(value):
    """A value as a user would type it on a command line: JSON, and a function by its name (a bare word)."""
    if isinstance(value, dict):
        return {k: spelled(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [spelled(v) for v in value]
    return value.__name__ if callable(value) else value


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_a_command_line_cannot_build(name, capsys):
    """The example as a command line (a function by its name) is refused in one line that says why; so is the
    name alone."""
    entry = registry.lookup(name)
    argv = [entry.torch_class or name]
    for key, value in entry.example.items():
        value = spelled(value)
        argv.append(f"{key}={value}" if isinstance(value, str) else f"{key}={json.dumps(value)}")
    for command in (argv, argv[:1]):
        code, out, err = run(["values", *command], capsys)
        assert code == 2 and out == "" and REFUSED[name] in err and err.count("\n") == 1, (command, err)
