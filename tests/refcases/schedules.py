"""Reference cases for every torch scheduler (not ReduceLROnPlateau, see plateau.py).

Each case is run by torch 2.13.0 in ``tests/generate_reference.py`` and stored with the values
torch produced; ``tests/test_parity.py`` compares lrjax against them. Case ids name the scheduler
and, for the examples of docs/torch_quirks.md, the section (``§5``).
"""

from __future__ import annotations

import itertools
import random

from torchref import run_torch as run_torch  # noqa: F401  (the generator calls refcases.<name>.run_torch)

GROUPS = [0.1, 0.02]


def _case(cid, scheduler, kwargs, steps, base_lr=1.0, **extra):
    return {"id": cid, "scheduler": scheduler, "base_lr": base_lr, "kwargs": kwargs, "steps": steps, **extra}


def _member(scheduler, **kwargs):
    return {"scheduler": scheduler, "kwargs": kwargs}


def lambda_cases():
    out = [
        _case("LambdaLR/docs-div30", "LambdaLR", {"lr_lambda": "div:30"}, 100, base_lr=0.05),
        _case("LambdaLR/exp0.95", "LambdaLR", {"lr_lambda": "exp:0.95"}, 200, base_lr=0.1),
        _case("LambdaLR/inv", "LambdaLR", {"lr_lambda": "inv:0.1"}, 150, base_lr=0.5),
        _case("LambdaLR/warmup-seed", "LambdaLR", {"lr_lambda": "warmup:10"}, 40, base_lr=0.01),
        _case("LambdaLR/groups-docs", "LambdaLR", {"lr_lambda": ["div:30", "exp:0.95"]}, 100, base_lr=[0.05, 0.05]),
        _case("LambdaLR/groups-one-lambda", "LambdaLR", {"lr_lambda": "exp:0.95"}, 50, base_lr=GROUPS),
        _case("MultiplicativeLR/const0.95", "MultiplicativeLR", {"lr_lambda": "const:0.95"}, 300, base_lr=0.1),
        _case("MultiplicativeLR/§12-skip0", "MultiplicativeLR", {"lr_lambda": "skip0:0.5"}, 30, base_lr=1.0),
        _case(
            "MultiplicativeLR/groups",
            "MultiplicativeLR",
            {"lr_lambda": ["const:0.95", "const:0.9"]},
            80,
            base_lr=GROUPS,
        ),
        _case("MultiplicativeLR/const1", "MultiplicativeLR", {"lr_lambda": "const:1.0"}, 20, base_lr=0.3),
    ]
    return out


def step_cases():
    out = []
    for s, g in [(1, 0.5), (2, 0.1), (3, 0.9), (7, 0.0), (30, 0.1), (5, 1.0), (4, 1.5)]:
        out.append(_case(f"StepLR/s{s}-g{g}", "StepLR", {"step_size": s, "gamma": g}, 120, base_lr=0.05))
    out.append(_case("StepLR/default-gamma", "StepLR", {"step_size": 10}, 60, base_lr=0.1))
    out.append(_case("StepLR/groups", "StepLR", {"step_size": 3, "gamma": 0.5}, 40, base_lr=GROUPS))
    out.append(_case("StepLR/long", "StepLR", {"step_size": 997, "gamma": 0.7}, 5000, base_lr=0.1))
    for ms, g in [
        ([30, 80], 0.1),
        ([5, 2, 5, 2, 8], 0.5),
        ([0, 3], 0.5),
        ([], 0.1),
        ([1, 1, 1], 0.9),
        ([10, 20, 30, 40, 50], 0.8),
        ([100], 0.0),
    ]:
        out.append(_case(f"MultiStepLR/{ms}-g{g}", "MultiStepLR", {"milestones": ms, "gamma": g}, 120, base_lr=0.05))
    out.append(_case("MultiStepLR/groups", "MultiStepLR", {"milestones": [2, 6]}, 10, base_lr=GROUPS))
    for g in [0.9, 0.99, 0.5, 1.0, 1.01, 0.0, 0.999]:
        out.append(_case(f"ExponentialLR/g{g}", "ExponentialLR", {"gamma": g}, 300, base_lr=0.1))
    out.append(_case("ExponentialLR/groups", "ExponentialLR", {"gamma": 0.9}, 50, base_lr=GROUPS))
    out.append(_case("ExponentialLR/long-0.9999", "ExponentialLR", {"gamma": 0.9999}, 5000, base_lr=0.1))
    return out


