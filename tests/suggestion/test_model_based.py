"""What the model-based algorithms (bayesian, tpe, bohb) read from a history.

A history may hold trials from elsewhere: a warm start, or a sweep whose bounds
were since changed. A value outside the current space is not known in it, so
it must never be moved into the space (clipped to a bound) and count as
evidence there. A trial may also lack parameters; what it has is still evidence.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kubesweep.api.experiment import Direction
from kubesweep.api.suggestion_wire import ObservedTrial, SearchSpace, TrialState
from kubesweep.suggestion.algorithms._model_based import observe
from kubesweep.suggestion.algorithms._unitcube import UnitCube
from kubesweep.suggestion.contract import History
from kubesweep.suggestion.space import Space

NARROWED: dict[str, Any] = {
    "parameters": [
        {"name": "x", "type": "float", "min": 20.0, "max": 30.0},
        {"name": "n", "type": "int", "min": 20, "max": 30},
        {"name": "s", "type": "float", "min": 0.0, "max": 1.0, "step": 0.25},
        {"name": "lr", "type": "float", "min": 1e-3, "max": 1.0, "log": True},
        {"name": "k", "type": "int", "min": 16, "max": 256, "log": True, "step": 16},
    ]
}


def _space(raw: dict[str, Any]) -> Space:
    return Space(SearchSpace.model_validate(raw))


def _completed(i: int, parameters: dict[str, Any], value: float) -> ObservedTrial:
    return ObservedTrial(
        name=f"t{i}", parameters=parameters, state=TrialState.COMPLETED, value=value
    )


INSIDE = {"x": 20.0, "n": 30, "s": 1.0, "lr": 1e-3, "k": 256}
#: Each value just outside its bounds, in a way a clip would have hidden.
OUTSIDE = {"x": 19.0, "n": 19, "s": 1.25, "lr": 9e-4, "k": 272}


def test_values_outside_the_bounds_encode_as_unknown_not_at_the_bound() -> None:
    space = _space(NARROWED)
    cube = UnitCube(space)
    for name in space.names:
        values = dict(INSIDE, **{name: OUTSIDE[name]})
        for row in (cube.encode([values])[0], space.to_unit(values)):
            known = {n for n, u in zip(space.names, row, strict=True) if not math.isnan(u)}
            assert known == set(space.names) - {name}, (name, row)


def test_values_at_the_bounds_and_float_noise_beyond_them_stay_known() -> None:
    space = _space(NARROWED)
    cube = UnitCube(space)
    noisy = {"x": 30.000000000000004, "n": 20, "s": 0.7500000000000001, "lr": 1.0000000000000002}
    for values in (INSIDE, dict(INSIDE, **noisy)):
        assert not np.isnan(cube.encode([values])).any(), values
        assert not np.isnan(space.to_unit(values)).any(), values
    assert cube.decode(cube.snap(cube.encode([dict(INSIDE, **noisy)]))[0]) == dict(
        INSIDE, x=30.0, n=20, s=0.75, lr=1.0
    )


def test_a_history_outside_the_bounds_is_no_observation() -> None:
    cube = UnitCube(_space(NARROWED))
    history = History([_completed(i, OUTSIDE, -1.0 - i) for i in range(12)], Direction.MINIMIZE)
    observations = observe(cube, history)
    assert len(observations.losses) == 0
    assert observations.unit.shape == (0, cube.dim)
    assert observations.used == set()


def test_a_trial_lacking_some_values_is_still_observed() -> None:
    # Parameters a trial does not have (a warm start from a smaller space, or a
    # program that reads units_i only for i < n_layers) are unknown coordinates;
    # the rest of the trial is evidence. A trial with nothing known adds nothing.
    space = _space(NARROWED)
    cube = UnitCube(space)
    partial: list[dict[str, Any]] = [{"x": 25.0}, {"n": 25, "k": 64}, dict(OUTSIDE, lr=0.1)]
    history = History(
        [
            _completed(0, INSIDE, 1.0),
            *(_completed(i + 1, p, 2.0 + i) for i, p in enumerate(partial)),
            _completed(4, OUTSIDE, 5.0),
            _completed(5, {}, 6.0),
            ObservedTrial(name="p", parameters={"x": 21.0}, state=TrialState.PENDING),
        ],
        Direction.MINIMIZE,
    )
    observations = observe(cube, history)
    assert observations.losses.tolist() == [1.0, 2.0, 3.0, 4.0]
    known = [
        {n for n, u in zip(space.names, row, strict=True) if not math.isnan(u)}
        for row in observations.unit
    ]
    assert known == [set(space.names), {"x"}, {"n", "k"}, {"lr"}]
    assert len(observations.pending) == 1
    # Only complete points are taken: a partial one names no configuration.
    assert len(observations.used) == 1
