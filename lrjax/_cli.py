"""The ``lrjax`` command line: plot schedules to an image, print their values, list the names.

    lrjax plot StepLR step_size=30 ExponentialLR gamma=0.95 --base-lr 0.05 --steps 100 -o cmp.png
    lrjax plot '{"name": "one_cycle_lr", "max_lr": 0.1, "total_steps": 1000}' --steps 1000
    lrjax values CyclicLR base_lr=0.01 max_lr=0.1 step_size_up=4 --steps 10
    lrjax list          # every name, its keywords, and an example command line

A schedule is a name (lrjax's, ``step_lr``, or torch's, ``StepLR``: every name in
:mod:`lrjax.registry`) followed by its torch keyword arguments as ``key=value``, or a JSON config
(what ``lrjax.from_config`` takes), or ``@file.json`` holding one config or a list of them.

A value is JSON (``30``, ``[30, 80]``, ``true``, ``null``, ``"cos"``) or a Python literal
(``True``, ``None``, ``30,80`` for ``[30, 80]``, ``'cos'``); a bare word (``cos``, ``triangular2``)
is a string. Numbers must be finite. A boolean keyword (``three_phase``, ``cycle_momentum``, ...)
takes exactly ``true``/``false`` or ``True``/``False``; a boolean anywhere else is refused.

Every mistake (argument, value, name, keyword, file, output path, option) ends the command with
exit status 2 and one line on stderr, ``lrjax COMMAND: error: ...``, naming what is wrong and
what is valid; nothing is written then. The output path of ``plot`` is checked before anything is
computed, and the image is written to a temporary file beside it and renamed into place, so a
failed run leaves no partial file. Exit status 1 is reserved for a defect in lrjax itself
(``lrjax COMMAND: internal error: ...``); 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import dataclasses
import difflib
import inspect
import json
import logging
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

# Limits: a table of MAX_VALUES float64 values is 160 MB (plus JAX's work arrays while computing one column
# of MAX_STEPS steps, about 0.5 GB), comfortably inside a laptop's memory.
MAX_STEPS = 10_000_000
MAX_VALUES = 20_000_000  # steps x columns (lr and momentum, per parameter group, of every schedule)
MAX_LINES = 64  # lines in one plot
MAX_NESTING = 32  # schedules inside schedules (sequential_lr / chained_scheduler / per_epoch)
MAX_DEPTH = 64  # lists / objects inside each other in one value or config
MAX_FILE_BYTES = 10 * 2**20  # an @file
MAX_DPI = 1000
MIN_SIZE = (4.0, 2.0)  # inches; smaller figures collapse matplotlib's layout
MAX_SIZE = 100.0  # inches
MAX_PIXELS = 10_000  # per side of a rendered image (size x dpi)

_TORCH_MOMENTUM_KEYS = ("cycle_momentum", "base_momentum", "max_momentum")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_INTEGER = re.compile(r"\s*[+-]?[0-9][0-9_]*\s*")
_FUNCTION_ANNOTATION = re.compile(r"Callable|Lambda")


class UsageError(Exception):
    """A mistake in the command line: reported on stderr with exit status 2."""


class _ArgumentError(Exception):
    """argparse's own usage errors, reported in one line instead of a usage block."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's hook for its usage errors
        raise _ArgumentError(self.prog, f"{message} (see {self.prog} --help)")


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, elided in the middle when long (a 5000-digit number, a whole config)."""
    return _clip(repr(value), limit)


def _clip(text: str, limit: int = 60) -> str:
    """``text`` as typed (its repr if it holds control characters), elided in the middle when long."""
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= limit else f"{text[: limit - 25]}...{text[-20:]} ({len(text)} characters)"


def _one_line(message: str) -> str:
    """The message on one line, with overlong words (numbers, paths, reprs) elided."""
    words = [w if len(w) <= 120 else f"{w[:60]}...{w[-30:]}" for w in str(message).split()]
    text = " ".join(words)
    return text if len(text) <= 2000 else f"{text[:1500]} ... {text[-400:]}"


# ----------------------------------------------------------------------------------------------
# Values: JSON or Python literals, checked
# ----------------------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise UsageError(f"key {key!r} appears twice in one JSON object")
        out[key] = value
    return out


def _no_constant(text: str) -> Any:
    raise UsageError(f"{text} is not a finite number; numbers must be finite")


def _plain(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` as JSON data (tuples become lists), refusing what JSON cannot hold."""
    if depth > MAX_DEPTH:
        raise UsageError(f"{where}: lists/objects nested more than {MAX_DEPTH} deep")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(
                f"{where}: {value} is not a finite number (numbers must be finite; "
                "a number beyond 1.8e308 reads as inf)"
            )
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where, depth + 1) for v in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise UsageError(f"{where}: object keys must be strings, got {_short(key)}")
        return {k: _plain(v, where, depth + 1) for k, v in value.items()}
    raise UsageError(
        f"{where}: {_short(value)} is a {type(value).__name__}; give a number, a string, true/false, "
        "null, a list or an object"
    )


