"""lrjax.testing: parity assertions against torch, for users' own ports.

Every torch scheduler class passes against its lrjax port (and its ``from_torch`` conversion), in
float32 and float64; a mismatching pair reports the right step, group and values (from torch);
an optax schedule is shown to differ from its nearest torch form exactly where it does; the
user's scheduler is never changed. (docs/testing.md's examples run in tests/test_docs.py.)
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import requires_torch

import lrjax
import lrjax.testing as lt
from lrjax import registry
from lrjax.testing import pytest_plugin

float_dtype = pytest_plugin.float_dtype  # the fixture, as a user's conftest loads it

pytestmark = requires_torch
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _opt(lrs=(0.1,), momentum=0.9, adam=False):
    import torch

    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.Adam(groups) if adam else torch.optim.SGD(groups, momentum=momentum)


STEPS = 100  # the examples' periods, milestones and phases fall inside


def optimizer_lr(config) -> float:
    """The lr of torch's optimizer for a config: its ``base_lr`` where torch takes the lr from the optimizer,
    a composite's first member's, else any (CyclicLR and OneCycleLR overwrite it)."""
    entry = registry.lookup(config["name"])
    if entry.torch_lr is not None:
        return config[entry.torch_lr]
    if entry.members is not None:
        members = config[entry.members]
        return optimizer_lr(members[0] if isinstance(members, list) else members)
    return 0.1


def torch_scheduler(config, optimizer=None):
    """torch's scheduler of an lrjax config: the entry's torch class (``entry.torch_type()``) with the same
    keywords, on SGD (momentum 0.9) whose lr is ``base_lr``; a composite's members built first, in order, on the
    same optimizer (torch's ``schedulers``)."""
    entry = registry.lookup(config["name"])
    if optimizer is None:
        optimizer = _opt(lrs=(optimizer_lr(config),))
    kwargs = {k: v for k, v in config.items() if k != "name"}
    if entry.members is not None:
        kwargs["schedulers"] = [torch_scheduler(m, optimizer) for m in kwargs.pop(entry.members)]
    elif entry.torch_lr is not None:
        del kwargs[entry.torch_lr]
    return entry.torch_type()(optimizer=optimizer, **kwargs)


def ports():
    """``{torch class: (make torch scheduler, lrjax port, steps, momentum port or None)}``, from the registry's
    examples: the port is ``lrjax.from_config(entry.example_config())``, its momentum the momentum partner's
    example (which must share the lr example's phases), and torch's scheduler the same keywords, with the
    partner's own (``base_momentum``, ``max_momentum``), given to the torch class."""
    out = {}
    for entry in registry.entries():
        if entry.torch_class is None or entry.role == "plateau":
            continue
        config = entry.example_config()
        torch_config, momentum = config, None
        if entry.momentum is not None:
            partner = registry.lookup(entry.momentum).example_config()
            differ = {k: (config[k], v) for k, v in partner.items() if k != "name" and k in config and v != config[k]}
            assert not differ, f"the examples of {entry.name} and {partner['name']} differ in {differ}"
            torch_config = {**config, **{k: v for k, v in partner.items() if k not in config}}
            momentum = lrjax.from_config(partner)
        steps = min(STEPS, config.get("total_steps") or STEPS)  # torch's OneCycleLR stops at total_steps
        out[entry.torch_class] = (
            functools.partial(torch_scheduler, torch_config),
            lrjax.from_config(config),
            steps,
            momentum,
        )
    return out


PLATEAU_METRICS = [1.0, 0.9, 0.95, 0.95, 0.95, float("nan"), 0.89, 0.9, 0.9, 0.9, float("inf"), 0.5, 0.5, 0.5]


def test_every_torch_class_has_a_port_here():
    plateaus = {e.torch_class for e in registry.entries("plateau")}
    assert set(ports()) | plateaus == set(registry.torch_classes())
    momenta = {name: p[3] for name, p in ports().items() if p[3] is not None}
    assert set(momenta) == {e.torch_class for e in registry.entries() if e.momentum}


@pytest.mark.parametrize("name", sorted(registry.torch_classes()))
def test_every_torch_scheduler_class_passes_against_its_lrjax_port(name, bits):
    from torch.optim import lr_scheduler as L

    if name == "ReduceLROnPlateau":
        kw = {"factor": 0.5, "patience": 1, "cooldown": 1}
        scheduler = L.ReduceLROnPlateau(_opt(), **kw)
        plateau = lrjax.reduce_lr_on_plateau(**kw)
        for ours in (plateau, plateau.as_schedule(0.1), plateau.as_transform(0.1)):
            result = lt.assert_matches_torch(ours, scheduler, metrics=PLATEAU_METRICS)
            assert result.steps_compared == len(PLATEAU_METRICS) + 1 and result.worst <= 1
        return
    make, port, steps, momentum = ports()[name]
    scheduler = make()
    result = lt.assert_matches_torch(port, scheduler, steps, momentum=momentum)
    assert result.ok and result.worst <= 1 and result.dtype == ("float64" if bits == 64 else "float32")


@pytest.mark.parametrize("name", sorted(registry.torch_classes()))
def test_from_torch_conversions_pass(name):
    """``lrjax.from_torch(scheduler)`` (the plateau's: ``_from_torch_reduce_lr_on_plateau``, what
    from_torch returns for it) against the scheduler it came from, also after some steps."""
    from torch.optim import lr_scheduler as L

    if name == "ReduceLROnPlateau":
        scheduler = L.ReduceLROnPlateau(_opt(lrs=(0.1, 0.02)), factor=0.5, patience=1, min_lr=[0.0, 0.01])
        for m in PLATEAU_METRICS[:7]:
            scheduler.step(m)
        converted = lrjax._plateau._from_torch_reduce_lr_on_plateau(scheduler)
        assert isinstance(converted, lrjax.StatefulPlateau) and converted.accumulation_size is None
        lt.assert_matches_torch(converted, scheduler, metrics=PLATEAU_METRICS[7:] * 2)
        return
    make, _, steps, momentum = ports()[name]
    scheduler = make()
    opt = scheduler.optimizer
    for _ in range(5):
        opt.step()
        scheduler.step()
    if momentum is not None:
        lr, mom = lrjax.from_torch(scheduler, momentum=True)
        lt.assert_matches_torch(lr, scheduler, range(5, steps), momentum=mom)
    else:
        lt.assert_matches_torch(lrjax.from_torch(scheduler), scheduler, range(5, steps))


# ---------------------------------------------------------------------------------------------
# Mismatches: the right step, group and values
# ---------------------------------------------------------------------------------------------


def test_a_mismatching_pair_reports_the_first_divergent_step_and_both_values():
    from torch.optim import lr_scheduler as L

    scheduler = L.StepLR(_opt(), step_size=3, gamma=0.5)
    theirs = lt.torch_lrs(scheduler, 10).lr[:, 0]
    ours = lrjax.step_lr(0.1, step_size=4, gamma=0.5)
    with pytest.raises(AssertionError) as info:
        lt.assert_matches_torch(ours, scheduler, 10)
    message = str(info.value)
    first = int(np.flatnonzero(np.abs(np.asarray(ours(jnp.arange(10)), np.float64) - theirs) > 1e-6)[0])
    assert first == 3
    assert f"at step {first} (parameter group 0, jit)" in message
    assert f"torch {float(theirs[first])!r}" in message and f"lrjax {float(np.float32(0.1))!r}" in message
    assert re.search(
        r"\|error\| 0\.05 > tolerance 5\.1e-07 = rtol 1e-05 \* \|torch\| \+ atol 1e-07 \* max\|torch\|", message
    )
    n_bad = int(np.sum(np.abs(np.asarray(ours(jnp.arange(10)), np.float64) - theirs) > 1e-6))
    assert f"{n_bad} of 10 steps differ" in message
    result = lt.compare(ours, scheduler, 10)
    assert not result and result.step == 3 and result.theirs == theirs[3] and result.mismatches == n_bad
    with pytest.raises(AssertionError, match="differs from torch at step 3"):
        assert lt.compare(ours, scheduler, 10)  # the pytest form: a plain assert, the message is the repr


def test_mismatch_in_a_later_group_in_momentum_and_only_eagerly():
    from torch.optim import lr_scheduler as L

    scheduler = L.ExponentialLR(_opt(lrs=(0.1, 0.2)), 0.9)
    result = lt.compare(lrjax.exponential_lr([0.1, 0.25], 0.9), scheduler, 5)
    assert (result.step, result.group, result.what) == (0, 1, "lr") and result.theirs == 0.2

    cyc = L.CyclicLR(_opt(), 0.01, 0.1, step_size_up=4)
    result = lt.compare(lrjax.cyclic_lr(0.01, 0.1, 4), cyc, 12, momentum=lrjax.cyclic_momentum(0.8, 0.95, 4))
    assert result.what == "momentum" and result.step == 0 and result.theirs == 0.9
    assert lt.compare(lrjax.cyclic_lr(0.01, 0.1, 4), cyc, 12, momentum=lrjax.cyclic_momentum(0.8, 0.9, 4))

    def concrete_differs(t):  # a schedule that gives another value when called on a concrete step
        return jnp.asarray(0.1 if isinstance(t, jax.core.Tracer) else 0.2)

    result = lt.compare(concrete_differs, L.ConstantLR(_opt(), 1.0, 0), 4)
    assert result.how == "eager" and result.step == 0 and "concrete_differs (a function)" in str(result)


def test_plateau_mismatch_reports_the_metric():
    from torch.optim import lr_scheduler as L

    scheduler = L.ReduceLROnPlateau(_opt(), factor=0.5, patience=1)
    result = lt.compare(lrjax.reduce_lr_on_plateau(factor=0.5, patience=2), scheduler, metrics=[1.0, 1.0, 1.0, 1.0])
    theirs = lt.torch_lrs(scheduler, metrics=[1.0, 1.0, 1.0, 1.0]).lr[:, 0]
    assert result.unit == "metric" and result.step == 3 and result.theirs == theirs[3] == 0.05
    assert "at metric 3" in str(result)


# ---------------------------------------------------------------------------------------------
# optax's schedules, per_epoch, step(epoch) and custom loops
# ---------------------------------------------------------------------------------------------


def test_optax_warmup_cosine_decay_differs_from_its_nearest_torch_form_after_decay_steps():
    """optax.warmup_cosine_decay_schedule is torch's SequentialLR([LinearLR, CosineAnnealingLR]) up to
    ``decay_steps``; there optax holds ``end_value`` while torch's cosine rises again (period 2 T_max).
    (float32: under x64, optax's schedule is computed less precisely than the float64 contract.)"""
    from torch.optim import lr_scheduler as L

    warmup, decay = 5, 30
    _standard = jax.numpy_dtype_promotion("standard")  # optax's own code assumes standard promotion
    _standard.__enter__()
    schedule = optax.warmup_cosine_decay_schedule(0.01, 0.1, warmup, decay, 0.001)
    opt = _opt()
    torch_form = L.SequentialLR(
        opt, [L.LinearLR(opt, 0.1, 1.0, warmup), L.CosineAnnealingLR(opt, decay - warmup, 0.001)], [warmup]
    )
    lt.assert_matches_torch(schedule, torch_form, decay + 1)  # steps 0..decay: the same schedule
    result = lt.compare(schedule, torch_form, 60)
    theirs = lt.torch_lrs(torch_form, 60).lr[:, 0]
    assert not result and result.step == decay + 1
    assert result.ours == pytest.approx(0.001) and result.theirs == theirs[decay + 1] > 0.001
    assert "warmup_cosine_decay_schedule" in result.name or "join_schedules" in result.name
    _standard.__exit__(None, None, None)


def test_per_epoch_schedules_and_torch_loops():
    """``lrjax.per_epoch`` on the update count against torch stepped once per epoch (steps_per_epoch),
    its fractional form against torch's ``step(epoch + i / iters)`` loop (a custom torch_step), and
    CosineAnnealingWarmRestarts' ``step(epoch)`` form."""
    from torch.optim import lr_scheduler as L

    n = 5
    lt.assert_matches_torch(
        lrjax.per_epoch(lrjax.step_lr(0.1, 2, 0.5), n), L.StepLR(_opt(), 2, 0.5), 60, steps_per_epoch=n
    )
    with pytest.raises(AssertionError, match="differs from torch at step 2 "):  # not per epoch: decays at update 2
        lt.assert_matches_torch(lrjax.step_lr(0.1, 2, 0.5), L.StepLR(_opt(), 2, 0.5), 60, steps_per_epoch=n)

    cawr = lrjax.cosine_annealing_warm_restarts(0.1, 2, 2)
    # torch: for epoch: for i: optimizer.step(); scheduler.step(epoch + i / n). Update g uses the lr set
    # after update g - 1, i.e. after step((g - 1) / n).
    lt.assert_matches_torch(
        lrjax.per_epoch(cawr, n, fractional=True),
        L.CosineAnnealingWarmRestarts(_opt(), 2, 2),
        40,
        torch_step=lambda s, t: s.step((t - 1) / n),
    )
    epochs = [k / 4 for k in range(30)]
    lt.assert_matches_torch(cawr, L.CosineAnnealingWarmRestarts(_opt(), 2, 2), epochs, torch_step="epoch")


def test_torch_lrs_leaves_the_users_scheduler_alone_and_continues_from_it():
    import torch
    from torch.optim import lr_scheduler as L

    opt = _opt(lrs=(0.1, 0.3))
    scheduler = L.OneCycleLR(opt, [0.1, 0.3], total_steps=30)
    for _ in range(4):
        opt.step()
        scheduler.step()
    before = (
        scheduler.state_dict(),
        [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups],
        opt.state_dict(),
    )
    out = lt.torch_lrs(scheduler, range(4, 30))
    assert (
        scheduler.state_dict(),
        [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups],
        opt.state_dict(),
    ) == before
    assert out.lr.shape == (26, 2) and out.momentum.shape == (26, 2)
    lrs, moms = [], []
    for _ in range(4, 30):  # the user's own loop gives the same numbers
        lrs.append([g["lr"] for g in opt.param_groups])
        moms.append([g["momentum"] for g in opt.param_groups])
        opt.step()
        scheduler.step()
    np.testing.assert_array_equal(out.lr, lrs)
    np.testing.assert_array_equal(out.momentum, moms)
    with pytest.raises(ValueError, match="the scheduler is at step 30"):
        lt.torch_lrs(scheduler, 10)
    assert lt.torch_lrs(
        L.StepLR(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 2), 3
    ).momentum.tolist() == [[0.9], [0.9], [0.9]]  # Adam's betas[0]


def test_argument_errors():
    from torch.optim import lr_scheduler as L

    step = L.StepLR(_opt(), 2)
    plateau = L.ReduceLROnPlateau(_opt())
    for call, error, message in [
        (lambda: lt.torch_lrs(object(), 3), TypeError, "torch_scheduler must be a torch.optim.lr_scheduler object"),
        (lambda: lt.torch_lrs(step, 0), ValueError, "steps must be positive"),
        (lambda: lt.torch_lrs(step, [0.5]), ValueError, "fractional steps need torch_step='epoch'"),
        (lambda: lt.torch_lrs(step, 3, metrics=[1.0]), ValueError, "StepLR does not take metrics"),
        (lambda: lt.torch_lrs(plateau, 3), ValueError, "pass metrics="),
        (lambda: lt.torch_lrs(step, 3, torch_step="x"), ValueError, "torch_step must be"),
        (lambda: lt.compare(lrjax.step_lr([0.1, 0.2], 2), step, 3), ValueError, "torch has 1 groups"),
        (
            lambda: lt.compare(lrjax.step_lr(0.1, 2), L.StepLR(_opt(lrs=(0.1, 0.2)), 2), 3),
            ValueError,
            "one value per step, torch's optimizer has 2 parameter groups",
        ),
        (lambda: lt.compare(lrjax.step_lr(0.1, 2), plateau, metrics=[1.0]), TypeError, "must be an lrjax plateau"),
        (lambda: lt.compare(lrjax.reduce_lr_on_plateau(), step, 3), TypeError, "must be a function step -> value"),
        (
            lambda: lt.compare(lrjax.reduce_lr_on_plateau(), plateau, metrics=[1.0], momentum=lrjax.step_lr(0.9, 2)),
            ValueError,
            "does not change the momentum",
        ),
    ]:
        with pytest.raises(error, match=message):
            call()


def test_per_group_lists_of_schedules_and_tolerance_defaults():
    import torchref
    from torch.optim import lr_scheduler as L

    scheduler = L.StepLR(_opt(lrs=(0.1, 0.01)), 3)
    lt.assert_matches_torch([lrjax.step_lr(0.1, 3), lrjax.step_lr(0.01, 3)], scheduler, 20)
    lt.assert_matches_torch(lrjax.step_lr([0.1, 0.01], 3), scheduler, 20)
    assert lt.tolerance(np.float32) == torchref.tolerance(32) and lt.tolerance(np.float64) == torchref.tolerance(64)
    with jax.enable_x64(True):
        assert lt.tolerance() == (1e-11, 1e-12)
        # float64 holds lrjax to 1e-11: a float32 evaluation of the same schedule fails it
        result = lt.compare(
            lambda t: lrjax.exponential_lr(0.1, 0.93)(t).astype(jnp.float32), L.ExponentialLR(_opt(), 0.93), 30
        )
        assert not result and result.rtol == 1e-11


# ---------------------------------------------------------------------------------------------
# Import cost, the pytest fixture, and the page
# ---------------------------------------------------------------------------------------------


def test_import_lrjax_does_not_import_torch():
    code = "import sys, lrjax, lrjax.testing; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert proc.returncode == 0, proc.stderr


def test_the_plugin_fixture_runs_float32_and_float64(float_dtype):
    """``float_dtype`` from ``lrjax.testing.pytest_plugin`` (imported here as a user's conftest would load it)."""
    assert lrjax._base.float_dtype() == float_dtype
    result = lt.assert_matches_torch(
        lrjax.step_lr(0.1, step_size=3), __import__("torch").optim.lr_scheduler.StepLR(_opt(), step_size=3), 10
    )
    assert result.dtype == str(float_dtype) and result.rtol == lt.tolerance(float_dtype)[0]
