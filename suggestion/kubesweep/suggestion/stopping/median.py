"""The median stopping rule.

Golovin, Solnik, Moitra, Kochanski, Karro & Sculley, "Google Vizier: A Service
for Black-Box Optimization", KDD 2017, §3.2.2: stop a pending trial at step
``s`` if its best objective value by step ``s`` is strictly worse than the
median of the running averages, up to ``s``, of the completed trials' curves.

Values are compared as losses (negated when maximising). A completed trial
counts at step ``s`` only if it reported something at or before ``s``; the rule
waits for ``minTrials`` such trials and for ``s >= startStep``. All completed
curves are flattened into one sorted array once, and the running averages at
the distinct steps of the running trials are looked up with one vectorised
``searchsorted`` each, so a call over 10,000 trials stays in milliseconds.

Settings:

- ``minTrials`` (default ``5``): completed trials needed at a step before anything stops.
- ``startStep`` (default ``1``): no trial stops before this step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from kubesweep.api.experiment import Direction, ParameterValue
from kubesweep.suggestion.contract import (
    History,
    SearchSpace,
    StopDecision,
    TrialState,
)
from kubesweep.suggestion.settings import Setting, parse

SETTINGS = (
    Setting("minTrials", 5, "completed trials needed before stopping anything", minimum=1),
    Setting("startStep", 1, "the first step at which a trial may stop", minimum=0),
)


class MedianStopping:
    """Vizier's median rule over the request's history."""

    def __init__(self, min_trials: int, start_step: int) -> None:
        self.min_trials = min_trials
        self.start_step = start_step

    def decide(self, history: History) -> list[StopDecision]:
        """Pending trials whose best value so far is worse than the completed trials' median."""
        sign = 1.0 if history.direction is Direction.MINIMIZE else -1.0
        # Completed curves, flattened: trial number, step, loss; one pass in Python,
        # the rest in numpy (curves hold up to a few hundred points each).
        steps: list[int] = []
        raw: list[float] = []
        lengths: list[int] = []
        running: list[tuple[str, int, float]] = []
        isfinite = math.isfinite
        for trial in history.trials:
            curve = trial.intermediate
            if not curve:
                continue
            if trial.state is TrialState.COMPLETED:
                steps += [p.step for p in curve]
                raw += [p.value for p in curve]
                lengths.append(len(curve))
            elif trial.state is TrialState.PENDING:
                points = [(p.step, sign * p.value) for p in curve if isfinite(p.value)]
                if points:
                    step = max(points)[0]
                    if step >= self.start_step:
                        running.append((trial.name, step, min(v for _, v in points)))
        completed = len(lengths)
        if completed < self.min_trials or not running:
            return []
        ids = np.repeat(np.arange(completed), lengths)
        all_steps = np.asarray(steps, dtype=np.int64)
        values = sign * np.asarray(raw, dtype=float)
        keep = np.isfinite(values)
        order = np.lexsort((all_steps[keep], ids[keep]))
        all_ids, all_steps, values = ids[keep][order], all_steps[keep][order], values[keep][order]
        if len(values) == 0:
            return []
        # Running average of each curve at each of its points: group-wise cumulative mean.
        firsts = np.searchsorted(all_ids, np.arange(completed))
        totals = np.cumsum(values)
        before = np.where(firsts > 0, totals[np.maximum(firsts - 1, 0)], 0.0)[all_ids]
        position = np.arange(len(values)) - firsts[all_ids] + 1
        means = (totals - before) / position
        # Composite sort key: trial number major, step minor (each curve is sorted).
        low = int(min(int(all_steps.min()), 0))
        span = int(max(int(all_steps.max()), *(step for _, step, _ in running))) - low + 2
        composite = all_ids * span + (all_steps - low)
        medians: dict[int, float | None] = {}
        for step in {step for _, step, _ in running}:
            probes = np.arange(completed) * span + (step - low)
            index = np.searchsorted(composite, probes, side="right") - 1
            valid = index >= firsts
            if int(valid.sum()) < self.min_trials:
                medians[step] = None
                continue
            medians[step] = float(np.median(means[index[valid]]))
        out = []
        for name, step, best in running:
            median = medians[step]
            if median is not None and best > median:
                shown = sign * median
                out.append(
                    StopDecision(
                        name=name,
                        reason=f"median rule: best value by step {step} is worse than the "
                        f"median {shown:.6g} of completed trials' running averages",
                    )
                )
        return out


def create(
    space: SearchSpace,  # noqa: ARG001
    settings: Mapping[str, ParameterValue],
) -> MedianStopping:
    """Build the median rule (it needs no space; the argument keeps factories alike)."""
    parsed = parse(SETTINGS, settings)
    return MedianStopping(parsed.integer("minTrials"), parsed.integer("startStep"))
