"""CMA-ES: the covariance matrix adaptation evolution strategy, with IPOP or BIPOP restarts.

Papers: Hansen & Ostermeier 2001, "Completely Derandomized Self-Adaptation in
Evolution Strategies" (CMA-ES); Hansen 2016, "The CMA Evolution Strategy: A
Tutorial" (arXiv:1604.00772); Auger & Hansen 2005, "A Restart CMA Evolution
Strategy With Increasing Population Size" (IPOP); Hansen 2009, "Benchmarking a
BI-Population CMA-ES on the BBOB-2009 Function Testbed" (BIPOP); Hamano, Saito,
Nomura & Shirakawa 2022, "CMA-ES with Margin: Lower-Bounding Marginal
Probability for Mixed-Integer Black-Box Optimization" (``margin``); Brockhoff,
Auger, Hansen, Arnold & Hohm 2010, "Mirrored Sampling and Sequential Selection
for Evolution Strategies" (``mirrored``). The distribution and its updates are
the ``cmaes`` library's (``CMA``, or ``CMAwM`` with ``margin``).

How it works, and why:

- Each generation samples ``populationSize`` points from a multivariate normal
  distribution; once their results are in, the mean moves towards the best half
  and the step size and covariance adapt to the shape of the landscape. It suits
  float and int spaces of a few to a few dozen parameters, budgets of hundreds
  of trials or more, and many parallel slots.
- The first distribution is centred in the cube with a step size of a sixth of
  each range (``sigma0``): three standard deviations then reach either end, so
  the first generations cover the whole range yet few draws fall outside it.
  With a quarter (the default before), two standard deviations reach the ends:
  in ten dimensions about a third of the draws fall outside and are drawn
  again, and the search stays broad for longer; after 50 trials the median
  best value over 40 seeds was 1.4 to 2.1 times as far from the optimum on
  Hartmann-6, Rosenbrock-4 and Levy-10 (``docs/benchmarks.md``).
- Mirrored sampling (``mirrored``): each odd member is the reflection of the
  member before it through the mean. The pair is as likely as two independent
  draws, but their errors cancel in the mean's update, so the mean moves with
  less noise and fewer trials; it also shrinks the step size somewhat sooner,
  which a small budget rewards (a run that shrinks too far ends in a restart).
  It applies to spaces of unrounded floats only: with integers or steps the
  sooner-shrinking step size freezes a rounded value next to the best one.
- The mean of each generation after the first is proposed once, before the
  generation's members (``evaluateMean``): after an update the mean is the
  distribution's best estimate of the optimum, and once the search closes in
  it is often better than every member drawn around it, so trying it costs one
  trial a generation and often finds the best value sooner. It is tagged
  ``mean`` (no member number) and never moves the distribution: it is no draw
  from it. The first generation's mean is only the centre of the space, no
  better than a draw, so it is not proposed.
- It searches the unit cube of the space (log parameters on their log scale).
  Integers and stepped floats are rounded; the coordinates they were drawn at
  are kept in the trial's ``raw`` tag, so the update sees the draws, not the
  rounded values. With ``margin``, evenly spaced integers and steps are
  discrete coordinates of CMA-ES with margin instead, which keeps some
  probability on neighbouring values so a run never freezes on one integer (a
  generation then costs about three times as much). One-value ranges stay out of
  the search.
- Categorical parameters (and so conditional ones, which need a categorical
  parent) are refused, by the API at admission and here, naming the parameter:
  use ``tpe`` or ``bayesian`` for such spaces.
- No hidden state: each suggestion is tagged with its ``restart``,
  ``generation`` and ``member`` numbers, and each call rebuilds the current
  restart by replay. The restart's optimizer is fixed by the seed; each
  generation draws from its own random stream, so member ``k`` of a generation
  is always the same point. A generation is told once its first
  ``populationSize`` members with a usable result, in member order, are known
  (every member before them finished), each as the point its trial records;
  told generations are never drawn again, so a call costs one update per
  generation. Then the next members of the current generation are handed out.
  While a generation waits for results, further slots get further members of
  the same generation, so no slot idles; results beyond the first
  ``populationSize`` usable ones do not move the distribution. Failed and NaN
  trials are left out, and the generation waits for more members instead.
- Restarts (``restarts``): when the library's termination criteria fire after
  a generation (no progress of the objective, a step size too small to matter,
  a degenerate covariance), or when the distribution keeps proposing points
  already tried (a run that has converged in a discrete space), a new restart
  begins at a uniformly random mean. ``ipop`` multiplies the population by
  ``incPopsize`` at each restart (a more global search each time); ``bipop``
  alternates between that regime and small-population runs with a smaller step
  size (local searches), keeping the evaluations spent in each regime about
  equal. ``none`` never restarts.
- A point already in the history (pending included) or in the same reply is
  never proposed again: such a member is skipped. In a finite space whose
  unused points the search no longer reaches, they are drawn uniformly, and
  the space is ``exhausted`` once none is left. Trials without the tags (a warm
  start, another algorithm's history) are avoided but do not move the
  distribution.
- Scale: a call replays the generations of the current restart, one update
  each (each restart starts afresh), so its cost grows with that restart's
  trials divided by the population: about 40 ms of CPU at 1,000 trials of four
  parameters and 0.45 s at 10,000 in a single restart; ``margin`` costs about
  three times as much (``python -m tests.suggestion.latency cmaes``).

Settings:

- ``populationSize`` (default ``0``, meaning ``4 + floor(3 ln n)`` for ``n``
  searched parameters): points per generation of the first restart. At least 4:
  a generation's better half then holds two members, which the covariance's
  rank-mu update needs (with one, the library's learning rates divide by zero).
- ``sigma0`` (default ``1/6``, 0.1667): the initial step size, as a fraction of
  each parameter's range (on its log scale when ``log``).
- ``restarts`` (default ``"ipop"``): ``ipop``, ``bipop`` or ``none``.
- ``margin`` (default ``false``): search evenly spaced integers and steps with
  CMA-ES with margin.
- ``incPopsize`` (default ``2``): the factor by which the population grows at
  each large restart.
- ``mirrored`` (default ``true``): draw members in pairs mirrored through the
  mean (spaces of unrounded floats only).
- ``evaluateMean`` (default ``true``): propose each generation's mean once,
  from the second generation on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cmaes  # type: ignore[import-untyped]
import numpy as np

from kubesweep.api.experiment import ParameterType, ParameterValue
from kubesweep.api.suggestion_wire import (
    Assignment,
    ObservedTrial,
    SearchSpace,
    SuggestReply,
    TrialState,
)
from kubesweep.suggestion.contract import History, SettingsError, rng_for
from kubesweep.suggestion.settings import Setting, parse
from kubesweep.suggestion.space import Dimension, Key, Space, SpaceError

#: The default initial step size, as a fraction of the range: from the centre of the
#: range, three standard deviations reach either end, so the first generations cover
#: the whole range without most draws falling outside it.
SIGMA0 = 1.0 / 6.0

#: The smallest population that selects two members (its better half).
MIN_POPULATION = 4

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "populationSize",
        0,
        "points per generation of the first restart, at least 4; 0 means 4 + floor(3 ln n)",
        minimum=0,
        maximum=10_000,
    ),
    Setting(
        "sigma0",
        SIGMA0,
        "initial step size, as a fraction of each parameter's range",
        minimum=1e-6,
        maximum=1.0,
    ),
    Setting(
        "restarts",
        "ipop",
        "restart strategy when a run converges: ipop, bipop or none",
        choices=("ipop", "bipop", "none"),
    ),
    Setting(
        "margin",
        False,
        "search integers and steps with CMA-ES with margin (about three times the cost of "
        "a generation)",
    ),
    Setting(
        "incPopsize",
        2,
        "factor by which the population grows at each large restart",
        minimum=1,
        maximum=10,
    ),
    Setting(
        "mirrored",
        True,
        "draw members in pairs mirrored through the mean (spaces of unrounded floats only)",
    ),
    Setting(
        "evaluateMean",
        True,
        "propose the distribution's mean once per generation after the first",
    ),
)

TAG_RESTART = "restart"
TAG_GENERATION = "generation"
TAG_MEMBER = "member"
#: Marks the trial at a generation's mean (with ``evaluateMean``): it carries the
#: restart and generation tags but no member number, so it never moves the distribution.
TAG_MEAN = "mean"
#: The coordinates of the integer and stepped parameters before rounding, which the
#: margin variant's update needs (the parameters alone have lost them).
TAG_RAW = "raw"
#: Coordinates before rounding beyond this are no draw of ours (the unit cube is [0, 1]).
RAW_LIMIT = 1e3

#: Largest population of a restart, however often IPOP doubled it.
MAX_POPULATION = 10_000
#: Members in a row already tried, beyond twice the population, that mean the
#: distribution has converged onto used points (then a restart, or uniform points).
PATIENCE = 32


_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(value: int) -> int:
    """SplitMix64's finaliser: well-spread 64 bits from any integer, cheaply."""
    z = value & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _tag(trial: ObservedTrial, name: str) -> int | None:
    """A non-negative integer tag, or None (absent, or not a plain number)."""
    text = trial.tags.get(name)
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > 9:
        return None
    return int(text)


