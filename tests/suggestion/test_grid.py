"""Grid search: in order, each point once, skipping the history, and ending with ``exhausted``."""

from __future__ import annotations

from typing import Any

import pytest

from kubesweep.api.experiment import Algorithm, AlgorithmName
from kubesweep.api.suggestion_wire import ObservedTrial, SearchSpace, SuggestRequest, TrialState
from kubesweep.suggestion import registry
from kubesweep.suggestion.contract import SettingsError

GRID = {
    "parameters": [
        {"name": "opt", "type": "categorical", "values": ["adam", "sgd"]},
        {"name": "lr", "type": "float", "min": 0.1, "max": 0.3, "step": 0.1},
        {
            "name": "momentum",
            "type": "float",
            "min": 0.0,
            "max": 0.9,
            "step": 0.9,
            "when": {"parameter": "opt", "values": ["sgd"]},
        },
    ]
}


def ask(trials: list[ObservedTrial], count: int, **settings: Any) -> Any:
    return registry.suggest(
        SuggestRequest(
            space=SearchSpace.model_validate(GRID),
            algorithm=Algorithm(name=AlgorithmName.GRID, settings=settings),
            trials=trials,
            count=count,
        )
    )


def trial(i: int, parameters: dict[str, Any], state: TrialState) -> ObservedTrial:
    return ObservedTrial(name=f"t{i}", parameters=parameters, state=state)


def test_walks_the_conditional_grid_in_order() -> None:
    reply = ask([], 100)
    points = [a.parameters for a in reply.assignments]
    assert reply.exhausted
    assert len(points) == 3 + 3 * 2
    assert points[0] == {"opt": "adam", "lr": 0.1}
    assert points[3] == {"opt": "sgd", "lr": 0.1, "momentum": 0.0}
    assert points[-1] == {"opt": "sgd", "lr": 0.3, "momentum": 0.9}


def test_skips_every_point_in_the_history_whatever_its_state() -> None:
    first = ask([], 4).assignments
    history = [
        trial(i, a.parameters, state)
        for i, (a, state) in enumerate(
            zip(
                first,
                [TrialState.PENDING, TrialState.FAILED, TrialState.COMPLETED, TrialState.STOPPED],
                strict=True,
            )
        )
    ]
    reply = ask(history, 2)
    assert not reply.exhausted
    assert [a.parameters for a in reply.assignments] == [
        a.parameters for a in ask([], 6).assignments[4:]
    ]


def test_foreign_trials_count_whatever_their_representation() -> None:
    history = [
        trial(0, {"opt": "adam", "lr": 0.1 + 0.2 - 0.2, "momentum": 0.5}, TrialState.COMPLETED)
    ]
    reply = ask(history, 1)
    assert reply.assignments[0].parameters == {"opt": "adam", "lr": 0.2}


def test_reports_exhaustion_with_the_last_points_and_then_empty() -> None:
    everything = ask([], 9)
    assert everything.exhausted
    assert len(everything.assignments) == 9
    history = [
        trial(i, a.parameters, TrialState.COMPLETED) for i, a in enumerate(everything.assignments)
    ]
    after = ask(history, 3)
    assert after.exhausted
    assert after.assignments == []
    assert not ask([], 8).exhausted


def test_floats_without_step_use_default_points() -> None:
    space = {"parameters": [{"name": "x", "type": "float", "min": 1, "max": 100, "log": True}]}
    reply = registry.suggest(
        SuggestRequest(
            space=SearchSpace.model_validate(space),
            algorithm=Algorithm(name=AlgorithmName.GRID, settings={"defaultPoints": 3}),
            count=10,
        )
    )
    assert [a.parameters["x"] for a in reply.assignments] == pytest.approx([1, 10, 100])


@pytest.mark.parametrize("value", [1, 1.5, "many", True])
def test_invalid_default_points_are_refused_by_name(value: Any) -> None:
    with pytest.raises(SettingsError, match="defaultPoints"):
        ask([], 1, defaultPoints=value)
