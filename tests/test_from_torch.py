"""``lrjax.from_torch``: every torch scheduler class, converted and then compared with the torch object
itself as it steps (float32 and float64, jitted)."""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax

torch = pytest.importorskip("torch", reason="torch==2.13.0 is not installed")
L = torch.optim.lr_scheduler


def optimizer(lrs=(0.1,), kind="SGD"):
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    if kind == "Adam":
        return torch.optim.Adam(params)
    return torch.optim.SGD(params, momentum=0.9)


def momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def run_torch(opt, scheduler, steps, metrics=None):
    """lr (and momentum) per group after construction and after each of ``steps`` steps."""
    lrs, moms = [[g["lr"] for g in opt.param_groups]], [momenta(opt)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(steps):
            opt.step()
            scheduler.step() if metrics is None else scheduler.step(metrics[k])
            lrs.append([g["lr"] for g in opt.param_groups])
            moms.append(momenta(opt))
    return np.asarray(lrs, np.float64), np.asarray(moms, np.float64)


def tolerance(bits):
    return (1e-5, 1e-7) if bits == 32 else (1e-11, 1e-12)


def assert_close(ours, theirs, bits, what="lr"):
    ours = np.asarray(ours, np.float64).reshape(theirs.shape)
    rtol, atol = tolerance(bits)
    scale = np.max(np.abs(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol * scale, err_msg=what)


def values(schedule, steps, offset=0):
    return jax.jit(jax.vmap(schedule))(jnp.arange(offset, offset + steps + 1))


def expected_dtype(bits):
    return np.float64 if bits == 64 else np.float32


# Each case: (id, optimizer kwargs, torch constructor, steps, from_torch kwargs).
CASES = [
    ("LambdaLR/traced", {}, lambda o: L.LambdaLR(o, lambda e: 1 / (1 + e // 10)), 60, {}),
    ("LambdaLR/int", {}, lambda o: L.LambdaLR(o, lambda e: e // 30), 70, {}),
    (
        "LambdaLR/python-groups",
        {"lrs": (0.05, 0.2)},
        lambda o: L.LambdaLR(o, [lambda e: e // 30, lambda e: 0.95**e]),
        100,
        {"total_steps": 100},
    ),
    ("LambdaLR/warmup-python", {}, lambda o: L.LambdaLR(o, lambda e: min(e / 10, 1.0)), 40, {"total_steps": 40}),
    ("MultiplicativeLR/const", {}, lambda o: L.MultiplicativeLR(o, lambda e: 0.95), 80, {}),
    (
        "MultiplicativeLR/python",
        {"lrs": (0.1, 0.3)},
        lambda o: L.MultiplicativeLR(o, lambda e: 0.9 if e % 3 else 1.05),
        50,
        {"total_steps": 50},
    ),
    ("StepLR/basic", {}, lambda o: L.StepLR(o, step_size=7, gamma=0.5), 50, {}),
    ("StepLR/negative-step-size", {}, lambda o: L.StepLR(o, step_size=-3, gamma=0.5), 20, {}),
    (
        "MultiStepLR/counter-groups",
        {"lrs": (0.1, 1.0)},
        lambda o: L.MultiStepLR(o, milestones=[5, 2, 5, 8, -1], gamma=0.5),
        20,
        {},
    ),
    ("ConstantLR/basic", {}, lambda o: L.ConstantLR(o, factor=0.5, total_iters=4), 10, {}),
    ("ConstantLR/total-iters-0", {}, lambda o: L.ConstantLR(o, factor=0.5, total_iters=0), 10, {}),
    ("LinearLR/groups", {"lrs": (0.05, 0.5)}, lambda o: L.LinearLR(o, 0.25, 1.0, total_iters=10), 20, {}),
    ("ExponentialLR/basic", {}, lambda o: L.ExponentialLR(o, gamma=0.9), 60, {}),
    ("PolynomialLR/basic", {}, lambda o: L.PolynomialLR(o, total_iters=10, power=2.0), 20, {}),
    ("CosineAnnealingLR/periodic", {}, lambda o: L.CosineAnnealingLR(o, T_max=10, eta_min=0.01), 55, {}),
    ("CosineAnnealingLR/negative-T_max", {}, lambda o: L.CosineAnnealingLR(o, T_max=-7), 30, {}),
    (
        "CosineAnnealingWarmRestarts/T_mult",
        {"lrs": (0.1, 0.2)},
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.001),
        80,
        {},
    ),
    (
        "CyclicLR/up3-down7-groups",
        {"lrs": (0.1, 0.1)},
        lambda o: L.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=3, step_size_down=7),
        45,
        {},
    ),
    ("CyclicLR/triangular2", {}, lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=4, mode="triangular2"), 40, {}),
    (
        "CyclicLR/exp_range-adam",
        {"kind": "Adam"},
        lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=5, mode="exp_range", gamma=0.98),
        40,
        {},
    ),
    (
        "CyclicLR/scale_fn-python",
        {},
        lambda o: L.CyclicLR(
            o, 0.01, 0.1, step_size_up=3, scale_fn=lambda x: min(1.0, 3 / (x + 1)), scale_mode="iterations"
        ),
        30,
        {"total_steps": 30},
    ),
    (
        "CyclicLR/scale_fn-cycle-python",
        {},
        lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=2, scale_fn=lambda x: 1 / (2.0 ** (x - 1))),
        30,
        {"total_steps": 30},
    ),
    ("CyclicLR/no-momentum", {}, lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=2, cycle_momentum=False), 10, {}),
    ("OneCycleLR/cos", {}, lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=100), 100, {}),
    (
        "OneCycleLR/three-phase-linear-groups",
        {"lrs": (0.1, 0.1), "kind": "Adam"},
        lambda o: L.OneCycleLR(
            o,
            max_lr=[0.1, 0.3],
            total_steps=61,
            pct_start=0.25,
            anneal_strategy="linear",
            three_phase=True,
            div_factor=10.0,
            final_div_factor=100.0,
        ),
        61,
        {},
    ),
    ("OneCycleLR/fractional-phase", {}, lambda o: L.OneCycleLR(o, max_lr=1.0, total_steps=1001), 1001, {}),
    (
        "ChainedScheduler/product",
        {},
        lambda o: L.ChainedScheduler([L.ConstantLR(o, factor=0.1, total_iters=20), L.ExponentialLR(o, gamma=0.95)]),
        40,
        {},
    ),
    (
        "ChainedScheduler/cosine-eta_min",
        {"lrs": (1.0,)},
        lambda o: L.ChainedScheduler([L.LinearLR(o, 0.1, total_iters=4), L.CosineAnnealingLR(o, 10, eta_min=0.05)]),
        40,
        {},
    ),
    (
        "ChainedScheduler/lambda-overwrites",
        {"lrs": (1.0,)},
        lambda o: L.ChainedScheduler([L.LambdaLR(o, lambda e: 1 / (1 + e)), L.ExponentialLR(o, gamma=0.9)]),
        12,
        {},
    ),
    (
        "ChainedScheduler/cyclic-first",
        {"lrs": (1.0,)},
        lambda o: L.ChainedScheduler([L.CyclicLR(o, 0.01, 0.1, step_size_up=4), L.StepLR(o, 5, 0.5)]),
        30,
        {},
    ),
    (
        "SequentialLR/warmup-cosine",
        {},
        lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.1, total_iters=10), L.CosineAnnealingLR(o, T_max=30)], [10]),
        60,
        {},
    ),
    (
        "SequentialLR/multiplicative-quirk",
        {"lrs": (1.0, 2.0)},
        lambda o: L.SequentialLR(o, [L.ExponentialLR(o, 0.5), L.MultiplicativeLR(o, lambda e: 0.9)], [3]),
        10,
        {},
    ),
    (
        "SequentialLR/three",
        {},
        lambda o: L.SequentialLR(o, [L.ConstantLR(o, 0.1, 5), L.StepLR(o, 3, 0.5), L.ExponentialLR(o, 0.9)], [5, 12]),
        30,
        {},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_the_torch_object(case, bits):
    _, opt_kwargs, make, steps, kwargs = case
    opt = optimizer(**opt_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = make(opt)
    lr, momentum = lrjax.from_torch(scheduler, momentum=True, **kwargs)
    assert isinstance(lr, lrjax.LRSchedule)
    torch_lrs, torch_moms = run_torch(opt, scheduler, steps)
    ours = values(lr, steps)
    assert ours.dtype == expected_dtype(bits)
    assert ours.shape == ((steps + 1,) if torch_lrs.shape[1] == 1 else (steps + 1, torch_lrs.shape[1]))
    assert_close(ours, torch_lrs, bits)
    name = type(scheduler).__name__
    cycles = name in ("CyclicLR", "OneCycleLR") and scheduler.cycle_momentum
    cycles |= name == "ChainedScheduler" and any(
        isinstance(m, L.CyclicLR) and m.cycle_momentum for m in scheduler._schedulers
    )
    assert (momentum is not None) == cycles
    if momentum is not None:
        assert_close(values(momentum, steps), torch_moms, bits, "momentum")


def test_every_torch_class_is_covered():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = {type(make(optimizer(**kw))).__name__ for _, kw, make, _, _ in CASES} | {"ReduceLROnPlateau"}
        classes = {n for n in dir(L) if isinstance(getattr(L, n), type) and issubclass(getattr(L, n), L.LRScheduler)}
    classes -= {"LRScheduler", "_LRScheduler"}
    assert classes == names


def test_repr_of_a_simple_conversion():
    opt = optimizer((0.05,))
    assert repr(lrjax.from_torch(L.StepLR(opt, step_size=30))) == "lrjax.step_lr(base_lr=0.05, step_size=30, gamma=0.1)"


# ----------------------------------------------------------------------------------------------
# ReduceLROnPlateau
# ----------------------------------------------------------------------------------------------

METRICS = [
    1.0,
    0.9,
    0.95,
    0.92,
    0.91,
    0.5,
    math.nan,
    math.nan,
    0.6,
    0.7,
    0.49,
    0.8,
    0.9,
    0.3,
    0.3,
    0.31,
    0.32,
    math.inf,
    0.33,
    0.29,
    0.3,
    0.3,
    0.3,
    0.3,
    0.3,
]


@pytest.mark.parametrize(
    "kwargs,lrs",
    [
        ({"factor": 0.5, "patience": 1}, (1.0,)),
        (
            {"mode": "max", "factor": 0.3, "patience": 0, "threshold": 0.01, "threshold_mode": "abs", "cooldown": 2},
            (1.0,),
        ),
        ({"factor": 0.5, "patience": 1, "min_lr": [0.3, 0.01], "eps": 1e-3}, (1.0, 0.1)),
    ],
    ids=["min-rel", "max-abs-cooldown", "groups-min_lr"],
)
@pytest.mark.parametrize("convert_at", [0, 9])
def test_plateau_matches_the_torch_object(kwargs, lrs, convert_at, bits):
    opt = optimizer(lrs)
    scheduler = L.ReduceLROnPlateau(opt, **kwargs)
    run_torch(opt, scheduler, convert_at, METRICS)  # steps taken before the conversion
    converted = lrjax.from_torch(scheduler)
    assert isinstance(converted, lrjax.StatefulPlateau)
    plateau, state = converted.plateau, converted.init().plateau
    assert isinstance(plateau, lrjax.ReduceLROnPlateau)
    assert int(state.num_updates) == convert_at
    rest = METRICS[convert_at:]
    torch_lrs, _ = run_torch(opt, scheduler, len(rest), rest)

    def step(state, metric):
        state = plateau.update(state, metric)
        return state, state.lr

    _, ours = jax.jit(lambda s, m: jax.lax.scan(step, s, m))(state, jnp.asarray(rest, state.best.dtype))
    ours = np.concatenate([np.asarray(state.lr).reshape(1, -1), np.asarray(ours).reshape(len(rest), -1)])
    assert_close(ours, torch_lrs, bits)


def test_plateau_with_momentum_flag():
    scheduler = L.ReduceLROnPlateau(optimizer())
    converted, momentum = lrjax.from_torch(scheduler, momentum=True)
    assert momentum is None and isinstance(converted.init().plateau, lrjax.PlateauState)


# ----------------------------------------------------------------------------------------------
# A scheduler converted after some steps
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda o: L.StepLR(o, step_size=3, gamma=0.5),
        lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=4),
        lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=40),
        lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.1, total_iters=5), L.ExponentialLR(o, 0.9)], [5]),
        lambda o: L.ChainedScheduler([L.ConstantLR(o, 0.5, 4), L.ExponentialLR(o, 0.9)]),
    ],
    ids=["StepLR", "CyclicLR", "OneCycleLR", "SequentialLR", "ChainedScheduler"],
)
def test_stepped_scheduler_continues_at_last_epoch(make, bits):
    opt = optimizer()
    scheduler = make(opt)
    run_torch(opt, scheduler, 7)
    lr, momentum = lrjax.from_torch(scheduler, momentum=True)
    torch_lrs, torch_moms = run_torch(opt, scheduler, 20)
    assert_close(values(lr, 20, offset=7), torch_lrs, bits)
    if momentum is not None:
        assert_close(values(momentum, 20, offset=7), torch_moms, bits, "momentum")


