"""Real workload controllers on the local cluster: JobSet, Kueue and Kubeflow Trainer.

The controllers are their releases' own controller managers, built from Go modules
(``e2e/cluster/build-controllers.sh``) and started by the harness with their CRDs,
RBAC and webhooks (``e2e/cluster/controllers.py``); the pods they cause run on the
process node as local processes.

The module's fixture starts the controllers on the session's cluster and stops the
ones it started at the end. The build is not part of ``make test``: without a build
in the cache these tests skip, saying how to build (``KUBESWEEP_E2E_CONTROLLERS=build``
builds on demand; ``=skip`` skips even when built).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cluster import controllers as workload_controllers
from cluster import local
from cluster.kube import JSON, path_for
from conftest import IMAGE, Apply, Cluster, wait_for
from kueue_quota import (
    GPU,
    KUEUE,
    admitted_intervals,
    condition,
    gpu_quota,
    most_at_once,
    timestamp,
)

CONTROLLERS_ENV = "KUBESWEEP_E2E_CONTROLLERS"
JOBSET = "jobset.x-k8s.io/v1alpha2"
TRAINER = "trainer.kubeflow.org/v1alpha1"


#: What each build costs, for the skip message: measured on 2 cores (docs/local-cluster.md).
BUILD_TIMES = {
    workload_controllers.BUILD_SCRIPT.name: "10-30 min with an empty Go build cache, "
    "30 s once it is warm",
    workload_controllers.TRAINING_OPERATOR_BUILD_SCRIPT.name: "about 5 min with an empty "
    "Go build cache, 8 s once it is warm",
}


def _skip_reason(cluster: Cluster, names: list[str]) -> str | None:
    if os.environ.get(CONTROLLERS_ENV) == "skip":
        return f"{CONTROLLERS_ENV}=skip"
    if cluster.local is None:
        return "an external cluster: the harness starts controllers only on its own cluster"
    if cluster.local.node_kind != "process":
        return "these pods run python commands as the process node's processes (no image here)"
    if os.environ.get(CONTROLLERS_ENV) == "build":
        return None
    for name in workload_controllers.resolve(names):
        if workload_controllers.built_bin_dir(name) is None:
            script = workload_controllers.SPECS[name].build_script.name
            return (
                f"{name} is not built: run e2e/cluster/{script} "
                f"({BUILD_TIMES[script]}, on 2 cores) or set {CONTROLLERS_ENV}=build"
            )
    return None


def _start(cluster: Cluster, names: list[str]) -> Iterator[None]:
    reason = _skip_reason(cluster, names)
    if reason:
        pytest.skip(reason)
    assert cluster.local is not None
    state_dir = Path(cluster.local.state_dir)
    _, started = local.start_controllers(names, state_dir=state_dir)
    try:
        yield
    finally:
        local.stop_controllers(started, state_dir=state_dir)


@pytest.fixture(scope="module")
def jobset_kueue(cluster: Cluster) -> Iterator[None]:
    """The JobSet controller and Kueue, running for this module."""
    yield from _start(cluster, ["jobset", "kueue"])


@pytest.fixture(scope="module")
def trainer(cluster: Cluster, jobset_kueue: None) -> Iterator[None]:
    """Kubeflow Trainer's controller manager as well."""
    yield from _start(cluster, ["trainer"])


def python_pod(script: str, **container: Any) -> JSON:
    """A pod template whose one container runs ``python -c script``."""
    return {
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "main",
                    "image": IMAGE,
                    "command": ["python", "-c", script],
                    **container,
                }
            ],
        }
    }


def _label_env(name: str, label: str) -> JSON:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{label}']"}}}


# ---- JobSet ----


