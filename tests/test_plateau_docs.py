"""docs/plateau.md runs: every ``python`` block is executed and every ``pycon`` block is a doctest,
in page order, in one namespace (the convention of the documentation's pages)."""

from __future__ import annotations

import doctest
import os
import re

import jax

from conftest import requires_torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BLOCK = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[\w{}-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.S | re.M)


def run_page(path: str) -> int:
    """Runs the page's python and pycon blocks; returns how many ran (raises on the first failure)."""
    text = open(path, encoding="utf-8").read()
    namespace: dict = {"__name__": "__docs__"}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    ran = 0
    with jax.numpy_dtype_promotion("standard"):  # pages are written for JAX's default promotion
        for m in _BLOCK.finditer(text):
            indent = len(m.group("indent"))
            code = "".join(line[indent:] for line in m.group("body").splitlines(keepends=True))
            where = f"{os.path.relpath(path, ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
            if m.group("lang") == "python":
                exec(compile(code, where, "exec"), namespace)
            elif m.group("lang") == "pycon":
                test = parser.get_doctest(code, namespace, where, path, 0)
                result = runner.run(test, clear_globs=False)
                namespace.update(test.globs)
                assert result.failed == 0, f"{where}: the example above failed"
            else:
                continue
            ran += 1
    return ran


@requires_torch
def test_docs_plateau_page_runs():
    assert run_page(os.path.join(ROOT, "docs", "plateau.md")) >= 10