def _loads(text: str, where: str) -> Any:
    """Strict JSON: no NaN/Infinity, no duplicate keys, bounded nesting."""
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{where} is not valid JSON: {e}") from None
    except RecursionError:
        raise UsageError(f"{where}: JSON nested too deeply (at most {MAX_DEPTH} levels)") from None
    except ValueError as e:  # e.g. an integer beyond Python's 4300-digit conversion limit
        raise UsageError(f"{where}: {e}") from None
    return _plain(value, where)


def _literal(text: str) -> Any:
    """``ast.literal_eval`` that refuses a dict with a key given twice (which it would silently drop)."""
    tree = ast.parse(text.strip(), mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = [ast.literal_eval(k) for k in node.keys if k is not None]
            for key in keys:
                if keys.count(key) > 1:
                    raise UsageError(f"key {key!r} appears twice in one dict")
    return ast.literal_eval(tree)


def _value(text: str, where: str | None = None) -> Any:
    """``30`` -> 30, ``[30,80]`` / ``30,80`` -> [30, 80], ``true``/``True`` -> True, ``cos`` -> 'cos'.

    Raises:
        UsageError: for an empty value, a non-finite or oversized number, a key given twice, text that
            starts like a literal but is not one (``[30,80``), or a literal JSON cannot hold (``1j``).
    """
    where = where or _short(text)
    if not text.strip():
        raise UsageError(f"{where} has no value (write key=VALUE, e.g. step_size=30)")
    for parse in (lambda t: json.loads(t, object_pairs_hook=_no_duplicates, parse_constant=_no_constant), _literal):
        try:
            value = parse(text)
        except UsageError as e:
            raise UsageError(f"{where}: {e}") from None
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return _plain(value, where)
    if _INTEGER.fullmatch(text):
        digits = sum(c.isdigit() for c in text)
        raise UsageError(
            f"{where}: an integer of {digits} digits is too large (at most "
            f"{sys.get_int_max_str_digits() or 4300} digits)"
        )
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        raise UsageError(f"{where}: not a finite number; numbers must be finite")
    if _WORD.fullmatch(text):
        return text
    raise UsageError(
        f"{where}: neither JSON, a Python literal nor a bare word; quote a string (key='text') and close every bracket"
    )


# ----------------------------------------------------------------------------------------------
# Schedule specifications: tokens -> configs
# ----------------------------------------------------------------------------------------------


def _configs_from(value: Any, origin: str) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise UsageError(f"{origin} holds an empty list; give at least one schedule config")
    for item in items:
        if not isinstance(item, dict):
            raise UsageError(f"{origin}: a schedule config must be a JSON object with a 'name', got {_short(item)}")
    return [dict(item) for item in items]


def _read_file(path: str) -> str:
    if not path:
        raise UsageError("@ needs a file name right after it, e.g. @schedules.json")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:  # a NUL in the name
        raise UsageError(f"cannot read {path!r}: {e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{path} is larger than {MAX_FILE_BYTES // 2**20} MiB; a schedule config is small JSON")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(
            f"{path} is not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}); "
            "an @file holds a JSON schedule config"
        ) from None


def parse_specs(tokens: Sequence[str]) -> list[dict[str, Any]]:
    """Schedule configs from command-line tokens: ``NAME key=value ...``, JSON configs, ``@file``."""
    configs: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for token in tokens:
        stripped = token.strip()
        if not stripped:
            raise UsageError(
                "an empty argument where a schedule was expected; give a name such as StepLR (see `lrjax list`)"
            )
        if stripped.startswith("@"):
            path = stripped[1:]
            configs += _configs_from(_loads(_read_file(path), path), path)
            current = None
        elif stripped.startswith(("{", "[")):
            configs += _configs_from(_loads(stripped, "schedule config"), "schedule config")
            current = None
        elif "=" in token:
            key, _, text = token.partition("=")
            if current is None:
                raise UsageError(
                    f"{_short(token)} comes before any schedule name; write NAME {_short(token)} "
                    f"(e.g. StepLR step_size=30)"
                )
            if not key.isidentifier():
                raise UsageError(f"{_short(key)} is not a keyword name (in {_short(token)}); write key=value")
            if key == "name":
                raise UsageError(
                    f"name= is not a keyword of {current['name']}: the schedule's name comes first (NAME key=value ...)"
                )
            if key in current:
                raise UsageError(f"{key} is given twice for {current['name']}")
            current[key] = _value(text, f"{key}={_clip(text, 40)}")
        else:
            current = {"name": token}
            configs.append(current)
    if not configs:
        raise UsageError("give at least one schedule, e.g. StepLR step_size=30 (see `lrjax list`)")
    return configs


# ----------------------------------------------------------------------------------------------
# Checking configs against the registry, building schedules
# ----------------------------------------------------------------------------------------------


def _annotation(p: inspect.Parameter) -> str:
    return p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", str(p.annotation))


def _is_bool(p: inspect.Parameter) -> bool:
    return isinstance(p.default, bool) or _annotation(p) == "bool"


def _takes_function(p: inspect.Parameter) -> bool:
    return bool(_FUNCTION_ANNOTATION.search(_annotation(p)))


def _params(entry: Any) -> dict[str, inspect.Parameter]:
    return {
        k: p
        for k, p in inspect.signature(entry.factory).parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _momentum_defaults(entry: Any) -> dict[str, Any]:
    """torch's ``cycle_momentum``/``base_momentum``/``max_momentum`` with their defaults, for CyclicLR/OneCycleLR."""
    from lrjax import registry

    if not entry.momentum:
        return {}
    params = _params(registry.lookup(entry.momentum))
    return {"cycle_momentum": True, **{k: params[k].default for k in _TORCH_MOMENTUM_KEYS[1:] if k in params}}


def _contains_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, list):
        return any(_contains_bool(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_bool(v) for v in value.values())
    return False


def check_config(config: Any, defaults: dict[str, Any], where: str = "", depth: int = 0) -> Any:
    """Checks a config against :mod:`lrjax.registry` (names, keywords, booleans, members), recursively.

    Returns the registry entry. ``where`` locates a nested config in messages.
    """
    from lrjax import registry

    if depth > MAX_NESTING:
        raise UsageError(f"{where}schedules nested more than {MAX_NESTING} deep")
    if not isinstance(config, dict):
        raise UsageError(f"{where}a schedule config must be an object with a 'name', got {_short(config)}")
    if "name" not in config:
        raise UsageError(f"{where}a schedule config needs a 'name' (see `lrjax list`), got {_short(config)}")
    try:
        entry = registry.lookup(config["name"])
    except ValueError as e:
        raise UsageError(f"{where}{e}") from None
    if entry.role == "plateau":
        raise UsageError(
            f"{where}{entry.name} reduces the lr when a metric stops improving: without a metric it has no "
            "values to plot or print (drive lrjax.reduce_lr_on_plateau with your metric from Python)"
        )
    params = _params(entry)
    extra = _momentum_defaults(entry) if depth == 0 else {}
    valid = list(params) + list(extra)
    for key, value in config.items():
        if key == "name":
            continue
        if key not in params and key not in extra:
            if key in _TORCH_MOMENTUM_KEYS and entry.momentum:
                raise UsageError(
                    f"{where}{key}: the momentum of a {entry.torch_class} is plotted only for a "
                    "top-level schedule, not for a member of another schedule"
                )
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(
                f"{where}unknown keyword {key!r} for {entry.name}{hint}. Valid keywords: {', '.join(valid)}."
            )
        p = params.get(key)
        if key == "cycle_momentum" or (p is not None and _is_bool(p)):
            if not isinstance(value, bool):
                raise UsageError(
                    f"{where}{key} of {entry.name} must be true or false (JSON) or True or False "
                    f"(Python), got {_short(value)}"
                )
        elif p is not None and _takes_function(p):
            raise UsageError(
                f"{where}{key} of {entry.name} is a Python function, which a command line or a JSON "
                "config cannot carry; build this schedule in Python"
            )
        elif key == entry.members:
            members = value if isinstance(value, list) else [value]
            if not isinstance(value, (list, dict)):
                raise UsageError(
                    f'{where}{key} of {entry.name} takes schedule configs ({{"name": ..., ...}}), got {_short(value)}'
                )
            for i, member in enumerate(members):
                at = f"{key}[{i}]" if isinstance(value, list) else key
                check_config(member, defaults, f"{where}{entry.name} {at}: ", depth + 1)
        elif _contains_bool(value):
            raise UsageError(f"{where}{key} of {entry.name} is not a boolean keyword, got {_short(value)}")
    for key, p in params.items():
        if p.default is inspect.Parameter.empty and key not in config and key not in defaults:
            if _takes_function(p):
                raise UsageError(
                    f"{where}{entry.name} needs a Python function ({key}), which a command line "
                    "cannot give; build it in Python"
                )
            signature = ", ".join(
                k if q.default is inspect.Parameter.empty else f"{k}={q.default!r}" for k, q in params.items()
            )
            raise UsageError(f"{where}{entry.name} needs {key!r}: {entry.name}({signature})")
    return entry


def _library_error(what: str, e: BaseException) -> UsageError:
    if isinstance(e, RecursionError):
        return UsageError(f"{what}: nested too deeply for Python's recursion limit")
    if isinstance(e, MemoryError):
        return UsageError(f"{what}: out of memory; use fewer steps, groups or schedules")
    text = str(e) or type(e).__name__
    if not isinstance(e, ValueError):
        text = f"{type(e).__name__}: {text}"
    return UsageError(text if text.startswith(what) else f"{what}: {text}")


def label(entry: Any, config: dict[str, Any], defaults: dict[str, Any]) -> str:
    """The default legend label / column name: ``step_lr(base_lr=0.1, step_size=30)`` (the keywords given,
    and the defaults filled in; not the member schedules of a composite), or the name alone when that
    would be longer than 90 characters."""
    params = {k: p for k, p in _params(entry).items() if k != entry.members}
    shown = {k: config[k] for k in params if k in config}
    for key, value in defaults.items():
        if key in params and key not in config:
            shown[key] = value
    args = ", ".join(f"{k}={shown[k]!r}" for k in params if k in shown)
    text = f"{entry.name}({args})"
    return text if len(text) <= 90 else entry.name


@dataclasses.dataclass
class Built:
    """One schedule of the command line: its label, lr schedule and momentum schedule (or None)."""

    label: str
    schedule: Any
    momentum: Any


def build(config: dict[str, Any], base_lr: float | None) -> tuple[Any, Any]:
    """``(lr_schedule, momentum_schedule or None)`` from a config with torch's keyword arguments.

    CyclicLR/OneCycleLR configs may carry torch's ``cycle_momentum`` (default True),
    ``base_momentum`` and ``max_momentum``: they build the momentum schedule.

    Raises:
        UsageError: naming what is wrong, for anything the registry or the schedule refuses.
    """
    built = _build(config, {} if base_lr is None else {"base_lr": base_lr})
    return built.schedule, built.momentum


def _build(config: dict[str, Any], defaults: dict[str, Any]) -> Built:
    import lrjax

    entry = check_config(config, defaults)
    what = entry.name
    try:
        # Only CyclicLR/OneCycleLR take torch's momentum keywords; a momentum schedule's own base_momentum and
        # max_momentum stay its own.
        lr_config, momentum_config = lrjax.split_momentum(config) if entry.momentum else (config, None)
        schedule = lrjax.from_config(lr_config, **defaults)
        momentum = lrjax.from_config(momentum_config) if momentum_config is not None else None
    except Exception as e:  # noqa: BLE001 - the library's refusal, whatever its type, is the user's error
        raise _library_error(what, e) from None
    for fn in (schedule, momentum):
        if fn is not None and (getattr(fn, "is_plateau", False) or not callable(fn)):
            raise UsageError(f"{what} builds no step -> lr schedule, so it has no values to plot or print")
    return Built(label(entry, config, defaults), schedule, momentum)


# ----------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------


def _check_steps(args: argparse.Namespace) -> np.ndarray:
    if not 1 <= args.steps <= MAX_STEPS:
        raise UsageError(f"--steps must be an integer from 1 to {MAX_STEPS:,}, got {_short(args.steps)}")
    return np.arange(args.steps, dtype=np.int32)


def _check_base_lr(args: argparse.Namespace) -> dict[str, Any]:
    if not (math.isfinite(args.base_lr) and args.base_lr >= 0):
        raise UsageError(
            f"--base-lr must be a finite number >= 0 (torch's optimizers refuse a negative lr), got {args.base_lr}"
        )
    return {"base_lr": args.base_lr}


def _check_labels(args: argparse.Namespace, n: int, plot: bool) -> list[str] | None:
    if not args.label:
        return None
    if len(args.label) != n:
        raise UsageError(f"give one --label per schedule ({n}), got {len(args.label)}")
    for text in args.label:
        if not text.strip():
            raise UsageError("--label must not be empty")
        if plot and text.startswith("_"):
            raise UsageError(f"--label {text!r}: matplotlib leaves labels that start with '_' out of the legend")
    return list(args.label)


def _check_text(args: argparse.Namespace, texts: Sequence[tuple[str, str]]) -> None:
    """Text must be encodable, and valid mathtext where matplotlib will read it as such."""
    for option, text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"{option} {_short(text)} holds bytes that are not text in this locale") from None
    if getattr(args, "command", None) != "plot":
        return
    from matplotlib import cbook, mathtext

    parser = mathtext.MathTextParser("path")
    for option, text in texts:
        if cbook.is_math_text(text):
            try:
                parser.parse(text)
            except ValueError as e:
                detail = str(e).strip().splitlines()[-1] if str(e).strip() else ""
                raise UsageError(
                    f"{option} {_short(text)} is not valid matplotlib mathtext ({detail}); "
                    r"write \$ for a literal dollar sign"
                ) from None


@dataclasses.dataclass
class _Output:
    """Where ``lrjax plot`` writes: the file named, its format, and the temporary file beside it."""

    path: str
    target: str
    format: str
    temp: str


def _image_formats() -> dict[str, str]:
    from matplotlib.backend_bases import FigureCanvasBase

    return FigureCanvasBase.get_supported_filetypes()


def _check_output(path: str) -> _Output:
    """Checks ``-o`` and creates the temporary file the image goes to (so a bad path fails before any work)."""
    import matplotlib

    formats = _image_formats()
    valid = ", ".join(f".{ext}" for ext in sorted(formats))
    if not path.strip():
        raise UsageError(f"-o needs a file name ending in one of {valid}")
    if "\0" in path:
        raise UsageError(f"-o {path!r}: a file name cannot hold a NUL character")
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise UsageError(f"-o {path} is a directory; give a file name, e.g. {os.path.join(path, 'lrjax-plot.png')}")
    ext = os.path.splitext(os.path.basename(path))[1][1:]
    if not ext:
        raise UsageError(f"-o {path} has no extension; the extension chooses the format: one of {valid}")
    fmt = ext.lower()
    if fmt not in formats:
        raise UsageError(f"-o {path}: unknown image extension .{ext}; valid: {valid}")
    if fmt == "pgf":
        tex = matplotlib.rcParams["pgf.texsystem"]
        if shutil.which(tex) is None:
            raise UsageError(f"-o {path}: writing .pgf needs {tex}, which is not installed; choose another format")
    parent = os.path.dirname(path) or os.curdir
    if not os.path.exists(parent):
        raise UsageError(f"-o {path}: directory {parent} does not exist")
    if not os.path.isdir(parent):
        raise UsageError(f"-o {path}: {parent} is not a directory")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise UsageError(f"-o {path} exists and is not a regular file (a device, a socket, a dangling link?)")
    target = os.path.realpath(path)
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise UsageError(f"-o {path} is not writable")
    try:
        fd, temp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".lrjax-plot-", suffix=f".{fmt}")
    except OSError as e:
        raise UsageError(f"-o {path}: cannot write in {parent}: {e.strerror or e}") from None
    os.close(fd)
    return _Output(path, target, fmt, temp)


