"""The multi-objective benchmark's problems and figure, checked where the answer is known."""

from __future__ import annotations

import math

import pytest
from bench.suggest.multi_objective import PROBLEMS, dtlz2, front_hypervolume, run_ours, zdt1

from kubesweep.api.experiment import AlgorithmName


def test_points_on_the_known_fronts() -> None:
    f1, f2 = zdt1([0.25, 0.0, 0.0, 0.0, 0.0])
    assert f1 == 0.25
    assert f2 == pytest.approx(0.5)
    on_sphere = dtlz2([0.3, 0.7, 0.5, 0.5, 0.5, 0.5])
    assert math.fsum(v * v for v in on_sphere) == pytest.approx(1.0)


def test_the_figure_is_the_hypervolume_of_the_non_dominated_points() -> None:
    # (0,1) and (1,0) against (2,2): 2 + 2 - 1 = 3; (0,1) dominates (1.5,1.5), (3,3) is outside
    assert front_hypervolume([[0, 1], [1, 0]], (2, 2)) == pytest.approx(3.0)
    assert front_hypervolume([[0, 1], [1, 0], [1.5, 1.5], [3, 3]], (2, 2)) == pytest.approx(3.0)


def test_our_runs_give_one_point_per_trial() -> None:
    points = run_ours(AlgorithmName.NSGA2, PROBLEMS["dtlz2-6d"], seed=0, trials=6)
    assert len(points) == 6
    assert all(len(p) == 3 for p in points)
