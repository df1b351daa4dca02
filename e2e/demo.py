"""The main job: a real sweep, end to end, on the local Kubernetes cluster.

``make demo`` runs this, the way users run kubesweep: it builds (once, cached) and
starts the local cluster with its **real node** (kubelet, containerd, runc), builds
the images from ``images/*/Dockerfile`` (cached by content), imports them into the
node, installs the Helm chart with them (``helm upgrade --install``, the operator
and the suggestion service as pods under ``restricted`` Pod Security), applies an
example Experiment whose trials run the example trainer image with the collector as
a native sidecar, shows its progress live, and prints the finished experiment with
its best trial.

Where the real node cannot run (not root, no cgroups, missing Debian packages:
:func:`node.realnode.unavailable_reason`), it says why and falls back to the process
node, with the operator and the suggestion service as local processes
(``stack.py``). ``--node`` (or ``KUBESWEEP_NODE``) picks one explicitly.

``--keep`` leaves the cluster (and the finished Experiment) running afterwards for a
look around with ``e2e/cluster/kubectl`` (``KUBESWEEP_NODE=real`` for the real
node's cluster); a cluster that was already running (``make dev-cluster``) is left
running anyway.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chartstack
from cluster import local
from cluster.kube import ApiError, Kube, path_for
from stack import REPO, Stack

NAMESPACE = "kubesweep-demo"
API = "kubesweep.io/v1alpha1"
console = Console()


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions", [])}


def _progress(experiment: dict[str, Any], trials: list[dict[str, Any]], elapsed: float) -> Table:
    status = experiment.get("status", {})
    counts = status.get("trials", {})
    best = status.get("bestTrial") or {}
    budget = experiment["spec"]["budget"]
    table = Table(
        title=f"{experiment['metadata']['name']}: {status.get('phase', 'Pending')}, "
        f"{counts.get('completed', 0)}/{budget['maxTrials']} trials done, "
        f"{counts.get('running', 0)} running, best {best.get('objective', '-')}, "
        f"{elapsed:.0f}s",
        title_justify="left",
    )
    for column in ("trial", "phase", "objective", "parameters"):
        table.add_column(column)
    for trial in sorted(trials, key=lambda t: int(t["spec"]["index"])):
        trial_status = trial.get("status", {})
        objective = trial_status.get("objective")
        table.add_row(
            trial["metadata"]["name"],
            trial_status.get("phase", "Pending"),
            "-" if objective is None else f"{objective:.4f}",
            " ".join(f"{k}={_short(v)}" for k, v in trial["spec"]["parameters"].items()),
        )
    return table


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def choose_node(asked: str | None) -> str:
    """The real node where it can run here; otherwise the process node, saying why."""
    if asked:
        return asked
    from node import realnode

    reason = realnode.unavailable_reason()
    if reason is None:
        return "real"
    console.print(
        f"[yellow]the real node cannot run here ({reason}): falling back to the process "
        "node, with the operator and the suggestion service as local processes[/]"
    )
    return "process"


def run(manifest: Path, timeout: float, keep: bool, node: str | None = None) -> int:
    kind = choose_node(node or os.environ.get("KUBESWEEP_NODE"))
    console.print(
        f"[bold]kubesweep demo[/]: starting the local cluster with the {kind} node "
        "(the first run builds it)"
    )
    if kind == "real":
        console.print("building the images (cached by content: seconds when nothing changed)")
        chartstack.build_images()
    existing = local.ClusterInfo.load(local.default_state_dir(kind))
    was_running = existing is not None and existing.running() and existing.node_kind == kind
    started_at = time.monotonic()
    # A cluster started here starts empty, so each demo installs and sweeps from scratch.
    info = local.up(node_kind=kind, fresh=not was_running)
    console.print(f"cluster up in {time.monotonic() - started_at:.0f}s")
    try:
        return _sweep(info, kind, manifest, timeout)
    finally:
        if keep or was_running:
            console.print(
                "the cluster keeps running: "
                f"`make dev-cluster-down{' NODE=real' if kind == 'real' else ''}` stops it"
            )
        else:
            local.down(node_kind=kind)


def _install_chart(info: local.ClusterInfo) -> None:
    """The built images into the node, then the chart with them, as a platform team would."""
    started = time.monotonic()
    chartstack.import_images(info)
    console.print(f"imported the built images into the node in {time.monotonic() - started:.0f}s")
    kubeconfig = f"--kubeconfig={info.kubeconfig}"
    seconds = chartstack.install_chart([info.helm, kubeconfig], [info.kubectl, kubeconfig])
    console.print(
        f"helm install: the operator and the suggestion service run as pods in "
        f"{chartstack.SYSTEM_NAMESPACE} (restricted Pod Security), ready in {seconds:.0f}s"
    )


def _sweep(info: local.ClusterInfo, kind: str, manifest: Path, timeout: float) -> int:
    kube = Kube.from_kubeconfig(info.kubeconfig)
    log_dir = Path(info.state_dir) / "logs"
    if kind == "real":
        _install_chart(info)
    else:
        local_kubectl = [info.kubectl, f"--kubeconfig={info.kubeconfig}"]
        subprocess.run(
            [
                *local_kubectl,
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                str(REPO / "crds"),
            ],
            check=True,
            capture_output=True,
        )
    try:
        kube.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        )
    except ApiError as error:
        if error.status != 409:
            raise
    document = yaml.safe_load(manifest.read_text())
    if kind == "real":
        document = chartstack.localize_experiment(document)
    name = document["metadata"]["name"]
    path = path_for(API, "experiments", NAMESPACE, name)
    if kube.get_or_none(path) is not None:
        kube.delete(path, propagationPolicy="Foreground")
        deadline = time.monotonic() + 60
        while kube.get_or_none(path) is not None and time.monotonic() < deadline:
            time.sleep(0.5)
    stack = None
    if kind != "real":
        stack = Stack(info.kubeconfig, log_dir, namespaces=(NAMESPACE,))
        console.print(f"starting the suggestion service and the operator (logs in {log_dir})")
        stack.start()
    try:
        document["metadata"]["namespace"] = NAMESPACE
        kube.create(path_for(API, "experiments", NAMESPACE), document)
        console.print(f"applied {manifest.relative_to(REPO)} as {NAMESPACE}/{name}")
        started = time.monotonic()
        experiment = kube.get(path)
        with Live(console=console, refresh_per_second=2) as live:
            while True:
                experiment = kube.get(path)
                trials = kube.list(
                    path_for(API, "trials", NAMESPACE),
                    labelSelector=f"kubesweep.io/experiment={name}",
                )
                live.update(_progress(experiment, trials, time.monotonic() - started))
                conditions = _conditions(experiment.get("status", {}))
                done = any(
                    conditions.get(ending, {}).get("status") == "True"
                    for ending in ("Succeeded", "Failed")
                )
                if done or time.monotonic() - started > timeout:
                    break
                time.sleep(1)
        return _report(experiment, timeout)
    finally:
        if stack is not None:
            stack.stop()


def _report(experiment: dict[str, Any], timeout: float) -> int:
    status = experiment.get("status", {})
    conditions = _conditions(status)
    end = conditions.get("Succeeded") or conditions.get("Failed")
    if end is None or end.get("status") != "True":
        console.print(f"[red]the experiment did not finish within {timeout:.0f}s[/]")
        return 1
    console.print(
        f"\n[bold]{experiment['metadata']['name']}[/]: {end['type']} ({end['reason']}: "
        f"{end.get('message', '')})"
    )
    best = status.get("bestTrial")
    if best:
        console.print("best trial:")
        console.print(yaml.safe_dump(best, sort_keys=False))
    return 0 if end["type"] == "Succeeded" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "manifest",
        nargs="?",
        type=Path,
        default=REPO / "examples" / "random.yaml",
        help="the Experiment to run (default: examples/random.yaml)",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the end")
    parser.add_argument("--keep", action="store_true", help="leave the cluster and operator up")
    parser.add_argument(
        "--node",
        choices=local.NODE_KINDS,
        default=None,
        help="real (default where it can run) or process",
    )
    args = parser.parse_args(argv)
    return run(args.manifest.resolve(), args.timeout, args.keep, args.node)


if __name__ == "__main__":
    raise SystemExit(main())
