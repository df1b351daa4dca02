"""Proof that the e2e cluster is real: controllers, scheduler, admission, RBAC and the node.

Each test uses only public Kubernetes behaviour, so the same file also runs
against kind or a real cluster (``KUBESWEEP_E2E_KUBECONFIG``); the tests about
the process node's own files are skipped there.
"""

from __future__ import annotations

import json
import subprocess
import time
from functools import partial
from typing import Any

import pytest

import crd
from cluster.kube import JSON, ApiError, Kube, KubeConfig, path_for
from conftest import IMAGE, Apply, Cluster, wait_for
from stack import free_port


def job(name: str, script: str, *, backoff: int = 0, **pod: Any) -> JSON:
    """A one-pod Job that runs ``python -c script``."""
    spec: JSON = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 5,
        "containers": [{"name": "main", "image": IMAGE, "command": ["python", "-c", script]}],
    }
    spec.update(pod)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": backoff, "template": {"spec": spec}},
    }


def job_condition(cluster: Cluster, ns: str, name: str, ctype: str) -> JSON | None:
    j = cluster.kube.get(path_for("batch/v1", "jobs", ns, name))
    for c in j.get("status", {}).get("conditions") or []:
        if c["type"] == ctype and c["status"] == "True":
            cond: JSON = c
            return cond
    return None


def pod_in_phase(cluster: Cluster, ns: str, name: str, *phases: str) -> JSON | None:
    """The pod once its phase is one of ``phases``, else None (for ``wait_for``)."""
    p = cluster.kube.get(path_for("v1", "pods", ns, name))
    return p if p.get("status", {}).get("phase") in phases else None


def pods_of(cluster: Cluster, ns: str, job_name: str) -> list[JSON]:
    return cluster.kube.list(
        path_for("v1", "pods", ns), labelSelector=f"batch.kubernetes.io/job-name={job_name}"
    )


def test_job_completes(cluster: Cluster, namespace: str, apply: Apply) -> None:
    apply(job("hello", "print('hello from a job')", backoff=2))
    cond = wait_for(lambda: job_condition(cluster, namespace, "hello", "Complete"), 90)
    assert cond["status"] == "True"
    (pod,) = pods_of(cluster, namespace, "hello")
    assert pod["status"]["phase"] == "Succeeded"
    (cs,) = pod["status"]["containerStatuses"]
    assert cs["state"]["terminated"]["exitCode"] == 0
    conds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conds["PodScheduled"] == "True"
    assert conds["Initialized"] == "True"
    assert "hello from a job" in cluster.logs(namespace, pod["metadata"]["name"], "main")


def test_failing_job_retries_backoff_limit_times(
    cluster: Cluster, namespace: str, apply: Apply
) -> None:
    apply(job("boom", "import sys; print('failing'); sys.exit(3)", backoff=1))
    cond = wait_for(lambda: job_condition(cluster, namespace, "boom", "Failed"), 120)
    assert cond["reason"] == "BackoffLimitExceeded"
    pods = pods_of(cluster, namespace, "boom")
    assert len(pods) == 2  # backoffLimit + 1
    for p in pods:
        assert p["status"]["phase"] == "Failed"
        assert p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    j = cluster.kube.get(path_for("batch/v1", "jobs", namespace, "boom"))
    assert j["status"]["failed"] == 2


def test_deleting_owner_garbage_collects_children(
    cluster: Cluster, namespace: str, apply: Apply
) -> None:
    (owner,) = apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }
    apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"child-{i}", "ownerReferences": [ref]},
            }
            for i in range(3)
        ]
    )
    # A Job's pods are owned too: deleting the Job in the background removes them.
    apply(job("sleeper", "import time; time.sleep(300)"))
    wait_for(lambda: pods_of(cluster, namespace, "sleeper"), 60, what="job pod")
    cluster.kube.delete(path_for("v1", "configmaps", namespace, "owner"))
    cluster.kube.delete(
        path_for("batch/v1", "jobs", namespace, "sleeper"), propagationPolicy="Background"
    )

    def children_gone() -> bool:
        names = {
            c["metadata"]["name"]
            for c in cluster.kube.list(path_for("v1", "configmaps", namespace))
        }
        return not names & {"child-0", "child-1", "child-2"}

    wait_for(children_gone, 60, what="owned ConfigMaps garbage-collected")
    wait_for(lambda: not pods_of(cluster, namespace, "sleeper"), 60, what="job pods collected")


