"""The intake batch and the termination-message summary: round trips, validation, size."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesweep.metrics import (
    Batch,
    Observation,
    SeriesReducer,
    Summary,
    WireError,
    decode_batch,
    decode_summary,
    encode_batch,
    encode_summary,
)
from kubesweep.metrics.wire import MAX_BATCH_OBSERVATIONS, split_observations


def _summary(metrics: int = 3, points: int = 500, name_length: int = 10) -> Summary:
    reducer = SeriesReducer(priority=["objective"], best={"objective": "min"})
    for step in range(points):
        reducer.add(Observation("objective", 1.0 / (step + 1) + step % 7 * 1e-3, step))
        for index in range(metrics - 1):
            reducer.add(Observation(f"m{index}".ljust(name_length, "x"), step * 0.1, step))
    return Summary.of(reducer, "objective", dropped=4)


def test_batch_round_trip() -> None:
    batch = Batch(
        trial="t-1",
        namespace="ns",
        uid="u-1",
        observations=(Observation("loss", 0.5, 3, 10.5), Observation("acc", 1.0)),
        final=True,
        seq=9,
        boot="abc",
        dropped=2,
        summary=_summary(points=5),
    )
    assert decode_batch(encode_batch(batch)) == batch


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "expected an object"),
        (b'{"trial": "t", "namespace": "n"}', "uid"),
        (b'{"trial": "t", "namespace": "n", "uid": "u", "v": 2}', "version"),
        (
            b'{"trial":"t","namespace":"n","uid":"u","observations":[{"name":"x","value":NaN}]}',
            "finite",
        ),
        (
            b'{"trial":"t","namespace":"n","uid":"u","observations":[{"name":"","value":1}]}',
            "name",
        ),
        (
            b'{"trial":"t","namespace":"n","uid":"u","observations":[{"name":"x","value":true}]}',
            "number",
        ),
        (b'{"trial":"t","namespace":"n","uid":"u","seq":-1}', "seq"),
        (b'{"trial":"t","namespace":"n","uid":"u","final":"yes"}', "final"),
    ],
)
def test_bad_batches_are_refused_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        decode_batch(body)


def test_batches_are_bounded() -> None:
    observations = [Observation("m", 1.0)] * (MAX_BATCH_OBSERVATIONS * 2 + 1)
    chunks = split_observations(observations)
    assert [len(c) for c in chunks] == [MAX_BATCH_OBSERVATIONS, MAX_BATCH_OBSERVATIONS, 1]
    too_many = {
        "trial": "t",
        "namespace": "n",
        "uid": "u",
        "observations": [{"name": "m", "value": 1}] * (MAX_BATCH_OBSERVATIONS + 1),
    }
    with pytest.raises(WireError, match="more than"):
        decode_batch(json.dumps(too_many))


@given(st.binary(max_size=200))
def test_garbage_batches_raise_only_wire_errors(body: bytes) -> None:
    with contextlib.suppress(WireError):
        decode_batch(body)


def test_summary_round_trip_when_it_fits() -> None:
    summary = _summary(points=50)
    text = encode_summary(summary)
    assert len(text) <= 4096
    assert decode_summary(text) == summary


@pytest.mark.parametrize("limit", [4096, 1024, 400])
@pytest.mark.parametrize(("metrics", "name_length"), [(33, 128), (10, 20), (1, 128)])
def test_summary_always_fits_keeping_the_objective(
    limit: int, metrics: int, name_length: int
) -> None:
    summary = _summary(metrics=metrics, name_length=name_length)
    text = encode_summary(summary, limit)
    assert len(text.encode()) <= limit
    decoded = decode_summary(text)
    assert decoded.metrics[0] == summary.metrics[0]
    assert decoded.observed == summary.observed
    if decoded != summary:
        assert decoded.truncated
    if decoded.curve:
        values = [v for _, v in decoded.curve]
        assert min(values) == summary.metrics[0].min
        assert decoded.curve[0] == summary.curve[0]
        assert decoded.curve[-1] == summary.curve[-1]


def test_summary_for_a_tiny_limit_is_still_json() -> None:
    text = encode_summary(_summary(metrics=33, name_length=128), 120)
    assert decode_summary(text).truncated
