"""Sphinx helpers for lrjax's documentation.

* ``.. lrjax-api::`` writes the API reference from ``lrjax.__all__`` (and the public submodules),
  so that every public name is documented from its docstring and none can be forgotten.
* Links from the pages (and from the READMEs they include) to files of the repository outside
  ``docs/`` are rewritten so that the site stays self-contained: a README that a page includes
  becomes a link to that page, an image is shown, any other file becomes a download.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import types

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

# Which section of the API reference each private module's names go to (in this order).
SECTIONS = [
    ("Schedules: one per torch class",
     ["lrjax._step", "lrjax._linear", "lrjax._cosine", "lrjax._cyclic", "lrjax._one_cycle",
      "lrjax._lambda", "lrjax._swa"]),
    ("Composition and per-epoch use", ["lrjax._compose", "lrjax._epoch"]),
    ("ReduceLROnPlateau", ["lrjax._plateau"]),
    ("Configs and conversion from torch", ["lrjax._config", "lrjax._torch"]),
    ("Plots and the LR range test", ["lrjax._plot", "lrjax._find_lr"]),
    ("Types", ["lrjax._base", "lrjax._schedule", "lrjax._steps"]),
]
OTHER = "Other names"
# Public submodules documented as a whole, when they exist.
SUBMODULES = ["lrjax.registry", "lrjax.testing"]

# Files outside docs/ that a page includes as a whole: links to them go to that page.
INCLUDED_PAGES = {
    "examples/mnist/README.md": "mnist",
    "benchmarks/README.md": "benchmarks",
    "benchmarks/results/RESULTS.md": "benchmark_results",
}
IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif")


def _section_of(name: str, obj: object) -> str:
    module = getattr(obj, "__module__", "") or ""
    for title, modules in SECTIONS:
        if any(module == m or module.startswith(m + "_") for m in modules):
            return title
    if not module.startswith("lrjax"):  # type aliases such as Schedule
        return "Types"
    return OTHER


def api_rst() -> str:
    """The reStructuredText of the API reference, generated from ``lrjax.__all__``."""
    import lrjax

    groups: dict[str, list[str]] = {}
    for name in lrjax.__all__:
        obj = getattr(lrjax, name)
        if isinstance(obj, types.ModuleType):
            continue
        groups.setdefault(_section_of(name, obj), []).append(name)

    lines: list[str] = []
    for title in [t for t, _ in SECTIONS] + [OTHER]:
        names = groups.get(title)
        if not names:
            continue
        lines += [title, "-" * len(title), "", ".. autosummary::", "   :nosignatures:", ""]
        lines += [f"   lrjax.{name}" for name in names]
        lines.append("")
        for name in names:
            obj = getattr(lrjax, name)
            if inspect.isclass(obj):
                members = ":members:" if not issubclass(obj, tuple) else ":members:\n   :exclude-members: count, index"
                lines += [f".. autoclass:: lrjax.{name}", f"   {members}", ""]
            elif callable(obj) and inspect.isroutine(obj):
                lines += [f".. autofunction:: lrjax.{name}", ""]
            else:
                lines += [f".. autodata:: lrjax.{name}", "   :no-value:", ""]

    for module in SUBMODULES:
        if importlib.util.find_spec(module) is None:
            continue
        importlib.import_module(module)
        lines += [f"``{module}``", "-" * (len(module) + 4), "", f".. automodule:: {module}",
                  "   :members:", ""]
    return "\n".join(lines)


class LrjaxApi(SphinxDirective):
    """``.. lrjax-api::``: the API reference of every public name."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        container = nodes.section()
        container.document = self.state.document
        content = StringList(api_rst().splitlines(), source="lrjax-api")
        nested_parse_with_titles(self.state, content, container)
        return container.children


_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def rewrite_links(text: str, file_dir: str, doc_dir: str, srcdir: str, root: str) -> str:
    """Rewrites the relative links of Markdown ``text`` (a file in ``file_dir``, shown in a page of
    ``doc_dir``) that point outside ``srcdir``: see the module docstring. Code blocks are left alone."""

    def fix(match: re.Match) -> str:
        bang, label, target = match.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match.group(0)
        path, _, anchor = target.partition("#")
        absolute = os.path.normpath(os.path.join(file_dir, path))
        inside = os.path.relpath(absolute, srcdir)
        anchor = f"#{anchor}" if anchor else ""
        if not inside.startswith(".."):
            new = os.path.relpath(absolute, doc_dir) + anchor  # a page or image of the site
        else:
            from_root = os.path.relpath(absolute, root).replace(os.sep, "/")
            if from_root in INCLUDED_PAGES:
                page = os.path.join(srcdir, INCLUDED_PAGES[from_root] + ".md")
                new = os.path.relpath(page, doc_dir) + anchor
            elif not os.path.exists(absolute):
                return match.group(0)  # left as written: MyST reports the broken link
            elif bang or absolute.endswith(IMAGE_SUFFIXES):
                new = os.path.relpath(absolute, doc_dir)
            else:
                new = "path:" + os.path.relpath(absolute, doc_dir)  # a download of the file
        return f"{bang}[{label}]({new.replace(os.sep, '/')})"

    out, fenced = [], False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
            out.append(line)
        else:
            out.append(line if fenced else _LINK.sub(fix, line))
    return "".join(out)


def _on_source_read(app, docname: str, source: list[str]) -> None:
    doc_dir = os.path.dirname(app.env.doc2path(docname))
    srcdir = str(app.srcdir)
    source[0] = rewrite_links(source[0], doc_dir, doc_dir, srcdir, os.path.dirname(srcdir))


def _on_include_read(app, relative_path, parent_docname: str, content: list[str]) -> None:
    srcdir = str(app.srcdir)
    included = os.path.normpath(os.path.join(srcdir, str(relative_path)))
    doc_dir = os.path.dirname(app.env.doc2path(parent_docname))
    content[0] = rewrite_links(content[0], os.path.dirname(included), doc_dir, srcdir,
                               os.path.dirname(srcdir))


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    """NamedTuple fields without a docstring of their own ("Alias for field number 0") are listed
    in the class signature already."""
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def setup(app):
    app.add_directive("lrjax-api", LrjaxApi)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    app.connect("source-read", _on_source_read)
    app.connect("include-read", _on_include_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
