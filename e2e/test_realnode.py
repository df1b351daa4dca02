"""What only a real kubelet can show: pods from built images, native sidecars, Services.

These run when the local cluster's node is the real one (``KUBESWEEP_E2E_NODE=real``,
or ``make test-e2e-real``) and the images are built (``make images``); otherwise they
skip, saying which is missing. The images reach the node as OCI archives imported
into containerd, as a registry would deliver them.

- A native sidecar (an init container with ``restartPolicy: Always``) runs beside
  the main container, gets SIGTERM only after the main container ended, and its
  termination message reaches ``state.terminated.message``; the pod ends
  ``Succeeded``.
- A ClusterIP Service routes a pod's request to another pod (kube-proxy, nftables).
- The collector image runs as the native sidecar of a trial pod rendered by the
  operator's own :func:`kubesweep.rendering.render_trial`, and with the intake
  unreachable its summary arrives through the termination message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cluster.kube import JSON, path_for
from conftest import Cluster, e2e_node_kind, wait_for

IMAGE_CACHE = (
    Path(os.environ.get("KUBESWEEP_CACHE", Path.home() / ".cache" / "kubesweep")) / "images"
)
NEEDED_IMAGES = ("collector",)

pytestmark = pytest.mark.skipif(
    e2e_node_kind() != "real" or bool(os.environ.get("KUBESWEEP_E2E_KUBECONFIG")),
    reason="needs the local cluster's real node: KUBESWEEP_E2E_NODE=real (make test-e2e-real)",
)


@pytest.fixture(scope="module")
def images(cluster: Cluster) -> dict[str, str]:
    """The built images, imported into the node's containerd: name -> reference."""
    from node import realnode

    assert cluster.local is not None
    refs = {}
    for name in NEEDED_IMAGES:
        record = IMAGE_CACHE / f"{name}.json"
        if not record.exists():
            pytest.skip(f"image {name} is not built: run `make images` first")
        built = json.loads(record.read_text())
        realnode.import_image(cluster.local, Path(built["archive"]))
        refs[name] = built["reference"]
    return refs


def _pod(cluster: Cluster, namespace: str, name: str) -> JSON:
    return cluster.kube.get(path_for("v1", "pods", namespace, name))


def _phase_is(cluster: Cluster, namespace: str, name: str, *phases: str) -> JSON | None:
    pod = _pod(cluster, namespace, name)
    return pod if pod.get("status", {}).get("phase") in phases else None


def _status_of(pod: JSON, container: str) -> JSON:
    statuses = pod["status"].get("initContainerStatuses", []) + pod["status"].get(
        "containerStatuses", []
    )
    return next(s for s in statuses if s["name"] == container)


def _python(script: str) -> list[str]:
    return ["python3", "-c", script]


SIDECAR = """
import os, signal, sys, time
def stop(signum, frame):
    main_done = os.path.exists("/shared/main-done")
    with open("/dev/termination-log", "w") as f:
        f.write(f"sidecar got SIGTERM; main had ended: {main_done}")
    print("sidecar stopping", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open("/shared/sidecar-up", "w").close()
print("sidecar up", flush=True)
while True:
    time.sleep(0.1)
"""

MAIN = """
import os, time
deadline = time.monotonic() + 30
while not os.path.exists("/shared/sidecar-up"):
    assert time.monotonic() < deadline, "the sidecar never started"
    time.sleep(0.05)
print("main saw the sidecar; uid", os.getuid(), flush=True)
open("/shared/main-done", "w").close()
"""


def test_native_sidecar_stops_after_main_with_termination_message(
    cluster: Cluster, namespace: str, apply: Callable[[Any], list[JSON]], images: dict[str, str]
) -> None:
    image = images["collector"]
    mounts = [{"name": "shared", "mountPath": "/shared"}]
    apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "sidecar"},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 10,
                "volumes": [{"name": "shared", "emptyDir": {}}],
                "initContainers": [
                    {
                        "name": "init",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": _python("print('init ran')"),
                    },
                    {
                        "name": "sidecar",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "restartPolicy": "Always",
                        "command": _python(SIDECAR),
                        "volumeMounts": mounts,
                    },
                ],
                "containers": [
                    {
                        "name": "main",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": _python(MAIN),
                        "volumeMounts": mounts,
                    }
                ],
            },
        }
    )
    pod = wait_for(
        lambda: _phase_is(cluster, namespace, "sidecar", "Succeeded", "Failed"),
        120,
        what="pod sidecar to end (Succeeded or Failed)",
    )
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    # The kubelet writes the sidecar's final state just after the phase; wait for it.
    sidecar = wait_for(
        lambda: _status_of(_pod(cluster, namespace, "sidecar"), "sidecar")["state"].get(
            "terminated"
        ),
        30,
        what="the sidecar's terminated state",
    )
    assert sidecar["message"] == "sidecar got SIGTERM; main had ended: True"
    assert sidecar["exitCode"] == 0
    main = _status_of(pod, "main")["state"]["terminated"]
    assert main["exitCode"] == 0
    assert main["finishedAt"] <= sidecar["finishedAt"]
    assert "init ran" in cluster.logs(namespace, "sidecar", "init")
    assert "main saw the sidecar; uid 65532" in cluster.logs(namespace, "sidecar", "main")
    assert "sidecar stopping" in cluster.logs(namespace, "sidecar", "sidecar")


SERVER = """
import http.server
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from the server pod"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("", 8080), Hello).serve_forever()
"""

