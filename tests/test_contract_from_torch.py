"""``lrjax.from_torch`` of every contract configuration's torch twin, held to the same contract.

The torch scheduler is built from the configuration exactly as a user writes it (user functions as
written, jax.numpy ones included), converted right after construction, and the converted schedule
is run (jitted and vmapped, over int32 / uint32 / int64 / float32 / float64 steps: the step types
themselves are test_contract's) at every contract step against torch (tests/torchtwin.py). Functions JAX cannot
trace must be refused without ``total_steps``
and tabulated with it; chains torch defines only by their history may ask for ``total_steps``.
"""

from __future__ import annotations

import contract_stats
import jax
import pytest
import torchtwin
from conftest import requires_torch
from contract_harness import Contract
from test_contract import CASES, contract_config, with_total_steps

import lrjax

# One mode per configuration (the scalar one in float32, the per-group one under x64): the step types and
# modes themselves are test_contract's; here the conversion is under test.
FROM_TORCH_CASES = [(n, i, i % 2 == 1) for n, i in CASES if n != "per_epoch"]


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield
    contract_stats.report(__name__)


def _python_functions(cfg: dict) -> bool:
    fns = []
    for leaf in torchtwin.leaves(cfg):
        for k in ("lr_lambda", "scale_fn"):
            v = leaf.get(k)
            fns += v if isinstance(v, list) else [v] if v is not None else []
    return any(f.kind == "python" for f in fns)


def convert(cfg: dict, total_steps):
    run = torchtwin.build_torch(cfg, raw=True)
    lr, momentum = lrjax.from_torch(run.scheduler, total_steps=total_steps, momentum=True)
    return momentum if cfg["name"] in torchtwin.MOMENTUM else lr


@requires_torch
@pytest.mark.parametrize(
    "name,index,x64", FROM_TORCH_CASES, ids=[f"{n}-{i}-{'x64' if x else 'float32'}" for n, i, x in FROM_TORCH_CASES]
)
def test_from_torch_contract(name, index, x64):
    cfg = contract_config(name, index)
    category = f"from_torch/{name}"
    problems: list[str] = []
    limit = None
    tabulated = cfg.get("total_steps") if name in ("lambda_lr", "multiplicative_lr") else None
    with jax.enable_x64(x64):
        if _python_functions(cfg):
            try:
                convert(cfg, None)
            except ValueError as e:
                if "total_steps" not in str(e):
                    problems.append(
                        f"from_torch without total_steps refused a Python function without saying "
                        f"to pass total_steps: {e}"
                    )
            except Exception as e:  # noqa: BLE001
                problems.append(
                    f"from_torch without total_steps raised {type(e).__name__} (expected ValueError "
                    f"naming total_steps): {str(e)[:300]}"
                )
            else:
                problems.append("from_torch without total_steps accepted a Python function JAX cannot trace")
        try:
            schedule = convert(cfg, tabulated)
        except ValueError as e:
            if "total_steps" not in str(e) or tabulated is not None:
                problems.append(f"from_torch raised ValueError, but torch runs this scheduler: {str(e)[:400]}")
                schedule = None
            else:
                n = torchtwin.live_horizon(cfg) - 2
                contract_stats.count(category + " (asked for total_steps)")
                cfg, limit = with_total_steps(cfg, n), n
                try:
                    schedule = convert(cfg, n)
                except Exception as e2:  # noqa: BLE001
                    problems.append(f"from_torch(total_steps={n}) raised {type(e2).__name__}: {str(e2)[:300]}")
                    schedule = None
        except Exception as e:  # noqa: BLE001
            problems.append(f"from_torch raised {type(e).__name__}: {str(e)[:400]}")
            schedule = None
        if schedule is not None:
            problems += Contract(
                cfg, schedule, x64, category=category, limit=limit, label="from_torch", legs="quick"
            ).run()
        else:
            contract_stats.failed(category)
    if problems:
        pytest.fail(
            f"{len(problems)} problem(s) for from_torch of {torchtwin.describe(cfg)}:\n  " + "\n  ".join(problems[:40]),
            pytrace=False,
        )
