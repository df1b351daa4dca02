"""Sobol' and random search: seeded, and Sobol' continues its sequence across calls."""

from __future__ import annotations

from typing import Any

import numpy as np

from kubesweep.api.experiment import Algorithm, AlgorithmName
from kubesweep.api.suggestion_wire import (
    ObservedTrial,
    SearchSpace,
    SuggestReply,
    SuggestRequest,
    TrialState,
)
from kubesweep.suggestion import registry

RAW: dict[str, Any] = {
    "parameters": [
        {"name": "x", "type": "float", "min": 0, "max": 1},
        {"name": "y", "type": "float", "min": 0, "max": 1},
    ]
}


def ask(name: AlgorithmName, trials: list[ObservedTrial], count: int) -> SuggestReply:
    return registry.suggest(
        SuggestRequest(
            space=SearchSpace.model_validate(RAW),
            algorithm=Algorithm(name=name, seed=11),
            trials=trials,
            count=count,
        )
    )


def as_trials(reply: SuggestReply) -> list[ObservedTrial]:
    return [
        ObservedTrial(name=f"t{i}", parameters=a.parameters, state=TrialState.PENDING)
        for i, a in enumerate(reply.assignments)
    ]


def test_successive_calls_continue_one_sequence() -> None:
    whole = ask(AlgorithmName.SOBOL, [], 8).assignments
    first = ask(AlgorithmName.SOBOL, [], 4)
    second = ask(AlgorithmName.SOBOL, as_trials(first), 4)
    assert first.assignments + second.assignments == whole


def test_sobol_points_are_balanced() -> None:
    points = np.array(
        [
            [a.parameters["x"], a.parameters["y"]]
            for a in ask(AlgorithmName.SOBOL, [], 64).assignments
        ]
    )
    # A scrambled Sobol' net puts exactly 16 of 64 points in each quadrant.
    quadrants = np.bincount((points[:, 0] > 0.5) * 2 + (points[:, 1] > 0.5), minlength=4)
    assert list(quadrants) == [16, 16, 16, 16]


def test_random_calls_differ_as_the_history_grows() -> None:
    first = ask(AlgorithmName.RANDOM, [], 4)
    second = ask(AlgorithmName.RANDOM, as_trials(first), 4)
    assert not {str(a.parameters) for a in first.assignments} & {
        str(a.parameters) for a in second.assignments
    }
