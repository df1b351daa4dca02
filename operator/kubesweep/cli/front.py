"""The Pareto front of an experiment with several objectives, for the terminal and scripts.

With ``spec.objectives`` there is no single winner: ``kubesweep best``, ``describe``
and the table at the end of ``kubesweep run`` show the front kept in status, each
objective headed by its metric and the direction the spec gives it (``↓``
minimize, ``↑`` maximize), never a direction guessed from the metric's name.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from kubesweep.api import Direction, Experiment, ExperimentStatus
from kubesweep.cli.output import fmt_number, fmt_params
from kubesweep.cli.ranking import with_fidelity

ARROWS = {Direction.MINIMIZE: "↓", Direction.MAXIMIZE: "↑"}


def objectives_text(experiment: Experiment) -> str:
    """``minimize val_loss, maximize accuracy``, with each constraint's bounds after."""
    spec = experiment.spec
    text = ", ".join(f"{o.direction.value} {o.metric}" for o in spec.objective_metrics)
    bounds = [
        " and ".join(
            part
            for part in (
                f"{c.metric} >= {c.min:g}" if c.min is not None else "",
                f"{c.metric} <= {c.max:g}" if c.max is not None else "",
            )
            if part
        )
        for c in spec.constraints or ()
    ]
    return text + (f" subject to {', '.join(bounds)}" if bounds else "")


def front_result(experiment: Experiment) -> dict[str, Any] | None:
    """The front as plain data (``kubesweep best``); None before any trial is on it."""
    status = experiment.status
    if status is None or not status.pareto_front:
        return None
    spec = experiment.spec
    return {
        "experiment": experiment.metadata.name,
        "objectives": [
            {"metric": o.metric, "direction": o.direction.value} for o in spec.objective_metrics
        ],
        "frontSize": status.pareto_front_size,
        "front": [
            {
                "trial": point.name,
                "values": dict(point.values),
                "parameters": with_fidelity(spec, point.parameters, point.fidelity),
            }
            for point in status.pareto_front
        ],
        **(
            {"infeasibleTrials": status.infeasible_trials}
            if status.infeasible_trials is not None
            else {}
        ),
    }


def front_table(experiment: Experiment, status: ExperimentStatus) -> Table:
    """The front's points, one row each, sorted by the first objective."""
    spec = experiment.spec
    objectives = spec.objective_metrics
    points = sorted(
        status.pareto_front or (),
        key=lambda p: (
            p.values[objectives[0].metric]
            * (1 if objectives[0].direction is Direction.MINIMIZE else -1)
        ),
    )
    size = status.pareto_front_size or 0
    shown = "" if size == len(points) else f", {len(points)} shown"
    title = f"Pareto front: {size} trial{'' if size == 1 else 's'}{shown}"
    table = Table(title=title, header_style="bold", box=None)
    table.add_column("TRIAL")
    for objective in objectives:
        table.add_column(f"{objective.metric} {ARROWS[objective.direction]}", justify="right")
    table.add_column("PARAMETERS")
    for point in points:
        table.add_row(
            point.name,
            *(fmt_number(point.values.get(o.metric)) for o in objectives),
            fmt_params(with_fidelity(spec, point.parameters, point.fidelity), 60),
        )
    return table
