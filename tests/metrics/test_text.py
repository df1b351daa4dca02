"""Katib-compatible text lines: table-driven cases and properties of garbage input."""

from __future__ import annotations

import contextlib
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesweep.metrics import Observation, parse_text, parse_text_line, text_format

T0 = 1795341600.0  # 2026-11-22T10:00:00Z


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("loss=0.5", [("loss", 0.5, None)]),
        ("epoch=3 loss=0.2 accuracy=0.93", [("loss", 0.2, 3), ("accuracy", 0.93, 3)]),
        ("loss=0.2 step=7", [("loss", 0.2, 7)]),
        (
            "Epoch 1: accuracy = 0.9, val-loss=1e-3",
            [("accuracy", 0.9, None), ("val-loss", 1e-3, None)],
        ),
        ("val/loss=-2.5E+2", [("val/loss", -250.0, None)]),
        ("lr=1e-3x", []),
        ("version=1.2.3", []),
        ("acc=0.93.", [("acc", 0.93, None)]),
        ("no metrics here", []),
        ("=0.5", []),
        ("loss=", []),
        ("x=1_000", []),
        ("step=2.5 loss=1", [("loss", 1.0, None)]),
        ("epoch=-1 loss=1", [("loss", 1.0, None)]),
    ],
)
def test_lines(line: str, expected: list[tuple[str, float, int | None]]) -> None:
    parsed = parse_text_line(line)
    assert [(o.name, o.value, o.step) for o in parsed.observations] == expected


@pytest.mark.parametrize(
    ("line", "timestamp"),
    [
        ("2026-11-22T10:00:00Z loss=1", T0),
        ("2026-11-22T10:00:00.5Z loss=1", T0 + 0.5),
        ("2026-11-22T10:00:00.123456789Z loss=1", T0 + 0.123456),
        ("2026-11-22T11:00:00+01:00 loss=1", T0),
        ("  2026-11-22T10:00:00Z\tloss=1", T0),
        ("loss=1 2026-11-22T10:00:00Z", None),
    ],
)
def test_leading_timestamp(line: str, timestamp: float | None) -> None:
    (observation,) = parse_text_line(line).observations
    if timestamp is None:
        assert observation.timestamp is None
    else:
        assert observation.timestamp == pytest.approx(timestamp)


def test_non_finite_values_are_dropped() -> None:
    parsed = parse_text_line("loss=nan acc=inf f1=-Infinity ok=1")
    assert parsed.observations == (Observation("ok", 1.0),)
    assert parsed.dropped == 3


def test_custom_filters_with_named_and_positional_groups() -> None:
    named = text_format([r"(?P<value>[\d.]+) is the (?P<name>\w+)"])
    assert parse_text_line("0.25 is the loss", named).observations == (Observation("loss", 0.25),)
    katib = text_format([r"\{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)\}"])
    parsed = parse_text_line("{metricName: accuracy, metricValue: 0.8}", katib)
    assert parsed.observations == (Observation("accuracy", 0.8),)


@pytest.mark.parametrize("bad", ["(", r"(\w+)=\d+"])
def test_bad_filters_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="filter"):
        text_format([bad])


def test_many_lines_in_order() -> None:
    parsed = parse_text(["a=1", "junk", "b=2 c=nan"])
    assert [o.name for o in parsed.observations] == ["a", "b"]
    assert parsed.dropped == 1


_NUMBER_TOKEN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _numbers_in(text: str) -> set[float]:
    found = set()
    for match in _NUMBER_TOKEN.finditer(text):
        with contextlib.suppress(ValueError, OverflowError):
            found.add(float(match.group(0)))
    return found


metric_line_chars = st.text(alphabet=st.sampled_from("abcxyz_=.-+eE0123456789 \t:/,{}\"'nNaif"))


@given(st.one_of(st.text(), metric_line_chars))
def test_garbage_never_raises_and_never_invents(line: str) -> None:
    parsed = parse_text_line(line)
    numbers = _numbers_in(line)
    for observation in parsed.observations:
        assert math.isfinite(observation.value)
        assert observation.value in numbers
        assert observation.name in line


@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True).filter(
                lambda n: n not in ("step", "epoch", "global_step")
            ),
            st.floats(allow_nan=False, allow_infinity=False, width=64),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_round_trip_of_printed_pairs(pairs: list[tuple[str, float]]) -> None:
    line = " ".join(f"{name}={value!r}" for name, value in pairs)
    parsed = parse_text_line(line)
    assert [(o.name, o.value) for o in parsed.observations] == pairs