def test_jobset_of_two_replicated_jobs_completes(
    cluster: Cluster, namespace: str, apply: Apply, jobset_kueue: None
) -> None:
    script = "import os; print('replicated job', os.environ['RJOB'], 'index', os.environ['JIDX'])"
    env = [
        _label_env("RJOB", "jobset.sigs.k8s.io/replicatedjob-name"),
        _label_env("JIDX", "jobset.sigs.k8s.io/job-index"),
    ]

    def replicated(name: str, replicas: int) -> JSON:
        return {
            "name": name,
            "replicas": replicas,
            "template": {
                "spec": {
                    "backoffLimit": 0,
                    "parallelism": 1,
                    "completions": 1,
                    "template": python_pod(script, env=env),
                }
            },
        }

    apply(
        {
            "apiVersion": JOBSET,
            "kind": "JobSet",
            "metadata": {"name": "pair"},
            "spec": {"replicatedJobs": [replicated("leader", 1), replicated("workers", 2)]},
        }
    )
    js_path = path_for(JOBSET, "jobsets", namespace, "pair")
    wait_for(
        lambda: condition(cluster.kube.get(js_path), "Completed"),
        120,
        what="JobSet pair condition Completed=True",
    )
    js = cluster.kube.get(js_path)
    assert js["status"].get("terminalState") == "Completed"
    succeeded = {r["name"]: r["succeeded"] for r in js["status"]["replicatedJobsStatus"]}
    assert succeeded == {"leader": 1, "workers": 2}
    jobs = cluster.kube.list(
        path_for("batch/v1", "jobs", namespace), labelSelector="jobset.sigs.k8s.io/jobset-name=pair"
    )
    assert sorted(j["metadata"]["name"] for j in jobs) == [
        "pair-leader-0",
        "pair-workers-0",
        "pair-workers-1",
    ]
    assert all(condition(j, "Complete") for j in jobs)
    assert all(j["metadata"]["ownerReferences"][0]["kind"] == "JobSet" for j in jobs)
    logs = set()
    for pod in cluster.kube.list(path_for("v1", "pods", namespace)):
        assert pod["status"]["phase"] == "Succeeded"
        logs.add(cluster.logs(namespace, pod["metadata"]["name"], "main").strip())
    assert logs == {
        "replicated job leader index 0",
        "replicated job workers index 0",
        "replicated job workers index 1",
    }


# ---- Kueue ----


def _gpu_job(name: str, queue: str, seconds: float) -> JSON:
    script = (
        "import os, time; print('devices', os.environ['CUDA_VISIBLE_DEVICES']); "
        f"time.sleep({seconds})"
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": queue}},
        "spec": {
            # Kueue's webhook would suspend it too; saying so keeps it suspended from the start.
            "suspend": True,
            "backoffLimit": 0,
            "template": python_pod(script, resources={"limits": {GPU: 1}}),
        },
    }


def test_kueue_admits_at_most_the_gpu_quota(
    cluster: Cluster, namespace: str, apply: Apply, jobset_kueue: None
) -> None:
    if cluster.gpus < 4:
        pytest.skip(f"needs a node with 4 GPUs (the cluster has {cluster.gpus})")
    with gpu_quota(cluster, namespace, apply, gpus=4, local_queue="gpus"):
        _run_six_gpu_jobs(cluster, namespace, apply, "gpus")


def _run_six_gpu_jobs(cluster: Cluster, namespace: str, apply: Apply, lq: str) -> None:
    kube = cluster.kube
    names = [f"gpu-{i}" for i in range(6)]
    # Long enough that the first four are seen running while two wait.
    apply([_gpu_job(n, lq, 8) for n in names])
    jobs_path = path_for("batch/v1", "jobs", namespace)

    def split() -> tuple[list[str], list[str]]:
        jobs = kube.list(jobs_path)
        running = [j["metadata"]["name"] for j in jobs if not j["spec"].get("suspend")]
        waiting = [j["metadata"]["name"] for j in jobs if j["spec"].get("suspend")]
        return running, waiting

    def four_admitted() -> tuple[list[str], list[str]] | None:
        running, waiting = split()
        return (running, waiting) if len(running) == 4 and len(waiting) == 2 else None

    _, waiting = wait_for(
        four_admitted, 60, what="four of the six GPU Jobs admitted (unsuspended), two suspended"
    )
    # The two left out stay suspended, with no pod, while the four hold the quota.
    for name in waiting:
        assert not kube.list(
            path_for("v1", "pods", namespace), labelSelector=f"batch.kubernetes.io/job-name={name}"
        )
    wl = {
        w["metadata"]["ownerReferences"][0]["name"]: w
        for w in kube.list(path_for(KUEUE, "workloads", namespace))
    }
    assert sorted(wl) == names
    for name in waiting:
        assert not condition(wl[name], "QuotaReserved"), wl[name]["status"]
    wait_for(
        lambda: (
            all(condition(j, "Complete") for j in kube.list(jobs_path))
            and len(kube.list(jobs_path)) == 6
        ),
        120,
        what="all six GPU Jobs Complete",
    )
    assert most_at_once(admitted_intervals(cluster, namespace)) <= 4
    ran: list[tuple[datetime, datetime]] = []
    devices = []
    for pod in kube.list(path_for("v1", "pods", namespace)):
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        ran.append((timestamp(term["startedAt"]), timestamp(term["finishedAt"])))
        devices.append(cluster.logs(namespace, pod["metadata"]["name"], "main").split()[1])
    assert len(ran) == 6
    assert most_at_once(ran) <= 4
    assert set(devices) <= {"0", "1", "2", "3"}


