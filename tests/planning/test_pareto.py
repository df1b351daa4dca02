"""The Pareto front and feasibility: hand-checkable fronts, the cap's spread, the cost."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from kubesweep.api import Direction, TrialPhase
from kubesweep.planning.pareto import (
    FrontPoint,
    count_infeasible,
    crowding_distances,
    dominates,
    is_feasible,
    non_dominated,
    pareto_front,
    spread_subset,
)
from tests.planning.builders import reported, several_spec

MIN, MAX = Direction.MINIMIZE, Direction.MAXIMIZE


def point(index: int, *values: float) -> FrontPoint:
    return FrontPoint(f"exp-{index}", index, values)


def test_dominance_respects_each_direction() -> None:
    assert dominates((1.0, 5.0), (2.0, 4.0), (MIN, MAX))
    assert not dominates((1.0, 5.0), (2.0, 4.0), (MIN, MIN))
    assert not dominates((1.0, 4.0), (1.0, 4.0), (MIN, MAX))  # equal: neither
    assert dominates((1.0, 4.0), (1.0, 3.0), (MIN, MAX))  # equal on one, better on the other


def test_a_hand_checked_front_of_two_minimised_objectives() -> None:
    # (1,5) (2,3) (4,1) are a staircase; (3,4) is beaten by (2,3); (5,5) by all; (2,3) twice
    points = [
        point(0, 3, 4),
        point(1, 1, 5),
        point(2, 5, 5),
        point(3, 2, 3),
        point(4, 4, 1),
        point(5, 2, 3),
    ]
    assert [p.index for p in non_dominated(points, (MIN, MIN))] == [1, 3, 4, 5]


def test_a_front_of_three_objectives_matches_the_definition() -> None:
    rng = random.Random(3)
    points = [point(i, *(rng.randint(0, 6) for _ in range(3))) for i in range(120)]
    directions = (MIN, MAX, MIN)
    by_definition = [
        p.index
        for p in points
        if not any(dominates(q.values, p.values, directions) for q in points)
    ]
    assert [p.index for p in non_dominated(points, directions)] == by_definition


def test_crowding_gives_the_extremes_infinity_and_the_middle_its_gaps() -> None:
    points = [point(0, 0, 4), point(1, 1, 3), point(2, 3, 1), point(3, 4, 0)]
    # point 1: (3-0)/4 + (4-1)/4 = 1.5; point 2: (4-1)/4 + (3-0)/4 = 1.5
    assert crowding_distances(points) == [math.inf, 1.5, 1.5, math.inf]


def test_the_cap_keeps_the_extremes_and_drops_the_most_crowded_points() -> None:
    # A line from (0,10) to (10,0), with three points bunched near (5,5).
    xs = [0.0, 2.0, 4.9, 5.0, 5.1, 8.0, 10.0]
    points = [point(i, x, 10 - x) for i, x in enumerate(xs)]
    kept = spread_subset(points, 5)
    # 5.0 sits 0.2 wide (on both axes): dropped first; then 4.9 and 5.1 tie, the later goes
    assert [p.values[0] for p in kept] == [0.0, 2.0, 4.9, 8.0, 10.0]
    assert spread_subset(points, 2) == [points[0], points[-1]]


def test_the_front_holds_succeeded_feasible_trials_only_and_counts_the_whole_front() -> None:
    spec = several_spec(constraints=[{"metric": "mem", "max": 100}])
    trials = [
        reported(0, f0=1.0, f1=1.0, mem=50),
        reported(1, f0=0.5, f1=2.0, mem=150),  # would dominate 0 and 2, but infeasible
        reported(2, f0=2.0, f1=3.0, mem=100),  # on the bound: feasible
        reported(3, f0=0.1, f1=9.0),  # did not report mem: infeasible
        reported(4, TrialPhase.EARLY_STOPPED, f0=0.0, f1=9.0, mem=1),  # not succeeded
        reported(5, f0=3.0, f1=0.5, mem=10),  # dominated by 0 (min f0) and 2 (max f1)
        reported(6, TrialPhase.FAILED),
    ]
    front = pareto_front(spec, trials)
    assert [(p.name, p.values) for p in front.points] == [
        ("exp-0", (1.0, 1.0)),
        ("exp-2", (2.0, 3.0)),
    ]
    assert front.size == 2
    assert [is_feasible(spec, t) for t in trials[:4]] == [True, False, True, False]
    assert count_infeasible(spec, trials) == 2


def test_a_capped_front_records_its_full_size() -> None:
    spec = several_spec(("minimize", "minimize"))
    trials = [reported(i, f0=float(i), f1=float(50 - i)) for i in range(50)]
    front = pareto_front(spec, trials, cap=8)
    assert front.size == 50
    assert len(front.points) == 8
    assert {p.index for p in front.points} >= {0, 49}


def test_without_constraints_nothing_is_infeasible() -> None:
    spec = several_spec()
    assert count_infeasible(spec, [reported(0, f0=1.0, f1=2.0)]) == 0


@pytest.mark.parametrize("directions", list(itertools.product((MIN, MAX), repeat=2)))
def test_the_sorted_front_equals_the_quadratic_definition(
    directions: tuple[Direction, Direction],
) -> None:
    rng = random.Random(11)
    points = [point(i, rng.random(), rng.random()) for i in range(300)]
    expected = [
        p.index
        for p in points
        if not any(dominates(q.values, p.values, directions) for q in points)
    ]
    assert [p.index for p in non_dominated(points, directions)] == expected
