"""The CNN of Flax's MNIST example with Adam and a cosine decay after one warm-up epoch.

``python -m examples.mnist.main --config examples/mnist/configs/cnn.py``
"""

from examples.mnist.configs.default import Config
from examples.mnist.configs.default import get_config as _default


def get_config() -> Config:
    return _default().replace(
        model="cnn",
        schedule={"name": "cosine_annealing_lr"},  # T_max: the epochs after the warm-up
        warmup=1,
    )
