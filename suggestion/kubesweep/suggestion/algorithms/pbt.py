"""Population Based Training: a population trained in intervals, the worst copying the best.

Jaderberg, Dalibard, Osindero, Czarnecki, Donahue, Razavi, Vinyals, Green,
Dunning, Simonyan, Fernando & Kavukcuoglu, "Population Based Training of Neural
Networks", arXiv:1711.09846 (2017).

``populationSize`` members each train a lineage of trials. A trial is one
*interval* of training: the fidelity ladder is ``min, 2*min, ...`` up to ``max``
(``fidelity.min`` is the interval, ``fidelity.max`` the end), and the trial of
generation ``g`` trains its member up to the ``g``-th budget, resuming from its
parent's checkpoint. When a member's trial ends, it is ranked among the trials of
the same generation: in the bottom ``quantile`` it *exploits* (its next trial's
parent is a trial of the top ``quantile``, whose parameters it copies) and
*explores* (the copy is perturbed, as below); otherwise it continues from
its own trial with the same parameters. A failed trial exploits too (its
checkpoint cannot be trusted); with nobody to copy it starts afresh.

Stateless like every algorithm here: each trial carries tags ``member``,
``generation`` and ``parent`` (the typed ``parent`` of the assignment names the
same trial), so the population is rebuilt from the history on every call and an
operator restart loses nothing. Schedule: the population is filled first, then
ready members advance, the least advanced first, so a ``parallelTrials`` below the
population size runs it in waves. A member may start generation ``g + 1`` only
once every member has started generation ``g``, which keeps the cohorts that are
ranked against each other comparable; while that holds a member back, fewer
assignments than asked come back (a wait, not exhaustion). The sweep is
exhausted once every member has finished the last generation: exactly
``populationSize`` times the number of intervals trials.

Settings:

- ``populationSize`` (default 8): the members.
- ``quantile`` (default 0.25): the share at the bottom that exploits, and at the
  top that is copied.
- ``perturbationFactor`` (default 1.2): numbers are multiplied by it or its inverse.
- ``resampleProbability`` (default 0.25): the chance that a parameter is drawn anew
  instead of perturbed.

Explore: a number is multiplied by ``perturbationFactor`` or its inverse and
snapped onto its range (where that leaves it unchanged it moves one grid step,
or is drawn anew); a categorical moves to a neighbouring value in its declared
order. The Trial records the change as its ``perturbation``, e.g.
``copied exp-4; lr x1.2; batch x0.833``, and names the copied trial as its
``parent``: the lineage shows in ``kubesweep describe`` and the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from kubesweep.api.experiment import Fidelity, ParameterValue
from kubesweep.api.suggestion_wire import (
    Assignment,
    ObservedTrial,
    SearchSpace,
    SuggestReply,
    TrialState,
)
from kubesweep.suggestion.algorithms._explore import explore
from kubesweep.suggestion.algorithms.hyperband import TAG_PARENT, require_fidelity
from kubesweep.suggestion.contract import History, rng_for
from kubesweep.suggestion.settings import Setting, parse
from kubesweep.suggestion.space import Key, Space, SpaceError

SETTINGS = (
    Setting("populationSize", 8, "members of the population", minimum=2, maximum=1000),
    Setting(
        "quantile",
        0.25,
        "share of each generation that exploits (the bottom) and is copied (the top)",
        minimum=0.01,
        maximum=0.5,
    ),
    Setting(
        "perturbationFactor", 1.2, "numbers are multiplied by it or by its inverse", minimum=1.0
    ),
    Setting(
        "resampleProbability",
        0.25,
        "chance that a parameter is drawn anew instead of perturbed",
        minimum=0.0,
        maximum=1.0,
    ),
)

TAG_MEMBER = "member"
TAG_GENERATION = "generation"
#: The member a step copied from, when it exploited.
TAG_EXPLOITED = "exploited"
#: The most intervals a sweep may have; more would be thousands of trials per member.
MAX_INTERVALS = 1000


def interval_budgets(fidelity: Fidelity) -> list[float]:
    """The budget each generation trains up to: ``min, 2*min, ...``, the last one ``max``."""
    count = math.ceil(fidelity.max / fidelity.min - 1e-9)
    if count > MAX_INTERVALS:
        raise SpaceError(
            [
                f"fidelity.min: pbt trains in intervals of fidelity.min; {count} intervals up "
                f"to fidelity.max is more than {MAX_INTERVALS}; raise min"
            ]
        )
    budgets = [min(fidelity.max, fidelity.min * (g + 1)) for g in range(count)]
    if fidelity.type == "int":
        budgets = [float(round(b)) for b in budgets]
    return budgets


@dataclass
class _Member:
    """One lineage: its latest trial and the generation that trial trains."""

    index: int
    latest: ObservedTrial
    generation: int


def _tag_int(trial: ObservedTrial, tag: str) -> int | None:
    text = trial.tags.get(tag)
    return int(text) if text is not None and text.isdigit() else None


class PopulationBasedTraining:
    """PBT over members rebuilt from trial tags."""

    def __init__(
        self,
        space: Space,
        seed: int | None,
        *,
        population: int,
        quantile: float,
        factor: float,
        resample_probability: float,
    ) -> None:
        self.space = space
        self.seed = seed
        self.population = population
        self.quantile = quantile
        self.factor = factor
        self.resample_probability = resample_probability
        self.budgets = interval_budgets(require_fidelity(space, "pbt"))
        self.last = len(self.budgets) - 1

    def suggest(self, history: History, count: int) -> SuggestReply:
        """New members first, then the next step of each ready member, least advanced first."""
        rng = rng_for(self.seed, len(history.trials), "pbt")
        members, cohorts = self._population(history)
        avoid: set[Key] = {self.space.key(t.parameters) for t in history.trials}
        out: list[Assignment] = []
        wanted = min(count, self.population - len(members))
        fresh = self.space.sample_unique(rng, wanted, avoid) if wanted > 0 else []
        out += [
            Assignment(
                parameters=values,
                fidelity=self.budgets[0],
                tags={TAG_MEMBER: str(len(members) + i), TAG_GENERATION: "0"},
            )
            for i, values in enumerate(fresh)
        ]
        started = min((m.generation for m in members.values()), default=0)
        if len(members) + len(fresh) < self.population and len(fresh) == wanted:
            started = -1  # members still to come: nobody may run ahead of them
        ready = sorted(
            (
                m
                for m in members.values()
                if m.latest.state is not TrialState.PENDING
                and m.generation < self.last
                and m.generation <= started
            ),
            key=lambda m: (m.generation, m.index),
        )
        for member in ready[: count - len(out)]:
            out.append(self._next_step(member, cohorts.get(member.generation, []), history, rng))
        finished = all(
            m.generation == self.last and m.latest.state is not TrialState.PENDING
            for m in members.values()
        )
        full = len(members) >= self.population or len(fresh) < wanted
        return SuggestReply(assignments=out, exhausted=not out and full and finished)

    def _population(
        self, history: History
    ) -> tuple[dict[int, _Member], dict[int, list[tuple[float, str, ObservedTrial]]]]:
        """Each member's latest trial, and per generation the ranked trials with a value."""
        members: dict[int, _Member] = {}
        cohorts: dict[int, list[tuple[float, str, ObservedTrial]]] = {}
        for trial in history.trials:
            index, generation = _tag_int(trial, TAG_MEMBER), _tag_int(trial, TAG_GENERATION)
            if index is None or generation is None or index >= self.population:
                continue  # a trial from elsewhere: it only takes its point
            generation = min(generation, self.last)
            known = members.get(index)
            if known is None or generation >= known.generation:
                members[index] = _Member(index, trial, generation)
            loss = history.loss(trial)
            if loss is not None:
                cohorts.setdefault(generation, []).append((loss, trial.name, trial))
        for ranked in cohorts.values():
            ranked.sort(key=lambda item: (item[0], item[1]))
        return members, cohorts

    def _valid(self, trial: ObservedTrial) -> bool:
        return self.space.contains(self.space.prune(trial.parameters))

    def _next_step(
        self,
        member: _Member,
        ranked: list[tuple[float, str, ObservedTrial]],
        history: History,
        rng: np.random.Generator,
    ) -> Assignment:
        """Continue the member's own training, or exploit and explore a better one's."""
        generation = member.generation + 1
        tags = {TAG_MEMBER: str(member.index), TAG_GENERATION: str(generation)}
        share = max(1, math.floor(len(ranked) * self.quantile)) if len(ranked) >= 2 else 0
        # Only a valid point of the space is copied (a trial from elsewhere may hold
        # values outside it, or lack some).
        top = [item for item in ranked[:share] if self._valid(item[2])]
        bottom = {name for _, name, _ in ranked[len(ranked) - share :]} if share else set()
        mine = member.latest
        failed = history.loss(mine) is None or not self._valid(mine)
        if not failed and (mine.name not in bottom or any(n == mine.name for _, n, _ in top)):
            return Assignment(
                parameters=self.space.prune(mine.parameters),
                fidelity=self.budgets[generation],
                tags={**tags, TAG_PARENT: mine.name},
                parent=mine.name,
            )
        if not top:
            fresh = self.space.sample(rng, 1)[0]
            return Assignment(parameters=fresh, fidelity=self.budgets[generation], tags=tags)
        source = top[int(rng.integers(len(top)))][2]
        values, change = explore(
            self.space,
            self.space.prune(source.parameters),
            rng,
            factor=self.factor,
            resample_probability=self.resample_probability,
        )
        exploited = source.tags.get(TAG_MEMBER, "")
        return Assignment(
            parameters=values,
            fidelity=self.budgets[generation],
            tags={**tags, TAG_PARENT: source.name, TAG_EXPLOITED: exploited},
            parent=source.name,
            perturbation=f"copied {source.name}; {change}" if change else f"copied {source.name}",
        )


def create(
    space: SearchSpace, settings: Mapping[str, ParameterValue], seed: int | None
) -> PopulationBasedTraining:
    """Build pbt; the space must have a fidelity (its min is the interval)."""
    parsed = parse(SETTINGS, settings)
    return PopulationBasedTraining(
        Space(space),
        seed,
        population=parsed.integer("populationSize"),
        quantile=parsed.real("quantile"),
        factor=parsed.real("perturbationFactor"),
        resample_probability=parsed.real("resampleProbability"),
    )
