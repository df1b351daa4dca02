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

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from kubesweep.api import Condition, TrialPhase, TrialStatus
from kubesweep.planning.views import PodView, TrialMetrics

#: Resource names counted as GPUs for ``gpuSeconds``.
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
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


def gpus_per_pod(job: Mapping[str, Any] | None) -> float:
    """GPUs one pod of the Job asks for (limits, else requests), over all containers."""
    if not job:
        return 0.0
    pod = job.get("spec", {}).get("template", {}).get("spec", {})
    total = 0.0
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        resources = container.get("resources", {})
        for kind in ("limits", "requests"):
            values = resources.get(kind) or {}
            found = [float(values[name]) for name in GPU_RESOURCES if name in values]
            if found:
                total += sum(found)
                break
    return total


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


def _gpu_seconds(job: Mapping[str, Any] | None, start: datetime | None, end: datetime) -> float:
    if start is None:
        return 0.0
    return round(gpus_per_pod(job) * max(0.0, (end - start).total_seconds()), 3)


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
    """The Trial's status now. ``previous`` keeps start time and final phases."""
    previous = previous or TrialStatus()
    if previous.phase.is_finished:
        return _with(previous, metrics, generation)
    objective = metrics.objective if metrics and metrics.objective is not None else None
    if objective is None:
        objective = previous.objective

    if job is None:
        return _with(
            previous,
            metrics,
            generation,
            phase=TrialPhase.PENDING,
            reason="JobNotCreated",
            message="waiting for the trial's Job",
        )

    running_pods = [p for p in pods if p.phase == "Running"]
    pod_start = min((p.start_time for p in running_pods if p.start_time), default=None)
    job_start = parse_time(job.get("status", {}).get("startTime"))
    start = previous.start_time or pod_start or (job_start if running_pods else None)

    complete = _condition(job, "Complete")
    failed = _condition(job, "Failed")
    if complete is not None or failed is not None:
        done = complete or failed
        assert done is not None
        end = (
            parse_time(job.get("status", {}).get("completionTime"))
            or parse_time(done.get("lastTransitionTime"))
            or now
        )
        start = start or job_start or end
        gpu = _gpu_seconds(job, start, end)
        if failed is not None:
            reason = str(failed.get("reason") or "JobFailed")
            message = str(failed.get("message") or "the trial's Job failed")
            return _with(
                previous,
                metrics,
                generation,
                phase=TrialPhase.FAILED,
                reason=reason,
                message=message,
                start_time=start,
                completion_time=end,
                gpu_seconds=gpu,
            )
        whole_account = metrics is not None and metrics.complete
        if not whole_account and now - end < metrics_grace:
            return _with(
                previous,
                metrics,
                generation,
                phase=TrialPhase.RUNNING,
                reason="CollectingMetrics",
                message="the Job completed; waiting for its last metrics",
                start_time=start,
                gpu_seconds=gpu,
            )
        account = metrics_account(whole_account, now)
        if objective is not None:
            return _with(
                previous,
                metrics,
                generation,
                phase=TrialPhase.SUCCEEDED,
                reason="Completed",
                message="",
                start_time=start,
                completion_time=end,
                gpu_seconds=gpu,
                conditions=[account],
            )
        return _with(
            previous,
            metrics,
            generation,
            phase=TrialPhase.METRICS_UNAVAILABLE,
            reason="ObjectiveNotReported",
            message=f"the Job completed but never reported {objective_metric}",
            start_time=start,
            completion_time=end,
            gpu_seconds=gpu,
            conditions=[account],
        )

    if job.get("spec", {}).get("suspend"):
        return _with(
            previous,
            metrics,
            generation,
            phase=TrialPhase.PENDING,
            reason="Suspended",
            message="the Job is suspended, waiting for admission (e.g. by Kueue)",
        )
    if running_pods or (not pods and job.get("status", {}).get("ready")):
        start = start or job_start or now
        return _with(
            previous,
            metrics,
            generation,
            phase=TrialPhase.RUNNING,
            reason="Running",
            message="",
            start_time=start,
            gpu_seconds=_gpu_seconds(job, start, now),
        )
    unschedulable = next((p.unschedulable_message for p in pods if p.unschedulable_message), None)
    if unschedulable is not None:
        return _with(
            previous,
            metrics,
            generation,
            phase=TrialPhase.PENDING,
            reason="Unschedulable",
            message=unschedulable,
        )
    waiting = next((p.waiting_reason for p in pods if p.waiting_reason), None)
    if waiting is not None:
        return _with(
            previous,
            metrics,
            generation,
            phase=TrialPhase.PENDING,
            reason=waiting,
            message=f"the trial's container is waiting: {waiting}",
        )
    return _with(
        previous,
        metrics,
        generation,
        phase=TrialPhase.PENDING,
        reason="Starting",
        message="the trial's pod is starting",
    )


def stopped_status(
    previous: TrialStatus | None,
    reason: str,
    message: str,
    now: datetime,
    job: Mapping[str, Any] | None = None,
) -> TrialStatus:
    """The status of a trial the operator stops (early stopping, or its experiment ended)."""
    previous = previous or TrialStatus()
    start = previous.start_time
    return previous.model_copy(
        update={
            "phase": TrialPhase.EARLY_STOPPED,
            "reason": reason,
            "message": message,
            "completion_time": now,
            "gpu_seconds": _gpu_seconds(job, start, now) if job else previous.gpu_seconds,
        }
    )
