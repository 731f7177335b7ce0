"""The documentation: the site builds without a warning, documents every public name, and every
code example of its pages runs and prints what the page says.

* ``python`` blocks are executed, in page order, in one namespace per page;
* ``pycon`` blocks (``>>>``) are doctests in that same namespace;
* ``console`` blocks are ``$ lrjax ...`` commands whose output must match (``...`` matches anything);
* ``bash`` blocks are instructions (installs, long trainings) and ``text`` blocks (or blocks
  without a language) show output; they are not run.
"""

from __future__ import annotations

import doctest
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import types

import jax
import pytest
from conftest import requires_torch

import lrjax
from lrjax import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
PAGES = sorted(glob.glob(os.path.join(DOCS, "*.md")))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
NOT_RUN = ("bash", "text", "")  # instructions, and printed output (a block without a language)

_BLOCK = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w{}-]*)[ ]*(?P<arg>[^\n]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.S | re.M
)


def code_blocks(text: str) -> list[tuple[str, str, int]]:
    """``(language, code, line)`` of every fenced block of a Markdown page, in order (for a MyST
    directive such as ``{include}``, its argument is the code)."""
    blocks = []
    for m in _BLOCK.finditer(text):
        indent = len(m.group("indent"))
        body = "".join(line[indent:] for line in m.group("body").splitlines(keepends=True))
        if m.group("lang").startswith("{"):
            body = m.group("arg")
        blocks.append((m.group("lang"), body, text.count("\n", 0, m.start()) + 1))
    return blocks


def page_blocks(path: str) -> list[tuple[str, str, str]]:
    """``(language, code, where)`` of every block of a page, the files it includes expanded."""
    out = []
    for lang, code, line in code_blocks(open(path, encoding="utf-8").read()):
        if lang == "{include}":
            out += page_blocks(os.path.join(os.path.dirname(path), code.strip()))
        else:
            out.append((lang, code, f"{os.path.relpath(path, ROOT)}:{line}"))
    return out


def test_code_blocks_are_found():
    text = "a\n```python\nx = 1\n```\n\n* item\n\n  ```pycon\n  >>> 1\n  1\n  ```\n```{include} ../a.md\n```\n"
    assert code_blocks(text) == [("python", "x = 1\n", 2), ("pycon", ">>> 1\n1\n", 8), ("{include}", "../a.md", 12)]


# Runs `lrjax` commands in one fresh interpreter (as the console script does, through
# lrjax._cli.main) and prints, per command, its exit status and its stdout + stderr.
_CONSOLE_DRIVER = r"""
import contextlib, io, json, sys
from lrjax._cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            status = main(argv)
        except SystemExit as e:
            status = e.code
    results.append([status, out.buffer.getvalue().decode("utf-8")])
print(json.dumps(results))
"""


def console_commands(block: str, where: str) -> list[tuple[str, str]]:
    """``(command, expected output)`` of each ``$ `` line of a console block (``\\`` continues)."""
    commands: list[tuple[str, str]] = []
    continued = False
    for line in block.splitlines():
        if continued:
            commands[-1] = (commands[-1][0] + " " + line.strip().removesuffix("\\"), "")
        elif line.startswith("$ "):
            commands.append((line[2:].removesuffix("\\"), ""))
        elif commands:
            commands[-1] = (commands[-1][0], commands[-1][1] + line + "\n")
        else:
            raise AssertionError(f"{where}: a console block starts with a '$ ' command")
        continued = line.endswith("\\")
    return commands


