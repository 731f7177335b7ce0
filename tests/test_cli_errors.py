"""Every bad argument, value, flag or file of the ``lrjax`` command line: exit status 2, one line on stderr
naming what is wrong, nothing on stdout, no file written (and no traceback, in-process or as a process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import matplotlib
import pytest

import lrjax
from lrjax import _cli

matplotlib.use("Agg")

ONE_CYCLE = ["OneCycleLR", "max_lr=0.1", "total_steps=10"]
STEP = ["StepLR", "step_size=3"]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working directory holding bad (and good) input files."""
    (tmp_path / "binary.json").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "deep_list.json").write_text("[" * 100 + "]" * 100)
    deep = {"name": "step_lr", "step_size": 3}
    for _ in range(100):
        deep = {"a": deep}
    (tmp_path / "deep_object.json").write_text(json.dumps(deep))
    (tmp_path / "abyss.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "plateau.json").write_text(json.dumps({"name": "ReduceLROnPlateau", "patience": 2}))
    (tmp_path / "huge_int.json").write_text('{"name": "StepLR", "step_size": ' + "7" * 5000 + "}")
    (tmp_path / "nan.json").write_text('{"name": "StepLR", "step_size": 3, "gamma": NaN}')
    (tmp_path / "twice.json").write_text('{"name": "StepLR", "step_size": 3, "step_size": 4}')
    (tmp_path / "bools.json").write_text(
        json.dumps({"name": "OneCycleLR", "max_lr": 0.1, "total_steps": 10, "three_phase": "no"})
    )
    (tmp_path / "numbers.json").write_text("[1, 2]")
    (tmp_path / "a_directory").mkdir()
    (tmp_path / "a_file").write_text("x")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


CASES = [
    # the defects as filed
    (["values", "StepLR", "step_size=" + "9" * 5000], r"step_size=.*an integer of 5000 digits is too large"),
    (["values", *STEP, "--steps", "10000000000"], r"--steps must be an integer from 1 to 10,000,000, got 10000000000"),
    (["values", "@binary.json"], r"binary.json is not UTF-8 text \(byte 0x80 at offset 128\)"),
    (["values", "@deep_list.json"], r"deep_list.json: lists/objects nested more than 64 deep"),
    (["values", "@deep_object.json"], r"deep_object.json: lists/objects nested more than 64 deep"),
    (["values", "@abyss.json"], r"abyss.json: JSON nested too deeply"),
    (["plot", *STEP, "-o", "x.xyz"], r"-o x.xyz: unknown image extension .xyz; valid: .*\.pdf, .*\.png, .*\.svg"),
    (["plot", *STEP, "--dpi", "0"], r"--dpi must be an integer from 1 to 1000, got 0"),
    (["plot", *STEP, "--size", "0", "0"], r"--size W H: W must be from 4 to 100 inches, got 0.0"),
    (["plot", *STEP, "-o", "a_file/x.png"], r"-o a_file/x.png: a_file is not a directory"),
    (
        ["plot", *STEP, "-o", "a_directory/"],
        r"-o a_directory/ is a directory; give a file name, e.g. a_directory/lrjax-plot.png",
    ),
    (
        ["values", *ONE_CYCLE, "three_phase=no"],
        r"three_phase of one_cycle_lr must be true or false \(JSON\) or True or False \(Python\), got 'no'",
    ),
    (
        ["values", *ONE_CYCLE, "nesterov=maybe"],
        r"unknown keyword 'nesterov' for one_cycle_lr. Valid keywords: max_lr, "
        r".*three_phase, cycle_momentum, base_momentum",
    ),
    # booleans: exactly true/false/True/False
    (["values", *ONE_CYCLE, "three_phase=TRUE"], r"three_phase .* got 'TRUE'"),
    (["values", *ONE_CYCLE, "three_phase=1"], r"three_phase .* got 1"),
    (["values", *ONE_CYCLE, 'three_phase="true"'], r"three_phase .* got 'true'"),
    (["values", *ONE_CYCLE, "three_phase=null"], r"three_phase .* got None"),
    (["values", "@bools.json"], r"three_phase .* got 'no'"),
    (
        ["values", "CyclicLR", "base_lr=0.01", "max_lr=0.1", "cycle_momentum=yes"],
        r"cycle_momentum of cyclic_lr must be true",
    ),
    (
        ["values", "per_epoch", 'schedule={"name": "StepLR", "step_size": 2}', "steps_per_epoch=3", "fractional=0"],
        r"fractional of per_epoch must be true or false",
    ),
    (["values", "StepLR", "step_size=true"], r"step_size of step_lr is not a boolean keyword, got True"),
    (["values", "MultiStepLR", "milestones=[2, False]"], r"milestones of multi_step_lr is not a boolean keyword"),
    # numbers
    (["values", *STEP, "gamma=nan"], r"gamma=nan: not a finite number; numbers must be finite"),
    (["values", *STEP, "gamma=-Infinity"], r"gamma=-Infinity: -Infinity is not a finite number"),
    (["values", *STEP, "gamma=1e400"], r"gamma=1e400: inf is not a finite number"),
    (["values", "@nan.json"], r"nan.json: NaN is not a finite number"),
    (["values", "@huge_int.json"], r"huge_int.json: .*4300"),
    (["values", *STEP, "gamma=1j"], r"gamma=1j: 1j is a complex"),
    (["values", *STEP, "--base-lr", "nan"], r"--base-lr must be a finite number >= 0 .*got nan"),
    (["values", *STEP, "--base-lr", "-0.1"], r"--base-lr must be a finite number >= 0"),
    (["values", *STEP, "--base-lr", "1e400"], r"--base-lr must be a finite number >= 0 .*got inf"),
    (["values", *STEP, "--base-lr", "1e300", "--float32"], r"step_lr.*(is inf at step 0|base_lr)"),
    (["values", *STEP, "--steps", "-5"], r"--steps must be an integer from 1 to 10,000,000, got -5"),
    (["values", *STEP, "--steps", "1e3"], r"argument --steps: invalid int value: '1e3'"),
    (["plot", *STEP, "--dpi", "-3"], r"--dpi must be an integer from 1 to 1000"),
    (["plot", *STEP, "--dpi", "10000000000"], r"--dpi must be an integer from 1 to 1000"),
    (["plot", *STEP, "--size", "nan", "3"], r"W must be from 4 to 100 inches, got nan"),
    (["plot", *STEP, "--size", "6", "inf"], r"H must be from 2 to 100 inches, got inf"),
    (["plot", *STEP, "--size", "1e6", "1e6"], r"W must be from 4 to 100 inches"),
    (
        ["plot", *STEP, "--size", "100", "100", "--dpi", "1000"],
        r"is 100000 x 100000 pixels; at most 10000 pixels a side",
    ),
    (["plot", *STEP, "--size", "6"], r"argument --size: expected 2 arguments"),
    (
        ["values", *STEP, "base_lr=" + json.dumps([0.1] * 3), "--steps", "10000000"],
        r"10,000,000 steps x 3 columns is 30,000,000 values; at most 20,000,000: lower --steps",
    ),
    (["plot", *STEP, "base_lr=" + json.dumps([0.1] * 65)], r"the plot would have 65 lines .*at most 64"),
    # empty strings
    (["values", ""], r"an empty argument where a schedule was expected"),
    (["values", *STEP, "gamma="], r"gamma= has no value"),
    (["values", *STEP, "--label", ""], r"--label must not be empty"),
    (["plot", *STEP, "-o", ""], r"-o needs a file name ending in one of .*\.png"),
    (["values", "@"], r"@ needs a file name right after it"),
    (["list", ""], r"unknown schedule name ''"),
    # files
    (["values", "@a_directory"], r"cannot read a_directory: Is a directory"),
    (["values", "@missing.json"], r"cannot read missing.json: No such file or directory"),
    (["values", "@empty.json"], r"empty.json is not valid JSON"),
    (["values", "@numbers.json"], r"numbers.json: a schedule config must be a JSON object with a 'name', got 1"),
    (["values", "@twice.json"], r"twice.json: key 'step_size' appears twice"),
    (["values", "StepLR", 'step_size={"a": 1, "a": 2}'], r"key 'a' appears twice"),
    # names and keywords
    (["values", "SGD"], r"unknown schedule name 'SGD'. Valid names: chained_scheduler, .*step_lr"),
    (
        ["values", "StepLR", "step_size=3", "step_sze=3"],
        r"unknown keyword 'step_sze' for step_lr \(did you mean 'step_size'\?\)",
    ),
    (["values", "StepLR", "name=ExponentialLR"], r"name= is not a keyword of StepLR"),
    (["values", "StepLR", "2x=3"], r"'2x' is not a keyword name"),
    (["values", "StepLR", "step_size=[30,80"], r"neither JSON, a Python literal nor a bare word"),
    (["values", "LambdaLR"], r"lambda_lr needs a Python function \(lr_lambda\)"),
    (
        ["values", "CyclicLR", "base_lr=0.01", "max_lr=0.1", "scale_fn=abs"],
        r"scale_fn of cyclic_lr is a Python function",
    ),
    (
        ["values", "SequentialLR", 'schedules=[{"name": "StepLR", "step_size": 2, "gama": 0.5}]', "milestones=[]"],
        r"sequential_lr schedules\[0\]: unknown keyword 'gama' for step_lr \(did you mean 'gamma'\?\)",
    ),
    (["values", "SequentialLR", "schedules=3", "milestones=[]"], r"schedules of sequential_lr takes schedule configs"),
    (
        [
            "values",
            "SequentialLR",
            'schedules=[{"name": "CyclicLR", "base_lr": 0.01, "max_lr": 0.1, "base_momentum": 0.8}]',
            "milestones=[]",
        ],
        r"base_momentum: the momentum of a CyclicLR is plotted only for a top-level schedule",
    ),
    (["values", "StepLR", "step_size=0"], r"step_lr: step_size"),
    # plateau configs
    (["values", "@plateau.json"], r"reduce_lr_on_plateau reduces the lr when a metric stops improving"),
    (
        ["plot", "ChainedScheduler", 'schedules=[{"name": "ReduceLROnPlateau"}]'],
        r"chained_scheduler schedules\[0\]: reduce_lr_on_plateau reduces the lr",
    ),
    # output paths and text
    (["plot", *STEP, "-o", "a_directory"], r"-o a_directory is a directory"),
    (["plot", *STEP, "-o", "missing/x.png"], r"-o missing/x.png: directory missing does not exist"),
    (["plot", *STEP, "-o", "lr"], r"-o lr has no extension; the extension chooses the format: one of .*\.png"),
    (["plot", *STEP, "-o", "a_directory/.png"], r"has no extension"),
    (["plot", *STEP, "--title", r"$\frac$"], r"--title .* is not valid matplotlib mathtext"),
    (["plot", *STEP, "--label", "_hidden"], r"matplotlib leaves labels that start with '_' out of the legend"),
    (["values", *STEP, *STEP, "--format", "json"], r"two columns are named 'step_lr\(base_lr=0.1, step_size=3\)'"),
    (["values", *STEP, "--label", "a", "--label", "b"], r"give one --label per schedule \(1\), got 2"),
]


@pytest.mark.parametrize("argv,match", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_exits_2_with_one_line(argv, match, sandbox, capsys):
    before = listing(sandbox)
    code = _cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert err.startswith(f"lrjax {argv[0]}: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert re.search(match, err), err
    assert listing(sandbox) == before  # nothing written, no temporary file left


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, a directory no one can write in")
def test_unwritable_output_directory(sandbox, capsys):
    code = _cli.main(["plot", *STEP, "-o", "/proc/lrjax.png"])
    assert code == 2 and capsys.readouterr().err.startswith(
        "lrjax plot: error: -o /proc/lrjax.png: cannot write in /proc"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any directory")
def test_read_only_output_directory(sandbox, capsys):
    locked = sandbox / "locked"
    locked.mkdir(mode=0o500)
    code = _cli.main(["plot", *STEP, "-o", "locked/x.png"])
    assert code == 2 and "cannot write in locked: Permission denied" in capsys.readouterr().err
    assert list(locked.iterdir()) == []


def test_output_path_is_checked_before_computing(sandbox, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("a schedule was built before -o was checked")

    monkeypatch.setattr(lrjax, "from_config", no_work)
    assert _cli.main(["plot", *STEP, "-o", "x.xyz"]) == 2
    assert "unknown image extension" in capsys.readouterr().err


def test_failed_render_leaves_the_old_file_and_no_temporary(sandbox, capsys, monkeypatch):
    from matplotlib.figure import Figure

    (sandbox / "lr.png").write_bytes(b"old image")

    def fails(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"half an image")
        raise RuntimeError("renderer gave up")

    monkeypatch.setattr(Figure, "savefig", fails)
    before = listing(sandbox)
    assert _cli.main(["plot", *STEP, "-o", "lr.png"]) == 2
    assert capsys.readouterr().err == "lrjax plot: error: cannot render lr.png: RuntimeError: renderer gave up\n"
    assert (sandbox / "lr.png").read_bytes() == b"old image" and listing(sandbox) == before


def test_library_errors_of_any_type_are_reported_in_one_line(sandbox, capsys, monkeypatch):
    def overflow(*args, **kwargs):
        raise OverflowError("int too large\nto convert")

    monkeypatch.setattr(lrjax, "from_config", overflow)
    assert _cli.main(["values", *STEP]) == 2
    assert capsys.readouterr().err == "lrjax values: error: step_lr: OverflowError: int too large to convert\n"


def test_a_defect_in_the_cli_is_exit_1_not_a_traceback(sandbox, capsys, monkeypatch):
    monkeypatch.setattr(_cli, "table", lambda args: 1 / 0)
    assert _cli.main(["values", *STEP]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lrjax values: internal error: ZeroDivisionError: division by zero") and err.count("\n") == 1


ENV = {**os.environ, "MPLBACKEND": "Agg"}


def test_as_a_process_no_traceback(tmp_path):
    bad = subprocess.run(
        [sys.executable, "-m", "lrjax", "values", *STEP, "--steps", "10000000000"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=ENV,
        check=False,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "lrjax values: error: --steps must be an integer from 1 to 10,000,000, got 10000000000\n"


def test_as_a_process_a_broken_pipe_is_quiet(tmp_path):
    piped = subprocess.run(
        f"{sys.executable} -m lrjax values StepLR step_size=3 --steps 200000 | head -n 2",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=ENV,
        check=False,
    )
    assert piped.stdout.splitlines() == ["step\tstep_lr(base_lr=0.1, step_size=3)", "0\t0.1"]
    assert piped.stderr == ""
