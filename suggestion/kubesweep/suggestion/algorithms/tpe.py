"""Tree-structured Parzen Estimator.

Papers: Bergstra, Bardenet, Bengio & Kégl 2011, "Algorithms for
Hyper-Parameter Optimization" (TPE); Watanabe 2023, "Tree-Structured Parzen
Estimator: Understanding Its Algorithm Components and Their Roles for Better
Empirical Performance" (the defaults below); Falkner, Klein & Hutter 2018
(multivariate kernels, as BOHB uses).

How it works, and why:

- The finished trials are split by loss: the best ``min(ceil(gamma n),
  gammaCap)`` form the good group, the rest the bad group. A Parzen estimator
  (see :mod:`._parzen`) is fitted to each: ``l(x)`` and ``g(x)``.
- ``nCandidates`` points are drawn from ``l`` and snapped to valid values; the
  one maximising ``l(x)/g(x)`` (equivalent to expected improvement under the
  TPE model) is suggested.
- Multivariate kernels (one joint kernel per observation) capture interactions
  between parameters that independent per-parameter estimators miss; Watanabe
  2023 finds them better on most benchmarks. Inactive conditional parameters
  are uniform in the kernels and ignored when scoring, so trials with different
  active sets share one model.
- Parallel slots (``constantLiar``): pending trials and earlier picks of the
  same batch join the bad group, so the next pick moves away from them
  (Optuna's constant liar).
- Scale: the good group is capped by ``gammaCap`` and the bad group keeps the
  ``maxObservations`` most recent of the rest (and the 128 most recent pending
  trials), so a call's cost stops growing with the history. Settings whose
  combined cost exceeds the service's limits (see ``docs/suggestion-service.md``)
  are refused with the costliest setting named: ``nCandidates`` times
  ``gammaCap + maxObservations`` times the parameter count is bounded. One
  call makes at most 32 model-based picks; the rest of a larger batch is
  drawn uniformly.
- Several objectives (``spec.objectives``): trials are ordered for the split by
  non-dominated rank, then by their share of their rank's hypervolume
  (multi-objective TPE, Ozaki et al. 2020; see :func:`._pareto.scalarised`),
  and the rest is as with one objective, except that the estimators are one
  per parameter unless ``multivariate`` is set. The good group is then a set
  of points spread along the front: the parameters that place a point on the
  front vary across it while the others agree, and one estimator per parameter
  pools each parameter's values over the whole group, where ten joint kernels
  in several dimensions each stay at one front point. Measured on the four
  problems of ``bench.suggest.multi_objective`` (the same ones that score it, so
  the comparison favours it): median hypervolume at 100 trials higher on DTLZ2
  and the MLP task, lower on ZDT1 and the gradient-boosting task (see
  ``docs/benchmarks.md``). Optuna's multi-objective TPE is univariate by default too.
- The first ``nStartupTrials`` suggestions follow a scrambled Sobol sequence
  fixed by the seed.
- History from elsewhere (a warm start, a sweep whose bounds changed) and
  trials that set only some parameters (``units_i`` read only for ``i <
  n_layers``): a value the space cannot place (absent, beyond the current
  bounds, an unknown category) is unknown, never clipped to a bound where it
  would count as evidence. Such a trial's kernel is used as usual in its other
  dimensions; in the unknown one it is that parameter's own estimator over the
  trials that have a value (as univariate TPE would fit it; Optuna likewise
  models such parameters one by one). A trial with no known value is left out.

Settings:

- ``nStartupTrials`` (default ``10``): Sobol trials before the model is used
  (pending and failed trials count).
- ``nCandidates`` (default ``24``): points drawn from ``l(x)`` per pick while
  fewer than 40 trials have finished; from there the number grows with the
  history, to 2.5 times at 100 finished trials. Early, few candidates keep the
  search broad (the best of many draws from a loose ``l`` is an outlier of
  ``g``, not a better point); once ``l`` has narrowed onto a basin, more draws
  from it find its bottom: measured on the benchmark problems, 64 candidates
  from the start lowered the regret at 100 trials on Branin, Hartmann-6 and
  Rosenbrock-4 but raised it at 50 on Hartmann-6 and the mixed problem.
- ``gamma`` (default ``0.1``): fraction of the finished trials in the good group.
- ``gammaCap`` (default ``25``): most trials in the good group.
- ``priorWeight`` (default ``1.0``): weight of the uniform prior component.
- ``multivariate`` (default ``true``; with several objectives ``false`` unless
  set): joint kernels rather than one estimator per parameter.
- ``magicClip`` (default ``true``): lower-bound bandwidths by ``1/min(100, n+1)``.
- ``constantLiar`` (default ``true``): count pending points as bad.
- ``maxObservations`` (default ``1000``): most trials kept in the bad group
  (the most recent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial

import numpy as np
from numpy.typing import NDArray

from kubesweep.api.experiment import ParameterValue
from kubesweep.api.suggestion_wire import SearchSpace, SuggestReply
from kubesweep.suggestion import cost
from kubesweep.suggestion.algorithms._model_based import Batch, Observations, suggest_after_design
from kubesweep.suggestion.algorithms._pareto import scalarised
from kubesweep.suggestion.algorithms._parzen import (
    Parzen,
    ParzenOptions,
    ranked_by_ratio,
    split_count,
)
from kubesweep.suggestion.algorithms._unitcube import Array, UnitCube
from kubesweep.suggestion.contract import History
from kubesweep.suggestion.settings import Setting, Settings, parse
from kubesweep.suggestion.space import Space

SETTINGS = (
    Setting(
        "nStartupTrials",
        10,
        "Sobol trials before the model is used",
        minimum=1,
        maximum=100_000,
    ),
    Setting("nCandidates", 24, "points drawn from l(x) per pick", minimum=1, maximum=10_000),
    Setting(
        "gamma", 0.1, "fraction of the finished trials in the good group", minimum=0.01, maximum=0.5
    ),
    Setting("gammaCap", 25, "most trials in the good group", minimum=1, maximum=10_000),
    Setting("priorWeight", 1.0, "weight of the uniform prior component", minimum=1e-3, maximum=1e3),
    Setting(
        "multivariate",
        True,
        "joint kernels rather than one estimator per parameter (with several objectives: "
        "false unless set)",
    ),
    Setting("magicClip", True, "lower-bound bandwidths by 1/min(100, n+1)"),
    Setting("constantLiar", True, "count pending points as bad"),
    Setting(
        "maxObservations",
        1000,
        "most trials kept in the bad group (the most recent)",
        minimum=10,
        maximum=1_000_000,
    ),
)

_SALT = "tpe"
_RESAMPLE_ROUNDS = 3
_FLAT_WEIGHTS = 25  # extra draws when every candidate repeats a taken point


def options_from(settings: Settings) -> ParzenOptions:
    """The estimator options that the settings describe."""
    return ParzenOptions(
        prior_weight=settings.real("priorWeight"),
        multivariate=settings.flag("multivariate"),
        magic_clip=settings.flag("magicClip"),
    )


def split(
    losses: Array, gamma: float, cap: int, max_bad: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Indices of the good group and of the (most recent, bounded) bad group."""
    order = np.argsort(losses, kind="stable")
    good = order[: split_count(len(losses), gamma, cap)]
    bad = np.sort(order[len(good) :])[-max_bad:] if max_bad > 0 else order[:0]
    return good, bad


