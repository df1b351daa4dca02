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
        ids: list[np.ndarray] = []
        steps: list[np.ndarray] = []
        means: list[np.ndarray] = []
        running: list[tuple[str, int, float]] = []
        completed = 0
        for trial in history.trials:
            curve = [(p.step, sign * p.value) for p in trial.intermediate if np.isfinite(p.value)]
            if not curve:
                continue
            curve.sort()
            if trial.state is TrialState.COMPLETED:
                s = np.array([c[0] for c in curve], dtype=np.int64)
                v = np.array([c[1] for c in curve])
                ids.append(np.full(len(s), completed, dtype=np.int64))
                steps.append(s)
                means.append(np.cumsum(v) / np.arange(1, len(v) + 1))
                completed += 1
            elif trial.state is TrialState.PENDING:
                step = curve[-1][0]
                if step >= self.start_step:
                    running.append((trial.name, step, min(c[1] for c in curve)))
        if completed < self.min_trials or not running:
            return []
        all_ids = np.concatenate(ids)
        all_steps = np.concatenate(steps)
        all_means = np.concatenate(means)
        # Composite sort key: trial id major, step minor (curves are sorted already).
        span = int(max(all_steps.max(), *(step for _, step, _ in running))) + 1
        low = int(min(all_steps.min(), 0))
        composite = all_ids * (span - low + 1) + (all_steps - low)
        firsts = np.searchsorted(all_ids, np.arange(completed))
        medians: dict[int, float | None] = {}
        for step in {step for _, step, _ in running}:
            probes = np.arange(completed) * (span - low + 1) + (step - low)
            index = np.searchsorted(composite, probes, side="right") - 1
            valid = index >= firsts
            if int(valid.sum()) < self.min_trials:
                medians[step] = None
                continue
            medians[step] = float(np.median(all_means[index[valid]]))
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
