"""SGD with momentum and OneCycleLR stepped after every update, cycling the momentum (torch's defaults).

``python -m examples.mnist.main --config examples/mnist/configs/one_cycle.py``
"""

from examples.mnist.configs.default import Config
from examples.mnist.configs.default import get_config as _default


def get_config() -> Config:
    return _default().replace(
        optimizer="sgd",
        optimizer_args={"momentum": 0.9},  # overwritten by the cycled momentum, as torch does
        learning_rate=0.01,  # ignored by OneCycleLR, as in torch
        schedule={"name": "OneCycleLR", "max_lr": 0.05, "pct_start": 0.3},  # base/max_momentum 0.85/0.95
    )