# ---- Kubeflow Trainer ----


def _plain_runtime(name: str, script: str) -> JSON:
    """A TrainingRuntime without an ML framework: one replicated Job ``node`` that runs a script.

    Trainer finds the trainer's pods by the ancestor label and its container by the name
    ``node``; the TrainJob sets the number of nodes and adds its environment there.
    """
    container = {"name": "node", "image": IMAGE, "command": ["python", "-c", script]}
    node = {
        "name": "node",
        "template": {
            "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
        },
    }
    return {
        "apiVersion": TRAINER,
        "kind": "TrainingRuntime",
        "metadata": {"name": name},
        "spec": {"mlPolicy": {"numNodes": 1}, "template": {"spec": {"replicatedJobs": [node]}}},
    }


def test_trainjob_runs_through_trainer_and_jobset(
    cluster: Cluster, namespace: str, apply: Apply, trainer: None
) -> None:
    script = (
        "import os; print('node', os.environ['JOB_COMPLETION_INDEX'], 'of', "
        "os.environ['NODES'], 'lr', os.environ['LR'])"
    )
    kube = cluster.kube
    apply(_plain_runtime("plain", script))
    try:
        apply(
            {
                "apiVersion": TRAINER,
                "kind": "TrainJob",
                "metadata": {"name": "tj"},
                "spec": {
                    "runtimeRef": {
                        "apiGroup": "trainer.kubeflow.org",
                        "kind": "TrainingRuntime",
                        "name": "plain",
                    },
                    "trainer": {
                        "numNodes": 2,
                        "env": [{"name": "NODES", "value": "2"}, {"name": "LR", "value": "0.01"}],
                    },
                },
            }
        )
        tj_path = path_for(TRAINER, "trainjobs", namespace, "tj")
        wait_for(
            lambda: condition(kube.get(tj_path), "Complete"),
            120,
            what="TrainJob tj condition Complete=True",
        )
        (js,) = kube.list(path_for(JOBSET, "jobsets", namespace))
        assert js["metadata"]["ownerReferences"][0]["kind"] == "TrainJob"
        assert condition(js, "Completed")
        logs = sorted(
            cluster.logs(namespace, p["metadata"]["name"], "node").strip()
            for p in kube.list(path_for("v1", "pods", namespace))
        )
        assert logs == ["node 0 of 2 lr 0.01", "node 1 of 2 lr 0.01"]
    finally:
        # Trainer holds the runtime with a finalizer while a TrainJob uses it; both go
        # while Trainer runs, so the test's namespace is not left terminating.
        kube.delete(path_for(TRAINER, "trainjobs", namespace, "tj"))
        wait_for(
            lambda: not kube.list(path_for(TRAINER, "trainjobs", namespace)),
            60,
            what=f"TrainJob tj in {namespace} gone",
        )
        kube.delete(path_for(TRAINER, "trainingruntimes", namespace, "plain"))
        wait_for(
            lambda: not kube.list(path_for(TRAINER, "trainingruntimes", namespace)),
            60,
            what=f"TrainingRuntime plain in {namespace} gone (Trainer's finalizer released)",
        )