def linear_cases():
    out = []
    for f, n in [(1 / 3, 5), (0.5, 4), (0.1, 20), (0.5, 0), (0.0, 0), (1.0, 3), (0.25, 1)]:
        out.append(_case(f"ConstantLR/f{f:.3g}-n{n}", "ConstantLR", {"factor": f, "total_iters": n}, 30, base_lr=0.05))
    out.append(_case("ConstantLR/defaults", "ConstantLR", {}, 10, base_lr=0.1))
    out.append(_case("ConstantLR/groups", "ConstantLR", {"factor": 0.5, "total_iters": 3}, 8, base_lr=GROUPS))
    for s, e, n in [
        (1 / 3, 1.0, 5),
        (0.5, 1.0, 4),
        (0.05, 1.0, 40),
        (0.5, 0.0, 7),
        (1.0, 0.1, 10),
        (0.5, 1.0, 0),
        (0.25, 0.75, 1),
        (0.001, 1.0, 1000),
        (0.9, 0.9, 5),
    ]:
        out.append(
            _case(
                f"LinearLR/s{s:.3g}-e{e}-n{n}",
                "LinearLR",
                {"start_factor": s, "end_factor": e, "total_iters": n},
                max(30, n + 20),
                base_lr=0.05,
            )
        )
    out.append(_case("LinearLR/groups", "LinearLR", {"start_factor": 0.1, "total_iters": 6}, 10, base_lr=GROUPS))
    for n, p in [(5, 1.0), (4, 1.0), (50, 0.9), (10, 2.0), (10, 0.5), (7, 0.0), (0, 1.0), (1, 3.0), (2000, 1.5)]:
        out.append(
            _case(
                f"PolynomialLR/n{n}-p{p}", "PolynomialLR", {"total_iters": n, "power": p}, max(30, n + 20), base_lr=0.05
            )
        )
    out.append(_case("PolynomialLR/groups", "PolynomialLR", {"total_iters": 6, "power": 2.0}, 10, base_lr=GROUPS))
    return out


def cosine_cases():
    out = []
    for T, eta in [
        (25, 0.0),
        (3, 0.0),
        (1, 0.1),
        (1, 0.0),
        (10, 0.01),
        (7, 0.05),
        (50, 0.001),
        (2, 0.5),
        (5, 2.0),
        (100, 0.0),
    ]:
        out.append(
            _case(
                f"CosineAnnealingLR/T{T}-eta{eta}",
                "CosineAnnealingLR",
                {"T_max": T, "eta_min": eta},
                max(8 * T, 40),
                base_lr=1.0 if eta == 2.0 else 0.1,
            )
        )
    out.append(_case("CosineAnnealingLR/§1-3000", "CosineAnnealingLR", {"T_max": 25}, 3000, base_lr=0.1))
    out.append(
        _case("CosineAnnealingLR/groups", "CosineAnnealingLR", {"T_max": 6, "eta_min": 0.001}, 30, base_lr=GROUPS)
    )
    out.append(
        _case("CosineAnnealingLR/long", "CosineAnnealingLR", {"T_max": 1000, "eta_min": 1e-4}, 5000, base_lr=0.1)
    )
    for T0, Tm, eta in [
        (10, 1, 0.0),
        (3, 2, 0.001),
        (1, 3, 0.0),
        (5, 2, 0.0),
        (2, 1, 0.01),
        (1, 1, 0.0),
        (4, 3, 0.05),
        (1, 2, 0.0),
    ]:
        out.append(
            _case(
                f"CosineAnnealingWarmRestarts/T0{T0}-Tm{Tm}-eta{eta}",
                "CosineAnnealingWarmRestarts",
                {"T_0": T0, "T_mult": Tm, "eta_min": eta},
                300,
                base_lr=0.1,
            )
        )
    out.append(
        _case(
            "CosineAnnealingWarmRestarts/groups",
            "CosineAnnealingWarmRestarts",
            {"T_0": 4, "T_mult": 2},
            40,
            base_lr=GROUPS,
        )
    )
    # torch's documented fractional pattern: scheduler.step(epoch + i / iters).
    for T0, Tm, iters in [(2, 2, 7), (5, 1, 10), (3, 3, 4), (1, 2, 3)]:
        steps = [e + i / iters for e in range(30) for i in range(iters)]
        out.append(
            {
                "id": f"CosineAnnealingWarmRestarts/float-T0{T0}-Tm{Tm}-iters{iters}",
                "scheduler": "CosineAnnealingWarmRestarts",
                "base_lr": 0.1,
                "kwargs": {"T_0": T0, "T_mult": Tm, "eta_min": 0.001},
                "float_steps": steps,
            }
        )
    # the seed's example: step(26) then step(27) after 20 plain steps.
    out.append(
        {
            "id": "CosineAnnealingWarmRestarts/float-seed-26-27",
            "scheduler": "CosineAnnealingWarmRestarts",
            "base_lr": 0.1,
            "kwargs": {"T_0": 10, "T_mult": 2},
            "float_steps": [26.0, 27.0, 26.5],
        }
    )
    return out


