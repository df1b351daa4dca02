"""The chart, installed by ``helm install`` with the built images, runs sweeps on the real node.

What users run, on a real kubelet: the operator and the suggestion service are the
chart's pods, under its ServiceAccounts and RBAC, in a namespace that enforces the
``restricted`` Pod Security Standard; the operator reaches the API server through
the ``kubernetes`` Service and the suggestion service by its Service name (cluster
DNS); trial pods run the example trainer image with the collector image as a native
sidecar, which pushes metrics to the intake Service. With the intake unreachable,
the final metrics arrive through the collector's termination message. GPU trials
never hold more ``nvidia.com/gpu`` than the node advertises.

Runs when the local cluster's node is the real one (``KUBESWEEP_E2E_NODE=real``,
``make test-e2e-real``) and the images are built (``make images``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest
import yaml

import chartstack
from cluster.kube import JSON, path_for
from conftest import Cluster, e2e_node_kind, wait_for
from kubesweep.rendering import COLLECTOR_NAME

pytestmark = pytest.mark.skipif(
    e2e_node_kind() != "real" or bool(os.environ.get("KUBESWEEP_E2E_KUBECONFIG")),
    reason="needs the local cluster's real node: KUBESWEEP_E2E_NODE=real (make test-e2e-real)",
)

API = "kubesweep.io/v1alpha1"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SYSTEM = chartstack.SYSTEM_NAMESPACE
RELEASE = chartstack.RELEASE
#: One example per metrics source that the example trainer image speaks.
SOURCE_EXAMPLES = {"stdout": "random.yaml", "json": "jsonl-source.yaml", "push": "push-source.yaml"}
EPOCHS = 8  # every example passes --epochs=8: one observation per epoch
SWEEP_TIMEOUT = 240


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Iterator[Cluster]:
    """The chart installed into ``kubesweep-system`` with the built images; uninstalled after."""
    with chartstack.installed_chart(cluster, dashboard=True):
        yield cluster


def _example(name: str, **budget: int) -> JSON:
    document = chartstack.localize_experiment(yaml.safe_load((EXAMPLES / name).read_text()))
    document["spec"]["budget"].update(budget)
    return document


def _experiment(cluster: Cluster, namespace: str, name: str) -> JSON:
    return cluster.kube.get(path_for(API, "experiments", namespace, name))


def _ended(cluster: Cluster, namespace: str, name: str) -> JSON | None:
    experiment = _experiment(cluster, namespace, name)
    conditions = {c["type"]: c for c in experiment.get("status", {}).get("conditions", [])}
    ended = any(conditions.get(t, {}).get("status") == "True" for t in ("Succeeded", "Failed"))
    return experiment if ended else None


def _run(cluster: Cluster, namespace: str, documents: list[JSON]) -> dict[str, JSON]:
    """Create the Experiments, wait until each has ended; name -> final Experiment."""
    for document in documents:
        cluster.kube.create(path_for(API, "experiments", namespace), document)
    names = [d["metadata"]["name"] for d in documents]
    return {
        name: wait_for(
            partial(_ended, cluster, namespace, name),
            SWEEP_TIMEOUT,
            interval=1,
            what=f"Experiment {namespace}/{name} to end (Succeeded or Failed)",
        )
        for name in names
    }


def _trials(cluster: Cluster, namespace: str, experiment: str) -> list[JSON]:
    return cluster.kube.list(
        path_for(API, "trials", namespace), labelSelector=f"kubesweep.io/experiment={experiment}"
    )


def _pods(cluster: Cluster, namespace: str, selector: str = "") -> list[JSON]:
    params = {"labelSelector": selector} if selector else {}
    return cluster.kube.list(f"/api/v1/namespaces/{namespace}/pods", **params)


def _operator_pod(cluster: Cluster) -> JSON:
    pods = _pods(cluster, SYSTEM, "app.kubernetes.io/component=operator")
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert len(running) == 1, [p["metadata"]["name"] for p in pods]
    return running[0]


def _intake_batches(cluster: Cluster) -> float:
    """``kubesweep_intake_batches_total{outcome="accepted"}`` scraped from the operator pod.

    The node's bridge makes pod addresses reachable from this machine, as a
    Prometheus inside the cluster would scrape them.
    """
    pod_ip = _operator_pod(cluster)["status"]["podIP"]
    with urllib.request.urlopen(f"http://{pod_ip}:9090/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found = re.search(r'^kubesweep_intake_batches_total\{outcome="accepted"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def _printed_last(
    cluster: Cluster, namespace: str, trial: JSON, container: str, metric: str
) -> float:
    """The last value of ``metric`` that the trial's ``container`` printed, from its log."""
    name = trial["metadata"]["name"]
    (pod,) = [
        p
        for p in _pods(cluster, namespace, f"kubesweep.io/trial={name}")
        if p["status"].get("phase") == "Succeeded"
    ]
    log = cluster.logs(namespace, pod["metadata"]["name"], container)
    printed = re.findall(rf"(?:^|\s){re.escape(metric)}=(\S+)", log, re.M)
    assert printed, f"{name}: the trainer printed no {metric}:\n{log[-2000:]}"
    return float(printed[-1])


