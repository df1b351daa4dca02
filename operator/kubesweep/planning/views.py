"""Plain values the planner reads: what the operator observed about children.

The operator builds these from its child index (Trials, Jobs, Pods) so the
planner never sees a raw API object it would have to second-guess, and tests
build them by hand in one line each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from kubesweep.api import CurvePoint, MetricSummary, ParameterValue, TrialPhase, TrialStatus


@dataclass(frozen=True, slots=True)
class TrialView:
    """One Trial of an experiment as last observed, with whether its Job exists."""

    name: str
    index: int
    parameters: Mapping[str, ParameterValue] = field(default_factory=dict)
    fidelity: float | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    status: TrialStatus = field(default_factory=TrialStatus)
    has_job: bool = False

    @property
    def phase(self) -> TrialPhase:
        """The trial's phase from its status."""
        return self.status.phase

    @property
    def finished(self) -> bool:
        """Whether the trial will not run again."""
        return self.status.phase.is_finished


class StoredTrial(Protocol):
    """A trial as its runner keeps it (the operator's index, the local run's store)."""

    @property
    def name(self) -> str:
        """The trial's name."""
        ...

    @property
    def index(self) -> int:
        """Its position in the experiment."""
        ...

    @property
    def parameters(self) -> Mapping[str, ParameterValue]:
        """Its assignment."""
        ...

    @property
    def fidelity(self) -> float | None:
        """Its budget, for multi-fidelity algorithms."""
        ...

    @property
    def tags(self) -> Mapping[str, str]:
        """The algorithm's tags."""
        ...


def trial_view(trial: StoredTrial, status: TrialStatus, has_job: bool) -> TrialView:
    """The view of a recorded trial with the status observed for it."""
    return TrialView(
        name=trial.name,
        index=trial.index,
        parameters=trial.parameters,
        fidelity=trial.fidelity,
        tags=trial.tags,
        status=status,
        has_job=has_job,
    )


@dataclass(frozen=True)
class TrialMetrics:
    """What is known of a trial's metrics: from intake pushes or the termination message.

    ``complete`` says these are the collector's whole account (its summary was
    taken, or the run was read to its end); pushes alone are not, since some may
    still be on their way or have been lost with an operator that received them.
    """

    objective: float | None = None
    metrics: tuple[MetricSummary, ...] = ()
    curve: tuple[CurvePoint, ...] = ()
    complete: bool = True


@dataclass(frozen=True)
class PodView:
    """The few facts of a trial pod: waiting-for-admission or running, and the GPUs it holds."""

    name: str
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    start_time: datetime | None = None
    unschedulable_message: str | None = None  # PodScheduled=False reason=Unschedulable
    waiting_reason: str | None = None  # e.g. ImagePullBackOff of the primary container
    #: GPUs the pod holds (``None``: not known to whoever observed it).
    gpus: float | None = None
    #: When its last container ended, for a pod that has ended.
    finish_time: datetime | None = None


@dataclass(frozen=True)
class SuggestionHealth:
    """How the last calls to the suggestion service went, as the executor remembers it."""

    error: str | None = None
    failing_since: datetime | None = None
    exhausted: bool = False
