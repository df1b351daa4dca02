"""Two operator replicas started the chart's way: one acts, the sweep is neither doubled nor lost.

The operator flags come from the chart rendered with ``operator.replicas=2``:
``--peering`` and ``--intake-service``, and no ``--priority`` (the replicas of
one Deployment cannot be told apart), so each replica derives its own. Both
run as processes beside the local cluster, with a documentation address
(192.0.2.0/24) as their pod IP: nothing routes to it here, but the intake
Service's EndpointSlice must name the active replica's address, and the other's
after a takeover. The active one is killed mid-sweep; the standby finishes it
with exactly ``maxTrials`` trials.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.kube import path_for
from conftest import Apply, Cluster, wait_for
from stack import REPO, Stack
from sweeps import experiment, trials, wait_end

CHART = REPO / "charts" / "kubesweep"
KUBE_VERSION = "v1.37.2"
RELEASE = "ha"
POD_IPS = ("192.0.2.10", "192.0.2.20")
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _rendered(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    out = cluster.helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "operator.replicas=2",
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _charts_ha_flags(docs: list[dict[str, Any]]) -> tuple[str, ...]:
    """The flags by which the chart makes its operator replicas peers."""
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")
    )
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--priority") for a in args), args
    flags = tuple(a for a in args if a.startswith(("--peering=", "--intake-service=")))
    assert len(flags) == 2, args
    return flags


def _peering_crds(cluster: Cluster, docs: list[dict[str, Any]]) -> None:
    crds = [
        d
        for d in docs
        if d["kind"] == "CustomResourceDefinition" and d["spec"]["group"] == "kopf.dev"
    ]
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(crds))
    for crd in crds:
        name = crd["metadata"]["name"]
        wait_for(
            partial(cluster.kube.get_or_none, f"{CRD_PATH}/{name}"),
            30,
            what=f"CRD {name} to be served",
        )


def _routed_to(cluster: Cluster, namespace: str, service: str) -> str | None:
    """The address the intake Service's EndpointSlice names, if any."""
    found = cluster.kube.get_or_none(
        path_for("discovery.k8s.io/v1", "endpointslices", namespace, service)
    )
    if not found:
        return None
    addresses = [a for e in found.get("endpoints") or [] for a in e["addresses"]]
    return addresses[0] if len(addresses) == 1 else None


@pytest.mark.slow
def test_a_standby_takes_over_without_duplicating_trials(
    cluster: Cluster, namespace: str, apply: Apply, tmp_path: Path
) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    docs = _rendered(cluster, namespace)
    _peering_crds(cluster, docs)
    flags = _charts_ha_flags(docs)
    peering_name = next(f for f in flags if f.startswith("--peering=")).partition("=")[2]
    service = next(f for f in flags if f.startswith("--intake-service=")).partition("=")[2]

    def replica_flags(pod_ip: str) -> tuple[str, ...]:
        return (*flags, f"--pod-ip={pod_ip}", f"--pod-namespace={namespace}")

    first = Stack(
        cluster.kubeconfig,
        tmp_path / "first",
        namespaces=(namespace,),
        extra_operator_args=replica_flags(POD_IPS[0]),
    )
    first.start()
    second = Stack(
        cluster.kubeconfig,
        tmp_path / "second",
        namespaces=(namespace,),
        suggestion_port=first.suggestion_port,
        token_key=first.token_key,
        extra_operator_args=replica_flags(POD_IPS[1]),
    )
    replicas = dict(zip(POD_IPS, (first, second), strict=True))
    try:
        second.start_operator()
        peering_path = path_for("kopf.dev/v1", "kopfpeerings", namespace, peering_name)

        def announced() -> dict[str, Any] | None:
            peers: dict[str, Any] = cluster.kube.get(peering_path).get("status") or {}
            return peers if len(peers) >= 2 else None

        peers = wait_for(announced, 60, what="both operators announced in the peering object")
        priorities = [peer["priority"] for peer in peers.values()]
        assert len(set(priorities)) == len(priorities), f"equal priorities pause all: {peers}"

        # Exactly one replica is active, and the intake Service routes to it.
        active_ip = wait_for(
            lambda: _routed_to(cluster, namespace, service),
            60,
            what=f"the active replica to route the intake Service {service} to itself",
        )
        standby_ip = next(ip for ip in POD_IPS if ip != active_ip)
        active = replicas[active_ip]
        apply(experiment("ha", {"maxTrials": 6, "parallelTrials": 2}, sleep=3.0))
        wait_for(lambda: len(trials(cluster, namespace)) >= 2, 120, what="first trials")
        assert _routed_to(cluster, namespace, service) == active_ip

        active.kill_operator()  # SIGKILL: its keep-alive must run out before the takeover
        wait_for(
            lambda: _routed_to(cluster, namespace, service) == standby_ip,
            150,
            what=f"the intake Service {service} to route to the standby after the takeover",
        )
        status = wait_end(cluster, namespace, "ha", timeout=300)
    finally:
        second.stop()
        first.stop()
    names = sorted(t["metadata"]["name"] for t in trials(cluster, namespace))
    assert names == sorted(f"ha-{i}" for i in range(6))
    assert status["trials"]["created"] == 6
    assert status["trials"]["succeeded"] == 6
    logs = {ip: (tmp_path / name / "operator.log").read_text() for ip, name in
            [(POD_IPS[0], "first"), (POD_IPS[1], "second")]}  # fmt: skip
    for log in logs.values():
        assert "Pausing all operators" not in log, log[-3000:]  # never a tie
        assert log.count("is now active") == 1, log[-3000:]  # each became active once
    # The active one was never paused; the standby waited (kopf starts it paused
    # when a peer outranks it) and resumed when the active peer was gone.
    assert "Pausing operations" not in logs[active_ip], logs[active_ip][-3000:]
    assert "Resuming operations after the pause" in logs[standby_ip], logs[standby_ip][-3000:]
