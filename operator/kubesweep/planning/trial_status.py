"""``derive_trial_status``: a Trial's status from its Job, its pods and its metrics.

The Job is the truth for how a trial ran; pods only tell *waiting* from
*running* (a suspended Job waits for Kueue, a Pending pod waits for a node or
GPUs), which the Job alone cannot. Metrics come from the intake (or the
collector's termination message): a Job that completed with the objective
succeeded, one that completed without it produced no result. Either is decided
on the collector's complete account (its summary, which counts every
observation it made), not on the pushes that happened to arrive; only when no
summary comes within a grace period does the trial end with what was pushed,
and its ``MetricsComplete`` condition says so.

Finished phases are final: a trial is never re-run once it ended, whatever
happens to its Job later (deleted by us when stopped, or by a TTL).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubesweep.api import Condition, TrialPhase, TrialStatus
from kubesweep.planning.gpu import job_gpus, pods_gpu_seconds
from kubesweep.planning.views import PodView, TrialMetrics

#: How long a completed Job may wait for the collector's summary before its trial ends
#: with what was pushed (MetricsComplete=False), or MetricsUnavailable without the objective.
DEFAULT_METRICS_GRACE = timedelta(seconds=15)
#: The condition type that says whether a finished trial's metrics are complete.
METRICS_COMPLETE = "MetricsComplete"


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp of the API (``2026-11-22T10:00:00Z``) as an aware datetime."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return condition  # type: ignore[no-any-return]
    return None


def _with(
    status: TrialStatus, metrics: TrialMetrics | None, generation: int | None, **changes: Any
) -> TrialStatus:
    if metrics is not None:
        if metrics.objective is not None:
            changes["objective"] = metrics.objective
        if metrics.metrics:
            changes["metrics"] = list(metrics.metrics)
        if metrics.curve:
            changes["curve"] = list(metrics.curve)
    if generation is not None:
        changes["observed_generation"] = generation
    return status.model_copy(update=changes)


def gpu_seconds(
    job: Mapping[str, Any] | None,
    pods: Sequence[PodView],
    start: datetime | None,
    end: datetime,
    *,
    previous: float = 0.0,
) -> float:
    """A trial's GPU-seconds until ``end``: every pod's, else the Job's template's.

    Never less than ``previous``: a pod deleted since (a Job's TTL, a stopped
    trial) takes its seconds out of sight, not out of the account.
    """
    counted = pods_gpu_seconds(pods, end)
    if counted is None:
        elapsed = 0.0 if start is None else max(0.0, (end - start).total_seconds())
        counted = job_gpus(job) * elapsed
    return round(max(previous, counted), 3)


def metrics_account(complete: bool, now: datetime) -> Condition:
    """The ``MetricsComplete`` condition of a finished trial: whose account its metrics are.

    True: the collector's summary (every observation it made) was taken. False: the
    collector ended without a summary reaching the operator, so the metrics are
    what was pushed before, and may miss the last observations.
    """
    if complete:
        return Condition(
            type=METRICS_COMPLETE,
            status="True",
            reason="CollectorSummary",
            message="the metrics are the collector's complete account",
            last_transition_time=now,
        )
    return Condition(
        type=METRICS_COMPLETE,
        status="False",
        reason="CollectorSummaryMissing",
        message=(
            "the collector left no summary (no final batch, no termination message); "
            "the metrics are those pushed before it ended and may miss the last ones"
        ),
        last_transition_time=now,
    )


@dataclass(frozen=True)
class _Facts:
    """What the rules of :func:`derive_trial_status` read, computed once."""

    job: Mapping[str, Any]
    metrics: TrialMetrics | None
    now: datetime
    pods: Sequence[PodView]
    objective: float | None
    objective_metric: str
    metrics_grace: timedelta
    #: Start as known before the Job ended: recorded, else first running pod, else the Job's.
    start: datetime | None
    job_start: datetime | None
    running_pods: bool
    complete: Mapping[str, Any] | None
    failed: Mapping[str, Any] | None
    previous_gpu_seconds: float = 0.0

    @property
    def ended(self) -> bool:
        return self.complete is not None or self.failed is not None

    @property
    def end(self) -> datetime:
        """When the Job ended: its completion time, else its condition's, else now."""
        done = self.complete or self.failed or {}
        return (
            parse_time(self.job.get("status", {}).get("completionTime"))
            or parse_time(done.get("lastTransitionTime"))
            or self.now
        )

    @property
    def whole_account(self) -> bool:
        return self.metrics is not None and self.metrics.complete


