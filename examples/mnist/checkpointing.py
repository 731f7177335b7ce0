"""Checkpoints of a training run with orbax-checkpoint, written atomically and checked on restore.

A checkpoint is one orbax step directory ``<workdir>/checkpoints/<step>`` (``step``: optimizer
updates done) with two items:

* ``state``: the whole :class:`~examples.mnist.train.TrainState` pytree (update count, parameters,
  optimizer state with its injected lr/momentum and its own count, plateau state), as NumPy arrays
  (``ocp.args.StandardSave``);
* ``meta``: JSON (``ocp.args.JsonSave``): where the run is (epoch, position in it), what defines
  it (the config fields that decide the numbers, the data order's seed and a hash of the epoch's
  order), the metrics so far (the per-epoch rows and every update's loss/lr/momentum), the
  layout (path, shape, dtype of every leaf) and SHA-256 of the state's bytes, and a SHA-256 of
  the JSON itself.

Atomicity is orbax's: a step is written into ``<step>.orbax-checkpoint-tmp`` and renamed to
``<step>`` when complete, so a crash during a save leaves the previous checkpoints as they were;
the unfinished directory is ignored, and removed when the next run opens the directory
(``cleanup_tmp_directories``). A finalized step that is damaged later (truncated or altered files)
or that belongs to another model is detected on restore (layout and hash) and raises
:class:`CheckpointError`; nothing is loaded from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from typing import Any

import jax
import numpy as np

FORMAT = "lrjax-mnist-checkpoint/1"
_STEP_DIR = re.compile(r"^\d+(\.orbax-checkpoint-tmp.*)?$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (corrupt, incomplete, or of another run); the message says why."""


def layout(tree: Any) -> list[list[Any]]:
    """``[path, shape, dtype]`` of every leaf of ``tree`` (arrays or ``jax.ShapeDtypeStruct``)."""
    return [[jax.tree_util.keystr(path, simple=True, separator="/"), list(np.shape(x)), str(np.dtype(x.dtype))]
            for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]]


def digest(tree: Any) -> str:
    """SHA-256 of the leaves of ``tree`` (NumPy arrays), in tree order, with their layout."""
    h = hashlib.sha256(json.dumps(layout(tree)).encode())
    for x in jax.tree.leaves(tree):
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def archive(directory: str) -> tuple[str, int | None] | None:
    """Moves an earlier run's checkpoints out of the way of a new run; nothing is deleted.

    ``directory`` is renamed to ``<directory>.previous-<k>`` with the first free ``k``. Returns
    ``(new path, latest step moved)``, or None if there was nothing to move. Refuses
    (CheckpointError) if ``directory`` holds anything that is not a checkpoint step.
    """
    if not os.path.isdir(directory) or not os.listdir(directory):
        return None
    entries = os.listdir(directory)
    foreign = [e for e in entries if not _STEP_DIR.match(e)]
    if foreign:
        raise CheckpointError(f"{directory} holds files that are not checkpoints ({', '.join(sorted(foreign)[:5])}); "
                              "not touching it. Choose another --workdir.")
    steps = [int(e) for e in entries if e.isdigit()]
    k = 1
    while os.path.exists(f"{directory}.previous-{k}"):
        k += 1
    target = f"{directory}.previous-{k}"
    os.rename(directory, target)
    return target, (max(steps) if steps else None)


