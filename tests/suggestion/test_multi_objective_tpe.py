"""tpe with several objectives: trials ordered by rank and hypervolume share, then TPE."""

from __future__ import annotations

from statistics import median

import pytest

from kubesweep.api.experiment import AlgorithmName, Direction
from kubesweep.api.suggestion_wire import ObservedTrial, TrialState
from kubesweep.suggestion.algorithms._pareto import scalarised
from kubesweep.suggestion.contract import History
from tests.suggestion.multi_objective import sweep
from tests.suggestion.test_nsga2 import front_hypervolume, zdt1

MIN, MAX = Direction.MINIMIZE, Direction.MAXIMIZE


def scored(name: str, values: list[float], feasible: bool | None = None) -> ObservedTrial:
    return ObservedTrial(
        name=name,
        parameters={"x0": 0.5},
        state=TrialState.COMPLETED,
        value=values[0],
        values=values,
        feasible=feasible,
        violation=None if feasible is None else (0.0 if feasible else 1.0),
    )


def test_scores_order_by_rank_then_by_share_of_the_ranks_hypervolume() -> None:
    # maximised second objective: (1,-3) (2,-2) (3,-1) as losses are a staircase, (3,-3) behind
    trials = [
        scored("a", [1.0, 3.0]),
        scored("b", [2.0, 2.0]),
        scored("c", [3.0, 1.0]),
        scored("d", [3.0, 3.0]),
        scored("e", [0.0, 1.0]),  # missing nothing, but a pending-like trial below
    ]
    trials[4] = trials[4].model_copy(update={"state": TrialState.PENDING})
    single = scalarised(History(trials, MIN, [MIN, MIN]))
    assert single.objectives is None
    # reference (3.2, 3.2): contributions a 0.2, b 1.0, c 0.2 -> shares 0.2, 1, 0.2
    values = [t.value for t in single.trials]
    assert values[:4] == pytest.approx([0.4, 0.0, 0.4, 1.0])
    assert values[4] is None


def test_infeasible_trials_do_not_push_feasible_ones_down_a_rank() -> None:
    trials = [scored("a", [1.0, 1.0], True), scored("b", [0.0, 0.0], False)]
    single = scalarised(History(trials, MIN, [MIN, MIN]))
    assert single.trials[0].value == 0.0  # on the feasible front, though b dominates it
    assert single.loss(single.trials[1]) > single.loss(single.trials[0])  # type: ignore[operator]


@pytest.mark.slow
def test_multi_objective_tpe_finds_a_better_zdt1_front_than_random_search() -> None:
    ours = [front_hypervolume(sweep(AlgorithmName.TPE, zdt1, [MIN, MIN], 60, s)) for s in range(5)]
    baseline = [
        front_hypervolume(sweep(AlgorithmName.RANDOM, zdt1, [MIN, MIN], 60, s)) for s in range(5)
    ]
    assert median(ours) > median(baseline)


def test_with_several_objectives_the_estimators_are_per_parameter_unless_set() -> None:
    def points(settings: dict[str, bool] | None) -> list[object]:
        history = sweep(AlgorithmName.TPE, zdt1, [MIN, MIN], 16, 3, settings=settings)
        return [t.parameters for t in history[10:]]  # past the Sobol design

    default = points(None)
    assert default == points({"multivariate": False})
    assert default != points({"multivariate": True})
