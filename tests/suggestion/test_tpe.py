"""The ``tpe`` algorithm and its Parzen estimators.

The shared contract suite covers validity, determinism and warm starts; these
tests check the estimator itself (it is a density: it integrates to one, also
over discrete and categorical dimensions), the split, the search quality
against random, conditional spaces, the constant liar, and a long history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from kubesweep.api.experiment import Direction, ParameterValue
from kubesweep.api.suggestion_wire import ObservedTrial, SearchSpace, TrialState
from kubesweep.suggestion.algorithms import random_search, tpe
from kubesweep.suggestion.algorithms._parzen import Parzen, ParzenOptions, split_count
from kubesweep.suggestion.algorithms._unitcube import UnitCube
from kubesweep.suggestion.contract import History, SettingsError
from kubesweep.suggestion.space import Space
from tests.suggestion.helpers import BOWL, best, bowl, bowl_trials, minimise, trial

BRANCHES: dict[str, Any] = {
    "parameters": [
        {"name": "model", "type": "categorical", "values": ["linear", "tree"]},
        {
            "name": "alpha",
            "type": "float",
            "min": 1e-4,
            "max": 1.0,
            "log": True,
            "when": {"parameter": "model", "values": ["linear"]},
        },
        {
            "name": "depth",
            "type": "float",
            "min": 1.0,
            "max": 12.0,
            "when": {"parameter": "model", "values": ["tree"]},
        },
    ]
}


def branches(p: Mapping[str, ParameterValue]) -> float:
    """The tree branch wins (best at depth 7); the linear one never gets below 1.

    Both branches are continuous, so neither can be used up and force the other.
    """
    if p["model"] == "tree":
        return abs(float(p["depth"]) - 7) / 5.0
    return 1.0 + abs(math.log10(float(p["alpha"])) + 2.0)


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"nStartupTrial": 3}, "nStartupTrial"),
        ({"nStartupTrials": 0}, "nStartupTrials"),
        ({"gamma": 0.9}, "gamma"),
        ({"gamma": "auto"}, "gamma"),
        ({"gammaCap": 1.5}, "gammaCap"),
        ({"priorWeight": 0}, "priorWeight"),
        ({"multivariate": "yes"}, "multivariate"),
        ({"constantLiar": 0}, "constantLiar"),
        ({"maxObservations": 2}, "maxObservations"),
    ],
)
def test_bad_settings_are_refused_by_name(settings: dict[str, ParameterValue], name: str) -> None:
    with pytest.raises(SettingsError) as error:
        tpe.create(SearchSpace.model_validate(BOWL), settings, 1)
    assert error.value.setting == name
    assert name in str(error.value)


def test_every_setting_is_documented_in_the_module_docstring() -> None:
    doc = tpe.__doc__ or ""
    for setting in tpe.SETTINGS:
        assert f"``{setting.name}``" in doc


# --- the estimator ----------------------------------------------------------------------


def _cube(parameters: list[dict[str, Any]]) -> UnitCube:
    return UnitCube(Space(SearchSpace.model_validate({"parameters": parameters})))


@pytest.mark.parametrize("multivariate", [True, False])
def test_a_continuous_estimator_integrates_to_one(multivariate: bool) -> None:
    cube = _cube([{"name": "x", "type": "float", "min": 0.0, "max": 1.0}])
    rows = np.array([[0.02], [0.3], [0.31], [0.9]])
    parzen = Parzen(cube, rows, np.ones(4), ParzenOptions(multivariate=multivariate))
    grid = (np.arange(20000) + 0.5) / 20000
    density = np.exp(parzen.log_density(grid[:, None]))
    assert density.mean() == pytest.approx(1.0, abs=1e-3)
    assert density[6000] > density[18000]  # more mass near 0.3 than near 0.9


def test_discrete_and_categorical_masses_sum_to_one() -> None:
    cube = _cube(
        [
            {"name": "n", "type": "int", "min": 1, "max": 6},
            {"name": "c", "type": "categorical", "values": ["a", "b", "c"]},
        ]
    )
    rows = cube.snap(np.array([[0.1, 0.1], [0.5, 0.1], [0.55, 0.9]]))
    parzen = Parzen(cube, rows, np.ones(3), ParzenOptions())
    every = cube.snap(
        np.array([[(i + 0.5) / 6, (j + 0.5) / 3] for i in range(6) for j in range(3)])
    )
    assert np.exp(parzen.log_density(every)).sum() == pytest.approx(1.0, abs=1e-9)


def test_samples_follow_the_estimator() -> None:
    cube = _cube([{"name": "x", "type": "float", "min": 0.0, "max": 1.0}])
    rows = np.full((30, 1), 0.2)
    parzen = Parzen(cube, rows, np.ones(30), ParzenOptions())
    samples = parzen.sample(np.random.default_rng(0), 4000)[:, 0]
    assert samples.min() >= 0.0
    assert samples.max() <= 1.0
    # 30 of 31 components sit at 0.2 (the other is the uniform prior), with the
    # magic-clipped bandwidth 1/32: nearly all of their draws fall within 0.1.
    assert np.mean(np.abs(samples - 0.2) < 0.1) > 0.9


@pytest.mark.parametrize("multivariate", [True, False])
def test_a_value_missing_from_some_rows_follows_the_rows_that_have_it(
    multivariate: bool,
) -> None:
    # 10 rows have x near 0.8; 30 rows lack x (NaN where the parameter is active)
    # but have y. Their kernels over x are the rows that have x, not uniform.
    cube = _cube(
        [
            {"name": "x", "type": "float", "min": 0.0, "max": 1.0},
            {"name": "y", "type": "float", "min": 0.0, "max": 1.0},
        ]
    )
    with_x = np.column_stack([np.full(10, 0.8), np.linspace(0.1, 0.9, 10)])
    without_x = np.column_stack([np.full(30, np.nan), np.linspace(0.1, 0.9, 30)])
    rows = np.vstack([with_x, without_x])
    parzen = Parzen(cube, rows, np.ones(40), ParzenOptions(multivariate=multivariate))
    x = parzen.sample(np.random.default_rng(0), 4000)[:, 0]
    assert not np.isnan(x).any()
    assert np.mean(np.abs(x - 0.8) < 0.1) > 0.6
    grid = (np.arange(200) + 0.5) / 200
    points = np.array([[a, b] for a in grid for b in grid])
    density = np.exp(parzen.log_density(points)).reshape(200, 200)
    assert density.mean() == pytest.approx(1.0, abs=1e-2)
    marginal = density.mean(axis=1)
    assert marginal[160] > 8 * marginal[40]  # x = 0.8 against x = 0.2


def test_trials_lacking_a_parameter_still_teach_the_model_the_others() -> None:
    # 28 trials of a warm start without y and 2 complete ones: x's optimum is in
    # the 28, so the model must use them rather than the 2 alone.
    space = SearchSpace.model_validate(
        {
            "parameters": [
                {"name": "x", "type": "float", "min": 0.0, "max": 1.0},
                {"name": "y", "type": "float", "min": 0.0, "max": 1.0},
            ]
        }
    )

    def loss(p: dict[str, Any]) -> float:
        return 10 * (float(p["x"]) - 0.3) ** 2 + (float(p["y"]) - 0.6) ** 2

    rng = np.random.default_rng(2)
    points = [{"x": float(rng.random()), "y": float(rng.random())} for _ in range(30)]
    trials = [
        trial(i, {"x": p["x"]} if i < 28 else p, state=TrialState.COMPLETED, value=loss(p))
        for i, p in enumerate(points)
    ]
    picks = []
    for _ in range(8):
        reply = tpe.create(space, {}, 2).suggest(History(trials, Direction.MINIMIZE), 1)
        values = reply.assignments[0].parameters
        picks.append(values)
        trials.append(trial(len(trials), values, state=TrialState.COMPLETED, value=loss(values)))
    assert np.median([abs(float(p["x"]) - 0.3) for p in picks]) < 0.1, picks


def test_the_good_group_follows_gamma_and_its_cap() -> None:
    assert split_count(5, 0.1, 25) == 1
    assert split_count(100, 0.1, 25) == 10
    assert split_count(10_000, 0.1, 25) == 25
    good, bad = tpe.split(np.arange(50.0)[::-1], 0.1, 25, max_bad=10)
    assert sorted(good.tolist()) == [45, 46, 47, 48, 49]
    assert bad.tolist() == list(range(35, 45))  # the most recent of the rest


# --- search behaviour -----------------------------------------------------------------


@pytest.mark.slow
def test_beats_random_search_on_a_bowl_in_median_over_seeds() -> None:
    space = SearchSpace.model_validate(BOWL)
    seeds = range(7)
    ours = [best(minimise(tpe.create, space, bowl, 40, seed)) for seed in seeds]
    baseline = [best(minimise(random_search.create, space, bowl, 40, seed)) for seed in seeds]
    assert np.median(ours) < np.median(baseline)


def test_conditional_branches_are_modelled_and_the_better_one_is_preferred() -> None:
    space = SearchSpace.model_validate(BRANCHES)
    trials = minimise(tpe.create, space, branches, 40, 3)
    compiled = Space(space)
    for t in trials:
        assert compiled.contains(t.parameters)
    late = [t.parameters["model"] for t in trials[20:]]
    assert late.count("tree") > late.count("linear")
    assert best(trials) <= 0.2


def test_pending_points_and_the_batch_so_far_count_as_bad() -> None:
    space = SearchSpace.model_validate(BOWL)
    compiled = Space(space)
    trials = bowl_trials(compiled, 30, seed=4)
    first = tpe.create(space, {}, 5).suggest(History(trials, Direction.MINIMIZE), 4)
    pending = [
        trial(100 + i, a.parameters, state=TrialState.PENDING)
        for i, a in enumerate(first.assignments)
    ]
    second = tpe.create(space, {}, 5).suggest(History(trials + pending, Direction.MINIMIZE), 6)
    assignments = first.assignments + second.assignments
    assert len({compiled.key(a.parameters) for a in assignments}) == 10


def test_thousands_of_observations_keep_the_model_on_the_optimum() -> None:
    space = SearchSpace.model_validate(BOWL)
    compiled = Space(space)
    rng = np.random.default_rng(9)
    samples = compiled.sample(rng, 5000)
    trials = [trial(i, v, state=TrialState.COMPLETED, value=bowl(v)) for i, v in enumerate(samples)]
    reply = tpe.create(space, {}, 1).suggest(History(trials, Direction.MINIMIZE), 4)
    assert len(reply.assignments) == 4
    taken = {compiled.key(t.parameters) for t in trials}
    losses = sorted(bowl(v) for v in samples)
    for assignment in reply.assignments:
        assert compiled.contains(assignment.parameters)
        assert compiled.key(assignment.parameters) not in taken
    # Picks come from the good group's neighbourhood: better than the median trial.
    assert np.median([bowl(a.parameters) for a in reply.assignments]) < losses[len(losses) // 10]


def test_univariate_mode_also_searches() -> None:
    space = SearchSpace.model_validate(BOWL)
    algorithm = tpe.create(space, {"multivariate": False, "nStartupTrials": 5}, 2)
    trials: list[ObservedTrial] = []
    for _ in range(12):
        for a in algorithm.suggest(History(trials, Direction.MINIMIZE), 2).assignments:
            trials.append(trial(len(trials), a.parameters, state=TrialState.COMPLETED, value=1.0))
    compiled = Space(space)
    assert len({compiled.key(t.parameters) for t in trials}) == 24


def test_a_batch_larger_than_the_model_pick_cap_is_filled() -> None:
    space = SearchSpace.model_validate(BOWL)
    compiled = Space(space)
    trials = bowl_trials(compiled, 12, seed=6)
    reply = tpe.create(space, {}, 1).suggest(History(trials, Direction.MINIMIZE), 40)
    assert len({compiled.key(a.parameters) for a in reply.assignments}) == 40


def test_candidates_grow_with_the_history_up_to_a_cap() -> None:
    from kubesweep.suggestion.algorithms.tpe import candidate_count

    assert candidate_count(24, 0) == 24
    assert candidate_count(24, 40) == 24
    assert candidate_count(24, 60) == 36
    assert candidate_count(24, 100) == 60
    assert candidate_count(24, 100_000) == 60
    assert candidate_count(1, 100_000) == 2
