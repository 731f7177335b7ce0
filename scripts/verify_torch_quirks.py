#!/usr/bin/env python
"""Re-runs every example quoted in docs/torch_quirks.md against the installed torch and checks the numbers.

python scripts/verify_torch_quirks.py      # prints each example; exits non-zero on any mismatch
"""

from __future__ import annotations

import math
import sys
import warnings

import torch
from torch.optim import lr_scheduler as L

FAILED = []


def opt(lr=1.0, kind="SGD", **kw):
    p = torch.nn.Parameter(torch.zeros(1))
    return getattr(torch.optim, kind)([p], lr=lr, **kw)


def run(o, s, n, step_arg=None):
    out = [o.param_groups[0]["lr"]]
    for _ in range(n - 1):
        o.step()
        s.step()
        out.append(o.param_groups[0]["lr"])
    return out


def mom(o):
    g = o.param_groups[0]
    return g["betas"][0] if "betas" in g else g["momentum"]


def check(qid, got, want, tol=0.0):
    if isinstance(want, (list, tuple)):
        ok = len(got) == len(want) and all(
            (isinstance(w, str) and w == g) or (not isinstance(w, str) and abs(g - w) <= tol * max(1.0, abs(w)))
            for g, w in zip(got, want)
        )
    elif isinstance(want, str):
        ok = got == want
    else:
        ok = abs(got - want) <= tol * max(1.0, abs(want))
    print(f"[{'ok' if ok else 'MISMATCH'}] {qid}: {got!r}")
    if not ok:
        print(f"      expected {want!r}")
        FAILED.append(qid)


def raises(qid, fn, exc, msg=None):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        ok = isinstance(e, exc) and (msg is None or str(e) == msg)
        print(f"[{'ok' if ok else 'MISMATCH'}] {qid}: {type(e).__name__}: {e}")
        if not ok:
            FAILED.append(qid)
        return
    print(f"[MISMATCH] {qid}: no exception")
    FAILED.append(qid)


