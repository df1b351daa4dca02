"""JSON-lines metrics: numeric fields are metrics, step and timestamp describe them."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesweep.metrics import Observation, parse_json_line, parse_json_lines, parse_json_object


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"loss": 0.5}', [("loss", 0.5, None)]),
        ('{"step": 3, "loss": 0.2, "acc": 1}', [("loss", 0.2, 3), ("acc", 1.0, 3)]),
        ('{"epoch": 2, "loss": 0.2}', [("loss", 0.2, 2)]),
        ('{"step": 1, "metrics": {"f1": 0.7}}', [("f1", 0.7, 1)]),
        ('{"name": "x", "ok": true, "list": [1], "loss": 1}', [("loss", 1.0, None)]),
        ('{"step": "4", "loss": 1}', [("loss", 1.0, 4)]),
        ('{"step": -4, "loss": 1}', [("loss", 1.0, None)]),
        ("[1, 2]", []),
        ("not json", []),
        ("", []),
        ("{", []),
        ("[[[[[[" * 5000, []),
    ],
)
def test_lines(line: str, expected: list[tuple[str, float, int | None]]) -> None:
    parsed = parse_json_line(line)
    assert [(o.name, o.value, o.step) for o in parsed.observations] == expected


def test_timestamps() -> None:
    (a,) = parse_json_line('{"timestamp": 12.5, "x": 1}').observations
    (b,) = parse_json_line('{"timestamp": "2026-11-22T10:00:00Z", "x": 1}').observations
    assert a.timestamp == 12.5
    assert b.timestamp == pytest.approx(1795341600.0)


def test_non_finite_and_huge_values_are_dropped() -> None:
    parsed = parse_json_line('{"a": NaN, "b": Infinity, "c": ' + "9" * 400 + ', "d": 2}')
    assert parsed.observations == (Observation("d", 2.0),)
    assert parsed.dropped == 3


def test_lists_of_objects_and_many_lines() -> None:
    assert len(parse_json_object([{"a": 1}, {"b": 2}, 3]).observations) == 2
    assert len(parse_json_lines(['{"a": 1}', b'{"b": 2}', "x"]).observations) == 2


def _numbers(value: object) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)] if math.isfinite(float(value)) else []
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_any_json_never_raises_and_never_invents(value: object) -> None:
    line = json.dumps(value)
    parsed = parse_json_line(line)
    numbers = _numbers(value)
    for observation in parsed.observations:
        assert observation.value in numbers


@given(st.binary(max_size=200))
def test_garbage_bytes_never_raise(data: bytes) -> None:
    parse_json_line(data)
