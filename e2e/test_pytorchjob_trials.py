"""A third-party training controller through the generic path: PyTorchJob trials.

Kubeflow's training-operator (v1.9.3, built from its Go module by
``e2e/cluster/build-training-operator.sh`` and started by the harness) runs each
trial's PyTorchJob: a Master and two Workers, whose pods run on the process node.
The Experiment names the PyTorchJob in ``trialTemplate.resource`` (its two
PodTemplateSpecs get the collector, its ``Succeeded``/``Failed`` conditions end the
trial) and the Master pod reports. Each pod prints its own loss from the ``RANK``
the controller gives it, so a series that took another rank's values shows. The
operator runs per test, for that test's namespace: one test runs it under the
chart's Role alone.

Without the build these tests skip, saying how to build (``KUBESWEEP_E2E_CONTROLLERS``
as in ``test_controllers.py``).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster import controllers, local
from cluster.kube import path_for
from conftest import Apply, Cluster, wait_for
from crd import established
from stack import Stack
from sweeps import (
    CRDS,
    assert_deadline_stops_every_pod,
    describe,
    end_condition,
    experiment,
    ranked_program,
    trials,
    wait_end,
)

PYTORCH_API = "kubeflow.org/v1"
PYTORCH_WORKLOAD = {"apiVersion": PYTORCH_API, "kind": "PyTorchJob", "plural": "pytorchjobs"}
#: The label training-operator puts on each pod: its replica type, in lower case.
REPLICA_TYPE = "training.kubeflow.org/replica-type"
WORKERS = 2

#: Rank r (the controller's RANK: Master 0, Worker i is i + 1) prints
#: loss = (x - 0.3)^2 + 100 r, three times; then sleeps the given seconds, and rank 0
#: exits with the given status.
RANKED_PROGRAM = ranked_program(
    "int(os.environ['RANK'])",
    "time.sleep(float(sys.argv[2]))\nsys.exit(int(sys.argv[3]) if rank == 0 else 0)\n",
)


@pytest.fixture(scope="module")
def training_operator(cluster: Cluster) -> Iterator[None]:
    """training-operator, running for this module (its PyTorchJob CRD applied with it)."""
    from test_controllers import _start

    if os.geteuid() != 0:
        pytest.skip("training-operator runs in a network namespace of its own: that needs root")
    yield from _start(cluster, ["training-operator"])


@pytest.fixture(scope="module")
def crds(cluster: Cluster, training_operator: None) -> None:
    """kubesweep's CRDs, and the PyTorchJob CRD (the harness applies it with the controller)."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    for crd in ("experiments.kubesweep.io", "pytorchjobs.kubeflow.org"):
        wait_for(partial(established, cluster, crd), 60, what=f"{crd} established")


@pytest.fixture
def stack(cluster: Cluster, namespace: str, crds: None, tmp_path: Path) -> Iterator[Stack]:
    """An operator for this test's namespace that may run PyTorchJob trials."""
    workloads = f"--trial-workloads={json.dumps([PYTORCH_WORKLOAD])}"
    with Stack(
        cluster.kubeconfig,
        tmp_path / "logs",
        namespaces=(namespace,),
        extra_operator_args=(workloads,),
    ) as running:
        yield running


def pytorchjob_experiment(
    name: str, budget: dict[str, Any], pause: float, master_exit: int = 0
) -> dict[str, Any]:
    """Trials as PyTorchJobs of a Master and two Workers, one GPU each, every rank printing."""
    manifest = experiment(name, budget)
    template = manifest["spec"]["trialTemplate"]
    pod = template.pop("job")["template"]
    trainer = pod["spec"]["containers"][0]
    # The controller sets RANK and the rendezvous variables in the container named pytorch.
    trainer["name"] = template["primaryContainer"] = "pytorch"
    trainer["command"] = ["python", "-c", RANKED_PROGRAM]
    trainer["args"] = ["${params.x}", str(pause), str(master_exit)]
    trainer["resources"] = {"limits": {"nvidia.com/gpu": 1}}

    def replicas(n: int) -> dict[str, Any]:
        return {"replicas": n, "restartPolicy": "Never", "template": pod}

    template["resource"] = {
        "apiVersion": PYTORCH_API,
        "kind": "PyTorchJob",
        "spec": {
            "runPolicy": {"backoffLimit": 0},
            "pytorchReplicaSpecs": {"Master": replicas(1), "Worker": replicas(WORKERS)},
        },
        "podTemplates": [
            "pytorchReplicaSpecs.Master.template",
            "pytorchReplicaSpecs.Worker.template",
        ],
        "success": {"condition": "Succeeded"},
        "failure": {"condition": "Failed"},
    }
    template["reportingPod"] = {"matchLabels": {REPLICA_TYPE: "master"}}
    return manifest


