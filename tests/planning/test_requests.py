"""The suggestion requests the operator builds: the service's models, states mapped once."""

from __future__ import annotations

from kubesweep.api import CurvePoint, TrialPhase, TrialStatus
from kubesweep.api.suggestion_wire import StopRequest, SuggestRequest, TrialState
from kubesweep.planning import TrialView, plan_experiment, stop_request, suggest_request
from tests.planning.builders import NOW, make_spec, trial


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
