"""Distributed trials on a real API server: multi-pod Jobs, JobSets, the GPU-hours budget.

* An Indexed Job of two pods, each printing its own losses: the trial's objective
  is rank 0's, rank 1's never reaches the series, and GPU-seconds count both pods.
* ``budget.maxGPUHours`` ends a sweep with its own reason.
* A JobSet trial: the operator creates the JobSet, owned by its Trial, with the
  collector in every replicated Job's pod template, and the garbage collector
  removes it with the Experiment. The JobSet CRD comes from the Go module
  ``sigs.k8s.io/jobset`` (``go mod download``), at the release the local
  cluster's JobSet controller is built from; that controller is not needed here.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from cluster.kube import ApiError, path_for
from conftest import Apply, Cluster, wait_for
from crd import definition, established
from stack import Stack
from sweeps import (
    API,
    CRDS,
    assert_deadline_stops_every_pod,
    describe,
    end_condition,
    ended,
    experiment,
    ranked_program,
    trials,
    wait_end,
)
from tests.api.test_workload_shapes import SHAPE_MISTAKES, Bend, bent

#: The JobSet release whose CRD is installed: the one the local cluster's controller runs.
JOBSET_VERSION = "v0.11.1"
JOBSET_API = "jobset.x-k8s.io/v1alpha2"
JOBSET_WORKLOAD = {"apiVersion": JOBSET_API, "kind": "JobSet", "plural": "jobsets"}
#: A custom resource of this test's own, standing for any kind a platform team enables.
RUNS_API = "e2e.kubesweep.io/v1"
RUNS_WORKLOAD = {"apiVersion": RUNS_API, "kind": "TrainingRun", "plural": "trainingruns"}
RUNS_CRD = definition("TrainingRun", "trainingruns")

#: Rank r (the Job's completion index) prints loss = (x - 0.3)^2 + 100 r, three times.
RANKED_PROGRAM = ranked_program("int(os.environ['JOB_COMPLETION_INDEX'])")


def jobset_crd_file() -> Path:
    """The JobSet CRD of :data:`JOBSET_VERSION`, from its Go module (downloaded if needed)."""
    if shutil.which("go") is None:
        pytest.skip("go is not on PATH: the JobSet CRD comes from the Go module sigs.k8s.io/jobset")
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/jobset@{JOBSET_VERSION}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot download sigs.k8s.io/jobset@{JOBSET_VERSION}: {result.stderr[-300:]}")
    module = Path(json.loads(result.stdout)["Dir"])
    return module / "config" / "components" / "crd" / "bases" / "jobset.x-k8s.io_jobsets.yaml"


@pytest.fixture(scope="module")
def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The CRDs (kubesweep's, JobSet's, a custom resource's) and an operator that runs them."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(jobset_crd_file()))
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(RUNS_CRD))
    for crd in ("jobsets.jobset.x-k8s.io", "trainingruns.e2e.kubesweep.io"):
        wait_for(partial(established, cluster, crd), 60, what=f"{crd} established")
    log_dir = Path(tmp_path_factory.mktemp("operator-logs"))
    workloads = f"--trial-workloads={json.dumps([JOBSET_WORKLOAD, RUNS_WORKLOAD])}"
    with Stack(cluster.kubeconfig, log_dir, extra_operator_args=(workloads,)) as running:
        yield running


def ranked_experiment(name: str, budget: dict[str, Any]) -> dict[str, Any]:
    """Trials of two pods (an Indexed Job), one GPU each, each rank printing its own loss."""
    manifest = experiment(name, budget)
    job = manifest["spec"]["trialTemplate"]["job"]
    job.update({"parallelism": 2, "completions": 2, "completionMode": "Indexed"})
    trainer = job["template"]["spec"]["containers"][0]
    trainer["command"] = ["python", "-c", RANKED_PROGRAM]
    trainer["args"] = ["${params.x}"]
    trainer["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    return manifest


def test_a_multi_pod_trial_reports_rank_0_and_counts_every_pods_gpus(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    apply(ranked_experiment("ranks", {"maxTrials": 1, "parallelTrials": 1}))
    status = wait_end(cluster, namespace, "ranks")
    assert end_condition(status)["reason"] == "MaxTrialsReached", describe(cluster, namespace)
    (trial,) = trials(cluster, namespace)
    x = float(trial["spec"]["parameters"]["x"])
    rank0 = float(f"{(x - 0.3) ** 2:.6f}")
    assert trial["status"]["phase"] == "Succeeded", describe(cluster, namespace)
    assert trial["status"]["objective"] == pytest.approx(rank0, abs=1e-6)
    (loss,) = [m for m in trial["status"]["metrics"] if m["name"] == "loss"]
    assert (loss["count"], loss["max"]) == (3, pytest.approx(rank0, abs=1e-6))  # no rank 1
    # Two pods, one GPU each, about three seconds each: both count.
    assert trial["status"]["gpuSeconds"] >= 2 * 3.0
    assert status["gpuHours"] == pytest.approx(status["gpuSeconds"] / 3600, abs=1e-4)


def test_the_gpu_hours_budget_ends_the_sweep(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    budget = {"maxTrials": 6, "parallelTrials": 1, "maxGPUHours": 0.001}  # 3.6 GPU-seconds
    apply(ranked_experiment("gpu-budget", budget))
    status = wait_end(cluster, namespace, "gpu-budget")
    condition = end_condition(status)
    assert condition["reason"] == "MaxGPUHoursReached", describe(cluster, namespace)
    assert "maxGPUHours 0.001" in condition["message"]
    assert status["trials"]["created"] < 6
    assert status["gpuHours"] >= 0.001


def jobset_experiment(name: str) -> dict[str, Any]:
    """A trial of a launcher and two workers of two pods each, as a JobSet."""
    manifest = experiment(name, {"maxTrials": 1, "parallelTrials": 1}, sleep=60)
    template = manifest["spec"]["trialTemplate"]
    job = template.pop("job")
    workers = copy.deepcopy(job)
    workers.update({"parallelism": 2, "completions": 2})
    launcher = copy.deepcopy(job)
    launcher["template"]["spec"]["containers"][0]["name"] = "launcher"
    template["jobSet"] = {
        "replicatedJobs": [
            {"name": "workers", "replicas": 2, "template": {"spec": workers}},
            {"name": "launcher", "replicas": 1, "template": {"spec": launcher}},
        ]
    }
    return manifest


def test_a_jobset_trial_is_owned_by_its_trial_and_goes_with_its_experiment(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    apply(jobset_experiment("dist"))
    jobsets = path_for(JOBSET_API, "jobsets", namespace)
    jobset = wait_for(lambda: cluster.kube.get(f"{jobsets}/dist-0"), 60, what="the trial's JobSet")
    (trial,) = trials(cluster, namespace)
    (owner,) = jobset["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "Trial",
        trial["metadata"]["uid"],
        True,
    )
    assert jobset["metadata"]["labels"]["kubesweep.io/trial"] == "dist-0"
    for replicated in jobset["spec"]["replicatedJobs"]:
        job_spec = replicated["template"]["spec"]
        assert job_spec["completionMode"] == "Indexed"
        pod = job_spec["template"]
        assert pod["metadata"]["labels"]["kubesweep.io/trial"] == "dist-0"
        (collector,) = pod["spec"]["initContainers"]
        rule = {e["name"]: e for e in collector["env"]}["KUBESWEEP_REPORTING_POD"]["value"]
        assert {c["equals"] for c in json.loads(rule)} == {"workers", "0"}
    assert jobset["spec"]["failurePolicy"]["maxRestarts"] == 0

    cluster.kube.delete(
        path_for(API, "experiments", namespace, "dist"), propagationPolicy="Background"
    )
    wait_for(
        lambda: not trials(cluster, namespace) and not cluster.kube.list(jobsets),
        120,
        1.0,
        what="the Trial and its JobSet to be garbage-collected",
    )


@pytest.mark.parametrize(
    ("case", "bend", "expected"), SHAPE_MISTAKES, ids=[c for c, _, _ in SHAPE_MISTAKES]
)
def test_the_api_server_refuses_each_malformed_workload_naming_the_field(
    cluster: Cluster, namespace: str, stack: Stack, case: str, bend: Bend, expected: str
) -> None:
    manifest = bent(bend)
    manifest["metadata"] = {"name": "shape", "namespace": namespace}
    with pytest.raises(ApiError) as refused:
        cluster.kube.create(path_for(API, "experiments", namespace), manifest)
    assert refused.value.status == 422, case
    assert expected in refused.value.message, refused.value.message


def test_the_api_server_accepts_a_jobset_template(
    cluster: Cluster, namespace: str, stack: Stack
) -> None:
    manifest = jobset_experiment("accepted")
    manifest["metadata"]["namespace"] = namespace
    stored = cluster.kube.create(path_for(API, "experiments", namespace), manifest)
    assert len(stored["spec"]["trialTemplate"]["jobSet"]["replicatedJobs"]) == 2
    cluster.kube.delete(path_for(API, "experiments", namespace, "accepted"))


def resource_experiment(name: str) -> dict[str, Any]:
    """Trials as TrainingRuns: their status.phase tells how they ended."""
    manifest = experiment(name, {"maxTrials": 1, "parallelTrials": 1}, sleep=60)
    template = manifest["spec"]["trialTemplate"]
    job = template.pop("job")
    template["resource"] = {
        "apiVersion": RUNS_API,
        "kind": "TrainingRun",
        "spec": {
            "title": "${experiment.name} ${trial.index}",
            "worker": {"template": job["template"]},
        },
        "podTemplates": ["worker.template"],
        "success": {"field": "status.phase", "values": ["Done"]},
        "failure": {"field": "status.phase", "values": ["Error"]},
    }
    template["reportingPod"] = {}
    return manifest


def test_a_custom_resource_trial_is_owned_judged_by_its_status_and_collected(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    apply(resource_experiment("custom"))
    runs = path_for(RUNS_API, "trainingruns", namespace)
    run = wait_for(lambda: cluster.kube.get(f"{runs}/custom-0"), 60, what="the TrainingRun")
    (trial,) = trials(cluster, namespace)
    (owner,) = run["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("Trial", trial["metadata"]["uid"])
    assert run["spec"]["title"] == "custom 0"
    pod = run["spec"]["worker"]["template"]
    assert pod["metadata"]["labels"]["kubesweep.io/trial"] == "custom-0"
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["kubesweep-collector"]

    cluster.kube.patch(f"{runs}/custom-0", {"status": {"phase": "Error"}})
    status = wait_end(cluster, namespace, "custom")
    (trial,) = trials(cluster, namespace)
    assert (trial["status"]["phase"], trial["status"]["reason"]) == ("Failed", "phase=Error")
    assert status["trials"]["failed"] == 1

    cluster.kube.delete(
        path_for(API, "experiments", namespace, "custom"), propagationPolicy="Background"
    )
    wait_for(lambda: not cluster.kube.list(runs), 120, 1.0, what="the TrainingRun to go")


# ---- with the JobSet controller running (skipped unless e2e/cluster/build-controllers.sh ran) --

#: A JobSet rank (its Job's index, times 2, plus the pod's completion index) prints
#: loss = (x - 0.3)^2 + 100 rank, three times; then sleeps the given seconds.
JOBSET_PROGRAM = ranked_program(
    "2 * int(os.environ['JOB_INDEX']) + int(os.environ['JOB_COMPLETION_INDEX'])",
    "time.sleep(float(sys.argv[2]))\n",
)


@pytest.fixture(scope="module")
def jobset_controller(cluster: Cluster) -> Iterator[None]:
    """The JobSet controller, running for this module's tests that need it."""
    from test_controllers import _start

    yield from _start(cluster, ["jobset"])


