"""Two operator replicas with kopf peering: one acts, the sweep is neither doubled nor lost.

The chart runs standbys with ``--peering`` when ``operator.replicas > 1``; the
operator creates the peering object at start-up. Here two operators share one
namespace and one suggestion service; the active one is then killed, and the
standby takes over and finishes the sweep with exactly ``maxTrials`` trials.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.kube import path_for
from conftest import Cluster, wait_for
from stack import REPO, Stack
from test_operator import experiment, trials, wait_end

CHART = REPO / "charts" / "kubesweep"


def _peering_crds(cluster: Cluster) -> None:
    rendered = cluster.helm(
        "template",
        "ha",
        str(CHART),
        "--kube-version",
        "v1.37.2",
        "--show-only",
        "templates/peering-crds.yaml",
        "--set",
        "operator.replicas=2",
    ).stdout
    cluster.kubectl("apply", "--server-side", "-f", "-", input=rendered)
    for name in ("kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        wait_for(
            lambda name=name: cluster.kube.get_or_none(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            ),
            30,
        )


@pytest.mark.slow
def test_a_standby_takes_over_without_duplicating_trials(
    cluster: Cluster, namespace: str, apply, tmp_path: Path
) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    _peering_crds(cluster)
    peering = ("--peering=kubesweep-ha",)
    first = Stack(
        cluster.kubeconfig,
        tmp_path / "first",
        namespaces=(namespace,),
        extra_operator_args=(*peering, "--priority=10"),
    )
    first.start()
    second = Stack(
        cluster.kubeconfig,
        tmp_path / "second",
        namespaces=(namespace,),
        suggestion_port=first.suggestion_port,
        token_key=first.token_key,
        extra_operator_args=(*peering, "--priority=5"),
    )
    try:
        second.start_operator()
        peering_path = path_for("kopf.dev/v1", "kopfpeerings", namespace, "kubesweep-ha")
        wait_for(
            lambda: len(cluster.kube.get(peering_path).get("status") or {}) >= 2,
            60,
            what="both operators announced in the peering object",
        )
        apply(experiment("ha", {"maxTrials": 6, "parallelTrials": 2}, sleep=3.0))
        wait_for(lambda: len(trials(cluster, namespace)) >= 2, 120, what="first trials")
        first.kill_operator()  # the active one (higher priority) dies
        status = wait_end(cluster, namespace, "ha", timeout=300)
    finally:
        second.stop()
        first.stop()
    names = sorted(t["metadata"]["name"] for t in trials(cluster, namespace))
    assert names == sorted(f"ha-{i}" for i in range(6))
    assert status["trials"]["created"] == 6
    assert status["trials"]["succeeded"] == 6
    # The standby was paused while the active peer lived, and resumed when it died.
    standby_log = (tmp_path / "second" / "operator.log").read_text()
    assert "Resuming operations after the pause" in standby_log, standby_log[-3000:]
