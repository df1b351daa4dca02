"""ASHA: asynchronous successive halving, by promotion or by stopping.

Li, Jamieson, Rostamizadeh, Gonina, Ben-Tzur, Hardt, Recht & Talwalkar,
"A System for Massively Parallel Hyperparameter Tuning", MLSys 2020
(arXiv:1810.05934), Algorithm 2.

The rungs are :func:`~kubesweep.suggestion.space.rung_budgets` of the space's
fidelity, from rung ``earlyStoppingRate`` up. Whenever a slot is free ASHA
looks from the highest rung down for a configuration that is in the top
``1/eta`` of the trials finished at its rung and not promoted yet, and promotes
it (a new trial with the same parameters at the next rung's budget, tagged
``rung`` and ``parent``, whose ``parent`` field names the trial it continues, so
that with checkpoints it resumes from that trial's checkpoint); only if there is
none does it start a new configuration at the bottom rung. It never waits for a
rung to fill, so every slot is always busy, whatever the parallelism.

The rungs are rebuilt from the history on each call: a trial's rung is its
``rung`` tag, or else the rung its fidelity reaches (so trials from elsewhere
count); a configuration counts as promoted from rung ``k`` once any trial with
the same parameters sits at rung ``k + 1``. Sorting each rung once and walking
it with a pointer keeps a call O(n log n).

In ``stopping`` mode (the variant the paper calls ASHA with stopping; Optuna's
``SuccessiveHalvingPruner``), each new trial gets the top budget and
:meth:`Asha.decide` stops a running trial once its objective at the last rung
it reached is outside the top ``1/eta`` of every trial that reached that rung
(at least the best one always continues).

What resuming can save: every configuration pays the bottom rung in full, and
a promotion that resumes pays only the epochs above the rung below
(``r_k - r_(k-1)`` instead of ``r_k``). In steady state a share ``eta**-k`` of
the configurations reaches rung ``k``, so one configuration started at the
bottom costs ``sum r_k eta**-k`` epochs retrained and ``r_0 + sum (r_k -
r_(k-1)) eta**-k`` resumed. On an exact geometric ladder of ``K`` promotions that
is ``(K + 1) r_0`` against ``(1 + K (1 - 1/eta)) r_0``: resuming saves
``K / (eta (K + 1))`` of ASHA's epochs, less than ``1/eta`` however many rungs
there are. For rungs 1, 3, 9, 27 (eta 3) that is 4 against 3 epochs, 25 %; with
eta 2 on the same range (rungs 1, 2, 4, 8, 27) 5.69 against 3.69, 35 %. A smaller
eta saves a larger share only because it makes retraining costlier: on the
multi-fidelity benchmark, ASHA with checkpoints reached random search's value no
later at eta 3 than at eta 2 (``docs/benchmarks.md``). The epochs saved buy more
configurations only when the budget counts training (``maxGPUHours``,
``maxDuration``) rather than trials (``maxTrials``).

Settings:

- ``mode`` (default ``"promotion"``): ``promotion`` or ``stopping``.
- ``earlyStoppingRate`` (default ``0``): the paper's ``s``; rungs below it are skipped.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence

from kubesweep.api.experiment import Direction, ParameterValue
from kubesweep.api.status import CurvePoint
from kubesweep.api.suggestion_wire import (
    Assignment,
    ObservedTrial,
    SearchSpace,
    StopDecision,
    SuggestReply,
    TrialState,
)
from kubesweep.suggestion.algorithms.hyperband import (
    TAG_PARENT,
    TAG_RUNG,
    ConfigSampler,
    require_fidelity,
    uniform_sampler,
)
from kubesweep.suggestion.contract import History, SettingsError, rng_for, usable
from kubesweep.suggestion.settings import Setting, parse
from kubesweep.suggestion.space import Key, Space, rung_budgets, rung_of

SETTINGS = (
    Setting(
        "mode",
        "promotion",
        "promotion: promote configurations to new trials; stopping: run each trial to the "
        "top budget and stop the losers at each rung",
        choices=("promotion", "stopping"),
    ),
    Setting("earlyStoppingRate", 0, "rungs skipped at the bottom (the paper's s)", minimum=0),
)


class Asha:
    """Asynchronous successive halving over rungs rebuilt from the history."""

    def __init__(
        self,
        space: Space,
        seed: int | None,
        mode: str = "promotion",
        early_stopping_rate: int = 0,
        sampler: ConfigSampler | None = None,
    ) -> None:
        self.space = space
        self.seed = seed
        self.mode = mode
        fidelity = require_fidelity(space, "asha")
        budgets = rung_budgets(fidelity)
        if early_stopping_rate >= len(budgets):
            raise SettingsError(
                "earlyStoppingRate",
                f"must be below the number of rungs ({len(budgets)}) of the fidelity",
            )
        self.budgets = budgets[early_stopping_rate:]
        self.eta = fidelity.eta
        self.sampler = sampler or uniform_sampler(space)

    def _rung(self, trial: ObservedTrial) -> int | None:
        text = trial.tags.get(TAG_RUNG)
        if text is not None and text.isdigit():
            return min(int(text), len(self.budgets) - 1)
        if trial.fidelity is None:
            return None
        return rung_of(self.budgets, trial.fidelity)

    def suggest(self, history: History, count: int) -> SuggestReply:
        """``count`` promotions or new configurations; fewer only in a used-up finite
        space, and ``exhausted`` once nothing runs that could still earn a promotion."""
        rng = rng_for(self.seed, len(history.trials), "asha")
        avoid: set[Key] = set()
        top = len(self.budgets) - 1
        finished: list[list[tuple[float, str, ObservedTrial, Key]]] = [[] for _ in self.budgets]
        present: list[set[Key]] = [set() for _ in self.budgets]
        for trial in history.trials:
            key = self.space.key(trial.parameters)
            avoid.add(key)
            rung = self._rung(trial)
            if rung is None:
                continue
            present[rung].add(key)
            loss = history.loss(trial)
            if loss is not None:
                finished[rung].append((loss, trial.name, trial, key))
        out: list[Assignment] = []
        if self.mode == "promotion":
            for ranked in finished:
                ranked.sort(key=lambda item: (item[0], item[1]))
            pointers = [0] * len(self.budgets)
            while len(out) < count:
                promotion = self._next_promotion(finished, present, pointers, top)
                if promotion is None:
                    break
                rung, parent = promotion
                out.append(
                    Assignment(
                        parameters=self.space.prune(parent.parameters),
                        fidelity=self.budgets[rung + 1],
                        tags={TAG_RUNG: str(rung + 1), TAG_PARENT: parent.name},
                        parent=parent.name,
                    )
                )
        start = self.budgets[0] if self.mode == "promotion" else self.budgets[-1]
        rung_tag = "0" if self.mode == "promotion" else str(top)
        fresh = self.sampler(history, count - len(out), avoid, rng, start)
        out.extend(
            Assignment(parameters=values, fidelity=start, tags={TAG_RUNG: rung_tag})
            for values in fresh
        )
        # Short only in a used-up finite space. While trials run (including the ones
        # just suggested) their results may earn promotions: that is a wait, not the end.
        waiting = any(t.state is TrialState.PENDING for t in history.trials)
        return SuggestReply(assignments=out, exhausted=not out and not waiting)

    def _next_promotion(
        self,
        finished: list[list[tuple[float, str, ObservedTrial, Key]]],
        present: list[set[Key]],
        pointers: list[int],
        top: int,
    ) -> tuple[int, ObservedTrial] | None:
        """The best unpromoted configuration in the top 1/eta of the highest rung with one."""
        for rung in range(top - 1, -1, -1):
            ranked = finished[rung]
            best = math.floor(len(ranked) / self.eta + 1e-9)
            while pointers[rung] < best:
                _, _, trial, key = ranked[pointers[rung]]
                pointers[rung] += 1
                if key not in present[rung + 1] and self.space.contains(
                    self.space.prune(trial.parameters)
                ):
                    present[rung + 1].add(key)
                    return rung, trial
        return None

    def decide(self, history: History) -> list[StopDecision]:
        """In ``stopping`` mode, running trials outside the top 1/eta at their last rung."""
        if self.mode != "stopping":
            return []
        sign = 1.0 if history.direction is Direction.MINIMIZE else -1.0
        gates = self.budgets[:-1]
        reached: list[list[float]] = [[] for _ in gates]
        running: list[tuple[ObservedTrial, int, float]] = []
        for trial in history.trials:
            if trial.state is TrialState.FAILED or not trial.intermediate:
                continue
            at = _values_at(trial.intermediate, gates)
            last = -1
            for rung, value in enumerate(at):
                if value is not None:
                    reached[rung].append(sign * value)
                    last = rung
            if trial.state is TrialState.PENDING and last >= 0:
                value = at[last]
                assert value is not None
                running.append((trial, last, sign * value))
        for values in reached:
            values.sort()
        out = []
        for trial, rung, loss in running:
            ranked = reached[rung]
            keep = max(1, math.floor(len(ranked) / self.eta + 1e-9))
            if loss > ranked[keep - 1]:
                out.append(
                    StopDecision(
                        name=trial.name,
                        reason=f"asha: at {gates[rung]:g} its objective is outside the top "
                        f"{keep} of the {len(ranked)} trials that reached it",
                    )
                )
        return out


def _values_at(curve: Sequence[CurvePoint], gates: Sequence[float]) -> list[float | None]:
    """The curve's latest usable value at or before each gate it reached, else None."""
    points = [(p.step, p.value) for p in curve if usable(p.value)]
    if not points:
        return [None for _ in gates]
    points.sort()
    steps = [s for s, _ in points]
    out: list[float | None] = []
    for gate in gates:
        if steps[-1] < gate - 1e-9:
            out.append(None)
            continue
        index = bisect.bisect_right(steps, gate + 1e-9) - 1
        out.append(points[index][1] if index >= 0 else None)
    return out


def create(space: SearchSpace, settings: Mapping[str, ParameterValue], seed: int | None) -> Asha:
    """Build ASHA; the space must have a fidelity."""
    parsed = parse(SETTINGS, settings)
    return Asha(
        Space(space),
        seed,
        mode=parsed.text("mode"),
        early_stopping_rate=parsed.integer("earlyStoppingRate"),
    )
