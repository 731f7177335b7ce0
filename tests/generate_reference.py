#!/usr/bin/env python
"""Regenerates the stored torch reference values in ``tests/data/`` by running torch itself.

    python tests/generate_reference.py            # every module in tests/refcases/
    python tests/generate_reference.py plateau    # one of them

Each module ``tests/refcases/<name>.py`` defines ``cases() -> list[dict]`` (JSON-able case
descriptions) and ``run_torch(case) -> dict`` (what torch produces for it). The output,
``tests/data/<name>.json``, stores every case with the values torch returned and the torch
version; the tests compare lrjax against it, and, when torch is installed, against torch live.
Requires ``torch==2.13.0``.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

TORCH_VERSION = "2.13.0"


def main(argv: list[str]) -> int:
    import torch

    if not torch.__version__.startswith(TORCH_VERSION):
        print(f"torch {torch.__version__} is installed; the references are made with torch=={TORCH_VERSION}")
        return 1
    names = argv or sorted(m.name for m in pkgutil.iter_modules([os.path.join(HERE, "refcases")]))
    for name in names:
        module = importlib.import_module(f"refcases.{name}")
        start = time.perf_counter()
        cases = module.cases()
        ids = [c["id"] for c in cases]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate case ids in refcases/{name}.py")
        out = {
            "generator": "tests/generate_reference.py",
            "torch": torch.__version__,
            "cases": [{**case, "expected": module.run_torch(case)} for case in cases],
        }
        path = os.path.join(HERE, "data", f"{name}.json")
        with open(path, "w") as f:
            json.dump(out, f, separators=(",", ":"))
            f.write("\n")
        print(
            f"{name}: {len(cases)} cases -> {os.path.relpath(path)} "
            f"({os.path.getsize(path) / 1e6:.2f} MB, {time.perf_counter() - start:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
