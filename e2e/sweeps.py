"""Sweeps of known trial programs, shared by the operator's e2e tests.

Trial programs are one-line Python scripts printing ``loss=<value>`` (or one
value per step) so the metrics they report are known exactly, and each helper
reads what a test must judge: trials, the end condition, the metrics account.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chartstack
from cluster.kube import path_for
from conftest import IMAGE, Cluster, e2e_node_kind, wait_for
from stack import REPO, Stack

API = "kubesweep.io/v1alpha1"
#: loss = (x - 0.3)^2, printed after a sleep; exits with the given code. The sleep gives
#: the collector sidecar (a Python process) time to start before the trainer ends.
PROGRAM = (
    "import sys, time; x = float(sys.argv[1]); time.sleep(float(sys.argv[2])); "
    "print(f'loss={(x - 0.3) ** 2:.6f}', flush=True); sys.exit(int(sys.argv[3]))"
)


#: CRDs to install; ``KUBESWEEP_E2E_CRDS`` points at another directory (e.g. fresh from crdgen).
CRDS = Path(os.environ.get("KUBESWEEP_E2E_CRDS", REPO / "crds"))


def running_stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The CRDs installed, the suggestion service and the operator running beside the cluster.

    A test module's ``stack`` fixture yields from this, once per module.
    """
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    log_dir = Path(tmp_path_factory.mktemp("operator-logs"))
    with Stack(cluster.kubeconfig, log_dir) as running:
        yield running


#: The real node of the local cluster, where the chart runs the operator and the service.
ON_REAL_NODE = e2e_node_kind() == "real" and not os.environ.get("KUBESWEEP_E2E_KUBECONFIG")


def node_stack(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, *chart_flags: str
) -> Iterator[Stack | chartstack.InstalledChart]:
    """The operator and the service as the node runs them: the chart's pods on the real node.

    On the process node they are processes beside the cluster (:func:`running_stack`);
    on the real node a trial's collector must reach the operator's intake from a pod,
    so the chart (with ``chart_flags``) runs them as users do.
    """
    if ON_REAL_NODE:
        with chartstack.installed_chart(cluster, *chart_flags) as chart:
            yield chart
    else:
        yield from running_stack(cluster, tmp_path_factory)


