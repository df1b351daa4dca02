"""The suggestion service's request bodies, built from observed trials.

Bodies are plain JSON-ready dicts in the service's wire format (camelCase, no
unset fields) so the operator needs neither the algorithms nor their numeric
dependencies; tests validate them against ``kubesweep.suggestion.contract``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubesweep.api import ExperimentSpec, TrialPhase
from kubesweep.planning.views import TrialView

_STATES = {
    TrialPhase.PENDING: "pending",
    TrialPhase.RUNNING: "pending",
    TrialPhase.SUCCEEDED: "completed",
    TrialPhase.FAILED: "failed",
    TrialPhase.METRICS_UNAVAILABLE: "failed",
    TrialPhase.EARLY_STOPPED: "stopped",
}


def observed_trial(trial: TrialView) -> dict[str, Any]:
    """One trial as the algorithms see it (``ObservedTrial``)."""
    body: dict[str, Any] = {
        "name": trial.name,
        "parameters": dict(trial.parameters),
        "state": _STATES[trial.phase],
    }
    if trial.fidelity is not None:
        body["fidelity"] = trial.fidelity
    if trial.status.objective is not None and trial.phase in (
        TrialPhase.SUCCEEDED,
        TrialPhase.EARLY_STOPPED,
    ):
        body["value"] = trial.status.objective
    if trial.status.curve:
        body["intermediate"] = [p.to_wire() for p in trial.status.curve]
    if trial.tags:
        body["tags"] = dict(trial.tags)
    return body


def _common(spec: ExperimentSpec, uid: str | None, trials: Iterable[TrialView]) -> dict[str, Any]:
    space: dict[str, Any] = {"parameters": [p.to_wire() for p in spec.parameters]}
    if spec.fidelity is not None:
        space["fidelity"] = spec.fidelity.to_wire()
    body: dict[str, Any] = {
        "space": space,
        "direction": spec.objective.direction.value,
        "algorithm": spec.algorithm.to_wire(),
        "trials": [observed_trial(t) for t in sorted(trials, key=lambda t: t.index)],
    }
    if uid is not None:
        body["experimentUid"] = uid
    return body


def suggest_request(
    spec: ExperimentSpec, uid: str | None, trials: Iterable[TrialView], count: int
) -> dict[str, Any]:
    """A ``SuggestRequest`` asking for ``count`` assignments at once."""
    return {**_common(spec, uid, trials), "count": count}


def stop_request(
    spec: ExperimentSpec, uid: str | None, trials: Iterable[TrialView]
) -> dict[str, Any]:
    """A ``StopRequest`` over every trial (finished ones are the reference)."""
    body = _common(spec, uid, trials)
    if spec.early_stopping is not None:
        body["earlyStopping"] = spec.early_stopping.to_wire()
    return body
