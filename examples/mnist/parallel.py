"""Data parallelism with ``jax.sharding``: one mesh axis, ``data``, over every device of the run.

The train state (parameters, optimizer state, plateau state) is replicated on every device; the
batch axis of each batch is split across the devices. The step functions are ordinary
``jax.jit`` functions of global arrays: the loss is the mean over the whole (global) batch, so XLA
sums the per-device pieces of the loss and of the gradients across devices (an all-reduce) and
every device applies the same update. No ``pmap``, no ``pmean``: the run means what a one-device
run with the same global batch means, up to the order of floating-point sums. Evaluation metrics
are reduced the same way, across devices, before they leave the device (and before the plateau
schedule sees them).

Single host: the mesh holds ``jax.devices()`` (all local devices) and ``feed`` is a
``jax.device_put``. Several hosts (after ``jax.distributed.initialize()``): the mesh holds every
device of every process, each process computes the same epoch order (a pure function of the seed
and epoch) and feeds only its own slice of each batch with ``jax.make_array_from_process_local_data``;
values that come back to the host are read from a local replica. See
``docs/mnist_real_runs.md``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


@dataclasses.dataclass(frozen=True)
class Shardings:
    """The shardings of a data-parallel run on ``mesh``."""

    mesh: Mesh

    @property
    def replicated(self) -> NamedSharding:
        """The state, scalars, metrics: a full copy on every device."""
        return NamedSharding(self.mesh, P())

    @property
    def epoch(self) -> NamedSharding:
        """An epoch's batches, axes (steps, batch, ...): the batch axis split over ``data``."""
        return NamedSharding(self.mesh, P(None, DATA_AXIS))

    @property
    def batch(self) -> NamedSharding:
        """One batch, axes (batch, ...): split over ``data``."""
        return NamedSharding(self.mesh, P(DATA_AXIS))

    @property
    def size(self) -> int:
        return int(self.mesh.devices.size)


def feed(tree: Any, sharding: NamedSharding, batch_axis: int) -> Any:
    """Host arrays (the same global arrays on every process) as global ``jax.Array``s with ``sharding``.

    The explicit host-to-device transfer of the run's data. With one process it is
    ``jax.device_put``; with several, each process sends only its contiguous slice of the batch
    axis (``jax.make_array_from_process_local_data``), which assumes that each process's devices
    are a contiguous block of the mesh, as ``jax.devices()`` orders them.
    """
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    count, index = jax.process_count(), jax.process_index()

    def local(x: np.ndarray) -> jax.Array:
        n = x.shape[batch_axis]
        if n % count:
            raise ValueError(f"a batch of {n} cannot be split evenly over {count} processes")
        part = [slice(None)] * x.ndim
        part[batch_axis] = slice(index * n // count, (index + 1) * n // count)
        return jax.make_array_from_process_local_data(sharding, x[tuple(part)], x.shape)

    return jax.tree.map(local, tree)


def put_replicated(tree: Any, sharding: NamedSharding) -> Any:
    """Host values (identical on every process) as replicated arrays: an explicit transfer."""
    return jax.device_put(tree, sharding)


def to_host(tree: Any) -> Any:
    """Device arrays as NumPy arrays: the explicit device-to-host transfer.

    Replicated arrays that span several processes are not fully addressable; their local replica
    is read instead (every replica holds the same values).
    """

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jax.device_get(x.addressable_data(0))
        return x

    return jax.device_get(jax.tree.map(one, tree))
