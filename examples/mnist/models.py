"""The models, in Flax NNX: the seed's single linear layer and the CNN of Flax's MNIST example."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx


def _torch_uniform(fan_in: int):
    """torch's default ``nn.Linear``/``nn.Conv2d`` init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weights and bias."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class Linear(nnx.Module):
    """The seed's ``SimpleNet``: flatten, then one ``Linear(784, 10)``, initialised as torch does."""

    def __init__(self, *, rngs: nnx.Rngs):
        init = _torch_uniform(28 * 28)
        self.fc = nnx.Linear(28 * 28, 10, kernel_init=init, bias_init=init, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc(x.reshape(x.shape[0], -1))


class CNN(nnx.Module):
    """The CNN of Flax's MNIST example: two 3x3 conv + ReLU + 2x2 average-pool blocks, then 256 -> 10."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 32, kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(32, 64, kernel_size=(3, 3), rngs=rngs)
        self.dense1 = nnx.Linear(7 * 7 * 64, 256, rngs=rngs)
        self.dense2 = nnx.Linear(256, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.avg_pool(nnx.relu(self.conv1(x)), window_shape=(2, 2), strides=(2, 2))
        x = nnx.avg_pool(nnx.relu(self.conv2(x)), window_shape=(2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        return self.dense2(nnx.relu(self.dense1(x)))


MODELS = {"linear": Linear, "cnn": CNN}


def create(name: str, seed: int | jax.Array) -> nnx.Module:
    """Model ``name`` ("linear" or "cnn") with parameters drawn from ``seed`` (an int or a JAX key)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](rngs=nnx.Rngs(params=seed))
