"""Where experiments are read from: a cluster, or the state file of a local run.

``describe``, ``trials``, ``best``, ``logs`` and ``report`` work on both: a
:class:`Source` yields typed Experiments and :class:`TrialRecord` rows, and the
commands never know which one they hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from kubesweep.api import Experiment, ExperimentSpec, Trial
from kubesweep.cli.bulk import KeptByName
from kubesweep.cli.local.processes import log_tail
from kubesweep.cli.local.runner import trials_dir
from kubesweep.cli.local.store import LocalTrial, Store, TrialRow, parse_row
from kubesweep.cli.ranking import TrialRecord, record_from_status, record_from_trial
from kubesweep.gcpause import collector_paused


class NotFoundError(LookupError):
    """The experiment or trial does not exist where it was looked for."""


#: Default folder of local state files, relative to the working directory.
STATE_DIR = Path(".kubesweep")


def default_state(name: str) -> Path:
    """The state file ``kubesweep run`` uses for experiment ``name`` by default."""
    return STATE_DIR / f"{name}.db"


class Source(Protocol):
    """Read access to experiments and their trials."""

    def experiments(self) -> list[Experiment]:
        """Every experiment in scope."""
        ...

    def experiment(self, name: str) -> Experiment:
        """One experiment, with status; raises :class:`NotFoundError`."""
        ...

    def trials(self, experiment: Experiment) -> list[TrialRecord]:
        """The experiment's trials as records."""
        ...

    def log(self, trial: str, tail: int | None = None) -> str:
        """A trial's output (the primary container's log)."""
        ...


def _record(trial: LocalTrial, spec: ExperimentSpec) -> TrialRecord:
    return record_from_status(
        name=trial.name,
        index=trial.index,
        parameters=trial.parameters,
        fidelity=trial.fidelity,
        status=trial.status,
        spec=spec,
        attempts=trial.attempts,
        parent=trial.parent,
        perturbation=trial.perturbation,
    )


class ParsedRecords:
    """A state file's trial rows read before, each with the record built from it.

    A reader that reads the same store at every change (the dashboard) parses
    only the rows that differ from those it kept and builds their records: every
    other trial comes back as the very record it was before, so what the reader
    derives from a record (a table row) it can keep by identity. Only the row and
    the record are kept, not the parsed trial with its status model (about 5.4 kB a
    trial, against 2.5 kB for the row and the record): half a gigabyte at 100,000.
    """

    def __init__(self) -> None:
        self._kept: KeptByName[TrialRow, TrialRecord] = KeptByName()

    def records(self, rows: Sequence[TrialRow], spec: ExperimentSpec) -> list[TrialRecord]:
        """The record of each of ``rows`` under ``spec`` (which decides its metrics)."""
        return self._kept.values(
            ((str(row[1]), tuple(row)) for row in rows),
            spec,
            lambda row: _record(parse_row(row), spec),
        )


class LocalSource:
    """A local run's SQLite state file."""

    def __init__(self, path: Path, parsed: ParsedRecords | None = None) -> None:
        if not path.exists():
            raise NotFoundError(f"no state file {path}; run the experiment with kubesweep run")
        self.path = path
        self.store = Store(path)
        self.parsed = parsed

    def experiments(self) -> list[Experiment]:
        """The one experiment of the file."""
        return [self._experiment()]

    def _experiment(self) -> Experiment:
        manifest = self.store.manifest
        if manifest is None:
            raise NotFoundError(f"{self.path} holds no experiment yet")
        status = self.store.status()
        if status is not None:
            manifest["status"] = status.to_wire()
        return Experiment.model_validate(manifest)

    def experiment(self, name: str) -> Experiment:
        """The file's experiment if it is called ``name``."""
        found = self._experiment()
        if name and found.metadata.name != name:
            raise NotFoundError(f"{self.path} holds experiment {found.metadata.name}, not {name}")
        return found

    def trials(self, experiment: Experiment) -> list[TrialRecord]:
        """Every recorded trial."""
        with collector_paused():
            if self.parsed is None:
                return [_record(t, experiment.spec) for t in self.store.trials()]
            return self.parsed.records(self.store.rows(), experiment.spec)

    def log_lines(self, trial: str, lines: int) -> list[str]:
        """The last non-empty lines of the trial's log (none if it has no log)."""
        return log_tail(trials_dir(self.path) / trial / "stdout.log", lines)

    def log(self, trial: str, tail: int | None = None) -> str:
        """The trial's stdout log from its folder beside the state file."""
        path = trials_dir(self.path) / trial / "stdout.log"
        if not path.exists():
            raise NotFoundError(f"no log for trial {trial} in {path.parent}")
        if tail is not None:
            return "\n".join(log_tail(path, tail)) + "\n"
        return path.read_text(errors="replace")


class LocalRuns:
    """Every local run whose state file is in a folder: ``.kubesweep/`` by default.

    ``kubesweep get --local`` lists them, as ``kubesweep get`` lists a namespace.
    """

    def __init__(self, directory: Path = STATE_DIR, *, keep_parsed: bool = False) -> None:
        self.directory = directory
        #: With ``keep_parsed``, the trials parsed so far per state file and their records,
        #: for readers that read again at every change (the dashboard).
        self.parsed: dict[Path, ParsedRecords] | None = {} if keep_parsed else None

    def _open(self, path: Path) -> LocalSource:
        parsed = None if self.parsed is None else self.parsed.setdefault(path, ParsedRecords())
        return LocalSource(path, parsed)

    def state_files(self) -> list[Path]:
        """The state files, by name."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.db"))

    def experiments(self) -> list[Experiment]:
        """The experiment of each state file that holds one, by name."""
        found = []
        for path in self.state_files():
            try:
                found.append(LocalSource(path).experiment(""))
            except (NotFoundError, sqlite3.DatabaseError):
                continue  # a file of another tool, or a run that has not begun
        return sorted(found, key=lambda e: e.metadata.name)

    def _source(self, name: str) -> LocalSource:
        usual = self.directory / f"{name}.db"
        if usual.exists():
            return self._open(usual)
        for path in self.state_files():
            source = self._open(path)
            if source.store.experiment_name == name:
                return source
        raise NotFoundError(f"no local run of {name} in {self.directory}")

    def experiment(self, name: str) -> Experiment:
        """The experiment ``name`` from its state file."""
        return self._source(name).experiment(name)

    def trials(self, experiment: Experiment) -> list[TrialRecord]:
        """Its trials."""
        return self._source(experiment.metadata.name).trials(experiment)

    def log(self, trial: str, tail: int | None = None) -> str:
        """A trial's output, from the run its name belongs to."""
        experiment = trial.rsplit("-", 1)[0]
        return self._source(experiment).log(trial, tail)


def trial_records(trials: Sequence[Trial], experiment: Experiment) -> list[TrialRecord]:
    """Cluster Trials as records, by index."""
    records = [record_from_trial(t, experiment.spec) for t in trials]
    return sorted(records, key=lambda r: r.index)
