"""NSGA-II: the crowded, constrained order of the elite, and search that finds the front."""

from __future__ import annotations

import math
from statistics import median

import numpy as np
import pytest

from kubesweep.api.experiment import AlgorithmName, Direction, ParameterValue
from kubesweep.api.suggestion_wire import ObservedTrial
from kubesweep.suggestion.algorithms._pareto import hypervolume
from kubesweep.suggestion.algorithms.nsga2 import elite_order
from kubesweep.suggestion.contract import History
from tests.suggestion.multi_objective import sweep

MIN = Direction.MINIMIZE


def zdt1(p: dict[str, ParameterValue]) -> tuple[list[float], float]:
    """ZDT1 in two variables: the front is f1 = x0, f2 = 1 - sqrt(x0), at x1 = 0."""
    x0, x1 = float(p["x0"]), float(p["x1"])
    g = 1.0 + 9.0 * x1
    return [x0, g * (1.0 - math.sqrt(x0 / g))], 0.0


def front_hypervolume(trials: list[ObservedTrial]) -> float:
    history = History(trials, MIN, [MIN, MIN])
    losses = [v for t in trials if (v := history.losses(t)) is not None and t.feasible is not False]
    return hypervolume(losses, [1.1, 11.0])


def test_the_elite_is_feasible_by_rank_and_crowding_then_infeasible_by_violation() -> None:
    losses = np.array(
        [
            [3.0, 3.0],  # 0 rank 1
            [1.0, 4.0],  # 1 rank 0, extreme
            [2.0, 2.0],  # 2 rank 0, middle
            [4.0, 1.0],  # 3 rank 0, extreme
            [0.0, 0.0],  # 4 would dominate all, but infeasible by 5
            [0.5, 0.5],  # 5 infeasible by 1
        ]
    )
    order = elite_order(losses, [True] * 4 + [False] * 2, [0, 0, 0, 0, 5.0, 1.0])
    assert order.tolist() == [1, 3, 2, 0, 5, 4]


@pytest.mark.parametrize("objectives", [1, 2, 3])
def test_an_elite_of_some_size_is_the_head_of_the_whole_order(objectives: int) -> None:
    rng = np.random.default_rng(objectives)
    losses = np.round(rng.random((300, objectives)), 1)  # ties within and across ranks
    feasible = (rng.random(300) < 0.8).tolist()
    violations = np.where(feasible, 0.0, rng.random(300)).tolist()
    whole = elite_order(losses, feasible, violations)
    assert sorted(whole.tolist()) == list(range(300))
    for size in (1, 20, 100, 240, 300):
        assert elite_order(losses, feasible, violations, size).tolist() == whole[:size].tolist()


@pytest.mark.slow
def test_nsga2_finds_a_better_zdt1_front_than_random_search() -> None:
    ours = [
        front_hypervolume(sweep(AlgorithmName.NSGA2, zdt1, [MIN, MIN], 100, s)) for s in range(5)
    ]
    baseline = [
        front_hypervolume(sweep(AlgorithmName.RANDOM, zdt1, [MIN, MIN], 100, s)) for s in range(5)
    ]
    assert median(ours) > median(baseline)


def test_nsga2_breeds_from_the_feasible_trials() -> None:
    # The best objectives lie at x0 = 0, but only x0 >= 0.6 is feasible.
    def score(p: dict[str, ParameterValue]) -> tuple[list[float], float]:
        x0, x1 = float(p["x0"]), float(p["x1"])
        return [x0, x1], max(0.0, 0.6 - x0)

    trials = sweep(AlgorithmName.NSGA2, score, [MIN, MIN], 80, seed=3, constrained=True)
    bred = trials[40:]
    feasible_share = sum(t.feasible is True for t in bred) / len(bred)
    assert feasible_share > 0.6  # uniform draws would be feasible 40% of the time
