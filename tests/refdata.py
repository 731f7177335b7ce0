"""Loads the torch reference values written by ``tests/generate_reference.py``."""

from __future__ import annotations

import functools
import json
import os

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@functools.lru_cache(maxsize=None)
def load(name: str) -> list[dict]:
    """The stored cases of ``tests/refcases/<name>.py``, each with its ``"expected"`` torch values."""
    with open(os.path.join(DATA, f"{name}.json")) as f:
        data = json.load(f)
    if not data["torch"].startswith("2.13.0"):
        raise ValueError(f"{name}.json was generated with torch {data['torch']}, expected 2.13.0")
    return data["cases"]
