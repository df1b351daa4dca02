"""The process node's command line: the node, its kubelet API, its loops, until a signal.

``e2e/cluster/local.py`` runs it as ``python -m node.processnode`` (``e2e/`` on
``PYTHONPATH``) with the node's serving certificate; SIGTERM or SIGINT stops
the node and kills its pods' processes.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from cluster.kube import Kube, load_kubeconfig
from node.processnode.kubelet import ProcessNode
from node.processnode.kubeletapi import serve_logs

log = logging.getLogger(__name__)


def iter_capacity(items: list[str]) -> Iterator[tuple[str, str]]:
    """``resource=quantity`` flags as (resource, quantity) pairs."""
    for it in items:
        k, _, v = it.partition("=")
        yield k, v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m node.processnode",
        description="a Kubernetes node that runs pods as processes",
    )
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--name", default="kubesweep-node")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--gpus", type=int, default=4)
    ap.add_argument(
        "--capacity",
        action="append",
        default=[],
        help="resource=quantity, e.g. cpu=16 (repeatable)",
    )
    ap.add_argument("--port", type=int, default=0, help="kubelet API port (logs)")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s"
    )
    capacity = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    capacity.update(iter_capacity(args.capacity))
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    node = ProcessNode(
        Kube(load_kubeconfig(args.kubeconfig)), args.name, state, capacity, args.gpus, args.port
    )
    if args.tls_cert and args.tls_key:
        serve_logs(node, args.tls_cert, args.tls_key, args.client_ca)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        node.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    node.register()
    log.info("node %s registered (capacity %s)", node.name, node.capacity)
    threading.Thread(target=node.heartbeat_loop, name="heartbeat", daemon=True).start()
    threading.Thread(target=node.watch_pods, name="pod-watch", daemon=True).start()
    node.stop.wait()
    log.info("node %s stopping: killing its pods' processes", node.name)
    node.shutdown()
    return 0