def _assert_complete_trials(cluster: Cluster, namespace: str, experiment: JSON) -> None:
    """Every trial Succeeded with every epoch's objective, the collector's account complete.

    Where the trainer prints its metrics (the stdout source), each objective is the
    value it printed last, exactly.
    """
    name = experiment["metadata"]["name"]
    status = experiment["status"]
    assert status["phase"] == "Succeeded", status
    trials = _trials(cluster, namespace, name)
    assert len(trials) == experiment["spec"]["budget"]["maxTrials"]
    objective = experiment["spec"]["objective"]["metric"]
    template = experiment["spec"]["trialTemplate"]
    printed = template["metrics"]["source"] == "stdout"
    for trial in trials:
        trial_status = trial["status"]
        assert trial_status["phase"] == "Succeeded", trial_status
        metrics = {m["name"]: m for m in trial_status["metrics"]}
        assert metrics[objective]["count"] == EPOCHS, metrics
        complete = next(c for c in trial_status["conditions"] if c["type"] == "MetricsComplete")
        assert complete["status"] == "True", complete
        if printed:
            trainer = template["primaryContainer"]
            last = _printed_last(cluster, namespace, trial, trainer, objective)
            assert trial_status["objective"] == last, (trial["metadata"]["name"], trial_status)


def test_the_charts_pods_run_restricted_under_their_service_accounts(
    installed: Cluster,
) -> None:
    cluster = installed
    labels = cluster.kube.get(f"/api/v1/namespaces/{SYSTEM}")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = {
        p["metadata"]["labels"]["app.kubernetes.io/component"]: p for p in _pods(cluster, SYSTEM)
    }
    for component in ("operator", "suggestion", "dashboard"):
        pod = pods[component]
        assert pod["status"]["phase"] == "Running", pod["status"]
        assert pod["spec"]["serviceAccountName"] == f"{RELEASE}-{component}"
        assert cluster.local is not None
        assert pod["spec"]["nodeName"] == cluster.local.node_name
        image = pod["spec"]["containers"][0]["image"]
        built = chartstack.built_image(component)
        assert built is not None
        assert image == built.reference
        assert all(s["ready"] for s in pod["status"]["containerStatuses"])
    # The operator reached the API server (kubernetes Service) with its own token:
    # it made the intake key Secret under the chart's Role on its first start.
    assert cluster.kube.get_or_none(f"/api/v1/namespaces/{SYSTEM}/secrets/{RELEASE}-intake")


def test_one_sweep_per_metrics_source(installed: Cluster, namespace: str) -> None:
    """stdout, json and push: each example sweep ends Succeeded with every epoch's metric."""
    cluster = installed
    batches_before = _intake_batches(cluster)
    documents = [_example(f, maxTrials=2, parallelTrials=2) for f in SOURCE_EXAMPLES.values()]
    ended = _run(cluster, namespace, documents)
    for experiment in ended.values():
        _assert_complete_trials(cluster, namespace, experiment)
    collector = chartstack.built_image("collector")
    assert collector is not None
    for pod in _pods(cluster, namespace):
        sidecars = [
            c for c in pod["spec"].get("initContainers", []) if c["image"] == collector.reference
        ]
        assert [c.get("restartPolicy") for c in sidecars] == ["Always"], pod["spec"]
    # The metrics went through the intake Service (not only the termination messages).
    assert _intake_batches(cluster) > batches_before