def test_lr_changed_by_hand_is_detected():
    opt = optimizer()
    scheduler = L.StepLR(opt, step_size=3)
    run_torch(opt, scheduler, 2)
    opt.param_groups[0]["lr"] = 0.5
    with pytest.raises(ValueError, match="changed outside the scheduler"):
        lrjax.from_torch(scheduler)


def test_two_unchained_schedulers_on_one_optimizer_are_detected():
    opt = optimizer()
    first = L.ExponentialLR(opt, gamma=0.9)
    L.ConstantLR(opt, factor=0.5, total_iters=3)  # also scales the lr at construction
    with pytest.raises(ValueError, match="ChainedScheduler"):
        lrjax.from_torch(first)


def test_momentum_changed_by_hand_is_detected():
    opt = optimizer()
    scheduler = L.CyclicLR(opt, 0.01, 0.1, step_size_up=4)
    opt.param_groups[0]["momentum"] = 0.5
    lrjax.from_torch(scheduler)  # the lr alone is fine
    with pytest.raises(ValueError, match="momentum"):
        lrjax.from_torch(scheduler, momentum=True)


def test_stepped_past_total_steps():
    opt = optimizer()
    scheduler = L.LambdaLR(opt, lambda e: min(e / 10, 1.0))
    run_torch(opt, scheduler, 5)
    with pytest.raises(ValueError, match="total_steps >= 5"):
        lrjax.from_torch(scheduler, total_steps=3)


