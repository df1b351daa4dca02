"""Constraints and several objectives as the algorithms see them.

Infeasible trials rank after every feasible one (by how far they missed), so
model-based search prefers the feasible region; several objectives are loss
vectors; algorithms that search one objective refuse several, naming the field.
"""

from __future__ import annotations

import pytest

from kubesweep.api.experiment import Algorithm, AlgorithmName, Direction, ParameterValue
from kubesweep.api.suggestion_wire import ObservedTrial, SuggestRequest, TrialState
from kubesweep.suggestion import registry
from kubesweep.suggestion.contract import History, penalised_losses
from kubesweep.suggestion.space import SpaceError
from tests.suggestion.multi_objective import sweep, two_numbers

MIN, MAX = Direction.MINIMIZE, Direction.MAXIMIZE


def done(
    name: str, value: float, feasible: bool | None = None, violation: float | None = None
) -> ObservedTrial:
    return ObservedTrial(
        name=name,
        parameters={"x0": 0.5, "x1": 0.5},
        state=TrialState.COMPLETED,
        value=value,
        feasible=feasible,
        violation=violation,
    )


def test_infeasible_losses_rank_after_feasible_ones_by_violation() -> None:
    trials = [
        done("a", 3.0, True, 0.0),
        done("b", 1.0, True, 0.0),
        done("c", -5.0, False, 1.0),  # the best value, but infeasible
        done("d", 0.0, False, 3.0),
        done("e", 2.0, False, None),  # a constrained metric missing
    ]
    losses = penalised_losses(trials, MIN)
    ranked = sorted(trials, key=lambda t: losses[id(t)] or 0.0)
    assert [t.name for t in ranked] == ["b", "a", "c", "d", "e"]
    # worst feasible 3, span 8: c = 3 + 8 * 1.5, d = 3 + 8 * 1.75, e = 3 + 8 * 2
    assert [losses[id(t)] for t in trials[2:]] == [15.0, 17.0, 19.0]


def test_without_infeasible_trials_losses_are_plain() -> None:
    trials = [done("a", 3.0, True, 0.0), done("b", 1.0)]
    assert list(penalised_losses(trials, MAX).values()) == [-3.0, -1.0]


def test_several_objectives_read_as_losses_per_direction() -> None:
    trial = done("a", 1.0).model_copy(update={"values": [1.0, 2.0]})
    assert History([trial], MIN, [MIN, MAX]).losses(trial) == (1.0, -2.0)
    assert History([trial], MIN).losses(trial) == (1.0,)
    lacking = done("b", 1.0)
    assert History([lacking], MIN, [MIN, MAX]).losses(lacking) is None


def _feasible_share(name: AlgorithmName, constrained: bool, seed: int) -> float:
    # f = x0 is best at 0; only x0 >= 0.5 is feasible.
    def score(p: dict[str, ParameterValue]) -> tuple[list[float], float]:
        x0 = float(p["x0"])
        return [x0 + 0.1 * float(p["x1"])], max(0.0, 0.5 - x0)

    trials = sweep(name, score, [MIN], 40, seed, constrained=constrained)
    late = trials[20:]
    return sum(float(t.parameters["x0"]) >= 0.5 for t in late) / len(late)


@pytest.mark.parametrize("name", [AlgorithmName.TPE, AlgorithmName.BAYESIAN])
def test_model_based_search_prefers_the_feasible_region(name: AlgorithmName) -> None:
    constrained = _feasible_share(name, constrained=True, seed=1)
    blind = _feasible_share(name, constrained=False, seed=1)
    assert constrained >= 0.5
    assert blind <= 0.3
    assert constrained - blind >= 0.3


@pytest.mark.parametrize("name", [AlgorithmName.BAYESIAN, AlgorithmName.CMAES])
def test_single_objective_algorithms_refuse_several_naming_objectives(
    name: AlgorithmName,
) -> None:
    request = SuggestRequest(
        space=two_numbers(), objectives=[MIN, MIN], algorithm=Algorithm(name=name)
    )
    with pytest.raises(SpaceError) as caught:
        registry.suggest(request)
    assert caught.value.problems[0].startswith(f"objectives: algorithm {name.value} searches")
