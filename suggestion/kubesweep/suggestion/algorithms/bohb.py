"""BOHB: Hyperband whose new configurations come from a TPE-like model.

Paper: Falkner, Klein & Hutter 2018, "BOHB: Robust and Efficient
Hyperparameter Optimization at Scale" (ICML).

How it works, and why:

- The budget schedule, brackets, rungs and promotions are exactly
  :mod:`.hyperband`'s (rebuilt from trial tags, no hidden state); BOHB only
  replaces its :data:`~.hyperband.ConfigSampler`, so none of that logic is
  duplicated here.
- A new configuration is drawn uniformly with probability ``randomFraction``
  (which keeps BOHB's worst case within a constant factor of Hyperband's);
  otherwise from a model fitted on the trials of the *largest* budget that has
  more than ``minPointsInModel`` finished trials: the best ``topFraction`` of
  them form the good density ``l(x)``, the rest the bad density ``g(x)``
  (multivariate Parzen estimators, :mod:`._parzen`). ``nCandidates`` points are
  drawn from ``l`` with kernels widened by ``bandwidthFactor`` and the one with
  the best ``l(x)/g(x)`` is chosen, as in the paper.
- The largest budget is used because its losses are the most faithful to the
  full-budget objective; smaller budgets inform the model only until a larger
  one has enough data.
- A budget below the top one informs the model only once its ranking has been
  checked against the top budget: of the configurations finished at both, at
  least three, it must order more pairs right than wrong (Kendall's tau above
  0, i.e. a ranking loss below one half, the measure MFES-HB (Li et al., AAAI
  2021) and Hyper-Tune (Li et al., VLDB 2022) weigh each fidelity's model by).
  Until then new configurations are uniform, as in Hyperband. Why: the paper's
  rule trusts any budget, so while the first bracket is still filling, the model
  is fitted on the cheapest losses alone; where they rank configurations
  differently from the full budget (on the MLP benchmark of
  ``docs/benchmarks.md`` the three configurations best after one epoch rank
  50th to 98th of 224 after 27), it steers the first brackets away from what
  the full budget rewards. That made BOHB's first full-budget results worse
  than Hyperband's (over 40 seeds, the median best of its first bracket 0.105
  against 0.093 with uniform draws) and its time to random search's final value
  47 % of the budget against Hyperband's 23-31 %. Where cheap budgets do rank
  well, the check delays them only until three configurations confirm it.
- Pending trials at the model's budget and the configurations drawn earlier in
  the same call count as bad (constant liar), so parallel slots spread out.
- Values a trial lacks or that lie outside the current space are unknown, never
  clipped to a bound; the densities model them as ``tpe`` does.

Settings:

- ``randomFraction`` (default ``0.3333``): share of new configurations drawn
  uniformly at random.
- ``topFraction`` (default ``0.15``): share of the model budget's trials in the
  good group.
- ``nCandidates`` (default ``64``): points drawn from ``l(x)`` per configuration.
- ``bandwidthFactor`` (default ``3.0``): widening of the kernels when sampling.
- ``minPointsInModel`` (default ``0``, meaning parameters + 1): finished trials
  a budget needs (strictly more) before a model is fitted on it.
- ``maxObservations`` (default ``1000``): most finished trials of the model's
  budget the densities are fitted on (the most recent).

Scale: the densities hold at most ``maxObservations`` finished trials and the
128 most recent pending ones, and one call draws at most 32 configurations
from the model (the rest uniformly), so a call's cost stops growing with the
history. Settings whose combined cost exceeds the service's limits (see
``docs/suggestion-service.md``) are refused with the costliest setting named:
``nCandidates`` times ``maxObservations`` times the parameter count is bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from scipy.stats import kendalltau

from kubesweep.api.experiment import ParameterValue
from kubesweep.api.suggestion_wire import ObservedTrial, SearchSpace, SuggestReply
from kubesweep.suggestion import cost
from kubesweep.suggestion.algorithms._model_based import observe
from kubesweep.suggestion.algorithms._parzen import Parzen, ParzenOptions, ranked_by_ratio
from kubesweep.suggestion.algorithms._unitcube import Array, UnitCube
from kubesweep.suggestion.algorithms.hyperband import Hyperband, require_fidelity
from kubesweep.suggestion.contract import History
from kubesweep.suggestion.settings import Setting, Settings, parse
from kubesweep.suggestion.space import Key, Space, Values

SETTINGS = (
    Setting(
        "randomFraction",
        1.0 / 3.0,
        "share of new configurations drawn uniformly at random",
        minimum=0.0,
        maximum=1.0,
    ),
    Setting(
        "topFraction",
        0.15,
        "share of the model budget's trials in the good group",
        minimum=0.01,
        maximum=0.5,
    ),
    Setting(
        "nCandidates", 64, "points drawn from l(x) per configuration", minimum=1, maximum=10_000
    ),
    Setting(
        "bandwidthFactor", 3.0, "widening of the kernels when sampling", minimum=1.0, maximum=100.0
    ),
    Setting(
        "minPointsInModel",
        0,
        "finished trials a budget needs (strictly more) before a model is fitted; 0 means "
        "parameters + 1",
        minimum=0,
        maximum=100_000,
    ),
    Setting(
        "maxObservations",
        1000,
        "most finished trials of the model's budget the densities are fitted on (the most recent)",
        minimum=10,
        maximum=1_000_000,
    ),
)


class _Model:
    """The good and bad densities of one budget, and the points lied about so far."""

    def __init__(
        self, cube: UnitCube, good: Parzen, bad_rows: Array, options: ParzenOptions
    ) -> None:
        self.cube = cube
        self.good = good
        self.bad_rows = bad_rows
        self.options = options

    def propose(self, rng: np.random.Generator, candidates: int) -> Array:
        """Candidate rows, best ``l/g`` first."""
        bad = Parzen(self.cube, self.bad_rows, np.ones(len(self.bad_rows)), self.options)
        return ranked_by_ratio(self.cube, self.good, bad, rng, candidates)

    def lie(self, row: Array) -> None:
        """Count ``row`` as a bad point from now on."""
        self.bad_rows = np.vstack([self.bad_rows, row[None, :]])


class Bohb:
    """Hyperband with a model-based sampler; see the module docstring."""

    def __init__(self, space: SearchSpace, settings: Settings, seed: int | None) -> None:
        self.space = Space(space)
        require_fidelity(self.space, "bohb")
        self.cube = UnitCube(self.space)
        self.settings = settings
        self.hyperband = Hyperband(self.space, seed, sampler=self._sample)
        self._history: History | None = None
        self._model: _Model | None = None
        self._model_picks = 0

    def suggest(self, history: History, count: int) -> SuggestReply:
        """Hyperband's reply, its new configurations drawn by the model."""
        self._history, self._model, self._model_picks = history, None, 0
        try:
            return self.hyperband.suggest(history, count)
        finally:
            self._history, self._model = None, None

    def _sample(
        self, history: History, count: int, avoid: set[Key], rng: np.random.Generator, budget: float
    ) -> list[Values]:
        """Hyperband's sampler: model-based draws, uniform ones with randomFraction."""
        del budget  # new configurations start at any rung; the model uses the best budget
        if self._model is None:
            self._model = self._fit(history)
        out: list[Values] = []
        random_fraction = self.settings.real("randomFraction")
        candidates = self.settings.integer("nCandidates")
        for _ in range(count):
            values = None
            if (
                self._model is not None
                and rng.random() >= random_fraction
                and self._model_picks < cost.MODEL_PICKS
            ):
                self._model_picks += 1
                values = self._from_model(self._model, rng, candidates, avoid)
            if values is None:
                found = self.space.sample_unique(rng, 1, avoid)
                if not found:
                    break
                values = found[0]
                if self._model is not None:
                    self._model.lie(self.cube.snap(self.cube.encode([values]))[0])
            out.append(values)
        return out

    def _from_model(
        self, model: _Model, rng: np.random.Generator, candidates: int, avoid: set[Key]
    ) -> Values | None:
        for row in model.propose(rng, candidates):
            values = self.cube.decode(row)
            key = self.space.key(values)
            if key not in avoid:
                avoid.add(key)
                model.lie(row)
                return values
        return None

    def _fit(self, history: History) -> _Model | None:
        """The model on the largest budget with enough finished trials whose ranking
        the top budget confirms (the top budget needs no confirmation), if any."""
        needed = self.settings.integer("minPointsInModel") or self.space.dim + 1
        by_budget: dict[float, list[ObservedTrial]] = {}
        for trial in history.trials:
            if trial.fidelity is not None:
                by_budget.setdefault(round(trial.fidelity, 9), []).append(trial)
        top = self.hyperband.budgets[-1]
        top_losses: dict[Key, float] | None = None
        for budget in sorted(by_budget, reverse=True):
            trials = by_budget[budget]
            observations = observe(self.cube, History(trials, history.direction))
            n = len(observations.losses)
            if n <= needed:
                continue
            if budget < top - 1e-9 * top:
                if top_losses is None:
                    top_losses = self._losses_by_key(
                        history,
                        (t for b, ts in by_budget.items() if b >= top - 1e-9 * top for t in ts),
                    )
                if not ranks_agree(self._losses_by_key(history, trials), top_losses):
                    continue
            # The most recent observations only, so the cost stops growing with history.
            recent = self.settings.integer("maxObservations")
            unit, losses = observations.unit[-recent:], observations.losses[-recent:]
            n = len(losses)
            order = np.argsort(losses, kind="stable")
            n_good = max(needed, int(np.ceil(self.settings.real("topFraction") * n)))
            n_bad = max(needed, n - n_good)
            good_rows = unit[order[:n_good]]
            pending = observations.pending[-cost.MAX_PENDING_IN_MODEL :]
            bad_rows = np.vstack([unit[order[-n_bad:]], pending])
            options = ParzenOptions(bandwidth_factor=self.settings.real("bandwidthFactor"))
            good = Parzen(self.cube, good_rows, np.ones(len(good_rows)), options)
            return _Model(self.cube, good, bad_rows, options)
        return None

    def _losses_by_key(self, history: History, trials: Iterable[ObservedTrial]) -> dict[Key, float]:
        """The best finished loss of each configuration among ``trials``."""
        out: dict[Key, float] = {}
        for trial in trials:
            loss = history.loss(trial)
            if loss is not None:
                key = self.space.key(trial.parameters)
                out[key] = min(loss, out.get(key, loss))
        return out


