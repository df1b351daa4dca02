"""The unit-cube encoding every algorithm relies on: decode is always valid, encode inverts it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubesweep.api.experiment import Fidelity, ParameterValue
from kubesweep.api.suggestion_wire import SearchSpace
from kubesweep.suggestion.space import Space, SpaceError, problems, rung_budgets, rung_of
from tests.suggestion.helpers import MIXED, SMALL

SPACE = Space(SearchSpace.model_validate(MIXED))


def make(*parameters: dict[str, Any], **extra: Any) -> Space:
    return Space(SearchSpace.model_validate({"parameters": list(parameters), **extra}))


units = st.lists(st.floats(0, 1), min_size=SPACE.dim, max_size=SPACE.dim)


@settings(max_examples=200, deadline=None)
@given(units)
def test_every_unit_point_decodes_to_a_valid_assignment(u: list[float]) -> None:
    values = SPACE.from_unit(u)
    assert SPACE.contains(values), values


@settings(max_examples=200, deadline=None)
@given(units)
def test_encoding_a_decoded_point_decodes_to_the_same_values(u: list[float]) -> None:
    values = SPACE.from_unit(u)
    code = SPACE.to_unit(values)
    assert all(0 <= c <= 1 for c in code if not math.isnan(c))
    again = SPACE.from_unit(np.nan_to_num(code, nan=0.5))
    assert again == values
    assert SPACE.key(again) == SPACE.key(values)


def test_types_follow_the_parameter_types() -> None:
    for values in SPACE.sample(np.random.default_rng(0), 200):
        assert type(values["lr"]) is float
        assert type(values["layers"]) is int
        assert type(values["batch"]) is int
        assert values["batch"] % 16 == 0
        assert round(float(values["dropout"]) * 10) == pytest.approx(values["dropout"] * 10)
        assert values["optimizer"] in ("adam", "sgd", 3, True)


def test_log_parameters_are_log_uniform() -> None:
    lr = np.array([v["lr"] for v in SPACE.sample(np.random.default_rng(1), 4000)])
    below = np.mean(lr < 1e-3)  # half of the decades of [1e-5, 1e-1]
    assert 0.45 < below < 0.55


def test_each_integer_is_equally_likely_including_the_ends() -> None:
    space = make({"name": "n", "type": "int", "min": 1, "max": 4})
    counts = np.bincount([v["n"] for v in space.sample(np.random.default_rng(2), 8000)])
    assert all(1800 < c < 2200 for c in counts[1:])


def test_steps_snap_to_clean_values_within_the_bounds() -> None:
    space = make({"name": "x", "type": "float", "min": 0.1, "max": 1.0, "step": 0.3})
    assert space.dimension("x").values() == [0.1, 0.4, 0.7, 1.0]
    space = make({"name": "x", "type": "float", "min": 0, "max": 1, "step": 0.3})
    assert space.dimension("x").values() == [0.0, 0.3, 0.6, 0.9]
    assert space.from_unit([1.0]) == {"x": 0.9}


def test_inactive_conditional_parameters_are_omitted() -> None:
    values = SPACE.from_unit([0.5] * 4 + [0.1, 0.5, 0.5, 0.5])  # optimizer = adam
    assert values["optimizer"] == "adam"
    assert "momentum" not in values
    assert "nesterov" not in values
    assert "dampening" not in values
    values = SPACE.from_unit([0.5] * 4 + [0.3, 0.5, 0.9, 0.5])  # sgd, nesterov = False
    assert values["optimizer"] == "sgd"
    assert values["nesterov"] is False
    assert "dampening" in values


def test_contains_refuses_wrong_types_extras_and_missing_active_values() -> None:
    values = SPACE.from_unit([0.5] * SPACE.dim)
    assert SPACE.contains(values)
    assert not SPACE.contains({**values, "layers": 2.5})
    assert not SPACE.contains({**values, "layers": True})
    assert not SPACE.contains({**values, "lr": 1.0})
    assert not SPACE.contains({**values, "unknown": 1})
    missing = dict(values)
    del missing["lr"]
    assert not SPACE.contains(missing)


def test_keys_ignore_representation_and_inactive_leftovers() -> None:
    a: dict[str, ParameterValue] = {
        "lr": 0.01,
        "layers": 3,
        "dropout": 0.3,
        "batch": 32,
        "optimizer": "adam",
    }
    assert SPACE.key(a) == SPACE.key({**a, "layers": 3.0})
    assert SPACE.key(a) == SPACE.key({**a, "dropout": 0.1 + 0.2})
    assert SPACE.key(a) == SPACE.key({**a, "momentum": 0.9, "stale": "x"})
    assert SPACE.key(a) != SPACE.key({**a, "optimizer": True})
    assert SPACE.key({**a, "optimizer": 3}) != SPACE.key({**a, "optimizer": True})


def test_categories_that_python_confuses_stay_apart() -> None:
    space = make({"name": "c", "type": "categorical", "values": [1, True, 1.5]})
    assert space.key({"c": 1}) != space.key({"c": True})
    assert space.to_unit({"c": True})[0] == pytest.approx(0.5)
    assert space.contains({"c": True})
    assert not space.contains({"c": 2})


def test_features_are_one_hot_for_categories() -> None:
    space = make(
        {"name": "x", "type": "float", "min": 0, "max": 10},
        {"name": "c", "type": "categorical", "values": ["a", "b", "c"]},
    )
    assert space.feature_count == 4
    assert list(space.to_features({"x": 5.0, "c": "b"})) == [0.5, 0.0, 1.0, 0.0]
    assert space.feature_slice("c") == slice(1, 4)


def test_grid_enumerates_each_active_assignment_once() -> None:
    space = make(
        {"name": "opt", "type": "categorical", "values": ["adam", "sgd"]},
        {"name": "n", "type": "int", "min": 1, "max": 3},
        {
            "name": "m",
            "type": "int",
            "min": 0,
            "max": 1,
            "when": {"parameter": "opt", "values": ["sgd"]},
        },
    )
    grid = list(space.grid())
    assert len(grid) == 3 + 6 == space.cardinality()
    assert len({space.key(v) for v in grid}) == len(grid)
    assert all(space.contains(v) for v in grid)


def test_cardinality_is_none_for_continuous_spaces() -> None:
    assert SPACE.cardinality() is None
    assert Space(SearchSpace.model_validate(SMALL)).cardinality() == 6


def test_sample_unique_lists_what_is_left_of_a_finite_space() -> None:
    space = Space(SearchSpace.model_validate(SMALL))
    rng = np.random.default_rng(0)
    avoid = {space.key(v) for v in list(space.grid())[:4]}
    left = space.sample_unique(rng, 10, avoid)
    assert len(left) == 2
    assert space.sample_unique(rng, 1, avoid) == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "a", "type": "int", "min": 0, "max": 9, "step": 1.5}, "whole-number step"),
        (
            {
                "name": "a",
                "type": "int",
                "min": 0,
                "max": 9,
                "when": {"parameter": "a", "values": [1]},
            },
            "another parameter",
        ),
        (
            {
                "name": "a",
                "type": "int",
                "min": 0,
                "max": 9,
                "when": {"parameter": "b", "values": [1]},
            },
            "must be categorical",
        ),
        (
            {
                "name": "a",
                "type": "int",
                "min": 0,
                "max": 9,
                "when": {"parameter": "c", "values": ["z"]},
            },
            "is not a value of",
        ),
        (
            {"name": "a", "type": "float", "min": 0, "max": 10, "step": 5e-324},
            "parameters[0].step: too small for the bounds",
        ),
        (
            {"name": "a", "type": "int", "min": -1e308, "max": 1e308, "step": 1},
            "parameters[0].max: max - min must be a finite number",
        ),
        # Grid points that floats cannot tell apart: a grid walk would never end.
        (
            {"name": "a", "type": "int", "min": -7.8e222, "max": 10},
            "parameters[0].step: 1 is too fine for floats at 7.8e+222",
        ),
        (
            {"name": "a", "type": "float", "min": 1e10, "max": 1e10 + 1, "step": 1e-9},
            "parameters[0].step: 1e-09 is too fine for floats at 1e+10",
        ),
        (
            {"name": "a", "type": "int", "min": 1e17, "max": 1e17 + 100, "step": 2},
            "parameters[0].step: 2 is too fine for floats at 1e+17",
        ),
    ],
)
def test_problems_name_the_field(raw: dict[str, Any], message: str) -> None:
    space = SearchSpace.model_validate(
        {
            "parameters": [
                raw,
                {"name": "b", "type": "float", "min": 0, "max": 1},
                {"name": "c", "type": "categorical", "values": ["x", "y"]},
            ]
        }
    )
    found = problems(space)
    assert any(message in p and p.startswith("parameters[0]") for p in found), found
    with pytest.raises(SpaceError):
        Space(space)


def test_duplicate_names_and_cycles_are_problems() -> None:
    space = SearchSpace.model_validate(
        {
            "parameters": [
                {
                    "name": "a",
                    "type": "categorical",
                    "values": [1],
                    "when": {"parameter": "b", "values": [1]},
                },
                {
                    "name": "b",
                    "type": "categorical",
                    "values": [1],
                    "when": {"parameter": "a", "values": [1]},
                },
                {"name": "b", "type": "int", "min": 0, "max": 1},
            ]
        }
    )
    found = problems(space)
    assert any("duplicate" in p for p in found)
    assert any("cycle" in p for p in found)


@pytest.mark.parametrize(
    ("low", "high", "eta", "kind", "expected"),
    [
        (1, 27, 3, "int", [1, 3, 9, 27]),
        (1, 20, 3, "int", [1, 3, 20]),
        (1, 81, 3, "int", [1, 3, 9, 27, 81]),
        (2, 100, 2, "int", [2, 4, 8, 16, 32, 100]),
        (0.1, 1.0, 2, "float", [0.1, 0.2, 0.4, 1.0]),
        (1, 2, 3, "int", [2]),
    ],
)
def test_rung_budgets(
    low: float, high: float, eta: float, kind: str, expected: list[float]
) -> None:
    fidelity = Fidelity.model_validate(
        {"parameter": "epochs", "min": low, "max": high, "eta": eta, "type": kind}
    )
    budgets = rung_budgets(fidelity)
    assert budgets == pytest.approx(expected)
    assert rung_of(budgets, budgets[-1]) == len(budgets) - 1
    assert rung_of(budgets, budgets[0] / 2) == 0


@pytest.mark.parametrize(
    "raw",
    [
        {"name": "a", "type": "int", "min": 0, "max": 2**50},
        {"name": "a", "type": "float", "min": 0, "max": 1, "step": 1e-12},
        {"name": "a", "type": "int", "min": -(2**50), "max": 0, "step": 4},
        {"name": "a", "type": "float", "min": 1e6, "max": 2e6, "step": 1e-3},
        {"name": "a", "type": "float", "min": 0, "max": 1, "step": 1e-9},
    ],
)
def test_grids_whose_points_floats_tell_apart_are_fine(raw: dict[str, Any]) -> None:
    assert problems(SearchSpace.model_validate({"parameters": [raw]})) == []


@pytest.mark.parametrize(
    ("low", "high", "step", "values"),
    [
        (-86.5, -86.499999, 1e-6, [-86.5, -86.499999]),
        (1000.0, 1000.000003, 1e-6, [1000.0, 1000.000001, 1000.000002, 1000.000003]),
        (0.1, 0.7, 0.2, [0.1, 0.3, 0.5, 0.7]),
        (0.0, 0.95, 0.3, [0.0, 0.3, 0.6, 0.9]),
    ],
)
def test_a_step_grid_keeps_its_top_value_whatever_the_bounds_magnitude(
    low: float, high: float, step: float, values: list[float]
) -> None:
    # Float rounding of ``max - min`` grows with the bounds, not with the step:
    # the tolerance that decides whether ``max`` is on the grid scales with them.
    space = make({"name": "x", "type": "float", "min": low, "max": high, "step": step})
    found = space.dimension("x").values()
    assert found == pytest.approx(values, rel=1e-15)
    assert space.contains({"x": found[-1]})
    assert space.from_unit([1.0]) == {"x": found[-1]}


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ({"type": "float", "min": 0.25, "max": 0.25}, 0.25),
        ({"type": "float", "min": 1e-12, "max": 1e-12, "log": True}, 1e-12),
        ({"type": "float", "min": -3.5, "max": -3.5, "step": 0.5}, -3.5),
        ({"type": "int", "min": 7, "max": 7}, 7),
        ({"type": "int", "min": 16, "max": 16, "log": True, "step": 8}, 16),
    ],
)
def test_a_one_value_range_is_a_constant(raw: dict[str, Any], value: float) -> None:
    space = make({"name": "c", **raw}, {"name": "x", "type": "int", "min": 0, "max": 2})
    c = space.dimension("c")
    assert c.size == 1
    assert c.values() == [value]
    assert type(c.values()[0]) is type(value)
    for u in (0.0, 0.3, 1.0):
        assert space.from_unit([u, 0.5])["c"] == value
    assert space.contains({"c": value, "x": 1})
    assert space.to_unit({"c": value, "x": 1})[0] == 0.5
    assert space.cardinality() == 3
    assert len(list(space.grid())) == 3
    assert {v["c"] for v in space.sample(np.random.default_rng(0), 20)} == {value}
