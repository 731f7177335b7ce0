"""Parity cases: one JSON-able description runs torch's scheduler and builds the lrjax schedule.

A case is a dict::

    {"id": "StepLR/basic", "scheduler": "StepLR", "base_lr": 0.1 (or [0.1, 0.2] per group),
     "kwargs": {...torch keyword arguments...}, "steps": 100}

with optionally ``"float_steps": [...]`` (CosineAnnealingWarmRestarts' ``step(epoch)``),
``"optimizer": "Adam"``, and for ``ChainedScheduler``/``SequentialLR`` a list ``"members"`` of
``{"scheduler": ..., "kwargs": ...}`` (plus ``"milestones"``). Functions (``lr_lambda``,
``scale_fn``) are named: ``"exp:0.95"`` etc., see :data:`FUNCTIONS`; each name has a torch form
(Python numbers, as torch calls it) and a JAX form.

``run_torch(case)`` returns ``{"lr": [[lr per step] per group], "momentum": ...}`` from torch
itself (step 0 first: the lr right after construction); ``build_lrjax(case)`` returns
``(lr_schedule, momentum_schedule or None)``.
"""

from __future__ import annotations

import gc
import warnings
from typing import Any

import jax.numpy as jnp

import lrjax

# ---------------------------------------------------------------------------------------------
# Named functions for lr_lambda / scale_fn: (torch form, JAX form)
# ---------------------------------------------------------------------------------------------


def _jfloat(e):
    return jnp.asarray(e).astype(float)


def function(name: str) -> tuple[Any, Any]:
    kind, _, arg = name.partition(":")
    a = float(arg) if arg else None
    if kind == "const":  # lambda epoch: a
        return (lambda e: a), (lambda e: a)
    if kind == "exp":  # lambda epoch: a ** epoch
        return (lambda e: a**e), (lambda e: a ** _jfloat(e))
    if kind == "div":  # lambda epoch: epoch // a  (torch's docs example, a = 30)
        n = int(a)
        return (lambda e: e // n), (lambda e: e // n)
    if kind == "warmup":  # lambda epoch: min(epoch / a, 1.0)  (the seed's warm-up)
        return (lambda e: min(e / a, 1.0)), (lambda e: jnp.minimum(_jfloat(e) / a, 1.0))
    if kind == "skip0":  # lambda epoch: 0.0 if epoch == 0 else a
        return (lambda e: 0.0 if e == 0 else a), (lambda e: jnp.where(e == 0, 0.0, a))
    if kind == "inv":  # lambda epoch: 1 / (1 + a * epoch)
        return (lambda e: 1.0 / (1.0 + a * e)), (lambda e: 1.0 / (1.0 + a * _jfloat(e)))
    if kind == "halfpow":  # scale_fn: 1 / 2 ** (x - 1)
        return (lambda x: 1 / (2.0 ** (x - 1))), (lambda x: 1 / (2.0 ** (_jfloat(x) - 1)))
    if kind == "pow":  # scale_fn: a ** x
        return (lambda x: a**x), (lambda x: a ** _jfloat(x))
    raise KeyError(name)


FUNCTIONS = ["const:0.95", "exp:0.95", "div:30", "warmup:10", "skip0:0.5", "inv:0.1", "halfpow", "pow:0.99"]
_FUNCTION_ARGS = ("lr_lambda", "scale_fn")


def _functions(kwargs: dict, which: int) -> dict:
    out = dict(kwargs)
    for key in _FUNCTION_ARGS:
        if key in out and out[key] is not None:
            v = out[key]
            out[key] = [function(x)[which] for x in v] if isinstance(v, list) else function(v)[which]
    return out


# ---------------------------------------------------------------------------------------------
# torch
# ---------------------------------------------------------------------------------------------

_MOMENTUM_SCHEDULERS = ("CyclicLR", "OneCycleLR")


def _torch_scheduler(L, opt, spec: dict):
    """One member, built in the natural order: a composite's members before the composite."""
    name = spec["scheduler"]
    if name == "ChainedScheduler":
        return L.ChainedScheduler([_torch_scheduler(L, opt, m) for m in spec["members"]])
    if name == "SequentialLR":
        return L.SequentialLR(
            opt, [_torch_scheduler(L, opt, m) for m in spec["members"]], milestones=spec["milestones"]
        )
    kwargs = _functions(spec.get("kwargs", {}), 0)
    return lrjax.registry.lookup(name).torch_type()(opt, **kwargs)


def run_torch(case: dict) -> dict:
    """Runs the case in torch; returns per-step lrs (and momenta) for every parameter group."""
    import torch
    from torch.optim import lr_scheduler as L

    base = case["base_lr"]
    groups = base if isinstance(base, list) else [base]
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in groups]
    param_groups = [{"params": [p], "lr": float(b)} for p, b in zip(params, groups)]
    cycles_momentum = case["scheduler"] in _MOMENTUM_SCHEDULERS and case.get("kwargs", {}).get("cycle_momentum", True)
    if case.get("optimizer", "SGD") == "Adam":
        opt = torch.optim.Adam(param_groups)
    else:
        opt = torch.optim.SGD(param_groups, momentum=0.9 if cycles_momentum else 0.0)

    def momenta():
        return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = _torch_scheduler(L, opt, case)
        groups = opt.param_groups
        lrs = [[g["lr"]] for g in groups]  # one list per parameter group
        moms = [[m] for m in momenta()] if cycles_momentum else None
        if "float_steps" in case:
            lrs, moms = [[] for _ in groups], None
            for epoch in case["float_steps"]:
                opt.step()
                sched.step(epoch)
                for col, g in zip(lrs, groups):
                    col.append(g["lr"])
        else:
            opt.step()  # torch only checks that optimizer.step() ran before scheduler.step(); it never reads the lr
            gc_enabled = gc.isenabled()
            gc.disable()  # a million small appends otherwise trigger the collector over and over
            try:
                for _ in range(case["steps"]):
                    sched.step()
                    for col, g in zip(lrs, groups):
                        col.append(g["lr"])
                    if moms is not None:
                        for col, m in zip(moms, momenta()):
                            col.append(m)
            finally:
                if gc_enabled:
                    gc.enable()
    out = {"lr": lrs}
    if moms is not None:
        out["momentum"] = moms
    return out


