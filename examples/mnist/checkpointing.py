"""Checkpoints of a training run with orbax-checkpoint: written atomically, checked on restore.

A checkpoint is one orbax step directory ``<workdir>/checkpoints/<step>`` (``step``: optimizer
updates done) holding

* the item ``state``: the whole :class:`~examples.mnist.train.TrainState` pytree (update count,
  parameters, optimizer state with its injected lr/momentum and its own count, plateau state),
  as NumPy arrays (``ocp.args.StandardSave``);
* orbax's step metadata, whose ``custom_metadata`` is this trainer's record (JSON): where the run
  is (epoch, position in it), the run's config (the fields that decide the numbers are compared
  on resume), a hash of the epoch's data order, the per-epoch rows so far and the per-update
  metrics of the epoch in progress only (so a checkpoint's size does not grow with the run), the
  layout (path, shape, dtype) and SHA-256 of the state's arrays, and a SHA-256 of the record.

Orbax decides when to save (``save_decision_policy``: every N updates and every N epochs' worth of
updates; the run's end and a stop are forced), keeps the latest N (``max_to_keep``), and writes
atomically: a step is written into ``<step>.orbax-checkpoint-tmp`` and renamed when complete, so a
crash during a save leaves the earlier checkpoints as they were; the leftover is removed when the
next run opens the directory. A finalized step damaged later (truncated or altered files) or of
another model is detected on restore (layout and hashes) and raises :class:`CheckpointError`;
nothing is loaded from it. A save that fails (disk full, directory gone or read-only) raises
:class:`CheckpointWriteError`, which names the last good checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import jax
import numpy as np

FORMAT = "lrjax-mnist-checkpoint/2"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (corrupt, incomplete, or of another run); the message says why."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, permissions, ...). ``last_good``: the latest complete one."""

    def __init__(self, message: str, last_good: str | None):
        super().__init__(message)
        self.last_good = last_good


def layout(tree: Any) -> list[list[Any]]:
    """``[path, shape, dtype]`` of every leaf of ``tree`` (arrays or ``jax.ShapeDtypeStruct``)."""
    return [
        [jax.tree_util.keystr(path, simple=True, separator="/"), list(np.shape(x)), str(np.dtype(x.dtype))]
        for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]
    ]