@dataclass(frozen=True)
class Run:
    """The parameters of one restart: every one is fixed by the seed and earlier restarts."""

    index: int
    population: int
    sigma: float
    mean: np.ndarray
    large: bool
    #: The entropy of the run's random streams (one per generation).
    stream: int = 0


class CmaEs:
    """CMA-ES rebuilt from the tagged history at each call."""

    def __init__(self, space: Space, seed: int | None, settings: Mapping[str, Any]) -> None:
        self.space = space
        self.seed = seed
        self.sigma0 = float(settings["sigma0"])
        self.restarts = str(settings["restarts"])
        self.inc_popsize = int(settings["incPopsize"])
        self.evaluate_mean = bool(settings["evaluateMean"])
        # The searched coordinates: every parameter with more than one value.
        self.free = [d.index for d in space.dimensions if d.size != 1]
        n = len(self.free)
        self.base_population = int(settings["populationSize"]) or (
            4 + math.floor(3 * math.log(max(n, 1)))
        )
        margin = bool(settings["margin"])
        steps = []
        bounds = []
        for i in self.free:
            d = space.dimensions[i]
            if margin and d.step is not None and not d.parameter.log and d.size is not None:
                # Evenly spaced values at the centres of equal slices of [0, 1].
                steps.append(1.0 / d.size)
                bounds.append((0.5 / d.size, 1.0 - 0.5 / d.size))
            else:
                steps.append(0.0)
                bounds.append((0.0, 1.0))
        self.steps = np.array(steps, dtype=float)
        self.bounds = np.array(bounds, dtype=float).reshape(n, 2)
        #: Whether the margin variant searches the evenly spaced integers and steps.
        self.margin = bool(np.any(self.steps > 0))
        #: The coordinates whose values are rounded (integers, steps): their draws before
        #: rounding are kept in a tag, since the parameters alone have lost them.
        self.rounded = np.array([space.dimensions[i].step is not None for i in self.free])
        #: Whether odd members mirror the member before them: in spaces of unrounded
        #: floats only, since mirroring shrinks the step size sooner, which freezes
        #: rounded coordinates on a neighbour of the best value.
        self.mirrored = bool(settings["mirrored"]) and not bool(self.rounded.any())
        self._coordinates = [_coordinate(space.dimensions[i]) for i in self.free]

    # -- the pieces of a run ------------------------------------------------------

    def _optimizer(self, run: Run) -> Any:
        seed = self._generation_seed(run, 0)
        mean = np.clip(run.mean, self.bounds[:, 0], self.bounds[:, 1])
        if self.margin:
            return cmaes.CMAwM(
                mean=mean,
                sigma=run.sigma,
                bounds=self.bounds,
                steps=self.steps,
                seed=seed,
                population_size=run.population,
            )
        return cmaes.CMA(
            mean=mean,
            sigma=run.sigma,
            bounds=self.bounds,
            seed=seed,
            population_size=run.population,
        )

    def _generation_seed(self, run: Run, generation: int) -> int:
        """The seed of a generation's draws: each generation draws from its own stream."""
        return _mix(run.stream + generation * _GOLDEN) >> 32

    def _draw(
        self, optimizer: Any, drawn: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Member ``len(drawn)`` of the generation, whose earlier members are ``drawn``.

        With ``mirrored``, each odd member is the reflection of the one before it
        through the mean (kept inside the cube): it costs no draw from the stream,
        so member ``k`` stays the same point however the generation is replayed.
        """
        if self.mirrored and len(drawn) % 2 == 1:
            mirror = np.clip(2.0 * np.asarray(optimizer.mean) - drawn[-1][0], 0.0, 1.0)
            return mirror, mirror
        if self.margin:
            encoded, raw = optimizer.ask()
            return np.asarray(encoded, dtype=float), np.asarray(raw, dtype=float)
        x = np.asarray(optimizer.ask(), dtype=float)
        return x, x

    def _values(self, encoded: np.ndarray) -> dict[str, ParameterValue]:
        unit = np.full(self.space.dim, 0.5)
        unit[self.free] = np.clip(encoded, 0.0, 1.0)
        return self.space.from_unit(unit)

    def _runs(self, counts: Sequence[int]) -> list[Run]:
        """Restarts ``0..len(counts)``: their parameters, from the trials of the earlier ones."""
        return [
            replace(run, stream=int(rng_for(self.seed, 0, f"cmaes-{run.index}").integers(2**63)))
            for run in self._schedule(counts)
        ]

    def _schedule(self, counts: Sequence[int]) -> list[Run]:
        runs: list[Run] = []
        n = len(self.free)
        large_evaluations = small_evaluations = 0
        large_runs = 0
        for index in range(len(counts) + 1):
            if index == 0:
                run = Run(0, self.base_population, self.sigma0, np.full(n, 0.5), True)
            else:
                rng = rng_for(self.seed, 0, f"cmaes-restart-{index}")
                mean = rng.random(n)
                grown = self.base_population * self.inc_popsize ** min(large_runs, 32)
                large_population = min(MAX_POPULATION, grown)
                if self.restarts == "bipop" and large_evaluations > small_evaluations:
                    u = float(rng.random())
                    ratio = 0.5 * large_population / self.base_population
                    population = max(2, math.floor(self.base_population * ratio ** (u * u)))
                    run = Run(index, population, self.sigma0 * 10 ** (-2 * u), mean, False)
                else:
                    run = Run(index, large_population, self.sigma0, mean, True)
            runs.append(run)
            if index < len(counts):
                if run.large:
                    large_evaluations += counts[index]
                    large_runs += 1
                else:
                    small_evaluations += counts[index]
        return runs

    # -- the call -------------------------------------------------------------------

    def suggest(self, history: History, count: int) -> SuggestReply:
        """``count`` new points of the current generation (or fewer with ``exhausted``)."""
        avoid: set[Key] = {self.space.key(t.parameters) for t in history.trials}
        out: list[Assignment] = []
        if self.free:
            out = self._search(history, count, avoid)
        if len(out) < count:
            rng = rng_for(self.seed, len(history.trials), "cmaes-fill")
            fill = self.space.sample_unique(rng, count - len(out), avoid)
            out.extend(Assignment(parameters=p) for p in fill)
        return SuggestReply(assignments=out, exhausted=len(out) < count)

    def _tagged(self, history: History) -> list[dict[int, dict[int, ObservedTrial]]]:
        """Tagged trials by restart, generation and member: restarts from 0 with no gap."""
        found: dict[int, dict[int, dict[int, ObservedTrial]]] = {}
        for trial in history.trials:
            if TAG_MEMBER not in trial.tags:
                continue
            r, g, m = (_tag(trial, t) for t in (TAG_RESTART, TAG_GENERATION, TAG_MEMBER))
            if r is None or g is None or m is None:
                continue
            found.setdefault(r, {}).setdefault(g, {}).setdefault(m, trial)
        runs: list[dict[int, dict[int, ObservedTrial]]] = []
        while len(runs) in found:
            runs.append(found[len(runs)])
        return runs

    def _search(self, history: History, count: int, avoid: set[Key]) -> list[Assignment]:
        tagged = self._tagged(history)
        counts = [sum(len(g) for g in r.values()) for r in tagged]
        current = max(len(tagged) - 1, 0)
        members = tagged[current] if tagged else {}
        run = self._runs(counts[:current])[current]
        optimizer, generation, drawn = self._replay(history, run, members)
        restarted = False
        if generation > 0 and not members.get(generation) and self._converged(optimizer):
            # The run converged after its last generation: the next restart begins.
            current, members, restarted = current + 1, {}, True
            run = self._runs(counts)[current]
            optimizer, generation, drawn = self._optimizer(run), 0, []
        next_member = len(drawn)  # the members the replay drew
        out: list[Assignment] = []
        if count > 0 and self._wants_mean(history, current, generation):
            values = self._values(np.asarray(optimizer.mean, dtype=float))
            key = self.space.key(values)
            if key not in avoid:
                avoid.add(key)
                tags = {TAG_RESTART: str(current), TAG_GENERATION: str(generation), TAG_MEAN: "1"}
                out.append(Assignment(parameters=values, tags=tags))
        new_in_run = misses = 0
        while len(out) < count:
            if misses >= self._patience(run):
                if restarted or self.restarts == "none":
                    break  # the rest comes uniformly
                # Only used points come out: the run converged in a discrete space.
                earlier = counts[current] if current < len(counts) else 0
                counts = [*counts[:current], earlier + new_in_run]
                current, restarted = current + 1, True
                run = self._runs(counts)[current]
                optimizer, generation, drawn = self._optimizer(run), 0, []
                next_member = new_in_run = misses = 0
            while len(drawn) <= next_member:
                drawn.append(self._draw(optimizer, drawn))
            member = next_member
            next_member += 1
            encoded, raw = drawn[member]
            values = self._values(encoded)
            key = self.space.key(values)
            if key in avoid:
                misses += 1
                continue
            avoid.add(key)
            misses = 0
            new_in_run += 1
            tags = {
                TAG_RESTART: str(current),
                TAG_GENERATION: str(generation),
                TAG_MEMBER: str(member),
            }
            if self.rounded.any():
                tags[TAG_RAW] = ",".join(repr(float(v)) for v in raw[self.rounded])
            out.append(Assignment(parameters=values, tags=tags))
        return out

    def _wants_mean(self, history: History, restart: int, generation: int) -> bool:
        """Whether the generation's mean is still to be proposed: with ``evaluateMean``,
        once per generation after a run's first (whose mean is only the starting point,
        no better than a draw), before its members."""
        if not self.evaluate_mean or generation == 0:
            return False
        return not any(
            TAG_MEAN in t.tags
            and _tag(t, TAG_RESTART) == restart
            and _tag(t, TAG_GENERATION) == generation
            for t in history.trials
        )

    @staticmethod
    def _patience(run: Run) -> int:
        """Members in a row already tried that mean the run has converged onto used points."""
        return 2 * run.population + PATIENCE

    def _converged(self, optimizer: Any) -> bool:
        return self.restarts != "none" and bool(optimizer.should_stop())

    def _replay(
        self, history: History, run: Run, members: Mapping[int, Mapping[int, ObservedTrial]]
    ) -> tuple[Any, int, list[tuple[np.ndarray, np.ndarray]]]:
        """The run's optimizer after every generation that can be told; the first one that
        cannot (the current generation), and its members drawn again."""
        optimizer = self._optimizer(run)
        units = self._units([t for g in members.values() for t in g.values()])
        generation = 0
        while True:
            taken = members.get(generation, {})
            # Each member handed out follows at most a patience of skipped ones: a
            # member number beyond that is no member of ours (a forged or foreign tag).
            limit = len(taken) * (self._patience(run) + 1)
            taken = {m: t for m, t in taken.items() if m < limit}
            solutions = self._solutions(history, run.population, taken, units)
            if solutions is None:
                drawn: list[tuple[np.ndarray, np.ndarray]] = []
                for _ in range(max(taken) + 1 if taken else 0):
                    drawn.append(self._draw(optimizer, drawn))
                return optimizer, generation, drawn
            optimizer.tell(solutions)
            generation += 1
            optimizer.reseed_rng(self._generation_seed(run, generation))

    def _solutions(
        self,
        history: History,
        population: int,
        taken: Mapping[int, ObservedTrial],
        units: Mapping[int, np.ndarray],
    ) -> list[tuple[np.ndarray, float]] | None:
        """The first ``population`` usable results in member order, or None if not known yet."""
        out: list[tuple[np.ndarray, float]] = []
        for member in sorted(taken):
            trial = taken[member]
            if trial.state is TrialState.PENDING:
                return None
            loss = history.loss(trial)
            if loss is None:
                continue
            vector = units.get(id(trial))
            if vector is None:
                continue
            out.append((vector, loss))
            if len(out) == population:
                return out
        return None

    def _units(self, trials: Sequence[ObservedTrial]) -> dict[int, np.ndarray]:
        """The point each trial stands for, by ``id``: its parameters' coordinates, with the
        rounded coordinates as drawn where its tag keeps them. Trials with a value the
        space cannot place are left out (no evidence)."""
        if not trials:
            return {}
        matrix = np.empty((len(trials), len(self.free)))
        for column, index in enumerate(self.free):
            name = self.space.dimensions[index].name
            values = [_number(t.parameters.get(name)) for t in trials]
            matrix[:, column] = self._coordinates[column](np.array(values, dtype=float))
        size = int(np.count_nonzero(self.rounded))
        if size:
            kept = [(row, _raw(t, size)) for row, t in enumerate(trials)]
            rows = np.array([row for row, raw in kept if raw is not None], dtype=np.intp)
            if rows.size:
                drawn = np.array([raw for _, raw in kept if raw is not None], dtype=float)
                cells = np.ix_(rows, np.flatnonzero(self.rounded))
                # A value outside the space stays unplaced whatever the tag says.
                matrix[cells] = np.where(np.isnan(matrix[cells]), np.nan, drawn)
        usable = np.flatnonzero(~np.isnan(matrix).any(axis=1)).tolist()
        return {id(trials[row]): matrix[row] for row in usable}

    def _vector(self, trial: ObservedTrial) -> np.ndarray | None:
        """The point one trial stands for (see :meth:`_units`); None if it has none."""
        return self._units([trial]).get(id(trial))


def _number(value: object) -> float:
    """A parameter value as a float, NaN when it is no finite number (a bool, a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    try:
        number = float(value)
    except OverflowError:
        return math.nan
    return number if math.isfinite(number) else math.nan


def _coordinate(dimension: Dimension) -> Callable[[np.ndarray], np.ndarray]:
    """The unit coordinate of values of a numeric dimension, vectorised: the same as
    :meth:`Dimension.to_unit` (NaN outside the bounds), which is affine in the value or in
    its logarithm, so two points of it fix it."""
    parameter = dimension.parameter
    low, high = dimension.limits
    log = parameter.log

    def warp(values: np.ndarray) -> np.ndarray:
        if not log:
            return values
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)

    a, b = parameter.low, parameter.high
    ua, ub = dimension.to_unit(a), dimension.to_unit(b)
    wa, wb = warp(np.array([a, b]))
    slope = (ub - ua) / (wb - wa)
    intercept = ua - slope * wa

    def coordinates(values: np.ndarray) -> np.ndarray:
        inside = (values >= low) & (values <= high)
        with np.errstate(invalid="ignore", over="ignore"):
            unit = np.clip(slope * warp(values) + intercept, 0.0, 1.0)
        return np.where(inside, unit, np.nan)

    return coordinates


