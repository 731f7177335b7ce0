"""The real-run side of ``train.train_and_evaluate``: workdir, logs, checkpoints, resume, stops, faults.

:class:`Supervisor` is what the epoch loop of ``train.py`` calls around its pure steps:

* on entry: locks the workdir (``workdir.lock``: a second run there is refused), checks it can be
  written, opens the logs (``metrics.py``) and the checkpoints (``checkpointing.py``), moving an
  earlier run's checkpoints aside when a new run starts without ``resume``;
* :meth:`start`: the initial state, or the latest checkpoint's after checking that it is a state of
  this run (``resume.py``), with the epoch rows and the metrics of the epoch in progress it holds;
* :meth:`train_epoch`: an epoch in compiled pieces (``epochs.Runner``), saving mid-epoch
  checkpoints when orbax's policy says so, stopping with a checkpoint on SIGTERM/SIGINT
  (``preemption.py``) and on a non-finite loss (``nonfinite.py``);
* :meth:`end_epoch`: the epoch's logs, then its checkpoint; :meth:`finish`: the final checkpoint.

Transfers between host and devices are explicit; only the one-time setup runs under
``jax.transfer_guard("allow")``.
"""

from __future__ import annotations

import importlib.util
import os
import signal
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from examples.mnist import checkpointing, epochs, metrics, parallel, resume
from examples.mnist import workdir as workdir_lib
from examples.mnist.configs.default import Config
from examples.mnist.nonfinite import NonFiniteError, stop_message
from examples.mnist.preemption import RunStopped, StopRequests
from examples.mnist.validation import ConfigError


def _concat(chunks: list[dict[str, np.ndarray]], keys: list[str]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([c[k] for c in chunks]) if chunks else np.zeros(0, np.float32) for k in keys}


def _csv_name(key: str) -> str:
    """A per-step metric's name in ``steps.csv`` and ``Result.steps``: lr, momentum (SGD's or Adam's b1), loss."""
    return {"learning_rate": "lr", "loss": "loss"}.get(key, "momentum")


def _version(package: str) -> str | None:
    from importlib import metadata as importlib_metadata

    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return None