# ---------------------------------------------------------------------------------------------
# lrjax
# ---------------------------------------------------------------------------------------------


def _lrjax_member(spec: dict, base_lr) -> tuple[Any, Any]:
    """(lr schedule, momentum schedule or None) for one torch scheduler spec, as the README maps them."""
    name = spec["scheduler"]
    kw = _functions(spec.get("kwargs", {}), 1)
    if name == "MultiplicativeLR":
        lam = spec["kwargs"]["lr_lambda"]
        if any(not n.startswith("const:") for n in (lam if isinstance(lam, list) else [lam])):
            kw.setdefault("total_steps", spec.get("steps", 1000))  # a step-dependent lambda is tabulated
    entry = lrjax.registry.lookup(name)
    if entry.momentum is None:
        return entry.factory(base_lr, **kw), None
    # CyclicLR / OneCycleLR carry torch's momentum keywords: lrjax.split_momentum maps them.
    lr_config, momentum_config = lrjax.split_momentum({"name": name, **kw})
    momentum = lrjax.from_config(momentum_config) if momentum_config is not None else None
    return lrjax.from_config(lr_config), momentum


def _first_leaf(spec: dict) -> dict:
    return _first_leaf(spec["members"][0]) if "members" in spec else spec


def torch_initial_lr(case: dict):
    """The ``initial_lr`` torch's schedulers read as their base: the optimizer's lr, unless the first
    scheduler constructed on it is a CyclicLR, which sets the lr to its own ``base_lr`` first."""
    first = _first_leaf(case)
    if first["scheduler"] == "CyclicLR":
        return first["kwargs"]["base_lr"]
    return case["base_lr"]


def _lrjax_schedule(spec: dict, base):
    if spec["scheduler"] == "ChainedScheduler":
        members = [_lrjax_schedule(m, base) for m in spec["members"]]
        return lrjax.chained_scheduler(members, **spec.get("chain_kwargs", {}))
    if spec["scheduler"] == "SequentialLR":
        return lrjax.sequential_lr([_lrjax_schedule(m, base) for m in spec["members"]], spec["milestones"])
    return _lrjax_member(spec, base)[0]


def build_lrjax(case: dict):
    base = torch_initial_lr(case)
    if "members" in case:
        return _lrjax_schedule(case, base), None
    return _lrjax_member(case, base)


def tolerance(bits: int) -> tuple[float, float]:
    """(rtol, atol as a fraction of max|torch|): the precision contract of lrjax against torch."""
    return (1e-5, 1e-7) if bits == 32 else (1e-11, 1e-12)


def compare(ours, theirs, bits: int) -> tuple[float, float]:
    """Checks ``|ours - theirs| <= rtol |theirs| + atol max|theirs|`` elementwise (arrays of equal shape).

    Returns ``(worst error / allowed, worst relative error)``; raises AssertionError naming the first
    failing index with both values.
    """
    import numpy as np

    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"shape {ours.shape} != torch's {theirs.shape}"
    assert np.all(np.isfinite(ours)), "lrjax produced a non-finite value"
    rtol, atol = tolerance(bits)
    err = np.abs(ours - theirs)
    # Below the smallest normal float a value cannot be represented (XLA flushes subnormals to 0).
    tiny = np.finfo(np.float32 if bits == 32 else np.float64).tiny
    allowed = rtol * np.abs(theirs) + np.maximum(atol * np.max(np.abs(theirs)), tiny)
    bad = np.argwhere(err > allowed)
    if bad.size:
        i = tuple(bad[0])
        raise AssertionError(
            f"{len(bad)} value(s) differ from torch beyond rtol={rtol}, atol={atol}*max|torch| (float{bits}); "
            f"first at index {i}: lrjax {ours[i]!r}, torch {theirs[i]!r}"
        )
    ratio = float(np.max(err / np.maximum(allowed, np.finfo(float).tiny))) if err.size else 0.0
    rel = float(np.max(err / np.maximum(np.abs(theirs), np.finfo(float).tiny))) if err.size else 0.0
    return ratio, rel