def _raw(trial: ObservedTrial, size: int) -> list[float] | None:
    """The rounded coordinates as drawn that the trial's tag keeps, if it is well formed."""
    text = trial.tags.get(TAG_RAW)
    if text is None or len(text) > 32 * size:
        return None
    parts = text.split(",")
    if len(parts) != size:
        return None
    try:
        values = [float(v) for v in parts]
    except ValueError:
        return None
    if not all(abs(v) <= RAW_LIMIT for v in values):  # NaN fails too
        return None
    return values


def require_numbers(space: SearchSpace) -> None:
    """Refuse categorical parameters, naming each."""
    problems = [
        f"parameters[{i}].type: cmaes searches float and int parameters only; "
        f"{p.name!r} is categorical (use tpe or bayesian for categorical parameters)"
        for i, p in enumerate(space.parameters)
        if p.type is ParameterType.CATEGORICAL
    ]
    if problems:
        raise SpaceError(problems)


def create(space: SearchSpace, settings: Mapping[str, ParameterValue], seed: int | None) -> CmaEs:
    """Build CMA-ES (refuses categorical parameters and unknown settings)."""
    parsed = parse(SETTINGS, settings)
    population = parsed.integer("populationSize")
    if 0 < population < MIN_POPULATION:
        # The better half of 1 to 3 members is fewer than two, which leaves the rank-mu
        # update no weight: the library's assertion fails (1) or its rates become
        # infinite (2 and 3).
        raise SettingsError(
            "populationSize",
            f"must be 0 (4 + floor(3 ln n)) or at least {MIN_POPULATION}, so that a "
            "generation selects at least two members",
        )
    require_numbers(space)
    return CmaEs(Space(space), seed, parsed.as_dict())
