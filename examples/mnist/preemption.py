"""Stopping a run cleanly on SIGTERM (pre-emption) or Ctrl-C: at the next piece of an epoch, with a checkpoint.

The first SIGTERM or SIGINT asks the run to stop at the next piece of an epoch, after saving a
checkpoint; a second Ctrl-C interrupts at once (handlers only in the main thread: Python's rule).
With several processes, they agree (a small all-gather at each piece): a signal seen by any
process stops all of them at the same update, as orbax's saves are collective.

Why not orbax's ``CheckpointManager.reached_preemption``: it asks JAX's preemption service, which
exists only after ``jax.distributed.initialize()`` (a one-process run always gets False), and
whose sync point expects consecutive step ids on every call, while ``should_save`` (the save
policy this trainer uses) calls it with the update count, which jumps from piece to piece.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import jax
import numpy as np


class RunStopped(RuntimeError):
    """The run was stopped by a signal (SIGTERM, SIGINT) after saving a checkpoint; ``signum``, ``step``."""

    def __init__(self, message: str, signum: int, step: int):
        super().__init__(message)
        self.signum, self.step = signum, step


class StopRequests:
    """Catches SIGTERM and SIGINT while a checkpointed run trains (``enabled``); ``requested()`` says whether
    to stop."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def requested(self) -> bool:
        """Whether to stop now (every process gives the same answer at the same piece)."""
        if jax.process_count() == 1:
            return self.signum is not None
        from jax.experimental import multihost_utils

        with jax.transfer_guard("allow"):  # a deliberate host sync, only in multi-process runs
            signals = multihost_utils.process_allgather(np.int32(self.signum or 0))
        if self.signum is None and np.any(signals):
            self.signum = int(np.max(signals))
        return self.signum is not None

    def __enter__(self) -> "StopRequests":
        if self.enabled:
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