@pytest.fixture
def intake_unreachable(installed: Cluster) -> Iterator[None]:
    """The intake Service selects no pod while the test runs (kube-proxy refuses its address)."""
    cluster = installed
    path = path_for("v1", "services", SYSTEM, f"{RELEASE}-intake")
    selector = cluster.kube.get(path)["spec"]["selector"]
    cluster.kube.patch(path, {"spec": {"selector": {**selector, "kubesweep.io/none": "none"}}})

    def no_endpoints() -> bool:
        slices = cluster.kube.list(
            f"/apis/discovery.k8s.io/v1/namespaces/{SYSTEM}/endpointslices",
            labelSelector=f"kubernetes.io/service-name={RELEASE}-intake",
        )
        return all(not s.get("endpoints") for s in slices)

    wait_for(no_endpoints, 30, what=f"Service {RELEASE}-intake to have no endpoints")
    try:
        yield
    finally:
        cluster.kube.patch(path, {"spec": {"selector": {"kubesweep.io/none": None}}})


def test_final_metrics_arrive_through_the_termination_message_without_the_intake(
    installed: Cluster, namespace: str, intake_unreachable: None
) -> None:
    cluster = installed
    batches_before = _intake_batches(cluster)
    document = _example("random.yaml", maxTrials=1, parallelTrials=1)
    experiment = _run(cluster, namespace, [document])[document["metadata"]["name"]]
    _assert_complete_trials(cluster, namespace, experiment)
    assert _intake_batches(cluster) == batches_before
    (pod,) = _pods(cluster, namespace)
    statuses = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}
    assert statuses[COLLECTOR_NAME]["state"]["terminated"]["message"]