def cyclic_cases():
    out = []
    base = {"base_lr": 0.1, "max_lr": 1.0}
    for up, down, mode, gamma in [
        (2, 3, "triangular", 1.0),
        (3, 7, "triangular", 1.0),
        (4, None, "triangular2", 1.0),
        (5, 2, "triangular2", 1.0),
        (4, None, "exp_range", 0.99),
        (3, 5, "exp_range", 0.9),
        (2000, None, "triangular", 1.0),
        (1, 1, "triangular", 1.0),
        (2.5, 1.5, "triangular", 1.0),
    ]:
        kw = {**base, "step_size_up": up, "step_size_down": down, "mode": mode, "gamma": gamma}
        out.append(_case(f"CyclicLR/up{up}-down{down}-{mode}-g{gamma}", "CyclicLR", kw, 120 if up < 100 else 5000))
    out.append(_case("CyclicLR/§8-adam-betas", "CyclicLR", {**base, "step_size_up": 2}, 12, optimizer="Adam"))
    out.append(_case("CyclicLR/inverted", "CyclicLR", {"base_lr": 1.0, "max_lr": 0.1, "step_size_up": 4}, 40))
    out.append(
        _case(
            "CyclicLR/momenta", "CyclicLR", {**base, "step_size_up": 3, "base_momentum": 0.7, "max_momentum": 0.95}, 40
        )
    )
    out.append(
        _case(
            "CyclicLR/groups",
            "CyclicLR",
            {
                "base_lr": [0.01, 0.001],
                "max_lr": [0.1, 0.05],
                "step_size_up": 3,
                "base_momentum": [0.8, 0.85],
                "max_momentum": [0.9, 0.95],
            },
            30,
            base_lr=[1.0, 1.0],
        )
    )
    out.append(
        _case(
            "CyclicLR/§8-scale_fn-iterations",
            "CyclicLR",
            {
                "base_lr": 0.0,
                "max_lr": 1.0,
                "step_size_up": 1,
                "scale_fn": "pow:0.5",
                "scale_mode": "iterations",
                "cycle_momentum": False,
            },
            10,
        )
    )
    out.append(
        _case(
            "CyclicLR/scale_fn-cycle",
            "CyclicLR",
            {**base, "step_size_up": 3, "scale_fn": "halfpow", "scale_mode": "cycle"},
            60,
        )
    )
    out.append(
        _case(
            "CyclicLR/exp_range-forced-iterations",
            "CyclicLR",
            {**base, "step_size_up": 3, "mode": "exp_range", "gamma": 0.95, "scale_mode": "cycle"},
            60,
        )
    )
    out.append(
        _case(
            "CyclicLR/triangular2-forced-cycle",
            "CyclicLR",
            {**base, "step_size_up": 3, "mode": "triangular2", "scale_mode": "iterations"},
            60,
        )
    )
    return out


