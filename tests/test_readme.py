"""The README's examples run: its doctests and every Python block."""

from __future__ import annotations

import doctest
import os
import re

import jax
import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_readme_doctests():
    result = doctest.testfile(README, module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def _blocks() -> list[tuple[str, str]]:
    """Every ``python`` block of the README that is not a doctest, with the heading above it."""
    text = open(README).read()
    out = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        code = match.group(1)
        if not code.lstrip().startswith(">>>"):
            heading = re.findall(r"^## (.*)$", text[: match.start()], re.M)[-1]
            out.append((heading, code))
    return out


def test_readme_has_its_sections():
    headings = [h for h, _ in _blocks()]
    assert {"Quick start", "ReduceLROnPlateau in optax and Flax", "Test your port against torch"} <= set(headings)


@pytest.mark.parametrize("heading,code", _blocks(), ids=[h for h, _ in _blocks()])
def test_readme_code_runs(heading, code):
    with jax.numpy_dtype_promotion("standard"):  # optax's own code assumes standard promotion
        exec(compile(code, f"README: {heading}", "exec"), {})
