"""The local run's state in one SQLite file: the experiment, its trials, its status.

SQLite because an interrupted run must resume from exactly what was recorded,
and a transaction per change gives that for free: a trial exists in the file
before its process starts, and its final status is written before the runner
forgets it. WAL mode lets ``kubesweep report`` read a run that is still going.

Trials are keyed by index (``<experiment>-<index>``), as on the cluster, so a
resumed run can never create a second trial under an index that exists.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubesweep.api import (
    Condition,
    ConditionType,
    ExperimentPhase,
    ExperimentStatus,
    ParameterValue,
    TrialPhase,
    TrialStatus,
    trial_name,
)
from kubesweep.gcpause import collector_paused

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    idx INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    parameters TEXT NOT NULL,
    fidelity REAL,
    tags TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    pid_start TEXT,
    lineage TEXT
);
"""
#: Columns added after the first state files were written, and their SQL types: a
#: state file from before gets them on open, so ``--resume`` keeps working.
LATER_COLUMNS = {"lineage": "TEXT"}
#: A row of the trials table as read, in the order of ``_COLUMNS``.
TrialRow = tuple[Any, ...]
_COLUMNS = "idx, name, parameters, fidelity, tags, status, attempts, pid, pid_start, lineage"


class StateError(Exception):
    """The state file cannot serve this run (another experiment, unreadable)."""