def one_cycle_cases():
    out = []
    for T, pct, strategy, three, div, fdiv in [
        (10, 0.3, "cos", False, 25.0, 1e4),
        (100, 0.3, "cos", False, 25.0, 1e4),
        (500, 0.3, "linear", False, 25.0, 1e4),
        (1001, 0.3, "cos", True, 25.0, 1e4),
        (1001, 0.3, "linear", True, 10.0, 100.0),
        (10, 0.0, "cos", False, 25.0, 1e4),
        (50, 0.5, "cos", True, 25.0, 1e4),
        (37, 0.25, "linear", False, 5.0, 1e3),
        (20, 0.6, "cos", True, 25.0, 1e4),
        (7, 0.99, "cos", False, 25.0, 1e4),
        (5000, 0.3, "cos", False, 25.0, 1e4),
        (3, 0.05, "linear", False, 25.0, 1e4),
    ]:
        kw = {
            "max_lr": 0.1,
            "total_steps": T,
            "pct_start": pct,
            "anneal_strategy": strategy,
            "three_phase": three,
            "div_factor": div,
            "final_div_factor": fdiv,
        }
        out.append(_case(f"OneCycleLR/T{T}-p{pct}-{strategy}-3p{three}-d{div}-{fdiv}", "OneCycleLR", kw, T))
    out.append(_case("OneCycleLR/§7-max1-T10", "OneCycleLR", {"max_lr": 1.0, "total_steps": 10}, 10, base_lr=123.0))
    out.append(_case("OneCycleLR/epochs-spe", "OneCycleLR", {"max_lr": 0.01, "epochs": 4, "steps_per_epoch": 7}, 28))
    out.append(
        _case(
            "OneCycleLR/total-wins",
            "OneCycleLR",
            {"max_lr": 1.0, "total_steps": 20, "epochs": 3, "steps_per_epoch": 4},
            20,
        )
    )
    out.append(_case("OneCycleLR/adam", "OneCycleLR", {"max_lr": 0.01, "total_steps": 30}, 30, optimizer="Adam"))
    out.append(
        _case(
            "OneCycleLR/momenta",
            "OneCycleLR",
            {"max_lr": 0.1, "total_steps": 40, "base_momentum": 0.8, "max_momentum": 0.99},
            40,
        )
    )
    out.append(
        _case(
            "OneCycleLR/groups",
            "OneCycleLR",
            {"max_lr": [0.1, 0.01], "total_steps": 30, "base_momentum": [0.8, 0.85], "max_momentum": [0.9, 0.95]},
            30,
            base_lr=[1.0, 1.0],
        )
    )
    return out


