"""The report's content as plain JSON-ready data, computed from trial records.

Everything a plot shows is decided here (which trials, which values, the
best-so-far line, the Pareto front, importances), so it is tested without a
browser; the page's script only draws what it is given.

The Pareto plot is drawn for an experiment with several objectives only, with
the directions its spec gives them, and marks the same front its status holds:
the succeeded feasible trials that no other such trial dominates. With one
objective there is no front to draw, and no metric's direction is guessed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubesweep.api import (
    Direction,
    Experiment,
    ExperimentStatus,
    ParameterType,
    ParameterValue,
    TrialPhase,
)
from kubesweep.cli.front import objectives_text
from kubesweep.cli.output import fmt_value
from kubesweep.cli.ranking import TrialRecord, best_so_far, lineage, rank, with_fidelity
from kubesweep.cli.report.axes import linear_axis, log_axis
from kubesweep.cli.report.importance import importance
from kubesweep.cli.report.sample import drawn_records, fitted_records, thin_pareto
from kubesweep.planning.outcome import front_summary


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


#: The parts of :func:`history` that are JSON-safe as made (finite numbers, names): a
#: page of 100,000 trials skips looking at each of them for NaN.
CLEAN_BY_MAKING = ("points", "best")


def history(records: Sequence[TrialRecord], direction: Direction) -> dict[str, Any]:
    """Objective per trial (by index), the best-so-far line over succeeded trials, the axes,
    and the phases the points are coloured by (for the legend), in the order phases go.

    The points and the best-so-far line hold finite objectives only, so they need no
    cleaning for JSON (:data:`CLEAN_BY_MAKING`).
    """
    ordered = sorted(records, key=lambda r: r.index)
    points = [
        {
            "x": r.index,
            "y": r.objective,
            "name": r.name,
            "phase": r.phase.value,
            # Promotions and pbt continue a parent's training: the lineage plot links them.
            **({"parent": r.parent} if r.parent is not None else {}),
        }
        for r in ordered
        if _finite(r.objective)
    ]
    succeeded = [r for r in ordered if r.phase is TrialPhase.SUCCEEDED and _finite(r.objective)]
    running = best_so_far([r.objective for r in succeeded], direction)
    best = [[r.index, b] for r, b in zip(succeeded, running, strict=True)]
    shown = [r for r in ordered if _finite(r.objective)]
    present = {r.phase for r in shown}
    return {
        "points": points,
        "best": best,
        "phases": [phase.value for phase in TrialPhase if phase in present],
        "x": linear_axis([r.index for r in shown], integer=True, pad=0.04, stay_signed=False),
        "y": linear_axis([r.objective for r in shown]),
    }


def _numeric(
    name: str, low: float, high: float, *, log: bool, integer: bool, optional: bool
) -> dict[str, Any]:
    axis = (
        log_axis(low, high) if log else linear_axis([], bounds=(low, high), integer=integer, pad=0)
    )
    return {
        "name": name,
        "kind": "numeric",
        "log": log,
        "integer": integer,
        "min": low,
        "max": high,
        "optional": optional,
        "axis": axis,
    }


def dimensions(experiment: Experiment) -> list[dict[str, Any]]:
    """Axes of the parameter plots: numeric (maybe log) or categorical with its values.

    ``optional`` marks a conditional parameter (``when``): trials without it are
    drawn at a "not set" position instead of crossing its axis unmarked.
    """
    out: list[dict[str, Any]] = []
    for parameter in experiment.spec.parameters:
        optional = parameter.when is not None
        if parameter.type is ParameterType.CATEGORICAL:
            values = [str(v) for v in parameter.values or []]
            out.append(
                {
                    "name": parameter.name,
                    "kind": "categorical",
                    "values": values,
                    "optional": optional,
                }
            )
        else:
            out.append(
                _numeric(
                    parameter.name,
                    float(parameter.low),
                    float(parameter.high),
                    log=parameter.log,
                    integer=parameter.type is ParameterType.INT,
                    optional=optional,
                )
            )
    if experiment.spec.fidelity is not None:
        fidelity = experiment.spec.fidelity
        out.append(
            _numeric(
                fidelity.parameter,
                fidelity.min,
                fidelity.max,
                log=False,
                integer=fidelity.type == "int",
                optional=False,
            )
        )
    return out


def _value(record: TrialRecord, name: str, experiment: Experiment) -> Any:
    fidelity = experiment.spec.fidelity
    if fidelity is not None and name == fidelity.parameter:
        return record.fidelity
    value = record.parameters.get(name)
    if value is None:
        return None
    parameter = experiment.spec.parameter(name)
    return str(value) if parameter.type is ParameterType.CATEGORICAL else value


def parallel(records: Sequence[TrialRecord], experiment: Experiment) -> dict[str, Any]:
    """One line per trial with an objective across every parameter axis and the objective."""
    dims = dimensions(experiment)
    rows = [
        {
            "name": r.name,
            "values": [_value(r, d["name"], experiment) for d in dims],
            "objective": r.objective,
            "phase": r.phase.value,
        }
        for r in records
        if _finite(r.objective)
    ]
    objective = linear_axis([r.objective for r in records], pad=0)
    return {"dimensions": dims, "rows": rows, "objective_axis": objective}


def slices(records: Sequence[TrialRecord], experiment: Experiment) -> list[dict[str, Any]]:
    """Objective against each parameter."""
    out = []
    for dim in dimensions(experiment):
        points = [
            {"x": _value(r, dim["name"], experiment), "y": r.objective, "name": r.name}
            for r in records
            if _finite(r.objective) and _value(r, dim["name"], experiment) is not None
        ]
        axes: dict[str, Any] = {"y": linear_axis([p["y"] for p in points])}
        if dim["kind"] == "numeric":
            axes["x"] = (
                dim["axis"]
                if dim["log"]
                else linear_axis(
                    [p["x"] for p in points],
                    bounds=(dim["min"], dim["max"]),
                    integer=dim["integer"],
                    pad=0.02,
                )
            )
        out.append({**dim, **axes, "points": points})
    return out


def curves(records: Sequence[TrialRecord]) -> dict[str, Any]:
    """Intermediate values per trial (early-stopped trials marked), and the axes.

    A trial that reported one value (one epoch of a Hyperband bracket, a value
    without a step) has a curve of one point, which the page draws as a dot.
    """
    series = [
        {
            "name": r.name,
            "phase": r.phase.value,
            "stopped": r.phase is TrialPhase.EARLY_STOPPED,
            "points": [[step, value] for step, value in r.curve],
        }
        for r in sorted(records, key=lambda r: r.index)
        if r.curve
    ]
    steps = [step for r in records for step, _ in r.curve]
    values = [value for r in records for _, value in r.curve]
    return {
        "series": series,
        "x": linear_axis(steps, integer=True, pad=0.02, stay_signed=False),
        "y": linear_axis(values),
    }


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether ``a`` is at least as good as ``b`` everywhere and better somewhere (minimising)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def pareto_front(points: Sequence[Sequence[float]]) -> list[bool]:
    """For each point (all coordinates minimised), whether no other point dominates it.

    In lexicographic order a point's dominators all come before it, and whatever
    dominates it is itself on the front or dominated by a point there: so each
    point is compared with the front found so far only, not with every other
    point (10,000 trials: a few front points each, not 10,000).
    """
    order = sorted(range(len(points)), key=lambda i: tuple(points[i]))
    front: list[Sequence[float]] = []
    on = [False] * len(points)
    for i in order:
        if not any(dominates(q, points[i]) for q in front):
            on[i] = True
            front.append(points[i])
    return on


def _feasible(record: TrialRecord, experiment: Experiment) -> bool:
    for constraint in experiment.spec.constraints or ():
        missed = constraint.violation(record.metrics.get(constraint.metric))
        if missed is None or missed > 0:
            return False
    return True


def pareto(records: Sequence[TrialRecord], experiment: Experiment) -> dict[str, Any] | None:
    """The trials over the objectives, the front marked; ``None`` with one objective."""
    spec = experiment.spec
    if not spec.is_multi_objective:
        return None
    objectives = spec.objective_metrics
    metrics = [o.metric for o in objectives]
    signs = [1.0 if o.direction is Direction.MINIMIZE else -1.0 for o in objectives]
    candidates = []
    for record in records:
        if record.phase is not TrialPhase.SUCCEEDED:
            continue
        values = [
            record.metrics.get(m, record.objective if m == spec.objective.metric else None)
            for m in metrics
        ]
        if all(_finite(v) for v in values):
            numbers = [float(v) for v in values if v is not None]
            candidates.append((record, numbers, _feasible(record, experiment)))
    feasible = [values for _, values, ok in candidates if ok]
    signed = [[s * v for s, v in zip(signs, values, strict=True)] for values in feasible]
    on_front = iter(pareto_front(signed))
    return {
        "metrics": metrics,
        "axes": [
            linear_axis([values[k] for _, values, _ in candidates]) for k in range(len(metrics))
        ],
        "directions": [o.direction.value for o in objectives],
        "points": [
            {
                "name": record.name,
                "values": values,
                "front": ok and next(on_front),
                "feasible": ok,
            }
            for record, values, ok in candidates
        ],
    }


def importances(records: Sequence[TrialRecord], experiment: Experiment) -> list[dict[str, Any]]:
    """Parameter importance, largest first (empty with too few trials)."""
    usable = [r for r in records if r.phase is TrialPhase.SUCCEEDED and _finite(r.objective)]
    parameters = list(experiment.spec.parameters)
    shares = importance(
        parameters,
        [r.parameters for r in usable],
        [float(r.objective) for r in usable if r.objective is not None],
    )
    return [
        {"name": name, "importance": share}
        for name, share in sorted(shares.items(), key=lambda item: -item[1])
    ]


def summary(
    experiment: Experiment,
    records: Sequence[TrialRecord],
    ranked: Sequence[TrialRecord] | None = None,
) -> dict[str, Any]:
    """Headline figures: phase, counts, best trial (with several objectives: the front's).

    ``ranked`` is ``records`` ranked, when the caller has it already.
    """
    status = experiment.status or ExperimentStatus()
    spec = experiment.spec
    best = status.best_trial
    if ranked is None:
        ranked = rank(records, spec.objective.direction)
    tally = Counter(r.phase for r in records)
    front = status.pareto_front or []
    return {
        "phase": status.phase.value,
        "front": front_summary(spec, front, status.pareto_front_size or len(front)),
        "message": status.message or "",
        "trials": len(records),
        "counts": {phase.value: tally[phase] for phase in TrialPhase},
        "best": None
        if best is None
        else {
            "name": best.name,
            "objective": best.objective,
            "parameters": shown_parameters(with_fidelity(spec, best.parameters, best.fidelity)),
            "lineage": [
                {"name": r.name, "perturbation": r.perturbation}
                for r in lineage(records, best.name)
            ],
        },
        "top": [
            {
                "name": r.name,
                "phase": r.phase.value,
                "objective": r.objective,
                "parameters": shown_parameters(with_fidelity(spec, r.parameters, r.fidelity)),
                "parent": r.parent,
            }
            for r in ranked[:10]
        ],
    }


def shown_parameters(parameters: Mapping[str, ParameterValue]) -> dict[str, str]:
    """Parameter values as the page's text shows them: floats to 4 significant digits.

    The exact values are in ``kubesweep best`` and ``kubesweep trials -o json``.
    """
    return {name: fmt_value(value) for name, value in parameters.items()}


def report_data(
    experiment: Experiment,
    records: Sequence[TrialRecord],
    now: datetime | None = None,
    importance: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Everything the page shows: the per-trial plots from :func:`~.sample.drawn_records`
    (``drawn`` says how many of how many), importance fitted on
    :func:`~.sample.fitted_records` unless given."""
    objective = experiment.spec.objective
    ranked = rank(records, objective.direction)
    drawn = drawn_records(records, objective.direction, ranked=ranked)
    if importance is None:
        importance = importances(fitted_records(records), experiment)
    return {
        "experiment": experiment.metadata.name,
        "namespace": experiment.metadata.namespace,
        "generated": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "objective": {"metric": objective.metric, "direction": objective.direction.value},
        "objectives": objectives_text(experiment),
        "algorithm": experiment.spec.algorithm.name.value,
        "summary": summary(experiment, records, ranked),
        "history": history(records, objective.direction),
        "parallel": parallel(drawn, experiment),
        "importance": importance,
        "slices": slices(drawn, experiment),
        "curves": curves(drawn),
        "pareto": thin_pareto(pareto(records, experiment)),
        "drawn": {"trials": len(drawn), "of": len(records)},
    }