CLIENT = """
import sys, time, urllib.request
url = sys.argv[1]
deadline = time.monotonic() + 30
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            body = r.read().decode()
        break
    except OSError as e:
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} unreachable for 30s: {e}")
        time.sleep(0.2)
open("/dev/termination-log", "w").write(body)
"""


def test_cluster_ip_service_reaches_a_pod(
    cluster: Cluster, namespace: str, apply: Callable[[Any], list[JSON]], images: dict[str, str]
) -> None:
    image = images["collector"]
    apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "server", "labels": {"app": "hello"}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": _python(SERVER),
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {
                                "tcpSocket": {"port": 8080},
                                "periodSeconds": 1,
                            },
                        }
                    ]
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "hello"},
                "spec": {
                    "selector": {"app": "hello"},
                    "ports": [{"port": 80, "targetPort": 8080}],
                },
            },
        ]
    )
    service = cluster.kube.get(path_for("v1", "services", namespace, "hello"))
    cluster_ip = service["spec"]["clusterIP"]
    wait_for(
        lambda: any(
            e.get("conditions", {}).get("ready")
            for s in cluster.kube.list(
                f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                labelSelector="kubernetes.io/service-name=hello",
            )
            for e in s.get("endpoints") or []
        ),
        60,
        what="a ready endpoint of Service hello",
    )
    apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "client"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "client",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": [*_python(CLIENT), f"http://{cluster_ip}/"],
                    }
                ],
            },
        }
    )
    pod = wait_for(
        lambda: _phase_is(cluster, namespace, "client", "Succeeded", "Failed"),
        90,
        what="pod client to end",
    )
    state = _status_of(pod, "client")["state"]["terminated"]
    assert pod["status"]["phase"] == "Succeeded", state
    assert state["message"] == "hello from the server pod"
    server_ip = _pod(cluster, namespace, "server")["status"]["podIP"]
    assert server_ip != pod["status"]["podIP"]


TRAINER = """
import json, os
with open(os.environ["KUBESWEEP_METRICS_PATH"], "a") as f:
    for step, loss in enumerate([0.9, 0.5, 0.3, 0.4], start=1):
        f.write(json.dumps({"step": step, "loss": loss}) + "\\n")
print("trained", flush=True)
"""


def test_collector_image_is_the_native_sidecar_of_a_rendered_trial(
    cluster: Cluster, namespace: str, apply: Callable[[Any], list[JSON]], images: dict[str, str]
) -> None:
    """The operator's Job for a trial, on a real kubelet, with the intake unreachable.

    The collector reads the trainer's JSON lines, finds no intake (nothing listens on
    the port it is given) and, stopped by the kubelet after the trainer ends, leaves
    its summary as its termination message, where the operator falls back to read it.
    """
    from kubesweep.api import ObjectMeta, Trial, TrialSpec, parse_experiment
    from kubesweep.metrics.wire import decode_summary
    from kubesweep.rendering import COLLECTOR_NAME, RenderSettings, render_trial

    experiment = parse_experiment(
        {
            "apiVersion": "kubesweep.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "real", "namespace": namespace, "uid": "exp-uid"},
            "spec": {
                "objective": {"metric": "loss", "direction": "minimize"},
                "algorithm": {"name": "random", "seed": 1},
                "parameters": [{"name": "lr", "type": "float", "min": 0.001, "max": 0.1}],
                "budget": {"maxTrials": 1, "parallelTrials": 1},
                "trialTemplate": {
                    "primaryContainer": "trainer",
                    "metrics": {"source": "json", "path": "metrics.jsonl"},
                    "job": {
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [
                                    {
                                        "name": "trainer",
                                        "image": images["collector"],
                                        "imagePullPolicy": "Never",
                                        "command": _python(TRAINER),
                                        "args": ["--lr=${params.lr}"],
                                    }
                                ],
                            }
                        }
                    },
                },
            },
        }
    )
    trial = Trial(
        metadata=ObjectMeta(name="real-0", namespace=namespace, uid="trial-uid"),
        spec=TrialSpec(experiment="real", index=0, parameters={"lr": 0.01}),
    )
    settings = RenderSettings(
        collector_image=images["collector"],
        collector_image_pull_policy="Never",
        intake_url="http://127.0.0.1:9/intake",
    )
    job = render_trial(experiment, trial, settings, token="token-of-the-trial")
    job["metadata"].pop("ownerReferences", None)  # no Trial object exists in this test
    apply(job)

    def ended_pod() -> JSON | None:
        pods = cluster.kube.list(
            f"/api/v1/namespaces/{namespace}/pods", labelSelector="job-name=real-0"
        )
        done = [p for p in pods if p["status"].get("phase") in ("Succeeded", "Failed")]
        return done[0] if done else None

    pod = wait_for(ended_pod, 120, what="the trial pod of Job real-0 to end")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    name = pod["metadata"]["name"]
    sidecar = wait_for(
        lambda: _status_of(_pod(cluster, namespace, name), COLLECTOR_NAME)["state"].get(
            "terminated"
        ),
        30,
        what="the collector's terminated state",
    )
    summary = decode_summary(sidecar["message"])
    stats = {m.name: m for m in summary.metrics}
    assert stats["loss"].latest == 0.4
    assert stats["loss"].min == 0.3
    assert stats["loss"].count == 4
    assert "trained" in cluster.logs(namespace, name, "trainer")