def _run_console(commands: list[tuple[str, str, str]], cwd: str) -> None:
    """Runs ``(where, command, expected)`` lrjax commands and compares their output."""
    argvs = []
    for where, command, _ in commands:
        argv = shlex.split(command)
        if argv[:1] != ["lrjax"]:
            raise AssertionError(
                f"{where}: console blocks run `lrjax ...` commands; put {command!r} "
                "in a bash block (instructions) or make it an lrjax command"
            )
        argvs.append(argv[1:])
    os.makedirs(os.path.join(cwd, "docs"), exist_ok=True)  # for `-o docs/...`
    proc = subprocess.run(
        [sys.executable, "-c", _CONSOLE_DRIVER, json.dumps(argvs)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": ROOT},
    )
    assert proc.returncode == 0, proc.stderr
    checker = doctest.OutputChecker()
    for (where, command, expected), (status, got) in zip(commands, json.loads(proc.stdout.splitlines()[-1])):
        assert checker.check_output(expected, got, FLAGS), (
            f"{where}: `{command}` (exit status {status}) printed\n{got}\nexpected\n{expected}"
        )


def _page_id(path: str) -> str:
    return os.path.basename(path)


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_page_examples_run(page, tmp_path, monkeypatch):
    """Every python/pycon/console example of the page runs, and prints what the page says."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=FLAGS)
    console = []
    # The pages are written for JAX's default (standard) promotion, as users run them; the test
    # suite otherwise runs with strict promotion (conftest.py).
    with jax.numpy_dtype_promotion("standard"):
        for lang, code, where in page_blocks(page):
            if lang == "python":
                exec(compile(code, where, "exec"), namespace)
            elif lang == "pycon":
                test = parser.get_doctest(code, namespace, where, where.split(":")[0], 0)
                result = runner.run(test, clear_globs=False)
                namespace.update(test.globs)  # what a block defines, later blocks use
                assert result.failed == 0, f"{where}: the doctest above failed"
            elif lang == "console":
                console += [(where, cmd, out) for cmd, out in console_commands(code, where)]
            elif not lang.startswith("{"):  # a MyST directive ({toctree}) is no example
                assert lang in NOT_RUN, f"{where}: a ```{lang} block: use python, pycon, console, or {NOT_RUN}"
    if console:
        _run_console(console, str(tmp_path))


def test_docs_build_without_warnings(tmp_path):
    """``sphinx-build -W``: any warning (a broken link, a docstring autodoc cannot read, a page
    outside the table of contents) fails the build."""
    out = tmp_path / "html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-q",
            "-d",
            str(tmp_path / "doctrees"),
            DOCS,
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and "WARNING" not in proc.stderr + proc.stdout, proc.stderr + proc.stdout
    for page in PAGES + glob.glob(os.path.join(DOCS, "*.rst")):
        docname = os.path.splitext(os.path.basename(page))[0]
        if docname in ("parity",):  # written by scripts/parity_report.py, included by parity_tests.md
            continue
        assert (out / f"{docname}.html").exists(), docname
    api = (out / "api.html").read_text(encoding="utf-8")
    modules = [registry]
    for name in lrjax.__all__:
        obj = getattr(lrjax, name)
        if isinstance(obj, types.ModuleType):
            modules.append(obj)
        else:
            assert f'id="lrjax.{name}"' in api, f"lrjax.{name} is missing from the API reference"
    for module in modules:  # lrjax.registry, lrjax.testing, ...: the module and its __all__
        assert f'id="module-{module.__name__}"' in api, f"{module.__name__} is missing"
        for name in module.__all__:
            assert f'id="{module.__name__}.{name}"' in api, f"{module.__name__}.{name} is missing"
    migration = (out / "migration.html").read_text(encoding="utf-8")
    table = migration[migration.index('class="lrjax-torch-table') :]
    table = table[: table.index("</table>")]
    for entry in registry.entries():  # the generated table: torch's page and the API entry of each class
        if entry.torch_class is not None:
            assert f'href="{entry.torch_link}"' in table and f'href="api.html#lrjax.{entry.name}"' in table, entry.name
    gallery = (out / "gallery.html").read_text(encoding="utf-8")
    for png in glob.glob(os.path.join(DOCS, "gallery", "*.png")):
        assert os.path.basename(png) in gallery, f"{png} is not shown in the gallery"


def lrjax_docs():
    """docs/_ext/lrjax_docs.py, the Sphinx extension."""
    sys.path.insert(0, os.path.join(DOCS, "_ext"))
    try:
        import lrjax_docs as module
    finally:
        sys.path.pop(0)
    return module


@requires_torch
def test_migration_guide_covers_every_torch_class():
    """migration.md's table is generated from the registry, so it lists every torch class, with torch's signature
    (less the optimizer and last_epoch) and lrjax's; the hand-written sections are on registry classes. A class
    without a section is covered by the table and its docstring in the API reference."""
    import inspect

    text = open(os.path.join(DOCS, "migration.md"), encoding="utf-8").read()
    assert re.search(r"^```\{lrjax-torch-table\}\n```$", text, re.M), "migration.md does not generate its table"
    docs = lrjax_docs()
    rows = docs.torch_table_rows()
    assert [row.torch_class for row in rows] == list(registry.torch_classes())
    for row in rows:
        entry = registry.lookup(row.torch_class)
        params = [p for p in inspect.signature(entry.torch_type()).parameters if p not in ("optimizer", "last_epoch")]
        assert re.fullmatch(rf"([\w.]+\.)?{entry.torch_class}\(" + ".*".join(params) + r".*\)", row.torch), row
        assert "optimizer" not in row.torch and "last_epoch" not in row.torch and row.link == entry.torch_link
        assert row.lrjax[0] == (entry.name, entry.name + docs.signature(entry.factory))
        if entry.momentum is not None:
            assert row.lrjax[1][0] == entry.momentum
    step = next(row for row in rows if row.torch_class == "StepLR")
    assert step.torch == "StepLR(step_size, gamma=0.1)"
    assert step.lrjax == [("step_lr", "step_lr(base_lr, step_size, gamma=0.1)")]
    sections = set(re.findall(r"^## `(\w+)`$", text, re.M))
    assert sections and sections <= set(registry.torch_classes()), sections - set(registry.torch_classes())


@requires_torch
def test_torch_quirks_page_numbers_are_torchs():
    """Every number docs/torch_quirks.md quotes is re-run against the installed torch."""
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "verify_torch_quirks.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.stdout.count("[ok]") >= 100 and "MISMATCH" not in proc.stdout


def test_project_cites_only_its_own_files():
    """Docs, tests and code cite the project's own pages, never files outside the repository."""
    offenders = []
    for pattern in (
        "docs/*.md",
        "docs/*.rst",
        "docs/*.py",
        "tests/*.py",
        "tests/refcases/*.py",
        "scripts/*.py",
        "lrjax/*.py",
        "examples/**/*.py",
        "benchmarks/*.py",
        "*.md",
        "pyproject.toml",
    ):
        for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
            if os.path.abspath(path) == os.path.abspath(__file__):
                continue
            text = open(path, encoding="utf-8").read()
            if re.search(r"\.\./shared/|TORCH_QUIRKS", text):  # the page is docs/torch_quirks.md
                offenders.append(os.path.relpath(path, ROOT))
    assert not offenders, f"these cite files outside the repository: {offenders}"
