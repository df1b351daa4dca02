"""What the dashboard reads: local runs, or a cluster, behind one :class:`Feed`.

The server never knows which it holds. A feed answers the reads of the pages
(experiments, one experiment, its trials, a trial's log tail) and a
:meth:`Feed.version` that changes whenever anything it answers may have changed,
which the event stream compares to tell the pages when to fetch again. Local
runs are followed by the state files' fingerprint; a cluster by watches
(:mod:`kubesweep.cli.dashboard.cluster_feed`).
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Protocol

from kubesweep.api import Experiment
from kubesweep.cli.dashboard.views import runs_version
from kubesweep.cli.experiment_sources import LocalRuns, NotFoundError
from kubesweep.cli.ranking import TrialRecord


class Feed(Protocol):
    """Read access to experiments and their trials, and a version that says when to read again."""

    #: Local processes (their messages are told as processes), or a cluster's workloads.
    local: bool

    async def start(self) -> None:
        """Begin following (a cluster: list, then watch); raises when it cannot."""
        ...

    async def close(self) -> None:
        """Stop following."""
        ...

    def version(self) -> Hashable:
        """A value that changes whenever an answer below may have changed."""
        ...

    def experiments(self) -> list[Experiment]:
        """Every experiment in scope."""
        ...

    def experiment(self, name: str) -> Experiment:
        """One experiment; raises :class:`NotFoundError`."""
        ...

    def trials(self, experiment: Experiment) -> list[TrialRecord]:
        """The experiment's trials as records."""
        ...

    def log_lines(self, trial: str, lines: int) -> list[str] | None:
        """The last ``lines`` lines of a trial's output; ``None`` where it cannot be reached."""
        ...


class LocalFeed:
    """The local runs of a folder of state files, followed by their fingerprint."""

    local = True

    def __init__(self, directory: Path) -> None:
        self.runs = LocalRuns(directory, keep_parsed=True)

    async def start(self) -> None:
        """Nothing to begin: every read opens the state files."""

    async def close(self) -> None:
        """Nothing to stop."""

    def version(self) -> Hashable:
        """The state files' fingerprint (:func:`runs_version`)."""
        return runs_version(self.runs.directory)

    def experiments(self) -> list[Experiment]:
        """Each state file's experiment."""
        return self.runs.experiments()

    def experiment(self, name: str) -> Experiment:
        """The experiment ``name`` from its state file."""
        return self.runs.experiment(name)

    def trials(self, experiment: Experiment) -> list[TrialRecord]:
        """Its trials."""
        return self.runs.trials(experiment)

    def log_lines(self, trial: str, lines: int) -> list[str] | None:
        """The log tail from the trial's folder beside the state file."""
        try:
            return self.runs.log(trial, lines).splitlines()
        except NotFoundError:
            return None