def test_a_pytorchjob_trial_runs_and_reports_its_masters_loss_with_every_pods_gpus(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    apply(pytorchjob_experiment("ptrun", {"maxTrials": 2, "parallelTrials": 1}, pause=0))
    status = wait_end(cluster, namespace, "ptrun", timeout=300)
    assert end_condition(status)["reason"] == "MaxTrialsReached", describe(cluster, namespace)
    assert status["trials"]["succeeded"] == 2, describe(cluster, namespace)
    jobs = {
        j["metadata"]["name"]: j
        for j in cluster.kube.list(path_for(PYTORCH_API, "pytorchjobs", namespace))
    }
    for trial in trials(cluster, namespace):
        name = trial["metadata"]["name"]
        assert trial["status"]["phase"] == "Succeeded", describe(cluster, namespace)
        # The controller ran it to its own Succeeded condition.
        conditions = {c["type"]: c["status"] for c in jobs[name]["status"]["conditions"]}
        assert conditions.get("Succeeded") == "True", jobs[name]["status"]
        x = float(trial["spec"]["parameters"]["x"])
        rank0 = float(f"{(x - 0.3) ** 2:.6f}")
        assert trial["status"]["objective"] == pytest.approx(rank0, abs=1e-6)
        (loss,) = [m for m in trial["status"]["metrics"] if m["name"] == "loss"]
        # Three values, all the Master's: a Worker's would be 100 or more above.
        assert (loss["count"], loss["max"]) == (3, pytest.approx(rank0, abs=1e-6))
        # A Master and two Workers, one GPU each, three seconds or more each: all count.
        assert trial["status"]["gpuSeconds"] >= (1 + WORKERS) * 3.0
    pods = cluster.kube.list(path_for("v1", "pods", namespace))
    ranks = sorted(
        (p["metadata"]["labels"][REPLICA_TYPE], _rank(p))
        for p in pods
        if p["metadata"]["labels"].get("kubesweep.io/trial") == "ptrun-0"
    )
    assert ranks == [("master", 0), ("worker", 1), ("worker", 2)]


def test_a_pytorchjob_sweep_runs_under_only_the_charts_role(
    cluster: Cluster, namespace: str, apply: Apply, crds: None, tmp_path: Path
) -> None:
    """The chart's namespaced Role with PyTorchJob in trialWorkloads is all the operator needs."""
    from test_chart import CHART, _render, _sa_kubeconfig

    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {"scope": "namespaced", "trialWorkloads": {"customResources": [PYTORCH_WORKLOAD]}}
        )
    )
    docs = _render(cluster, namespace, CHART / "ci" / "default-values.yaml", "-f", str(values))
    rbac = [d for d in docs if d["kind"] in {"ServiceAccount", "Role", "RoleBinding"}]
    cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(rbac)
    )
    (operator,) = [
        c
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
        if c["name"] == "operator"
    ]
    workloads = [a for a in operator["args"] if a.startswith("--trial-workloads=")]
    assert workloads, operator["args"]
    account = "kubesweep-operator"
    kubeconfig = _sa_kubeconfig(cluster, namespace, account, tmp_path / "operator.kubeconfig")
    with Stack(
        str(kubeconfig),
        tmp_path / "logs",
        namespaces=(namespace,),
        admin_kubeconfig=cluster.kubeconfig,
        extra_operator_args=tuple(workloads),
    ) as running:
        apply(pytorchjob_experiment("ptrole", {"maxTrials": 1, "parallelTrials": 1}, pause=0))
        status = wait_end(cluster, namespace, "ptrole", timeout=300)
        log = running.operator.log.read_text() if running.operator else ""
    (trial,) = trials(cluster, namespace)
    assert trial["status"]["phase"] == "Succeeded", describe(cluster, namespace)
    x = float(trial["spec"]["parameters"]["x"])
    assert trial["status"]["objective"] == pytest.approx(float(f"{(x - 0.3) ** 2:.6f}"), abs=1e-6)
    assert end_condition(status)["reason"] == "MaxTrialsReached"
    assert "forbidden" not in log.lower(), log[-3000:]
    # The Role grants exactly the PyTorchJob verbs the operator uses: no update, no patch.
    can = partial(_can, cluster, namespace, account)
    assert (can("create"), can("delete"), can("watch"), can("patch")) == (True, True, True, False)