def _check_figure(args: argparse.Namespace) -> tuple[float, float]:
    if not 1 <= args.dpi <= MAX_DPI:
        raise UsageError(f"--dpi must be an integer from 1 to {MAX_DPI}, got {_short(args.dpi)}")
    width, height = args.size if args.size else (6.4, 3.6)
    for name, value, low in (("W", width, MIN_SIZE[0]), ("H", height, MIN_SIZE[1])):
        if not (math.isfinite(value) and low <= value <= MAX_SIZE):
            raise UsageError(f"--size W H: {name} must be from {low:g} to {MAX_SIZE:g} inches, got {value}")
    if max(width, height) * args.dpi > MAX_PIXELS:
        raise UsageError(
            f"--size {width:g} {height:g} at --dpi {args.dpi} is {width * args.dpi:.0f} x "
            f"{height * args.dpi:.0f} pixels; at most {MAX_PIXELS} pixels a side"
        )
    return width, height


# ----------------------------------------------------------------------------------------------
# Computing
# ----------------------------------------------------------------------------------------------


def _build_all(args: argparse.Namespace, plot: bool) -> list[Built]:
    defaults = _check_base_lr(args)
    configs = parse_specs(args.schedules)
    labels = _check_labels(args, len(configs), plot)
    built = [_build(c, defaults) for c in configs]
    for i, b in enumerate(built):
        if labels:
            b.label = labels[i]
        if not args.momentum:
            b.momentum = None
    _check_text(args, [("--label", b.label) for b in built] + [("--title", getattr(args, "title", None) or "")])
    return built


