"""Sphinx helpers for lrjax's documentation.

* ``.. lrjax-api::`` writes the API reference from ``lrjax.__all__`` (and the public submodules),
  so that every public name is documented from its docstring and none can be forgotten.
* ``.. lrjax-torch-table::`` writes the table of every torch class of ``lrjax.registry`` with its
  lrjax function: torch's signature (without ``optimizer`` and ``last_epoch``), lrjax's, and the
  page's own section on the class where it has one (else the API reference). It imports torch.
* ``.. lrjax-gallery::`` shows ``gallery/<TorchClass>.png`` (``scripts/render_gallery.py``) of every
  torch class of the registry, three a row; a figure not rendered yet fails the build.
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
from typing import NamedTuple

from docutils import nodes
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

# Which section of the API reference each private module's names go to (in this order).
SECTIONS = [
    (
        "Schedules: one per torch class",
        [
            "lrjax._step",
            "lrjax._linear",
            "lrjax._cosine",
            "lrjax._cyclic",
            "lrjax._one_cycle",
            "lrjax._lambda",
            "lrjax._swa",
        ],
    ),
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
        lines += [f"``{module}``", "-" * (len(module) + 4), "", f".. automodule:: {module}", "   :members:", ""]
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


# ----------------------------------------------------------------------------------------------
# The torch -> lrjax table
# ----------------------------------------------------------------------------------------------

TORCH_ONLY = ("optimizer", "last_epoch")  # torch's parameters that lrjax has not (the optimizer becomes base_lr)
_SECTION = re.compile(r"^## `?(\w+)`?", re.M)  # a page's section on a torch class: "## `StepLR`"


def _real_signature(obj: object) -> inspect.Signature:
    """``inspect.signature(obj)`` with the default values themselves: once autodoc has documented a function,
    ``autodoc_preserve_defaults`` has replaced its signature's defaults by their source text."""
    sig = inspect.signature(obj)  # type: ignore[arg-type]
    fn = getattr(obj, "__init__", None) if inspect.isclass(obj) else obj
    if not inspect.isfunction(fn):
        return sig
    code = fn.__code__
    positional = code.co_varnames[: code.co_argcount]
    values = fn.__defaults__ or ()
    real = dict(zip(positional[len(positional) - len(values) :], values))
    real.update(fn.__kwdefaults__ or {})
    return sig.replace(
        parameters=[p.replace(default=real[p.name]) if p.name in real else p for p in sig.parameters.values()]
    )


def signature(fn: object, drop: tuple[str, ...] = ()) -> str:
    """``(a, b=1, *, c=None)``: the parameters of ``fn`` and their defaults, less those in ``drop``."""
    parts: list[str] = []
    star = False
    for p in _real_signature(fn).parameters.values():
        if p.name in drop:
            continue
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
            star = True
            continue
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return f"({', '.join(parts)})"


class TorchRow(NamedTuple):
    """One row of the torch -> lrjax table."""

    torch_class: str  # "StepLR"
    torch: str  # torch's call: "StepLR(step_size, gamma=0.1)"
    link: str  # torch's page of the class
    lrjax: list[tuple[str, str]]  # (function, call) of the lrjax function, then of its momentum partner
    role: str  # the registry's role: "lr", "plateau", ...


def torch_table_rows() -> list[TorchRow]:
    """One row per torch class of ``lrjax.registry``, in its order."""
    from lrjax import registry

    rows = []
    for entry in registry.entries():
        if entry.torch_class is None or entry.torch_link is None:
            continue
        prefix = "" if entry.torch_module == "torch.optim.lr_scheduler" else f"{entry.torch_module}."
        torch_call = f"{prefix}{entry.torch_class}{signature(entry.torch_type(), TORCH_ONLY)}"
        ports = [entry] + ([registry.lookup(entry.momentum)] if entry.momentum else [])
        rows.append(
            TorchRow(
                entry.torch_class,
                torch_call,
                entry.torch_link,
                [(e.name, f"{e.name}{signature(e.factory)}") for e in ports],
                entry.role,
            )
        )
    return rows


