"""Hyperband: the paper's bracket schedule, rebuilt from tags, at any parallelism."""

from __future__ import annotations

from typing import Any

from kubesweep.api.experiment import Algorithm, AlgorithmName
from kubesweep.api.suggestion_wire import (
    ObservedTrial,
    SearchSpace,
    SuggestReply,
    SuggestRequest,
    TrialState,
)
from kubesweep.suggestion import registry
from kubesweep.suggestion.algorithms.hyperband import Hyperband
from kubesweep.suggestion.space import Space

RAW: dict[str, Any] = {
    "parameters": [{"name": "x", "type": "float", "min": 0, "max": 1}],
    "fidelity": {"parameter": "epochs", "min": 1, "max": 27, "eta": 3},
}


def ask(trials: list[ObservedTrial], count: int, direction: str = "minimize") -> SuggestReply:
    return registry.suggest(
        SuggestRequest.model_validate(
            {
                "space": RAW,
                "direction": direction,
                "algorithm": Algorithm(name=AlgorithmName.HYPERBAND, seed=3).to_wire(),
                "trials": [t.to_wire() for t in trials],
                "count": count,
            }
        )
    )


def loss(x: float, fidelity: float) -> float:
    return (x - 0.3) ** 2 + 1.0 / fidelity


def extend(
    trials: list[ObservedTrial], reply: SuggestReply, state: TrialState = TrialState.COMPLETED
) -> None:
    for a in reply.assignments:
        x = a.parameters["x"]
        assert isinstance(x, float)
        assert a.fidelity is not None
        value = loss(x, a.fidelity) if state is TrialState.COMPLETED else None
        trials.append(
            ObservedTrial(
                name=f"t{len(trials)}",
                parameters=a.parameters,
                fidelity=a.fidelity,
                state=state,
                value=value,
                tags=a.tags,
            )
        )


def test_bracket_schedule_follows_the_paper() -> None:
    hb = Hyperband(Space(SearchSpace.model_validate(RAW)), seed=0)
    plans = [hb.plan(i) for i in range(5)]
    assert [p.sizes for p in plans[:4]] == [(27, 9, 3, 1), (12, 4, 1), (6, 2), (4,)]
    assert [p.budgets for p in plans[:4]] == [(1, 3, 9, 27), (3, 9, 27), (9, 27), (27,)]
    assert plans[4].sizes == plans[0].sizes


def test_one_slot_at_a_time_fills_a_rung_then_promotes_its_best_third() -> None:
    trials: list[ObservedTrial] = []
    for _ in range(27):
        extend(trials, ask(trials, 1))
    assert {t.fidelity for t in trials} == {1.0}
    assert {t.tags["bracket"] for t in trials} == {"0"}
    best = sorted(trials, key=lambda t: t.value or 0)[:9]
    promoted = ask(trials, 9).assignments
    assert all(a.fidelity == 3.0 and a.tags["rung"] == "1" for a in promoted)
    assert [a.tags["parent"] for a in promoted] == [t.name for t in best]
    assert [a.parent for a in promoted] == [t.name for t in best]
    assert [a.parameters for a in promoted] == [t.parameters for t in best]


def test_parallel_slots_start_the_next_bracket_instead_of_waiting() -> None:
    reply = ask([], 30)
    assert len(reply.assignments) == 30
    assert [a.tags["bracket"] for a in reply.assignments] == ["0"] * 27 + ["1"] * 3
    assert {a.fidelity for a in reply.assignments[27:]} == {3.0}


def test_a_pending_trial_holds_back_only_its_own_bracket() -> None:
    trials: list[ObservedTrial] = []
    extend(trials, ask(trials, 26))
    extend(trials, ask(trials, 1), state=TrialState.PENDING)
    reply = ask(trials, 2)
    assert [a.tags["bracket"] for a in reply.assignments] == ["1", "1"]
    assert all("parent" not in a.tags for a in reply.assignments)


def test_promotions_are_not_repeated_while_pending() -> None:
    trials: list[ObservedTrial] = []
    extend(trials, ask(trials, 27))
    extend(trials, ask(trials, 5), state=TrialState.PENDING)
    reply = ask(trials, 6)
    parents = [a.tags.get("parent") for a in reply.assignments]
    assert len([p for p in parents if p]) == 4  # the rest of the top nine
    assert len({p for p in parents if p}) == 4
    assert all(a.tags["bracket"] == "1" for a in reply.assignments[4:])


def test_failed_trials_drop_out_of_the_ranking() -> None:
    trials: list[ObservedTrial] = []
    extend(trials, ask(trials, 27))
    trials = [
        t.model_copy(update={"state": TrialState.FAILED, "value": None}) if i < 20 else t
        for i, t in enumerate(trials)
    ]
    reply = ask(trials, 9)
    parents = {a.tags.get("parent") for a in reply.assignments}
    assert parents >= {f"t{i}" for i in range(20, 27)}
    assert len([a for a in reply.assignments if "parent" in a.tags]) == 7
    assert all(a.tags["bracket"] == "1" for a in reply.assignments[7:])


def test_maximising_promotes_the_largest_values() -> None:
    trials: list[ObservedTrial] = []
    extend(trials, ask(trials, 27, "maximize"))
    worst = sorted(trials, key=lambda t: t.value or 0, reverse=True)[:9]
    reply = ask(trials, 9, "maximize")
    assert {a.tags["parent"] for a in reply.assignments} == {t.name for t in worst}


def test_a_sweep_runs_its_best_configurations_at_the_full_budget() -> None:
    trials: list[ObservedTrial] = []
    for _ in range(12):
        extend(trials, ask(trials, 8))
    top = [t for t in trials if t.fidelity == 27.0]
    assert top, "the first bracket reaches its top rung"
    best = min(top, key=lambda t: t.value or 0)
    x = best.parameters["x"]
    assert isinstance(x, float)
    assert abs(x - 0.3) < 0.1
    # Every promotion's parent lies in the rung below, in the same bracket.
    by_name = {t.name: t for t in trials}
    for t in trials:
        if "parent" in t.tags:
            parent = by_name[t.tags["parent"]]
            assert parent.tags["bracket"] == t.tags["bracket"]
            assert int(parent.tags["rung"]) + 1 == int(t.tags["rung"])
            assert parent.parameters == t.parameters


def test_trials_holding_values_outside_the_space_are_never_promoted() -> None:
    trials: list[ObservedTrial] = []
    extend(trials, ask(trials, 27))
    trials[0] = trials[0].model_copy(update={"parameters": {"x": 7.0}, "value": -100.0})
    reply = ask(trials, 9)
    assert all(a.tags.get("parent") != "t0" for a in reply.assignments)
    assert len([a for a in reply.assignments if "parent" in a.tags]) == 9