# ----------------------------------------------------------------------------------------------
# Python functions (lr_lambda, scale_fn)
# ----------------------------------------------------------------------------------------------


def test_untraceable_lambda_asks_for_total_steps():
    scheduler = L.LambdaLR(optimizer(), lambda e: min(e / 10, 1.0))
    with pytest.raises(ValueError, match="total_steps=N"):
        lrjax.from_torch(scheduler)


def test_integer_style_lambdas_trace_as_python_computes_them(bits):
    # With an integer step JAX computes 2 ** -n as an integer power (0 for n > 0) and e * e overflows
    # int32; lrjax traces lr_lambda with a float step, which gives Python's values.
    for fn, steps in ((lambda e: 2 ** -(e // 200), 450), (lambda e: 1 / (1 + e * e * 1e-10), 300)):
        opt = optimizer()
        scheduler = L.LambdaLR(opt, fn)
        lr = lrjax.from_torch(scheduler)
        torch_lrs, _ = run_torch(opt, scheduler, steps)
        assert_close(values(lr, steps), torch_lrs, bits)
        assert float(lr(100_000)) == pytest.approx(0.1 * fn(100_000), rel=1e-5)


def test_lambda_that_traces_to_other_values_is_refused():
    # A function that looks at the type of its argument: traced, it sees an array.
    scheduler = L.LambdaLR(optimizer(), lambda e: 1.0 / (1 + e) if isinstance(e, int) else 1.0 + 0 * e)
    with pytest.raises(ValueError, match="gives .* when JAX traces it"):
        lrjax.from_torch(scheduler)
    lr = lrjax.from_torch(scheduler, total_steps=10)
    assert float(lr(3)) == pytest.approx(0.1 / 4)


def test_step_dependent_multiplicative_lambda_asks_for_total_steps():
    scheduler = L.MultiplicativeLR(optimizer(), lambda e: 1 / (1 + e))
    with pytest.raises(ValueError, match="total_steps=N"):
        lrjax.from_torch(scheduler)


def test_untraceable_scale_fn_asks_for_total_steps():
    scheduler = L.CyclicLR(optimizer(), 0.01, 0.1, step_size_up=2, scale_fn=lambda x: min(1.0, 2 / x))
    with pytest.raises(ValueError, match="total_steps=N"):
        lrjax.from_torch(scheduler)


def test_standard_promotion_traces_torch_style_lambdas(bits):
    # Outside strict promotion, JAX traces ``0.95 ** epoch`` as Python computes it.
    with jax.numpy_dtype_promotion("standard"):
        opt = optimizer()
        scheduler = L.LambdaLR(opt, lambda e: 0.95**e)
        lr = lrjax.from_torch(scheduler)
        assert lr.kwargs["total_steps"] is None
        torch_lrs, _ = run_torch(opt, scheduler, 50)
        assert_close(values(lr, 50), torch_lrs, bits)


# ----------------------------------------------------------------------------------------------
# Refusals
# ----------------------------------------------------------------------------------------------


def test_not_a_scheduler():
    with pytest.raises(ValueError, match="takes a torch scheduler object"):
        lrjax.from_torch(object())


def test_subclass_is_refused_without_total_steps_and_tabulated_with_it(bits):
    class MyStep(L.StepLR):
        def get_lr(self):  # a rule lrjax cannot know: halve on every third step, else keep
            return [
                g["lr"] * (0.5 if self.last_epoch and self.last_epoch % 3 == 0 else 1.0)
                for g in self.optimizer.param_groups
            ]

    with pytest.raises(ValueError, match=r"not one of torch's own scheduler classes.*total_steps=N"):
        lrjax.from_torch(MyStep(optimizer(), step_size=3))
    opt = optimizer()
    scheduler = MyStep(opt, step_size=3)
    lr = lrjax.from_torch(scheduler, total_steps=20)
    torch_lrs, _ = run_torch(opt, scheduler, 30)
    assert_close(values(lr, 20), torch_lrs[:21], bits)
    assert_close(values(lr, 29)[21:], np.asarray([torch_lrs[20]] * 9), bits)  # later steps hold the last value


def test_one_cycle_in_a_chain_is_refused_with_lrjax_message():
    opt = optimizer()
    chain = L.ChainedScheduler([L.OneCycleLR(opt, max_lr=0.1, total_steps=10), L.ExponentialLR(opt, 0.9)])
    with pytest.raises(ValueError, match="one_cycle_lr"):
        lrjax.from_torch(chain)


def test_sequential_momentum_of_a_cycling_member_is_refused():
    opt = optimizer()
    seq = L.SequentialLR(opt, [L.ConstantLR(opt, 0.5, 3), L.CyclicLR(opt, 0.01, 0.1, step_size_up=3)], [3])
    with pytest.raises(ValueError, match="momentum"):
        lrjax.from_torch(seq, momentum=True)


@pytest.mark.parametrize("total_steps", [-1, 2.5, "10"])
def test_bad_total_steps(total_steps):
    with pytest.raises(ValueError, match="total_steps"):
        lrjax.from_torch(L.StepLR(optimizer(), 3), total_steps=total_steps)