def _gpu_holding(pod: JSON) -> tuple[int, datetime, datetime]:
    """(GPUs, from, until): the pod holds its GPUs from its start to its last container's end."""
    gpus = sum(
        int((c.get("resources", {}).get("limits") or {}).get("nvidia.com/gpu", 0))
        for c in pod["spec"]["containers"]
    )
    status = pod["status"]
    statuses = status.get("containerStatuses", []) + status.get("initContainerStatuses", [])
    ends = [s["state"]["terminated"]["finishedAt"] for s in statuses if "terminated" in s["state"]]
    return gpus, _time(status["startTime"]), _time(max(ends))


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_gpu_trials_never_oversubscribe_the_node(installed: Cluster, namespace: str) -> None:
    """Four trials of two GPUs each, all allowed in parallel, on a node of four GPUs."""
    cluster = installed
    capacity = cluster.gpus
    assert capacity == 4
    document = _example("random.yaml", maxTrials=4, parallelTrials=4)
    document["metadata"]["name"] = "digits-gpu"
    trainer = document["spec"]["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
    trainer["resources"]["limits"]["nvidia.com/gpu"] = 2
    trainer["args"] = [a for a in trainer["args"] if not a.startswith("--epochs")]
    trainer["args"] += [f"--epochs={EPOCHS}", "--epoch-seconds=0.5"]
    experiment = _run(cluster, namespace, [document])["digits-gpu"]
    _assert_complete_trials(cluster, namespace, experiment)
    holdings = [_gpu_holding(p) for p in _pods(cluster, namespace)]
    assert len(holdings) == 4
    assert all(gpus == 2 for gpus, _, _ in holdings)
    for _, start, _ in holdings:
        held = sum(gpus for gpus, begin, end in holdings if begin <= start < end)
        assert held <= capacity, (start, holdings)


#: Rank r of an Indexed Job trains 8 + r epochs: rank 1's longer series would show in
#: the trial's objective count if its metrics reached the trial's series.
RANKED_TRAINER = (
    'exec python -m examples.trainers.sklearn_digits "$@" '
    f"--epochs=$(({EPOCHS} + JOB_COMPLETION_INDEX)) --epoch-seconds=0.5"
)


def test_a_two_pod_trial_reports_rank_0_and_counts_both_pods_gpus(
    installed: Cluster, namespace: str
) -> None:
    """Trials of an Indexed Job of two 1-GPU pods, on a real kubelet: each pod's collector
    is a native sidecar that learns its rank through the downward API; only rank 0's
    series becomes the trial's, and both pods' GPU time counts."""
    cluster = installed
    document = _example("random.yaml", maxTrials=2, parallelTrials=1)
    document["metadata"]["name"] = "digits-ranks"
    job = document["spec"]["trialTemplate"]["job"]
    job.update({"parallelism": 2, "completions": 2, "completionMode": "Indexed"})
    trainer = job["template"]["spec"]["containers"][0]
    trainer["command"] = ["sh", "-c", RANKED_TRAINER, "trainer"]
    trainer["args"] = [a for a in trainer["args"] if not a.startswith("--epochs")]
    trainer["resources"]["limits"]["nvidia.com/gpu"] = 1
    experiment = _run(cluster, namespace, [document])["digits-ranks"]
    assert experiment["status"]["phase"] == "Succeeded", experiment["status"]
    trials = _trials(cluster, namespace, "digits-ranks")
    assert len(trials) == 2
    for trial in trials:
        name, status = trial["metadata"]["name"], trial["status"]
        assert status["phase"] == "Succeeded", status
        pods = {
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p
            for p in _pods(cluster, namespace, f"kubesweep.io/trial={name}")
        }
        assert sorted(pods) == ["0", "1"]
        logs = {
            rank: cluster.logs(namespace, p["metadata"]["name"], "trainer")
            for rank, p in pods.items()
        }
        printed = {
            rank: re.findall(r"(?:^|\s)val_loss=(\S+)", log, re.M) for rank, log in logs.items()
        }
        assert (len(printed["0"]), len(printed["1"])) == (EPOCHS, EPOCHS + 1), printed
        metrics = {m["name"]: m for m in status["metrics"]}
        assert metrics["val_loss"]["count"] == EPOCHS, metrics
        assert status["objective"] == float(printed["0"][-1]), (name, status)
        held = [_gpu_holding(p) for p in pods.values()]
        assert [gpus for gpus, _, _ in held] == [1, 1]
        seconds = [(end - start).total_seconds() for _, start, end in held]
        # Both pods' time counts (the operator's pass may end a moment before a pod's).
        assert status["gpuSeconds"] > max(seconds), (status["gpuSeconds"], seconds)
        assert status["gpuSeconds"] >= 0.8 * sum(seconds), (status["gpuSeconds"], seconds)


@contextlib.contextmanager
def _port_forward(cluster: Cluster, namespace: str, target: str, port: int) -> Iterator[str]:
    """``kubectl port-forward`` to ``target`` on a free loopback port; its base URL."""
    forward = subprocess.Popen(
        [
            *(cluster.kubectl_bin, f"--kubeconfig={cluster.kubeconfig}", "port-forward"),
            *("-n", namespace, "--address=127.0.0.1", target, f":{port}"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8686"
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert found, f"kubectl port-forward {target} said: {line!r}"
        yield f"http://127.0.0.1:{found.group(1)}/"
    finally:
        forward.terminate()
        forward.wait(timeout=30)


def _get(url: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_the_charts_dashboard_follows_a_sweep_and_has_no_write_path(
    installed: Cluster, namespace: str
) -> None:
    """The dashboard image, as the chart runs it, shows a sweep it saw start, exactly.

    Reached the way its docs say, ``kubectl port-forward`` to its Service; opened
    before the Experiment exists, so what it shows came through its watches.
    """
    cluster = installed
    name = "followed-by-the-dashboard"
    document = _example("random.yaml", maxTrials=2, parallelTrials=2)
    document["metadata"]["name"] = name
    with _port_forward(cluster, SYSTEM, f"svc/{RELEASE}-dashboard", 8686) as base:
        status, page = _get(base)
        assert status == 200, page[:200]
        assert b"<html" in page.lower(), page[:200]
        finished = _run(cluster, namespace, [document])[name]
        expected = {
            t["metadata"]["name"]: t["status"]["objective"]
            for t in _trials(cluster, namespace, name)
        }
        assert len(expected) == 2, expected

        def shown() -> dict[str, float] | None:
            status, body = _get(base + f"api/experiments/{name}")
            if status != 200:
                return None
            rows = json.loads(body)["trials"]
            seen = {row["name"]: row.get("objective") for row in rows}
            return seen if seen == expected else None

        wait_for(shown, 60, 1.0, what=f"the dashboard to show {name}'s trials {expected}")
        status, body = _get(base + "api/experiments")
        lines = {row["name"]: row for row in json.loads(body)}
        assert lines[name]["namespace"] == namespace
        assert lines[name]["phase"] == finished["status"]["phase"]
        best = finished["status"]["bestTrial"]
        assert lines[name]["best"] == {"name": best["name"], "objective": best["objective"]}
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            status, _ = _get(base + f"api/experiments/{name}", method)
            assert status == 405, (method, status)
    assert cluster.kube.get_or_none(path_for(API, "experiments", namespace, name))


def _active_operator(cluster: Cluster) -> str | None:
    """The pod the intake Service's EndpointSlice names: the active replica writes it."""
    found = cluster.kube.get_or_none(
        path_for("discovery.k8s.io/v1", "endpointslices", SYSTEM, f"{RELEASE}-intake")
    )
    refs = [e.get("targetRef", {}).get("name") for e in (found or {}).get("endpoints") or []]
    return refs[0] if len(refs) == 1 else None


def test_ha_from_the_charts_values_a_deleted_active_pod_hands_over(
    installed: Cluster, namespace: str
) -> None:
    """``operator.replicas=2``: one replica acts; deleting its pod mid-sweep hands over.

    Last in this module: it upgrades the release to two replicas. The sweep ends with
    exactly ``maxTrials`` trials, none lost or duplicated, each with its metrics.
    """
    cluster = installed
    kubeconfig = f"--kubeconfig={cluster.kubeconfig}"
    assert cluster.helm_bin is not None
    chartstack.install_chart(
        [cluster.helm_bin, kubeconfig],
        [cluster.kubectl_bin, kubeconfig],
        extra=("--set", "operator.replicas=2"),
    )
    first = wait_for(
        lambda: _active_operator(cluster),
        120,
        what=f"one operator replica to route the intake Service {RELEASE}-intake to itself",
    )
    document = _example("random.yaml", maxTrials=6, parallelTrials=2)
    document["metadata"]["name"] = "digits-ha"
    trainer = document["spec"]["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
    trainer["args"] = [a for a in trainer["args"] if not a.startswith("--epochs")]
    trainer["args"] += [f"--epochs={EPOCHS}", "--epoch-seconds=0.5"]
    cluster.kube.create(path_for(API, "experiments", namespace), document)
    wait_for(
        lambda: any(
            t.get("status", {}).get("phase") == "Succeeded"
            for t in _trials(cluster, namespace, "digits-ha")
        ),
        SWEEP_TIMEOUT,
        interval=0.5,
        what="the first trial of digits-ha to succeed",
    )
    cluster.kube.delete(path_for("v1", "pods", SYSTEM, first))
    second = wait_for(
        lambda: (active := _active_operator(cluster)) != first and active,
        120,
        what=f"the intake Service {RELEASE}-intake to route to another replica than {first}",
    )
    experiment = wait_for(
        lambda: _ended(cluster, namespace, "digits-ha"),
        SWEEP_TIMEOUT,
        interval=1,
        what="Experiment digits-ha to end after the takeover",
    )
    assert second != first
    _assert_complete_trials(cluster, namespace, experiment)
    names = sorted(t["metadata"]["name"] for t in _trials(cluster, namespace, "digits-ha"))
    assert names == sorted(f"digits-ha-{i}" for i in range(6))
    assert experiment["status"]["trials"]["created"] == 6
