"""The ``bayesian`` algorithm: its GP pieces, its search quality, batches and scale.

The shared contract suite covers validity, determinism and warm starts; these
tests check what is specific to GP-EI: the hand-written marginal-likelihood
gradient agrees with scikit-learn, the vectorised encoding agrees with
:class:`Space`, the search beats random on a bowl, batches spread out, and a
history of thousands of trials is handled through a bounded subset.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from bench.suggest.problems import HARTMANN6_WELLS, hartmann6
from scipy.optimize import check_grad
from scipy.stats import norm

from kubesweep.api.experiment import Direction, ParameterValue
from kubesweep.api.suggestion_wire import ObservedTrial, SearchSpace, TrialState
from kubesweep.suggestion.algorithms import _gp, bayesian, random_search
from kubesweep.suggestion.algorithms._unitcube import UnitCube
from kubesweep.suggestion.contract import History, SettingsError
from kubesweep.suggestion.space import Space
from tests.suggestion.helpers import BOWL, MIXED, best, bowl, bowl_trials, minimise, trial

# --- settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"initialTrial": 3}, "initialTrial"),
        ({"initialTrials": 0}, "initialTrials"),
        ({"initialTrials": 2.5}, "initialTrials"),
        ({"candidates": "many"}, "candidates"),
        ({"maxFitPoints": 5}, "maxFitPoints"),
        ({"kernelFitIterations": -1}, "kernelFitIterations"),
        ({"liar": "optimist"}, "liar"),
        ({"outputWarping": 1}, "outputWarping"),
    ],
)
def test_bad_settings_are_refused_by_name(settings: dict[str, ParameterValue], name: str) -> None:
    with pytest.raises(SettingsError) as error:
        bayesian.create(SearchSpace.model_validate(BOWL), settings, 1)
    assert error.value.setting == name
    assert name in str(error.value)


def test_every_setting_is_documented_in_the_module_docstring() -> None:
    doc = bayesian.__doc__ or ""
    for setting in bayesian.SETTINGS:
        assert f"``{setting.name}``" in doc


# --- the GP pieces ----------------------------------------------------------------------


def test_marginal_likelihood_and_gradient_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    x = rng.random((40, 4))
    y = np.sin(4 * x).sum(axis=1)
    y = (y - y.mean()) / y.std()
    hp = _gp.Hyperparameters(np.log(rng.uniform(0.2, 2.0, 4)), 0.4, math.log(1e-3))
    model = _gp.build_regressor(x, y, hp)
    assert _gp.log_marginal_likelihood(hp, x, y) == pytest.approx(
        model.log_marginal_likelihood_value_, rel=1e-9
    )
    error = check_grad(
        lambda t: _gp._lml_and_gradient(t, x, y)[0],
        lambda t: _gp._lml_and_gradient(t, x, y)[1],
        hp.to_vector(),
    )
    assert error < 1e-3 * (1 + np.abs(_gp._lml_and_gradient(hp.to_vector(), x, y)[1]).max())


def test_fitted_length_scales_find_the_relevant_dimension() -> None:
    rng = np.random.default_rng(5)
    x = rng.random((60, 3))
    y = np.sin(6 * x[:, 0])  # only the first dimension matters
    hp = _gp.fit_hyperparameters(x, (y - y.mean()) / y.std(), 50)
    lengths = np.exp(hp.log_lengths)
    assert lengths[0] < lengths[1]
    assert lengths[0] < lengths[2]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trials_crowded_in_one_basin_do_not_switch_dimensions_off(seed: int) -> None:
    """A design over the cube plus many trials in one well, as after a search
    settles there: every dimension matters elsewhere, so no length scale may grow
    to several cube widths (the model would stop telling points apart along it and
    never search the other wells; the earlier prior gave two of them 13 to 58)."""
    rng = np.random.default_rng(seed)
    design = rng.random((16, 6))
    # Hartmann-6's second-best minimum lies near the centre of its last well.
    crowd = np.clip(HARTMANN6_WELLS[3] + 0.05 * rng.standard_normal((30, 6)), 0.0, 1.0)
    x = np.vstack([design, crowd])
    y = np.array([hartmann6(row) for row in x])
    hp = _gp.fit_hyperparameters(x, (y - y.mean()) / y.std(), 20)
    assert np.exp(hp.log_lengths).max() < 3.0


def test_length_scale_prior_gradient_matches_finite_differences() -> None:
    hp = _gp.Hyperparameters(np.log(np.array([0.05, 0.5, 4.0])), 0.3, math.log(1e-4))
    error = check_grad(
        lambda t: _gp.log_prior(_gp.Hyperparameters.from_vector(t))[0],
        lambda t: _gp.log_prior(_gp.Hyperparameters.from_vector(t))[1],
        hp.to_vector(),
    )
    assert error < 1e-5
    mode = _gp.prior_mode(3)
    assert np.allclose(_gp.log_prior(mode)[1], 0.0)


def test_log_expected_improvement_matches_the_closed_form_and_stays_finite() -> None:
    mean = np.array([-1.0, 0.0, 0.5, 2.0, 4.0])
    sd = np.array([1.0, 0.5, 2.0, 1.0, 1.0])
    u = (0.0 - mean) / sd
    ei = sd * (u * norm.cdf(u) + norm.pdf(u))
    assert np.allclose(_gp.log_expected_improvement(mean, sd, 0.0), np.log(ei), rtol=1e-6)
    tail = _gp.log_expected_improvement(np.array([10.0, 40.0, 1e3]), np.ones(3), 0.0)
    assert np.all(np.isfinite(tail))
    assert tail[0] > tail[1] > tail[2]


def test_target_warping_is_monotone_and_survives_a_diverged_trial() -> None:
    losses = np.concatenate([np.linspace(0.1, 2.0, 19), [1e300]])
    warped = _gp.warp_targets(losses)
    assert np.all(np.diff(warped) > 0)
    assert warped.mean() == pytest.approx(0.0, abs=1e-9)
    assert warped.std() == pytest.approx(1.0)
    # The ordinary trials keep a usable spread instead of collapsing to one value.
    assert warped[:19].std() > 0.3
    assert np.all(_gp.warp_targets(np.full(5, 3.0)) == 0.0)


# --- the vectorised encoding ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        MIXED,
        {
            "parameters": [
                {"name": "a", "type": "int", "min": 1, "max": 8, "log": True},
                {"name": "b", "type": "float", "min": 0.001, "max": 1, "log": True, "step": 0.001},
                {"name": "c", "type": "int", "min": -3, "max": 20, "step": 4},
                {"name": "d", "type": "categorical", "values": [1, "1", True, 2.5]},
                {"name": "e", "type": "int", "min": 0, "max": 3, "step": 5},
            ]
        },
    ],
    ids=["mixed", "steps"],
)
def test_vectorised_encoding_agrees_with_the_space(raw: dict[str, Any]) -> None:
    space = Space(SearchSpace.model_validate(raw))
    cube = UnitCube(space)
    rng = np.random.default_rng(0)
    points = rng.random((300, space.dim))
    decoded = [space.from_unit(u) for u in points]
    reference = space.to_unit_many(decoded)
    snapped = cube.snap(points)
    assert np.array_equal(np.isnan(snapped), np.isnan(reference))
    assert np.allclose(np.nan_to_num(snapped), np.nan_to_num(reference), atol=1e-12)
    encoded = cube.encode(decoded)
    assert np.allclose(np.nan_to_num(encoded), np.nan_to_num(reference), atol=1e-12)
    features = np.array([space.to_features(v) for v in decoded])
    assert np.allclose(cube.features(snapped), features, atol=1e-12)
    assert [cube.decode(row) for row in snapped] == decoded
    keys = {space.key(v) for v in decoded}
    assert len(set(cube.row_keys(snapped))) == len(keys)


def test_invalid_history_values_are_left_out() -> None:
    space = Space(SearchSpace.model_validate(BOWL))
    cube = UnitCube(space)
    rows = cube.encode(
        [
            {"x": 0.0, "y": 1.0, "n": 3, "kind": "a"},
            {"x": "zero", "y": 1.0, "n": 3, "kind": "a"},
            {"x": 0.0, "y": 1.0, "n": 3, "kind": "z"},
            {"x": 0.0, "y": 1.0, "kind": "a"},
        ]
    )
    assert cube.valid_rows(rows).tolist() == [True, False, False, False]


def test_missing_values_are_imputed_inside_the_space_and_known_ones_kept() -> None:
    space = Space(SearchSpace.model_validate(MIXED))
    cube = UnitCube(space)
    complete: dict[str, ParameterValue] = {
        "lr": 1e-3,
        "layers": 2,
        "dropout": 0.1,
        "batch": 32,
        "optimizer": "adam",
    }
    lacking: list[dict[str, ParameterValue]] = [
        complete,
        {"lr": 1e-3, "layers": 2},
        {"optimizer": "sgd", "momentum": 0.9},
    ]
    rows = cube.snap(cube.encode(lacking))
    imputed = cube.impute(rows, np.random.default_rng(0))
    assert not cube.missing(imputed).any()
    np.testing.assert_array_equal(imputed[0], rows[0])
    known = ~np.isnan(rows)
    np.testing.assert_array_equal(imputed[known], rows[known])
    np.testing.assert_array_equal(cube.snap(imputed), imputed)
    for row in imputed:
        assert space.contains(cube.decode(row))


# --- search behaviour --------------------------------------------------------------------


def test_trials_lacking_a_parameter_still_teach_the_model_the_others() -> None:
    # 20 trials of a warm start without y and 2 complete ones: x's optimum is in
    # the 20, so the model must use them rather than the 2 alone.
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

    rng = np.random.default_rng(1)
    points = [{"x": float(rng.random()), "y": float(rng.random())} for _ in range(22)]
    trials = [
        trial(i, {"x": p["x"]} if i < 20 else p, state=TrialState.COMPLETED, value=loss(p))
        for i, p in enumerate(points)
    ]
    picks = []
    for _ in range(6):
        reply = bayesian.create(space, {}, 1).suggest(History(trials, Direction.MINIMIZE), 1)
        values = reply.assignments[0].parameters
        picks.append(values)
        trials.append(trial(len(trials), values, state=TrialState.COMPLETED, value=loss(values)))
    assert np.median([abs(float(p["x"]) - 0.3) for p in picks]) < 0.05, picks


# --- search behaviour --------------------------------------------------------------------


@pytest.mark.slow
def test_beats_random_search_on_a_bowl_in_median_over_seeds() -> None:
    space = SearchSpace.model_validate(BOWL)
    seeds = range(5)
    ours = [best(minimise(bayesian.create, space, bowl, 30, seed)) for seed in seeds]
    baseline = [best(minimise(random_search.create, space, bowl, 30, seed)) for seed in seeds]
    assert np.median(ours) < np.median(baseline)
    assert np.median(ours) < 0.5  # random's median is several times this


def test_a_batch_is_distinct_spread_out_and_avoids_pending_points() -> None:
    space = SearchSpace.model_validate(BOWL)
    compiled = Space(space)
    trials = bowl_trials(compiled, 20, seed=1)
    first = bayesian.create(space, {}, 3).suggest(History(trials, Direction.MINIMIZE), 4)
    pending = [
        trial(100 + i, a.parameters, state=TrialState.PENDING)
        for i, a in enumerate(first.assignments)
    ]
    second = bayesian.create(space, {}, 3).suggest(History(trials + pending, Direction.MINIMIZE), 6)
    assignments = first.assignments + second.assignments
    keys = {compiled.key(a.parameters) for a in assignments}
    assert len(keys) == len(assignments) == 10
    cube = UnitCube(compiled)
    features = cube.features(cube.encode([a.parameters for a in assignments]))
    distances = np.linalg.norm(features[:, None, :] - features[None, :, :], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 1e-3  # the liar keeps picks apart, not just unequal


@pytest.mark.parametrize("liar", ["believer", "best", "mean", "worst"])
def test_every_liar_gives_distinct_points(liar: str) -> None:
    space = SearchSpace.model_validate(BOWL)
    compiled = Space(space)
    trials = bowl_trials(compiled, 15, seed=2)
    reply = bayesian.create(space, {"liar": liar}, 1).suggest(
        History(trials, Direction.MINIMIZE), 5
    )
    assert len({compiled.key(a.parameters) for a in reply.assignments}) == 5


def test_the_initial_design_continues_one_sobol_sequence_across_calls() -> None:
    space = SearchSpace.model_validate(BOWL)
    algorithm = bayesian.create(space, {"initialTrials": 8}, 4)
    at_once = algorithm.suggest(History([], Direction.MINIMIZE), 4).assignments
    first = algorithm.suggest(History([], Direction.MINIMIZE), 2).assignments
    pending = [trial(i, a.parameters, state=TrialState.PENDING) for i, a in enumerate(first)]
    then = algorithm.suggest(History(pending, Direction.MINIMIZE), 2).assignments
    assert [a.parameters for a in first + then] == [a.parameters for a in at_once]


def test_a_finite_space_is_exhausted_exactly() -> None:
    small = SearchSpace.model_validate(
        {
            "parameters": [
                {"name": "kind", "type": "categorical", "values": ["a", "b", "c"]},
                {"name": "n", "type": "int", "min": 1, "max": 2},
            ]
        }
    )
    algorithm = bayesian.create(small, {"initialTrials": 2}, 0)
    trials: list[ObservedTrial] = []
    for _ in range(4):
        reply = algorithm.suggest(History(trials, Direction.MINIMIZE), 2)
        for a in reply.assignments:
            value = 1.0 + float(a.parameters["n"])
            trials.append(trial(len(trials), a.parameters, state=TrialState.COMPLETED, value=value))
    assert len({Space(small).key(t.parameters) for t in trials}) == 6
    assert reply.exhausted
    assert len(reply.assignments) == 0


def test_thousands_of_observations_are_fitted_on_a_bounded_subset() -> None:
    space = SearchSpace.model_validate(BOWL)
    compiled = Space(space)
    rng = np.random.default_rng(9)
    samples = compiled.sample(rng, 5000)
    trials = [trial(i, v, state=TrialState.COMPLETED, value=bowl(v)) for i, v in enumerate(samples)]
    trials += [trial(6000 + i, v, state=TrialState.PENDING) for i, v in enumerate(samples[:3])]
    reply = bayesian.create(space, {}, 1).suggest(History(trials, Direction.MINIMIZE), 3)
    assert len(reply.assignments) == 3
    taken = {compiled.key(t.parameters) for t in trials}
    best = min(bowl(v) for v in samples)
    for assignment in reply.assignments:
        assert compiled.contains(assignment.parameters)
        assert compiled.key(assignment.parameters) not in taken
    # The model still knows where the bowl is: the picks are near the best seen.
    assert min(bowl(a.parameters) for a in reply.assignments) < best + 0.5


def test_a_batch_larger_than_the_model_pick_cap_is_filled() -> None:
    space = SearchSpace.model_validate(BOWL)
    compiled = Space(space)
    trials = bowl_trials(compiled, 12, seed=6)
    reply = bayesian.create(space, {"candidates": 32}, 1).suggest(
        History(trials, Direction.MINIMIZE), 40
    )
    assert len({compiled.key(a.parameters) for a in reply.assignments}) == 40


def test_fast_posterior_equals_scikit_learn_without_the_noise_term() -> None:
    rng = np.random.default_rng(8)
    x = rng.random((50, 5))
    y = np.cos(3 * x).sum(axis=1)
    y = (y - y.mean()) / y.std()
    hp = _gp.Hyperparameters(np.log(rng.uniform(0.2, 2.0, 5)), 0.1, math.log(1e-2))
    model = _gp.build_regressor(x, y, hp)
    candidates = rng.random((40, 5))
    mean, std = model.predict(candidates, return_std=True)
    fast_mean, fast_sd = _gp.Posterior(model, hp).predict(candidates)
    assert np.allclose(fast_mean, mean, atol=1e-9)
    assert np.allclose(fast_sd**2, std**2 - 1e-2, atol=1e-9)
    assert np.allclose(_gp.Posterior(model, hp).mean(candidates), mean, atol=1e-9)


def test_log_ei_gradient_matches_finite_differences() -> None:
    """The climb of the acquisition's best candidates follows this gradient; a wrong
    sign or factor would walk away from the optimum it is meant to sharpen."""
    rng = np.random.default_rng(3)
    x = rng.random((40, 3))
    y = np.sin(5.0 * x).sum(1)
    y = (y - y.mean()) / y.std()
    hp = _gp.Hyperparameters(np.log(np.array([0.3, 0.5, 0.8])), 0.2, math.log(1e-4))
    posterior = _gp.Posterior(_gp.build_regressor(x, y, hp), hp)
    best = float(y.min())
    points = rng.random((6, 3))
    value, gradient = posterior.log_ei_with_gradient(points, best)
    mean, sd = posterior.predict(points)
    assert np.allclose(value, _gp.log_expected_improvement(mean, sd, best))
    step = 1e-6
    for j in range(3):
        shift = np.zeros(3)
        shift[j] = step
        up, _ = posterior.log_ei_with_gradient(points + shift, best)
        down, _ = posterior.log_ei_with_gradient(points - shift, best)
        numeric = (up - down) / (2.0 * step)
        assert np.allclose(gradient[:, j], numeric, rtol=1e-4, atol=1e-4 * np.abs(numeric).max())


def test_climb_raises_log_ei_and_keeps_discrete_coordinates() -> None:
    """Climbed points score at least as well as their starts, and integers and
    categories are left as they were snapped."""
    algorithm = bayesian.create(SearchSpace.model_validate(MIXED), {}, seed=0)
    cube = algorithm.cube
    rng = np.random.default_rng(0)
    unit = cube.snap(rng.random((30, cube.dim)))
    losses = rng.random(30)
    features = cube.features(unit)
    targets = _gp.warp_targets(losses)
    model = bayesian._Model(features, targets, _gp.prior_mode(features.shape[1]))
    best = float(model.mean(model.features).min())
    starts = cube.snap(rng.random((5, cube.dim)))
    climbed = algorithm._climb(model, starts, best)
    before = algorithm._score(model, starts, best)
    after = algorithm._score(model, climbed, best)
    assert np.all(after >= before - 1e-9)
    assert np.any(after > before + 1e-6)
    discrete = np.setdiff1d(np.arange(cube.dim), algorithm.continuous_unit)
    assert len(discrete)
    assert len(algorithm.continuous_unit)
    assert np.array_equal(climbed[:, discrete], starts[:, discrete], equal_nan=True)
