"""``lrjax.from_torch`` of random torch schedulers with random horizons ``total_steps`` from 1 to 10^5, live.

Each example builds a torch scheduler of any class (leaves, composites, LambdaLR / MultiplicativeLR
with closures of the real patterns in tests/strategies.py, CyclicLR with a scale_fn), converts it
with ``from_torch(scheduler, total_steps=N)`` (N log-uniform in [1, 10^5]) and without, and
compares with torch stepped live over the horizon, in float32 and float64. Without total_steps a
conversion may be refused (ValueError naming total_steps) only for functions JAX cannot trace and
for chains torch defines by their history. User-defined LRScheduler subclasses convert with
total_steps (tabulated by stepping a deep copy) and are refused without it.
"""

from __future__ import annotations

import copy
import math
import warnings

import contract_stats
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import strategies
import torchref
import torchtwin
from conftest import requires_torch
from contract_stats import error_ratio as _ratio
from hypothesis import given
from hypothesis import strategies as st

import lrjax

NAMES = (
    "lambda_lr",
    "lambda_lr",
    "multiplicative_lr",
    "step_lr",
    "multi_step_lr",
    "constant_lr",
    "linear_lr",
    "exponential_lr",
    "polynomial_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "cyclic_lr",
    "one_cycle_lr",
    "chained_scheduler",
    "sequential_lr",
)
TABULATED = ("lambda_lr", "multiplicative_lr", "chained_scheduler", "sequential_lr")
LIVE_COMPOSITE = 20_000  # composites are stepped live this far at most


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield
    contract_stats.report(__name__)


@st.composite
def torch_cases(draw):
    rnd = draw(st.randoms(use_true_random=False))
    name = draw(st.sampled_from(NAMES))
    cfg = strategies.draw(name, rnd)
    if strategies._has_huge(cfg) and name in TABULATED:
        cfg = strategies.draw("exponential_lr", rnd)
    N = round(10 ** draw(st.floats(0.0, 5.0)))
    return cfg, N


def _python(cfg) -> bool:
    for leaf in torchtwin.leaves(cfg):
        for k in ("lr_lambda", "scale_fn"):
            v = leaf.get(k)
            for f in v if isinstance(v, list) else [v] if v is not None else []:
                if f.kind == "python":
                    return True
    return False


def _depends_on_step(cfg) -> bool:
    """MultiplicativeLR with a step-dependent factor has no closed form: lrjax asks for total_steps."""
    return any(
        leaf["name"] == "multiplicative_lr"
        and any(
            f.constant is None
            for f in (leaf["lr_lambda"] if isinstance(leaf["lr_lambda"], list) else [leaf["lr_lambda"]])
        )
        for leaf in torchtwin.leaves(cfg)
    )


def _user_float32(cfg, steps):
    """A traced LambdaLR's values with its function evaluated in float32, as lrjax calls it with x64 off (a
    function ill-conditioned in float32, ``0.99999 ** e``, cannot be closer to torch); None for other schedules."""
    if cfg["name"] != "lambda_lr" or cfg.get("total_steps") is not None:
        return None
    G = torchtwin.groups(cfg) or 1
    fns = cfg["lr_lambda"] if isinstance(cfg["lr_lambda"], list) else [cfg["lr_lambda"]] * G
    base = cfg["base_lr"] if isinstance(cfg["base_lr"], list) else [cfg["base_lr"]] * G
    t = jnp.asarray(steps, jnp.float32)
    try:
        cols = [np.float32(b) * np.asarray(jnp.broadcast_to(f.raw(t), t.shape), np.float32) for b, f in zip(base, fns)]
    except Exception:  # noqa: BLE001
        return None
    return np.stack(cols, axis=-1).astype(np.float64)


def _compare(schedule, expected, steps, bits, what, problems, category, desc, alt=None):
    ours = np.asarray(jax.jit(jax.vmap(schedule))(steps), np.float64)
    exp = expected if ours.ndim == 2 else expected[:, 0]
    if ours.shape != exp.shape:
        problems.append(f"{what} [{bits}]: shape {ours.shape}, torch {exp.shape}")
        return
    if alt is not None and bits == 32:
        # Accept, value by value, the float32-evaluated user function where it is not within the contract of torch.
        alt = alt if ours.ndim == 2 else alt[:, 0]
        rtol, atol = torchref.tolerance(bits)
        scale = float(np.max(np.abs(exp)))
        near_alt = np.abs(ours - alt) <= rtol * np.abs(alt) + atol * scale
        near_torch = np.abs(ours - exp) <= rtol * np.abs(exp) + atol * scale
        contract_stats.count(
            category + " (equal to the float32 user function, not torch)", int(np.sum(near_alt & ~near_torch))
        )
        exp = np.where(near_alt & ~near_torch, ours, exp)
    try:
        ratio, _ = torchref.compare(ours, exp, bits)
        contract_stats.count(category, ours.size)
        contract_stats.worst(category, ratio, desc)
    except AssertionError as e:
        contract_stats.worst(category, _ratio(ours, exp, bits), desc)
        problems.append(f"{what} [{bits}]: {e}")


