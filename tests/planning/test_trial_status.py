"""``derive_trial_status``: Job + pods + metrics to a trial phase, table-driven."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kubesweep.api import CurvePoint, MetricSummary, TrialPhase, TrialStatus
from kubesweep.planning import PodView, TrialMetrics, derive_trial_status, gpus_per_pod
from kubesweep.planning.trial_status import stopped_status
from kubesweep.planning.workload import Ending, WorkloadState
from tests.planning.builders import NOW

T0 = "2026-11-22T11:00:00Z"
T1 = "2026-11-22T11:30:00Z"
METRICS = TrialMetrics(
    objective=0.25,
    metrics=(MetricSummary(name="loss", latest=0.3, min=0.25, max=0.9, step=3, count=4),),
    curve=(CurvePoint(step=1, value=0.9), CurvePoint(step=3, value=0.3)),
)


def job(*, gpus: int = 0, suspend: bool = False, **status: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return {
        "spec": {"suspend": suspend, "template": {"spec": {"containers": [container]}}},
        "status": status,
    }


def done(type_: str, reason: str = "", when: str = T1) -> dict[str, Any]:
    return {"type": type_, "status": "True", "reason": reason, "lastTransitionTime": when}


RUNNING_POD = PodView("p", "Running", start_time=NOW - timedelta(hours=1))


@pytest.mark.parametrize(
    ("the_job", "metrics", "pods", "phase", "reason"),
    [
        (None, None, (), TrialPhase.PENDING, "JobNotCreated"),
        (job(suspend=True), None, (), TrialPhase.PENDING, "Queued"),
        (
            job(active=1),
            None,
            (PodView("p", "Pending", unschedulable_message="0/1 nodes: gpu"),),
            TrialPhase.PENDING,
            "Unschedulable",
        ),
        (
            job(active=1),
            None,
            (PodView("p", "Pending", waiting_reason="ImagePullBackOff"),),
            TrialPhase.PENDING,
            "ImagePullBackOff",
        ),
        (job(active=1), None, (PodView("p", "Pending"),), TrialPhase.PENDING, "Starting"),
        (job(active=1), None, (RUNNING_POD,), TrialPhase.RUNNING, "Running"),
        (job(active=1, ready=1), None, (), TrialPhase.RUNNING, "Running"),
        (
            job(startTime=T0, completionTime=T1, conditions=[done("Complete")]),
            METRICS,
            (),
            TrialPhase.SUCCEEDED,
            "Completed",
        ),
        (
            job(startTime=T0, completionTime=T1, conditions=[done("Complete")]),
            None,
            (),
            TrialPhase.METRICS_UNAVAILABLE,
            "ObjectiveNotReported",
        ),
        (
            job(startTime=T0, conditions=[done("Failed", "BackoffLimitExceeded")]),
            None,
            (),
            TrialPhase.FAILED,
            "BackoffLimitExceeded",
        ),
    ],
)
def test_phase_table(
    the_job: dict[str, Any] | None,
    metrics: TrialMetrics | None,
    pods: list[PodView],
    phase: TrialPhase,
    reason: str | None,
) -> None:
    status = derive_trial_status(the_job, metrics, NOW, pods=pods, objective_metric="loss")
    assert (status.phase, status.reason) == (phase, reason)


def test_success_carries_metrics_times_and_gpu_seconds() -> None:
    the_job = job(gpus=2, startTime=T0, completionTime=T1, conditions=[done("Complete")])
    status = derive_trial_status(the_job, METRICS, NOW)
    assert status.phase is TrialPhase.SUCCEEDED
    assert status.objective == 0.25
    assert status.curve == list(METRICS.curve)
    assert status.metrics == list(METRICS.metrics)
    assert status.start_time is not None
    assert status.completion_time is not None
    assert status.gpu_seconds == 2 * 1800


def test_completed_job_waits_briefly_for_late_metrics() -> None:
    just_now = (NOW - timedelta(seconds=2)).isoformat()
    the_job = job(completionTime=just_now, conditions=[done("Complete", when=just_now)])
    status = derive_trial_status(the_job, None, NOW)
    assert (status.phase, status.reason) == (TrialPhase.RUNNING, "CollectingMetrics")
    assert derive_trial_status(the_job, METRICS, NOW).phase is TrialPhase.SUCCEEDED


def test_objective_already_in_status_counts() -> None:
    the_job = job(completionTime=T1, conditions=[done("Complete")])
    previous = TrialStatus(phase=TrialPhase.RUNNING, objective=0.5)
    assert derive_trial_status(the_job, None, NOW, previous=previous).phase is TrialPhase.SUCCEEDED


@pytest.mark.parametrize(
    "final", [TrialPhase.SUCCEEDED, TrialPhase.FAILED, TrialPhase.EARLY_STOPPED]
)
def test_finished_phases_are_final(final: TrialPhase) -> None:
    previous = TrialStatus(phase=final, reason="X")
    for the_job in (None, job(active=1, ready=1)):
        status = derive_trial_status(the_job, None, NOW, previous=previous)
        assert status.phase is final


def test_running_start_time_is_kept() -> None:
    first = derive_trial_status(job(active=1), None, NOW, pods=(RUNNING_POD,))
    assert first.start_time == RUNNING_POD.start_time
    later = derive_trial_status(
        job(active=1),
        None,
        NOW + timedelta(minutes=1),
        previous=first,
        pods=(PodView("p2", "Running", start_time=NOW),),
    )
    assert later.start_time == first.start_time


def test_stopped_status() -> None:
    previous = TrialStatus(phase=TrialPhase.RUNNING, start_time=NOW - timedelta(seconds=100))
    status = stopped_status(previous, "EarlyStopped", "below median", NOW, job=job(gpus=1))
    assert status.phase is TrialPhase.EARLY_STOPPED
    assert status.message == "below median"
    assert status.gpu_seconds == 100


def test_gpus_per_pod() -> None:
    assert gpus_per_pod(None) == 0
    assert gpus_per_pod(job(gpus=4)) == 4
    assert gpus_per_pod(job()) == 0


def test_pushed_metrics_wait_for_the_collectors_account_until_the_grace_ends() -> None:
    """The objective among the pushes is not enough: more may have been observed."""
    partial = TrialMetrics(objective=0.7, metrics=METRICS.metrics, complete=False)
    just_now = (NOW - timedelta(seconds=2)).isoformat()
    fresh_job = job(completionTime=just_now, conditions=[done("Complete", when=just_now)])
    status = derive_trial_status(fresh_job, partial, NOW)
    assert (status.phase, status.reason) == (TrialPhase.RUNNING, "CollectingMetrics")

    whole = derive_trial_status(fresh_job, METRICS, NOW)
    assert whole.phase is TrialPhase.SUCCEEDED
    assert [(c.type, c.status) for c in whole.conditions] == [("MetricsComplete", "True")]

    old_job = job(completionTime=T1, conditions=[done("Complete")])
    late = derive_trial_status(old_job, partial, NOW)
    assert (late.phase, late.objective) == (TrialPhase.SUCCEEDED, 0.7)
    assert [(c.type, c.status, c.reason) for c in late.conditions] == [
        ("MetricsComplete", "False", "CollectorSummaryMissing")
    ]


def test_a_complete_account_without_the_objective_ends_at_once() -> None:
    empty = TrialMetrics(complete=True)
    just_now = (NOW - timedelta(seconds=2)).isoformat()
    the_job = job(completionTime=just_now, conditions=[done("Complete", when=just_now)])
    status = derive_trial_status(the_job, empty, NOW, objective_metric="loss")
    assert (status.phase, status.reason) == (TrialPhase.METRICS_UNAVAILABLE, "ObjectiveNotReported")
    assert status.message == "the Job completed but never reported loss"


def test_a_workload_that_is_not_a_job_is_not_called_one_when_its_objective_is_missing() -> None:
    ended = NOW - timedelta(seconds=2)
    process = WorkloadState(
        kind="Process",
        succeeded=Ending(at=ended),
        completion_time=ended,
        completion_phrase="the trial process exited 0",
    )
    status = derive_trial_status(process, TrialMetrics(complete=True), NOW, objective_metric="loss")
    assert status.phase is TrialPhase.METRICS_UNAVAILABLE
    assert status.message == "the trial process exited 0 but never reported loss"
    waiting = derive_trial_status(process, TrialMetrics(complete=False), NOW)
    assert waiting.message == "the trial process exited 0; waiting for its last metrics"
