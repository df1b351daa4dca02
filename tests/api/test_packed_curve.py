"""A packed curve reads, compares, validates and serializes as the list of points it packs."""

from __future__ import annotations

import json
import math

import pytest

from kubesweep.api import CurvePoint, PackedCurve, TrialStatus
from kubesweep.api.suggestion_wire import ObservedTrial, TrialState

POINTS = [CurvePoint(step=s, value=1.0 / (s + 1)) for s in range(7)] + [
    CurvePoint(step=300, value=float("nan")),
    CurvePoint(step=2**40, value=float("inf")),
]


def test_it_reads_as_its_points() -> None:
    packed = PackedCurve(POINTS)
    assert len(packed) == len(POINTS)
    assert packed[0] == POINTS[0]
    assert packed[-1] == POINTS[-1]
    assert packed[2:5] == POINTS[2:5]
    assert [p.step for p in packed] == [p.step for p in POINTS]
    assert not PackedCurve([])


def test_it_equals_any_sequence_of_equal_points_and_nothing_else() -> None:
    finite = POINTS[:7]
    packed = PackedCurve(finite)
    assert packed == finite
    assert finite == packed  # a list compared with it asks it
    assert packed == tuple(finite)
    assert packed == PackedCurve(finite)
    assert packed != finite[:-1]
    assert packed != [*finite[:-1], CurvePoint(step=6, value=0.0)]
    assert packed != "not a curve"
    with pytest.raises(TypeError):
        hash(packed)


def test_a_step_beyond_64_bits_is_refused() -> None:
    with pytest.raises(OverflowError):
        PackedCurve([CurvePoint(step=2**70, value=1.0)])


def test_models_keep_it_as_it_is_and_write_it_as_the_list() -> None:
    packed = PackedCurve(POINTS)
    status = TrialStatus(curve=packed)
    assert status.curve is packed
    listed = TrialStatus(curve=POINTS)
    assert isinstance(listed.curve, list)
    assert json.dumps(status.to_wire()) == json.dumps(listed.to_wire())
    assert status.model_copy(update={"objective": 1.0}).curve is packed

    observed = ObservedTrial(
        name="t", parameters={}, state=TrialState.COMPLETED, intermediate=packed
    )
    assert observed.intermediate is packed
    wire = observed.to_wire()["intermediate"]
    assert wire[3] == {"step": 3, "value": 0.25}
    assert math.isnan(wire[7]["value"])
    # the service reads it back as the points it packed
    read = ObservedTrial.model_validate_json(json.dumps(observed.to_wire()))
    assert read.intermediate[:7] == POINTS[:7]


def test_a_list_from_the_wire_is_still_validated() -> None:
    with pytest.raises(ValueError, match="value"):
        TrialStatus.model_validate({"curve": [{"step": 1}]})
