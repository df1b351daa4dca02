"""The real node's decisions, read as values: nothing listens or asks beyond this machine.

No cluster is started: ``e2e/node/realconfig.py`` and ``cluster/local.py`` decide
addresses and configuration as pure functions, and these tests read them.
"""

from __future__ import annotations

import json
from pathlib import Path

from cluster.local import api_server_exposure
from node.realconfig import CLUSTER_DOMAIN, NodeNet, NodePaths, corefile, kubelet_config

NET = NodeNet()
PATHS = NodePaths(Path("/state/realnode"))


def test_cluster_dns_binds_the_node_address_and_forwards_nowhere() -> None:
    text = corefile(NET, kubeconfig=Path("/state/dns.kubeconfig"), health_port=1, ready_port=2)
    assert f"bind {NET.node_ip}" in text
    assert "forward" not in text
    assert f"kubernetes {CLUSTER_DOMAIN}" in text
    assert "health 127.0.0.1:1" in text
    assert "ready 127.0.0.1:2" in text


def test_pods_ask_the_cluster_dns_on_the_node_address() -> None:
    config = json.loads(
        kubelet_config(
            NET,
            PATHS,
            port=1,
            healthz_port=2,
            ca=Path("ca.crt"),
            tls_cert=Path("tls.crt"),
            tls_key=Path("tls.key"),
        )
    )
    assert config["clusterDNS"] == [NET.node_ip]
    assert config["clusterDomain"] == CLUSTER_DOMAIN


def test_the_api_server_advertises_the_node_address_only_with_the_real_node() -> None:
    assert api_server_exposure("process") == [
        "--advertise-address=127.0.0.1",
        "--endpoint-reconciler-type=none",
    ]
    assert api_server_exposure("real") == [
        f"--advertise-address={NET.node_ip}",
        "--endpoint-reconciler-type=lease",
    ]
