"""Test configuration: strict dtype/rank promotion, and fixtures that run each case jitted and eagerly,
in float32 and in float64."""

from __future__ import annotations

import os
import re
import sys

import jax
import pytest

# Tests import helper modules that live beside them (torchref, ...).
sys.path.insert(0, os.path.dirname(__file__))

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


requires_torch = pytest.mark.skipif(not torch_available(), reason="torch==2.13.0 is not installed")


@pytest.fixture(params=["jit", "eager"])
def run(request):
    """``run(fn, *args)``: calls ``fn`` under ``jax.jit`` or eagerly."""
    if request.param == "jit":
        return lambda fn, *args: jax.jit(fn)(*args)
    return lambda fn, *args: fn(*args)


@pytest.fixture(params=[32, 64], ids=["float32", "float64"])
def bits(request):
    """Runs the test in float32 (default JAX) and in float64 (``jax_enable_x64``); yields 32 or 64."""
    with jax.enable_x64(request.param == 64):
        yield request.param


# --- Test tiers -------------------------------------------------------------------------------
# CI runs everything (`python -m pytest -n 2`). `python -m pytest -m "not slow" -n 2` is the fast
# tier for contributors: every test module and every library module, in a few minutes. The slow
# tests are named here, in one place: (test file, regular expression on the test's name, why).
# A file's other tests stay in the fast tier, so every module keeps some tests there.
SLOW = [
    ("test_long_runs.py", r"test_million_steps\[(?!StepLR\]).*", "10^6-step runs against torch (StepLR stays fast)"),
    ("test_parity.py", r"test_matches_torch\[.*random/", "the seeded random configurations of the stored references"),
    ("test_parity_live.py", r"test_(?!sequential$).*", "hypothesis draws compared with torch live"),
    ("test_plateau.py", r"test_live_", "hypothesis draws compared with torch live"),
    ("test_plateau.py", r"test_stored_torch_values\[.*random/", "the seeded random plateau cases"),
    ("test_mnist_resume.py", r"test_interrupted_runs_resume_to_the_same_bits$", "kills and resumes whole trainings"),
    (
        "test_mnist_parallel.py",
        r"test_one_and_eight_devices_give_the_same_run$",
        "trains on 1 and 8 devices, 2 processes",
    ),
    ("test_mnist_faults.py", r"test_poisoned_batch_stops_with_a_checkpoint_of_the_last_good_state$", "a whole run"),
    ("test_benchmarks_smoke.py", r"test_benchmarks_run_and_write_results$", "runs every benchmark's harness"),
    ("test_packaging.py", r"test_wheel_installs_into_a_fresh_venv$", "builds a wheel and a virtual environment"),
    (
        "test_contract.py",
        r"test_contract\[(?!.*-0-float32\]$)",
        "the contract over every step type (fast: config 0, float32)",
    ),
    ("test_contract.py", r"test_contract_issue_examples\[.*-x64\]$", "the contract's examples under x64"),
    ("test_contract_from_torch.py", r"test_from_torch_contract\[(?!.*-0-float32\]$)", "as test_contract"),
    ("test_cli_fuzz.py", r"test_well_formed_values_equal_the_schedules$", "hypothesis draws of whole commands"),
    ("test_plateau_optax.py", r"test_live_", "hypothesis draws compared with torch live"),
    ("test_fuzz_lambdas.py", r"test_user_lambdas$", "hypothesis draws of user functions"),
    ("test_fuzz_from_torch.py", r"test_from_torch_random_horizons$", "hypothesis draws compared with torch live"),
    ("test_nested.py", r"test_nested_composites$", "hypothesis draws of nested composites"),
    ("test_testing.py", r"test_docs_testing_page_runs$", "docs/testing.md, also run by test_docs.py"),
]
SLOW_SECONDS = 5.0  # a fast-tier test slower than this is listed at the end of the run


def pytest_collection_modifyitems(config, items):
    used = set()
    for item in items:
        name = os.path.basename(str(item.path))
        for i, (module, pattern, _why) in enumerate(SLOW):
            if name == module and re.match(pattern, item.name):
                item.add_marker(pytest.mark.slow)
                used.add(i)
    collected = {os.path.basename(str(item.path)) for item in items}
    config._lrjax_unused_slow_rules = [rule for i, rule in enumerate(SLOW) if rule[0] in collected and i not in used]


_durations: dict[str, float] = {}


def pytest_runtest_logreport(report):
    if report.when == "call" and "slow" not in report.keywords:
        _durations[report.nodeid] = report.duration


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    unused = getattr(config, "_lrjax_unused_slow_rules", [])
    long = sorted(((d, n) for n, d in _durations.items() if d > SLOW_SECONDS), reverse=True)
    if unused or long:
        terminalreporter.section("test tiers (tests/conftest.py)")
    for module, pattern, _why in unused:
        terminalreporter.write_line(f"SLOW rule matches no test (renamed?): {module} {pattern}")
    for duration, nodeid in long[:15]:
        terminalreporter.write_line(f"{duration:5.1f}s not marked slow: {nodeid}")
    if len(long) > 15:
        terminalreporter.write_line(f"... and {len(long) - 15} more fast-tier tests over {SLOW_SECONDS:.0f} s")