class Checkpoints:
    """The checkpoints of one run: an ``ocp.CheckpointManager`` over ``directory``.

    Saves are asynchronous (orbax writes in a background thread; the next save, ``wait`` and
    ``close`` wait for it). ``keep``: how many of the latest checkpoints are kept.
    """

    def __init__(self, directory: str, keep: int = 3):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, cleanup_tmp_directories=True, create=True)
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))
        except OSError as e:
            raise CheckpointError(f"cannot use the checkpoint directory {self.directory!r}: {e.strerror or e}") from None

    # --- what is there ---

    def steps(self) -> list[int]:
        """The checkpoints, oldest first: those found when the directory was opened (finalized ones only;
        unfinished ``*.orbax-checkpoint-tmp`` directories are not checkpoints) and those saved since."""
        return sorted(self._manager.all_steps())

    def latest(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def path(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    # --- writing ---

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Starts writing checkpoint ``step``: ``state`` (NumPy leaves, already on the host) and ``meta``.

        Orbax writes in a background thread, after this returns: what it writes is a private copy
        of both (the caller goes on changing its metrics lists, and on CPU ``jax.device_get`` may
        return views of device buffers).
        """
        state = jax.tree.map(lambda x: np.array(x, copy=True), state)
        meta = json.loads(json.dumps(meta))
        meta = {"format": FORMAT, **meta, "step": int(step), "layout": layout(state), "sha256": digest(state)}
        meta["meta_sha256"] = _meta_digest(meta)
        args = self._ocp.args
        self._manager.save(int(step), args=args.Composite(state=args.StandardSave(state), meta=args.JsonSave(meta)))

    def wait(self) -> None:
        """Blocks until the checkpoint being written (if any) is complete on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    # --- reading ---

    def read_meta(self, step: int) -> dict[str, Any]:
        """The JSON of checkpoint ``step``, checked to be one of this trainer's."""
        args = self._ocp.args
        try:
            meta = self._manager.restore(step, args=args.Composite(meta=args.JsonRestore()))["meta"]
        except Exception as e:  # noqa: BLE001 - orbax/tensorstore/json errors all mean: unreadable
            raise self._corrupt(step, e) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("step") != step:
            raise CheckpointError(f"{self.path(step)} is not a checkpoint of this trainer "
                                  f"(format {meta.get('format') if isinstance(meta, dict) else None!r}, "
                                  f"expected {FORMAT!r}).")
        if meta.get("meta_sha256") != _meta_digest(meta):
            raise self._corrupt(step, "its JSON does not match the checksum saved with it")
        return meta

    def restore(self, step: int, abstract_state: Any, meta: dict[str, Any] | None = None) -> Any:
        """The state of checkpoint ``step`` as NumPy arrays, shaped like ``abstract_state``.

        Checks, before reading any array, that the checkpoint's layout (paths, shapes, dtypes) is
        ``abstract_state``'s, and after reading, that the bytes hash to what was saved. Raises
        CheckpointError otherwise: nothing half-loaded ever reaches the caller.
        """
        meta = self.read_meta(step) if meta is None else meta
        expected, found = layout(abstract_state), meta.get("layout")
        if found != expected:
            raise CheckpointError(f"{self.path(step)} holds a different model or optimizer state: "
                                  f"{describe_layout_difference(found or [], expected)}")
        target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), abstract_state)
        args = self._ocp.args
        try:
            state = self._manager.restore(step, args=args.Composite(state=args.StandardRestore(target)))["state"]
        except Exception as e:  # noqa: BLE001
            raise self._corrupt(step, e) from None
        state = jax.tree.map(np.asarray, state)
        if layout(state) != expected or digest(state) != meta.get("sha256"):
            raise self._corrupt(step, "the arrays read do not match the checksum saved with them")
        return state

    def _corrupt(self, step: int, error: Any) -> CheckpointError:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if isinstance(error, Exception):
            text = f"{type(error).__name__}: {text}"
        older = [s for s in self.steps() if s < step]
        hint = (f"The previous checkpoint (step {older[-1]}) is untouched: delete {self.path(step)} and run "
                "again with --resume to continue from it, " if older else "")
        return CheckpointError(f"checkpoint {self.path(step)} is corrupt or incomplete ({text[:300]}); "
                               f"nothing was loaded from it. {hint}or start a new run without --resume.")


def _meta_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of the JSON of ``meta`` without its ``meta_sha256`` (keys sorted; NaN written as NaN)."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def describe_layout_difference(found: list[list[Any]], expected: list[list[Any]]) -> str:
    """A short human-readable difference between two :func:`layout` lists."""
    f = {p: (tuple(s), d) for p, s, d in found}
    e = {p: (tuple(s), d) for p, s, d in expected}
    parts = []
    for p in e:
        if p in f and f[p] != e[p]:
            parts.append(f"{p} is {_fmt(f[p])} in the checkpoint, {_fmt(e[p])} in this run")
    missing = [p for p in e if p not in f]
    extra = [p for p in f if p not in e]
    if missing:
        parts.append(f"missing from the checkpoint: {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    if extra:
        parts.append(f"not in this run: {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}")
    return "; ".join(parts[:4]) or "the leaves are in a different order"


def _fmt(shape_dtype: tuple[tuple[int, ...], str]) -> str:
    shape, dtype = shape_dtype
    return f"{dtype}{list(shape)}"