def _facts(
    *,
    job: Mapping[str, Any],
    metrics: TrialMetrics | None,
    now: datetime,
    previous: TrialStatus,
    pods: Sequence[PodView],
    objective_metric: str,
    metrics_grace: timedelta,
) -> _Facts:
    running = [p for p in pods if p.phase == "Running"]
    pod_start = min((p.start_time for p in running if p.start_time), default=None)
    job_start = parse_time(job.get("status", {}).get("startTime"))
    objective = metrics.objective if metrics and metrics.objective is not None else None
    return _Facts(
        job=job,
        metrics=metrics,
        now=now,
        pods=pods,
        objective=previous.objective if objective is None else objective,
        objective_metric=objective_metric,
        metrics_grace=metrics_grace,
        start=previous.start_time or pod_start or (job_start if running else None),
        job_start=job_start,
        running_pods=bool(running),
        complete=_condition(job, "Complete"),
        failed=_condition(job, "Failed"),
        previous_gpu_seconds=previous.gpu_seconds,
    )


def _ended(facts: _Facts, **changes: Any) -> dict[str, Any]:
    """A final phase: start, end and GPU-seconds of the finished Job."""
    end = facts.end
    start = facts.start or facts.job_start or end
    return {
        **changes,
        "start_time": start,
        "completion_time": end,
        "gpu_seconds": _facts_gpu_seconds(facts, start, end),
    }


def _facts_gpu_seconds(facts: _Facts, start: datetime, end: datetime) -> float:
    return gpu_seconds(facts.job, facts.pods, start, end, previous=facts.previous_gpu_seconds)


def _failed(facts: _Facts) -> dict[str, Any]:
    failed = facts.failed or {}
    return _ended(
        facts,
        phase=TrialPhase.FAILED,
        reason=str(failed.get("reason") or "JobFailed"),
        message=str(failed.get("message") or "the trial's Job failed"),
    )


def _collecting(facts: _Facts) -> dict[str, Any]:
    changes = _ended(
        facts,
        phase=TrialPhase.RUNNING,
        reason="CollectingMetrics",
        message="the Job completed; waiting for its last metrics",
    )
    del changes["completion_time"]
    return changes


def _succeeded(facts: _Facts) -> dict[str, Any]:
    return _ended(
        facts,
        phase=TrialPhase.SUCCEEDED,
        reason="Completed",
        message="",
        conditions=[metrics_account(facts.whole_account, facts.now)],
    )


def _unreported(facts: _Facts) -> dict[str, Any]:
    return _ended(
        facts,
        phase=TrialPhase.METRICS_UNAVAILABLE,
        reason="ObjectiveNotReported",
        message=f"the Job completed but never reported {facts.objective_metric}",
        conditions=[metrics_account(facts.whole_account, facts.now)],
    )


def _running(facts: _Facts) -> dict[str, Any]:
    start = facts.start or facts.job_start or facts.now
    return {
        "phase": TrialPhase.RUNNING,
        "reason": "Running",
        "message": "",
        "start_time": start,
        "gpu_seconds": _facts_gpu_seconds(facts, start, facts.now),
    }


def _pending(reason: str, message: str) -> dict[str, Any]:
    return {"phase": TrialPhase.PENDING, "reason": reason, "message": message}


def _suspended(_: _Facts) -> dict[str, Any]:
    return _pending("Suspended", "the Job is suspended, waiting for admission (e.g. by Kueue)")