@dataclass(frozen=True)
class LocalTrial:
    """One trial as recorded: what it runs, how it went, and its last process."""

    index: int
    name: str
    parameters: Mapping[str, ParameterValue]
    fidelity: float | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    status: TrialStatus = field(default_factory=TrialStatus)
    attempts: int = 0
    pid: int | None = None
    pid_start: str | None = None
    #: The trial whose training this one continues, and how its parameters differ.
    parent: str | None = None
    perturbation: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the trial will not run again."""
        return self.status.phase.is_finished


def resumed_status(previous: TrialStatus) -> TrialStatus:
    """The status of a trial that was running when the runner stopped: pending again.

    Its partial metrics are dropped because it runs again from the start under
    the same name and parameters; a finished trial keeps its status.
    """
    if previous.phase.is_finished:
        return previous
    return TrialStatus(
        phase=TrialPhase.PENDING,
        reason="Resumed",
        message="the runner stopped while this trial ran; it runs again from the start",
    )


#: The reason of a trial, and of the experiment's ``Ready`` condition, after an interrupt.
INTERRUPTED = "Interrupted"


def interrupted_status(previous: TrialStatus) -> TrialStatus:
    """The status of a trial the runner stopped on Ctrl-C: pending, to run again on resume."""
    if previous.phase.is_finished:
        return previous
    return TrialStatus(
        phase=TrialPhase.PENDING,
        reason=INTERRUPTED,
        message="the run was interrupted while this trial ran; --resume runs it again "
        "from the start",
    )


def interrupted_experiment(status: ExperimentStatus, message: str) -> ExperimentStatus:
    """The experiment's status once its runner stopped: nothing runs, ``Ready`` says why.

    Its running trials count as pending (they run again on resume); an experiment
    that had ended keeps its status.
    """
    if status.phase in (ExperimentPhase.SUCCEEDED, ExperimentPhase.FAILED):
        return status
    counts = status.trials.model_copy(
        update={"running": 0, "pending": status.trials.pending + status.trials.running}
    )
    ready = Condition(
        type=ConditionType.READY,
        status="False",
        reason=INTERRUPTED,
        message=message,
        last_transition_time=datetime.now(UTC),
    )
    kept = [
        c
        for c in status.conditions
        if c.type not in (ConditionType.READY, ConditionType.RECONCILING)
    ]
    return status.model_copy(
        update={
            "phase": ExperimentPhase.PENDING,
            "trials": counts,
            "conditions": [ready, *kept],
            "message": message,
        }
    )


class Store:
    """Access to one state file; one writer at a time (see :mod:`.lock`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        present = {str(row[1]) for row in self._db.execute("PRAGMA table_info(trials)")}
        for column, kind in LATER_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE trials ADD COLUMN {column} {kind}")

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed on success."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- meta ------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A recorded value."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, **values: str) -> None:
        """Record values (one transaction)."""
        with self.transaction() as db:
            for key, value in values.items():
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def experiment_name(self) -> str | None:
        """The experiment this file belongs to, if any yet."""
        return self.get_meta("experiment")

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The Experiment (as a wire dict) the run was started with."""
        text = self.get_meta("manifest")
        return None if text is None else dict(json.loads(text))

    def status(self) -> ExperimentStatus | None:
        """The last experiment status written."""
        text = self.get_meta("status")
        return None if text is None else ExperimentStatus.model_validate_json(text)

    def save_status(self, status: ExperimentStatus) -> None:
        """Record the experiment status."""
        self.set_meta(status=status.model_dump_json(by_alias=True, exclude_none=True))

    @property
    def exhausted(self) -> bool:
        """Whether the algorithm said the search space has no more configurations."""
        return self.get_meta("exhausted") == "true"

    def set_exhausted(self, value: bool) -> None:
        """Record exhaustion."""
        self.set_meta(exhausted="true" if value else "false")

    # -- trials ----------------------------------------------------------------

    def trials(self) -> list[LocalTrial]:
        """Every trial, by index."""
        rows = self.rows()
        with collector_paused():
            return [parse_row(row) for row in rows]

    def rows(self) -> list[TrialRow]:
        """Every trial's row as stored, by index, unparsed (:func:`parse_row` parses one).

        A reader that reads the same store at every change (the dashboard) keeps
        what it made from each row with the row, and parses only the rows that
        differ from the ones it kept: at 100,000 trials, parsing every status is
        most of a read.
        """
        return self._db.execute(f"SELECT {_COLUMNS} FROM trials ORDER BY idx").fetchall()

    def trial(self, name: str) -> LocalTrial | None:
        """One trial by name."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM trials WHERE name = ?",
            (name,),
        ).fetchone()
        return None if row is None else parse_row(row)

    def add_trial(self, trial: LocalTrial) -> bool:
        """Record a new trial; ``False`` if its index exists (nothing is changed then)."""
        if trial.name != trial_name(self.experiment_name or "", trial.index):
            raise StateError(f"trial {trial.name} does not belong to {self.experiment_name}")
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO trials (idx, name, parameters, fidelity, tags, status, "
                "attempts, lineage) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    trial.index,
                    trial.name,
                    json.dumps(dict(trial.parameters), sort_keys=True),
                    trial.fidelity,
                    json.dumps(dict(trial.tags), sort_keys=True),
                    trial.status.model_dump_json(by_alias=True, exclude_none=True),
                    trial.attempts,
                    _lineage_text(trial),
                ),
            )
            return cursor.rowcount == 1

    def update_trial(self, trial: LocalTrial) -> None:
        """Record a trial's status, attempts and process."""
        with self.transaction() as db:
            db.execute(
                "UPDATE trials SET status = ?, attempts = ?, pid = ?, pid_start = ? WHERE name = ?",
                (
                    trial.status.model_dump_json(by_alias=True, exclude_none=True),
                    trial.attempts,
                    trial.pid,
                    trial.pid_start,
                    trial.name,
                ),
            )

    def mark_interrupted(self, message: str) -> None:
        """Record that the runner stopped its trials and exited (Ctrl-C, SIGTERM).

        The runner leaves its last statuses behind, which say ``Running``; readers
        would show a sweep that no longer runs as running. Each unfinished trial
        becomes pending with reason ``Interrupted`` (its last process stays
        recorded, for ``--resume`` to check), and the experiment's status says so.
        """
        with self.transaction() as db:
            for trial in self.trials():
                if not trial.finished:
                    status = interrupted_status(trial.status)
                    db.execute(
                        "UPDATE trials SET status = ? WHERE name = ?",
                        (status.model_dump_json(by_alias=True, exclude_none=True), trial.name),
                    )
            recorded = self.status()
            if recorded is not None:
                status_text = interrupted_experiment(recorded, message).model_dump_json(
                    by_alias=True, exclude_none=True
                )
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('status', ?)",
                    (status_text,),
                )

    def resume_unfinished(self) -> list[LocalTrial]:
        """Turn every unfinished trial back to pending (see :func:`resumed_status`).

        Returns the trials as they were, with their last process, so the caller
        can make sure no process of theirs is still running.
        """
        unfinished = [t for t in self.trials() if not t.finished]
        for trial in unfinished:
            self.update_trial(replace(trial, status=resumed_status(trial.status)))
        return unfinished


def parse_row(row: TrialRow) -> LocalTrial:
    """The trial a row of :meth:`Store.rows` holds."""
    index, name, parameters, fidelity, tags, status, attempts, pid, pid_start, lineage = row
    lines: dict[str, str] = json.loads(lineage) if lineage else {}
    return LocalTrial(
        index=int(index),
        name=str(name),
        parameters=json.loads(parameters),
        fidelity=None if fidelity is None else float(fidelity),
        tags=json.loads(tags),
        status=TrialStatus.model_validate_json(status),
        attempts=int(attempts),
        pid=None if pid is None else int(pid),
        pid_start=pid_start,
        parent=lines.get("parent"),
        perturbation=lines.get("perturbation"),
    )


def _lineage_text(trial: LocalTrial) -> str | None:
    """The parent and perturbation as JSON, or NULL for a trial that starts from scratch."""
    lines = {
        key: value
        for key, value in (("parent", trial.parent), ("perturbation", trial.perturbation))
        if value is not None
    }
    return json.dumps(lines, sort_keys=True) if lines else None