def _columns_of(built: list[Built], steps: np.ndarray, plot: bool) -> None:
    """Checks the size of the table (or plot) from the shapes alone, before computing anything."""
    import jax

    total = 0
    for b in built:
        for fn in (b.schedule, b.momentum):
            if fn is None:
                continue
            try:
                shape = jax.eval_shape(jax.vmap(fn), jax.ShapeDtypeStruct(steps.shape[:1], steps.dtype)).shape
            except Exception as e:  # noqa: BLE001
                raise _library_error(b.label, e) from None
            if len(shape) > 2:
                raise UsageError(
                    f"{b.label}: returns shape {shape[1:]} per step; one value (or one per group) expected"
                )
            total += 1 if len(shape) == 1 else shape[1]
    if plot and total > MAX_LINES:
        raise UsageError(
            f"the plot would have {total} lines (schedules x parameter groups); at most {MAX_LINES}: "
            "use `lrjax values` for more"
        )
    if total * len(steps) > MAX_VALUES:
        raise UsageError(
            f"{len(steps):,} steps x {total} columns is {total * len(steps):,} values; at most "
            f"{MAX_VALUES:,}: lower --steps"
        )


def _check_finite(what: str, steps: np.ndarray, values: np.ndarray, hint: str = "") -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad.reshape(len(values), -1).any(axis=1)))
        raise UsageError(
            f"{what} is {values[row].tolist()} at step {int(steps[row])}, not a finite number: a "
            f"value overflows the float dtype (try smaller arguments{hint})"
        )