def for_node(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with its trial containers in the built trainer image on the real node.

    The process node runs a container's command with this machine's Python whatever
    its image; the real node needs an image that holds Python, built here.
    """
    if not ON_REAL_NODE:
        return manifest
    pod = manifest["spec"]["trialTemplate"]["job"]["template"]["spec"]
    for container in pod["containers"]:
        container["image"] = chartstack.PUBLISHED_TRAINER
    return chartstack.localize_experiment(manifest)


def trial_template(
    command: list[str],
    args: list[str],
    *,
    metrics: dict[str, Any] | None = None,
    image: str = IMAGE,
    **fields: Any,
) -> dict[str, Any]:
    """A ``trialTemplate`` whose Job runs ``command`` with ``args`` in one container, ``trainer``.

    ``metrics`` defaults to the ``stdout`` source; ``fields`` adds trialTemplate fields
    (``checkpoints``, ...). Tests change the pod or the Job in the returned dict.
    """
    container = {"name": "trainer", "image": image, "command": command, "args": args}
    pod = {"restartPolicy": "Never", "containers": [container]}
    return {
        "primaryContainer": "trainer",
        "metrics": metrics or {"source": "stdout"},
        **fields,
        "job": {"template": {"spec": pod}},
    }


def experiment(
    name: str,
    budget: dict[str, Any],
    *,
    sleep: float = 2.0,
    exit_code: int = 0,
    target: float | None = None,
) -> dict[str, Any]:
    objective: dict[str, Any] = {"metric": "loss", "direction": "minimize"}
    if target is not None:
        objective["target"] = target
    return {
        "apiVersion": API,
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": objective,
            "algorithm": {"name": "random", "seed": 3},
            "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
            "budget": budget,
            "trialTemplate": trial_template(
                ["python", "-c", PROGRAM], ["${params.x}", str(sleep), str(exit_code)]
            ),
        },
    }


def get(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.kube.get(path_for(API, "experiments", namespace, name))


def trials(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return cluster.kube.list(path_for(API, "trials", namespace))


def ended(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    status = get(cluster, namespace, name).get("status") or {}
    for condition in status.get("conditions", []):
        if condition["type"] in ("Succeeded", "Failed") and condition["status"] == "True":
            return status
    return None


def wait_end(cluster: Cluster, namespace: str, name: str, timeout: float = 240) -> dict[str, Any]:
    return wait_for(lambda: ended(cluster, namespace, name), timeout, 1.0, what=f"{name} to end")


def describe(cluster: Cluster, namespace: str) -> str:
    """Experiments and trials of the namespace, for assertion messages."""
    lines = [
        str(e.get("status")) for e in cluster.kube.list(path_for(API, "experiments", namespace))
    ]
    lines += [f"{t['metadata']['name']}: {t.get('status')}" for t in trials(cluster, namespace)]
    return "\n".join(lines)


def end_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] in ("Succeeded", "Failed"))


#: Five steps, 0.4 s apart: loss = (x - 0.3)^2 + (5 - step) / 10, a different value at each
#: step, so an objective taken from fewer steps than the program printed shows.
STEPS_PROGRAM = (
    "import sys, time\n"
    "x = float(sys.argv[1])\n"
    "for step in range(1, 6):\n"
    "    time.sleep(0.4)\n"
    "    print(f'step={step} loss={(x - 0.3) ** 2 + (5 - step) / 10:.6f}', flush=True)\n"
)


def printed_last(x: float) -> float:
    """The loss STEPS_PROGRAM prints at its last step, as the collector parses it."""
    return float(f"{(x - 0.3) ** 2:.6f}")


def metrics_account(trial: dict[str, Any]) -> tuple[str, str] | None:
    for condition in trial["status"].get("conditions", []):
        if condition["type"] == "MetricsComplete":
            return condition["status"], condition["reason"]
    return None


def stalled(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    """The experiment's ``Stalled`` condition while it is true, else ``None``."""
    status = get(cluster, namespace, name).get("status") or {}
    return next(
        (
            c
            for c in status.get("conditions", [])
            if c["type"] == "Stalled" and c["status"] == "True"
        ),
        None,
    )


def ranked_program(rank: str, after: str = "") -> str:
    """The program of one pod of a multi-pod trial: its rank prints a loss only it gives.

    ``rank`` is a Python expression for the pod's rank (from the environment its
    controller sets); the pod prints ``loss = (x - 0.3)^2 + 100 rank`` three times, a
    second apart (``x`` is ``argv[1]``), so which rank's loss the trial took shows
    exactly; ``after`` is more lines (a pause, an exit status from ``argv``).
    """
    return (
        "import os, sys, time\n"
        f"x, rank = float(sys.argv[1]), {rank}\n"
        "for step in range(3):\n"
        "    time.sleep(1.0)\n"
        "    print(f'step={step} loss={(x - 0.3) ** 2 + 100 * rank:.6f}', flush=True)\n"
        f"{after}"
    )


def assert_deadline_stops_every_pod(
    cluster: Cluster, namespace: str, name: str, workload: str, pods_running: int
) -> None:
    """The one trial of Experiment ``name`` (a ``maxDuration`` budget) is stopped whole.

    Waits for its ``pods_running`` pods to run; then the deadline ends the experiment,
    the trial is ``EarlyStopped`` and its workload (the collection at path ``workload``)
    and every pod go.
    """
    pods = path_for("v1", "pods", namespace)
    wait_for(
        lambda: (
            len([p for p in cluster.kube.list(pods) if p["status"].get("phase") == "Running"])
            == pods_running
        ),
        120,
        what=f"the trial's {pods_running} pods running",
    )
    status = wait_end(cluster, namespace, name, timeout=120)
    assert end_condition(status)["reason"] == "DeadlineExceeded"
    (trial,) = trials(cluster, namespace)
    assert trial["status"]["phase"] == "EarlyStopped"
    wait_for(
        lambda: not cluster.kube.list(workload) and not cluster.kube.list(pods),
        120,
        1.0,
        what=f"the workload ({workload}) and every pod of it to go",
    )
