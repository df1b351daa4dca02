"""Trials as rows: ranking by objective, sorting, and the plain records tables print.

Pure functions over :class:`TrialRecord`, which both a local run (the SQLite
state) and a cluster (Trial objects) turn into, so ``kubesweep run``'s final
table, ``kubesweep trials``, the report and ``Client.trials()`` rank alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubesweep.api import (
    Direction,
    ExperimentSpec,
    ParameterValue,
    Strategy,
    Trial,
    TrialPhase,
    TrialStatus,
)

#: Keys ``--sort-by`` accepts besides a metric or parameter name.
SORT_KEYS = ("objective", "index", "name", "phase", "duration", "started")

#: Order of phases after the objective: results first, failures last.
_PHASE_ORDER = {
    TrialPhase.SUCCEEDED: 0,
    TrialPhase.EARLY_STOPPED: 1,
    TrialPhase.RUNNING: 2,
    TrialPhase.PENDING: 3,
    TrialPhase.METRICS_UNAVAILABLE: 4,
    TrialPhase.FAILED: 5,
}


@dataclass(frozen=True)
class TrialRecord:
    """One trial, flattened for tables, reports and data frames."""

    name: str
    index: int
    phase: TrialPhase
    parameters: Mapping[str, ParameterValue]
    objective: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    fidelity: float | None = None
    reason: str | None = None
    message: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    curve: Sequence[tuple[int, float]] = ()
    attempts: int | None = None
    #: The trial whose training this one continued (a promotion, a pbt step).
    parent: str | None = None
    #: How its parameters differ from the parent's (pbt's explore step).
    perturbation: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to completion, if both are known."""
        if self.start_time is None or self.completion_time is None:
            return None
        return (self.completion_time - self.start_time).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """A flat dict: parameters and metrics as their own columns (pandas-friendly)."""
        row: dict[str, Any] = {
            "name": self.name,
            "index": self.index,
            "phase": self.phase.value,
            "objective": self.objective,
        }
        row.update({f"params.{k}": v for k, v in self.parameters.items()})
        if self.fidelity is not None:
            row["fidelity"] = self.fidelity
        row.update({f"metrics.{k}": v for k, v in self.metrics.items()})
        row["duration"] = self.duration
        row["start_time"] = self.start_time.isoformat() if self.start_time else None
        row["reason"] = self.reason
        if self.parent is not None:
            row["parent"] = self.parent
        if self.perturbation is not None:
            row["perturbation"] = self.perturbation
        return row


def fidelity_value(spec: ExperimentSpec | None, fidelity: float | None) -> ParameterValue | None:
    """A trial's fidelity as its parameter takes it: a whole number for an ``int`` fidelity."""
    if fidelity is None:
        return None
    if spec is not None and spec.fidelity is not None and spec.fidelity.type == "int":
        return int(fidelity)
    return fidelity


def with_fidelity(
    spec: ExperimentSpec | None,
    parameters: Mapping[str, ParameterValue],
    fidelity: float | None,
) -> dict[str, ParameterValue]:
    """The parameters in the spec's order, then the fidelity under its name (``epochs=9``).

    Multi-fidelity algorithms run the same parameters at several fidelities, so a
    trial shown without it is indistinguishable from its siblings.
    """
    order = [p.name for p in spec.parameters] if spec is not None else []
    shown = {name: parameters[name] for name in order if name in parameters}
    shown.update(parameters)
    value = fidelity_value(spec, fidelity)
    if spec is not None and spec.fidelity is not None and value is not None:
        shown[spec.fidelity.parameter] = value
    return shown


def metric_values(spec: ExperimentSpec | None, status: TrialStatus) -> dict[str, float]:
    """Each metric of a trial reduced by the experiment's strategy for it."""
    values = {}
    for summary in status.metrics:
        strategy = spec.objective.strategy_for(summary.name) if spec else Strategy.LATEST
        values[summary.name] = (
            summary.min
            if strategy is Strategy.MIN
            else summary.max
            if strategy is Strategy.MAX
            else summary.latest
        )
    return values


def record_from_status(
    *,
    name: str,
    index: int,
    parameters: Mapping[str, ParameterValue],
    fidelity: float | None,
    status: TrialStatus,
    spec: ExperimentSpec | None,
    attempts: int | None = None,
    parent: str | None = None,
    perturbation: str | None = None,
) -> TrialRecord:
    """A record from a trial's identity, lineage and status."""
    return TrialRecord(
        name=name,
        index=index,
        phase=status.phase,
        parameters=dict(parameters),
        objective=status.objective,
        metrics=metric_values(spec, status),
        fidelity=fidelity,
        reason=status.reason,
        message=status.message,
        start_time=status.start_time,
        completion_time=status.completion_time,
        curve=tuple((p.step, p.value) for p in status.curve),
        attempts=attempts,
        parent=parent,
        perturbation=perturbation,
    )


