"""Faults of the cluster under a running sweep: nothing lost, nothing doubled, results exact.

Each case runs a sweep of a program that prints its loss at five steps, inflicts
one fault while trials run, and then asks the same of the end: exactly
``maxTrials`` trials, each Succeeded with the objective its program printed
last, counted from the collector's complete account.

The suite runs on both nodes of the local cluster. On the process node the
operator and the suggestion service are processes beside it (``stack.Stack``);
on the real node (``make test-e2e-real``) they are the chart's pods with the
built images, trial pods run the trainer image with the collector as a native
sidecar, and the faults reach them as they would on any cluster: the service's
Deployment scaled to zero, the operator's container killed. An unreachable
intake is covered in ``test_operator.py`` and ``test_realnode_chart.py``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from cluster import faults
from cluster.kube import path_for
from cluster.local import ClusterInfo
from conftest import Apply, Cluster, wait_for
from sweeps import (
    STEPS_PROGRAM,
    describe,
    end_condition,
    experiment,
    for_node,
    get,
    metrics_account,
    node_stack,
    printed_last,
    stalled,
    trials,
    wait_end,
)

#: How long etcd stays frozen: longer than the operator's and the node's request timeouts.
ETCD_FROZEN_SECONDS = 12
#: The chart's settings for these cases: a stall shows after 5 s, as the process stack's does.
CHART_FLAGS = (
    "--set",
    "operator.extraArgs[0]=--stall-after-seconds=5",
    "--set",
    "operator.suggestionTimeoutSeconds=10",
)


class Operated(Protocol):
    """The operator and the suggestion service, however they run."""

    def stop_suggestion(self) -> None: ...
    def start_suggestion(self) -> None: ...
    def restart_operator(self) -> None: ...


@pytest.fixture(scope="module")
def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operated]:
    yield from node_stack(cluster, tmp_path_factory, *CHART_FLAGS)


@pytest.fixture
def info(cluster: Cluster) -> ClusterInfo:
    if cluster.local is None:
        pytest.skip("faults are inflicted on the local cluster's processes only")
    return cluster.local


def stepped(name: str, budget: dict[str, Any], **template: Any) -> dict[str, Any]:
    manifest = experiment(name, budget)
    trial_template = manifest["spec"]["trialTemplate"]
    trial_template.update(template)
    container = trial_template["job"]["template"]["spec"]["containers"][0]
    container["command"] = ["python", "-c", STEPS_PROGRAM]
    container["args"] = ["${params.x}"]
    return for_node(manifest)


def running_trials(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return [
        t for t in trials(cluster, namespace) if (t.get("status") or {}).get("phase") == "Running"
    ]


def assert_exact(cluster: Cluster, namespace: str, name: str, max_trials: int) -> None:
    status = wait_end(cluster, namespace, name, timeout=300)
    assert end_condition(status)["reason"] == "MaxTrialsReached", describe(cluster, namespace)
    found = trials(cluster, namespace)
    assert sorted(t["metadata"]["name"] for t in found) == sorted(
        f"{name}-{i}" for i in range(max_trials)
    )
    assert status["trials"]["succeeded"] == max_trials, describe(cluster, namespace)
    for trial in found:
        x = float(trial["spec"]["parameters"]["x"])
        where = f"{trial['metadata']['name']}: {trial['status']}"
        assert trial["status"]["objective"] == printed_last(x), where
        assert trial["status"]["metrics"][0]["count"] == 5, where
        assert [p["step"] for p in trial["status"]["curve"]] == [1, 2, 3, 4, 5], where
        assert metrics_account(trial) == ("True", "CollectorSummary"), where
    best = min(found, key=lambda t: t["status"]["objective"])
    assert status["bestTrial"]["name"] == best["metadata"]["name"]


def test_the_api_server_restarted_mid_sweep(
    cluster: Cluster, info: ClusterInfo, namespace: str, apply: Apply, stack: Operated
) -> None:
    apply(stepped("apiserver", {"maxTrials": 8, "parallelTrials": 3}))
    wait_for(lambda: running_trials(cluster, namespace), 90, 0.2, what="a running trial")
    faults.restart(info, "kube-apiserver", lambda: cluster.kube.get_raw("/readyz") == "ok", 120)
    assert_exact(cluster, namespace, "apiserver", 8)


def test_etcd_frozen_mid_sweep(
    cluster: Cluster, info: ClusterInfo, namespace: str, apply: Apply, stack: Operated
) -> None:
    apply(stepped("etcd", {"maxTrials": 8, "parallelTrials": 3}))
    wait_for(lambda: running_trials(cluster, namespace), 90, 0.2, what="a running trial")
    with faults.frozen(info, "etcd"):
        time.sleep(ETCD_FROZEN_SECONDS)  # the fault's length, not a wait for a condition
    assert_exact(cluster, namespace, "etcd", 8)


def test_the_operator_killed_at_random_moments(
    cluster: Cluster, namespace: str, apply: Apply, stack: Operated
) -> None:
    """SIGKILLed five times mid-sweep: no trial lost or doubled, every objective exact."""
    rng = random.Random(11)
    apply(stepped("killed", {"maxTrials": 10, "parallelTrials": 3}))
    for _ in range(5):
        time.sleep(rng.uniform(0.5, 4.0))  # a random moment, not a wait for a condition
        stack.restart_operator()
    assert_exact(cluster, namespace, "killed", 10)


def test_a_node_lost_mid_trial(
    cluster: Cluster, info: ClusterInfo, namespace: str, apply: Apply, stack: Operated
) -> None:
    """The node dies with its trials' pods; each Job retries its pod once the node is back.

    On the real node the chart's own pods die with it and come back on it too.
    """
    gpus = cluster.gpus
    apply(stepped("lost-node", {"maxTrials": 4, "parallelTrials": 2}, retries=1))
    wait_for(lambda: running_trials(cluster, namespace), 90, 0.2, what="a running trial")
    pods = [p["metadata"]["name"] for p in cluster.kube.list(path_for("v1", "pods", namespace))]
    with faults.node_lost(info, gpus):
        # The machine is gone for good: its Node object goes, and the pod garbage
        # collector deletes the pods that were bound to it.
        cluster.kube.delete(path_for("v1", "nodes", None, info.node_name))

        def gone() -> bool:
            left = {
                p["metadata"]["name"] for p in cluster.kube.list(path_for("v1", "pods", namespace))
            }
            return not left.intersection(pods)

        wait_for(gone, 180, 1.0, what="the lost node's pods to be deleted")
    assert_exact(cluster, namespace, "lost-node", 4)


#: How long the suggestion service stays down: far past the stack's stall threshold (5 s).
SUGGESTION_DOWN_SECONDS = 60


def test_the_suggestion_service_down_for_a_minute_mid_sweep(
    cluster: Cluster, namespace: str, apply: Apply, stack: Operated
) -> None:
    """The sweep shows Stalled while the service is away, then ends exactly as planned."""
    apply(stepped("no-suggestions", {"maxTrials": 6, "parallelTrials": 2}))
    wait_for(lambda: running_trials(cluster, namespace), 90, 0.2, what="a running trial")
    down_since = time.monotonic()
    stack.stop_suggestion()
    try:
        condition = wait_for(
            lambda: stalled(cluster, namespace, "no-suggestions"),
            90,
            1.0,
            what="the experiment to show Stalled",
        )
        assert condition["reason"] == "SuggestionServiceUnavailable"
        assert get(cluster, namespace, "no-suggestions")["status"]["phase"] == "Running"
        # The rest of the outage: its length, not a wait for a condition.
        time.sleep(max(0.0, SUGGESTION_DOWN_SECONDS - (time.monotonic() - down_since)))
    finally:
        stack.start_suggestion()
    assert_exact(cluster, namespace, "no-suggestions", 6)