def chained_cases():
    C = "ChainedScheduler"
    out = [
        {
            "id": "ChainedScheduler/§5-linear-cos-eta",
            "members": [
                _member("LinearLR", start_factor=0.1, total_iters=4),
                _member("CosineAnnealingLR", T_max=10, eta_min=0.05),
            ],
        },
        {
            "id": "ChainedScheduler/§5-cos-eta-linear",
            "members": [
                _member("CosineAnnealingLR", T_max=10, eta_min=0.05),
                _member("LinearLR", start_factor=0.1, total_iters=4),
            ],
        },
        {
            "id": "ChainedScheduler/§5-exp-cos-past-Tmax",
            "members": [_member("ExponentialLR", gamma=0.9), _member("CosineAnnealingLR", T_max=3)],
        },
        {
            "id": "ChainedScheduler/§5-lambda-exp",
            "members": [_member("LambdaLR", lr_lambda="exp:0.5"), _member("ExponentialLR", gamma=0.9)],
        },
        {
            "id": "ChainedScheduler/§5-docs-constant-exp",
            "base_lr": 0.05,
            "members": [_member("ConstantLR", factor=0.1, total_iters=20), _member("ExponentialLR", gamma=0.9)],
        },
        {
            "id": "ChainedScheduler/seed-constant-exp",
            "members": [_member("ConstantLR", factor=0.1, total_iters=2), _member("ExponentialLR", gamma=0.9)],
        },
        {
            "id": "ChainedScheduler/step-multistep-poly",
            "members": [
                _member("StepLR", step_size=5, gamma=0.8),
                _member("MultiStepLR", milestones=[7, 13]),
                _member("PolynomialLR", total_iters=30, power=2.0),
            ],
        },
        {
            "id": "ChainedScheduler/cos-step",
            "members": [_member("CosineAnnealingLR", T_max=6), _member("StepLR", step_size=4, gamma=0.5)],
        },
        {
            "id": "ChainedScheduler/linear-cos-eta0",
            "members": [_member("LinearLR", start_factor=0.2, total_iters=5), _member("CosineAnnealingLR", T_max=8)],
        },
        {
            "id": "ChainedScheduler/warmup-cos-eta-long",
            "members": [
                _member("LinearLR", start_factor=0.01, total_iters=25),
                _member("CosineAnnealingLR", T_max=40, eta_min=0.01),
            ],
            "steps": 400,
        },
        {
            "id": "ChainedScheduler/multistep-cos-eta",
            "members": [
                _member("MultiStepLR", milestones=[3, 17, 30], gamma=0.5),
                _member("CosineAnnealingLR", T_max=5, eta_min=0.1),
            ],
        },
        {
            "id": "ChainedScheduler/cos-eta-constant",
            "members": [
                _member("CosineAnnealingLR", T_max=4, eta_min=0.2),
                _member("ConstantLR", factor=0.5, total_iters=9),
            ],
        },
        {
            "id": "ChainedScheduler/exp-cos-eta-total_steps",
            "chain_kwargs": {"total_steps": 120},
            "members": [_member("ExponentialLR", gamma=0.99), _member("CosineAnnealingLR", T_max=7, eta_min=0.1)],
            "steps": 120,
        },
        {
            "id": "ChainedScheduler/two-cosines",
            "chain_kwargs": {"total_steps": 90},
            "members": [_member("CosineAnnealingLR", T_max=5, eta_min=0.1), _member("CosineAnnealingLR", T_max=7)],
            "steps": 90,
        },
        {
            "id": "ChainedScheduler/cyclic-first-cos",
            "base_lr": 1.0,
            "members": [
                _member("CyclicLR", base_lr=0.1, max_lr=1.0, step_size_up=3, cycle_momentum=False),
                _member("CosineAnnealingLR", T_max=5, eta_min=0.05),
            ],
        },
        {
            "id": "ChainedScheduler/exp-warmrestarts-step",
            "members": [
                _member("ExponentialLR", gamma=0.9),
                _member("CosineAnnealingWarmRestarts", T_0=5, T_mult=2),
                _member("StepLR", step_size=3, gamma=0.5),
            ],
        },
        {
            "id": "ChainedScheduler/mult-exp",
            "members": [_member("MultiplicativeLR", lr_lambda="const:0.97"), _member("ExponentialLR", gamma=0.9)],
        },
        {"id": "ChainedScheduler/single", "members": [_member("StepLR", step_size=2, gamma=0.5)]},
        {
            "id": "ChainedScheduler/groups",
            "base_lr": GROUPS,
            "members": [
                _member("LinearLR", start_factor=0.1, total_iters=4),
                _member("CosineAnnealingLR", T_max=10, eta_min=0.005),
            ],
        },
    ]
    return [{"scheduler": C, "base_lr": 1.0, "steps": 60, **c} for c in out]


