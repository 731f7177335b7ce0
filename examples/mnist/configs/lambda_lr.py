"""LambdaLR with a Python function: the lr of epoch k is ``base_lr / (1 + k / 2)`` (inverse-time decay).

``python -m examples.mnist.main --config examples/mnist/configs/lambda_lr.py``

A schedule keyword that takes a function (LambdaLR's and MultiplicativeLR's ``lr_lambda``,
CyclicLR's ``scale_fn``) takes a Python function, traced with JAX like the rest of the schedule.
Only a Python config file can hold one: it is code, which you run knowingly, as any script; a
JSON config or a flag is data and never runs.
"""

from examples.mnist.configs.default import Config
from examples.mnist.configs.default import get_config as _default


def lr_lambda(epoch):
    """torch's LambdaLR factor after ``epoch`` calls of ``scheduler.step()``."""
    return 1.0 / (1.0 + 0.5 * epoch)


def get_config() -> Config:
    return _default().replace(schedule={"name": "LambdaLR", "lr_lambda": lr_lambda})