def recency_weights(n: int) -> Array:
    """Kernel weights by age: the 25 newest weigh 1, older ones ramp down to ``1/n``.

    Bergstra et al.'s (and Optuna's) ramp: the early, uniformly drawn trials
    matter less to ``g(x)`` once the search has moved on.
    """
    if n <= _FLAT_WEIGHTS:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - _FLAT_WEIGHTS), np.ones(_FLAT_WEIGHTS)])


def pick_by_ratio(
    cube: UnitCube,
    good: Parzen,
    bad: Parzen,
    batch: Batch,
    *,
    rng: np.random.Generator,
    candidates: int,
    fidelity: float | None = None,
) -> bool:
    """Add the candidate drawn from ``good`` with the best ``good/bad`` ratio; False if none new."""
    for _ in range(_RESAMPLE_ROUNDS):
        if batch.take_first_new(ranked_by_ratio(cube, good, bad, rng, candidates), fidelity):
            return True
    return False


class TreeParzen:
    """TPE search; see the module docstring."""

    def __init__(
        self,
        space: SearchSpace,
        settings: Settings,
        seed: int | None,
        multivariate_set: bool = False,
    ) -> None:
        self.space = Space(space)
        self.cube = UnitCube(self.space)
        self.settings = settings
        self.seed = seed
        self.multivariate_set = multivariate_set

    def suggest(self, history: History, count: int) -> SuggestReply:
        """``count`` distinct suggestions (fewer only when the space is exhausted)."""
        options = options_from(self.settings)
        if history.objectives is not None and not self.multivariate_set:
            options = replace(options, multivariate=False)
        return suggest_after_design(
            self.cube,
            scalarised(history),
            count,
            seed=self.seed,
            salt=_SALT,
            design_trials=self.settings.integer("nStartupTrials"),
            min_finished=1,
            model_picks=partial(self._model_picks, options=options),
        )

    def _model_picks(
        self,
        observations: Observations,
        batch: Batch,
        rng: np.random.Generator,
        *,
        options: ParzenOptions,
    ) -> None:
        s = self.settings
        good_idx, bad_idx = split(
            observations.losses,
            s.real("gamma"),
            s.integer("gammaCap"),
            s.integer("maxObservations"),
        )
        good_rows = observations.unit[good_idx]
        good = Parzen(self.cube, good_rows, np.ones(len(good_rows)), options)
        liar = s.flag("constantLiar")
        bad_rows = observations.unit[bad_idx]
        if liar:
            bad_rows = np.vstack([bad_rows, observations.pending[-cost.MAX_PENDING_IN_MODEL :]])
        candidates = candidate_count(s.integer("nCandidates"), len(observations.losses))
        for _ in batch.model_turns(rng):
            rows = np.vstack([bad_rows, batch.batch_rows()]) if liar else bad_rows
            weights = np.ones(len(rows))
            weights[: len(bad_idx)] = recency_weights(len(bad_idx))
            bad = Parzen(self.cube, rows, weights, options)
            if not pick_by_ratio(self.cube, good, bad, batch, rng=rng, candidates=candidates):
                batch.take_random(rng)


