"""``derive_trial_status``: a Trial's status from its workload, its pods and its metrics.

The workload (a Job, a JobSet, a custom resource; :mod:`kubesweep.planning.workload`
reads each into one state) is the truth for how a trial ran: it fails only when
its own failure policy gives up, so a failed rank that the workload retries is no
failed trial. Pods only tell *waiting* from *running* (a suspended workload waits
for Kueue, a Pending pod waits for a node or GPUs), which the workload alone
cannot, and hold the GPUs that are counted. Metrics come from the intake (or the
collector's termination message): a workload that completed with the objective
succeeded, one that completed without it produced no result. Either is decided
on the collector's complete account (its summary, which counts every
observation it made), not on the pushes that happened to arrive; only when no
summary comes within a grace period does the trial end with what was pushed,
and its ``MetricsComplete`` condition says so.

Finished phases are final: a trial is never re-run once it ended, whatever
happens to its workload later (deleted by us when stopped, or by a TTL).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubesweep.api import QUEUED_REASON, Condition, TrialPhase, TrialStatus
from kubesweep.planning.gpu import pods_gpu_seconds
from kubesweep.planning.views import PodView, TrialMetrics
from kubesweep.planning.workload import WorkloadState, job_state

#: How long a completed Job may wait for the collector's summary before its trial ends
#: with what was pushed (MetricsComplete=False), or MetricsUnavailable without the objective.
DEFAULT_METRICS_GRACE = timedelta(seconds=15)
#: The condition type that says whether a finished trial's metrics are complete.
METRICS_COMPLETE = "MetricsComplete"


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


Workload = Mapping[str, Any] | WorkloadState


def as_workload(workload: Workload | None) -> WorkloadState | None:
    """A workload's state; a mapping is read as a ``batch/v1`` Job (what a runner observed)."""
    if workload is None or isinstance(workload, WorkloadState):
        return workload
    return job_state(workload)


def gpu_seconds(
    workload: Workload | None,
    pods: Sequence[PodView],
    start: datetime | None,
    end: datetime,
    *,
    previous: float = 0.0,
) -> float:
    """A trial's GPU-seconds until ``end``: every pod's, else the workload's template's.

    Never less than ``previous``: a pod deleted since (a Job's TTL, a stopped
    trial) takes its seconds out of sight, not out of the account.
    """
    counted = pods_gpu_seconds(pods, end)
    if counted is None:
        state = as_workload(workload)
        elapsed = 0.0 if start is None else max(0.0, (end - start).total_seconds())
        counted = (0.0 if state is None else state.template_gpus) * elapsed
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

    workload: WorkloadState
    metrics: TrialMetrics | None
    now: datetime
    pods: Sequence[PodView]
    objective: float | None
    objective_metric: str
    metrics_grace: timedelta
    #: Start as known before the workload ended: recorded, else first running pod, else
    #: the workload's.
    start: datetime | None
    running_pods: bool
    previous_gpu_seconds: float = 0.0

    @property
    def ended(self) -> bool:
        return self.workload.ended

    @property
    def end(self) -> datetime:
        """When the workload ended: its completion time, else its condition's, else now."""
        done = self.workload.succeeded or self.workload.failed
        return self.workload.completion_time or (done.at if done else None) or self.now

    @property
    def whole_account(self) -> bool:
        return self.metrics is not None and self.metrics.complete


def _facts(
    *,
    workload: WorkloadState,
    metrics: TrialMetrics | None,
    now: datetime,
    previous: TrialStatus,
    pods: Sequence[PodView],
    objective_metric: str,
    metrics_grace: timedelta,
) -> _Facts:
    running = [p for p in pods if p.phase == "Running"]
    pod_start = min((p.start_time for p in running if p.start_time), default=None)
    objective = metrics.objective if metrics and metrics.objective is not None else None
    return _Facts(
        workload=workload,
        metrics=metrics,
        now=now,
        pods=pods,
        objective=previous.objective if objective is None else objective,
        objective_metric=objective_metric,
        metrics_grace=metrics_grace,
        start=previous.start_time or pod_start or (workload.start_time if running else None),
        running_pods=bool(running),
        previous_gpu_seconds=previous.gpu_seconds,
    )


