"""Feasibility and the Pareto front of finished trials, as plain values.

With several objectives no single trial is best: the result is the *Pareto
front*, the succeeded feasible trials that no other succeeded feasible trial
beats, where one trial beats (dominates) another when it is at least as good
on every objective and better on one. A trial is *feasible* when it reported
every constrained metric and each lies within its bounds; a trial that did not
report one is not feasible, since nothing shows it kept the bound.

The front is stored in the Experiment's status, which must stay bounded, so it
is capped (:data:`MAX_FRONT_POINTS`). Past the cap the kept points are a
well-spread subset: the points at each objective's extreme stay, then points are
dropped one at a time, each time the one in the most crowded place (the
smallest crowding distance, the sum over objectives of the gap between its two
neighbours, normalised by that objective's range), ties going to the later
trial. The full front's size is recorded beside it. Everything here is pure
Python over the trials' recorded summaries, so the operator needs no numeric
library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kubesweep.api import Direction, ExperimentSpec, MetricSummary, Strategy, TrialPhase
from kubesweep.api.status import MAX_FRONT_POINTS
from kubesweep.planning.views import TrialView


@dataclass(frozen=True)
class FrontPoint:
    """A trial on the front: its name, index and value of each objective (spec order)."""

    name: str
    index: int
    values: tuple[float, ...]


@dataclass(frozen=True)
class ParetoFront:
    """The kept points of the front, and how many points the whole front has."""

    points: tuple[FrontPoint, ...]
    size: int


def reduced(summary: MetricSummary, strategy: Strategy) -> float:
    """A metric's one value under its reduction."""
    if strategy is Strategy.MIN:
        return summary.min
    if strategy is Strategy.MAX:
        return summary.max
    return summary.latest


def metric_value(spec: ExperimentSpec, trial: TrialView, metric: str) -> float | None:
    """The trial's value of ``metric`` under the spec's reduction, None if not reported."""
    for summary in trial.status.metrics:
        if summary.name == metric:
            value = reduced(summary, spec.objective.strategy_for(metric))
            return None if math.isnan(value) else value
    if metric == spec.objective.metric:
        return trial.status.objective
    return None


def is_feasible(spec: ExperimentSpec, trial: TrialView) -> bool:
    """Whether the trial reported every constrained metric, each within its bounds."""
    for constraint in spec.constraints or ():
        violation = constraint.violation(metric_value(spec, trial, constraint.metric))
        if violation is None or violation > 0:
            return False
    return True


def objective_values(spec: ExperimentSpec, trial: TrialView) -> tuple[float, ...] | None:
    """The trial's value of each objective, in spec order; None if one is missing."""
    values = []
    for objective in spec.objective_metrics:
        value = metric_value(spec, trial, objective.metric)
        if value is None or math.isnan(value):
            return None
        values.append(value)
    return tuple(values)


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[Direction]) -> bool:
    """Whether ``a`` is at least as good as ``b`` on every objective and better on one."""
    better = False
    for x, y, direction in zip(a, b, directions, strict=True):
        gain = y - x if direction is Direction.MINIMIZE else x - y
        if gain < 0:
            return False
        if gain > 0:
            better = True
    return better


def non_dominated(
    points: Iterable[FrontPoint], directions: Sequence[Direction]
) -> list[FrontPoint]:
    """The points no other point dominates, by trial index.

    Two trials with equal values both stay: neither dominates the other. The points
    are visited best first in lexicographic order, where a dominating point always
    comes before the points it dominates, so each is checked against the front
    found so far only: the cost is the number of trials times the front's size,
    not the square of the number of trials.
    """
    signs = [1.0 if d is Direction.MINIMIZE else -1.0 for d in directions]
    ordered = sorted(
        points, key=lambda p: (tuple(s * v for s, v in zip(signs, p.values, strict=True)), p.index)
    )
    front: list[FrontPoint] = []
    for point in ordered:
        if not any(dominates(kept.values, point.values, directions) for kept in front):
            front.append(point)
    return sorted(front, key=lambda p: p.index)


def crowding_distances(points: Sequence[FrontPoint]) -> list[float]:
    """Each point's crowding distance; the extremes of each objective get infinity."""
    distances = [0.0] * len(points)
    if len(points) <= 2:
        return [math.inf] * len(points)
    for axis in range(len(points[0].values)):
        order = sorted(range(len(points)), key=lambda i: (points[i].values[axis], points[i].index))
        low, high = points[order[0]].values[axis], points[order[-1]].values[axis]
        distances[order[0]] = distances[order[-1]] = math.inf
        span = high - low
        if span <= 0:
            continue
        for rank in range(1, len(order) - 1):
            gap = points[order[rank + 1]].values[axis] - points[order[rank - 1]].values[axis]
            distances[order[rank]] += gap / span
    return distances


def spread_subset(points: Sequence[FrontPoint], cap: int) -> list[FrontPoint]:
    """At most ``cap`` points of a front, well spread: drop the most crowded one at a time."""
    kept = list(points)
    while len(kept) > cap:
        distances = crowding_distances(kept)
        drop = min(range(len(kept)), key=lambda i: (distances[i], -kept[i].index))
        del kept[drop]
    return kept


def pareto_front(
    spec: ExperimentSpec, trials: Iterable[TrialView], cap: int = MAX_FRONT_POINTS
) -> ParetoFront:
    """The front of the succeeded feasible trials, capped to a well-spread ``cap`` points."""
    candidates = []
    for trial in trials:
        if trial.phase is not TrialPhase.SUCCEEDED or not is_feasible(spec, trial):
            continue
        values = objective_values(spec, trial)
        if values is not None:
            candidates.append(FrontPoint(trial.name, trial.index, values))
    directions = [o.direction for o in spec.objective_metrics]
    front = non_dominated(candidates, directions)
    return ParetoFront(points=tuple(spread_subset(front, cap)), size=len(front))


def count_infeasible(spec: ExperimentSpec, trials: Iterable[TrialView]) -> int:
    """Trials that finished with metrics (succeeded or stopped early) and broke a constraint.

    A failed trial counts as failed, not as infeasible.
    """
    if not spec.constraints:
        return 0
    return sum(
        1
        for t in trials
        if t.phase in (TrialPhase.SUCCEEDED, TrialPhase.EARLY_STOPPED) and not is_feasible(spec, t)
    )
