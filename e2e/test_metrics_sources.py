"""Every metrics source, end to end: what the trainer writes is what the Trial shows.

The unit tests check each parser and the collector alone; only a real trial pod
checks the whole path of every ``trialTemplate.metrics.source``: the rendered
Job (wrapper, shared volume, ``KUBESWEEP_METRICS_PATH``, ``KUBESWEEP_REPORT_URL``),
the collector sidecar reading its source, the pushes to the operator's intake
and the termination message, and the operator writing Trial status.

Each case runs one small sweep whose trial program
(:mod:`trainers_for_sources`) reports a series that depends on the trial's
parameter ``k`` in that source's format: five steps of ``loss`` and
``accuracy``, and a ``noise`` metric nobody asked for. The Trial's objective,
metric summaries and curve must then equal, to the bit, what the program wrote.

On the process node every pod shares the host's network, so two trials at once
would fight over the Prometheus port the spec names and over the collector's
push port (9477, fixed by the operator): those two sources run their trials one
at a time, and the push case first waits until nothing else holds 9477.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cluster.kube import JSON, ApiError, path_for
from conftest import Cluster, wait_for
from stack import REPO, Stack, free_port
from sweeps import trial_template
from trainers_for_sources import Point, series

API = "kubesweep.io/v1alpha1"
NAME = "src"
#: The collector's push endpoint on the pod's loopback (the operator's default).
PUSH_PORT = 9477
COLLECTOR = "kubesweep-collector"
#: CRDs to install; ``KUBESWEEP_E2E_CRDS`` points at another directory (e.g. fresh from crdgen).
CRDS = Path(os.environ.get("KUBESWEEP_E2E_CRDS", REPO / "crds"))


@dataclass(frozen=True)
class Case:
    """One metrics source: its ``trialTemplate.metrics``, the writer and the parallelism."""

    metrics: dict[str, Any]
    writer: str
    parallel: int = 2
    writer_args: tuple[str, ...] = field(default_factory=tuple)


def cases() -> dict[str, Callable[[], Case]]:
    """Built when a test runs, so the Prometheus port is free at that time."""

    def prometheus() -> Case:
        port = free_port()
        return Case(
            {"source": "prometheus", "port": port, "intervalSeconds": 0.5},
            "prometheus",
            parallel=1,
            writer_args=(str(port),),
        )

    return {
        "stdout": lambda: Case({"source": "stdout"}, "stdout"),
        "file": lambda: Case({"source": "file", "path": "logs/train.log"}, "file"),
        "json": lambda: Case({"source": "json", "path": "metrics.jsonl"}, "json"),
        "tfevent": lambda: Case({"source": "tfevent", "path": "tensorboard"}, "tfevent"),
        "tfevent-tensorboardx": lambda: Case(
            {"source": "tfevent", "path": "runs/tbx"}, "tensorboardx"
        ),
        "prometheus": prometheus,
        "push": lambda: Case({"source": "push"}, "push", parallel=1),
    }


@pytest.fixture(scope="module")
def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    log_dir = Path(tmp_path_factory.mktemp("operator-logs"))
    with Stack(cluster.kubeconfig, log_dir) as running:
        yield running


def experiment(case: Case) -> dict[str, Any]:
    """The sweep of ``case``: two trials whose trainer writes its metrics as the case says."""
    manifest: dict[str, Any] = {
        "apiVersion": API,
        "kind": "Experiment",
        "metadata": {"name": NAME},
        "spec": {
            "objective": {
                "metric": "loss",
                "direction": "minimize",
                "additionalMetrics": ["accuracy"],
            },
            "algorithm": {"name": "random", "seed": 7},
            "parameters": [{"name": "k", "type": "int", "min": 1, "max": 1000}],
            "budget": {"maxTrials": 2, "parallelTrials": case.parallel, "maxFailedTrials": 0},
            "trialTemplate": trial_template(
                ["python", "e2e/trainers_for_sources.py"],
                [case.writer, "${params.k}", *case.writer_args],
                metrics=case.metrics,
            ),
        },
    }
    manifest["spec"]["trialTemplate"]["job"]["activeDeadlineSeconds"] = 180
    return manifest


def expected_status(points: list[Point]) -> dict[str, Any]:
    """The objective, summaries and curve a trial that wrote ``points`` must show."""
    losses = [p.loss for p in points]
    accuracies = [p.accuracy for p in points]
    last = points[-1]
    return {
        "objective": min(losses),  # minimize: the objective reduces by min
        "metrics": [
            {
                "name": "loss",
                "latest": last.loss,
                "min": min(losses),
                "max": max(losses),
                "step": last.step,
                "count": len(points),
            },
            {
                "name": "accuracy",
                "latest": last.accuracy,
                "min": min(accuracies),
                "max": max(accuracies),
                "step": last.step,
                "count": len(points),
            },
        ],
        "curve": [{"step": p.step, "value": p.loss} for p in points],
    }


def delivered(status: dict[str, Any]) -> dict[str, Any]:
    return {key: status.get(key) for key in ("objective", "metrics", "curve")}


def trials(cluster: Cluster, namespace: str) -> list[JSON]:
    return sorted(
        cluster.kube.list(path_for(API, "trials", namespace)),
        key=lambda t: int(t["spec"]["index"]),
    )


def ended(cluster: Cluster, namespace: str) -> dict[str, Any] | None:
    status = cluster.kube.get(path_for(API, "experiments", namespace, NAME)).get("status") or {}
    for condition in status.get("conditions", []):
        if condition["type"] in ("Succeeded", "Failed") and condition["status"] == "True":
            return dict(status)
    return None


def diagnosis(cluster: Cluster, namespace: str) -> str:
    """Experiment and trial status and every container's log tail, for failure messages."""
    lines = [f"experiment: {ended(cluster, namespace)}"]
    lines += [f"{t['metadata']['name']}: {t.get('status')}" for t in trials(cluster, namespace)]
    for pod in cluster.kube.list(path_for("v1", "pods", namespace)):
        name = pod["metadata"]["name"]
        for container in ("trainer", COLLECTOR):
            try:
                tail = cluster.logs(namespace, name, container)[-2000:]
            except (OSError, ApiError) as error:
                tail = f"(no log: {error})"
            lines.append(f"--- {name}/{container}:\n{tail}")
    return "\n".join(lines)


