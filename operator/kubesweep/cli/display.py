"""What the reader commands print, built from typed Experiments and trial records.

Pure: each function turns models into rich renderables, plain data or text;
:mod:`kubesweep.cli.main` decides where it goes. ``best_*`` shape the winning
configuration for YAML/JSON, shell env and a ConfigMap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from kubesweep.api import BestTrial, Experiment, ExperimentStatus, TrialCounts, TrialPhase
from kubesweep.cli.failures import (
    causes,
    details,
    explain,
    failed_trials,
    headline,
    name_list,
)
from kubesweep.cli.front import front_table, objectives_text
from kubesweep.cli.local.store import INTERRUPTED
from kubesweep.cli.output import age, fmt_number, fmt_params, phase_text, trials_table
from kubesweep.cli.ranking import TrialRecord, lineage, rank, with_fidelity
from kubesweep.planning.outcome import front_summary
from kubesweep.rendering import format_value, param_env_name


def end_line(status: ExperimentStatus, *, first_line: bool = False) -> Text:
    """``Succeeded (MaxTrialsReached): ...`` from the final condition.

    ``first_line`` keeps the message's first line, for a view that has shown
    the failures' output already.
    """
    for kind in ("Succeeded", "Failed"):
        condition = status.condition(kind)
        if condition is not None and condition.status == "True":
            style = "green" if kind == "Succeeded" else "red"
            message = headline(condition.message) if first_line else condition.message
            return Text.assemble((kind, style), f" ({condition.reason}): {message}")
    message = status.message or ""
    return Text(f"{status.phase.value}: {headline(message) if first_line else message}")


def experiment_trials_table(
    experiment: Experiment,
    records: Sequence[TrialRecord],
    *,
    title: str | None = None,
    ranked: bool = False,
) -> Table:
    """:func:`trials_table` with the experiment's objective, metrics and parameters as columns."""
    spec = experiment.spec
    return trials_table(
        records,
        objective=spec.objective.metric,
        metrics=spec.objective.additional_metrics,
        parameters=[p.name for p in spec.parameters],
        fidelity=spec.fidelity.parameter if spec.fidelity is not None else None,
        title=title,
        ranked=ranked,
        lineage=any(r.parent is not None for r in records),
    )


def progress_text(experiment: Experiment) -> str:
    """``5/20`` trials completed of the budget."""
    status = experiment.status
    done = status.trials.completed if status else 0
    return f"{done}/{experiment.spec.budget.max_trials}"


def progress_line(experiment: Experiment) -> str:
    """One line of ``watch`` output when not on a terminal."""
    status = experiment.status or ExperimentStatus()
    best = status.best_trial
    if best is not None:
        best_text = f"best {fmt_number(best.objective)} ({best.name})"
    elif status.pareto_front:
        best_text = f"best {best_text_of(experiment, status)}"
    else:
        best_text = "no best yet"
    counts = status.trials
    return (
        f"{experiment.metadata.name} {status.phase.value} {progress_text(experiment)} done, "
        f"{counts.running} running, {pending_text(counts)}, {best_text}"
    )


def pending_text(counts: TrialCounts) -> str:
    """``3 pending``, or ``3 pending (2 queued)`` when a queue holds some back (Kueue)."""
    queued = f" ({counts.queued} queued)" if counts.queued else ""
    return f"{counts.pending} pending{queued}"


def experiments_table(experiments: Sequence[Experiment], show_namespace: bool = False) -> Table:
    """``kubesweep get``: phase, best objective, progress, algorithm, age."""
    table = Table(header_style="bold", box=None)
    if show_namespace:
        table.add_column("NAMESPACE")
    for column in ("NAME", "PHASE", "OBJECTIVE", "BEST", "TRIALS", "RUNNING", "ALGORITHM", "AGE"):
        table.add_column(column)
    for experiment in experiments:
        status = experiment.status or ExperimentStatus()
        row = [experiment.metadata.namespace or ""] if show_namespace else []
        row += [
            experiment.metadata.name,
            phase_label(status),
            ", ".join(
                f"{o.metric} ({o.direction.value})" for o in experiment.spec.objective_metrics
            ),
            best_text_of(experiment, status),
            progress_text(experiment),
            str(status.trials.running),
            experiment.spec.algorithm.name.value,
            age(status.start_time),
        ]
        table.add_row(*row)
    return table


def best_text_of(experiment: Experiment, status: ExperimentStatus) -> str:
    """The best objective, or with several objectives each one's best on the front and its size."""
    if status.best_trial is not None:
        return fmt_number(status.best_trial.objective)
    if status.pareto_front:
        size = status.pareto_front_size or len(status.pareto_front)
        return front_summary(experiment.spec, status.pareto_front, size) or "-"
    return "-"


def phase_label(status: ExperimentStatus) -> str:
    """The phase, or ``Interrupted`` for a local run whose runner was stopped."""
    ready = status.condition("Ready")
    if ready is not None and ready.status == "False" and ready.reason == INTERRUPTED:
        return "Interrupted"
    return status.phase.value