def sequential_cases():
    S = "SequentialLR"
    out = [
        {
            "id": "SequentialLR/§6-exp-mult",
            "members": [_member("ExponentialLR", gamma=0.5), _member("MultiplicativeLR", lr_lambda="const:0.9")],
            "milestones": [3],
        },
        {
            "id": "SequentialLR/§6-exp-lambda",
            "members": [_member("ExponentialLR", gamma=0.5), _member("LambdaLR", lr_lambda="exp:0.9")],
            "milestones": [3],
        },
        {
            "id": "SequentialLR/§6-warmup-cut-short",
            "members": [_member("LinearLR", start_factor=0.1, total_iters=5), _member("CosineAnnealingLR", T_max=10)],
            "milestones": [3],
        },
        {
            "id": "SequentialLR/§6-milestone0",
            "members": [_member("ConstantLR", factor=0.25, total_iters=10), _member("ExponentialLR", gamma=0.8)],
            "milestones": [0],
        },
        {
            "id": "SequentialLR/§6-docs",
            "base_lr": 0.05,
            "members": [_member("ConstantLR", factor=0.1, total_iters=2), _member("ExponentialLR", gamma=0.9)],
            "milestones": [2],
        },
        {
            "id": "SequentialLR/warmup-cosine",
            "members": [
                _member("LinearLR", start_factor=0.01, total_iters=10),
                _member("CosineAnnealingLR", T_max=90, eta_min=1e-4),
            ],
            "milestones": [10],
            "steps": 150,
        },
        {
            "id": "SequentialLR/three",
            "members": [
                _member("LinearLR", start_factor=0.1, total_iters=5),
                _member("CosineAnnealingWarmRestarts", T_0=4),
                _member("MultiplicativeLR", lr_lambda="const:0.9"),
            ],
            "milestones": [5, 12],
        },
        {
            "id": "SequentialLR/repeated-milestone",
            "members": [
                _member("ConstantLR", factor=0.5, total_iters=10),
                _member("ExponentialLR", gamma=0.5),
                _member("StepLR", step_size=1, gamma=0.9),
            ],
            "milestones": [3, 3],
        },
        {
            "id": "SequentialLR/constant0-after-milestone",
            "members": [_member("ExponentialLR", gamma=0.8), _member("ConstantLR", factor=0.25, total_iters=0)],
            "milestones": [4],
        },
        {
            "id": "SequentialLR/cyclic-then-step",
            "members": [
                _member("CyclicLR", base_lr=0.1, max_lr=1.0, step_size_up=2, cycle_momentum=False),
                _member("StepLR", step_size=3, gamma=0.5),
            ],
            "milestones": [8],
        },
        {
            "id": "SequentialLR/mult-mult",
            "members": [
                _member("MultiplicativeLR", lr_lambda="const:0.8"),
                _member("MultiplicativeLR", lr_lambda="const:0.95"),
            ],
            "milestones": [6],
        },
        {
            "id": "SequentialLR/onecycle-free-poly-multistep",
            "members": [
                _member("PolynomialLR", total_iters=8, power=2.0),
                _member("MultiStepLR", milestones=[0, 4, 9]),
            ],
            "milestones": [5],
        },
        {
            "id": "SequentialLR/groups",
            "base_lr": GROUPS,
            "members": [_member("LinearLR", start_factor=0.1, total_iters=4), _member("ExponentialLR", gamma=0.8)],
            "milestones": [4],
        },
        {"id": "SequentialLR/single", "members": [_member("StepLR", step_size=2, gamma=0.5)], "milestones": []},
    ]
    return [{"scheduler": S, "base_lr": 1.0, "steps": 40, **c} for c in out]