def check_from_torch(cfg: dict, N: int) -> list[str]:
    desc = f"{torchtwin.describe(cfg)}, total_steps={N}"
    composite = cfg["name"] in torchtwin.COMPOSITES
    live = min(N + 3, LIVE_COMPOSITE) if composite else N + 3
    table = torchtwin.run_torch(cfg, live)
    problems: list[str] = []
    for x64 in (False, True):
        bits = 64 if x64 else 32
        with jax.enable_x64(x64):
            # With total_steps=N: steps 0..N equal torch (tables hold the last value after N).
            obj = torchtwin.build_torch(cfg, raw=True).scheduler
            try:
                converted = lrjax.from_torch(obj, total_steps=N)
            except Exception as e:  # noqa: BLE001 - torch runs every drawn scheduler
                problems.append(f"from_torch(total_steps={N}) [{bits}] raised {type(e).__name__}: {str(e)[:300]}")
                converted = None
            if converted is not None:
                n = min(N, live)
                _compare(
                    converted,
                    table[: n + 1],
                    jnp.arange(n + 1),
                    bits,
                    f"from_torch(total_steps={N})",
                    problems,
                    "from_torch fuzz",
                    desc,
                )
                if cfg["name"] in ("lambda_lr", "multiplicative_lr") and N + 3 <= live:
                    if cfg["name"] == "multiplicative_lr" and not _depends_on_step(cfg):
                        # lambda e: c is c ** t in closed form at every step: past N it still equals torch.
                        exp, what = table[[N + 1, N + 3]], "past total_steps (constant factor, equal to torch)"
                    else:
                        exp, what = np.repeat(table[N : N + 1], 2, axis=0), "past total_steps (holds step N)"
                    _compare(converted, exp, jnp.asarray([N + 1, N + 3]), bits, what, problems, "from_torch fuzz", desc)
            # Without total_steps: equal torch, or refused naming total_steps where SEMANTICS.md allows it.
            obj = torchtwin.build_torch(cfg, raw=True).scheduler
            try:
                plain = lrjax.from_torch(obj)
            except ValueError as e:
                allowed = _python(cfg) or _depends_on_step(cfg) or composite
                if not allowed or "total_steps" not in str(e):
                    problems.append(f"from_torch() [{bits}] refused a scheduler lrjax must convert: {str(e)[:300]}")
                else:
                    contract_stats.count("from_torch fuzz (refused without total_steps)")
                plain = None
            except Exception as e:  # noqa: BLE001
                problems.append(f"from_torch() [{bits}] raised {type(e).__name__}: {str(e)[:300]}")
                plain = None
            else:
                if _python(cfg):
                    problems.append(f"from_torch() [{bits}] accepted a Python function JAX cannot trace")
            if plain is not None:
                _compare(
                    plain,
                    table,
                    jnp.arange(live + 1),
                    bits,
                    "from_torch()",
                    problems,
                    "from_torch fuzz",
                    desc,
                    alt=_user_float32(cfg, np.arange(live + 1)) if not x64 else None,
                )
    if problems:
        contract_stats.failed("from_torch fuzz")
        return [desc + ":"] + problems
    return []


@requires_torch
@strategies.fuzz_settings(15)
@given(case=torch_cases())
def test_from_torch_random_horizons(case):
    problems = check_from_torch(*case)
    if problems:
        pytest.fail("\n  ".join(problems), pytrace=False)


