"""A pytest fixture for parity tests: enable it with ``pytest_plugins = ["lrjax.testing.pytest_plugin"]``
in your ``conftest.py``.

``float_dtype`` runs the test twice, in float32 (JAX's default) and in float64
(``jax_enable_x64``), and yields the active dtype; :func:`lrjax.testing.assert_matches_torch`
then holds the JAX schedule to lrjax's contract for that dtype::

    def test_my_port(float_dtype):
        lrjax.testing.assert_matches_torch(my_schedule(), my_torch_scheduler(), 1000)
"""

from __future__ import annotations

import jax
import numpy as np
import pytest


@pytest.fixture(params=["float32", "float64"])
def float_dtype(request):
    """The test runs in float32 and in float64 (``jax.enable_x64``); yields ``np.float32`` or ``np.float64``."""
    with jax.enable_x64(request.param == "float64"):
        yield np.dtype(request.param)