def record_from_trial(trial: Trial, spec: ExperimentSpec | None) -> TrialRecord:
    """A record from a cluster Trial."""
    return record_from_status(
        name=trial.metadata.name,
        index=trial.spec.index,
        parameters=trial.spec.parameters,
        fidelity=trial.spec.fidelity,
        status=trial.status or TrialStatus(),
        spec=spec,
        parent=trial.spec.parent,
        perturbation=trial.spec.perturbation,
    )


def lineage(records: Iterable[TrialRecord], name: str) -> list[TrialRecord]:
    """The trials whose training ``name`` continues, oldest first, ending with ``name``.

    Empty when ``name`` is not among the records; a parent missing from them (or a
    cycle, which no algorithm makes) ends the chain.
    """
    by_name = {r.name: r for r in records}
    chain: list[TrialRecord] = []
    current = by_name.get(name)
    while current is not None and current not in chain:
        chain.append(current)
        current = by_name.get(current.parent) if current.parent is not None else None
    return list(reversed(chain))


def _usable(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def rank(records: Iterable[TrialRecord], direction: Direction) -> list[TrialRecord]:
    """Best first: succeeded trials by objective, then early-stopped ones by objective,
    then the rest by phase; ties by index."""
    sign = 1.0 if direction is Direction.MINIMIZE else -1.0

    def key(record: TrialRecord) -> tuple[int, int, float, int]:
        group = _PHASE_ORDER.get(record.phase, 9)
        has = _usable(record.objective)
        value = sign * record.objective if has and record.objective is not None else 0.0
        return (group, 0 if has else 1, value, record.index)

    return sorted(records, key=key)


def feasible(spec: ExperimentSpec, record: TrialRecord) -> bool:
    """Whether the trial reported every constrained metric within its bounds."""
    for constraint in spec.constraints or ():
        value = record.metrics.get(constraint.metric)
        if value is None and constraint.metric == spec.objective.metric:
            value = record.objective
        violation = constraint.violation(value)
        if violation is None or violation > 0:
            return False
    return True


def best_records(
    records: Iterable[TrialRecord], spec: ExperimentSpec, count: int
) -> list[TrialRecord]:
    """The ``count`` best succeeded, feasible trials with an objective, best first.

    The trials the experiment's ``bestTrial`` is chosen among, so the first is it
    (ties aside): what ``kubesweep best --top`` lists instead of ``kubectl get trials``.
    """
    candidates = [
        r
        for r in records
        if r.phase is TrialPhase.SUCCEEDED and _usable(r.objective) and feasible(spec, r)
    ]
    return rank(candidates, spec.objective.direction)[:count]


def sort_records(
    records: Iterable[TrialRecord], by: str, direction: Direction, *, descending: bool = False
) -> list[TrialRecord]:
    """Records sorted by ``by``: a :data:`SORT_KEYS` key, a metric or a parameter name.

    Missing values sort last whatever the order.
    """
    items = list(records)
    if by == "objective":
        ranked = rank(items, direction)
        return list(reversed(ranked)) if descending else ranked

    def value(record: TrialRecord) -> Any:
        if by == "index":
            return record.index
        if by == "name":
            return record.name
        if by == "phase":
            return _PHASE_ORDER.get(record.phase, 9)
        if by == "duration":
            return record.duration
        if by == "started":
            return record.start_time
        if by in record.metrics:
            return record.metrics[by]
        return record.parameters.get(by)

    present = [r for r in items if value(r) is not None]
    missing = [r for r in items if value(r) is None]
    try:
        present.sort(key=value, reverse=descending)
    except TypeError:  # mixed types (a categorical): compare as text
        present.sort(key=lambda r: str(value(r)), reverse=descending)
    return present + missing


def is_known_sort_key(by: str, records: Sequence[TrialRecord]) -> bool:
    """Whether ``by`` names a sort key, a metric or a parameter of some record."""
    return by in SORT_KEYS or any(by in r.metrics or by in r.parameters for r in records)


def best_so_far(values: Sequence[float | None], direction: Direction) -> list[float | None]:
    """The running best of a sequence (``None`` until the first value)."""
    out: list[float | None] = []
    best: float | None = None
    for value in values:
        if _usable(value) and value is not None:
            if best is None:
                best = value
            elif direction is Direction.MINIMIZE:
                best = min(best, value)
            else:
                best = max(best, value)
        out.append(best)
    return out
