"""What the dashboard's JSON endpoints answer, computed from a source of local runs.

Pure functions over :class:`~kubesweep.api.Experiment` and
:class:`~kubesweep.cli.ranking.TrialRecord`, plus :func:`runs_version`, the
cheap fingerprint of a folder of state files that tells the event stream when to
look again. The experiment page's plot data is exactly the static report's
(:func:`~kubesweep.cli.report.data.report_data`), so both draw the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubesweep.api import Experiment, ExperimentSpec, ExperimentStatus, TrialPhase
from kubesweep.cli.bulk import KeptByName
from kubesweep.cli.failures import explain
from kubesweep.cli.ranking import TrialRecord, lineage, with_fidelity
from kubesweep.cli.report import data
from kubesweep.cli.report.data import curves, shown_parameters

#: Lines of a trial's log the trial page shows.
LOG_TAIL = 50


#: The types of value that :func:`clean` hands back as they are, looked up first: most of
#: a page's values are names and counts.
_PLAIN = frozenset({str, int, bool, type(None)})


def clean(value: Any) -> Any:
    """NaN and infinities become null: JSON has neither."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """:func:`clean` of each value of a dict."""
    return {key: clean(value) for key, value in row.items()}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def experiment_row(
    experiment: Experiment,
    records: Sequence[TrialRecord] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One line of the experiments page: phase, progress, best, age.

    The counts come from the trials when given, else from the status's counts,
    which needs no read of every trial (the experiments page and the event stream).
    """
    status = experiment.status or ExperimentStatus()
    counts = status.trials
    if records is None:
        done, running, trials = counts.completed, counts.running, counts.created
    else:
        done = sum(r.phase.is_finished for r in records)
        running = sum(r.phase is TrialPhase.RUNNING for r in records)
        trials = len(records)
    now = now or datetime.now(UTC)
    created = status.start_time
    best = status.best_trial
    return clean_row(
        {
            "name": experiment.metadata.name,
            "namespace": experiment.metadata.namespace,
            "phase": status.phase.value,
            "message": status.message or "",
            "done": done,
            "running": running,
            "trials": trials,
            "total": experiment.spec.budget.max_trials,
            "metric": experiment.spec.objective.metric,
            "direction": experiment.spec.objective.direction.value,
            "best": None if best is None else {"name": best.name, "objective": best.objective},
            "created": _iso(created),
            "age_seconds": None if created is None else (now - created).total_seconds(),
        }
    )


def trial_row(record: TrialRecord, spec: ExperimentSpec | None = None) -> dict[str, Any]:
    """A trial in the experiment page's table, values exact (the plots round them).

    ``values`` holds the parameters and the fidelity under its name: the columns.
    """
    return clean_row(
        {
            "values": with_fidelity(spec, record.parameters, record.fidelity),
            "name": record.name,
            "index": record.index,
            "phase": record.phase.value,
            "objective": record.objective,
            "parameters": dict(record.parameters),
            "fidelity": record.fidelity,
            "reason": record.reason,
            "parent": record.parent,
            "perturbation": record.perturbation,
            "started": _iso(record.start_time),
            "duration": record.duration,
        }
    )


def _clean_report(report: dict[str, Any]) -> dict[str, Any]:
    """:func:`clean_row` of the report data, but for the history's parts that are clean as
    made (one element per trial)."""
    history = report["history"]
    made = {key: history[key] for key in data.CLEAN_BY_MAKING}
    rest = {key: value for key, value in history.items() if key not in made}
    cleaned = clean_row({**report, "history": rest})
    cleaned["history"] = {**cleaned["history"], **made}
    return cleaned


class TrialRows:
    """The table rows of one experiment's trials, each kept with the record it was made from.

    The experiment page is computed again at every change, while a change touches
    a trial or two: a record that is the same object as before, or equal to it,
    gets the row made before (the same object, which the deltas then pass over
    at once). At 100,000 trials, making every row again is most of a change's cost.
    """

    def __init__(self) -> None:
        self._kept: KeptByName[TrialRecord, dict[str, Any]] = KeptByName()

    def rows(self, records: Sequence[TrialRecord], spec: ExperimentSpec) -> list[dict[str, Any]]:
        """The row of each of ``records``, by index."""
        ordered = sorted(records, key=lambda r: r.index)
        return self._kept.values(
            ((r.name, r) for r in ordered), spec, lambda record: trial_row(record, spec)
        )


def experiment_view(
    experiment: Experiment,
    records: Sequence[TrialRecord],
    now: datetime | None = None,
    importance: list[dict[str, Any]] | None = None,
    rows: TrialRows | None = None,
) -> dict[str, Any]:
    """The experiment page: its line, the report's plot data, every trial.

    Importance fits a random forest (seconds at 10,000 trials), so the server fits
    it less often than the plots redraw and passes the last result in; without it,
    :func:`~kubesweep.cli.report.data.report_data` fits it. The server passes its
    ``rows`` too, which remember the rows of trials that did not change.
    """
    return {
        "experiment": experiment_row(experiment, records, now),
        "report": _clean_report(data.report_data(experiment, records, now, importance)),
        "trials": (rows or TrialRows()).rows(records, experiment.spec),
    }


def trial_view(
    experiment: Experiment,
    record: TrialRecord,
    log: list[str] | None,
    *,
    local: bool = True,
    records: Sequence[TrialRecord] = (),
) -> dict[str, Any]:
    """The trial page: parameters, metrics, its curve, why it ended, its log tail, and its
    lineage among ``records`` (the trials it continues, oldest first, and those continuing it).

    A trial that ended without its objective is told, as in the terminal, what
    its output should have held (from the log tail it printed).
    """
    ancestors = lineage(records, record.name)[:-1]
    return clean_row(
        {
            "experiment": experiment.metadata.name,
            "metric": experiment.spec.objective.metric,
            **trial_row(record, experiment.spec),
            "shown_parameters": shown_parameters(record.parameters),
            "metrics": dict(record.metrics),
            "message": explain(record.reason, record.message, experiment.spec, log, local=local),
            "completed": _iso(record.completion_time),
            "attempts": record.attempts,
            "curves": curves([record]),
            "log": log,
            "lineage": [
                {"name": r.name, "perturbation": r.perturbation, "objective": r.objective}
                for r in ancestors
            ],
            "children": [r.name for r in records if r.parent == record.name],
        }
    )


def runs_version(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """A fingerprint of the state files in ``directory`` that changes with every write.

    The stores run in WAL mode, so a commit grows the ``-wal`` file (or, after a
    checkpoint, changes the database file): name, size and modification time of
    both catch every transaction without opening a connection. An empty
    ``-wal`` file is left out: the first connection to a quiet store creates
    one and the last removes it, so the dashboard's own reads would otherwise
    look like changes and every read would cause another.
    """
    if not directory.is_dir():
        return ()
    found = []
    for path in sorted(directory.iterdir()):
        if path.suffix == ".db" or path.name.endswith(".db-wal"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if stat.st_size or path.suffix == ".db":
                found.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(found)
