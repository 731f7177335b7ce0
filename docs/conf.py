"""Sphinx configuration of lrjax's documentation.

Build it (warnings are errors, as in the tests)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(DOCS))  # lrjax from this checkout
sys.path.insert(0, os.path.join(DOCS, "_ext"))

import lrjax  # noqa: E402

project = "lrjax"
author = "lrjax contributors"
copyright = "lrjax contributors"  # noqa: A001
release = lrjax.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "lrjax_docs",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# parity.md is written by scripts/parity_report.py and included by parity_tests.md.
exclude_patterns = ["_build", "parity.md", "README.md"]

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# Docstrings: Google style (Args / Returns / Raises / Examples), read with napoleon.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# The docstrings say what each argument may be; the annotations (jax.typing.ArrayLike expands to a
# long union) are left to the source.
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autosummary_generate = False
nitpicky = False

html_theme = "furo"
html_title = f"lrjax {release}"
html_static_path: list[str] = []
