"""The generated CRDs on a real API server: schema, defaults, CEL rules, immutability.

Every invalid manifest of the unit tests is sent to the API server too, and both
must refuse it with a message that names the field; a valid one is accepted by
both. That keeps the Python rules and their CEL twins from drifting apart.
"""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.kube import ApiError, path_for
from conftest import Cluster, wait_for
from crd import established
from kubesweep.api import ManifestError, parse_experiment
from tests.api.conftest import VALID
from tests.api.test_models import MISTAKES, set_path

CRDS = Path(__file__).resolve().parents[1] / "crds"
EXPERIMENTS = "kubesweep.io/v1alpha1"


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    for name in ("experiments.kubesweep.io", "trials.kubesweep.io"):
        wait_for(partial(established, cluster, name), 60, what=f"{name} established")


def _create(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(manifest)
    body["metadata"] = {"name": body["metadata"]["name"], "namespace": namespace}
    return cluster.kube.create(path_for(EXPERIMENTS, "experiments", namespace), body)


def test_valid_experiment_is_accepted_with_defaults(
    cluster: Cluster, crds: None, namespace: str
) -> None:
    manifest = copy.deepcopy(VALID)
    del manifest["spec"]["budget"]
    stored = _create(cluster, namespace, manifest)
    assert stored["spec"]["budget"] == {"maxTrials": 10, "parallelTrials": 1}
    assert stored["spec"]["trialTemplate"]["metrics"]["source"] == "stdout"
    assert stored["spec"]["parameters"][1]["log"] is False
    parse_experiment(stored)  # what the server stores is what Python accepts


#: Every Experiment the examples hold (CMA-ES and several objectives among them).
EXAMPLE_EXPERIMENTS = [
    (path.name, doc)
    for path in sorted((CRDS.parent / "examples").glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text())
    if doc and doc.get("kind") == "Experiment"
]


@pytest.mark.parametrize(
    "example", [doc for _, doc in EXAMPLE_EXPERIMENTS], ids=[n for n, _ in EXAMPLE_EXPERIMENTS]
)
def test_every_example_is_accepted_by_the_api_server_as_python_accepts_it(
    cluster: Cluster, crds: None, namespace: str, example: dict[str, Any]
) -> None:
    stored = _create(cluster, namespace, example)
    assert stored["spec"]["algorithm"]["name"] == example["spec"]["algorithm"]["name"]
    parse_experiment(stored)


@pytest.mark.parametrize(("path", "value", "expected"), MISTAKES)
def test_server_and_python_refuse_the_same_mistakes(
    cluster: Cluster, crds: None, namespace: str, path: tuple[Any, ...], value: Any, expected: str
) -> None:
    if path == ("trialTemplate", "metrics") and "filters" in value:
        pytest.skip("CEL cannot tell a valid regular expression; the operator refuses it")
    manifest = set_path(copy.deepcopy(VALID), path, value)
    with pytest.raises(ManifestError):
        parse_experiment(manifest)
    with pytest.raises(ApiError) as refused:
        _create(cluster, namespace, manifest)
    assert refused.value.status == 422
    message = refused.value.message
    field = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    assert expected in message or field in message, message


def test_unknown_fields_are_refused_by_strict_apply(
    cluster: Cluster, crds: None, namespace: str
) -> None:
    manifest = copy.deepcopy(VALID)
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"]["budget"]["maxTrail"] = 5
    result = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert result.returncode != 0
    assert "maxTrail" in result.stderr


def test_objective_parameters_algorithm_are_immutable_budget_is_not(
    cluster: Cluster, crds: None, namespace: str
) -> None:
    _create(cluster, namespace, VALID)
    path = path_for(EXPERIMENTS, "experiments", namespace, VALID["metadata"]["name"])
    for change in (
        {"objective": {"metric": "accuracy", "direction": "maximize"}},
        {"algorithm": {"name": "tpe"}},
        {"parameters": [{"name": "lr", "type": "float", "min": 0.001, "max": 0.1}]},
    ):
        with pytest.raises(ApiError) as refused:
            cluster.kube.patch(path, {"spec": change})
        assert "is immutable after creation" in refused.value.message
    patched = cluster.kube.patch(path, {"spec": {"budget": {"maxTrials": 80}}})
    assert patched["spec"]["budget"]["maxTrials"] == 80


def test_status_is_a_subresource_and_printer_columns_show_it(
    cluster: Cluster, crds: None, namespace: str
) -> None:
    _create(cluster, namespace, VALID)
    name = VALID["metadata"]["name"]
    path = path_for(EXPERIMENTS, "experiments", namespace, name)
    cluster.kube.patch(path, {"status": {"phase": "Running"}})
    assert "status" not in cluster.kube.get(path), "status is ignored on the main resource"
    cluster.kube.patch(
        path + "/status",
        {
            "status": {
                "phase": "Running",
                "trials": {"completed": 4, "running": 2},
                "bestTrial": {"name": f"{name}-3", "objective": 0.125, "parameters": {}},
                "bestSummary": "0.125",
            }
        },
    )
    table = cluster.kubectl("get", "experiments", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "PHASE", "BEST", "COMPLETED", "RUNNING"]
    assert row.split()[:5] == [name, "Running", "0.125", "4", "2"]
    assert "exp" in cluster.kubectl("api-resources", "--categories=kubesweep").stdout
