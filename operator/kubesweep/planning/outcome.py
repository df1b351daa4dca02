"""What a sweep has found so far: its best trial, or its Pareto front; and its target.

With one objective the result is the best trial; with several (``spec.objectives``)
it is the Pareto front, kept in status as named points with their objective
values (see :mod:`kubesweep.planning.pareto`). With constraints, only feasible
trials count for either, and status counts the infeasible ones.

The target with several objectives: the experiment ends with ``TargetReached``
once one succeeded feasible trial reaches every objective's ``target`` that is
set (a sweep whose objectives set no target never ends on a target). Any such
trial has a front point at least as good, so the front holds a trial that
reached it. The budget ends (``MaxTrialsReached``, ``DeadlineExceeded``,
``MaxGPUHoursReached``, ``SearchSpaceExhausted``) succeed when the front holds a
trial, as they succeed with one objective when there is a best trial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubesweep.api import BestTrial, Direction, ExperimentSpec, ParetoPoint, TrialPhase
from kubesweep.planning.pareto import (
    count_infeasible,
    is_feasible,
    objective_values,
    pareto_front,
)
from kubesweep.planning.views import TrialView


@dataclass(frozen=True)
class Outcome:
    """The result so far: the best trial (one objective) or the front (several)."""

    best: BestTrial | None = None
    front: tuple[ParetoPoint, ...] | None = None
    front_size: int | None = None
    infeasible: int | None = None
    best_summary: str | None = None

    @property
    def found(self) -> bool:
        """Whether some feasible trial produced every objective."""
        return self.best is not None or bool(self.front)

    def summary(self) -> str:
        """The result in a phrase, for the end message."""
        if self.best is not None:
            return f"best trial {self.best.name}"
        if self.front:
            size = self.front_size
            return f"Pareto front of {size} trial{'' if size == 1 else 's'}"
        if self.infeasible:
            return f"no feasible trial reported the objective ({self.infeasible} infeasible)"
        return "no trial reported the objective"


def front_outcome(
    spec: ExperimentSpec, trials: Sequence[TrialView], best: BestTrial | None
) -> Outcome:
    """The outcome of the trials: ``best`` with one objective, the named front with several."""
    infeasible = count_infeasible(spec, trials) if spec.constraints else None
    if not spec.is_multi_objective:
        summary = None if best is None else f"{best.objective:.6g}"
        return Outcome(best=best, infeasible=infeasible, best_summary=summary)
    front = pareto_front(spec, trials)
    by_name = {t.name: t for t in trials}
    metrics = [o.metric for o in spec.objective_metrics]
    points = tuple(
        ParetoPoint(
            name=p.name,
            values=dict(zip(metrics, p.values, strict=True)),
            parameters=dict(by_name[p.name].parameters),
            fidelity=by_name[p.name].fidelity,
        )
        for p in front.points
    )
    return Outcome(
        front=points,
        front_size=front.size,
        infeasible=infeasible,
        best_summary=front_summary(spec, points, front.size),
    )


def front_summary(spec: ExperimentSpec, points: Sequence[ParetoPoint], size: int) -> str | None:
    """Each objective's best value on the front, and the front's size, in a few words.

    A listing (the ``Best`` printer column, ``kubesweep get``) has one cell for the
    result; with several objectives no trial is best, but the best value reached on
    each objective, with how many trials trade them off, says how far the sweep got.
    Each objective's best is on the front (a trial beaten on it by a feasible one
    would be dominated or tied), so the kept points give it.
    """
    if not points:
        return None
    parts = []
    for objective in spec.objective_metrics:
        values = [p.values[objective.metric] for p in points]
        best = min(values) if objective.direction is Direction.MINIMIZE else max(values)
        parts.append(f"{objective.metric} {best:.4g}")
    return f"{', '.join(parts)} (front of {size})"


def targets_reached(spec: ExperimentSpec, trials: Sequence[TrialView]) -> str | None:
    """With several objectives, the message of the first trial to reach every set target."""
    objectives = spec.objective_metrics
    if not spec.is_multi_objective or all(o.target is None for o in objectives):
        return None
    for trial in sorted(trials, key=lambda t: t.index):
        if trial.phase is not TrialPhase.SUCCEEDED or not is_feasible(spec, trial):
            continue
        values = objective_values(spec, trial)
        if values is None:
            continue
        pairs = [(o, v) for o, v in zip(objectives, values, strict=True) if o.target is not None]
        if all(o.reached(v) for o, v in pairs):
            reached = ", ".join(f"{o.metric}={v:g} (target {o.target:g})" for o, v in pairs)
            return f"trial {trial.name} reached {reached}"
    return None
