"""The report's axes: round tick values inside the data's range, no loss axis below zero."""

from __future__ import annotations

import math
from typing import Any

import pytest

from kubesweep.cli.report.axes import linear_axis, log_axis, nice_step


def ticks(axis: dict[str, Any]) -> list[float]:
    return [value for value, _ in axis["ticks"]]


def labels(axis: dict[str, Any]) -> list[str]:
    return [label for _, label in axis["ticks"]]


@pytest.mark.parametrize(
    ("span", "step"),
    [(1.0, 0.2), (1.278, 0.2), (116.0, 20.0), (0.03, 0.005), (7.0, 1.0), (1e-6, 2e-7)],
)
def test_nice_steps_are_one_two_or_five_times_a_power_of_ten(span: float, step: float) -> None:
    assert math.isclose(nice_step(span, 5), step)


def test_a_loss_axis_starts_at_zero_at_the_lowest_and_ticks_round_values() -> None:
    axis = linear_axis([0.0, 0.3, 1.2378])
    assert axis["min"] == 0.0
    assert labels(axis) == ["0", "0.2", "0.4", "0.6", "0.8", "1", "1.2"]
    assert all(axis["min"] <= t <= axis["max"] for t in ticks(axis))


def test_an_integer_parameter_ticks_whole_numbers_inside_its_bounds() -> None:
    axis = linear_axis([], bounds=(16, 128), integer=True)
    assert labels(axis) == ["20", "40", "60", "80", "100", "120"]
    small = linear_axis([1, 3], integer=True)
    assert all(float(label).is_integer() for label in labels(small))
    assert len(labels(small)) >= 2


def test_negative_and_constant_values() -> None:
    axis = linear_axis([-3.0, -1.0])
    assert axis["max"] <= 0.0  # all below zero: so is the axis
    assert labels(axis)[0].startswith("-3")
    constant = linear_axis([0.25, 0.25])
    assert constant["min"] < 0.25 < constant["max"]
    assert len(ticks(constant)) >= 2
    assert linear_axis([])["ticks"]


def test_a_log_axis_ticks_powers_of_ten() -> None:
    axis = log_axis(1e-6, 1e-2)
    assert labels(axis) == ["1e-06", "1e-05", "0.0001", "0.001", "0.01"]
    narrow = log_axis(0.3, 0.9)
    assert len(ticks(narrow)) >= 2
    assert all(0.3 <= t <= 0.9 for t in ticks(narrow))
    assert all(len(label) <= 5 for label in labels(narrow))


def test_a_position_axis_is_padded_across_zero() -> None:
    axis = linear_axis([0, 11], integer=True, pad=0.04, stay_signed=False)
    assert axis["min"] < 0
    assert ticks(axis)[0] == 0