def list_wire(experiments: Sequence[Experiment]) -> Any:
    """``-o yaml|json`` of ``get``: one object, or a List like kubectl's."""
    items = [e.to_wire() for e in experiments]
    if len(items) == 1:
        return items[0]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def failed(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Failed trials, latest first."""
    return failed_trials(records)


def failure_summary(
    experiment: Experiment,
    records: Sequence[TrialRecord],
    outputs: Mapping[str, Sequence[str]] | None = None,
    *,
    local: bool = False,
    whole: int = 3,
) -> RenderableType | None:
    """Why trials failed, one entry per cause; the output of the ``whole`` most frequent ones.

    ``outputs`` holds the last lines some trials printed (for hints about their
    metrics); ``local`` says the trials were local processes. ``None`` when no
    trial failed.
    """
    outputs = outputs or {}
    found = causes(records)
    if not found:
        return None
    total = sum(len(cause.trials) for cause in found)
    text = Text()
    text.append(f"{total} trial{'s' if total != 1 else ''} failed", style="bold red")
    text.append(f" ({len(found)} cause{'s' if len(found) != 1 else ''}):\n")
    for position, cause in enumerate(found):
        count = len(cause.trials)
        text.append(f"{cause.phase.value} ", style="bold red")
        text.append(f"{name_list(cause.names)}")
        text.append(f" ({count} trial{'s' if count != 1 else ''})" if count > 1 else "")
        latest = cause.trials[0]
        said = explain(
            cause.reason, cause.message, experiment.spec, outputs.get(latest.name), local=local
        )
        text.append(f": {headline(said) or cause.reason}\n")
        output = details(cause.message)
        if output and position < whole:
            text.append(_indent(output) + "\n", style="dim")
    return text


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def describe(
    experiment: Experiment,
    records: Sequence[TrialRecord],
    logs: Mapping[str, str],
    *,
    local: bool = False,
) -> RenderableType:
    """``kubesweep describe``: spec summary, best trial, conditions, top trials, failures.

    ``logs`` holds the end of some failed trials' output; ``local`` says they were
    local processes.
    """
    status = experiment.status or ExperimentStatus()
    parts: list[RenderableType] = [_summary(experiment, status)]
    if status.best_trial is not None:
        parts.append(_best_trial_table(experiment, status.best_trial))
        chain = lineage(records, status.best_trial.name)
        if len(chain) > 1:
            parts.append(lineage_text(chain))
    if status.pareto_front:
        parts.append(front_table(experiment, status))
    if status.conditions:
        parts.append(_conditions_table(status))
    if records:
        top = rank(records, experiment.spec.objective.direction)[:10]
        parts.append(experiment_trials_table(experiment, top, title="Top trials", ranked=True))
    parts.extend(
        _failure(experiment, record, logs.get(record.name), local) for record in failed(records)[:3]
    )
    return Group(*parts)


def lineage_text(chain: Sequence[TrialRecord]) -> Text:
    """``Lineage: a -> b (lr x1.2) -> c``: the trials a trial's training went through."""
    steps = [r.name + (f" ({r.perturbation})" if r.perturbation else "") for r in chain]
    return Text.assemble(("Lineage: ", "bold"), " -> ".join(steps))


def _summary(experiment: Experiment, status: ExperimentStatus) -> Table:
    spec = experiment.spec
    meta = Table.grid(padding=(0, 2))
    meta.add_column(style="bold")
    meta.add_column()
    meta.add_row("Name", experiment.metadata.name)
    if experiment.metadata.namespace:
        meta.add_row("Namespace", experiment.metadata.namespace)
    meta.add_row("Phase", phase_label(status))
    if spec.is_multi_objective or spec.constraints:
        meta.add_row("Objectives", objectives_text(experiment))
    else:
        meta.add_row(
            "Objective",
            f"{spec.objective.direction.value} {spec.objective.metric}"
            + (f" (target {spec.objective.target:g})" if spec.objective.target is not None else ""),
        )
    meta.add_row("Algorithm", spec.algorithm.name.value)
    if spec.early_stopping is not None:
        meta.add_row("Early stopping", spec.early_stopping.name.value)
    budget = spec.budget
    meta.add_row(
        "Budget",
        f"maxTrials {budget.max_trials}, parallelTrials {budget.parallel_trials}"
        + (f", maxDuration {budget.max_duration}" if budget.max_duration else ""),
    )
    counts = status.trials
    meta.add_row(
        "Trials",
        f"{counts.created} created, {counts.succeeded} succeeded, {counts.running} running, "
        f"{pending_text(counts)}, {counts.early_stopped} stopped, "
        f"{counts.failed + counts.metrics_unavailable} failed"
        + (f", {status.infeasible_trials} infeasible" if status.infeasible_trials else ""),
    )
    meta.add_row("Started", age(status.start_time) + " ago" if status.start_time else "-")
    if status.message:
        meta.add_row("Message", status.message)
    return meta


def _best_trial_table(experiment: Experiment, best: BestTrial) -> Table:
    spec = experiment.spec
    table = Table(title=f"Best trial {best.name}", header_style="bold", box=None)
    table.add_column("PARAMETER")
    table.add_column("VALUE")
    for name, value in best.parameters.items():
        table.add_row(name, str(value))
    if best.fidelity is not None and spec.fidelity is not None:
        table.add_row(spec.fidelity.parameter, f"{best.fidelity:g} (fidelity)")
    table.add_row(f"[bold]{spec.objective.metric}[/bold]", fmt_number(best.objective))
    for name, value in best.metrics.items():
        if name != spec.objective.metric:
            table.add_row(name, fmt_number(value))
    return table


def _conditions_table(status: ExperimentStatus) -> Table:
    conditions = Table(title="Conditions", header_style="bold", box=None)
    for column in ("TYPE", "STATUS", "REASON", "MESSAGE"):
        conditions.add_column(column)
    for condition in status.conditions:
        conditions.add_row(condition.type, condition.status, condition.reason, condition.message)
    return conditions


def _failure(experiment: Experiment, record: TrialRecord, log: str | None, local: bool) -> Text:
    """A failed trial: its reason and cause, then its log (else the output its message holds)."""
    said = explain(
        record.reason,
        record.message,
        experiment.spec,
        log.splitlines() if log else None,
        local=local,
    )
    text = Text()
    text.append(f"Trial {record.name} {record.phase.value}", style="bold red")
    text.append(f": {record.reason or ''} {headline(said)}\n")
    output = log.rstrip() if log else details(record.message)
    if output:
        text.append(output + "\n", style="dim")
    return text


def watch_panel(experiment: Experiment, records: Sequence[TrialRecord]) -> RenderableType:
    """``kubesweep watch`` on a terminal: the progress line and the running and best trials."""
    spec = experiment.spec
    running = [r for r in records if r.phase is TrialPhase.RUNNING]
    table = Table(header_style="bold", box=None)
    table.add_column("TRIAL")
    table.add_column("PHASE")
    table.add_column(spec.objective.metric.upper(), justify="right")
    table.add_column("PARAMETERS")
    shown = running + [r for r in rank(records, spec.objective.direction)[:5] if r not in running]
    for record in shown:
        table.add_row(
            record.name,
            phase_text(record.phase),
            fmt_number(record.objective),
            fmt_params(with_fidelity(spec, record.parameters, record.fidelity), 60),
        )
    return Group(Text(progress_line(experiment), style="bold"), table)


def best_result(experiment: Experiment) -> dict[str, Any] | None:
    """The winning trial as plain data: parameters (with the fidelity), objective, metrics."""
    status = experiment.status
    if status is None or status.best_trial is None:
        return None
    best = status.best_trial
    parameters: dict[str, Any] = with_fidelity(experiment.spec, best.parameters, best.fidelity)
    return {
        "experiment": experiment.metadata.name,
        "trial": best.name,
        "objective": {"metric": experiment.spec.objective.metric, "value": best.objective},
        "parameters": parameters,
        "metrics": dict(best.metrics),
    }


def ranked_result(experiment: Experiment, record: TrialRecord) -> dict[str, Any]:
    """One of the best trials as plain data, shaped as :func:`best_result`."""
    spec = experiment.spec
    return {
        "experiment": experiment.metadata.name,
        "trial": record.name,
        "objective": {"metric": spec.objective.metric, "value": record.objective},
        "parameters": with_fidelity(spec, record.parameters, record.fidelity),
        "metrics": dict(record.metrics),
    }


def best_env(experiment: Experiment, result: Mapping[str, Any]) -> str:
    """``KUBESWEEP_PARAM_LR=0.01`` lines, the variables a trial of the experiment sees."""
    del experiment
    lines = [
        f"{param_env_name(name)}={_shell(format_value(value))}"
        for name, value in result["parameters"].items()
    ]
    return "\n".join(lines) + "\n"


def _shell(text: str) -> str:
    if text and all(c.isalnum() or c in "._-+:/@%" for c in text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"


def best_configmap(
    experiment: Experiment, result: Mapping[str, Any], name: str, namespace: str
) -> dict[str, Any]:
    """A ConfigMap holding each winning parameter under its name, plus its provenance."""
    data = {key: format_value(value) for key, value in result["parameters"].items()}
    data["kubesweep.params.json"] = _json(result["parameters"])
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "kubesweep",
                "kubesweep.io/experiment": experiment.metadata.name,
            },
            "annotations": {
                "kubesweep.io/trial": str(result["trial"]),
                "kubesweep.io/objective": f"{result['objective']['metric']}="
                f"{result['objective']['value']!r}",
            },
        },
        "data": data,
    }


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def apply_configmap(kube: Any, body: dict[str, Any]) -> None:
    """Create the ConfigMap, or replace its data if it exists."""
    from kubesweep.cli.kube import KubeError, path_for

    namespace = body["metadata"]["namespace"]
    try:
        kube.request("POST", path_for("v1", "configmaps", namespace), body)
    except KubeError as error:
        if error.status != 409:
            raise
        kube.request(
            "PATCH",
            path_for("v1", "configmaps", namespace, body["metadata"]["name"]),
            {"metadata": body["metadata"], "data": body["data"]},
            content_type="application/merge-patch+json",
        )