class Supervisor:
    """One call of ``train_and_evaluate``'s real-run machinery (a context manager); see the module."""

    def __init__(self, config: Config, workdir: str | None, log: Callable[[str], None]):
        if config.resume and workdir is None:
            raise ConfigError("resume needs the workdir of the run to continue")
        self.config, self.workdir, self.log = config, workdir, log
        self.primary = jax.process_index() == 0  # several hosts: one writes the logs (all write checkpoints)
        self.writer: metrics.MetricsWriter | None = None
        self.ckpts: checkpointing.Checkpoints | None = None
        self.history: list[dict[str, Any]] = []
        self.past: list[dict[str, np.ndarray]] = []  # host per-step metrics of finished epochs
        self.nonfinite = 0
        self.resumed_from: int | None = None
        self._lock = None
        self.stop = StopRequests(False)

    # --- the workdir ---

    def __enter__(self) -> "Supervisor":
        if self.workdir is None:
            return self
        try:
            os.makedirs(self.workdir, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot write to the output directory {self.workdir!r}: {e.strerror or e}") from None
        if self.primary:
            self._lock = workdir_lib.lock(self.workdir)
            self._lock.__enter__()
        try:
            self.checkpoint_dir = workdir_lib.prepare(self.workdir, self.config.checkpoint)
            if self.primary:
                if self.config.tensorboard and importlib.util.find_spec("tensorboard") is None:
                    raise ConfigError(
                        'TensorBoard logs need the tensorboard package: pip install -e ".[examples]", '
                        "or pass --no-tensorboard"
                    )
                self.writer = metrics.MetricsWriter(self.workdir, tensorboard=self.config.tensorboard)
            self.stop = StopRequests(self.config.checkpoint).__enter__()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop.__exit__()
        try:
            if self.ckpts is not None:
                self.ckpts.close()
            if self.writer is not None:
                self.writer.close()
        finally:
            if self._lock is not None:
                self._lock.__exit__(None, None, None)
                self._lock = None

    # --- start: a new state, or the latest checkpoint's ---

    def start(
        self, abstract_state: Any, steps_per_epoch: int, num_examples: int, keys: list[str], init: Callable[[], Any]
    ) -> tuple[Any, dict[str, np.ndarray]]:
        """The initial state (host arrays if restored) and the per-step metrics of the epoch in progress.

        ``keys``: the per-step metrics the train step returns ("loss", "learning_rate", [momentum]);
        ``init()``: a new run's state.
        """
        config, self.spe, self.num_examples, self.keys = self.config, steps_per_epoch, num_examples, keys
        if self.workdir is not None and config.checkpoint:
            self._open_checkpoints()
        latest = self.ckpts.latest() if (self.ckpts is not None and config.resume) else None
        if config.resume and latest is None:
            self.log(
                f"Nothing to resume in {self.ckpts.directory if self.ckpts else 'the workdir'}: starting a new run."
            )
        partial: dict[str, np.ndarray] = {}
        if latest is None:
            with jax.transfer_guard("allow"):  # one-time setup: the initial parameters and optimizer state
                state = init()
        else:
            where = self.ckpts.path(latest)
            meta = self.ckpts.read_meta(latest)
            resume.check_resumable(meta, config, steps_per_epoch, num_examples, where, self.log)
            state = self.ckpts.restore(latest, abstract_state, meta)  # NumPy, checked; placed by the caller
            epochs_done, position = divmod(latest, steps_per_epoch)
            partial = {k: np.asarray(meta["partial"][k], np.float32) for k in keys}
            partial["finite"] = np.ones(position, bool)  # a checkpoint holds good updates only
            self.history = list(meta["history"])
            self.nonfinite = int(meta.get("nonfinite_updates", 0))
            self.resumed_from = latest
            self.log(
                f"Resumed from {where}: {latest} updates done (epoch {epochs_done + 1}, "
                f"batch {position} of {steps_per_epoch})."
            )
        done = (self.resumed_from or 0) // steps_per_epoch * steps_per_epoch
        if self.writer is not None:
            csv_keys = sorted(map(_csv_name, keys), key=metrics.STEP_KEYS.index)
            logged = self._logged(self.writer.start, self.history, csv_keys, done, steps_per_epoch)
            if done and np.isnan(logged["loss"]).any():
                self.log(
                    f"steps.csv holds fewer than the {done} updates of the checkpoint: the missing rows stay missing."
                )
            self.past = [{k: logged[_csv_name(k)] for k in keys}] if done else []
        elif done:
            self.past = [{k: np.full(done, np.nan, np.float32) for k in keys}]
        return state, partial

    def _open_checkpoints(self) -> None:
        config = self.config
        if not config.resume:
            moved = workdir_lib.archive(self.checkpoint_dir) if self.primary else None
            if jax.process_count() > 1:
                from jax.experimental import multihost_utils

                multihost_utils.sync_global_devices("mnist: earlier checkpoints moved aside")
            if moved is not None:
                self.log(
                    f"Starting a new run: moved the checkpoints of an earlier run (up to update {moved[1]}) to "
                    f"{moved[0]}; --resume continues a run instead."
                )
        self.ckpts = checkpointing.Checkpoints(
            self.checkpoint_dir,
            config.keep_checkpoints,
            every_steps=config.checkpoint_every_steps,
            every_epochs=config.checkpoint_every_epochs,
            steps_per_epoch=self.spe,
        )

    # --- checkpoints ---

    def save(self, state: Any, partial: dict[str, np.ndarray], reason: str, force: bool = True) -> str | None:
        """Checkpoints ``state`` (on the devices) with the metrics of the epoch in progress; returns its directory.

        ``force=False``: only if orbax's policy saves at this update count.
        """
        if self.ckpts is None:
            return None
        step = int(parallel.to_host(state.step))  # explicit
        if step in self.ckpts.steps():
            return self.ckpts.path(step)
        if not force and not self.ckpts.should_save(step):
            return None
        host = parallel.to_host(state)  # explicit: the checkpoint's one device-to-host transfer
        epoch, position = divmod(step, self.spe)
        meta = {
            "reason": reason,
            "steps_per_epoch": self.spe,
            "epoch": epoch + 1,
            "position": position,
            "data": {
                "seed": self.config.seed,
                "num_examples": self.num_examples,
                "order_sha256": resume.order_digest(self.config.seed, epoch + 1, self.num_examples),
            },
            "config": resume.config_record(self.config),
            "history": self.history,
            "partial": {k: np.asarray(partial.get(k, np.zeros(0)), np.float32)[:position].tolist() for k in self.keys},
            "nonfinite_updates": self.nonfinite,
            "devices": jax.device_count(),
            "versions": {p: _version(p) for p in ("jax", "flax", "optax", "orbax-checkpoint", "lrjax")},
        }
        return self.ckpts.save(step, host, meta, force=True)

    # --- an epoch ---

    def cuts(self, runner: epochs.Runner, steps_per_epoch: int) -> list[int]:
        """Where the pieces of the first epoch end (see ``Runner.boundaries``), as :meth:`train_epoch` cuts it."""
        checkpoints = self.workdir is not None and self.config.checkpoint
        return runner.boundaries(steps_per_epoch, 0, self.config.checkpoint_every_steps if checkpoints else 0)

    def train_epoch(
        self,
        runner: epochs.Runner,
        state: Any,
        epoch: int,
        batches: dict[str, np.ndarray],
        partial: dict[str, np.ndarray],
    ) -> tuple[Any, dict[str, np.ndarray]]:
        """Trains epoch ``epoch`` (from where ``state`` is in it); returns the state and the epoch's
        per-step metrics (host). ``partial``: the metrics of the updates a resumed epoch had done."""
        config, spe = self.config, self.spe
        first = (epoch - 1) * spe
        start = len(partial.get("loss", ()))
        batches = runner.put_epoch(batches)  # explicit
        first_d = runner.put_scalar(np.int32(first))  # explicit
        stop_mode = config.on_nonfinite == "stop"
        every = config.checkpoint_every_steps if self.ckpts is not None else 0
        bar = epochs.progress_bar(spe, f"Epoch {epoch}", config.progress, initial=start)
        done: list[dict[str, np.ndarray]] = [partial] if start else []  # host, positions [0, a)
        pending: list[dict[str, jax.Array]] = []  # on the device, positions [a_0, a)
        checked = 0  # pieces of `pending` known to be finite
        for state, out, b in runner.pieces(state, batches, first_d, start, runner.boundaries(spe, first, every), bar):
            pending.append(out)
            # "stop": look at the flags of the piece before this one (done by now, or nearly), so
            # the host never waits for the piece it just dispatched. Frozen pieces cost nothing wrong.
            if stop_mode and len(pending) - 1 > checked:
                if not np.all(parallel.to_host(pending[checked]["finite"])):
                    break
                checked += 1
            if b == spe:
                break
            stopping = self.stop.requested()
            if stopping or (every and (first + b) % every == 0):
                if stop_mode and not np.all(parallel.to_host(pending[-1]["finite"])):
                    break
                done.append(epochs.to_host_concat(pending))  # explicit: the metrics so far, for the checkpoint
                pending, checked = [], 0
                path = self.save(state, _concat(done, self.keys), "signal" if stopping else "steps", force=stopping)
                if stopping:
                    self._stopped(first + b, path)
        bar.close()
        if pending:
            done.append(epochs.to_host_concat(pending))  # the epoch's one device-to-host transfer of metrics
        per_step = _concat(done, self.keys + ["finite"])
        finite = per_step.pop("finite")
        bad = np.flatnonzero(~finite)
        if stop_mode and bad.size:
            self._nonfinite_stop(state, epoch, int(bad[0]), per_step)
        self.nonfinite += int(bad.size)
        if bad.size:
            verb = "skipped" if config.on_nonfinite == "skip" else "applied"
            self.log(
                f"Epoch {epoch}: {bad.size} update{'s' if bad.size > 1 else ''} with a non-finite loss or "
                f"result ({verb}, --on-nonfinite {config.on_nonfinite}); first at update {first + int(bad[0])}."
            )
        return state, per_step

    def end_epoch(self, state: Any, row: dict[str, Any], per_step: dict[str, np.ndarray]) -> None:
        """Logs the epoch (``metrics.jsonl``, ``steps.csv``, TensorBoard), then checkpoints it if orbax's
        policy says so, or if it is the last epoch, or if a signal asks the run to stop."""
        epoch = row["epoch"]
        self.history.append(row)
        self.past.append(per_step)
        if self.writer is not None:
            self._logged(
                self.writer.write_epoch, row, {_csv_name(k): v for k, v in per_step.items()}, (epoch - 1) * self.spe
            )
        last = epoch == self.config.epochs
        stopping = not last and self.stop.requested()
        path = self.save(state, {}, "end" if last else "signal" if stopping else "epoch", force=last or stopping)
        if stopping:
            self._stopped(epoch * self.spe, path)

    def _logged(self, write: Callable, *args: Any) -> Any:
        """A log write; its failure (disk full, read-only) names the last good checkpoint and the way on."""
        try:
            return write(*args)
        except metrics.OutputError as e:
            latest = self.ckpts.last_complete() if self.ckpts is not None else None
            where = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written yet"
            raise metrics.OutputError(
                f"{e}; {where}. Free disk space or make the directory writable, then run the "
                "same command with --resume."
            ) from None

    def finish(self) -> tuple[dict[str, np.ndarray], str | None]:
        """Waits for the last checkpoint; returns every update's metrics ("lr", ["momentum"], "loss"; those of
        an earlier run from ``steps.csv``) and the last checkpoint's directory."""
        last = None
        if self.ckpts is not None:
            self.ckpts.wait()
            last = self.ckpts.path(self.ckpts.latest()) if self.ckpts.latest() is not None else None
        return {_csv_name(k): v for k, v in _concat(self.past, self.keys).items()}, last

    def _nonfinite_stop(self, state: Any, epoch: int, position: int, per_step: dict[str, np.ndarray]) -> None:
        step = (epoch - 1) * self.spe + position
        path = self.save(state, {k: v[:position] for k, v in per_step.items()}, "nonfinite")
        if self.ckpts is not None:
            self.ckpts.wait()
        message = stop_message(
            step,
            epoch,
            position,
            self.spe,
            float(per_step["loss"][position]),
            float(per_step["learning_rate"][position]),
            path,
        )
        raise NonFiniteError(message, step, state, path)

    def _stopped(self, step: int, path: str | None) -> None:
        self.ckpts.wait()
        epoch, position = divmod(step, self.spe)
        raise RunStopped(
            f"stopped by {signal.Signals(self.stop.signum).name} after {step} updates (epoch {epoch + 1}, "
            f"batch {position} of {self.spe}); checkpoint saved in {path}. Run the same command "
            "with --resume to continue.",
            self.stop.signum,
            step,
        )