ISSUE_CASES = {
    "hf-warmup-256": (
        {
            "name": "lambda_lr",
            "base_lr": 0.1,
            "lr_lambda": torchtwin.Fn("min(e / 10, 1.0)", lambda e: min(e / 10, 1.0), kind="python"),
        },
        256,
    ),
    "halving-200": (
        {
            "name": "lambda_lr",
            "base_lr": 0.1,
            "lr_lambda": torchtwin.Fn("2 ** -(e // 200)", lambda e: 2 ** -(e // 200)),
        },
        100_000,
    ),
    "inverse-square": (
        {
            "name": "lambda_lr",
            "base_lr": 0.1,
            "lr_lambda": torchtwin.Fn("1 / (1 + e * e * 1e-10)", lambda e: 1 / (1 + e * e * 1e-10)),
        },
        100_000,
    ),
    "swalr": (
        {"name": "swalr", "base_lr": [0.1, 0.05], "swa_lr": 0.01, "anneal_epochs": 7, "anneal_strategy": "linear"},
        50,
    ),
}


@requires_torch
@pytest.mark.parametrize("which", sorted(ISSUE_CASES))
def test_from_torch_issue_examples(which):
    problems = check_from_torch(*ISSUE_CASES[which])
    if problems:
        pytest.fail("\n  ".join(problems), pytrace=False)


# -- user-defined LRScheduler subclasses ----------------------------------------------------------


def _subclasses():
    from torch.optim import lr_scheduler as L

    class WarmupInverseSqrt(L.LRScheduler):
        """A closed-form custom scheduler (get_lr reads only last_epoch)."""

        def __init__(self, optimizer, warmup):
            self.warmup = warmup
            super().__init__(optimizer)

        def get_lr(self):
            e = self.last_epoch
            f = (e + 1) / self.warmup if e < self.warmup else math.sqrt(self.warmup / (e + 1))
            return [b * f for b in self.base_lrs]

    class HalvingOnPlateauOfSteps(L.LRScheduler):
        """A recursive custom scheduler (get_lr reads the optimizer's current lr)."""

        def __init__(self, optimizer, every):
            self.every = every
            super().__init__(optimizer)

        def get_lr(self):
            if self.last_epoch > 0 and self.last_epoch % self.every == 0:
                return [g["lr"] * 0.5 for g in self.optimizer.param_groups]
            return [g["lr"] for g in self.optimizer.param_groups]

    class DoubledStepLR(L.StepLR):
        """A subclass of a torch class that overrides get_lr."""

        def get_lr(self):
            return [2 * lr for lr in super().get_lr()] if self.last_epoch == 0 else super().get_lr()

    return [
        ("WarmupInverseSqrt", lambda o: WarmupInverseSqrt(o, warmup=7)),
        ("HalvingOnPlateauOfSteps", lambda o: HalvingOnPlateauOfSteps(o, every=4)),
        ("DoubledStepLR", lambda o: DoubledStepLR(o, step_size=3, gamma=0.5)),
    ]


@requires_torch
@pytest.mark.parametrize("which", [0, 1, 2], ids=["closed-form", "recursive", "subclass-of-StepLR"])
@pytest.mark.parametrize("N", [1, 300])
def test_from_torch_user_subclasses(which, N):
    import torch

    name, make = _subclasses()[which]
    problems = []

    def fresh(groups=(0.1, 0.03)):
        opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in groups])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return opt, make(opt)

    opt, obj = fresh()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = copy.deepcopy((opt, obj))
        expected = [[g["lr"] for g in reference[0].param_groups]]
        reference[0].step()
        for _ in range(N + 5):
            reference[1].step()
            expected.append([g["lr"] for g in reference[0].param_groups])
    expected = np.asarray(expected)
    held = np.concatenate([expected[: N + 1], np.repeat(expected[N : N + 1], 5, axis=0)])
    for x64 in (False, True):
        bits = 64 if x64 else 32
        with jax.enable_x64(x64):
            try:
                lrjax.from_torch(obj)
            except ValueError as e:
                if "total_steps" not in str(e):
                    problems.append(
                        f"[{bits}] refused without total_steps, but the message does not say to pass it: {e}"
                    )
            except Exception as e:  # noqa: BLE001
                problems.append(f"[{bits}] without total_steps raised {type(e).__name__}: {e}")
            else:
                problems.append(f"[{bits}] converted {name} without total_steps (it must be refused)")
            before = obj.last_epoch
            try:
                schedule = lrjax.from_torch(obj, total_steps=N)
            except Exception as e:  # noqa: BLE001
                problems.append(f"[{bits}] from_torch(total_steps={N}) raised {type(e).__name__}: {str(e)[:300]}")
                continue
            if obj.last_epoch != before:
                problems.append(
                    f"[{bits}] from_torch stepped the scheduler itself (last_epoch {before} -> "
                    f"{obj.last_epoch}); it must step a deep copy"
                )
            ours = np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(N + 6)), np.float64)
            try:
                torchref.compare(ours.reshape(held.shape), held, bits)
                contract_stats.count("from_torch user subclasses", ours.size)
            except (AssertionError, ValueError) as e:
                problems.append(f"[{bits}] steps 0..{N + 5} (held after {N}): {e}")
    if problems:
        contract_stats.failed("from_torch user subclasses")
        pytest.fail(f"{name}, total_steps={N}:\n  " + "\n  ".join(problems), pytrace=False)
