"""The benchmark's problems have the optima the report's regret is measured against.

A wrong optimum would make every regret in docs/benchmarks.md wrong without
any run failing, so each published minimiser is checked, and no sampled point
may beat the stated minimum.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from bench.suggest import problems
from bench.suggest.problems import Problem

SYNTHETIC = [p for p in problems.quality_problems() if p.kind == "synthetic"]


def _by_name(name: str) -> Problem:
    return problems.problem_by_name(name)


def test_seven_quality_problems_in_report_order() -> None:
    names = [p.name for p in problems.quality_problems()]
    assert names == [
        "branin",
        "hartmann6",
        "rosenbrock4",
        "ackley5",
        "levy10",
        "mixed",
        "gbm-breast-cancer",
    ]


@pytest.mark.parametrize(
    "point",
    [(-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)],
    ids=["left", "middle", "right"],
)
def test_branin_minimum_at_each_of_its_three_minimisers(point: tuple[float, float]) -> None:
    value = _by_name("branin").evaluate({"x1": point[0], "x2": point[1]})
    assert value == pytest.approx(0.397887, abs=1e-5)


def test_hartmann6_minimum() -> None:
    values = {f"x{i}": v for i, v in enumerate(problems.HARTMANN6_ARGMIN)}
    assert _by_name("hartmann6").evaluate(values) == pytest.approx(-3.32237, abs=1e-5)


@pytest.mark.parametrize(
    ("name", "at"),
    [("rosenbrock4", 1.0), ("ackley5", 0.0), ("levy10", 1.0)],
)
def test_zero_minimum_of_the_vector_functions(name: str, at: float) -> None:
    problem = _by_name(name)
    values = {p.name: at for p in problem.parameters}
    assert problem.evaluate(values) == pytest.approx(0.0, abs=1e-12)
    assert problem.optimum == 0.0


def test_ackley_optimum_is_off_the_centre_of_its_box() -> None:
    # On the textbook symmetric box the optimum is the centre, which centre-first
    # samplers hit by construction; the benchmark's box is shifted.
    p = _by_name("ackley5").parameters[0]
    assert p.min is not None
    assert p.max is not None
    assert (p.min + p.max) / 2 != 0.0
    assert p.min < 0.0 < p.max


def test_mixed_minimum_and_its_terms() -> None:
    problem = _by_name("mixed")
    (best,) = problem.minimisers
    assert problem.evaluate(best) == pytest.approx(0.0, abs=1e-6)
    assert problem.evaluate({**best, "layers": 4}) == pytest.approx(0.2, abs=1e-6)
    assert problem.evaluate({**best, "optimizer": "sgd"}) == pytest.approx(0.6, abs=1e-6)
    assert problem.evaluate({**best, "lr": 10**-1.5}) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("problem", SYNTHETIC, ids=lambda p: p.name)
def test_stated_minimisers_reach_the_optimum(problem: Problem) -> None:
    for point in problem.minimisers:
        assert problem.evaluate(point) == pytest.approx(problem.optimum, abs=1e-5)


@pytest.mark.parametrize("problem", SYNTHETIC, ids=lambda p: p.name)
def test_no_random_point_beats_the_optimum(problem: Problem) -> None:
    rng = np.random.default_rng(0)
    for _ in range(2000):
        point: dict[str, float | int | str] = {}
        for p in problem.parameters:
            if p.values is not None:
                point[p.name] = p.values[int(rng.integers(len(p.values)))]
            else:
                assert p.min is not None
                assert p.max is not None
                point[p.name] = float(rng.uniform(p.min, p.max))
        assert problem.evaluate(point) >= problem.optimum - 1e-9
        assert problem.regret(problem.evaluate(point)) >= 0.0


def test_table_interpolation_never_goes_below_its_smallest_vertex() -> None:
    axes = (
        problems.Axis(problems.MLP_AXES[0].parameter, (1e-4, 1e-2, 1.0)),
        problems.Axis(problems.GBM_AXES[1].parameter, (1, 2, 3, 4)),
    )
    data = np.arange(3 * 4 * 2, dtype=float).reshape(3, 4, 2) + 1.0
    table = problems.Table(axes=axes, data=data)
    assert table.minimum == 1.0
    assert table.curve({"learning_rate_init": 1e-4, "max_depth": 1}).tolist() == [1.0, 2.0]
    # halfway in log space between the first two learning rates: the mean of the rows
    mid = table.curve({"learning_rate_init": 1e-3, "max_depth": 1})
    assert mid.tolist() == pytest.approx([(1 + 9) / 2, (2 + 10) / 2])
    rng = np.random.default_rng(1)
    for _ in range(200):
        lr = float(np.exp(rng.uniform(np.log(1e-4), np.log(1.0))))
        depth = int(rng.integers(1, 5))
        assert table.curve({"learning_rate_init": lr, "max_depth": depth}).min() >= 1.0


def test_fidelity_problem_curves_are_prefix_consistent() -> None:
    problem = problems.fidelity_problem("branin-fidelity")
    assert problem.fidelity is not None
    values = {"x1": 1.0, "x2": 2.0}
    long = problem.evaluate_curve(values, 9)
    assert problem.evaluate_curve(values, 3) == long[:3]
    assert problem.evaluate(values) == long[-1]
    assert long == sorted(long, reverse=True)
