"""Bayesian optimisation with a Gaussian process and expected improvement.

Papers: Jones, Schonlau & Welch 1998, "Efficient Global Optimization of
Expensive Black-Box Functions" (EI); Snoek, Larochelle & Adams 2012, "Practical
Bayesian Optimization of Machine Learning Algorithms" (Matérn 5/2 ARD kernel,
parallel suggestions); Ginsbourger, Le Riche & Carraro 2010, "Kriging Is
Well-Suited to Parallelize Optimization" (constant liar, kriging believer);
Ament et al. 2023, "Unexpected Improvements to Expected Improvement" (log EI);
Balandat et al. 2020, "BoTorch: A Framework for Efficient Monte-Carlo Bayesian
Optimization" (the Gamma(3, 6) length-scale prior); Hvarfner, Hellsten & Nardi
2024, "Vanilla Bayesian Optimization Performs Great in High Dimensions" (the
prior of one-hot columns).

How it works, and why:

- The model is scikit-learn's ``GaussianProcessRegressor`` with
  ``Constant * Matern(nu=2.5, ARD) + White`` over the space's model features:
  numbers in ``[0, 1]`` (log parameters on their log scale, integers and steps
  at their values), categoricals one-hot, inactive conditional parameters at
  one fixed point. Losses are standardised, compressed logarithmically beyond
  four robust deviations and Yeo-Johnson-warped, so a few diverged trials do
  not set the scale. Kernel hyperparameters are MAP
  estimates by a bounded L-BFGS-B run (see :mod:`._gp`), with a Gamma(3, 6)
  prior on each numeric length scale that keeps every dimension in the model unless
  the data clearly say it does not matter: a prior that let length scales grow
  freely made the model drop the dimensions along which the trials of one basin
  varied least, and the search then never left that basin. One-hot columns
  keep a prior that lets them grow long length scales (Hvarfner et al. 2024),
  so categories stay related and the search does not settle on the first good
  one.
- The acquisition is log expected improvement, maximised over a few hundred
  uniform candidates plus Gaussian perturbations around the best observed points
  and the best candidates, refined once at a smaller scale. All candidates are
  snapped to valid values first, so the model scores what would actually run.
  The best few are then climbed by L-BFGS-B on log EI's exact gradient in their
  continuous coordinates (integers, steps and categories stay as snapped):
  random perturbations stop improving at a scale of about 1e-3 in the unit
  cube, while an optimum is often narrower than that once the model has found
  its basin, and gradient steps cost little more than scoring a hundred points.
- Parallel slots: pending trials and the earlier picks of the same batch are
  added to the model with a *lie* for their value (by default the model's own
  prediction, the "kriging believer"), which removes their improvement, so a
  batch spreads out instead of collapsing onto one point.
- Scale: the GP is conditioned on at most ``maxFitPoints`` observations (the
  best half and a uniform spread of the rest) and the 128 most recent pending
  trials, and its hyperparameters fitted on at most ``kernelFitPoints`` of
  those, so a call costs about the same at 1,000 or 100,000 observed trials.
  Settings whose combined cost exceeds the service's limits (about ``5e10``
  operations or 1 GiB in one call, see ``docs/suggestion-service.md``) are
  refused with the costliest setting named: roughly, ``maxFitPoints`` up to
  about 800 at the default ``candidates``, ``candidates`` up to about 10,000
  at the default ``maxFitPoints``, less as the space has more model features
  (a categorical counts one per value). One call makes at most 32 model-based
  picks; the rest of a larger batch is drawn uniformly (with hundreds of
  parallel slots, a model adds little and would cost a refit per pick).
  Linear algebra runs single-threaded: on matrices of a few hundred rows,
  BLAS threads cost more than they save.
- The first ``initialTrials`` suggestions follow one scrambled Sobol sequence
  fixed by the seed, continued across calls. The default of 20 gives the first
  fit a picture of the whole space: with 10, the model on Hartmann-6 often
  settled on whichever basin the first good point fell in (5 of 10 seeds ended
  in the second-best minimum, against 3 with 20 and the length-scale prior
  above); the cost is ten more uniform trials on problems that a model would
  have solved sooner, which on the benchmark's 2- to 10-dimensional problems
  stays within the spread of the seeds.
- History from elsewhere (a warm start, a sweep whose bounds changed) and
  trials that set only some parameters: a value the space cannot place (absent,
  beyond the current bounds, an unknown category) is unknown, never clipped to
  a bound where it would count as evidence. The rest of the trial is used; for
  the GP each unknown value is drawn uniformly at random on each call (a fixed
  stand-in would read as evidence at that point). A trial with no known value
  is left out.

Settings:

- ``initialTrials`` (default ``20``): trials drawn from the Sobol design before
  the model is used (pending and failed trials count).
- ``candidates`` (default ``256``): uniform candidate points scored per pick,
  besides the local ones.
- ``maxFitPoints`` (default ``200``): most observations the GP is conditioned on.
- ``kernelFitPoints`` (default ``64``): most observations the kernel
  hyperparameters are fitted on.
- ``kernelFitIterations`` (default ``20``): L-BFGS-B iterations of that fit; 0
  keeps the prior's mode.
- ``liar`` (default ``"believer"``): the value assumed for pending points:
  ``believer`` (the model's prediction), ``best``, ``mean`` or ``worst`` (of the
  observed losses).
- ``outputWarping`` (default ``true``): Yeo-Johnson-warp the losses before fitting.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from kubesweep.api.experiment import ParameterValue
from kubesweep.api.suggestion_wire import SearchSpace, SuggestReply
from kubesweep.suggestion import cost
from kubesweep.suggestion.algorithms._gp import (
    Hyperparameters,
    Posterior,
    build_regressor,
    fit_hyperparameters,
    log_expected_improvement,
    prior_mode,
    warp_targets,
)
from kubesweep.suggestion.algorithms._model_based import (
    Batch,
    Observations,
    bounded_subset,
    suggest_after_design,
)
from kubesweep.suggestion.algorithms._unitcube import Array, UnitCube
from kubesweep.suggestion.contract import History
from kubesweep.suggestion.settings import Setting, Settings, parse
from kubesweep.suggestion.space import Space

SETTINGS = (
    Setting(
        "initialTrials",
        20,
        "trials drawn from a scrambled Sobol design before the model is used",
        minimum=1,
        maximum=100_000,
    ),
    Setting(
        "candidates", 256, "uniform candidate points scored per pick", minimum=16, maximum=100_000
    ),
    Setting(
        "maxFitPoints", 200, "most observations the GP is conditioned on", minimum=10, maximum=5000
    ),
    Setting(
        "kernelFitPoints",
        64,
        "most observations the kernel hyperparameters are fitted on",
        minimum=5,
        maximum=5000,
    ),
    Setting(
        "kernelFitIterations",
        20,
        "L-BFGS-B iterations of the hyperparameter fit (0 keeps the prior's mode)",
        minimum=0,
        maximum=1000,
    ),
    Setting(
        "liar",
        "believer",
        "value assumed for pending points",
        choices=("believer", "best", "mean", "worst"),
    ),
    Setting("outputWarping", True, "Yeo-Johnson-warp the losses before fitting"),
)

_SALT = "bayesian"
_ANCHORS = 5  # best observed points and best candidates searched around
_LOCAL_PER_ANCHOR = 24
_LOCAL_SCALES = np.array([0.005, 0.02, 0.06, 0.15])
_CATEGORY_RESAMPLE = 0.25
_REFINE_STARTS = 5  # best candidates climbed by gradient
_REFINE_ITERATIONS = 40
#: Points scored besides the uniform candidates: perturbations of both anchor sets,
#: then of the best of those.
_LOCAL_POINTS = (2 * _ANCHORS + _ANCHORS) * _LOCAL_PER_ANCHOR


class _Model:
    """A conditioned GP with fixed hyperparameters, and the lies added to it."""

    def __init__(self, features: Array, targets: Array, hp: Hyperparameters) -> None:
        self.features = features
        self.targets = targets
        self.hp = hp
        self.gpr = build_regressor(features, targets, hp)
        self.posterior = Posterior(self.gpr, hp)

    def predict(self, features: Array) -> tuple[Array, Array]:
        """Posterior mean and the standard deviation of the latent function."""
        return self.posterior.predict(features)

    def mean(self, features: Array) -> Array:
        """Posterior mean only (no variance: one matrix-vector product)."""
        return self.posterior.mean(features)

    def with_lies(self, features: Array, liar: str, observed: Array) -> _Model:
        """The model with ``features`` added at lied values (see the ``liar`` setting)."""
        if not len(features):
            return self
        if liar == "believer":
            values, _ = self.predict(features)
        else:
            lie = {"best": observed.min(), "mean": observed.mean(), "worst": observed.max()}
            values = np.full(len(features), float(lie[liar]))
        return _Model(
            np.vstack([self.features, features]), np.concatenate([self.targets, values]), self.hp
        )


class BayesianOptimization:
    """GP-EI search; see the module docstring."""

    def __init__(self, space: SearchSpace, settings: Settings, seed: int | None) -> None:
        self.space = Space(space)
        self.cube = UnitCube(self.space)
        self.settings = settings
        self.seed = seed
        # Continuous coordinates (no grid, not categorical) and their feature columns,
        # where a feature equals the unit coordinate: the ones a gradient step moves.
        continuous = [d for d in self.space.dimensions if not d.is_categorical and d.size is None]
        self.continuous_unit = np.array([d.index for d in continuous], dtype=int)
        self.continuous_features = np.array(
            [self.space.feature_slice(d.name).start for d in continuous], dtype=int
        )
        # Feature columns that encode categoricals: their length scales get their own prior.
        self.one_hot = np.zeros(self.cube.feature_count, dtype=bool)
        for d in self.space.dimensions:
            if d.is_categorical:
                self.one_hot[self.space.feature_slice(d.name)] = True

    def suggest(self, history: History, count: int) -> SuggestReply:
        """``count`` distinct suggestions (fewer only when the space is exhausted)."""
        with threadpool_limits(limits=1):
            return self._suggest(history, count)

    def _suggest(self, history: History, count: int) -> SuggestReply:
        return suggest_after_design(
            self.cube,
            history,
            count,
            seed=self.seed,
            salt=_SALT,
            design_trials=self.settings.integer("initialTrials"),
            min_finished=2,
            model_picks=self._model_picks,
        )

    def _model_picks(
        self, observations: Observations, batch: Batch, rng: np.random.Generator
    ) -> None:
        s = self.settings
        chosen = bounded_subset(observations.losses, s.integer("maxFitPoints"), rng)
        # Values a trial lacks are drawn at random, each call anew: unbiased, unlike
        # one fixed stand-in, which the GP would read as evidence at that point.
        unit = self.cube.impute(observations.unit[chosen], rng)
        losses = observations.losses[chosen]
        if s.flag("outputWarping"):
            targets = warp_targets(losses)
        else:
            scaled = losses / max(float(np.abs(losses).max()), 1e-300)
            spread = scaled.std()
            targets = (scaled - scaled.mean()) / (spread if spread > 0 else 1.0)
        features = self.cube.features(unit)
        hp = self._hyperparameters(features, targets, rng)
        model = _Model(features, targets, hp)
        liar = s.text("liar")
        recent = self.cube.impute(observations.pending[-cost.MAX_PENDING_IN_MODEL :], rng)
        pending = np.vstack([recent, batch.batch_rows()])
        model = model.with_lies(self.cube.features(pending), liar, targets)
        pool = self.cube.snap(rng.random((s.integer("candidates"), self.cube.dim)))
        for _ in batch.model_turns(rng):
            ranked = self._ranked_candidates(model, unit, pool, rng)
            before = len(batch.rows)
            if not batch.take_first_new(ranked):
                batch.take_random(rng)
            if len(batch.rows) > before and not batch.full:
                model = model.with_lies(self.cube.features(batch.rows[-1][None, :]), liar, targets)

    def _hyperparameters(
        self, features: Array, targets: Array, rng: np.random.Generator
    ) -> Hyperparameters:
        iterations = self.settings.integer("kernelFitIterations")
        if iterations == 0:
            return prior_mode(features.shape[1], self.one_hot)
        subset = bounded_subset(targets, self.settings.integer("kernelFitPoints"), rng, 0.25)
        return fit_hyperparameters(features[subset], targets[subset], iterations, self.one_hot)

    def _ranked_candidates(
        self, model: _Model, observed: Array, pool: Array, rng: np.random.Generator
    ) -> Array:
        """Candidates (snapped unit rows) in decreasing order of log EI."""
        # The incumbent is the lowest posterior mean at the conditioned points
        # (lies included: a believed pick lowers it), which is robust to noise.
        fitted = model.mean(model.features)
        best = float(fitted.min())
        mean_obs = fitted[: len(observed)]
        anchors = observed[np.argsort(mean_obs)[:_ANCHORS]]
        pool_score = self._score(model, pool, best)
        anchors = np.vstack([anchors, pool[np.argsort(-pool_score)[:_ANCHORS]]])
        local = self._perturb(anchors, _LOCAL_SCALES, rng)
        local_score = self._score(model, local, best)
        top = local[np.argsort(-local_score)[:_ANCHORS]]
        fine = self._perturb(top, _LOCAL_SCALES / 4, rng)
        fine_score = self._score(model, fine, best)
        rows = np.vstack([pool, local, fine])
        scores = np.concatenate([pool_score, local_score, fine_score])
        rows = rows[np.argsort(-scores, kind="stable")]
        climbed = self._climb(model, rows[:_REFINE_STARTS], best)
        climbed_score = self._score(model, climbed, best)
        rows = np.vstack([climbed, rows])
        scores = np.concatenate([climbed_score, np.sort(scores)[::-1]])
        return rows[np.argsort(-scores, kind="stable")]

    def _climb(self, model: _Model, starts: Array, best: float) -> Array:
        """``starts`` after L-BFGS-B ascent of log EI in their continuous coordinates.

        The starts are climbed together, as one problem whose objective is the sum
        of theirs (their coordinates do not interact), so one optimiser run serves
        all of them. Inactive coordinates (NaN) stay where they are.
        """
        unit_columns, feature_columns = self.continuous_unit, self.continuous_features
        if not len(unit_columns) or not len(starts):
            return starts
        features = self.cube.features(starts)
        x0 = starts[:, unit_columns]
        free = ~np.isnan(x0)
        x0 = np.where(free, x0, 0.0)

        def objective(flat: Array) -> tuple[float, Array]:
            x = flat.reshape(x0.shape)
            features[:, feature_columns] = np.where(free, x, features[:, feature_columns])
            value, gradient = model.posterior.log_ei_with_gradient(features, best)
            return -float(value.sum()), -np.where(free, gradient[:, feature_columns], 0.0).ravel()

        bounds = [(0.0, 1.0) if f else (0.0, 0.0) for f in free.ravel()]
        result = minimize(
            objective,
            x0.ravel(),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": _REFINE_ITERATIONS},
        )
        moved = starts.copy()
        x = np.clip(np.asarray(result.x, dtype=float).reshape(x0.shape), 0.0, 1.0)
        moved[:, unit_columns] = np.where(free, x, starts[:, unit_columns])
        if not np.all(np.isfinite(moved[:, unit_columns][free])):
            return starts
        return self.cube.snap(moved)

    def _score(self, model: _Model, rows: Array, best: float) -> Array:
        mean, sd = model.predict(self.cube.features(rows))
        return log_expected_improvement(mean, sd, best)

    def _perturb(self, anchors: Array, scales: Array, rng: np.random.Generator) -> Array:
        """Snapped Gaussian perturbations of each anchor, at a mix of scales.

        Inactive coordinates (NaN) are drawn uniformly, so a perturbation that
        switches a parent category gives its newly active children fresh values;
        categorical coordinates are redrawn uniformly with some probability,
        since their order in the unit interval means nothing.
        """
        dim = self.cube.dim
        base = np.repeat(anchors, _LOCAL_PER_ANCHOR, axis=0)
        base = np.where(np.isnan(base), rng.random(base.shape), base)
        sd = rng.choice(scales, size=(len(base), 1))
        moved = base + sd * rng.standard_normal(base.shape)
        flip = self.cube.categorical[None, :] & (rng.random(base.shape) < _CATEGORY_RESAMPLE)
        moved = np.where(flip, rng.random(base.shape), moved)
        # Reflect at the borders rather than clip, so edges are not over-sampled.
        moved = np.abs(moved)
        moved = np.where(moved > 1.0, 2.0 - moved, moved)
        return self.cube.snap(moved.reshape(-1, dim))


def cost_terms(settings: Settings, features: int) -> list[cost.Term]:
    """One call's worst case (see :mod:`kubesweep.suggestion.cost`).

    The kernel fit evaluates the likelihood about twice per iteration, each a
    Cholesky factorisation and inverse (``m³``) and distance products (``m²d``).
    Each of the model picks refits the GP on the fitted points, the pending lies
    and the batch so far (``N³``) and scores the candidates and the local points
    against them (``(c + local) N (N + d)``).
    """
    m = min(settings.integer("kernelFitPoints"), settings.integer("maxFitPoints"))
    iterations = settings.integer("kernelFitIterations")
    n = settings.integer("maxFitPoints") + cost.MAX_PENDING_IN_MODEL + cost.MODEL_PICKS
    scored = settings.integer("candidates") + _LOCAL_POINTS
    d = features
    fit = cost.Term(
        "kernelFitPoints" if m >= iterations else "kernelFitIterations",
        2 * iterations * (m**3 + 2 * m * m * d),
        8 * (10 * m * m + 2 * m * d) if iterations else 0,
    )
    model = cost.Term("maxFitPoints", cost.MODEL_PICKS * n**3, 8 * 4 * n * n)
    scoring = cost.Term(
        "candidates", cost.MODEL_PICKS * scored * n * (n + d), 8 * 3 * scored * (n + d)
    )
    return [fit, model, scoring]


def create(
    space: SearchSpace, settings: Mapping[str, ParameterValue], seed: int | None
) -> BayesianOptimization:
    """The ``bayesian`` algorithm for one request; refuses bad or too costly settings by name."""
    algorithm = BayesianOptimization(space, parse(SETTINGS, settings), seed)
    features = algorithm.cube.feature_count
    cost.check(
        cost_terms(algorithm.settings, features),
        ", ".join(f"{s.name} {algorithm.settings.as_dict()[s.name]}" for s in SETTINGS[1:5])
        + f" and {features} model features",
    )
    return algorithm
