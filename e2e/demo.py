"""The main job: a real sweep, end to end, on the local Kubernetes cluster.

``make demo`` runs this. It builds (once) and starts the local cluster, installs
the CRDs, starts the suggestion service and the operator, applies an example
Experiment, shows its progress live, and prints the finished experiment with its
best trial. ``KUBESWEEP_E2E_KUBECONFIG`` points it at another cluster instead;
``--keep`` leaves the cluster (and the finished Experiment) running afterwards
for a look around with ``e2e/cluster/kubectl``; a cluster that was already
running (``make dev-cluster``) is left running anyway.
"""

from __future__ import annotations

import argparse
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


def run(manifest: Path, timeout: float, keep: bool) -> int:
    console.print("[bold]kubesweep demo[/]: starting the local cluster (the first run builds it)")
    existing = local.ClusterInfo.load(local.default_state_dir())
    was_running = existing is not None and existing.running()
    info = local.up()
    kube = Kube.from_kubeconfig(info.kubeconfig)
    log_dir = Path(info.state_dir) / "logs"
    local_kubectl = [info.kubectl, f"--kubeconfig={info.kubeconfig}"]
    subprocess.run(
        [*local_kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds")],
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
    name = document["metadata"]["name"]
    path = path_for(API, "experiments", NAMESPACE, name)
    if kube.get_or_none(path) is not None:
        kube.delete(path, propagationPolicy="Foreground")
        deadline = time.monotonic() + 60
        while kube.get_or_none(path) is not None and time.monotonic() < deadline:
            time.sleep(0.5)
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
                    conditions.get(kind, {}).get("status") == "True"
                    for kind in ("Succeeded", "Failed")
                )
                if done or time.monotonic() - started > timeout:
                    break
                time.sleep(1)
        return _report(experiment, timeout)
    finally:
        stack.stop()
        if keep or was_running:
            console.print("the cluster keeps running: `make dev-cluster-down` stops it")
        else:
            local.down()


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
    args = parser.parse_args(argv)
    return run(args.manifest.resolve(), args.timeout, args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
