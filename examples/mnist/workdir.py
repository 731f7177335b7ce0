"""The run directory: one run at a time (a lock), writable before training, earlier checkpoints kept.

* :func:`lock` takes an exclusive ``fcntl.flock`` on ``WORKDIR/.lock`` for the whole run. A second
  run on the same directory (with or without ``--resume``) is refused at once, before it touches
  anything, with a message naming the running process. The kernel drops the lock when the process
  ends, however it ends (SIGKILL included): no stale lock to remove by hand.
* :func:`prepare` makes the directory and checks it can be written, before the data are read.
* :func:`archive` moves an earlier run's checkpoints aside (``checkpoints.previous-<k>``) when a
  new run starts there without ``--resume``; nothing is deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import time
from collections.abc import Iterator

from examples.mnist.checkpointing import CheckpointError
from examples.mnist.validation import ConfigError

_STEP_DIR = re.compile(r"^\d+(\.orbax-checkpoint-tmp.*)?$")


class WorkdirBusy(ConfigError):
    """Another run holds the workdir's lock."""


@contextlib.contextmanager
def lock(workdir: str) -> Iterator[None]:
    """Holds ``WORKDIR/.lock`` exclusively while the block runs; raises :class:`WorkdirBusy` if taken."""
    path = os.path.join(workdir, ".lock")
    try:
        # Held open read-only (flock needs no write access), so that the run holds no file open
        # for writing between its writes.
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as e:
        raise ConfigError(f"cannot write to the output directory {workdir!r}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 500, 0).decode("utf-8", "replace").strip() or "another process"
            raise WorkdirBusy(
                f"the workdir {workdir!r} is in use by another run ({holder}); wait for it to end "
                "(or stop it), or choose another --workdir."
            ) from None
        try:
            with open(path, "w", encoding="utf-8") as f:  # who holds it, for the message above
                f.write(
                    f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)[:300]}\n"
                )
        except OSError as e:
            raise ConfigError(f"cannot write to the output directory {workdir!r}: {e.strerror or e}") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def prepare(workdir: str, checkpoints: bool) -> str | None:
    """Makes ``workdir`` (and ``checkpoints/``) and checks both can be written; returns the checkpoint directory."""
    checkpoint_dir = os.path.join(workdir, "checkpoints") if checkpoints else None
    try:
        os.makedirs(workdir, exist_ok=True)
        for directory in (workdir, checkpoint_dir):
            if directory is None:
                continue
            os.makedirs(directory, exist_ok=True)
            probe = os.path.join(directory, f".write-test-{os.getpid()}")
            with open(probe, "w", encoding="utf-8"):
                pass
            os.remove(probe)
    except OSError as e:
        raise ConfigError(f"cannot write to the output directory {workdir!r}: {e.strerror or e}") from None
    return checkpoint_dir


def archive(directory: str) -> tuple[str, int | None] | None:
    """Moves an earlier run's checkpoints out of the way of a new run; nothing is deleted.

    ``directory`` is renamed to ``<directory>.previous-<k>`` with the first free ``k`` (and made
    again, empty). Returns ``(new path, latest step moved)``, or None if there was nothing to
    move. Refuses (CheckpointError) if ``directory`` holds anything that is not a checkpoint step.
    """
    entries = [e for e in os.listdir(directory) if not e.startswith(".write-test-")] if os.path.isdir(directory) else []
    if not entries:
        return None
    foreign = [e for e in entries if not _STEP_DIR.match(e)]
    if foreign:
        raise CheckpointError(
            f"{directory} holds files that are not checkpoints ({', '.join(sorted(foreign)[:5])}); "
            "not touching it. Choose another --workdir."
        )
    steps = [int(e) for e in entries if e.isdigit()]
    k = 1
    while os.path.exists(f"{directory}.previous-{k}"):
        k += 1
    target = f"{directory}.previous-{k}"
    os.rename(directory, target)
    os.makedirs(directory)
    return target, (max(steps) if steps else None)
