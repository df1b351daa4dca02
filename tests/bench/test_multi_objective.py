"""The multi-objective benchmark's problems and figure, checked where the answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bench.suggest import problems
from bench.suggest.mo_problems import (
    GBM_SIZE_TREES,
    PROBLEMS,
    dtlz2,
    mlp_training_gflops,
    mlp_weights,
    zdt1,
)
from bench.suggest.multi_objective import front_hypervolume, run_optuna, run_ours
from bench.suggest.problems import GBM_AXES, Table

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
    points = run_ours(AlgorithmName.NSGA2, PROBLEMS["dtlz2-6d"](), seed=0, trials=6)
    assert len(points) == 6
    assert all(len(p) == 3 for p in points)


def test_the_mlp_cost_counts_its_weights_and_passes() -> None:
    assert mlp_weights(16) == 65 * 16 + 17 * 10
    # the largest run of the table (128 units, 27 epochs) stays inside the reference point
    largest = mlp_training_gflops(128, 27)
    assert largest == pytest.approx(6 * 1198 * mlp_weights(128) * 27 / 1e9)
    assert largest < PROBLEMS["mlp-digits-flops"]().reference[1]


def test_gbm_size_reads_the_loss_and_the_node_count_after_the_same_tree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shape = (*(len(a.grid) for a in GBM_AXES), 2 * GBM_SIZE_TREES)
    trees = np.arange(1, GBM_SIZE_TREES + 1, dtype=float)
    curve = np.concatenate([1.0 / trees, 7.0 * trees])  # loss after k trees, then k trees' nodes
    table = Table(axes=GBM_AXES, data=np.broadcast_to(curve, shape).copy())
    monkeypatch.setitem(problems._TABLES, "gbm-breast-cancer-size", table)
    problem = PROBLEMS["gbm-breast-cancer-size"]()
    values = {"learning_rate": 0.1, "n_estimators": 40, "max_depth": 3, "subsample": 0.8}
    assert problem.evaluate({**values, "max_features": "sqrt"}) == pytest.approx([1 / 40, 0.28])


def test_optuna_runs_the_same_space_and_gives_one_point_per_trial() -> None:
    pytest.importorskip("optuna")
    points = run_optuna("tpe", PROBLEMS["zdt1-5d"](), seed=0, trials=5)
    assert len(points) == 5
    assert all(len(p) == 2 for p in points)
