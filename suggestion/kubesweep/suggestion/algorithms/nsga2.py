"""NSGA-II: an evolutionary search for the Pareto front of several objectives.

Deb, Pratap, Agarwal & Meyarivan, "A Fast and Elitist Multiobjective Genetic
Algorithm: NSGA-II", IEEE Transactions on Evolutionary Computation 6(2)
(2002). Parents are chosen by binary tournament on the crowded comparison:
a lower non-dominated rank wins, and within a rank the point in the less
crowded place (larger crowding distance), so the population spreads along the
front. Constraints follow the paper's constrained domination: a feasible trial
beats an infeasible one, and of two infeasible trials the one that missed by
less wins.

The algorithm runs steady-state from the history alone, as every algorithm
here must: each reply selects the elite, the best ``populationSize`` finished
trials in that order over the whole history (NSGA-II's elitist survival), and
breeds children from it. Children come from simulated binary crossover
(``crossoverEta``) with probability ``crossoverProbability`` and polynomial
mutation (``mutationEta``) of each number coordinate with probability
``mutationRate / d`` in the unit cube, where ``d`` is the number of parameters;
a categorical is inherited from either parent and redrawn on mutation. Until
``populationSize`` trials have finished, points are uniform random. Inactive or
unknown coordinates of a parent are drawn uniformly. A child that repeats a
taken point is bred again, and a finite space reports ``exhausted`` once used up.
With one objective it is a plain elitist genetic algorithm.

Settings:

- ``populationSize`` (default ``20``): trials in the elite that parents come from,
  and uniform trials before breeding starts.
- ``crossoverProbability`` (default ``0.9``): chance that a child mixes two parents.
- ``crossoverEta`` (default ``15.0``): SBX index; larger keeps children nearer parents.
- ``mutationRate`` (default ``1.0``): parameters mutated per child, on average.
- ``mutationEta`` (default ``20.0``): polynomial mutation index; larger makes smaller steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from kubesweep.api.experiment import ParameterValue
from kubesweep.api.suggestion_wire import Assignment, ObservedTrial, SearchSpace, SuggestReply
from kubesweep.suggestion.algorithms._pareto import FloatArray, crowding, pareto_ranks
from kubesweep.suggestion.algorithms._unitcube import UnitCube
from kubesweep.suggestion.contract import History, rng_for
from kubesweep.suggestion.settings import Setting, parse
from kubesweep.suggestion.space import Key, Space

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "populationSize", 20, "trials in the elite that parents come from", minimum=4, maximum=1000
    ),
    Setting(
        "crossoverProbability",
        0.9,
        "chance that a child mixes two parents rather than copying one",
        minimum=0.0,
        maximum=1.0,
    ),
    Setting(
        "crossoverEta",
        15.0,
        "SBX distribution index: larger keeps children nearer parents",
        minimum=0.0,
        maximum=1000.0,
    ),
    Setting(
        "mutationRate",
        1.0,
        "parameters mutated per child, on average",
        minimum=0.0,
        maximum=64.0,
    ),
    Setting(
        "mutationEta",
        20.0,
        "polynomial mutation index: larger makes smaller steps",
        minimum=0.0,
        maximum=1000.0,
    ),
)

#: Children bred per wanted point before the rest of a reply is drawn uniformly.
_BREEDING_TRIES = 20


def elite_order(
    losses: FloatArray,
    feasible: Sequence[bool],
    violations: Sequence[float],
    size: int | None = None,
) -> np.ndarray:
    """Row indices best first: feasible by rank then crowding, then infeasible by violation.

    With ``size``, only the first ``size`` rows of that order (at least): ranks past
    the one that fills it are not ordered, which keeps a call at 10,000 finished
    trials of one objective (as many ranks as trials) from a Python pass per rank.
    """
    rows = np.arange(len(losses))
    wanted = len(rows) if size is None else size
    ok = np.array(feasible, dtype=bool)
    order: list[int] = []
    good = rows[ok]
    if len(good):
        ranks = pareto_ranks(losses[good])
        by_rank = np.argsort(ranks, kind="stable")
        sorted_rows = good[by_rank]
        starts = [0, *(np.flatnonzero(np.diff(ranks[by_rank])) + 1).tolist(), len(good)]
        for start, end in pairwise(starts):
            if len(order) >= wanted:
                break
            members = sorted_rows[start:end]
            distance = crowding(losses[members])
            # larger distance first; ties keep history order (stable)
            order.extend(int(i) for i in members[np.argsort(-distance, kind="stable")])
    if len(order) < wanted:
        bad = rows[~ok]
        order.extend(int(i) for i in bad[np.argsort(np.asarray(violations)[bad], kind="stable")])
    return np.array(order[:wanted], dtype=int)


class Nsga2:
    """Steady-state NSGA-II over the unit cube of the space."""

    def __init__(self, space: Space, seed: int | None, settings: Mapping[str, Any]) -> None:
        self.space = space
        self.seed = seed
        self.population = int(settings["populationSize"])
        self.crossover_probability = float(settings["crossoverProbability"])
        self.crossover_eta = float(settings["crossoverEta"])
        self.mutation_probability = min(1.0, float(settings["mutationRate"]) / max(1, space.dim))
        self.mutation_eta = float(settings["mutationEta"])
        self.categorical = np.array([d.is_categorical for d in space.dimensions], dtype=bool)
        self.cube = UnitCube(space)

    def suggest(self, history: History, count: int) -> SuggestReply:
        """``count`` children of the elite (uniform points until it exists)."""
        rng = rng_for(self.seed, len(history.trials), "nsga2")
        # Every trial's unit row, encoded once and column by column (10,000 trials).
        units = self.cube.encode([t.parameters for t in history.trials])
        parents = self._elite(history, units)
        out: list[dict[str, ParameterValue]] = []
        if parents is not None:
            # Points are compared by their snapped unit rows, rounded: a child that only
            # copies a parent differs from it by rounding alone, and the rows tell taken
            # points apart as the space's keys do (equal values, equal rows).
            near = set(self.cube.row_keys(units))
            tries = 0
            while len(out) < count and tries < count * _BREEDING_TRIES:
                tries += 1
                child = self._child(parents, rng)
                values = self.space.from_unit(child)
                (close,) = self.cube.row_keys(self.space.to_unit(values)[None, :])
                if close not in near:
                    near.add(close)
                    out.append(values)
        if len(out) < count:
            avoid: set[Key] = {self.space.key(t.parameters) for t in history.trials}
            avoid.update(self.space.key(values) for values in out)
            out.extend(self.space.sample_unique(rng, count - len(out), avoid))
        return SuggestReply(
            assignments=[Assignment(parameters=p) for p in out], exhausted=len(out) < count
        )

    def _elite(self, history: History, units: FloatArray) -> FloatArray | None:
        """The unit rows of the best ``population`` finished trials, best first."""
        rows: list[int] = []
        losses: list[tuple[float, ...]] = []
        feasible: list[bool] = []
        violations: list[float] = []
        for row, trial in enumerate(history.trials):
            vector = history.losses(trial)
            if vector is None:
                continue
            rows.append(row)
            losses.append(vector)
            feasible.append(trial.feasible is not False)
            violations.append(_violation(trial))
        if len(rows) < self.population:
            return None
        order = elite_order(np.array(losses, dtype=float), feasible, violations, self.population)
        elite: FloatArray = units[np.array(rows)[order]]
        return elite

    def _child(self, parents: FloatArray, rng: np.random.Generator) -> FloatArray:
        """One child of two tournament winners: crossover, then mutation."""
        first, second = (self._fill(parents[self._tournament(rng)], rng) for _ in range(2))
        child = first.copy()
        if rng.random() < self.crossover_probability:
            child = self._crossover(first, second, rng)
        return self._mutate(child, rng)

    def _tournament(self, rng: np.random.Generator) -> int:
        """The better (earlier in the elite's order) of two random members."""
        a, b = rng.integers(0, self.population, size=2)
        return int(min(a, b))

    def _fill(self, row: FloatArray, rng: np.random.Generator) -> FloatArray:
        """The row with inactive or unknown coordinates drawn uniformly."""
        missing = np.isnan(row)
        if not missing.any():
            return row
        filled = row.copy()
        filled[missing] = rng.random(int(missing.sum()))
        return filled

    def _crossover(self, a: FloatArray, b: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Simulated binary crossover of numbers; categoricals from either parent."""
        u = rng.random(len(a))
        beta = np.where(
            u <= 0.5,
            (2.0 * u) ** (1.0 / (self.crossover_eta + 1.0)),
            (1.0 / (2.0 * (1.0 - u) + 1e-300)) ** (1.0 / (self.crossover_eta + 1.0)),
        )
        mixed = 0.5 * ((1.0 + beta) * a + (1.0 - beta) * b)
        swap = rng.random(len(a)) < 0.5
        mixed = np.where(swap, 0.5 * ((1.0 - beta) * a + (1.0 + beta) * b), mixed)
        picked = np.where(rng.random(len(a)) < 0.5, a, b)
        child: FloatArray = np.where(self.categorical, picked, mixed)
        return np.clip(child, 0.0, 1.0)

    def _mutate(self, x: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Polynomial mutation of numbers, a uniform redraw of categoricals."""
        mutate = rng.random(len(x)) < self.mutation_probability
        u = rng.random(len(x))
        power = 1.0 / (self.mutation_eta + 1.0)
        delta = np.where(
            u < 0.5,
            (2.0 * u + (1.0 - 2.0 * u) * (1.0 - x) ** (self.mutation_eta + 1.0)) ** power - 1.0,
            1.0 - (2.0 * (1.0 - u) + 2.0 * (u - 0.5) * x ** (self.mutation_eta + 1.0)) ** power,
        )
        stepped = np.clip(x + delta, 0.0, 1.0)
        redrawn = rng.random(len(x))
        moved = np.where(self.categorical, redrawn, stepped)
        return np.where(mutate, moved, x)


def _violation(trial: ObservedTrial) -> float:
    if trial.feasible is not False:
        return 0.0
    return np.inf if trial.violation is None else float(trial.violation)


def create(space: SearchSpace, settings: Mapping[str, ParameterValue], seed: int | None) -> Nsga2:
    """Build NSGA-II."""
    parsed = parse(SETTINGS, settings)
    return Nsga2(Space(space), seed, parsed.as_dict())