def push_port_free() -> bool:
    """Whether no process on this host listens on the push port (as the collector binds it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", PUSH_PORT))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("source", list(cases()))
def test_each_source_delivers_exactly_what_the_trainer_wrote(
    cluster: Cluster,
    namespace: str,
    apply: Callable[[JSON], list[JSON]],
    stack: Stack,
    source: str,
) -> None:
    case = cases()[source]()
    if case.writer == "tensorboardx" and importlib.util.find_spec("tensorboardX") is None:
        pytest.skip("tensorboardX (a dev dependency) is not installed")
    if case.writer == "push":
        wait_for(push_port_free, 180, 1.0, what=f"port {PUSH_PORT} to be free on this host")
    apply(experiment(case))
    status = wait_for(lambda: ended(cluster, namespace), 240, 1.0, what=f"{NAME} to end")

    end = next(c for c in status["conditions"] if c["type"] in ("Succeeded", "Failed"))
    assert (end["type"], end["reason"]) == ("Succeeded", "MaxTrialsReached"), diagnosis(
        cluster, namespace
    )
    found = trials(cluster, namespace)
    assert [t["metadata"]["name"] for t in found] == [f"{NAME}-0", f"{NAME}-1"]
    for trial in found:
        k = int(trial["spec"]["parameters"]["k"])
        written = series(k)
        assert trial["status"]["phase"] == "Succeeded", diagnosis(cluster, namespace)
        assert delivered(trial["status"]) == expected_status(written), diagnosis(cluster, namespace)
    best = min(found, key=lambda t: t["status"]["objective"])
    assert status["bestTrial"]["objective"] == best["status"]["objective"]
    assert status["trials"]["succeeded"] == 2
