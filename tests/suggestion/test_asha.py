"""ASHA: promote the top 1/eta of a rung as soon as it exists, else start a new configuration."""

from __future__ import annotations

from typing import Any

import pytest

from kubesweep.api.experiment import Algorithm, AlgorithmName, ParameterValue
from kubesweep.api.status import CurvePoint
from kubesweep.api.suggestion_wire import (
    ObservedTrial,
    SearchSpace,
    StopRequest,
    SuggestReply,
    SuggestRequest,
    TrialState,
)
from kubesweep.suggestion import registry
from kubesweep.suggestion.contract import SettingsError

RAW: dict[str, Any] = {
    "parameters": [{"name": "x", "type": "float", "min": 0, "max": 1}],
    "fidelity": {"parameter": "epochs", "min": 1, "max": 27, "eta": 3},
}


def algorithm(**settings: ParameterValue) -> Algorithm:
    return Algorithm(name=AlgorithmName.ASHA, seed=5, settings=settings)


def ask(trials: list[ObservedTrial], count: int, **settings: ParameterValue) -> SuggestReply:
    return registry.suggest(
        SuggestRequest(
            space=SearchSpace.model_validate(RAW),
            algorithm=algorithm(**settings),
            trials=trials,
            count=count,
        )
    )


def done(
    name: str, x: float, fidelity: float, value: float, tags: dict[str, str] | None = None
) -> ObservedTrial:
    return ObservedTrial(
        name=name,
        parameters={"x": x},
        fidelity=fidelity,
        state=TrialState.COMPLETED,
        value=value,
        tags=tags if tags is not None else {"rung": str([1.0, 3.0, 9.0, 27.0].index(fidelity))},
    )


def test_starts_new_configurations_at_the_bottom_rung() -> None:
    reply = ask([], 3)
    assert [(a.fidelity, a.tags) for a in reply.assignments] == [(1.0, {"rung": "0"})] * 3


def test_promotes_the_best_third_as_soon_as_a_rung_has_eta_results() -> None:
    trials = [done("a", 0.1, 1, 3.0), done("b", 0.2, 1, 1.0)]
    assert all("parent" not in a.tags for a in ask(trials, 2).assignments)
    trials.append(done("c", 0.3, 1, 2.0))
    reply = ask(trials, 2)
    first, second = reply.assignments
    assert first.parameters == {"x": 0.2}
    assert first.fidelity == 3.0
    assert first.tags == {"rung": "1", "parent": "b"}
    assert first.parent == "b"
    assert second.fidelity == 1.0
    assert second.parent is None


def test_a_promoted_configuration_is_not_promoted_again() -> None:
    trials = [done("a", 0.1, 1, 3.0), done("b", 0.2, 1, 1.0), done("c", 0.3, 1, 2.0)]
    running = ObservedTrial(
        name="b1", parameters={"x": 0.2}, fidelity=3, state=TrialState.PENDING, tags={"rung": "1"}
    )
    reply = ask([*trials, running], 2)
    assert all(a.fidelity == 1.0 for a in reply.assignments)


def test_higher_rungs_are_served_first() -> None:
    bottom = [done(f"a{i}", i / 10, 1, float(i)) for i in range(3)]
    middle = [done(f"b{i}", i / 10 + 0.05, 3, float(i)) for i in range(3)]
    reply = ask(bottom + middle, 2)
    assert [a.fidelity for a in reply.assignments] == [9.0, 3.0]
    assert reply.assignments[0].tags["parent"] == "b0"


def test_trials_from_elsewhere_are_placed_by_fidelity() -> None:
    trials = [done(f"f{i}", i / 10, 1, float(i), tags={}) for i in range(3)]
    reply = ask(trials, 1)
    assert reply.assignments[0].tags == {"rung": "1", "parent": "f0"}


def test_early_stopping_rate_skips_bottom_rungs() -> None:
    reply = ask([], 1, earlyStoppingRate=1)
    assert reply.assignments[0].fidelity == 3.0
    with pytest.raises(SettingsError, match="earlyStoppingRate"):
        ask([], 1, earlyStoppingRate=4)


def curve_trial(name: str, state: TrialState, values: list[float]) -> ObservedTrial:
    return ObservedTrial(
        name=name,
        parameters={"x": 0.5},
        fidelity=27,
        state=state,
        value=values[-1] if state is TrialState.COMPLETED else None,
        intermediate=[CurvePoint(step=i + 1, value=v) for i, v in enumerate(values)],
    )


def stop_names(trials: list[ObservedTrial], mode: str, direction: str = "minimize") -> list[str]:
    reply = registry.stop(
        StopRequest.model_validate(
            {
                "space": RAW,
                "direction": direction,
                "algorithm": algorithm(mode=mode).to_wire(),
                "trials": [t.to_wire() for t in trials],
            }
        )
    )
    return [d.name for d in reply.stop]


def test_stopping_mode_runs_new_trials_to_the_top_budget() -> None:
    reply = ask([], 2, mode="stopping")
    assert [a.fidelity for a in reply.assignments] == [27.0, 27.0]


def test_stopping_mode_stops_trials_outside_the_top_third_of_their_rung() -> None:
    history = [curve_trial(f"c{i}", TrialState.COMPLETED, [float(i + 1)] * 27) for i in range(5)]
    loser = curve_trial("loser", TrialState.PENDING, [4.0, 4.0])
    winner = curve_trial("winner", TrialState.PENDING, [0.5, 0.5, 0.5, 0.5])
    early = curve_trial("early", TrialState.PENDING, [])
    trials = [*history, loser, winner, early]
    assert stop_names(trials, "stopping") == ["loser"]
    assert stop_names(trials, "promotion") == []
    # Maximising: large values win, so the 0.5 curve is now the loser.
    assert "winner" in stop_names(trials, "stopping", direction="maximize")


def test_float_fidelities_stay_floats_within_bounds() -> None:
    raw = {
        **RAW,
        "fidelity": {"parameter": "fraction", "min": 0.1, "max": 1.0, "eta": 2, "type": "float"},
    }
    for name in (AlgorithmName.ASHA, AlgorithmName.HYPERBAND):
        reply = registry.suggest(
            SuggestRequest(
                space=SearchSpace.model_validate(raw),
                algorithm=Algorithm(name=name, seed=1),
                count=40,
            )
        )
        fidelities = {a.fidelity for a in reply.assignments}
        assert fidelities <= {0.1, 0.2, 0.4, 1.0}
        assert 0.1 in fidelities