#: Ranges whose min must be below their max: a CEL rule of the CRD's own.
CRD = crd.definition(
    "Range",
    "ranges",
    {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["min", "max"],
                "properties": {"min": {"type": "number"}, "max": {"type": "number"}},
                "x-kubernetes-validations": [
                    {
                        "rule": "self.min < self.max",
                        "message": "min must be less than max",
                        "fieldPath": ".min",
                    }
                ],
            }
        },
    },
)


def test_crd_cel_rule_rejects_bad_object(cluster: Cluster, namespace: str) -> None:
    kube = cluster.kube
    crd_path = path_for(
        "apiextensions.k8s.io/v1", "customresourcedefinitions", name="ranges.e2e.kubesweep.io"
    )
    kube.apply(crd_path, CRD)

    wait_for(partial(crd.established, cluster, CRD["metadata"]["name"]), 30, what="CRD established")
    coll = path_for("e2e.kubesweep.io/v1", "ranges", namespace)

    def obj(name: str, lo: float, hi: float) -> JSON:
        return {
            "apiVersion": "e2e.kubesweep.io/v1",
            "kind": "Range",
            "metadata": {"name": name},
            "spec": {"min": lo, "max": hi},
        }

    # Discovery of a new CRD takes a moment; retry creation of the good object until served.
    wait_for(lambda: kube.create(coll, obj("good", 1, 2)), 30, what="good object created")
    with pytest.raises(ApiError) as err:
        kube.create(coll, obj("bad", 5, 2))
    assert err.value.status == 422
    assert "min must be less than max" in err.value.message
    assert "spec.min" in err.value.message
    # kubectl shows the same refusal
    bad = json.dumps(obj("bad", 5, 2))
    res = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=bad, check=False)
    assert res.returncode != 0
    assert "min must be less than max" in res.stderr


