"""Population Based Training: fill the population, then exploit and explore interval by interval."""

from __future__ import annotations

import math
from typing import Any

from kubesweep.api.experiment import Algorithm, AlgorithmName, Fidelity, ParameterValue
from kubesweep.api.suggestion_wire import (
    Assignment,
    ObservedTrial,
    SearchSpace,
    SuggestReply,
    SuggestRequest,
    TrialState,
)
from kubesweep.suggestion import registry
from kubesweep.suggestion.algorithms.pbt import interval_budgets

RAW: dict[str, Any] = {
    "parameters": [
        {"name": "lr", "type": "float", "min": 1e-4, "max": 1.0, "log": True},
        {"name": "width", "type": "int", "min": 1, "max": 64},
        {"name": "act", "type": "categorical", "values": ["relu", "tanh", "gelu"]},
    ],
    "fidelity": {"parameter": "epochs", "min": 2, "max": 8},
}


def ask(trials: list[ObservedTrial], count: int, **settings: ParameterValue) -> SuggestReply:
    return registry.suggest(
        SuggestRequest(
            space=SearchSpace.model_validate(RAW),
            algorithm=Algorithm(
                name=AlgorithmName.PBT, seed=3, settings={"populationSize": 4, **settings}
            ),
            trials=trials,
            count=count,
        )
    )


def loss(parameters: dict[str, ParameterValue], fidelity: float | None) -> float:
    """Smaller with a learning rate near 0.01 and more epochs."""
    lr = float(parameters["lr"])
    return (math.log10(lr) + 2.0) ** 2 + 1.0 / float(fidelity or 1.0)


def record(
    trials: list[ObservedTrial],
    assignment: Assignment,
    state: TrialState = TrialState.COMPLETED,
    value: float | None = None,
) -> ObservedTrial:
    if state is TrialState.COMPLETED and value is None:
        value = loss(assignment.parameters, assignment.fidelity)
    trial = ObservedTrial(
        name=f"t{len(trials)}",
        parameters=assignment.parameters,
        fidelity=assignment.fidelity,
        state=state,
        value=value,
        tags=assignment.tags,
    )
    trials.append(trial)
    return trial


def test_generations_train_interval_by_interval_up_to_the_end() -> None:
    assert interval_budgets(Fidelity(parameter="e", min=2, max=7)) == [2.0, 4.0, 6.0, 7.0]
    assert interval_budgets(Fidelity(parameter="e", min=2, max=8)) == [2.0, 4.0, 6.0, 8.0]


def test_the_population_is_filled_first_at_the_first_interval() -> None:
    reply = ask([], 6)
    assert len(reply.assignments) == 4
    assert not reply.exhausted
    assert [a.tags for a in reply.assignments] == [
        {"member": str(i), "generation": "0"} for i in range(4)
    ]
    assert {a.fidelity for a in reply.assignments} == {2.0}
    assert all(a.parent is None for a in reply.assignments)


def test_the_bottom_copies_the_top_and_perturbs_while_the_rest_continue() -> None:
    trials: list[ObservedTrial] = []
    values = [0.1, 5.0, 1.0, 2.0]  # member 0 is the best, member 1 the worst
    for assignment, value in zip(ask([], 4).assignments, values, strict=True):
        record(trials, assignment, value=value)
    steps = {a.tags["member"]: a for a in ask(trials, 4).assignments}
    assert set(steps) == {"0", "1", "2", "3"}
    worst = steps["1"]
    assert worst.parent == "t0"
    assert worst.tags["exploited"] == "0"
    assert worst.perturbation is not None
    assert worst.perturbation.startswith("copied t0")
    assert worst.parameters != trials[0].parameters
    assert worst.fidelity == 4.0
    for member in ("0", "2", "3"):
        own = trials[int(member)]
        assert steps[member].parent == own.name
        assert steps[member].parameters == own.parameters
        assert steps[member].perturbation is None


def test_a_failed_trial_exploits_too() -> None:
    trials: list[ObservedTrial] = []
    first = ask([], 4).assignments
    for assignment, value in zip(first[:3], [0.1, 1.0, 2.0], strict=True):
        record(trials, assignment, value=value)
    record(trials, first[3], state=TrialState.FAILED)
    steps = {a.tags["member"]: a for a in ask(trials, 4).assignments}
    assert steps["3"].parent == "t0"


def test_nobody_runs_a_generation_ahead_of_a_member_still_behind() -> None:
    trials: list[ObservedTrial] = []
    first = ask([], 4).assignments
    for assignment in first[:3]:
        record(trials, assignment)
    record(trials, first[3], state=TrialState.PENDING)
    second = ask(trials, 4).assignments
    assert sorted(a.tags["member"] for a in second) == ["0", "1", "2"]
    for assignment in second:
        record(trials, assignment)
    reply = ask(trials, 4)
    assert reply.assignments == []
    assert not reply.exhausted  # a wait for member 3, not the end


def test_fewer_slots_than_members_end_with_exactly_the_planned_trials() -> None:
    trials: list[ObservedTrial] = []
    for _ in range(200):
        running = [i for i, t in enumerate(trials) if t.state is TrialState.PENDING]
        reply = ask(trials, 2 - len(running))
        for assignment in reply.assignments:
            record(trials, assignment, state=TrialState.PENDING)
        if reply.exhausted:
            break
        running = [i for i, t in enumerate(trials) if t.state is TrialState.PENDING]
        assert running, "pbt returned nothing while no trial ran"
        oldest = trials[running[0]]
        trials[running[0]] = oldest.model_copy(
            update={
                "state": TrialState.COMPLETED,
                "value": loss(oldest.parameters, oldest.fidelity),
            }
        )
    assert reply.exhausted
    assert len(trials) == 4 * 4  # population times intervals
    by_name = {t.name: t for t in trials}
    for trial in trials:
        parent = trial.tags.get("parent")
        generation = int(trial.tags["generation"])
        assert (parent is None) == (generation == 0)
        if parent is not None:
            assert by_name[parent].fidelity == (trial.fidelity or 0) - 2.0
    finals = [t for t in trials if t.fidelity == 8.0]
    assert sorted(t.tags["member"] for t in finals) == ["0", "1", "2", "3"]
