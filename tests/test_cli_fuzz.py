"""Fuzzing the ``lrjax`` command line in-process (``lrjax._cli.main(argv)``) with hypothesis.

Whatever the argument vector: exit status 0 with the right output, or 2 with one line on stderr and
nothing written; never another status, an exception or a traceback, never a file anywhere but where
``-o`` (or the default) says.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_cli_registry import ARGUMENTS, split

import lrjax
from lrjax import _cli, registry

matplotlib.use("Agg")

FUZZ = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
# LRJAX_CLI_FUZZ=N multiplies the examples by N (a deeper run by hand; CI keeps the default, ~10 s of CPU).
DEPTH = int(os.environ.get("LRJAX_CLI_FUZZ", "1"))
ERROR_LINE = re.compile(r"lrjax( (plot|values|list))?: error: [^\n]+\n")
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF", "svg": b"<?xml", "jpg": b"\xff\xd8\xff"}
NAMES = [n for n in registry.names() if n in ARGUMENTS]

# ---- the sandbox: a working directory with good and bad input files ----


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_fuzz")
    (root / "binary.json").write_bytes(bytes(range(256)))
    (root / "deep.json").write_text("[" * 100 + "]" * 100)
    (root / "abyss.json").write_text('{"a": ' * 5000 + "1" + "}" * 5000)
    (root / "empty.json").write_text("")
    (root / "plateau.json").write_text(json.dumps({"name": "ReduceLROnPlateau"}))
    (root / "good.json").write_text(
        json.dumps([{"name": "StepLR", "step_size": 2}, {"name": "ExponentialLR", "gamma": 0.5}])
    )
    (root / "huge.json").write_text('{"name": "StepLR", "step_size": ' + "3" * 5000 + "}")
    (root / "a_directory").mkdir()
    (root / "sub").mkdir()
    (root / "a_file").write_text("x")
    (root / "existing.png").write_bytes(b"old")
    for name in NAMES:
        (root / f"{name}.json").write_text(json.dumps({"name": name, **ARGUMENTS[name]}))
    return root


def listing(root):
    """``{path: modification time}`` of the files (directories: 0) under ``root``."""
    return {str(p.relative_to(root)): 0 if p.is_dir() else p.stat().st_mtime_ns for p in root.rglob("*")}


@contextlib.contextmanager
def inside(path):
    cwd = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(cwd)


@contextlib.contextmanager
def run(argv, root):
    """Yields ``(status, stdout, stderr, files created or changed)``; removes the files created after."""
    before = listing(root)
    out, err = io.StringIO(), io.StringIO()
    with inside(root), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _cli.main(argv)  # an exception here fails the test: that would be a traceback
    after = listing(root)
    changed = sorted(p for p, t in after.items() if before.get(p) != t)
    try:
        yield code, out.getvalue(), err.getvalue(), changed
    finally:
        for p in changed:
            if p not in before:
                (root / p).unlink()


# ---- argument vectors ----

JUNK_NAMES = ["", " ", "StepLr", "SGD", "step-lr", "ñ", "=", "a=b=c", "Step LR", "\x00", "\udcff", "lr" * 50]
KEYS = sorted(
    {k for e in registry.entries() for k in e.keywords}
    | set(_cli._TORCH_MOMENTUM_KEYS)
    | {"", "nesterov", "name", "1x", "gamma ", "é", "__class__"}
)
VALUE_TEXTS = [
    "0",
    "1",
    "-1",
    "2",
    "3",
    "30",
    "0.5",
    "0.05",
    "1e-3",
    "-0.0",
    "1e400",
    "-1e400",
    "nan",
    "NaN",
    "inf",
    "-Infinity",
    "9" * 5000,
    "9" * 400,
    "2**10",
    "true",
    "false",
    "True",
    "False",
    "TRUE",
    "no",
    "yes",
    "maybe",
    "null",
    "None",
    "cos",
    "linear",
    "triangular",
    "triangular2",
    "exp_range",
    "iterations",
    "[1,2]",
    "1,2",
    "[3, 1]",
    "[]",
    "{}",
    "[0.1, 0.2]",
    "'cos'",
    '"cos"',
    "[30,80",
    "1j",
    "b'x'",
    "{1,2}",
    "[[[[[[[[1]]]]]]]]",
    "[" * 100 + "]" * 100,
    '{"a":1,"a":2}',
    "",
    " ",
    "\x00",
    "__import__('os')",
    '{"name": "StepLR", "step_size": 2}',
    '[{"name": "StepLR", "step_size": 2}]',
    '[{"name": "ReduceLROnPlateau"}]',
    json.dumps([0.1] * 70),
]
values = st.one_of(
    st.sampled_from(VALUE_TEXTS),
    st.integers(-10, 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**20) | st.floats() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(KEYS), c, max_size=3),
    max_leaves=8,
)
names = st.sampled_from(registry.names() + [e.torch_class for e in registry.entries() if e.torch_class] + JUNK_NAMES)
FILES = [
    "@binary.json",
    "@deep.json",
    "@abyss.json",
    "@empty.json",
    "@plateau.json",
    "@good.json",
    "@huge.json",
    "@a_directory",
    "@missing.json",
    "@",
    "@a_file",
    "@/dev/null",
] + [f"@{n}.json" for n in NAMES]


def _json_config(draw_name, kwargs):
    return json.dumps({"name": draw_name, **kwargs}, allow_nan=True)


schedule_tokens = st.lists(
    st.one_of(
        names.map(lambda n: [n]),
        st.tuples(st.sampled_from(KEYS), values).map(lambda kv: [f"{kv[0]}={kv[1]}"]),
        st.tuples(names, st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)).map(
            lambda nk: [_json_config(*nk)]
        ),
        st.sampled_from(FILES).map(lambda f: [f]),
        st.text(max_size=8).filter(lambda t: not t.startswith("-")).map(lambda t: [t]),
    ),
    max_size=6,
).map(lambda groups: [t for g in groups for t in g])

OPTIONS = {
    "--steps": ["1", "2", "7", "30", "0", "-1", "10000000000", "10000001", "1e3", "x", ""],
    "--base-lr": ["0.1", "0", "2", "-1", "nan", "inf", "1e400", "1e300", "1e-300", "abc"],
    "--label": ["a", "b", "", "_hidden", "$x$", "$\\frac$", "step", "a\tb", "\udcff"],
    "-o": [
        "ok.png",
        "ok.svg",
        "ok.pdf",
        "OK.PNG",
        "sub/ok.png",
        "existing.png",
        "ok.jpg",
        "x.xyz",
        "a_directory/",
        "a_directory",
        "missing/x.png",
        "a_file/x.png",
        "",
        "noext",
        ".png",
        "/proc/x.png",
        "ok.pgf",
        "a\x00.png",
    ],
    "--dpi": ["1", "10", "20", "0", "-1", "1001", "abc"],
    "--title": ["t", "", "$\\frac$", "$x$"],
    "--format": ["tsv", "csv", "json", "xml"],
}
FLAGS = ["--float32", "--no-momentum", "--logy", "--steps-post", "--bogus", "-h"]
SIZES = [
    ["4", "2"],
    ["6", "3"],
    ["0", "0"],
    ["nan", "3"],
    ["6", "inf"],
    ["1e6", "1"],
    ["101", "3"],
    ["6"],
    ["8", "4"],
    ["3.9", "3"],
]
options = st.lists(
    st.one_of(
        st.sampled_from(sorted(OPTIONS)).flatmap(lambda o: st.sampled_from(OPTIONS[o]).map(lambda v: [o, v])),
        st.sampled_from(FLAGS).map(lambda f: [f]),
        st.sampled_from(SIZES).map(lambda s: ["--size", *s]),
    ),
    max_size=4,
).map(lambda groups: [t for g in groups for t in g])
commands = st.sampled_from(["plot", "values", "values", "list", "draw", "", "--version"])
random_argvs = st.builds(
    lambda c, s, o, first: [c, *o, *s] if first else [c, *s, *o], commands, schedule_tokens, options, st.booleans()
)


@st.composite
def mutated_argvs(draw):
    """A valid command line with up to three tokens replaced, inserted or deleted."""
    command = draw(st.sampled_from(["plot", "values", "values", "list"]))
    argv = [command]
    if command == "list":
        argv += draw(st.sampled_from([[], [draw(names)]]))
    else:
        for name in draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2)):
            argv += [registry.lookup(name).torch_class or name]
            argv += [f"{k}={json.dumps(v)}" for k, v in ARGUMENTS[name].items()]
        argv += ["--steps", str(draw(st.integers(1, 30)))]
        if command == "plot":
            argv += [
                "--dpi",
                "20",
                "-o",
                draw(st.sampled_from(["ok.png", "ok.svg", "sub/ok.png", "existing.png", "OK.PNG", "ok.pdf"])),
            ]
    junk = st.one_of(
        values,
        st.sampled_from(FILES),
        names,
        st.tuples(st.sampled_from(KEYS), values).map(lambda kv: f"{kv[0]}={kv[1]}"),
        st.sampled_from(FLAGS + sorted(OPTIONS)),
    )
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(1, len(argv)))
        how = draw(st.sampled_from(["value", "insert", "delete", "option"]))
        if how == "value" and i < len(argv) and "=" in argv[i]:
            argv[i] = argv[i].partition("=")[0] + "=" + draw(values)
        elif how == "insert":
            argv.insert(i, draw(junk))
        elif how == "delete" and i < len(argv):
            del argv[i]
        elif how == "option":
            argv[i:i] = draw(options)
    return argv


argvs = st.one_of(random_argvs, mutated_argvs())


def last(argv, option, default):
    value = default
    for i, token in enumerate(argv[:-1]):
        if token == option:
            value = argv[i + 1]
    return value


def check(argv, code, out, err, changed, root):
    """The contract, for any argument vector."""
    assert isinstance(code, int) and code in (0, 2), (argv, code, err)
    assert "Traceback" not in err and "Traceback" not in out
    if code == 2:
        assert ERROR_LINE.fullmatch(err), (argv, err)
        assert out == "" and changed == [], (argv, out, changed)
        return
    assert all(line.startswith(("lrjax plot: warning: ", "lrjax values: warning: ")) for line in err.splitlines()), err
    if "-h" in argv or argv[:1] == ["--version"]:
        assert out and changed == []
        return
    command = argv[0]
    if command == "plot":
        target = last(argv, "-o", "lrjax-plot.png")
        assert out == f"wrote {target}\n", (argv, out)
        assert changed == [os.path.relpath(os.path.join(root, target), root)], (argv, changed)
        ext = target.rsplit(".", 1)[-1].lower()
        assert (root / target).read_bytes()[: len(MAGIC[ext])] == MAGIC[ext]
    elif command == "values":
        assert changed == []
        steps = int(last(argv, "--steps", "100"))
        fmt = last(argv, "--format", "tsv")
        if fmt == "json":
            table = json.loads(out)
            assert table["step"] == list(range(steps)) and len(table) >= 2
            assert all(len(v) == steps and all(math.isfinite(x) for x in v) for v in table.values())
        else:
            rows = list(csv.reader(io.StringIO(out), delimiter="\t" if fmt == "tsv" else ","))
            assert len(rows) == steps + 1 and all(len(r) == len(rows[0]) >= 2 for r in rows)
            assert [int(r[0]) for r in rows[1:]] == list(range(steps))
            assert all(math.isfinite(float(v)) for r in rows[1:] for v in r[1:])
    else:
        assert command == "list" and changed == []
        assert (
            all(
                line.split("(")[0] in registry.names() or line.startswith("  e.g. lrjax plot ")
                for line in out.splitlines()
            )
            and out
        )


@settings(max_examples=120 * DEPTH, **FUZZ)
@given(argv=argvs)
def test_any_argument_vector(argv, sandbox):
    with run(argv, sandbox) as (code, out, err, changed):
        event(f"{argv[0]} exit {code}")
        check(argv, code, out, err, changed, sandbox)


# ---- well-formed command lines: the values must be the schedules' ----


def spell(value, python):
    return repr(value) if python else json.dumps(value)


@st.composite
def good_values_argv(draw):
    chosen = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3))
    argv, configs = ["values"], []
    for name in chosen:
        entry = registry.lookup(name)
        config = {"name": name, **ARGUMENTS[name]}
        how = draw(st.sampled_from(["tokens", "json", "file"]))
        if how != "file" and entry.torch_lr == "base_lr" and "base_lr" in config and draw(st.booleans()):
            del config["base_lr"]  # the optimizer's lr: then --base-lr (or its default) gives it
        if how == "tokens":
            python = draw(st.booleans())
            argv += [draw(st.sampled_from([name, entry.torch_class or name]))]
            argv += [f"{k}={spell(v, python)}" for k, v in config.items() if k != "name"]
        elif how == "json":
            argv.append(json.dumps(config))
        else:
            argv.append(f"@{name}.json")
        configs.append(config)
    steps = draw(st.integers(1, 40))
    base_lr = draw(st.none() | st.floats(1e-4, 10.0))
    argv += ["--steps", str(steps)] + ([] if base_lr is None else ["--base-lr", repr(base_lr)])
    fmt = draw(st.sampled_from(["tsv", "csv", "json"]))
    float32, momentum = draw(st.booleans()), draw(st.booleans())
    labels = [f"s{i}" for i in range(len(configs))]
    argv += ["--format", fmt] + [t for lab in labels for t in ("--label", lab)]
    argv += (["--float32"] if float32 else []) + ([] if momentum else ["--no-momentum"])
    return argv, configs, steps, 0.1 if base_lr is None else base_lr, fmt, float32, momentum, labels


def expected_columns(configs, steps, base_lr, float32, momentum, labels):
    """The schedules' values, jitted as the command line computes them."""
    columns = {}
    with jax.enable_x64(not float32):
        for config, lab in zip(configs, labels):
            lr_config, momentum_config = split(config)
            pairs = [(lab, lrjax.from_config(lr_config, base_lr=base_lr))]
            if momentum and momentum_config is not None:
                pairs.append((f"{lab} momentum", lrjax.from_config(momentum_config)))
            for key, fn in pairs:
                columns[key] = np.asarray(jax.jit(jax.vmap(fn))(jnp.arange(steps, dtype=jnp.int32)), np.float64)
    return columns


@settings(max_examples=8 * DEPTH, **FUZZ)
@given(case=good_values_argv())
def test_well_formed_values_equal_the_schedules(case, sandbox):
    argv, configs, steps, base_lr, fmt, float32, momentum, labels = case
    with run(argv, sandbox) as (code, out, err, changed):
        assert code == 0 and err == "" and changed == [], (argv, err)
    if fmt == "json":
        table = {k: np.asarray(v, np.float64) for k, v in json.loads(out).items()}
    else:
        rows = list(csv.reader(io.StringIO(out), delimiter="\t" if fmt == "tsv" else ","))
        table = {h: np.asarray([float(r[i]) for r in rows[1:]]) for i, h in enumerate(rows[0])}
    np.testing.assert_array_equal(table.pop("step"), np.arange(steps))
    expected = expected_columns(configs, steps, base_lr, float32, momentum, labels)
    assert list(table) == list(expected)
    for key, values in expected.items():
        np.testing.assert_array_equal(table[key], values, err_msg=key)