def gpu_job(name: str, seconds: float) -> JSON:
    script = (
        "import os, time, json; s = time.time(); "
        f"time.sleep({seconds}); "
        "print(json.dumps({'start': s, 'end': time.time(), "
        "'devices': os.environ.get('CUDA_VISIBLE_DEVICES', '')}))"
    )
    j = job(name, script)
    j["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 2}}
    return j


def test_gpu_jobs_never_exceed_capacity_or_share_devices(
    cluster: Cluster, namespace: str, apply: Apply
) -> None:
    if cluster.gpus != 4:
        pytest.skip(f"needs a cluster with exactly 4 GPUs (has {cluster.gpus})")
    names = [f"gpu-{i}" for i in range(4)]
    apply([gpu_job(n, 4) for n in names])
    max_running, saw_unschedulable = 0, False
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        pods = cluster.kube.list(path_for("v1", "pods", namespace))
        bound = [
            p
            for p in pods
            if p["spec"].get("nodeName") and p["status"].get("phase") in ("Pending", "Running")
        ]
        max_running = max(max_running, len(bound))
        for p in pods:
            for c in p["status"].get("conditions") or []:
                if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
                    saw_unschedulable = True
        if all(job_condition(cluster, namespace, n, "Complete") for n in names):
            break
        time.sleep(0.2)
    else:
        pytest.fail("GPU jobs did not complete")
    assert max_running <= 2
    assert saw_unschedulable, "the scheduler never held a pod back for lack of GPUs"
    runs = []
    for n in names:
        (pod,) = pods_of(cluster, namespace, n)
        line = cluster.logs(namespace, pod["metadata"]["name"], "main").strip().splitlines()[-1]
        run = json.loads(line)
        devices = {int(d) for d in run["devices"].split(",")}
        assert len(devices) == 2
        assert devices <= {0, 1, 2, 3}
        runs.append((run["start"], run["end"], devices))
    for i, (s1, e1, d1) in enumerate(runs):
        for s2, e2, d2 in runs[i + 1 :]:
            if s1 < e2 and s2 < e1:  # ran at the same time
                assert not d1 & d2, f"overlapping runs share devices {d1 & d2}"


def test_native_sidecar_does_not_keep_job_alive(
    cluster: Cluster, namespace: str, apply: Apply
) -> None:
    sidecar = {
        "name": "sidecar",
        "image": IMAGE,
        "restartPolicy": "Always",
        "command": [
            "python",
            "-c",
            "import time\nprint('sidecar up', flush=True)\ntime.sleep(3600)",
        ],
    }
    apply(job("with-sidecar", "print('main done')", initContainers=[sidecar]))
    wait_for(lambda: job_condition(cluster, namespace, "with-sidecar", "Complete"), 90)
    (pod,) = pods_of(cluster, namespace, "with-sidecar")
    assert pod["status"]["phase"] == "Succeeded"
    (side,) = pod["status"]["initContainerStatuses"]
    assert "terminated" in side["state"]  # stopped after the main container, not left running


def test_rbac_denies_what_the_role_does_not_grant(
    cluster: Cluster, namespace: str, apply: Apply
) -> None:
    apply(
        [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "read-configmaps"},
                "rules": [
                    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-configmaps",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        ]
    )
    token = cluster.kube.create(
        path_for("v1", "serviceaccounts", namespace, "reader") + "/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )["status"]["token"]
    admin = cluster.kube.config
    as_reader = Kube(
        KubeConfig(server=admin.server, ca_file=admin.ca_file, token=token, insecure=admin.insecure)
    )
    # RBAC caches are quick but not instant: wait until the grant is effective.
    wait_for(lambda: as_reader.list(path_for("v1", "configmaps", namespace)) is not None, 30)
    for method, path, body in [
        ("GET", path_for("v1", "secrets", namespace), None),
        (
            "POST",
            path_for("v1", "configmaps", namespace),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
        ),
        ("GET", path_for("v1", "configmaps", "default"), None),
    ]:
        with pytest.raises(ApiError) as err:
            as_reader.request(method, path, body)
        assert err.value.status == 403, (method, path)
    can = cluster.kubectl(
        "auth",
        "can-i",
        "list",
        "secrets",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:reader",
        check=False,
    )
    assert can.stdout.strip() == "no"


# ------------------------------------------------------------- the process node itself


def test_pod_volumes_env_and_termination_message(
    cluster: Cluster, namespace: str, apply: Apply
) -> None:
    apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cfg"},
                "data": {"greeting": "hi", "file.txt": "from a configmap"},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "sec"},
                "stringData": {"password": "s3cret"},
            },
        ]
    )
    writer = {
        "name": "writer",
        "image": IMAGE,
        "command": ["sh", "-c", "echo shared-data > /work-e2e/shared/data.txt"],
        "volumeMounts": [{"name": "shared", "mountPath": "/work-e2e/shared"}],
    }
    reader_script = (
        "import os, pathlib\n"
        "print(pathlib.Path('/work-e2e/shared/data.txt').read_text().strip())\n"
        "print(pathlib.Path('/work-e2e/cfg/file.txt').read_text())\n"
        "print(os.getcwd())\n"
        "for k in ['POD_NAME', 'POD_NS', 'POD_UID', 'GREETING', 'PASSWORD', 'DERIVED']:\n"
        "    print(k, os.environ[k])\n"
        "pathlib.Path('/dev/termination-log').write_text('all good')\n"
    )
    apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "features"},
            "spec": {
                "restartPolicy": "Never",
                "initContainers": [writer],
                "volumes": [
                    {"name": "shared", "emptyDir": {}},
                    {"name": "cfg", "configMap": {"name": "cfg"}},
                ],
                "containers": [
                    {
                        "name": "reader",
                        "image": IMAGE,
                        "command": ["python", "-c", reader_script],
                        "workingDir": "/tmp",
                        "env": [
                            {
                                "name": "POD_NAME",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                            },
                            {
                                "name": "POD_NS",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                            },
                            {
                                "name": "POD_UID",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}},
                            },
                            {
                                "name": "GREETING",
                                "valueFrom": {
                                    "configMapKeyRef": {"name": "cfg", "key": "greeting"}
                                },
                            },
                            {
                                "name": "PASSWORD",
                                "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}},
                            },
                            {"name": "DERIVED", "value": "$(GREETING)-there"},
                        ],
                        "volumeMounts": [
                            {"name": "shared", "mountPath": "/work-e2e/shared"},
                            {"name": "cfg", "mountPath": "/work-e2e/cfg", "readOnly": True},
                        ],
                    }
                ],
            },
        }
    )
    pod = wait_for(lambda: pod_in_phase(cluster, namespace, "features", "Succeeded", "Failed"), 60)
    out = cluster.logs(namespace, "features", "reader")
    assert pod["status"]["phase"] == "Succeeded", out
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0
    assert term["message"] == "all good"
    lines = out.splitlines()
    assert lines[:3] == ["shared-data", "from a configmap", "/tmp"]
    env = dict(line.split(" ", 1) for line in lines[3:])
    assert env == {
        "POD_NAME": "features",
        "POD_NS": namespace,
        "POD_UID": pod["metadata"]["uid"],
        "GREETING": "hi",
        "PASSWORD": "s3cret",
        "DERIVED": "hi-there",
    }
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_graceful_deletion_sigterm_then_sigkill(
    cluster: Cluster, namespace: str, apply: Apply
) -> None:
    polite = (
        "import signal, sys, time\n"
        "def bye(*a):\n    print('got SIGTERM', flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\nprint('up', flush=True)\ntime.sleep(3600)\n"
    )
    stubborn = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: print('ignoring SIGTERM', flush=True))\n"
        "print('up', flush=True)\ntime.sleep(3600)\n"
    )
    for name, script in (("polite", polite), ("stubborn", stubborn)):
        apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {
                    "terminationGracePeriodSeconds": 3,
                    "containers": [
                        {"name": "main", "image": IMAGE, "command": ["python", "-c", script]}
                    ],
                },
            }
        )

    def says_up(name: str) -> bool:
        return "up" in cluster.logs(namespace, name, "main")

    def removed(name: str) -> bool:
        return cluster.kube.get_or_none(path_for("v1", "pods", namespace, name)) is None

    for name in ("polite", "stubborn"):
        wait_for(
            partial(pod_in_phase, cluster, namespace, name, "Running"), 60, what=f"{name} running"
        )
        wait_for(partial(says_up, name), 30)
    start = time.monotonic()
    for name in ("polite", "stubborn"):
        cluster.kube.delete(path_for("v1", "pods", namespace, name))
    for name in ("polite", "stubborn"):
        wait_for(partial(removed, name), 30, what=f"{name} removed")
    elapsed = time.monotonic() - start
    assert "got SIGTERM" in cluster.logs(namespace, "polite", "main")
    assert "ignoring SIGTERM" in cluster.logs(namespace, "stubborn", "main")
    assert 2.5 <= elapsed < 20  # the stubborn one was killed after its 3 s grace period


