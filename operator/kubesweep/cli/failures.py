"""Why trials failed, in the words a user acts on, each cause shown once.

A failed trial's status message starts with one line that names the cause
(a local process: its exit code and the last line it printed) and may go on
with the output that led there. One-line views show that first line; views
with room show the rest once per cause, not once per trial, because a sweep
whose every trial fails usually fails for one reason.

A trial that ended without its objective gets a hint from its output: the
stdout source reads ``name=value`` pairs, and a trainer that prints
``loss: 0.1`` is told so, with the line it printed and the form that is read.

Pure: records and text in, text out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kubesweep.api import ExperimentSpec, MetricsSource, TrialPhase
from kubesweep.cli.ranking import TrialRecord

#: Phases of a trial that ended without a result.
FAILED_PHASES = (TrialPhase.FAILED, TrialPhase.METRICS_UNAVAILABLE)
#: The reason of a trial whose workload completed without reporting the objective.
NOT_REPORTED = "ObjectiveNotReported"
#: Lines of output a hint looks through (the end of it: where the last metrics are).
HINT_LINES = 200
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"


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


def _other_form(metric: str) -> re.Pattern[str]:
    """The metric's name then a number, joined by anything but ``=`` (``loss: 0.1``)."""
    name = re.escape(metric)
    return re.compile(
        rf"(?<![\w.\-/|]){name}[\"']?(?:\s*[:\s]|\s*->|\s*=>)\s*(?P<value>{_NUMBER})(?!\w)",
        re.IGNORECASE,
    )


def metric_hint(spec: ExperimentSpec, output: Sequence[str]) -> str | None:
    """What the trainer should print so that the objective is read, from what it printed.

    ``None`` when the output holds the objective in the form the source reads
    (then the cause is elsewhere) or when the source does not read the output.
    """
    metric = spec.objective.metric
    metrics = spec.trial_template.metrics
    if metrics.source is MetricsSource.PUSH:
        return f"call kubesweep.report({metric}=...) in the trainer"
    if metrics.source is not MetricsSource.STDOUT or metrics.filters:
        return None
    for line in reversed(output):
        if re.search(rf"(?<![\w.\-/|]){re.escape(metric)}\s*=\s*{_NUMBER}", line):
            return None
        found = _other_form(metric).search(line)
        if found:
            return (
                f"it printed `{line.strip()[:120]}`, and the stdout source reads name=value "
                f"pairs: print `{metric}={found.group('value')}`"
            )
    if not any(metric.lower() in line.lower() for line in output):
        return (
            f"its output never mentions {metric}; the stdout source reads name=value pairs, "
            f"such as `{metric}=0.25` on a line of their own or among others"
        )
    return f"the stdout source reads name=value pairs, such as `{metric}=0.25`"


def explain(
    reason: str | None,
    message: str | None,
    spec: ExperimentSpec,
    output: Sequence[str] | None,
    *,
    local: bool = False,
) -> str:
    """A trial's status message, in a local run's words, with a hint for a missing objective."""
    if reason != NOT_REPORTED:
        return message or ""
    metric = spec.objective.metric
    what = "the trial process exited 0" if local else "the Job completed"
    text = f"{what} but never reported {metric}"
    hint = metric_hint(spec, output or [])
    return f"{text}; {hint}" if hint else text