def _evaluate(b: Built, fn: Any, steps: np.ndarray) -> np.ndarray:
    import jax

    from lrjax import _base

    try:
        values = np.asarray(jax.jit(jax.vmap(fn))(steps), dtype=np.float64)
    except Exception as e:  # noqa: BLE001
        raise _library_error(b.label, e) from None
    _check_finite(b.label, steps, values, "" if _base.float_dtype() == np.float64 else ", or drop --float32")
    return values


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------


def figure(args: argparse.Namespace):
    """The matplotlib figure ``lrjax plot`` saves."""
    import lrjax

    figsize = _check_figure(args)
    steps = _check_steps(args)
    built = _build_all(args, plot=True)
    _columns_of(built, steps, plot=True)
    try:
        fig = lrjax.plot(
            [b.schedule for b in built],
            steps,
            labels=[b.label for b in built],
            momentum=[b.momentum for b in built],
            title=args.title or None,
            logy=args.logy,
            figsize=figsize,
            drawstyle="steps-post" if args.steps_post else "default",
        )
    except Exception as e:  # noqa: BLE001
        raise _library_error("plot", e) from None
    for ax in fig.axes:
        for line in ax.get_lines():
            _check_finite(str(line.get_label()), steps, np.asarray(line.get_ydata(), dtype=np.float64))
    return fig