def test_restart_policy_on_failure_restarts_in_place(
    cluster: Cluster, namespace: str, apply: Apply
) -> None:
    script = (
        "import os, pathlib, sys\n"
        "p = pathlib.Path('/scratch/count'); n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1)); print('run', n, flush=True); sys.exit(0 if n >= 2 else 1)\n"
    )
    apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "flaky"},
            "spec": {
                "restartPolicy": "OnFailure",
                "volumes": [{"name": "scratch", "emptyDir": {}}],
                "containers": [
                    {
                        "name": "main",
                        "image": IMAGE,
                        "command": ["python", "-c", script],
                        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                    }
                ],
            },
        }
    )
    pod = wait_for(lambda: pod_in_phase(cluster, namespace, "flaky", "Succeeded", "Failed"), 90)
    assert pod["status"]["phase"] == "Succeeded"
    cs = pod["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 2
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert "run 1" in cluster.logs(namespace, "flaky", "main", previous=True)


def test_kubectl_logs_through_the_node(cluster: Cluster, namespace: str, apply: Apply) -> None:
    if cluster.local is None:
        pytest.skip("the process node's kubelet API only exists on the local cluster")
    apply(job("talker", "print('line one'); print('line two')"))
    wait_for(lambda: job_condition(cluster, namespace, "talker", "Complete"), 60)
    res = cluster.kubectl("logs", "-n", namespace, "job/talker")
    assert res.stdout.splitlines() == ["line one", "line two"]


def test_kubectl_and_helm_binaries(cluster: Cluster) -> None:
    out = cluster.kubectl("version", "-o", "json").stdout
    assert json.loads(out)["serverVersion"]["gitVersion"].startswith("v1.")
    if cluster.helm_bin:
        assert subprocess.run(
            [cluster.helm_bin, "version", "--short"], capture_output=True, text=True, check=True
        ).stdout.startswith("v3.")


def test_active_deadline_fails_the_pod(cluster: Cluster, namespace: str, apply: Apply) -> None:
    apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "slow"},
            "spec": {
                "restartPolicy": "Never",
                "activeDeadlineSeconds": 2,
                "terminationGracePeriodSeconds": 2,
                "containers": [
                    {"name": "main", "image": IMAGE, "command": ["sleep", "60"]},
                ],
            },
        }
    )
    pod = wait_for(lambda: pod_in_phase(cluster, namespace, "slow", "Failed", "Succeeded"), 30)
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["reason"] == "DeadlineExceeded"


