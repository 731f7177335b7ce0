"""The ``lrjax`` command line (``lrjax._cli.main``, ``python -m lrjax``)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

import lrjax
from lrjax import _cli

matplotlib.use("Agg")

PNG = b"\x89PNG\r\n\x1a\n"


def run(argv, capsys):
    """``(exit status, stdout, stderr)`` of the command line."""
    try:
        code = _cli.main(argv)
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def read_table(text):
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    return rows[0], np.asarray([[float(v) for v in row] for row in rows[1:]])


def float64_values(schedule, steps):
    with jax.enable_x64(True):
        return np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(steps)), np.float64)


def test_plot_writes_a_png(tmp_path, capsys):
    out = tmp_path / "cmp.png"
    code, stdout, stderr = run(
        [
            "plot",
            "StepLR",
            "step_size=30",
            "ExponentialLR",
            "gamma=0.95",
            "--base-lr",
            "0.05",
            "--steps",
            "100",
            "-o",
            str(out),
            "--dpi",
            "40",
        ],
        capsys,
    )
    assert code == 0 and stdout == f"wrote {out}\n" and stderr == ""
    assert out.read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp.png"]  # no temporary file left beside it


@pytest.mark.parametrize("name,magic", [("lr.pdf", b"%PDF"), ("lr.svg", b"<?xml"), ("lr.PNG", PNG)])
def test_plot_format_follows_the_extension(name, magic, tmp_path, capsys):
    out = tmp_path / name
    code, _, stderr = run(
        ["plot", "OneCycleLR", "max_lr=0.1", "total_steps=20", "--steps", "20", "-o", str(out), "--dpi", "20"], capsys
    )
    assert code == 0 and stderr == ""
    assert out.read_bytes()[: len(magic)] == magic


def test_plot_replaces_an_existing_file_keeping_its_mode(tmp_path, capsys):
    out = tmp_path / "lr.png"
    out.write_bytes(b"old")
    out.chmod(0o640)
    code, _, _ = run(["plot", "StepLR", "step_size=3", "--steps", "10", "-o", str(out), "--dpi", "20"], capsys)
    assert code == 0 and out.read_bytes()[:8] == PNG
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.png"]


def test_plot_figure_has_the_schedules_and_momentum(capsys):
    args = _cli.parser().parse_args(
        [
            "plot",
            "CyclicLR",
            "base_lr=0.01",
            "max_lr=0.1",
            "step_size_up=5",
            "base_momentum=0.85",
            '{"name": "cosine_annealing_lr", "T_max": 20}',
            "--steps",
            "40",
            "--label",
            "cyclic",
            "--label",
            "cosine",
        ]
    )
    fig = _cli.figure(args)
    ax, twin = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["cyclic", "cosine"]
    np.testing.assert_array_equal(
        ax.get_lines()[1].get_ydata(), np.asarray(jax.vmap(lrjax.cosine_annealing_lr(0.1, T_max=20))(jnp.arange(40)))
    )
    momentum = lrjax.cyclic_momentum(0.85, 0.9, step_size_up=5)
    np.testing.assert_array_equal(twin.get_lines()[0].get_ydata(), np.asarray(jax.vmap(momentum)(jnp.arange(40))))


def test_values_equal_the_schedule_in_float64(capsys):
    code, stdout, _ = run(["values", "OneCycleLR", "max_lr=0.1", "total_steps=50", "--steps", "50"], capsys)
    assert code == 0
    header, rows = read_table(stdout)
    assert header == [
        "step",
        "one_cycle_lr(max_lr=0.1, total_steps=50)",
        "one_cycle_lr(max_lr=0.1, total_steps=50) momentum",
    ]
    np.testing.assert_array_equal(rows[:, 0], np.arange(50))
    np.testing.assert_array_equal(rows[:, 1], float64_values(lrjax.one_cycle_lr(0.1, total_steps=50), 50))
    np.testing.assert_array_equal(rows[:, 2], float64_values(lrjax.one_cycle_momentum(total_steps=50), 50))


def test_values_equal_torch(capsys):
    torch = pytest.importorskip("torch")
    code, stdout, _ = run(
        ["values", "CyclicLR", "base_lr=0.01", "max_lr=0.1", "step_size_up=3", "step_size_down=7", "--steps", "30"],
        capsys,
    )
    assert code == 0
    _, rows = read_table(stdout)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1, step_size_up=3, step_size_down=7)
    lrs, moms = [], []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(rows[:, 1], lrs, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(rows[:, 2], moms, rtol=1e-11, atol=1e-13)


def test_values_groups_json_and_files(tmp_path, capsys):
    config = tmp_path / "schedules.json"
    config.write_text(
        json.dumps(
            [
                {"name": "step_lr", "base_lr": [0.1, 0.2], "step_size": 2},
                {
                    "name": "SequentialLR",
                    "milestones": [3],
                    "schedules": [
                        {"name": "linear_lr", "start_factor": 0.5, "total_iters": 3},
                        {"name": "exponential_lr", "gamma": 0.5},
                    ],
                },
            ]
        )
    )
    code, stdout, _ = run(["values", f"@{config}", "--steps", "6", "--format", "json", "--base-lr", "1.0"], capsys)
    assert code == 0
    table = json.loads(stdout)
    assert table["step"] == list(range(6))
    np.testing.assert_array_equal(
        table["step_lr(base_lr=[0.1, 0.2], step_size=2) [group 1]"],
        float64_values(lrjax.step_lr([0.1, 0.2], 2), 6)[:, 1],
    )
    expected = lrjax.sequential_lr([lrjax.linear_lr(1.0, 0.5, total_iters=3), lrjax.exponential_lr(1.0, 0.5)], [3])
    np.testing.assert_array_equal(table["sequential_lr(milestones=[3])"], float64_values(expected, 6))


def test_values_float32_and_csv(capsys):
    code, stdout, _ = run(
        ["values", "ExponentialLR", "gamma=0.9", "--steps", "4", "--format", "csv", "--float32"], capsys
    )
    assert code == 0
    rows = list(csv.reader(io.StringIO(stdout)))
    assert rows[0] == ["step", "exponential_lr(base_lr=0.1, gamma=0.9)"]
    printed = np.asarray([float(r[1]) for r in rows[1:]])
    np.testing.assert_allclose(printed, 0.1 * 0.9 ** np.arange(4), rtol=1e-6)
    assert np.all(printed.astype(np.float32).astype(np.float64) == printed)  # float32 values


def test_cycle_momentum_false_and_no_momentum(capsys):
    _, stdout, _ = run(
        ["values", "CyclicLR", "base_lr=0.01", "max_lr=0.1", "cycle_momentum=false", "--steps", "3"], capsys
    )
    assert len(read_table(stdout)[0]) == 2
    _, stdout, _ = run(["values", "OneCycleLR", "max_lr=0.1", "total_steps=9", "--steps", "3", "--no-momentum"], capsys)
    assert len(read_table(stdout)[0]) == 2


@pytest.mark.parametrize(
    "argv,match",
    [
        (
            ["values", "StepLr", "step_size=3"],
            r"unknown schedule name 'StepLr'. Did you mean 'StepLR'\? Valid names: .*step_lr",
        ),
        (
            ["values", "StepLR", "step_sze=3"],
            r"unknown keyword 'step_sze' for step_lr \(did you mean 'step_size'\?\)\. "
            r"Valid keywords: base_lr, step_size, gamma",
        ),
        (["values", "StepLR"], r"step_lr needs 'step_size'"),
        (["values", "StepLR", "step_size=0"], r"step_size must be an integer >= 1"),
        (["values", "step_size=3"], r"comes before any schedule name"),
        (["values", "StepLR", "step_size=3", "step_size=4"], r"step_size is given twice"),
        (["values", '{"name": "StepLR", '], r"not valid JSON"),
        (["values", "@/nonexistent/config.json"], r"cannot read"),
        (["values", "ReduceLROnPlateau"], r"without a metric"),
        (
            ["values", "StepLR", "step_size=3", "--steps", "0"],
            r"--steps must be an integer from 1 to 10,000,000, got 0",
        ),
        (["plot", "StepLR", "step_size=3", "--label", "a", "--label", "b"], r"one --label per schedule"),
        (["values", "CyclicLR", "base_lr=0.1", "max_lr=1", "base_momentum=2"], r"base_momentum"),
    ],
)
def test_usage_errors_exit_2_with_a_message(argv, match, capsys):
    code, stdout, stderr = run(argv, capsys)
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"lrjax {argv[0]}: error: ") and stderr.count("\n") == 1
    assert re.search(match, stderr), stderr


def test_argparse_errors_exit_2_in_one_line(capsys):
    code, _, stderr = run(["plot"], capsys)
    assert (
        code == 2
        and stderr == "lrjax plot: error: the following arguments are required: SCHEDULE (see lrjax plot --help)\n"
    )
    code, _, stderr = run(["draw", "StepLR"], capsys)
    assert code == 2 and stderr.startswith("lrjax: error: argument {plot,values,list}: invalid choice: 'draw'")
    assert stderr.count("\n") == 1
    code, _, stderr = run(["values", "StepLR", "--steps", "ten"], capsys)
    assert code == 2 and "argument --steps: invalid int value: 'ten'" in stderr and stderr.count("\n") == 1
    code, _, stderr = run([], capsys)
    assert code == 2 and stderr.count("\n") == 1


def test_help_and_version_exit_0(capsys):
    code, stdout, _ = run(["values", "--help"], capsys)
    assert code == 0 and "at most 10,000,000, and at most 20,000,000 values" in " ".join(stdout.split())
    code, stdout, _ = run(["--version"], capsys)
    assert code == 0 and stdout == f"lrjax {lrjax.__version__}\n"


def test_options_between_schedules(capsys):
    code, stdout, stderr = run(
        [
            "values",
            "StepLR",
            "step_size=2",
            "--steps",
            "4",
            "ExponentialLR",
            "gamma=0.5",
            "--label",
            "step",
            "--label",
            "exp",
            "--format",
            "json",
        ],
        capsys,
    )
    assert code == 2 and stdout == "" and "two columns are named 'step'" in stderr  # the step column's name
    code, stdout, _ = run(
        [
            "values",
            "StepLR",
            "step_size=2",
            "--steps",
            "4",
            "ExponentialLR",
            "gamma=0.5",
            "--label",
            "a",
            "--label",
            "b",
        ],
        capsys,
    )
    assert code == 0
    header, rows = read_table(stdout)
    assert header == ["step", "a", "b"]
    np.testing.assert_array_equal(rows[:, 2], float64_values(lrjax.exponential_lr(0.1, 0.5), 4))


def test_list(capsys):
    code, stdout, _ = run(["list"], capsys)
    assert code == 0
    lines = stdout.splitlines()
    names = [line.split("(")[0] for line in lines if not line.startswith(" ")]
    assert names == lrjax.registry.names()
    at = lines.index("step_lr(base_lr, step_size, gamma=0.1)  (torch: StepLR)")
    example = " ".join(f"{k}={v}" for k, v in lrjax.registry.lookup("step_lr").example.items())
    assert lines[at + 1] == f"  e.g. lrjax plot StepLR {example}"  # numbers as typed
    at = [line.split("(")[0] for line in lines].index("lambda_lr")
    assert not lines[at + 1].startswith(" ")  # no command line can give its lr_lambda
    code, stdout, _ = run(["list", "OneCycleLR"], capsys)
    first, second = stdout.splitlines()
    assert code == 0 and first.startswith("one_cycle_lr(max_lr, total_steps=None")
    assert first.endswith("(torch: OneCycleLR; momentum: cycle_momentum=True, base_momentum=0.85, max_momentum=0.95)")
    assert second.startswith("  e.g. lrjax plot OneCycleLR max_lr=")
    code, _, stderr = run(["list", "StepLr"], capsys)
    assert code == 2 and stderr.startswith("lrjax list: error: unknown schedule name 'StepLr'. Did you mean 'StepLR'?")


def test_values_parse():
    assert _cli._value("30") == 30 and _cli._value("[30, 80]") == [30, 80] and _cli._value("30,80") == [30, 80]
    assert _cli._value("True") is True and _cli._value("true") is True and _cli._value("None") is None
    assert _cli._value("cos") == "cos" and _cli._value("1e-3") == 1e-3 and _cli._value("'a b'") == "a b"
    assert _cli._value("[[1, 2], {'a': (3,)}]") == [[1, 2], {"a": [3]}]
    assert _cli._value("2" * 4000) == int("2" * 4000)  # any size of integer Python reads


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "has no value"),
        ("nan", "not a finite number"),
        ("NaN", "not a finite number"),
        ("-inf", "not a finite number"),
        ("1e400", "not a finite number"),
        ("[1, Infinity]", "not a finite number"),
        ("9" * 5000, "5000 digits is too large"),
        ("[30,80", "neither JSON, a Python literal nor a bare word"),
        ("1j", "is a complex"),
        ("b'x'", "is a bytes"),
        ("{1, 2}", "is a set"),
        ('{"a": 1, "a": 2}', "'a' appears twice"),
        ("{'a': 1, 'a': 2}", "'a' appears twice"),
        ("[" * 100 + "]" * 100, "nested more than 64 deep"),
        ("a b", "neither JSON"),
        ("{1: 2}", "keys must be strings"),
    ],
)
def test_values_that_are_refused(text, match):
    with pytest.raises(_cli.UsageError, match=re.escape(match)):
        _cli._value(text, "key=...")


def test_python_dash_m(tmp_path):
    out = tmp_path / "m.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lrjax",
            "plot",
            "OneCycleLR",
            "max_lr=0.1",
            "total_steps=100",
            "-o",
            str(out),
            "--dpi",
            "30",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == PNG
