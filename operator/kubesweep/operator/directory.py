"""What the intake must know about trials, kept current by Trial events.

The intake answers pods and keeps its own small in-memory directory, filled
from every Trial change the child streams see: each
trial's UID (to check its token), experiment, and the metrics already in its
status (to continue from after an operator restart), plus each experiment's
objective (to compute a trial's objective value).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubesweep.api import CurvePoint, MetricSummary, Objective
from kubesweep.operator.compact import IndexedTrial


@dataclass(frozen=True, slots=True)
class TrialEntry:
    """One trial as the intake needs it.

    A finished trial's entry keeps no metrics: the intake refuses its batches and
    never starts an accumulator from it, and there is one entry per trial.
    """

    uid: str
    experiment: str
    finished: bool = False
    metrics: tuple[MetricSummary, ...] = ()
    curve: tuple[CurvePoint, ...] = ()


def trial_entry(trial: IndexedTrial, uid: str) -> TrialEntry:
    """What the intake keeps of an indexed Trial."""
    status = trial.status
    if status is not None and status.phase.is_finished:
        return TrialEntry(uid=uid, experiment=trial.experiment, finished=True)
    return TrialEntry(
        uid=uid,
        experiment=trial.experiment,
        metrics=tuple(status.metrics) if status else (),
        curve=tuple(status.curve) if status else (),
    )


@dataclass
class Directory:
    """Trials by ``(namespace, name)`` and objectives by ``(namespace, experiment)``."""

    trials: dict[tuple[str, str], TrialEntry] = field(default_factory=dict)
    objectives: dict[tuple[str, str], Objective] = field(default_factory=dict)

    def trial(self, namespace: str, name: str) -> TrialEntry | None:
        """The entry of a trial, if known."""
        return self.trials.get((namespace, name))

    def objective(self, namespace: str, experiment: str) -> Objective | None:
        """The objective of an experiment, if known."""
        return self.objectives.get((namespace, experiment))