def main():
    warnings.simplefilter("ignore")
    print("torch", torch.__version__)

    # Q1 recursive vs closed form
    o = opt(0.05)
    s = L.LinearLR(o, start_factor=0.05, total_iters=40)
    v = run(o, s, 2)
    s.last_epoch = 1
    check("Q1 LinearLR(0.05,40) lr(0..1) recursive", v, [0.0025000000000000005, 0.003687500000000001])
    check("Q1 LinearLR closed form lr(1)", s._get_closed_form_lr()[0], 0.0036875000000000006)
    o = opt(0.1)
    s = L.CosineAnnealingLR(o, T_max=25)
    v = run(o, s, 3000)
    s2 = L.CosineAnnealingLR(opt(0.1), T_max=25)
    worst = (0.0, 0)
    for t in range(3000):
        s2.last_epoch = t
        worst = max(worst, (abs(v[t] - s2._get_closed_form_lr()[0]) / 0.1, t))
    s2.last_epoch = worst[1]
    print(
        f"      Cosine(T_max=25, base 0.1): worst |recursive-closed|/base_lr = {worst[0]:.2e} at t={worst[1]} "
        f"(recursive {v[worst[1]]!r}, closed {s2._get_closed_form_lr()[0]!r})"
    )
    check(
        "Q1 Cosine(T_max=25) recursion drift over 3000 steps is > 1e-13 and < 1e-11",
        float(1e-13 < worst[0] < 1e-11),
        1.0,
    )

    # Q2 total_iters=0
    o = opt(1.0)
    check("Q2 ConstantLR(factor=0.5,total_iters=0)", run(o, L.ConstantLR(o, factor=0.5, total_iters=0), 4), [0.5] * 4)
    o = opt(1.0)
    check("Q2 LinearLR(start=0.5,total_iters=0)", run(o, L.LinearLR(o, start_factor=0.5, total_iters=0), 4), [0.5] * 4)
    o = opt(1.0)
    check("Q2 PolynomialLR(total_iters=0)", run(o, L.PolynomialLR(o, total_iters=0), 4), [1.0] * 4)
    o = opt(1.0)
    s = L.ConstantLR(o, factor=0.5, total_iters=0)
    s.last_epoch = 3
    check("Q2 ConstantLR total_iters=0 closed form", s._get_closed_form_lr()[0], 1.0)
    o = opt(1.0)
    s = L.LinearLR(o, start_factor=0.5, total_iters=0)
    s.last_epoch = 3
    raises("Q2 LinearLR total_iters=0 closed form", s._get_closed_form_lr, ZeroDivisionError)

    # Q3 ConstantLR factor=0
    o = opt(1.0)
    s = L.ConstantLR(o, factor=0.0, total_iters=3)
    raises(
        "Q3 ConstantLR(factor=0,total_iters=3) step 3",
        lambda: run(o, s, 4),
        ZeroDivisionError,
        "float division by zero",
    )

    # Q4 CosineAnnealingLR
    o = opt(1.0)
    check("Q4 Cosine T_max=1 eta_min=0.1", run(o, L.CosineAnnealingLR(o, T_max=1, eta_min=0.1), 6), [1.0, 0.1] * 3)
    o = opt(1.0)
    v = run(o, L.CosineAnnealingLR(o, T_max=3), 8)
    check("Q4 Cosine T_max=3 t=0..7", v, [1.0, 0.75, 0.25, 0.0, 0.25, 0.75, 1.0, 0.75], 1e-12)
    print(f"      (exact zero at T_max: {v[3]!r})")
    o = opt(1.0)
    s = L.CosineAnnealingLR(o, T_max=0)
    raises("Q4 Cosine T_max=0 first step", lambda: run(o, s, 2), ZeroDivisionError, "integer modulo by zero")
    o = opt(1.0)
    check(
        "Q4 Cosine T_max=-4 accepted",
        run(o, L.CosineAnnealingLR(o, T_max=-4), 5),
        [1.0, 0.8535533905932737, 0.5, 0.14644660940672627, 0.0],
        1e-12,
    )

    # Q5 ChainedScheduler
    o = opt(1.0)
    a = L.LinearLR(o, start_factor=0.1, total_iters=4)
    b = L.CosineAnnealingLR(o, T_max=10, eta_min=0.05)
    v = run(o, L.ChainedScheduler([a, b]), 3)
    prod = [(0.1 + 0.9 * min(t, 4) / 4) * (0.05 + 0.95 * (1 + math.cos(math.pi * t / 10)) / 2) for t in range(3)]
    check(
        "Q5 Chain[LinearLR(0.1,4), Cos(10,eta=0.05)] t=0..2", v, [0.1, 0.31827027099058364, 0.5030396774285744], 1e-12
    )
    print(f"      product of member closed forms: {prod}")
    o = opt(1.0)
    b = L.CosineAnnealingLR(o, T_max=10, eta_min=0.05)
    a = L.LinearLR(o, start_factor=0.1, total_iters=4)
    check("Q5 swapped order t=1", run(o, L.ChainedScheduler([b, a]), 2)[1], 0.32102334194898124, 1e-12)
    o = opt(1.0)
    a = L.ExponentialLR(o, gamma=0.9)
    b = L.CosineAnnealingLR(o, T_max=3)
    v = run(o, L.ChainedScheduler([a, b]), 6)
    check("Q5 Chain[Exp(0.9), Cos(T_max=3)] t=3..5", v[3:6], [0.0, 0.25, 0.675], 1e-12)
    print(f"      product form t=4: {0.9**4 * (1 + math.cos(math.pi * 4 / 3)) / 2!r}")
    o = opt(1.0)
    a = L.LambdaLR(o, lr_lambda=lambda e: 0.5**e)
    b = L.ExponentialLR(o, gamma=0.9)
    check(
        "Q5 Chain[LambdaLR(0.5**e), Exp(0.9)] t=0..3",
        run(o, L.ChainedScheduler([a, b]), 4),
        [1.0, 0.45, 0.225, 0.1125],
        1e-12,
    )
    o = opt(0.05)
    a = L.ConstantLR(o, factor=0.1, total_iters=20)
    b = L.ExponentialLR(o, gamma=0.9)
    v = run(o, L.ChainedScheduler([a, b], optimizer=o), 22)
    check(
        "Q5 docs example t=0,1,19,20,21",
        [v[0], v[1], v[19], v[20], v[21]],
        [0.005, 0.0045, 0.0006754258588364966, 0.00607883272952847, 0.005470949456575623],
        1e-12,
    )

    # Q6 SequentialLR
    o = opt(1.0)
    a = L.ExponentialLR(o, gamma=0.5)
    b = L.MultiplicativeLR(o, lr_lambda=lambda e: 0.9)
    check(
        "Q6 Seq[Exp(0.5), Mult(0.9)] m=3",
        run(o, L.SequentialLR(o, [a, b], milestones=[3]), 6),
        [1.0, 0.5, 0.25, 0.225, 0.2025, 0.18225],
        1e-12,
    )
    o = opt(1.0)
    a = L.ExponentialLR(o, gamma=0.5)
    b = L.LambdaLR(o, lr_lambda=lambda e: 0.9**e)
    check(
        "Q6 Seq[Exp(0.5), LambdaLR(0.9**e)] m=3",
        run(o, L.SequentialLR(o, [a, b], milestones=[3]), 5),
        [1.0, 0.5, 0.25, 1.0, 0.9],
        1e-12,
    )
    o = opt(1.0)
    a = L.LinearLR(o, start_factor=0.1, total_iters=5)
    b = L.CosineAnnealingLR(o, T_max=10)
    check(
        "Q6 Seq[LinearLR(0.1,5), Cos(10)] m=3 (warm-up cut short)",
        run(o, L.SequentialLR(o, [a, b], milestones=[3]), 5),
        [0.1, 0.28, 0.46, 1.0, 0.9755282581475768],
        1e-12,
    )
    o = opt(1.0)
    a = L.ConstantLR(o, factor=0.25, total_iters=10)
    b = L.ExponentialLR(o, gamma=0.8)
    check("Q6 milestones=[0]", run(o, L.SequentialLR(o, [a, b], milestones=[0]), 3), [1.0, 0.8, 0.64], 1e-12)
    o = opt(1.0)
    a = L.ConstantLR(o, factor=0.5, total_iters=100)
    b = L.ExponentialLR(o, gamma=0.5)
    c = L.StepLR(o, step_size=1, gamma=0.9)
    check(
        "Q6 unsorted milestones [6,3]",
        run(o, L.SequentialLR(o, [a, b, c], milestones=[6, 3]), 8),
        [0.5, 0.5, 0.5, 1.0, 0.9, 0.81, 0.729, 0.6561],
        1e-12,
    )
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        o = opt(0.05)
        a = L.ConstantLR(o, factor=0.1, total_iters=2)
        b = L.ExponentialLR(o, gamma=0.9)
        s = L.SequentialLR(o, [a, b], milestones=[2])
        v = [o.param_groups[0]["lr"]]
        for _ in range(4):
            o.step()
            s.step()
            v.append(o.param_groups[0]["lr"])
    check("Q6 docs-like Seq[Const(0.1,2), Exp(0.9)] m=2", v, [0.005, 0.005, 0.05, 0.045, 0.0405], 1e-12)
    check("Q6 warnings emitted (optimizer.step() called first)", str(len(w)), "0")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        o = opt(0.05)
        a = L.ConstantLR(o, factor=0.1, total_iters=2)
        b = L.ExponentialLR(o, gamma=0.9)
        s = L.SequentialLR(o, [a, b], milestones=[2])
        for _ in range(4):
            s.step()
    check(
        "Q6 warnings without optimizer.step()",
        sorted({str(x.message)[:60] for x in w}),
        ["Detected call of `lr_scheduler.step()` before `optimizer.ste"],
    )

    # Q7 OneCycleLR
    o = opt(123.0, momentum=0.9)
    s = L.OneCycleLR(o, max_lr=1.0, total_steps=10)
    v = [o.param_groups[0]["lr"]]
    m = [mom(o)]
    for _ in range(10):
        o.step()
        s.step()
        v.append(o.param_groups[0]["lr"])
        m.append(mom(o))
    check(
        "Q7 OneCycle(max 1, T=10) lr(0), lr(2), lr(9), lr(10)",
        [v[0], v[2], v[9], v[10]],
        [0.040000000000000036, 1.0, 4e-06, 0.04951936798652623],
        1e-12,
    )
    check("Q7 momentum(0), (2), (9)", [m[0], m[2], m[9]], [0.95, 0.85, 0.95], 1e-12)
    raises(
        "Q7 step past total_steps",
        lambda: (o.step(), s.step()),
        ValueError,
        "Tried to step 11 times. The specified number of total steps is 10",
    )
    o = opt(1.0, momentum=0.9)
    s = L.OneCycleLR(o, max_lr=0.1, total_steps=500, anneal_strategy="linear")
    for _ in range(500):
        o.step()
        s.step()
    check("Q7 linear, lr at t=total_steps is negative", o.param_groups[0]["lr"], -0.00028531314285715204, 1e-9)
    raises(
        "Q7 pct_start=0.1,total_steps=10",
        lambda: L.OneCycleLR(opt(1.0, momentum=0.9), max_lr=1.0, total_steps=10, pct_start=0.1),
        ZeroDivisionError,
    )
    raises(
        "Q7 pct_start=1 (int)",
        lambda: L.OneCycleLR(opt(1.0, momentum=0.9), max_lr=1.0, total_steps=10, pct_start=1),
        ValueError,
        "Expected float between 0 and 1 pct_start, but got 1",
    )
    o = opt(1.0, momentum=0.9)
    s = L.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=0.0)
    check("Q7 pct_start=0.0 lr(0)", o.param_groups[0]["lr"], 0.9755283560345442, 1e-12)
    check(
        "Q7 total_steps wins over epochs*steps_per_epoch",
        L.OneCycleLR(opt(1.0, momentum=0.9), max_lr=1.0, total_steps=20, epochs=3, steps_per_epoch=4).total_steps,
        20,
    )
    o = opt(1.0, momentum=0.9)
    s = L.OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1.0)
    raises("Q7 pct_start=1.0 at t=total_steps", lambda: run(o, s, 11), ZeroDivisionError)

    # Q8 CyclicLR
    o = opt(1.0, momentum=0.0)
    s = L.CyclicLR(o, base_lr=0.1, max_lr=1.0, step_size_up=2, step_size_down=3)
    v = [o.param_groups[0]["lr"]]
    m = [mom(o)]
    for _ in range(5):
        o.step()
        s.step()
        v.append(o.param_groups[0]["lr"])
        m.append(mom(o))
    check("Q8 CyclicLR(0.1,1.0,2,3) lr(0..5)", v, [0.1, 0.55, 1.0, 0.7, 0.4, 0.1], 1e-12)
    check(
        "Q8 momentum(0..5) on SGD(momentum=0)", m, [0.9, 0.85, 0.8, 0.8333333333333334, 0.8666666666666667, 0.9], 1e-12
    )
    o = opt(1.0, "Adam")
    s = L.CyclicLR(o, base_lr=0.1, max_lr=1.0, step_size_up=2)
    run(o, s, 2)
    check("Q8 Adam betas after 1 step", list(o.param_groups[0]["betas"]), [0.8500000000000001, 0.999], 1e-12)
    raises(
        "Q8 Adagrad + cycle_momentum",
        lambda: L.CyclicLR(opt(1.0, "Adagrad"), base_lr=0.1, max_lr=1.0),
        ValueError,
        "optimizer must support momentum or beta1 with `cycle_momentum` option enabled",
    )
    check(
        "Q8 exp_range forces scale_mode",
        L.CyclicLR(
            opt(), base_lr=0.1, max_lr=1.0, mode="exp_range", scale_mode="cycle", cycle_momentum=False
        ).scale_mode,
        "iterations",
    )
    check(
        "Q8 triangular2 forces scale_mode",
        L.CyclicLR(
            opt(), base_lr=0.1, max_lr=1.0, mode="triangular2", scale_mode="iterations", cycle_momentum=False
        ).scale_mode,
        "cycle",
    )
    o = opt()
    s = L.CyclicLR(
        o,
        base_lr=0.0,
        max_lr=1.0,
        step_size_up=1,
        mode="bogus",
        scale_fn=lambda x: 0.5**x,
        scale_mode="bogus",
        cycle_momentum=False,
    )
    check(
        "Q8 custom scale_fn + bogus mode/scale_mode (treated as iterations)",
        run(o, s, 4),
        [0.0, 0.5, 0.0, 0.125],
        1e-12,
    )
    raises(
        "Q8 step_size_up=0",
        lambda: L.CyclicLR(opt(1.0, momentum=0.9), base_lr=0.1, max_lr=1.0, step_size_up=0),
        ZeroDivisionError,
    )
    o = opt()
    check(
        "Q8 up=3/down=7 lr(1..3)",
        run(o, L.CyclicLR(o, base_lr=0.1, max_lr=1.0, step_size_up=3, step_size_down=7, cycle_momentum=False), 4)[1:],
        [0.40000000000000024, 0.6999999999999998, 1.0],
    )

    # Q9 ReduceLROnPlateau
    def plat(ms, lr=1.0, **kw):
        o = opt(lr)
        s = L.ReduceLROnPlateau(o, **kw)
        out = []
        for x in ms:
            o.step()
            s.step(x)
            out.append(o.param_groups[0]["lr"])
        return out

    nan, inf = float("nan"), float("inf")
    check("Q9 NaN x5, patience=1, factor=0.5", plat([nan] * 5, patience=1, factor=0.5), [1.0, 0.5, 0.5, 0.25, 0.25])
    check("Q9 min mode [inf,inf,inf,1.0]", plat([inf, inf, inf, 1.0], patience=1, factor=0.5), [1.0, 0.5, 0.5, 0.5])
    check(
        "Q9 min mode -inf then finite",
        plat([1.0, -inf, 0.5, -1e9, -inf], patience=0, factor=0.5),
        [1.0, 1.0, 0.5, 0.25, 0.125],
    )
    check(
        "Q9 negative best, rel: worse metric counts as better",
        plat([-1.0, -0.99995, -0.9999], patience=0, factor=0.5),
        [1.0, 1.0, 1.0],
    )
    check("Q9 best=0, rel", plat([0.0, 0.0, -1e-12], patience=0, factor=0.5), [1.0, 0.5, 0.5])
    check(
        "Q9 eps stops reductions",
        plat([1] * 6, lr=1e-7, patience=0, factor=0.5),
        [1e-07, 5e-08, 2.5e-08, 1.25e-08, 1.25e-08, 1.25e-08],
        1e-12,
    )
    check(
        "Q9 base_lr < min_lr never raised", plat([1, 2, 2], lr=0.1, patience=0, factor=0.5, min_lr=0.2), [0.1, 0.1, 0.1]
    )
    check(
        "Q9 cooldown",
        plat([1, 2, 2, 2, 2, 2, 2, 2, 2], patience=1, cooldown=2, factor=0.5),
        [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25],
    )
    check("Q9 factor=0 accepted", plat([1, 2, 2], patience=0, factor=0.0), [1.0, 0.0, 0.0])
    raises("Q9 factor=1.0", lambda: L.ReduceLROnPlateau(opt(), factor=1.0), ValueError, "Factor should be < 1.0.")
    raises("Q9 mode", lambda: L.ReduceLROnPlateau(opt(), mode="mean"), ValueError, "mode mean is unknown!")
    raises(
        "Q9 threshold_mode",
        lambda: L.ReduceLROnPlateau(opt(), threshold_mode="x"),
        ValueError,
        "threshold mode x is unknown!",
    )
    raises(
        "Q9 min_lr list", lambda: L.ReduceLROnPlateau(opt(), min_lr=[0.1, 0.2]), ValueError, "expected 1 min_lrs, got 2"
    )

    # Q10 MultiStepLR
    o = opt(1.0)
    check(
        "Q10 milestones [5,2,5,2,8] gamma 0.5",
        run(o, L.MultiStepLR(o, milestones=[5, 2, 5, 2, 8], gamma=0.5), 10),
        [1.0, 1.0, 0.25, 0.25, 0.25, 0.0625, 0.0625, 0.0625, 0.03125, 0.03125],
    )
    o = opt(1.0)
    check("Q10 milestone 0", run(o, L.MultiStepLR(o, milestones=[0, 3], gamma=0.5), 5), [0.5, 0.5, 0.5, 0.25, 0.25])

    # Q11 StepLR
    o = opt(1.0)
    s = L.StepLR(o, step_size=0)
    raises("Q11 StepLR step_size=0 first step", lambda: run(o, s, 2), ZeroDivisionError, "integer modulo by zero")
    o = opt(1.0)
    s = L.StepLR(o, step_size=-3, gamma=0.5)
    check("Q11 StepLR step_size=-3", run(o, s, 8), [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25])
    s.last_epoch = 1
    check("Q11 its closed form at t=1 (gamma**(1//-3))", s._get_closed_form_lr()[0], 2.0)

    # Q12 LambdaLR vs MultiplicativeLR at t=0
    o = opt(0.05)
    check(
        "Q12 LambdaLR(e//30) lr(0), lr(30)",
        [run(o, L.LambdaLR(o, lr_lambda=lambda e: e // 30), 31)[i] for i in (0,)][0:1] + [0.05 * (30 // 30)],
        [0.0, 0.05],
    )
    o = opt(1.0)
    check(
        "Q12 MultiplicativeLR(lambda e: 0 if e==0 else 0.5)",
        run(o, L.MultiplicativeLR(o, lr_lambda=lambda e: 0.0 if e == 0 else 0.5), 3),
        [1.0, 0.5, 0.25],
    )
    raises(
        "Q12 MultiplicativeLR non-callable",
        lambda: L.MultiplicativeLR(opt(), lr_lambda=3),
        TypeError,
        "lr_lambda should be a function, but got int",
    )
    raises("Q12 LambdaLR non-callable (fails in initial step)", lambda: L.LambdaLR(opt(), lr_lambda=3), TypeError)
    raises(
        "Q12 LambdaLR list length",
        lambda: L.LambdaLR(opt(), lr_lambda=[lambda e: 1, lambda e: 1]),
        ValueError,
        "Expected 1 lr_lambdas, but got 2",
    )

    # Q13 CosineAnnealingWarmRestarts
    check("Q13 math.log(243, 3)", math.log(243, 3), 4.999999999999999)
    o = opt(0.1)
    s = L.CosineAnnealingWarmRestarts(o, T_0=1, T_mult=3)
    s.step(120.9)
    a = o.param_groups[0]["lr"]
    s.step(121.0)
    b = o.param_groups[0]["lr"]
    s.step(121.1)
    c = o.param_groups[0]["lr"]
    check(
        "Q13 step(120.9), step(121.0), step(121.1) with T_0=1,T_mult=3",
        [a, b, c],
        [0.1 * (1 + math.cos(math.pi * 80.9 / 81)) / 2, 0.0, 0.1 * (1 + math.cos(math.pi * 0.1 / 243)) / 2],
        1e-9,
    )
    o = opt(0.1)
    s = L.CosineAnnealingWarmRestarts(o, T_0=1, T_mult=3)
    v = run(o, s, 122)
    check("Q13 same schedule via step() at t=121 (restart ok)", v[121], 0.1)
    o = opt(0.1)
    check("Q13 T_0=1,T_mult=1 constant", run(o, L.CosineAnnealingWarmRestarts(o, T_0=1), 4), [0.1] * 4)
    raises(
        "Q13 T_0=0",
        lambda: L.CosineAnnealingWarmRestarts(opt(), T_0=0),
        ValueError,
        "Expected positive integer T_0, but got 0",
    )
    raises(
        "Q13 T_mult=0",
        lambda: L.CosineAnnealingWarmRestarts(opt(), T_0=1, T_mult=0),
        ValueError,
        "Expected integer T_mult >= 1, but got 0",
    )
    raises(
        "Q13 T_mult=2.0",
        lambda: L.CosineAnnealingWarmRestarts(opt(), T_0=1, T_mult=2.0),
        ValueError,
        "Expected integer T_mult >= 1, but got 2.0",
    )
    raises(
        "Q13 eta_min='0'",
        lambda: L.CosineAnnealingWarmRestarts(opt(), T_0=1, eta_min="0"),
        ValueError,
        "Expected float or int eta_min, but got 0 of type <class 'str'>",
    )
    o = opt()
    s = L.CosineAnnealingWarmRestarts(o, T_0=1)
    raises("Q13 step(-1)", lambda: s.step(-1), ValueError, "Expected non-negative epoch, but got -1")

    # Q14 PolynomialLR / docs off-by-one
    o = opt(0.05)
    v = run(o, L.PolynomialLR(o, total_iters=50, power=0.9), 60)
    check(
        "Q14 PolynomialLR(50, 0.9) lr(0), lr(1), lr(50), lr(59)",
        [v[0], v[1], v[50], v[59]],
        [0.05, 0.049099093329828765, 0.0, 0.0],
        1e-12,
    )
    raises(
        "Q14 PolynomialLR power<0 at t=T",
        lambda: (lambda o: run(o, L.PolynomialLR(o, total_iters=2, power=-1.0), 3))(opt()),
        ZeroDivisionError,
    )

    # Q15 validation messages
    raises(
        "Q15 ConstantLR factor",
        lambda: L.ConstantLR(opt(), factor=1.5),
        ValueError,
        "Constant multiplicative factor expected to be between 0 and 1.",
    )
    raises(
        "Q15 LinearLR start_factor",
        lambda: L.LinearLR(opt(), start_factor=0.0),
        ValueError,
        "Starting multiplicative factor expected to be greater than 0 and less or equal to 1.",
    )
    raises(
        "Q15 LinearLR end_factor",
        lambda: L.LinearLR(opt(), end_factor=1.5),
        ValueError,
        "Ending multiplicative factor expected to be between 0 and 1.",
    )
    raises(
        "Q15 CyclicLR mode",
        lambda: L.CyclicLR(opt(momentum=0.9), base_lr=0.1, max_lr=1.0, mode="foo"),
        ValueError,
        "mode is invalid and scale_fn is None",
    )
    raises(
        "Q15 CyclicLR base_lr list",
        lambda: L.CyclicLR(opt(momentum=0.9), base_lr=[0.1, 0.2], max_lr=1.0),
        ValueError,
        "base_lr must have the same length as optimizer.param_groups. base_lr has 2 values, param_groups has 1.",
    )
    for kw, msg in [
        ({"total_steps": 0}, "Expected positive integer total_steps, but got 0"),
        ({"total_steps": 10.0}, "Expected positive integer total_steps, but got 10.0"),
        ({"epochs": 0, "steps_per_epoch": 5}, "Expected positive integer epochs, but got 0"),
        ({"epochs": 2, "steps_per_epoch": 0}, "Expected positive integer steps_per_epoch, but got 0"),
        ({"epochs": 2}, "You must define either total_steps OR (epochs AND steps_per_epoch)"),
        ({"total_steps": 10, "pct_start": 1.5}, "Expected float between 0 and 1 pct_start, but got 1.5"),
        (
            {"total_steps": 10, "anneal_strategy": "foo"},
            "anneal_strategy must be one of 'cos' or 'linear', instead got foo",
        ),
    ]:
        raises(f"Q15 OneCycleLR {kw}", lambda kw=kw: L.OneCycleLR(opt(momentum=0.9), max_lr=1.0, **kw), ValueError, msg)
    raises(
        "Q15 ChainedScheduler empty",
        lambda: L.ChainedScheduler([]),
        ValueError,
        "ChainedScheduler expects at least one scheduler to be chained, but got no scheduler.",
    )
    raises(
        "Q15 SequentialLR empty",
        lambda: L.SequentialLR(opt(), [], milestones=[]),
        ValueError,
        "SequentialLR expects at least one scheduler, but got no scheduler.",
    )
    o = opt()
    raises(
        "Q15 SequentialLR milestones count",
        lambda: L.SequentialLR(o, [L.StepLR(o, 2), L.StepLR(o, 3)], milestones=[1, 2]),
        ValueError,
        "Sequential Schedulers expects number of schedulers provided to be one more than the number of "
        "milestone points, but got number of schedulers 2 and the number of milestones to be equal to 2",
    )
    o = opt()
    raises(
        "Q15 ChainedScheduler with plateau",
        lambda: L.ChainedScheduler([L.ReduceLROnPlateau(o)]),
        ValueError,
        "ChainedScheduler does not support `ReduceLROnPlateau` scheduler as it requires additional kwargs to be "
        "specified when calling `step`, but got one at index 0 in the given schedulers sequence.",
    )
    for name, kw in [
        ("StepLR", {"step_size": -1, "gamma": -2.0}),
        ("MultiStepLR", {"milestones": [5, 1, -3]}),
        ("ExponentialLR", {"gamma": -1.0}),
        ("CosineAnnealingLR", {"T_max": -5, "eta_min": -1.0}),
        ("PolynomialLR", {"total_iters": -3, "power": -2.0}),
        ("ConstantLR", {"total_iters": -1}),
        ("LinearLR", {"total_iters": -1}),
    ]:
        try:
            getattr(L, name)(opt(), **kw)
            check(f"Q15 {name}{kw} constructs without error", "constructed", "constructed")
        except Exception as e:  # noqa: BLE001
            check(f"Q15 {name}{kw} constructs without error", repr(e), "constructed")
    L.ReduceLROnPlateau(opt(), patience=-1, cooldown=-2, threshold=-1.0, eps=-1.0, factor=-3.0)
    check("Q15 ReduceLROnPlateau(patience=-1, cooldown=-2, threshold=-1, eps=-1, factor=-3) constructs", "ok", "ok")

    print()
    if FAILED:
        print(f"{len(FAILED)} MISMATCH(ES): {FAILED}")
        return 1
    print("all quirk examples reproduced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
