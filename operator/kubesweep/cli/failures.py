"""Why trials failed, in the words a user acts on, each cause shown once.

A failed trial's status message starts with one line that names the cause
(a local process: its exit code and the last line it printed) and may go on
with the output that led there. One-line views show that first line; views
with room show the rest once per cause, not once per trial, because a sweep
whose every trial fails usually fails for one reason.

Pure: records and text in, text out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kubesweep.api import TrialPhase
from kubesweep.cli.ranking import TrialRecord

#: Phases of a trial that ended without a result.
FAILED_PHASES = (TrialPhase.FAILED, TrialPhase.METRICS_UNAVAILABLE)


def headline(message: str | None) -> str:
    """The first line of a status message."""
    return (message or "").split("\n", 1)[0].strip()


def details(message: str | None) -> str:
    """What a status message holds after its first line (output, usually)."""
    parts = (message or "").split("\n", 1)
    return parts[1].rstrip() if len(parts) > 1 else ""


@dataclass(frozen=True)
class Cause:
    """Trials that failed the same way, latest first, and the message of the latest."""

    phase: TrialPhase
    reason: str
    message: str
    trials: tuple[TrialRecord, ...]

    @property
    def headline(self) -> str:
        """The first line of the message."""
        return headline(self.message)

    @property
    def names(self) -> list[str]:
        """The trials' names, in the order they were created."""
        return [t.name for t in sorted(self.trials, key=lambda t: t.index)]


def failed_trials(records: Iterable[TrialRecord]) -> list[TrialRecord]:
    """Trials that ended without a result, latest first."""
    return sorted((r for r in records if r.phase in FAILED_PHASES), key=lambda r: -r.index)


def causes(records: Iterable[TrialRecord]) -> list[Cause]:
    """Failed trials grouped by phase, reason and first line; the most frequent cause first."""
    groups: dict[tuple[TrialPhase, str, str], list[TrialRecord]] = {}
    for trial in failed_trials(records):
        key = (trial.phase, trial.reason or "", headline(trial.message))
        groups.setdefault(key, []).append(trial)
    found = [
        Cause(phase, reason, trials[0].message or "", tuple(trials))
        for (phase, reason, _), trials in groups.items()
    ]
    return sorted(found, key=lambda cause: -len(cause.trials))


def name_list(names: Sequence[str], limit: int = 6) -> str:
    """``a, b, c`` with ``and N more`` past ``limit`` names."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"