def _can(cluster: Cluster, namespace: str, account: str, verb: str) -> bool:
    answer = cluster.kubectl(
        "auth",
        "can-i",
        verb,
        "pytorchjobs.kubeflow.org",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:{account}",
        check=False,
    )
    return answer.stdout.strip() == "yes"


def test_a_failed_master_fails_the_trial_through_the_pytorchjobs_failed_condition(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    budget = {"maxTrials": 1, "parallelTrials": 1}
    apply(pytorchjob_experiment("ptfail", budget, pause=0, master_exit=3))
    wait_end(cluster, namespace, "ptfail", timeout=300)
    (trial,) = trials(cluster, namespace)
    assert trial["status"]["phase"] == "Failed", describe(cluster, namespace)
    job = cluster.kube.get(path_for(PYTORCH_API, "pytorchjobs", namespace, "ptfail-0"))
    conditions = {c["type"]: c["status"] for c in job["status"]["conditions"]}
    assert (conditions.get("Failed"), conditions.get("Succeeded")) == ("True", None), job["status"]
    # The trial's reason is the controller's own, from the condition it matched.
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert (trial["status"]["reason"], failed["reason"]) == ("PyTorchJobFailed",) * 2


def _rank(pod: dict[str, Any]) -> int:
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "pytorch"]
    return int(next(e["value"] for e in container["env"] if e["name"] == "RANK"))


def test_ending_the_experiment_stops_every_pod_of_a_pytorchjob_trial(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    budget = {"maxTrials": 1, "parallelTrials": 1, "maxDuration": "25s"}
    apply(pytorchjob_experiment("ptstop", budget, pause=600))
    assert_deadline_stops_every_pod(
        cluster, namespace, "ptstop", path_for(PYTORCH_API, "pytorchjobs", namespace), 1 + WORKERS
    )


def listeners() -> dict[int, set[str]]:
    """This machine's listening TCP sockets (its own network namespace): port -> addresses."""
    found: dict[int, set[str]] = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with open(table) as f:
            rows = [line.split() for line in f.readlines()[1:]]
        for row in rows:
            if row[3] != "0A":  # LISTEN
                continue
            address, port = row[1].split(":")
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.setdefault(int(port, 16), set()).add(socket.inet_ntop(family, raw))
    return found


def test_training_operator_serves_nothing_beyond_loopback(
    cluster: Cluster, training_operator: None
) -> None:
    """Its webhook server binds every interface: of its own namespace, not this machine's."""
    assert cluster.local is not None
    info = local.ClusterInfo.load(Path(cluster.local.state_dir))
    assert info is not None
    webhook = info.ports["training-operator-webhook"]
    health = info.ports["training-operator-health"]
    listening = listeners()
    assert webhook not in listening, listening.get(webhook)
    assert listening[health] == {"127.0.0.1"}
    pid = info.pids["training-operator"]
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        (child,) = f.read().split()
    assert Path(f"/proc/{child}/exe").resolve().name == "training-operator"
    assert Path(f"/proc/{child}/ns/net").readlink() != Path("/proc/self/ns/net").readlink()


def test_the_harness_applies_the_pytorchjob_crd_and_no_webhook(
    cluster: Cluster, training_operator: None
) -> None:
    """Only the kind sweeps use, and no webhook configuration for the rotator to rewrite."""
    selector = f"{controllers.LABEL}={controllers.TRAINING_OPERATOR}"
    crds = cluster.kube.list(
        path_for("apiextensions.k8s.io/v1", "customresourcedefinitions"), labelSelector=selector
    )
    assert [c["metadata"]["name"] for c in crds] == ["pytorchjobs.kubeflow.org"]
    for plural in controllers.WEBHOOK_KINDS.values():
        hooks = cluster.kube.list(path_for("admissionregistration.k8s.io/v1", plural))
        names = [h["metadata"]["name"] for h in hooks]
        assert not [n for n in names if "training-operator" in n], names
    # The rotator's Secret: applied empty by the harness, filled by the rotator.
    secret = cluster.kube.get(
        path_for("v1", "secrets", "kubeflow", "training-operator-webhook-cert")
    )
    assert {"ca.crt", "tls.crt"} <= set(secret.get("data") or {})