#: Finished trials from which the candidate count grows, and its largest factor.
_GROWTH_FROM = 40
_MAX_GROWTH = 2.5


def candidate_count(setting: int, finished: int) -> int:
    """Candidates per pick: ``nCandidates`` up to 40 finished trials, then growing
    in proportion to the history, up to 2.5 times (see the module docstring)."""
    growth = min(_MAX_GROWTH, max(1.0, finished / _GROWTH_FROM))
    return max(1, round(setting * growth))


def cost_terms(settings: Settings, dims: int) -> list[cost.Term]:
    """One call's worst case (see :mod:`kubesweep.suggestion.cost`): each model pick
    scores its candidates (at their grown count) against every kernel of both
    densities, per parameter."""
    candidates = candidate_count(settings.integer("nCandidates"), 10**9)
    good = settings.integer("gammaCap")
    bad = settings.integer("maxObservations") + cost.MAX_PENDING_IN_MODEL + cost.MODEL_PICKS
    work = cost.MODEL_PICKS * candidates * dims * cost.KERNEL_OPERATIONS
    return [
        cost.Term("gammaCap", work * good, 8 * 3 * candidates * good),
        cost.Term(
            "maxObservations" if bad >= candidates else "nCandidates",
            work * bad,
            8 * 3 * candidates * bad,
        ),
    ]


def create(
    space: SearchSpace, settings: Mapping[str, ParameterValue], seed: int | None
) -> TreeParzen:
    """The ``tpe`` algorithm for one request; refuses bad or too costly settings by name."""
    algorithm = TreeParzen(
        space, parse(SETTINGS, settings), seed, multivariate_set="multivariate" in settings
    )
    dims = algorithm.space.dim
    values = algorithm.settings.as_dict()
    cost.check(
        cost_terms(algorithm.settings, dims),
        ", ".join(
            f"{name} {values[name]}" for name in ("nCandidates", "gammaCap", "maxObservations")
        )
        + f" and {dims} parameters",
    )
    return algorithm
