"""The ``kubesweep`` cluster commands and ``kubesweep.Client`` against a real API server.

These tests need the CRDs but not the operator: they create an Experiment with
the Client, create its Trials and patch statuses directly (as the operator
would), run a pod that prints a failure for the failed trial, and then read it
all back through the commands, exactly as a user would with a kubeconfig.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.kube import path_for
from conftest import IMAGE, Cluster, wait_for

API = "kubesweep.io/v1alpha1"
REPO = Path(__file__).resolve().parent.parent
CRDS = Path(os.environ.get("KUBESWEEP_E2E_CRDS", REPO / "crds"))
NOW = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    wait_for(
        lambda: cluster.kube.get_or_none(f"/apis/{API}/experiments"),
        60,
        what="Experiment CRD established",
    )


def manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"metric": "loss", "direction": "minimize", "additionalMetrics": ["acc"]},
            "algorithm": {"name": "random", "seed": 1},
            "parameters": [
                {"name": "lr", "type": "float", "min": 0.001, "max": 0.1, "log": True},
                {"name": "opt", "type": "categorical", "values": ["adam", "sgd"]},
            ],
            "budget": {"maxTrials": 4, "parallelTrials": 2},
            "trialTemplate": {
                "primaryContainer": "main",
                "job": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": IMAGE,
                                    "command": ["python", "-c", "print('loss=1')"],
                                }
                            ]
                        }
                    }
                },
            },
        },
    }


def trial_status(phase: str, loss: float | None, message: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "reason": phase, "message": message}
    if loss is not None:
        status.update(
            objective=loss,
            metrics=[
                {
                    "name": "loss",
                    "latest": loss,
                    "min": loss,
                    "max": loss + 1,
                    "step": 3,
                    "count": 3,
                },
                {"name": "acc", "latest": 1 - loss, "min": 0.1, "max": 1 - loss, "count": 3},
            ],
            curve=[{"step": s, "value": loss + 1.0 / s} for s in (1, 2, 3)],
            startTime=NOW,
            completionTime=NOW,
        )
    return status


def kubesweep(cluster: Cluster, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "kubesweep.cli.main", *args, "-n", namespace],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )


@pytest.fixture
def sweep(cluster: Cluster, namespace: str, crds: None) -> str:
    """An Experiment with three Trials (two succeeded, one failed with a log) and its status."""
    from kubesweep import Client

    client = Client(namespace, kubeconfig=cluster.kubeconfig)
    created = client.create(manifest("cli"))
    assert created.metadata.name == "cli"
    kube = cluster.kube
    params = [{"lr": 0.01, "opt": "adam"}, {"lr": 0.05, "opt": "sgd"}, {"lr": 0.002, "opt": "sgd"}]
    results = [("Succeeded", 0.25), ("Succeeded", 0.5), ("Failed", None)]
    for index, (parameters, (phase, loss)) in enumerate(zip(params, results, strict=True)):
        name = f"cli-{index}"
        kube.create(
            path_for(API, "trials", namespace),
            {
                "apiVersion": API,
                "kind": "Trial",
                "metadata": {"name": name, "labels": {"kubesweep.io/experiment": "cli"}},
                "spec": {"experiment": "cli", "index": index, "parameters": parameters},
            },
        )
        kube.patch(
            path_for(API, "trials", namespace, name) + "/status",
            {"status": trial_status(phase, loss, "exit code 3" if loss is None else "")},
        )
    kube.create(
        path_for("v1", "pods", namespace),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "cli-2-abcde", "labels": {"kubesweep.io/trial": "cli-2"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": IMAGE,
                        "command": ["python", "-c", "print('boom: out of memory')"],
                    }
                ],
            },
        },
    )
    wait_for(
        lambda: (
            kube.get(path_for("v1", "pods", namespace, "cli-2-abcde"))["status"].get("phase")
            in ("Succeeded", "Failed")
        ),
        90,
        what="the failed trial's pod ran",
    )
    status = {
        "phase": "Running",
        "startTime": NOW,
        "trials": {"created": 3, "succeeded": 2, "failed": 1, "completed": 3},
        "bestTrial": {
            "name": "cli-0",
            "parameters": params[0],
            "objective": 0.25,
            "metrics": {"loss": 0.25, "acc": 0.75},
        },
        "conditions": [
            {
                "type": "Reconciling",
                "status": "True",
                "reason": "TrialsRunning",
                "message": "3/4 trials completed",
                "lastTransitionTime": NOW,
            }
        ],
        "message": "3/4 trials completed, 0 running, 0 pending",
    }
    kube.patch(path_for(API, "experiments", namespace, "cli") + "/status", {"status": status})
    return namespace


def test_get_lists_phase_best_and_progress(cluster: Cluster, sweep: str) -> None:
    result = kubesweep(cluster, sweep, "get")
    assert result.returncode == 0, result.stderr
    assert "cli" in result.stdout
    assert "Running" in result.stdout
    assert "0.25" in result.stdout
    assert "3/4" in result.stdout
    as_yaml = yaml.safe_load(kubesweep(cluster, sweep, "get", "cli", "-o", "yaml").stdout)
    assert as_yaml["status"]["bestTrial"]["name"] == "cli-0"


def test_describe_shows_best_conditions_and_the_failed_trials_log(
    cluster: Cluster, sweep: str
) -> None:
    result = kubesweep(cluster, sweep, "describe", "cli")
    assert result.returncode == 0, result.stderr
    for text in ("Best trial cli-0", "TrialsRunning", "Trial cli-2 Failed", "boom: out of memory"):
        assert text in result.stdout, text


def test_trials_sorted_by_objective_and_by_parameter(cluster: Cluster, sweep: str) -> None:
    result = kubesweep(cluster, sweep, "trials", "cli", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert [r["name"] for r in json.loads(result.stdout)] == ["cli-0", "cli-1", "cli-2"]
    by_lr = json.loads(
        kubesweep(cluster, sweep, "trials", "cli", "--sort-by", "lr", "-o", "json").stdout
    )
    assert [r["name"] for r in by_lr] == ["cli-2", "cli-0", "cli-1"]
    table = kubesweep(cluster, sweep, "trials", "cli")
    assert "ACC" in table.stdout
    assert "0.75" in table.stdout


def test_logs_of_a_trial(cluster: Cluster, sweep: str) -> None:
    result = kubesweep(cluster, sweep, "logs", "cli-2")
    assert result.returncode == 0, result.stderr
    assert "boom: out of memory" in result.stdout


def test_best_as_env_and_into_a_configmap(cluster: Cluster, sweep: str) -> None:
    env = kubesweep(cluster, sweep, "best", "cli", "-o", "env")
    assert env.returncode == 0, env.stderr
    assert "KUBESWEEP_PARAM_LR=0.01" in env.stdout
    stored = kubesweep(cluster, sweep, "best", "cli", "-o", "json", "--to-configmap", "winner")
    assert stored.returncode == 0, stored.stderr
    configmap = cluster.kube.get(path_for("v1", "configmaps", sweep, "winner"))
    assert configmap["data"]["opt"] == "adam"
    assert configmap["metadata"]["annotations"]["kubesweep.io/trial"] == "cli-0"
    again = kubesweep(cluster, sweep, "best", "cli", "--to-configmap", "winner")
    assert again.returncode == 0, again.stderr


def test_watch_ends_with_the_experiment(cluster: Cluster, sweep: str) -> None:
    done = {
        "status": {
            "phase": "Succeeded",
            "conditions": [
                {
                    "type": "Succeeded",
                    "status": "True",
                    "reason": "MaxTrialsReached",
                    "message": "all trials finished",
                    "lastTransitionTime": NOW,
                }
            ],
        }
    }
    cluster.kube.patch(path_for(API, "experiments", sweep, "cli") + "/status", done)
    result = kubesweep(cluster, sweep, "watch", "cli", "--interval", "0.5")
    assert result.returncode == 0, result.stderr
    assert "Succeeded (MaxTrialsReached)" in result.stdout


def test_report_from_the_cluster(cluster: Cluster, sweep: str, tmp_path: Path) -> None:
    out = tmp_path / "cli.html"
    result = kubesweep(cluster, sweep, "report", "cli", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "plot-parallel" in out.read_text()


def test_client_reads_typed_models_and_records(cluster: Cluster, sweep: str) -> None:
    from kubesweep import Client

    client = Client(sweep, kubeconfig=cluster.kubeconfig)
    assert [e.metadata.name for e in client.list()] == ["cli"]
    experiment = client.get("cli")
    assert experiment.status is not None
    assert experiment.status.best_trial is not None
    records = client.trials("cli", sort_by="objective").to_records()
    assert records[0]["name"] == "cli-0"
    assert records[0]["params.opt"] == "adam"
    assert client.best("cli") == {
        "experiment": "cli",
        "trial": "cli-0",
        "objective": {"metric": "loss", "value": 0.25},
        "parameters": {"lr": 0.01, "opt": "adam"},
        "metrics": {"loss": 0.25, "acc": 0.75},
    }
    client.delete("cli")
    wait_for(
        lambda: cluster.kube.get_or_none(path_for(API, "experiments", sweep, "cli")) is None,
        30,
        what="experiment deleted",
    )