def _ended(facts: _Facts, **changes: Any) -> dict[str, Any]:
    """A final phase: start, end and GPU-seconds of the finished Job."""
    end = facts.end
    start = facts.start or facts.workload.start_time or end
    return {
        **changes,
        "start_time": start,
        "completion_time": end,
        "gpu_seconds": _facts_gpu_seconds(facts, start, end),
    }


def _facts_gpu_seconds(facts: _Facts, start: datetime, end: datetime) -> float:
    return gpu_seconds(facts.workload, facts.pods, start, end, previous=facts.previous_gpu_seconds)


def _failed(facts: _Facts) -> dict[str, Any]:
    failed = facts.workload.failed
    kind = facts.workload.kind
    return _ended(
        facts,
        phase=TrialPhase.FAILED,
        reason=(failed.reason if failed else "") or f"{kind}Failed",
        message=(failed.message if failed else "") or f"the trial's {kind} failed",
    )


def _collecting(facts: _Facts) -> dict[str, Any]:
    changes = _ended(
        facts,
        phase=TrialPhase.RUNNING,
        reason="CollectingMetrics",
        message=f"{facts.workload.said_completed}; waiting for its last metrics",
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
        message=f"{facts.workload.said_completed} but never reported {facts.objective_metric}",
        conditions=[metrics_account(facts.whole_account, facts.now)],
    )


def _running(facts: _Facts) -> dict[str, Any]:
    start = facts.start or facts.workload.start_time or facts.now
    return {
        "phase": TrialPhase.RUNNING,
        "reason": "Running",
        "message": "",
        "start_time": start,
        "gpu_seconds": _facts_gpu_seconds(facts, start, facts.now),
    }


def _pending(reason: str, message: str) -> dict[str, Any]:
    return {"phase": TrialPhase.PENDING, "reason": reason, "message": message}


def _suspended(facts: _Facts) -> dict[str, Any]:
    return _pending(
        QUEUED_REASON,
        f"the {facts.workload.kind} is suspended, queued for admission (e.g. by Kueue)",
    )


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
    ready = not facts.pods and facts.workload.ready
    return facts.running_pods or ready


Rule = tuple[Callable[[_Facts], bool], Callable[[_Facts], dict[str, Any]]]

#: What a trial with a Job is, first match wins. The Job is the truth for how it ran
#: (a failure outranks a completion); a completed Job waits for the collector's whole
#: account within the grace period; pods only tell waiting from running.
RULES: tuple[Rule, ...] = (
    (lambda f: f.workload.failed is not None, _failed),
    (_in_grace, _collecting),
    (lambda f: f.ended and f.objective is not None, _succeeded),
    (lambda f: f.ended, _unreported),
    (lambda f: f.workload.suspended, _suspended),
    (_is_running, _running),
    (lambda f: _unschedulable(f) is not None, _not_scheduled),
    (lambda f: _waiting(f) is not None, _container_waiting),
    (lambda _: True, _starting),
)


def derive_trial_status(
    job: Workload | None,
    metrics: TrialMetrics | None,
    now: datetime,
    *,
    previous: TrialStatus | None = None,
    pods: Sequence[PodView] = (),
    generation: int | None = None,
    objective_metric: str = "objective",
    metrics_grace: timedelta = DEFAULT_METRICS_GRACE,
) -> TrialStatus:
    """The Trial's status now: the first of :data:`RULES` that holds for its workload and pods.

    ``job`` is the trial's workload: its :class:`WorkloadState`, or a ``batch/v1``
    Job as a mapping. ``previous`` keeps start time and final phases; metrics are
    merged in whatever the phase.
    """
    previous = previous or TrialStatus()
    if previous.phase.is_finished:
        return _with(previous, metrics, generation)
    workload = as_workload(job)
    if workload is None:
        changes = _pending("JobNotCreated", "waiting for the trial's Job")
        return _with(previous, metrics, generation, **changes)
    facts = _facts(
        workload=workload,
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
    job: Workload | None = None,
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
