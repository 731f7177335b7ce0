"""``lrjax.from_config`` / ``lrjax.to_config``: every schedule name round-trips, through JSON too."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax

STEP = {"name": "step_lr", "base_lr": 0.1, "step_size": 3}
# One config per schedule name: the registry's example (torch's keyword names; lambdas are Python
# callables, as configs allow), so a schedule added to the registry is covered here.
CONFIGS = {e.name: e.example_config() for e in lrjax.registry.entries()}
TORCH_NAMES = {e.name: e.torch_class for e in lrjax.registry.entries() if e.torch_class is not None}
METRICS = jnp.asarray([1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.7, 0.8])


def test_every_name_has_an_example():
    assert sorted(CONFIGS) == lrjax.available_schedules()
    assert all(len(c) > 1 for c in CONFIGS.values()), "every registry entry needs an example"


def observe(obj):
    """What a schedule does: its values on 40 steps, or a plateau's lrs on a metric sequence."""
    if getattr(obj, "is_plateau", False):
        state, lrs = obj.init(0.1), []
        for m in METRICS:
            state = obj.update(state, m)
            lrs.append(state.lr)
        return np.asarray(lrs)
    return np.asarray(jax.jit(jax.vmap(obj))(jnp.arange(40)))


def has_callable(value):
    if isinstance(value, dict):
        return any(has_callable(v) for v in value.values())
    if isinstance(value, list):
        return any(has_callable(v) for v in value)
    return callable(value)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_round_trip(name):
    built = lrjax.from_config(CONFIGS[name])
    config = lrjax.to_config(built)
    assert config["name"] == name
    again = lrjax.from_config(config)
    np.testing.assert_array_equal(observe(again), observe(built))
    assert lrjax.to_config(again) == config
    if not has_callable(config):
        via_json = lrjax.from_config(json.dumps(config))
        np.testing.assert_array_equal(observe(via_json), observe(built))


@pytest.mark.parametrize("name", sorted(TORCH_NAMES))
def test_torch_class_names(name):
    config = dict(CONFIGS[name], name=TORCH_NAMES[name])
    np.testing.assert_array_equal(observe(lrjax.from_config(config)), observe(lrjax.from_config(CONFIGS[name])))


def test_defaults_fill_missing_keywords_in_nested_configs():
    config = {
        "name": "SequentialLR",
        "milestones": [3],
        "schedules": [
            {"name": "LinearLR", "start_factor": 0.5, "total_iters": 3},
            {"name": "ExponentialLR", "gamma": 0.9},
        ],
    }
    built = lrjax.from_config(config, base_lr=0.2)
    expected = lrjax.sequential_lr([lrjax.linear_lr(0.2, 0.5, total_iters=3), lrjax.exponential_lr(0.2, 0.9)], [3])
    np.testing.assert_array_equal(observe(built), observe(expected))
    # A default the function does not take is ignored (one_cycle_lr has no base_lr).
    assert lrjax.to_config(lrjax.from_config(CONFIGS["one_cycle_lr"], base_lr=5.0)) == lrjax.to_config(
        lrjax.from_config(CONFIGS["one_cycle_lr"])
    )


@pytest.mark.parametrize(
    "config,match",
    [
        ({"name": "StepLr", "step_size": 3}, r"unknown schedule name 'StepLr'. Did you mean 'StepLR'\?"),
        ({"name": "no_such_lr"}, r"Valid names: " + ", ".join(lrjax.available_schedules())),
        (
            {"name": "step_lr", "base_lr": 0.1, "step_size": 3, "gama": 0.5},
            r"unknown keyword 'gama' for step_lr. Valid keywords: base_lr, step_size, gamma",
        ),
        ({"name": "step_lr", "base_lr": 0.1}, r"step_lr needs 'step_size'"),
        ({"step_size": 3}, r"needs a 'name'"),
        ('{"name": "step_lr",', r"not valid JSON"),
        ({"name": "lambda_lr", "base_lr": 0.1, "lr_lambda": "lambda e: e"}, r"must be a Python callable"),
        ({"name": "sequential_lr", "milestones": [2], "schedules": [STEP, {"name": "nope"}]}, r"unknown schedule name"),
        ({"name": "step_lr", "base_lr": 0.1, "step_size": -1}, r"step_size"),
    ],
)
def test_errors(config, match):
    with pytest.raises(ValueError, match=match):
        lrjax.from_config(config)


def test_split_momentum_follows_torch_keywords():
    lr, momentum = lrjax.split_momentum(
        {"name": "CyclicLR", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 3, "max_momentum": 0.95}
    )
    assert lr == {"name": "CyclicLR", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 3}
    assert momentum == {"name": "cyclic_momentum", "step_size_up": 3, "max_momentum": 0.95}
    m = lrjax.from_config(momentum)
    assert float(m(0)) == pytest.approx(0.95) and float(m(3)) == pytest.approx(0.8)
    assert lrjax.split_momentum({"name": "one_cycle_lr", "max_lr": 0.1, "total_steps": 9, "cycle_momentum": False}) == (
        {"name": "one_cycle_lr", "max_lr": 0.1, "total_steps": 9},
        None,
    )
    assert lrjax.split_momentum({"name": "step_lr", "step_size": 3}) == ({"name": "step_lr", "step_size": 3}, None)
    # A momentum schedule's own base_momentum / max_momentum are its arguments, not torch's CyclicLR keywords.
    own = {"name": "cyclic_momentum", "base_momentum": 0.8, "max_momentum": 0.9, "step_size_up": 3}
    assert lrjax.split_momentum(own) == (own, None)
    with pytest.raises(ValueError, match="only CyclicLR and OneCycleLR cycle the momentum, not step_lr"):
        lrjax.split_momentum({"name": "StepLR", "step_size": 3, "base_momentum": 0.8})