#: Fewest configurations finished at both budgets for a rank correlation to say
#: more than the order of a single pair.
MIN_SHARED_CONFIGURATIONS = 3


def ranks_agree(low: Mapping[Key, float], top: Mapping[Key, float]) -> bool:
    """Whether the losses ``low`` rank the configurations they share with ``top`` more
    often right than wrong (Kendall's tau > 0), on enough shared configurations."""
    shared = [key for key in low if key in top]
    if len(shared) < MIN_SHARED_CONFIGURATIONS:
        return False
    tau = kendalltau([low[k] for k in shared], [top[k] for k in shared]).statistic
    return bool(np.isfinite(tau) and tau > 0.0)


def cost_terms(settings: Settings, dims: int) -> list[cost.Term]:
    """One call's worst case (see :mod:`kubesweep.suggestion.cost`): each model-based
    configuration scores its candidates against every kernel of both densities."""
    candidates = settings.integer("nCandidates")
    kernels = 2 * settings.integer("maxObservations") + cost.MAX_PENDING_IN_MODEL
    kernels += cost.MODEL_PICKS
    culprit = "maxObservations" if kernels >= candidates else "nCandidates"
    work = cost.MODEL_PICKS * candidates * kernels * dims * cost.KERNEL_OPERATIONS
    return [cost.Term(culprit, work, 8 * 3 * candidates * kernels)]


def create(space: SearchSpace, settings: Mapping[str, ParameterValue], seed: int | None) -> Bohb:
    """The ``bohb`` algorithm for one request; the space must have a fidelity."""
    algorithm = Bohb(space, parse(SETTINGS, settings), seed)
    dims = algorithm.space.dim
    values = algorithm.settings.as_dict()
    cost.check(
        cost_terms(algorithm.settings, dims),
        f"nCandidates {values['nCandidates']}, maxObservations {values['maxObservations']} "
        f"and {dims} parameters",
    )
    return algorithm