def random_cases(n: int = 120, seed: int = 2613):
    """Random configurations over every scheduler, to widen the stored set beyond hand-picked ones."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = rng.choice(
            [
                "StepLR",
                "MultiStepLR",
                "ConstantLR",
                "LinearLR",
                "ExponentialLR",
                "PolynomialLR",
                "CosineAnnealingLR",
                "CosineAnnealingWarmRestarts",
                "CyclicLR",
                "OneCycleLR",
            ]
        )
        base = rng.choice([rng.uniform(1e-4, 1.0), [rng.uniform(1e-4, 1.0), rng.uniform(1e-4, 1.0)]])
        steps = rng.randint(20, 400)
        if kind == "StepLR":
            kw = {"step_size": rng.randint(1, 40), "gamma": rng.uniform(0, 1.2)}
        elif kind == "MultiStepLR":
            kw = {"milestones": [rng.randint(0, steps) for _ in range(rng.randint(0, 6))], "gamma": rng.uniform(0, 1)}
        elif kind == "ConstantLR":
            kw = {"factor": rng.uniform(0.01, 1), "total_iters": rng.randint(0, 50)}
        elif kind == "LinearLR":
            kw = {
                "start_factor": rng.uniform(0.01, 1),
                "end_factor": rng.uniform(0, 1),
                "total_iters": rng.randint(0, 80),
            }
        elif kind == "ExponentialLR":
            kw = {"gamma": rng.uniform(0.8, 1.0)}
        elif kind == "PolynomialLR":
            kw = {"total_iters": rng.randint(0, 100), "power": rng.uniform(0, 3)}
        elif kind == "CosineAnnealingLR":
            kw = {"T_max": rng.randint(1, 120), "eta_min": rng.choice([0.0, rng.uniform(0, 0.01)])}
        elif kind == "CosineAnnealingWarmRestarts":
            kw = {"T_0": rng.randint(1, 30), "T_mult": rng.randint(1, 3), "eta_min": rng.choice([0.0, 1e-4])}
        elif kind == "CyclicLR":
            lo = rng.uniform(1e-4, 0.1)
            kw = {
                "base_lr": lo,
                "max_lr": lo * rng.uniform(1.5, 20),
                "step_size_up": rng.randint(1, 40),
                "step_size_down": rng.choice([None, rng.randint(1, 40)]),
                "mode": rng.choice(["triangular", "triangular2", "exp_range"]),
                "gamma": rng.uniform(0.95, 1.0),
            }
            base = 1.0
        else:
            T = rng.randint(5, 400)
            steps = T
            pct = rng.choice([0.1, 0.25, 0.3, 0.4, 0.45])
            if pct * T == 1 or pct * T < 1.5:
                pct = 0.3
            kw = {
                "max_lr": rng.uniform(1e-3, 1.0),
                "total_steps": T,
                "pct_start": pct,
                "anneal_strategy": rng.choice(["cos", "linear"]),
                "three_phase": rng.random() < 0.3,
                "div_factor": rng.uniform(2, 50),
                "final_div_factor": rng.choice([10.0, 1e3, 1e4]),
            }
            if kw["three_phase"] and 2 * pct * T - 2 == T - 1:
                kw["three_phase"] = False
            base = 1.0
        out.append(_case(f"random/{i:03d}-{kind}", kind, kw, steps, base_lr=base))
    return out


def swa_cases():
    return [
        _case("SWALR/cos", "SWALR", {"swa_lr": 0.05, "anneal_epochs": 10}, 30, base_lr=0.1),
        _case(
            "SWALR/linear", "SWALR", {"swa_lr": 0.02, "anneal_epochs": 7, "anneal_strategy": "linear"}, 20, base_lr=0.3
        ),
        _case("SWALR/anneal0", "SWALR", {"swa_lr": 0.05, "anneal_epochs": 0}, 10, base_lr=0.1),
        _case("SWALR/up", "SWALR", {"swa_lr": 0.5, "anneal_epochs": 5}, 12, base_lr=0.1),
        _case("SWALR/groups", "SWALR", {"swa_lr": [0.01, 0.005], "anneal_epochs": 4}, 12, base_lr=GROUPS),
        # The SWA recipe: decay, then anneal from the lr reached so far (torch's _update_lr(0) keeps it).
        _case(
            "SequentialLR/multiplicative-swalr",
            "SequentialLR",
            {},
            40,
            base_lr=0.1,
            milestones=[15],
            members=[
                _member("MultiplicativeLR", lr_lambda="const:0.9"),
                _member("SWALR", swa_lr=0.05, anneal_epochs=10),
            ],
        ),
        _case(
            "SequentialLR/cosine-swalr-linear",
            "SequentialLR",
            {},
            40,
            base_lr=0.1,
            milestones=[20],
            members=[
                _member("CosineAnnealingLR", T_max=30),
                _member("SWALR", swa_lr=0.01, anneal_epochs=5, anneal_strategy="linear"),
            ],
        ),
    ]


def nested_cases():
    """Composites inside composites, which torch 2.13 runs (its own test_sequentiallr5 first)."""
    chained = {
        "scheduler": "ChainedScheduler",
        "members": [
            _member("LinearLR", start_factor=0.1, total_iters=5),
            _member("ConstantLR", factor=0.1, total_iters=5),
        ],
    }
    warm = {
        "scheduler": "SequentialLR",
        "milestones": [5],
        "members": [_member("LinearLR", start_factor=0.1, total_iters=5), _member("CosineAnnealingLR", T_max=20)],
    }
    return [
        _case(
            "SequentialLR/torch-test_sequentiallr5",
            "SequentialLR",
            {},
            12,
            base_lr=0.05,
            milestones=[5],
            members=[chained, _member("ConstantLR", factor=0.5, total_iters=5)],
        ),
        _case(
            "ChainedScheduler/sequential-exponential",
            "ChainedScheduler",
            {},
            40,
            base_lr=0.1,
            members=[warm, _member("ExponentialLR", gamma=0.97)],
        ),
        _case(
            "SequentialLR/sequential-first",
            "SequentialLR",
            {},
            40,
            base_lr=0.1,
            milestones=[12],
            members=[warm, _member("StepLR", step_size=4, gamma=0.5)],
        ),
    ]


def cases():
    return list(
        itertools.chain(
            lambda_cases(),
            step_cases(),
            linear_cases(),
            cosine_cases(),
            cyclic_cases(),
            one_cycle_cases(),
            chained_cases(),
            sequential_cases(),
            swa_cases(),
            nested_cases(),
            random_cases(),
        )
    )
