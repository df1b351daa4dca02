"""The suggestion requests the operator builds: the service's models, states mapped once."""

from __future__ import annotations

from kubesweep.api import CurvePoint, Direction, TrialPhase, TrialStatus
from kubesweep.api.suggestion_wire import StopRequest, SuggestRequest, TrialState
from kubesweep.planning import TrialView, plan_experiment, stop_request, suggest_request
from tests.planning.builders import NOW, make_spec, reported, several_spec, trial


def test_suggest_request_validates_and_maps_states() -> None:
    trials = [
        trial(0, TrialPhase.SUCCEEDED, 0.5),
        trial(1, TrialPhase.RUNNING),
        trial(2, TrialPhase.FAILED),
        TrialView(
            name="exp-3",
            index=3,
            parameters={"lr": 0.05},
            status=TrialStatus(
                phase=TrialPhase.EARLY_STOPPED,
                objective=0.7,
                curve=[CurvePoint(step=1, value=0.7)],
            ),
        ),
    ]
    request = suggest_request(make_spec(), "uid-1", trials, 3)
    assert SuggestRequest.model_validate(request.to_wire()) == request
    assert request.count == 3
    assert request.experiment_uid == "uid-1"
    assert [t.state for t in request.trials] == [
        TrialState.COMPLETED,
        TrialState.PENDING,
        TrialState.FAILED,
        TrialState.STOPPED,
    ]
    assert request.trials[0].value == 0.5
    assert request.trials[3].intermediate[0].value == 0.7


def test_stop_request_carries_the_rule() -> None:
    spec = make_spec(extra={"earlyStopping": {"name": "median", "settings": {"minTrials": 2}}})
    request = stop_request(spec, None, [trial(0)])
    assert StopRequest.model_validate(request.to_wire()) == request
    assert request.early_stopping is not None
    assert request.early_stopping.settings == {"minTrials": 2}


def test_requests_carry_the_effective_seed_and_a_given_seed_wins() -> None:
    unseeded = make_spec(extra={"algorithm": {"name": "random"}})
    assert unseeded.algorithm.seed is None
    assert suggest_request(unseeded, None, [], 1, seed=42).algorithm.seed == 42
    assert stop_request(unseeded, None, [], seed=42).algorithm.seed == 42
    seeded = make_spec()
    assert seeded.algorithm.seed == 1
    assert suggest_request(seeded, None, [], 1, seed=42).algorithm.seed == 1
    assert stop_request(seeded, None, [], seed=42).algorithm.seed == 1


def test_the_recorded_seed_stays_in_status_when_a_plan_is_given_none() -> None:
    spec = make_spec(extra={"algorithm": {"name": "random"}})
    first = plan_experiment("exp", spec, [], NOW, seed=99)
    assert first.status.seed == 99
    assert first.status.to_wire()["seed"] == 99
    later = plan_experiment("exp", spec, [], NOW, previous=first.status)
    assert later.status.seed == 99
    assert not later.status_changed


def test_several_objectives_and_constraints_reach_the_request() -> None:
    spec = several_spec(constraints=[{"metric": "mem", "max": 100}])
    trials = [
        reported(0, f0=1.0, f1=2.0, mem=150),
        reported(1, f0=0.5, f1=3.0, mem=100),
        reported(2, f0=0.1),  # reported neither f1 nor mem
        reported(3, TrialPhase.RUNNING, f0=0.3, f1=0.3, mem=1),
    ]
    request = suggest_request(spec, "uid", trials, count=1)
    assert request.direction is Direction.MINIMIZE
    assert request.objectives == [Direction.MINIMIZE, Direction.MAXIMIZE]
    observed = {t.name: t for t in request.trials}
    assert (observed["exp-0"].values, observed["exp-0"].feasible) == ([1.0, 2.0], False)
    assert observed["exp-0"].violation == 50.0
    assert (observed["exp-1"].values, observed["exp-1"].feasible) == ([0.5, 3.0], True)
    assert observed["exp-1"].violation == 0.0
    assert (observed["exp-2"].values, observed["exp-2"].feasible) == (None, False)
    assert observed["exp-2"].violation is None
    running = observed["exp-3"]
    assert (running.values, running.feasible, running.violation) == (None, None, None)
    # what the operator sends, the service parses back to the same request
    assert SuggestRequest.model_validate(request.to_wire()) == request


def test_one_objective_without_constraints_sends_what_it_sent_before() -> None:
    request = suggest_request(make_spec(), "uid", [trial(0, TrialPhase.SUCCEEDED, 0.2)], count=1)
    wire = request.to_wire()
    assert "objectives" not in wire
    assert set(wire["trials"][0]) == {
        "name",
        "parameters",
        "state",
        "value",
        "intermediate",
        "tags",
    }