def _paragraph(*children: nodes.Node) -> nodes.paragraph:
    para = nodes.paragraph()
    para.extend(children)
    return para


def _row(cells: list[nodes.Node]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += cell if isinstance(cell, nodes.paragraph) else _paragraph(cell)
        row += entry
    return row


def _api_link(name: str, child: nodes.Node) -> addnodes.pending_xref:
    """A link to ``lrjax.<name>`` in the API reference (a warning, so a failed build, where it is missing)."""
    return addnodes.pending_xref(
        "", child, refdomain="py", reftype="func", reftarget=f"lrjax.{name}", refexplicit=True, refwarn=True
    )


class LrjaxTorchTable(SphinxDirective):
    """``.. lrjax-torch-table::``: every torch class of the registry and its lrjax function."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from lrjax import registry

        self.env.note_dependency(registry.__file__)  # a rebuild when the registry changes
        with open(self.env.doc2path(self.env.docname), encoding="utf-8") as f:
            sections = set(_SECTION.findall(f.read()))
        table = nodes.table(classes=["lrjax-torch-table"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (45, 45, 10):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        head += _row([nodes.Text("torch"), nodes.Text("lrjax"), nodes.Text("see")])
        group += head
        body = nodes.tbody()
        for row in torch_table_rows():
            torch_cell = nodes.reference("", "", nodes.literal(text=row.torch), refuri=row.link)
            lrjax_cell = nodes.paragraph()
            for i, (name, call) in enumerate(row.lrjax):
                if i:
                    lrjax_cell += nodes.Text("; the momentum: ")
                lrjax_cell += _api_link(name, nodes.literal(text=call))
            if row.role == "plateau":
                lrjax_cell += nodes.Text(", a state machine driven by a metric")
            if row.torch_class in sections:  # the page's section, e.g. "## `StepLR`" (id "steplr")
                see = nodes.reference("", "section", refuri=f"#{nodes.make_id(row.torch_class)}")
            else:
                see = _api_link(row.lrjax[0][0], nodes.Text("API"))
            body += _row([torch_cell, lrjax_cell, see])
        group += body
        return [table]


class LrjaxGallery(SphinxDirective):
    """``.. lrjax-gallery::``: the gallery figure of every torch class of the registry, in its order."""

    has_content = False
    columns = 3

    def run(self) -> list[nodes.Node]:
        from lrjax import registry

        self.env.note_dependency(registry.__file__)
        classes = [e.torch_class for e in registry.entries() if e.torch_class is not None]
        table = nodes.table(classes=["lrjax-gallery"])
        group = nodes.tgroup(cols=self.columns)
        table += group
        for _ in range(self.columns):
            group += nodes.colspec(colwidth=1)
        body = nodes.tbody()
        for start in range(0, len(classes), self.columns):
            cells: list[nodes.Node] = []
            for name in classes[start : start + self.columns]:
                image = nodes.image(uri=f"gallery/{name}.png", alt=name)
                self.set_source_info(image)
                cells.append(image)
            cells += [nodes.Text("")] * (self.columns - len(cells))
            body += _row(cells)
        group += body
        return [table]


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
    content[0] = rewrite_links(content[0], os.path.dirname(included), doc_dir, srcdir, os.path.dirname(srcdir))


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    """NamedTuple fields without a docstring of their own ("Alias for field number 0") are listed
    in the class signature already."""
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def setup(app):
    app.add_directive("lrjax-api", LrjaxApi)
    app.add_directive("lrjax-torch-table", LrjaxTorchTable)
    app.add_directive("lrjax-gallery", LrjaxGallery)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    app.connect("source-read", _on_source_read)
    app.connect("include-read", _on_include_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
