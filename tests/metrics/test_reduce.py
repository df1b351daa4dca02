"""Reduction to status figures: stats per metric, objective by strategy, bounded curves."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesweep.metrics import (
    MAX_CURVE_POINTS,
    Best,
    MetricStats,
    Observation,
    SeriesReducer,
    curve,
    downsample,
    objective_value,
    summarize,
)

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
observations = st.lists(
    st.builds(
        Observation,
        st.sampled_from(["loss", "acc", "lr"]),
        finite,
        st.one_of(st.none(), st.integers(0, 10_000)),
    ),
    max_size=300,
)


def test_summary_and_objective_by_strategy() -> None:
    series = [Observation("loss", v, i) for i, v in enumerate([0.9, 0.3, 0.5])]
    stats = summarize(series)
    assert stats["loss"] == MetricStats("loss", 0.5, 0.3, 0.9, 2, 3)
    assert objective_value(stats, "loss", "min") == 0.3
    assert objective_value(stats, "loss", "max") == 0.9
    assert objective_value(stats, "loss", "latest") == 0.5
    assert objective_value(stats, "acc", "max") is None
    with pytest.raises(ValueError, match="strategy"):
        stats["loss"].value("median")


def test_latest_is_the_last_received_even_after_a_restart() -> None:
    series = [Observation("loss", 0.1, 9), Observation("loss", 0.8, 0)]
    assert summarize(series)["loss"].latest == 0.8


def test_merge_equals_one_pass() -> None:
    series = [Observation("m", float(v), v) for v in (5, 1, 7, 3)]
    first, second = summarize(series[:2])["m"], summarize(series[2:])["m"]
    assert first.merge(second) == summarize(series)["m"]


@given(observations)
def test_stats_invariants(series: list[Observation]) -> None:
    stats = summarize(series)
    reducer = SeriesReducer(max_curve_points=10)
    reducer.extend(series)
    assert reducer.stats == stats
    for name, item in stats.items():
        values = [o.value for o in series if o.name == name]
        assert item.min <= item.latest <= item.max
        assert (item.min, item.max, item.latest, item.count) == (
            min(values),
            max(values),
            values[-1],
            len(values),
        )


@given(
    st.lists(st.tuples(st.integers(0, 10**6), finite), max_size=500),
    st.integers(3, 50),
    st.sampled_from(["min", "max", None]),
)
def test_downsample_keeps_first_last_best_in_order(
    points: list[tuple[int, float]], size: int, best: Best
) -> None:
    kept = downsample(points, size, best)
    assert len(kept) <= size
    assert len(kept) == min(len(points), size)
    if points:
        assert kept[0] == points[0]
        assert kept[-1] == points[-1]
        if best == "min":
            assert min(v for _, v in kept) == min(v for _, v in points)
        if best == "max":
            assert max(v for _, v in kept) == max(v for _, v in points)
    positions = iter(range(len(points)))
    for point in kept:  # a subsequence of the original
        assert any(points[i] == point for i in positions)


def test_downsample_needs_room_for_three_points() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        downsample([(0, 1.0)] * 5, 2)


@given(st.lists(finite, min_size=1, max_size=2000), st.sampled_from(["min", "max"]))
def test_streaming_curve_is_bounded_and_keeps_first_last_best(
    values: list[float], best: Best
) -> None:
    reducer = SeriesReducer(priority=["m"], best={"m": best}, max_curve_points=20)
    reducer.extend(Observation("m", v, i) for i, v in enumerate(values))
    kept = reducer.curve("m")
    assert len(kept) <= 20
    assert kept[0] == (0, values[0])
    assert kept[-1] == (len(values) - 1, values[-1])
    extreme = min(values) if best == "min" else max(values)
    assert extreme in [v for _, v in kept]


def test_streaming_curve_covers_the_whole_history_evenly() -> None:
    reducer = SeriesReducer(max_curve_points=MAX_CURVE_POINTS)
    reducer.extend(Observation("m", float(i), i) for i in range(10_000))
    steps = [step for step, _ in reducer.curve("m")]
    assert len(steps) == MAX_CURVE_POINTS
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    assert max(gaps) < 4 * 10_000 / MAX_CURVE_POINTS


def test_curve_of_a_series_uses_indices_without_steps() -> None:
    series = [Observation("m", 1.0), Observation("m", 2.0), Observation("x", 0.0)]
    assert curve(series, "m") == [(0, 1.0), (1, 2.0)]


def test_metric_cap_keeps_room_for_the_objective() -> None:
    reducer = SeriesReducer(priority=["objective"], max_metrics=3)
    for name in ("a", "b", "c", "d"):
        reducer.add(Observation(name, 1.0))
    assert reducer.add(Observation("objective", 2.0))
    assert list(reducer.stats) == ["objective", "a", "b"]
    assert reducer.ignored == 2
