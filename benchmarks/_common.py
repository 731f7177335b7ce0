"""What every benchmark shares: device selection, the environment record, interleaved timing, statistics, JSON.

Timing rules (see README.md): every figure is compared with its peer measured in the same run, the
peers interleaved (A, B, A, B, ... with the order alternating), after a warm-up call, with
``jax.block_until_ready`` inside the timed function; results are medians with their spread.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, "benchmarks", "results")
SCHEMA = 1  # version of the JSON layout written by write_result


# ------------------------------------------------------------------------------------------------
# Device
# ------------------------------------------------------------------------------------------------

_PLATFORMS = {"cpu": "cpu", "gpu": "cuda", "tpu": "tpu"}


def select_device(device: str) -> None:
    """Makes JAX use ``device`` ("auto": whatever ``jax.devices()`` gives). Call before any JAX computation."""
    import jax

    if device == "auto":
        return
    if device not in _PLATFORMS:
        raise SystemExit(f"--device must be one of auto, {', '.join(_PLATFORMS)}; got {device!r}")
    jax.config.update("jax_platforms", _PLATFORMS[device])
    try:
        jax.devices()
    except RuntimeError as e:  # no such backend on this machine
        raise SystemExit(f"--device {device}: JAX has no {_PLATFORMS[device]} backend here ({e})") from None


def add_common_args(parser) -> None:
    parser.add_argument("--device", default="auto", help="cpu, gpu, tpu or auto (jax.devices()'s default)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, not the speed")
    parser.add_argument("--out", default=RESULTS_DIR, help="directory for the JSON results (default: %(default)s)")


# ------------------------------------------------------------------------------------------------
# Environment
# ------------------------------------------------------------------------------------------------


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return getattr(mod, "__version__", "?")


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def environment() -> dict[str, Any]:
    """Device, versions, threads, XLA flags, CPU count and load: printed with, and stored in, every result."""
    import jax

    info: dict[str, Any] = {
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": load_average(),
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "optax": _version("optax"),
        "flax": _version("flax"),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", ""),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
        "jax_enable_x64": bool(jax.config.jax_enable_x64),
        "git_commit": _git_commit(),
    }
    try:
        import torch

        info["torch_num_threads"] = torch.get_num_threads()
        info["torch_num_interop_threads"] = torch.get_num_interop_threads()
    except ImportError:
        info["torch_num_threads"] = None
    return info


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def format_environment(info: dict[str, Any]) -> str:
    return (
        f"device: {info['backend']} {info['devices']} ({info['device_kind']}); "
        f"{info['cpu_count']} CPUs ({info['cpu_affinity']} usable), load average {info['load_average']}\n"
        f"jax {info['jax']}, jaxlib {info['jaxlib']}, optax {info['optax']}, flax {info['flax']}, "
        f"torch {info['torch']} ({info['torch_num_threads']} threads), numpy {info['numpy']}, "
        f"python {info['python']}\n"
        f"XLA_FLAGS={info['XLA_FLAGS']!r} JAX_PLATFORMS={info['JAX_PLATFORMS']!r} "
        f"OMP_NUM_THREADS={info['OMP_NUM_THREADS']!r} x64={info['jax_enable_x64']} commit {info['git_commit']}"
    )


def print_environment(title: str) -> dict[str, Any]:
    info = environment()
    print(f"== {title}")
    print(format_environment(info), flush=True)
    return info


# ------------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------------


def time_call(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes; ``fn`` blocks on its own results (``block_until_ready``)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(peers: dict[str, Callable[[], Any]], pairs: int, warmup: int = 1) -> dict[str, list[float]]:
    """Times the peers alternately, ``pairs`` times each: A B, B A, A B, ... (the order flips every round).

    Each peer is called ``warmup`` times first (compilation, caches). Returns the seconds of every
    call, per peer, in round order, so that ``times[A][i]`` and ``times[B][i]`` ran back to back.
    """
    for fn in peers.values():
        for _ in range(warmup):
            fn()
    names = list(peers)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(pairs):
        order = names if i % 2 == 0 else names[::-1]
        for n in order:
            times[n].append(time_call(peers[n]))
    return times


def first_call(make: Callable[[], Callable[[], Any]]) -> float:
    """Seconds of the first call of a freshly built function (tracing + compilation + one run)."""
    fn = make()
    return time_call(fn)


# ------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------


def _quantile(sorted_xs: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of sorted values."""
    if len(sorted_xs) == 1:
        return float(sorted_xs[0])
    pos = q * (len(sorted_xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return float(sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo))


def summary(xs: Sequence[float]) -> dict[str, float]:
    """``{"median", "q1", "q3", "min", "max", "n"}`` of ``xs``."""
    s = sorted(float(x) for x in xs)
    if not s:
        return {
            "median": float("nan"),
            "q1": float("nan"),
            "q3": float("nan"),
            "min": float("nan"),
            "max": float("nan"),
            "n": 0,
        }
    return {
        "median": statistics.median(s),
        "q1": _quantile(s, 0.25),
        "q3": _quantile(s, 0.75),
        "min": s[0],
        "max": s[-1],
        "n": len(s),
    }


def ratios(num: Sequence[float], den: Sequence[float]) -> dict[str, float]:
    """Summary of the pairwise ratios ``num[i] / den[i]`` (peers timed back to back)."""
    return summary([a / b for a, b in zip(num, den)])


def fmt_ratio(r: dict[str, float] | None, digits: int = 2) -> str:
    """``1.23x [1.20-1.27]``: median and interquartile range (min-max when there are fewer than 5 samples)."""
    if not r or r.get("n", 0) == 0:
        return "-"
    lo, hi = (r["q1"], r["q3"]) if r["n"] >= 5 else (r["min"], r["max"])
    return f"{_num(r['median'], digits)}x [{_num(lo, digits)}-{_num(hi, digits)}]"


def _num(x: float, digits: int) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10 and digits == 0:
        return f"{x:.0f}"
    return f"{x:.{max(digits, 1 if x >= 10 else 2)}f}"


def fmt_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------


def write_result(
    out_dir: str, name: str, env: dict[str, Any], params: dict[str, Any], rows: list[dict[str, Any]], **extra: Any
) -> str:
    """Writes ``{out_dir}/{name}.json``: environment (before and after), parameters, result rows."""
    os.makedirs(out_dir, exist_ok=True)
    payload = {
        "schema": SCHEMA,
        "benchmark": name,
        "environment": env,
        "load_average_after": load_average(),
        "params": params,
        "rows": rows,
        **extra,
    }
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, default=_json_default)
        f.write("\n")
    return path


def _json_default(x: Any) -> Any:
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:
        pass
    return str(x)


def check_python_path() -> None:
    """``examples`` and ``benchmarks`` are imported from the repository root."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