def test_probes_gate_readiness_and_restart_on_liveness_failure(
    cluster: Cluster, namespace: str, apply: Apply
) -> None:
    if cluster.local is None:
        pytest.skip("uses host ports of the process node")
    port = free_port()  # pods of the process node share this machine's ports
    web = (
        "import http.server, time\n"
        "time.sleep(2)\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), "
        "http.server.SimpleHTTPRequestHandler).serve_forever()\n"
    )
    apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "probed"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "web",
                        "image": IMAGE,
                        "command": ["python", "-c", web],
                        "workingDir": "/tmp",
                        "ports": [{"name": "http", "containerPort": port}],
                        "readinessProbe": {
                            "httpGet": {"port": "http", "path": "/"},
                            "periodSeconds": 1,
                        },
                    },
                    {
                        "name": "fragile",
                        "image": IMAGE,
                        "command": ["sleep", "3600"],
                        "livenessProbe": {
                            "exec": {"command": ["sh", "-c", "exit 1"]},
                            "periodSeconds": 1,
                            "failureThreshold": 2,
                        },
                    },
                ],
            },
        }
    )

    def statuses() -> dict[str, JSON]:
        pod = cluster.kube.get(path_for("v1", "pods", namespace, "probed"))
        return {c["name"]: c for c in pod["status"].get("containerStatuses") or []}

    running = wait_for(lambda: statuses()["web"]["state"].get("running") and statuses(), 30)
    assert running["web"]["ready"] is False  # the server sleeps 2 s before it listens
    wait_for(lambda: statuses()["web"]["ready"], 30, what="web ready by its httpGet probe")
    wait_for(lambda: statuses()["fragile"]["restartCount"] >= 1, 30, what="liveness restart")
