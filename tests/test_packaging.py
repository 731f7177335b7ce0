"""The built wheel: its metadata (name, version, license, dependencies, entry point, py.typed, the
README as description) and, installed into a fresh virtual environment, the ``lrjax`` command and
``import lrjax`` from the wheel rather than from the checkout."""

from __future__ import annotations

import csv
import email.parser
import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile

import pytest
from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYPROJECT = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))
PROJECT = PYPROJECT["project"]


def _version() -> str:
    text = open(os.path.join(ROOT, "lrjax", "__init__.py"), encoding="utf-8").read()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    """Builds the wheel from a copy of what the sdist holds (the checkout is left untouched)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    shutil.copytree(os.path.join(ROOT, "lrjax"), src / "lrjax", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = (tmp / "dist").glob("lrjax-*.whl")
    return str(built)


def _dist_info(zf: zipfile.ZipFile) -> str:
    (info,) = {n.split("/")[0] for n in zf.namelist() if n.split("/")[0].endswith(".dist-info")}
    return info


def test_wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as zf:
        info = _dist_info(zf)
        meta = email.parser.Parser().parsestr(zf.read(f"{info}/METADATA").decode("utf-8"))
        entry_points = zf.read(f"{info}/entry_points.txt").decode("utf-8")
        names = zf.namelist()
        license_text = zf.read(f"{info}/licenses/LICENSE").decode("utf-8")

    assert meta["Name"] == "lrjax" and meta["Version"] == _version() == PROJECT["version"]
    assert os.path.basename(wheel) == f"lrjax-{_version()}-py3-none-any.whl"
    assert meta["License-Expression"] == "Apache-2.0"
    assert license_text == open(os.path.join(ROOT, "LICENSE"), encoding="utf-8").read()
    assert "Apache License" in license_text and "Version 2.0" in license_text
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Summary"] == PROJECT["description"]

    # Every dependency and extra of pyproject.toml, as pip will read them.
    requires = {str(Requirement(r)) for r in meta.get_all("Requires-Dist")}
    declared = {str(Requirement(dep)) for dep in PROJECT["dependencies"]}
    declared |= {
        str(Requirement(f'{dep}; extra == "{extra}"'))
        for extra, deps in PROJECT["optional-dependencies"].items()
        for dep in deps
    }
    assert requires == declared
    assert set(meta.get_all("Provides-Extra")) == set(PROJECT["optional-dependencies"])
    assert not any(Requirement(r).name == "chex" and not Requirement(r).marker for r in requires)  # tests only

    # The command line and the typing marker.
    assert re.search(r"^\[console_scripts\]\s*\nlrjax = lrjax\._cli:main\s*$", entry_points, re.M)
    assert "lrjax/py.typed" in names
    modules = {f"lrjax/{n}" for n in os.listdir(os.path.join(ROOT, "lrjax")) if n.endswith(".py")}
    assert modules <= set(names)
    assert {n.split("/")[0] for n in names} == {"lrjax", info}  # no tests, examples, benchmarks


def test_wheel_description_is_the_readme(wheel):
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(f"{_dist_info(zf)}/METADATA").decode("utf-8")
    meta = email.parser.Parser().parsestr(text)
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().strip() == open(os.path.join(ROOT, "README.md"), encoding="utf-8").read().strip()


def test_readme_as_package_description_has_no_relative_links():
    """PyPI shows the README away from the repository: a relative link or image there is broken.
    Links must be absolute URLs (or ``#anchors``)."""
    from markdown_it import MarkdownIt

    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    tokens = MarkdownIt("commonmark").enable("table").parse(readme)
    targets = []
    for token in tokens:
        for child in token.children or []:
            if child.type == "link_open":
                targets.append(child.attrs["href"])
            elif child.type == "image":
                targets.append(child.attrs["src"])
    targets += re.findall(r"""<(?:a|img)\b[^>]*?(?:href|src)=["']([^"']+)""", readme)  # raw HTML
    relative = [t for t in targets if not re.match(r"^(https?:|mailto:|#)", t)]
    assert not relative, f"README.md links {relative}: they break on PyPI; use absolute URLs"
    assert len(readme.encode("utf-8")) <= 10 * 1024, "the README is a front page of at most 10 KB"


def test_wheel_installs_into_a_fresh_venv(wheel, tmp_path):
    """The wheel, installed with --no-deps into a new virtual environment that sees this
    environment's packages (jax, optax, ...) through a .pth file but not the checkout: the
    ``lrjax`` script and ``import lrjax`` come from the wheel."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # This environment's dependencies, as plain paths: its .pth files (among them the editable
    # install of the checkout) are not processed there.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    with open(os.path.join(site, "_lrjax_test_deps.pth"), "w") as f:
        f.write("\n".join(sorted(deps)) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--quiet", wheel],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    probe = (
        "import importlib.metadata as m, lrjax; print(lrjax.__file__); print(m.version('lrjax')); "
        "print([e.value for e in m.entry_points(group='console_scripts') if e.name == 'lrjax'])"
    )
    out = subprocess.run(
        [str(python), "-I", "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr
    where, version, scripts = out.stdout.split("\n")[:3]
    assert where.startswith(site) and not where.startswith(ROOT), where
    assert version == _version() and scripts == "['lrjax._cli:main']"

    listed = subprocess.run(
        [str(venv / "bin" / "lrjax"), "list"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert listed.returncode == 0, listed.stderr
    assert "step_lr" in listed.stdout and "StepLR" in listed.stdout
    values = subprocess.run(
        [
            str(venv / "bin" / "lrjax"),
            "values",
            "StepLR",
            "base_lr=1",
            "step_size=2",
            "--steps",
            "4",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert values.returncode == 0, values.stderr
    rows = list(csv.reader(io.StringIO(values.stdout)))[1:]
    assert [float(row[1]) for row in rows] == pytest.approx([1.0, 1.0, 0.1, 0.1], rel=1e-12)
