"""Checkpoints between trials on a cluster: a claim on a hostPath volume, promotions and pbt.

The harness provisions a hostPath PersistentVolume bound to a claim in the
test's namespace; each sweep mounts the claim through ``trialTemplate.checkpoints``.
The trial program saves its step and loss after training and, when the trial
has a parent, first loads the parent's and says so (``resumed at step N``), so
the logs prove that a promoted ASHA trial and every pbt step after the first
continued its parent's training. Deleting an Experiment leaves the claim, and
the checkpoints on it, in place. On the process node the claim's volume is a
directory of this machine; on the real node it is a directory of the node.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster.kube import path_for
from conftest import Apply, Cluster, wait_for
from sweeps import (
    API,
    ON_REAL_NODE,
    describe,
    end_condition,
    for_node,
    node_stack,
    trial_template,
    trials,
    wait_end,
)

CLAIM = "checkpoints"

#: Trains from the parent's step (or 0) up to argv[1]; loss falls with x near 0.3.
PROGRAM = (
    "import json, os, sys, time\n"
    "target, x = int(sys.argv[1]), float(sys.argv[2])\n"
    "own = os.environ['KUBESWEEP_CHECKPOINT_DIR']\n"
    "parent = os.environ.get('KUBESWEEP_RESUME_FROM')\n"
    "step, loss = 0, 1.0 + (x - 0.3) ** 2\n"
    "if parent:\n"
    "    with open(os.path.join(parent, 'state.json')) as f:\n"
    "        state = json.load(f)\n"
    "    step, loss = state['step'], state['loss']\n"
    "    print(f'resumed at step {step}', flush=True)\n"
    "else:\n"
    "    print('started at step 0', flush=True)\n"
    "time.sleep(1.0)\n"
    "while step < target:\n"
    "    step += 1\n"
    "    loss = (x - 0.3) ** 2 + 0.8 * (loss - (x - 0.3) ** 2)\n"
    "    print(f'step={step} loss={loss:.6f}', flush=True)\n"
    "os.makedirs(own, exist_ok=True)\n"
    "with open(os.path.join(own, 'state.tmp'), 'w') as f:\n"
    "    json.dump({'step': step, 'loss': loss}, f)\n"
    "os.replace(os.path.join(own, 'state.tmp'), os.path.join(own, 'state.json'))\n"
)
STARTED = re.compile(r"^(started at step 0|resumed at step (\d+))$", re.MULTILINE)


@pytest.fixture(scope="module")
def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    yield from node_stack(cluster, tmp_path_factory)


@pytest.fixture
def claim(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Path]:
    """A hostPath PersistentVolume bound to the claim ``checkpoints``; its directory.

    On the real node the directory is made beforehand, writable by the images' user
    (a hostPath volume has no ``fsGroup``), and removed afterwards.
    """
    directory = Path("/tmp/kubesweep-e2e") / namespace if ON_REAL_NODE else tmp_path / "volume"
    if ON_REAL_NODE:
        directory.mkdir(parents=True)
        directory.chmod(0o777)
    volume = f"{namespace}-checkpoints"
    cluster.kube.create(
        "/api/v1/persistentvolumes",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"},
                "claimRef": {"namespace": namespace, "name": CLAIM},
            },
        },
    )
    cluster.kube.create(
        path_for("v1", "persistentvolumeclaims", namespace),
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": CLAIM},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    wait_for(
        lambda: (
            cluster.kube.get(path_for("v1", "persistentvolumeclaims", namespace, CLAIM))
            .get("status", {})
            .get("phase")
            == "Bound"
        ),
        60,
        what=f"claim {CLAIM} to be bound to {volume}",
    )
    yield directory
    cluster.kube.delete(f"/api/v1/persistentvolumes/{volume}")
    if ON_REAL_NODE:
        shutil.rmtree(directory)


def _experiment(
    name: str, algorithm: dict[str, Any], fidelity: dict[str, Any], budget: dict[str, Any]
) -> dict[str, Any]:
    return for_node(
        {
            "apiVersion": API,
            "kind": "Experiment",
            "metadata": {"name": name},
            "spec": {
                "objective": {"metric": "loss", "direction": "minimize"},
                "algorithm": algorithm,
                "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
                "fidelity": fidelity,
                "budget": budget,
                "trialTemplate": trial_template(
                    ["python", "-c", PROGRAM],
                    ["${params.epochs}", "${params.x}"],
                    checkpoints={"volumeClaim": CLAIM, "mountPath": "/checkpoints"},
                ),
            },
        }
    )


def _start_step(cluster: Cluster, namespace: str, trial: str) -> int:
    """The step the trial's program said it started at."""
    pods = cluster.kube.list(
        path_for("v1", "pods", namespace), labelSelector=f"kubesweep.io/trial={trial}"
    )
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    log = cluster.logs(namespace, pods[0]["metadata"]["name"], "trainer")
    match = STARTED.search(log)
    assert match is not None, log
    return int(match.group(2) or 0)


def _check_lineage(cluster: Cluster, namespace: str, found: list[dict[str, Any]]) -> int:
    """Every trial started at its parent's fidelity (or 0); the number that resumed."""
    by_name = {t["metadata"]["name"]: t for t in found}
    resumed = 0
    for trial in found:
        parent = trial["spec"].get("parent")
        start = _start_step(cluster, namespace, trial["metadata"]["name"])
        if parent is None:
            assert start == 0, trial["metadata"]["name"]
        else:
            assert start == round(by_name[parent]["spec"]["fidelity"]), trial["metadata"]["name"]
            resumed += 1
        assert trial["status"]["phase"] == "Succeeded", trial["status"]
    return resumed


def test_asha_promotions_resume_from_their_parents_checkpoints(
    cluster: Cluster, namespace: str, apply: Apply, stack: object, claim: Path
) -> None:
    apply(
        _experiment(
            "asha",
            {"name": "asha", "seed": 2},
            {"parameter": "epochs", "min": 1, "max": 9, "eta": 3},
            {"maxTrials": 8, "parallelTrials": 2},
        )
    )
    status = wait_end(cluster, namespace, "asha", timeout=400)
    assert end_condition(status)["type"] == "Succeeded", describe(cluster, namespace)
    found = trials(cluster, namespace)
    assert len(found) == 8
    assert _check_lineage(cluster, namespace, found) >= 1, "no trial was promoted"


def test_pbt_steps_load_their_parents_and_deleting_the_experiment_keeps_the_claim(
    cluster: Cluster, namespace: str, apply: Apply, stack: object, claim: Path
) -> None:
    apply(
        _experiment(
            "pbt",
            {"name": "pbt", "seed": 5, "settings": {"populationSize": 3}},
            {"parameter": "epochs", "min": 2, "max": 6},
            {"maxTrials": 9, "parallelTrials": 2},
        )
    )
    status = wait_end(cluster, namespace, "pbt", timeout=400)
    assert end_condition(status)["type"] == "Succeeded", describe(cluster, namespace)
    found = trials(cluster, namespace)
    assert len(found) == 3 * 3  # population times intervals
    assert _check_lineage(cluster, namespace, found) == 3 * 2

    cluster.kube.delete(
        path_for(API, "experiments", namespace, "pbt"), propagationPolicy="Background"
    )
    wait_for(lambda: not trials(cluster, namespace), 120, what="the trials to be deleted")
    assert cluster.kube.get_or_none(path_for("v1", "persistentvolumeclaims", namespace, CLAIM))
    if cluster.local is not None:
        saved = sorted(p.parent.name for p in claim.glob("pbt/*/state.json"))
        assert saved == sorted(t["metadata"]["name"] for t in found)