def _cmd_plot(args: argparse.Namespace) -> int:
    try:
        from lrjax._plot import require_matplotlib

        require_matplotlib()
    except ImportError as e:
        raise UsageError(str(e)) from None
    _check_figure(args)
    _check_steps(args)
    _check_base_lr(args)
    out = _check_output(args.output)
    try:
        fig = figure(args)
        # ps/eps log that they render the grid's transparency opaque: not the user's concern.
        logger = logging.getLogger("matplotlib")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            fig.savefig(out.temp, format=out.format, dpi=args.dpi)
        except Exception as e:  # noqa: BLE001 - a renderer's refusal (a format's own limits)
            raise UsageError(f"cannot render {out.path}: {type(e).__name__}: {e}") from None
        finally:
            logger.setLevel(level)
        _replace(out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out.temp)
    print(f"wrote {_printable(out.path)}")
    return 0


def _printable(text: str) -> str:
    """``text`` with undecodable bytes of a file name (surrogate escapes) shown as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _replace(out: _Output) -> None:
    """Moves the finished image into place, with the mode a new (or the existing) file would have."""
    try:
        if os.path.exists(out.target):
            mode = os.stat(out.target).st_mode & 0o7777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(out.temp, mode)
        os.replace(out.temp, out.target)
    except OSError as e:
        raise UsageError(f"cannot write {out.path}: {e.strerror or e}") from None


def table(args: argparse.Namespace) -> tuple[list[str], np.ndarray]:
    """The header and rows ``lrjax values`` prints: the step, then every lr (per group) and momentum."""
    steps = _check_steps(args)
    built = _build_all(args, plot=False)
    _columns_of(built, steps, plot=False)
    header, columns = ["step"], [steps.astype(np.float64)]
    for b in built:
        for suffix, fn in (("", b.schedule), (" momentum", b.momentum)):
            if fn is None:
                continue
            values = _evaluate(b, fn, steps)
            if values.ndim == 1:
                header.append(b.label + suffix)
                columns.append(values)
            else:
                for g in range(values.shape[1]):
                    header.append(f"{b.label}{suffix} [group {g}]")
                    columns.append(values[:, g])
    return header, np.stack(columns, axis=1)


def _chunks(rows: np.ndarray, size: int = 65536) -> Iterator[np.ndarray]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _cmd_values(args: argparse.Namespace) -> int:
    _check_steps(args)
    header, rows = table(args)
    if args.format == "json":
        seen: set[str] = set()
        for h in header:
            if h in seen:
                raise UsageError(f"two columns are named {h!r}; --format json needs distinct names: give --label")
            seen.add(h)
        _write_json(header, rows)
    else:
        _write_delimited(header, rows, "\t" if args.format == "tsv" else ",")
    return 0


def _write_delimited(header: list[str], rows: np.ndarray, delimiter: str) -> None:
    writer = csv.writer(sys.stdout, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    for chunk in _chunks(rows):
        steps = chunk[:, 0].astype(np.int64).tolist()
        values = chunk[:, 1:].tolist()
        sys.stdout.write(
            "".join(delimiter.join([str(s)] + [repr(v) for v in row]) + "\n" for s, row in zip(steps, values))
        )


def _write_json(header: list[str], rows: np.ndarray) -> None:
    """``{"step": [...], label: [...], ...}`` as ``json.dump`` writes it, a chunk at a time."""
    out = sys.stdout
    out.write("{")
    for i, h in enumerate(header):
        out.write(("" if i == 0 else ", ") + json.dumps(h) + ": [")
        column = rows[:, i]
        for j, chunk in enumerate(_chunks(column)):
            items = chunk.astype(np.int64).tolist() if i == 0 else chunk.tolist()
            out.write(("" if j == 0 else ", ") + ", ".join(map(repr, items)))
        out.write("]")
    out.write("}\n")


def _spell(value: Any) -> str | None:
    """``value`` as a ``key=`` value the command line reads back as the same value: a bare word, a number,
    ``30,80`` for a list of numbers, else JSON; None for what a command line cannot carry (a function)."""
    try:
        plain = _plain(value, "value")
    except UsageError:
        return None
    candidates = [json.dumps(plain)]
    if isinstance(plain, str):
        candidates.insert(0, plain)
    if (
        isinstance(plain, list)
        and len(plain) > 1
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in plain)
    ):
        candidates.insert(0, ",".join(json.dumps(v) for v in plain))
    for text in candidates:
        try:
            if _value(text) == plain:
                return text
        except UsageError:
            continue
    return None


def example_command(entry: Any) -> str | None:
    """The registry entry's example as a command line to paste, ``lrjax plot StepLR base_lr=0.1 step_size=30
    gamma=0.1`` (torch's name where there is one), or None where a command line cannot give the example (a
    Python function in it, a metric-driven schedule)."""
    if entry.role == "plateau":
        return None
    tokens = [entry.torch_class or entry.name]
    for key, value in entry.example.items():
        text = _spell(value)
        if text is None:
            return None
        tokens.append(shlex.quote(f"{key}={text}"))
    try:
        (config,) = parse_specs(shlex.split(" ".join(tokens)))
        check_config(config, {})
    except (UsageError, ValueError):
        return None
    return "lrjax plot " + " ".join(tokens)


def _cmd_list(args: argparse.Namespace) -> int:
    from lrjax import registry

    if args.name is not None:
        try:
            entries = [registry.lookup(args.name)]
        except ValueError as e:
            raise UsageError(str(e)) from None
    else:
        entries = [registry.lookup(name) for name in registry.names()]
    momentum_of = {e.momentum: e for e in registry.entries() if e.momentum}
    for entry in entries:
        params = _params(entry)
        signature = ", ".join(
            k if p.default is inspect.Parameter.empty else f"{k}={p.default!r}" for k, p in params.items()
        )
        notes = []
        if entry.torch_class:
            notes.append(f"torch: {entry.torch_class}")
        if entry.momentum:
            notes.append("momentum: " + ", ".join(f"{k}={v!r}" for k, v in _momentum_defaults(entry).items()))
        if entry.name in momentum_of:
            notes.append(f"the momentum {momentum_of[entry.name].torch_class} cycles")
        if entry.role == "plateau":
            notes.append("metric-driven: not for plot/values")
        print(f"{entry.name}({signature})" + (f"  ({'; '.join(notes)})" if notes else ""))
        command = example_command(entry)
        if command is not None:
            print(f"  e.g. {command}")
    return 0


# ----------------------------------------------------------------------------------------------
# Argument parser
# ----------------------------------------------------------------------------------------------


def _schedule_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "schedules",
        nargs="+",
        metavar="SCHEDULE",
        help="NAME key=value ... (torch keyword arguments), a JSON config, or @config.json; "
        "several schedules go on one figure / table",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=100,
        help=f"number of steps, 0 .. STEPS-1 (default 100; at most {MAX_STEPS:,}, and at most "
        f"{MAX_VALUES:,} values in all, steps x columns, so the table fits in memory)",
    )
    p.add_argument(
        "--base-lr",
        type=float,
        default=0.1,
        help="base_lr for schedules that take one and do not set it (the optimizer's lr in torch; "
        "finite, >= 0; default 0.1)",
    )
    p.add_argument("--label", action="append", help="legend label / column name, once per schedule")
    p.add_argument(
        "--no-momentum",
        dest="momentum",
        action="store_false",
        help="leave out the momentum CyclicLR/OneCycleLR cycle (shown by default, as torch's "
        "cycle_momentum=True; a config may set cycle_momentum=false)",
    )


_EPILOG = """\
values: JSON (30, [30, 80], true, null, "cos") or Python literals (True, None, 30,80, 'cos');
a bare word (cos) is a string; numbers must be finite; boolean keywords take only true/false/True/False.
Errors: exit status 2 and one line on stderr.

