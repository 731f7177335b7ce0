"""``lrjax.plot``: a None schedule and a momentum dict beside a list of schedules are ValueErrors naming them."""

from __future__ import annotations

import matplotlib
import pytest

import lrjax

matplotlib.use("Agg")


@pytest.mark.parametrize("schedules", [[None], {"a": None}, [lrjax.step_lr(0.1, 3), None]])
def test_none_is_not_a_schedule(schedules):
    with pytest.raises(ValueError, match=r"schedules must hold schedules \(callables step -> value\), got None"):
        lrjax.plot(schedules, 5)


def test_empty_momentum_dict_needs_schedules_keyed_alike():
    with pytest.raises(ValueError, match="momentum is an empty dict"):
        lrjax.plot([lrjax.step_lr(0.1, 3)], 5, momentum={})


def test_empty_momentum_dict_with_a_dict_of_schedules_draws_no_momentum():
    fig = lrjax.plot({"a": lrjax.step_lr(0.1, 3)}, 5, momentum={})
    assert len(fig.axes) == 1 and [line.get_label() for line in fig.axes[0].get_lines()] == ["a"]