def ranked_jobset_experiment(name: str, budget: dict[str, Any], pause: float) -> dict[str, Any]:
    """Trials of 2 Jobs x 2 pods, one GPU each, every rank printing its own loss."""
    manifest = experiment(name, budget)
    template = manifest["spec"]["trialTemplate"]
    job = template.pop("job")
    job.update({"parallelism": 2, "completions": 2})
    trainer = job["template"]["spec"]["containers"][0]
    trainer["command"] = ["python", "-c", JOBSET_PROGRAM]
    trainer["args"] = ["${params.x}", str(pause)]
    trainer["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    index = {"fieldRef": {"fieldPath": "metadata.labels['jobset.sigs.k8s.io/job-index']"}}
    trainer["env"] = [{"name": "JOB_INDEX", "valueFrom": index}]
    template["jobSet"] = {
        "replicatedJobs": [{"name": "workers", "replicas": 2, "template": {"spec": job}}]
    }
    return manifest


def test_a_jobset_trial_runs_and_reports_rank_0_with_every_pods_gpus(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack, jobset_controller: None
) -> None:
    apply(ranked_jobset_experiment("jsrun", {"maxTrials": 1, "parallelTrials": 1}, pause=0))
    status = wait_end(cluster, namespace, "jsrun")
    (trial,) = trials(cluster, namespace)
    assert trial["status"]["phase"] == "Succeeded", describe(cluster, namespace)
    x = float(trial["spec"]["parameters"]["x"])
    rank0 = float(f"{(x - 0.3) ** 2:.6f}")
    assert trial["status"]["objective"] == pytest.approx(rank0, abs=1e-6)
    (loss,) = [m for m in trial["status"]["metrics"] if m["name"] == "loss"]
    assert (loss["count"], loss["max"]) == (3, pytest.approx(rank0, abs=1e-6))
    assert trial["status"]["gpuSeconds"] >= 4 * 3.0  # four pods, one GPU each
    assert end_condition(status)["reason"] == "MaxTrialsReached"


def test_stopping_a_jobset_trial_stops_every_pod(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack, jobset_controller: None
) -> None:
    budget = {"maxTrials": 1, "parallelTrials": 1, "maxDuration": "25s"}
    apply(ranked_jobset_experiment("jsstop", budget, pause=600))
    assert_deadline_stops_every_pod(
        cluster, namespace, "jsstop", path_for(JOBSET_API, "jobsets", namespace), 4
    )


#: Rank 1 (the JobSet's second Job) fails on restart attempts below ``argv[2]``; rank 0
#: prints loss = (x - 0.3)^2 three times. Each pod learns its attempt from the label the
#: JobSet controller sets.
RESTARTING_PROGRAM = (
    "import os, sys, time\n"
    "x, fail_below = float(sys.argv[1]), int(sys.argv[2])\n"
    "rank, attempt = int(os.environ['JOB_INDEX']), int(os.environ['ATTEMPT'])\n"
    "if rank == 1 and attempt < fail_below:\n"
    "    time.sleep(1.0)\n"
    "    sys.exit(1)\n"
    "for step in range(3):\n"
    "    time.sleep(1.0)\n"
    "    print(f'step={step} loss={(x - 0.3) ** 2 + 100 * rank:.6f}', flush=True)\n"
)


def restarting_jobset_experiment(name: str, fail_below: int) -> dict[str, Any]:
    """One trial: a JobSet of 2 one-pod Jobs, restarted once (retries: 1) when a Job fails."""
    manifest = experiment(name, {"maxTrials": 1, "parallelTrials": 1})
    template = manifest["spec"]["trialTemplate"]
    job = template.pop("job")
    job.update({"parallelism": 1, "completions": 1, "backoffLimit": 0})
    trainer = job["template"]["spec"]["containers"][0]
    trainer["command"] = ["python", "-c", RESTARTING_PROGRAM]
    trainer["args"] = ["${params.x}", str(fail_below)]
    labels = "metadata.labels['jobset.sigs.k8s.io/{}']"
    trainer["env"] = [
        {"name": "JOB_INDEX", "valueFrom": {"fieldRef": {"fieldPath": labels.format("job-index")}}},
        {
            "name": "ATTEMPT",
            "valueFrom": {"fieldRef": {"fieldPath": labels.format("restart-attempt")}},
        },
    ]
    template["retries"] = 1
    template["jobSet"] = {
        "replicatedJobs": [{"name": "workers", "replicas": 2, "template": {"spec": job}}]
    }
    return manifest


def test_a_failed_worker_fails_the_trial_only_when_the_jobset_gives_up(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack, jobset_controller: None
) -> None:
    """A worker that fails once is restarted with its JobSet and the trial succeeds; one that
    keeps failing fails the trial after the JobSet's one restart, and not before."""
    apply(restarting_jobset_experiment("once", fail_below=1))
    apply(restarting_jobset_experiment("always", fail_below=99))
    jobsets = path_for(JOBSET_API, "jobsets", namespace)
    seen: list[tuple[str, int]] = []

    def both_ended() -> bool:
        by_trial = {t["metadata"]["name"]: t for t in trials(cluster, namespace)}
        always = by_trial.get("always-0", {}).get("status", {}).get("phase", "Pending")
        js = cluster.kube.get_or_none(f"{jobsets}/always-0") or {}
        seen.append((always, int((js.get("status") or {}).get("restarts", 0))))
        return bool(ended(cluster, namespace, "once") and ended(cluster, namespace, "always"))

    wait_for(both_ended, 180, 0.5, what="experiments once and always to end")
    assert ("Failed", 0) not in seen, seen
    (once,) = [t for t in trials(cluster, namespace) if t["metadata"]["name"] == "once-0"]
    assert once["status"]["phase"] == "Succeeded", describe(cluster, namespace)
    x = float(once["spec"]["parameters"]["x"])
    assert once["status"]["objective"] == pytest.approx(float(f"{(x - 0.3) ** 2:.6f}"), abs=1e-6)
    assert cluster.kube.get(f"{jobsets}/once-0")["status"]["restarts"] == 1
    (always,) = [t for t in trials(cluster, namespace) if t["metadata"]["name"] == "always-0"]
    assert always["status"]["phase"] == "Failed", always["status"]
    gave_up = cluster.kube.get(f"{jobsets}/always-0")
    assert gave_up["status"]["restarts"] == 1, gave_up["status"]
    assert any(
        c["type"] == "Failed" and c["status"] == "True" for c in gave_up["status"]["conditions"]
    ), gave_up["status"]
