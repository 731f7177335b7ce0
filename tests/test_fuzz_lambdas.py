"""User lr_lambdas from a pool of real patterns, live against torch, in float32 and float64.

The pool (tests/strategies.py ``lambda_pool``): warm-up ``min(e / w, 1)`` and its jnp form,
``0.95 ** e``, ``(1 - e / N) ** p``, ``2 ** -(e // k)``, ``1 / (1 + e * e * 1e-10)``, ``e / 10``,
HuggingFace-style warm-up then linear or cosine decay (as HF writes them, with ``if`` and
``math.cos``, and in jax.numpy), ``math.exp``, step functions. Each is used through
``lambda_lr`` (traced), ``lambda_lr(total_steps=N)`` (tabulated with Python ints), and
``from_torch`` of a torch LambdaLR holding it (with and without total_steps). SEMANTICS.md: a
function JAX traces gets torch's values (lrjax calls it with float steps); one it cannot trace is
refused at construction without total_steps and tabulated with it. The steps include an int32
counter under x64 (optax's ``count``), uint32, float32/float64, up to 2**31 - 1.
"""

from __future__ import annotations

import contract_stats
import jax
import pytest
import strategies
import torchtwin
from conftest import requires_torch
from contract_harness import Contract
from hypothesis import given
from hypothesis import strategies as st
from torchtwin import Fn

import lrjax


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield
    contract_stats.report(__name__)


PATHS = ("lambda_lr", "lambda_lr(total_steps)", "from_torch", "from_torch(total_steps)")


@st.composite
def lambda_cases(draw):
    rnd = draw(st.randoms(use_true_random=False))
    fn = strategies.lambda_pool(rnd)
    G = draw(st.sampled_from([None, None, 2]))
    base = strategies._base(rnd, G)
    N = draw(st.sampled_from([1, 10, 255, 256, 1000, 2000]))
    return fn, base, N, draw(st.sampled_from(PATHS)), draw(st.booleans())


def _build(path: str, cfg: dict, total_steps):
    if path.startswith("lambda_lr"):
        return torchtwin.build_lrjax(cfg)
    obj = torchtwin.build_torch(cfg, raw=True).scheduler
    return lrjax.from_torch(obj, total_steps=total_steps)


def check_lambda(fn: Fn, base, N: int, path: str, x64: bool) -> list[str]:
    tabulated = path.endswith("(total_steps)")
    cfg = {"name": "lambda_lr", "base_lr": base, "lr_lambda": fn}
    if tabulated:
        cfg["total_steps"] = N
    category = f"lambdas/{path}"
    problems: list[str] = []
    with jax.enable_x64(x64):
        try:
            schedule = _build(path, cfg, N if tabulated else None)
        except ValueError as e:
            if fn.kind == "python" and not tabulated:
                if "total_steps" not in str(e):
                    problems.append(f"refused, but the message does not say to pass total_steps: {e}")
                contract_stats.count(category + " (refused: not traceable)")
                return problems
            return [
                f"refused ({str(e)[:300]}), but SEMANTICS.md requires {fn!r} to be "
                + ("tabulated with total_steps" if tabulated else "traced to torch's values")
            ]
        except Exception as e:  # noqa: BLE001
            return [f"construction raised {type(e).__name__}: {str(e)[:300]}"]
        if fn.kind == "python" and not tabulated:
            return [f"accepted {fn!r}, which JAX cannot trace, without total_steps (SEMANTICS.md: refuse it)"]
        return Contract(cfg, schedule, x64, category=category, label=path, legs="quick").run()


@requires_torch
@strategies.fuzz_settings(24)
@given(case=lambda_cases())
def test_user_lambdas(case):
    fn, base, N, path, x64 = case
    problems = check_lambda(fn, base, N, path, x64)
    if problems:
        contract_stats.failed(f"lambdas/{path}")
        pytest.fail(
            f"{path} with lr_lambda={fn!r}, base_lr={base!r}, N={N}, "
            f"{'x64' if x64 else 'float32'}:\n  " + "\n  ".join(problems[:30]),
            pytrace=False,
        )


# The issue's examples, through every path and both modes.
ISSUE_LAMBDAS = {
    "e / 10": Fn("e / 10", lambda e: e / 10),
    "jnp.minimum(epoch / 10, 1.0)": Fn(
        "jnp.minimum(e / 10, 1.0)",
        lambda e: __import__("jax.numpy").numpy.minimum(e / 10, 1.0),
        uses_jax=True,
        marks=(10,),
    ),
    "2 ** -e": Fn("2 ** -e", lambda e: 2**-e),
    "2 ** -(e // 200)": Fn("2 ** -(e // 200)", lambda e: 2 ** -(e // 200), marks=(200, 400)),
    "1 / (1 + e * e * 1e-10)": Fn("1 / (1 + e * e * 1e-10)", lambda e: 1 / (1 + e * e * 1e-10)),
    "min(e / 10, 1.0)": Fn("min(e / 10, 1.0)", lambda e: min(e / 10, 1.0), kind="python", marks=(10,)),
}


@requires_torch
@pytest.mark.parametrize("x64", [False, True], ids=["float32", "x64"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("which", sorted(ISSUE_LAMBDAS))
def test_issue_lambdas(which, path, x64):
    problems = check_lambda(ISSUE_LAMBDAS[which], 0.1, 256, path, x64)
    if problems:
        contract_stats.failed(f"lambdas/{path}")
        pytest.fail("\n  ".join(problems[:30]), pytrace=False)
