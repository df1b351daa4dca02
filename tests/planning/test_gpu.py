"""GPU accounting over every pod of a trial, and the template where no pod is known."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kubesweep.api import TrialPhase, TrialStatus
from kubesweep.planning import PodView, derive_trial_status, gpus_per_pod, pod_spec_gpus
from kubesweep.planning.gpu import job_gpus, job_width, pods_gpu_seconds
from kubesweep.planning.trial_status import gpu_seconds, stopped_status
from tests.planning.builders import NOW

HOUR_AGO = NOW - timedelta(hours=1)


def gpu(count: float, kind: str = "limits") -> dict[str, Any]:
    return {"resources": {kind: {"nvidia.com/gpu": str(count)}}}


def indexed_job(gpus: int, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", **gpu(gpus)}
    return {"spec": {**spec, "template": {"spec": {"containers": [container]}}}, "status": {}}


def test_a_pod_holds_its_containers_and_sidecars_together_and_init_containers_alone() -> None:
    pod = {
        "initContainers": [
            {"name": "fetch", **gpu(4)},  # runs alone, before the rest
            {"name": "sidecar", "restartPolicy": "Always", **gpu(1)},
        ],
        "containers": [{"name": "a", **gpu(2)}, {"name": "b", **gpu(1, "requests")}],
    }
    assert pod_spec_gpus(pod) == 4
    pod["initContainers"][0] = {"name": "fetch", **gpu(3)}
    assert pod_spec_gpus(pod) == 4  # 2 + 1 + the sidecar's 1
    assert pod_spec_gpus({"containers": [{"name": "cpu"}]}) == 0


def test_limits_win_over_requests_and_amd_counts() -> None:
    container = {
        "name": "a",
        "resources": {"limits": {"amd.com/gpu": "2"}, "requests": {"nvidia.com/gpu": "8"}},
    }
    assert pod_spec_gpus({"containers": [container]}) == 2


@pytest.mark.parametrize(
    ("spec", "width"),
    [
        ({}, 1),
        ({"parallelism": 4}, 4),
        ({"parallelism": 4, "completions": 2}, 2),
        ({"completions": 3}, 1),
        ({"parallelism": 0}, 0),
    ],
)
def test_job_width(spec: dict[str, Any], width: int) -> None:
    assert job_width(spec) == width


def test_a_jobs_template_counts_every_pod_that_runs_at_once() -> None:
    job = indexed_job(2, parallelism=4, completions=4, completionMode="Indexed")
    assert gpus_per_pod(job) == 2
    assert job_gpus(job) == 8


def test_every_pod_counts_from_its_start_to_its_end() -> None:
    pods = [
        PodView("rank0", "Running", start_time=HOUR_AGO, gpus=4),
        PodView(
            "rank1",
            "Succeeded",
            start_time=HOUR_AGO,
            gpus=4,
            finish_time=NOW - timedelta(minutes=30),
        ),
        PodView("waiting", "Pending", gpus=4),  # not admitted: holds nothing yet
        PodView("cpu", "Running", start_time=HOUR_AGO, gpus=0),
    ]
    assert pods_gpu_seconds(pods, NOW) == 4 * 3600 + 4 * 1800
    assert pods_gpu_seconds([PodView("local", "Running", start_time=HOUR_AGO)], NOW) is None


def test_the_template_stands_in_when_no_pod_says_what_it_holds() -> None:
    job = indexed_job(1, parallelism=2)
    assert gpu_seconds(job, [], HOUR_AGO, NOW) == 2 * 3600
    assert gpu_seconds(job, [PodView("p", "Running", start_time=HOUR_AGO)], HOUR_AGO, NOW) == 7200
    assert gpu_seconds(job, [], None, NOW) == 0


def test_gpu_seconds_never_shrink_when_pods_disappear() -> None:
    pods = [PodView("p", "Running", start_time=NOW - timedelta(seconds=10), gpus=1)]
    assert gpu_seconds(None, pods, HOUR_AGO, NOW, previous=500) == 500
    assert gpu_seconds(None, pods, HOUR_AGO, NOW, previous=5) == 10


def test_a_running_multi_pod_trial_counts_every_pod() -> None:
    job = indexed_job(2, parallelism=2, completionMode="Indexed")
    job["status"] = {"active": 2, "startTime": HOUR_AGO.isoformat()}
    pods = (
        PodView("r0", "Running", start_time=HOUR_AGO, gpus=2),
        PodView("r1", "Running", start_time=NOW - timedelta(minutes=30), gpus=2),
    )
    status = derive_trial_status(job, None, NOW, pods=pods)
    assert status.phase is TrialPhase.RUNNING
    assert status.gpu_seconds == 2 * 3600 + 2 * 1800


def test_a_finished_multi_pod_trial_counts_every_pod_to_its_end() -> None:
    end = NOW - timedelta(minutes=10)
    job = indexed_job(1, parallelism=2, completionMode="Indexed")
    job["status"] = {
        "startTime": HOUR_AGO.isoformat(),
        "completionTime": end.isoformat(),
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    pods = tuple(
        PodView(f"r{i}", "Succeeded", start_time=HOUR_AGO, gpus=1, finish_time=end)
        for i in range(2)
    )
    previous = TrialStatus(phase=TrialPhase.RUNNING, objective=0.1, start_time=HOUR_AGO)
    status = derive_trial_status(job, None, NOW, pods=pods, previous=previous)
    assert status.phase is TrialPhase.SUCCEEDED
    assert status.gpu_seconds == 2 * 3000


def test_a_stopped_trial_counts_every_pod_until_the_stop() -> None:
    previous = TrialStatus(phase=TrialPhase.RUNNING, start_time=HOUR_AGO, gpu_seconds=60)
    pods = [PodView(f"r{i}", "Running", start_time=HOUR_AGO, gpus=8) for i in range(2)]
    status = stopped_status(previous, "EarlyStopped", "below median", NOW, pods=pods)
    assert status.gpu_seconds == 2 * 8 * 3600
    assert stopped_status(previous, "EarlyStopped", "", NOW).gpu_seconds == 60
