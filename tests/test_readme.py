"""The README's examples run: its doctests, and its quick start."""

from __future__ import annotations

import doctest
import os
import re

import jax

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_readme_doctests():
    result = doctest.testfile(README, module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_readme_quick_start_runs():
    text = open(README).read()
    section = text[text.index("## Quick start"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    with jax.numpy_dtype_promotion("standard"):  # optax's own code assumes standard promotion
        exec(compile(code, "README quick start", "exec"), {})
