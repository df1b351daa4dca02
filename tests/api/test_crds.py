"""The CRDs in ``crds/`` are what the models generate, and are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesweep.api import crdgen
from kubesweep.api.experiment import (
    ExperimentSpec,
    Fidelity,
    Objective,
    Parameter,
    TrialTemplate,
)

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_committed_crds_are_up_to_date() -> None:
    generated = crdgen.render_all()
    on_disk = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert on_disk == generated, "crds/ is stale: run `make crds` and commit the result"


def test_chart_crds_are_up_to_date() -> None:
    chart = CRDS.parent / crdgen.CHART_TEMPLATE
    assert chart.read_text() == crdgen.chart_template(), "run `make crds` and commit"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.get("properties", {}).items():
            found += _walk(value, f"{path}.{key}")
        if "items" in node:
            found += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


@pytest.mark.parametrize("crd", [crdgen.experiment_crd(), crdgen.trial_crd()])
def test_schema_is_structural(crd: dict[str, Any]) -> None:
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert not {"$ref", "oneOf", "allOf", "$defs", "title"} & set(node), path
        for option in node.get("anyOf", []):
            assert set(option) <= {"properties", "required", "not"}, path
            assert set(option.get("properties", {})) <= set(node["properties"]), path
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            assert "type" in node, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["categories"] == ["kubesweep"]
    assert crd["spec"]["names"]["shortNames"]


def test_only_open_objects_are_the_workloads_and_scalar_values() -> None:
    schema = crdgen.experiment_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    open_paths = [
        path
        for path, node in _walk(schema)
        if node.get("x-kubernetes-preserve-unknown-fields") and node.get("type") == "object"
    ]
    assert open_paths, "the JobSpec must stay open"
    workloads = (".spec.trialTemplate.job", ".spec.trialTemplate.resource.spec")
    assert all(p.startswith(workloads) or p == ".metadata" for p in open_paths), open_paths


def _validations(node: dict[str, Any]) -> list[str]:
    return [v["rule"] for v in node.get("x-kubernetes-validations", [])]


def test_every_python_rule_is_in_the_crd() -> None:
    spec = crdgen.experiment_spec_schema()
    all_rules = {rule for _, node in _walk(spec) for rule in _validations(node)}
    for model in (ExperimentSpec, Objective, Parameter, Fidelity, TrialTemplate):
        for rule in model.cel_rules:
            if rule.cel is None:
                assert model.structural_rules, f"{model.__name__}: {rule.message}"
            else:
                assert rule.cel in all_rules, f"{model.__name__}: {rule.cel}"


def test_immutable_fields_and_editable_budget() -> None:
    spec = crdgen.experiment_spec_schema()
    for field in ("objective", "algorithm", "parameters"):
        assert "self == oldSelf" in _validations(spec["properties"][field])
    assert "self == oldSelf" not in _validations(spec["properties"]["budget"])


def test_defaults_reach_the_schema() -> None:
    spec = crdgen.experiment_spec_schema()
    budget = spec["properties"]["budget"]
    assert budget["default"] == {"maxTrials": 10, "parallelTrials": 1}
    assert budget["properties"]["maxTrials"]["default"] == 10
    assert budget["properties"]["parallelTrials"]["default"] == 1
    assert spec["properties"]["algorithm"]["properties"]["name"]["default"] == "random"


def test_printer_columns() -> None:
    columns = crdgen.experiment_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    names = [c["name"] for c in columns]
    assert names[:2] == ["Phase", "Best"]
    assert {"Completed", "Max", "Age"} <= set(names)


def test_crd_files_are_valid_yaml_with_header() -> None:
    for path in CRDS.glob("*.yaml"):
        assert path.read_text().startswith("# Generated")
        assert yaml.safe_load(path.read_text())["kind"] == "CustomResourceDefinition"