def _unschedulable(facts: _Facts) -> str | None:
    return next((p.unschedulable_message for p in facts.pods if p.unschedulable_message), None)


def _waiting(facts: _Facts) -> str | None:
    return next((p.waiting_reason for p in facts.pods if p.waiting_reason), None)


def _not_scheduled(facts: _Facts) -> dict[str, Any]:
    return _pending("Unschedulable", str(_unschedulable(facts)))


def _container_waiting(facts: _Facts) -> dict[str, Any]:
    reason = str(_waiting(facts))
    return _pending(reason, f"the trial's container is waiting: {reason}")


def _starting(_: _Facts) -> dict[str, Any]:
    return _pending("Starting", "the trial's pod is starting")


def _in_grace(facts: _Facts) -> bool:
    return facts.ended and not facts.whole_account and facts.now - facts.end < facts.metrics_grace


def _is_running(facts: _Facts) -> bool:
    ready = not facts.pods and bool(facts.job.get("status", {}).get("ready"))
    return facts.running_pods or ready


Rule = tuple[Callable[[_Facts], bool], Callable[[_Facts], dict[str, Any]]]

#: What a trial with a Job is, first match wins. The Job is the truth for how it ran
#: (a failure outranks a completion); a completed Job waits for the collector's whole
#: account within the grace period; pods only tell waiting from running.
RULES: tuple[Rule, ...] = (
    (lambda f: f.failed is not None, _failed),
    (_in_grace, _collecting),
    (lambda f: f.ended and f.objective is not None, _succeeded),
    (lambda f: f.ended, _unreported),
    (lambda f: bool(f.job.get("spec", {}).get("suspend")), _suspended),
    (_is_running, _running),
    (lambda f: _unschedulable(f) is not None, _not_scheduled),
    (lambda f: _waiting(f) is not None, _container_waiting),
    (lambda _: True, _starting),
)


def derive_trial_status(
    job: Mapping[str, Any] | None,
    metrics: TrialMetrics | None,
    now: datetime,
    *,
    previous: TrialStatus | None = None,
    pods: Sequence[PodView] = (),
    generation: int | None = None,
    objective_metric: str = "objective",
    metrics_grace: timedelta = DEFAULT_METRICS_GRACE,
) -> TrialStatus:
    """The Trial's status now: the first of :data:`RULES` that holds for its Job and pods.

    ``previous`` keeps start time and final phases; metrics are merged in whatever
    the phase.
    """
    previous = previous or TrialStatus()
    if previous.phase.is_finished:
        return _with(previous, metrics, generation)
    if job is None:
        changes = _pending("JobNotCreated", "waiting for the trial's Job")
        return _with(previous, metrics, generation, **changes)
    facts = _facts(
        job=job,
        metrics=metrics,
        now=now,
        previous=previous,
        pods=pods,
        objective_metric=objective_metric,
        metrics_grace=metrics_grace,
    )
    outcome = next(outcome for applies, outcome in RULES if applies(facts))
    return _with(previous, metrics, generation, **outcome(facts))


def stopped_status(
    previous: TrialStatus | None,
    reason: str,
    message: str,
    now: datetime,
    *,
    job: Mapping[str, Any] | None = None,
    pods: Sequence[PodView] = (),
) -> TrialStatus:
    """The status of a trial the operator stops (early stopping, or its experiment ended).

    Its GPU-seconds are counted up to now over every pod it has (else its Job's
    template); with neither known, what was recorded stands.
    """
    previous = previous or TrialStatus()
    seconds = previous.gpu_seconds
    if job or pods:
        seconds = gpu_seconds(job, pods, previous.start_time, now, previous=seconds)
    return previous.model_copy(
        update={
            "phase": TrialPhase.EARLY_STOPPED,
            "reason": reason,
            "message": message,
            "completion_time": now,
            "gpu_seconds": seconds,
        }
    )