def digest(tree: Any) -> str:
    """SHA-256 of the leaves of ``tree`` (NumPy arrays), in tree order, with their layout."""
    h = hashlib.sha256(json.dumps(layout(tree)).encode())
    for x in jax.tree.leaves(tree):
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def _os_cause(error: BaseException) -> str:
    """The operating system's reason in an orbax/tensorstore error ("No space left on device"), else its first line."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    code = re.search(r"os_error_code='(\d+)'|\[Errno (\d+)\]", str(error))
    return os.strerror(int(code.group(1) or code.group(2))) if code else _first_line(error)


class Checkpoints:
    """The checkpoints of one run: an ``ocp.CheckpointManager`` over ``directory``.

    ``every_steps``: save when the update count is a multiple of it (0: never); ``every_epochs``:
    every that many epochs of ``steps_per_epoch`` updates (0: never); ``read_only``: only read (no
    cleanup of unfinished saves, which may be another run's in progress). Saves are asynchronous
    (orbax writes in a background thread; the next save, ``wait`` and ``close`` wait for it).
    """

    def __init__(
        self,
        directory: str,
        keep: int = 3,
        *,
        every_steps: int = 0,
        every_epochs: int = 0,
        steps_per_epoch: int = 1,
        read_only: bool = False,
    ):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = os.path.abspath(directory)
        policies = [
            ocp.checkpoint_managers.FixedIntervalPolicy(n)
            for n in (every_steps, every_epochs * steps_per_epoch)
            if n > 0
        ]
        # read_only: for a look at another run's checkpoints (which may be being written): no cleanup.
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            cleanup_tmp_directories=not read_only,
            create=not read_only,
            read_only=read_only,
            save_interval_steps=0 if read_only else 1,
            save_decision_policy=ocp.checkpoint_managers.AnySavePolicy(policies),
        )
        try:
            self._manager = ocp.CheckpointManager(
                self.directory, options=options, item_handlers={"state": ocp.StandardCheckpointHandler()}
            )
        except OSError as e:
            raise CheckpointError(
                f"cannot use the checkpoint directory {self.directory!r}: {e.strerror or e}"
            ) from None
        self._last_saved: int | None = self.latest()

    # --- what is there ---

    def steps(self) -> list[int]:
        """The finalized checkpoints, oldest first (``*.orbax-checkpoint-tmp`` directories are not checkpoints)."""
        return sorted(self._manager.all_steps())

    def latest(self) -> int | None:
        return self._manager.latest_step()

    def path(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    # --- writing ---

    def should_save(self, step: int) -> bool:
        """Whether orbax's policy saves at update ``step`` (every N updates or epochs, not saved yet)."""
        return self._manager.should_save(step)

    def save(self, step: int, state: Any, meta: dict[str, Any], *, force: bool = False) -> str:
        """Starts writing checkpoint ``step``: ``state`` (NumPy leaves, on the host) and the record ``meta``.

        Orbax writes in a background thread, after this returns: what it writes is a private copy
        (on CPU ``jax.device_get`` may return views of device buffers). Raises
        :class:`CheckpointWriteError` if this or the previous save failed.
        """
        state = jax.tree.map(lambda x: np.array(x, copy=True), state)
        meta = {
            "format": FORMAT,
            **json.loads(json.dumps(meta)),
            "step": int(step),
            "layout": layout(state),
            "sha256": digest(state),
        }
        meta["meta_sha256"] = _meta_digest(meta)
        args = self._ocp.args
        try:
            self._manager.save(
                int(step), args=args.Composite(state=args.StandardSave(state)), custom_metadata=meta, force=force
            )
        except Exception as e:  # noqa: BLE001 - orbax/tensorstore/OS errors all mean: not written
            raise self._write_error(step, e) from None
        self._last_saved = int(step)
        return self.path(step)

    def wait(self) -> None:
        """Blocks until the checkpoint being written (if any) is complete on disk."""
        try:
            self._manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001
            raise self._write_error(self._last_saved, e) from None

    def close(self) -> None:
        try:
            self._manager.close()
        except Exception:  # noqa: BLE001 - a failed write was reported by wait(); closing must not raise again
            pass

    def last_complete(self) -> str | None:
        """The directory of the latest checkpoint complete on disk (renamed by orbax), or None."""
        good = self._safe_steps()
        return self.path(good[-1]) if good else None

    def _write_error(self, step: int | None, error: BaseException) -> CheckpointWriteError:
        last = self.last_complete()
        where = f"the last good checkpoint is {last}" if last else "there is no earlier checkpoint"
        return CheckpointWriteError(
            f"could not write a checkpoint in {self.directory} ({_os_cause(error)}); {where}. "
            "Free disk space or make the directory writable, then run the same command with --resume.",
            last,
        )

    def _safe_steps(self) -> list[int]:
        try:
            return sorted(int(e) for e in os.listdir(self.directory) if e.isdigit())
        except OSError:
            return []

    # --- reading ---

    def read_meta(self, step: int) -> dict[str, Any]:
        """The record of checkpoint ``step``, checked to be one of this trainer's and intact."""
        try:
            meta = self._manager.metadata(step).custom_metadata
        except Exception as e:  # noqa: BLE001 - orbax/json errors all mean: unreadable
            raise self._corrupt(step, e) from None
        if not isinstance(meta, dict) or not meta:
            if os.path.isdir(os.path.join(self.path(step), "meta")):  # format 1 kept its record in an item
                raise CheckpointError(
                    f"{self.path(step)} was written by an earlier version of this trainer and "
                    "cannot be resumed: start a new run without --resume (it moves it aside)."
                )
            raise self._corrupt(step, "its record (orbax's custom metadata) is missing or unreadable")
        if meta.get("format") != FORMAT or meta.get("step") != step:
            raise CheckpointError(
                f"{self.path(step)} is not a checkpoint of this trainer "
                f"(format {meta.get('format')!r}, expected {FORMAT!r})."
            )
        if meta.get("meta_sha256") != _meta_digest(meta):
            raise self._corrupt(step, "its record does not match the checksum saved with it")
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
            raise CheckpointError(
                f"{self.path(step)} holds a different model or optimizer state: "
                f"{describe_layout_difference(found or [], expected)}"
            )
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
        text = _first_line(error) if isinstance(error, BaseException) else str(error)
        older = [s for s in self.steps() if s < step]
        hint = (
            f"The previous checkpoint (step {older[-1]}) is untouched: delete {self.path(step)} and run "
            "again with --resume to continue from it, or start a new run without --resume."
            if older
            else "Start a new run without --resume."
        )
        return CheckpointError(
            f"checkpoint {self.path(step)} is corrupt or incomplete ({text}); nothing was loaded from it. {hint}"
        )


def _meta_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of the JSON of ``meta`` without its ``meta_sha256`` (keys sorted; NaN written as NaN)."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def describe_layout_difference(found: list[list[Any]], expected: list[list[Any]]) -> str:
    """A short human-readable difference between two :func:`layout` lists."""
    f = {p: (tuple(s), d) for p, s, d in found}
    e = {p: (tuple(s), d) for p, s, d in expected}
    parts = [f"{p} is {_fmt(f[p])} in the checkpoint, {_fmt(e[p])} in this run" for p in e if p in f and f[p] != e[p]]
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