examples:
  lrjax plot StepLR step_size=30 ExponentialLR gamma=0.95 --base-lr 0.05 -o cmp.png
  lrjax plot '{"name": "OneCycleLR", "max_lr": 0.1, "total_steps": 1000}' --steps 1000 -o 1cycle.svg
  lrjax values CyclicLR base_lr=0.01 max_lr=0.1 step_size_up=4 --steps 10
  lrjax list"""


def parser() -> argparse.ArgumentParser:
    """The argument parser (its subcommands: ``plot``, ``values``, ``list``)."""
    return _parsers()[0]


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    import lrjax

    top = _Parser(
        prog="lrjax",
        description="Plot torch's learning-rate schedulers, ported to JAX by lrjax.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    top.add_argument("--version", action="version", version=f"lrjax {lrjax.__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="{plot,values,list}")
    p = sub.add_parser(
        "plot",
        help="render schedules (and momentum) to an image",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    _schedule_arguments(p)
    p.add_argument(
        "-o",
        "--output",
        default="lrjax-plot.png",
        help="output image; its extension (.png, .pdf, .svg, ...) chooses the format; the directory "
        "must exist (default lrjax-plot.png)",
    )
    p.add_argument("--title")
    p.add_argument("--logy", action="store_true", help="log-scale learning-rate axis")
    p.add_argument("--steps-post", action="store_true", help="draw each value as a step held until the next")
    p.add_argument("--dpi", type=int, default=100, help=f"resolution, 1 to {MAX_DPI} (default 100)")
    p.add_argument(
        "--size",
        type=float,
        nargs=2,
        metavar=("W", "H"),
        help=f"figure size in inches, at least {MIN_SIZE[0]:g} x {MIN_SIZE[1]:g}, at most "
        f"{MAX_SIZE:g} a side and {MAX_PIXELS} pixels a side at --dpi (default 6.4 3.6)",
    )
    p.set_defaults(run=_cmd_plot)
    v = sub.add_parser(
        "values",
        help="print the values, one row per step (float64 unless --float32)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    _schedule_arguments(v)
    v.add_argument("--format", choices=("tsv", "csv", "json"), default="tsv")
    v.add_argument("--float32", action="store_true", help="compute in float32 (JAX's default) instead of float64")
    v.set_defaults(run=_cmd_values)
    ls = sub.add_parser(
        "list", help="list the schedule names, their keyword arguments and an example of each (a command line to paste)"
    )
    ls.add_argument("name", nargs="?", help="only this schedule (an lrjax or a torch name)")
    ls.set_defaults(run=_cmd_list)
    return top, {"plot": p, "values": v, "list": ls}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Options may come between the schedules (``StepLR step_size=3 --steps 5 ExponentialLR gamma=0.9``)."""
    top, subs = _parsers()
    if argv and argv[0] in ("plot", "values"):
        args = subs[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
        return args
    return top.parse_args(argv)


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so Python's final flush stays quiet."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status: 0, 2 for usage errors (one line on stderr),
    1 for a defect in lrjax, 130 for Ctrl-C."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else list(argv))
    except _ArgumentError as e:
        print(f"{e.prog}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else 0
    prog = f"lrjax {args.command}"
    try:
        import jax

        with warnings.catch_warnings(record=True) as caught:
            with jax.enable_x64(not getattr(args, "float32", False)):
                code = args.run(args)
            sys.stdout.flush()
    except UsageError as e:
        print(f"{prog}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lrjax values ... | head`: stop quietly
        _quiet_stdout()
        return 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # stdout: a full disk, a closed descriptor
        _quiet_stdout()
        print(f"{prog}: error: cannot write the output: {e.strerror or e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a defect in lrjax: still one line, but not a usage error
        print(
            f"{prog}: internal error: {_one_line(f'{type(e).__name__}: {e}')} (please report this command line)",
            file=sys.stderr,
        )
        return 1
    for w in caught:
        if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
            print(f"{prog}: warning: {_one_line(str(w.message))}", file=sys.stderr)
    return code
