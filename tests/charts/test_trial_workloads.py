"""Trial workloads beyond Jobs: each kind a platform team enables adds exactly its RBAC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubesweep.operator.workloads import JOBSET, WorkloadResource

from .conftest import Render
from .test_rendering import _container, _of_kind, _one, _operator_config

PYTORCH = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "plural": "pytorchjobs"}
VERBS = ["get", "list", "watch", "create", "delete"]


def _rules(docs: list[dict[str, Any]], kind: str = "ClusterRole") -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = _one(docs, kind, "-operator")["rules"]
    return rules


def _workload_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    core = {"kubesweep.io", "batch", "", "events.k8s.io", "kopf.dev"}
    return [r for r in rules if r["apiGroups"][0] not in core]


def _values(tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    return str(path)


def test_by_default_only_jobs_are_granted_and_no_kind_is_passed(
    render: Render, tmp_path: Path
) -> None:
    docs = render()
    assert _workload_rules(_rules(docs)) == []
    container = _container(docs, "operator")
    assert not any(a.startswith("--trial-workloads") for a in container["args"])
    assert _operator_config(container, tmp_path).trial_workloads == ()


def test_jobsets_add_exactly_the_jobset_verbs(render: Render, tmp_path: Path) -> None:
    docs = render("--set", "trialWorkloads.jobSet=true")
    assert _workload_rules(_rules(docs)) == [
        {"apiGroups": ["jobset.x-k8s.io"], "resources": ["jobsets"], "verbs": VERBS}
    ]
    assert _operator_config(_container(docs, "operator"), tmp_path).trial_workloads == (JOBSET,)


def test_each_custom_resource_adds_its_own_verbs_in_namespaced_scope_too(
    render: Render, tmp_path: Path
) -> None:
    values = {
        "scope": "namespaced",
        "watchNamespaces": ["team-a"],
        "trialWorkloads": {"jobSet": True, "customResources": [PYTORCH]},
    }
    docs = render("-f", _values(tmp_path, values))
    roles = [r for r in _of_kind(docs, "Role") if r["metadata"]["name"].endswith("-operator")]
    assert len(roles) == 2  # the release namespace and team-a
    for role in roles:
        assert _workload_rules(role["rules"]) == [
            {"apiGroups": ["jobset.x-k8s.io"], "resources": ["jobsets"], "verbs": VERBS},
            {"apiGroups": ["kubeflow.org"], "resources": ["pytorchjobs"], "verbs": VERBS},
        ]
    config = _operator_config(_container(docs, "operator"), tmp_path)
    assert config.trial_workloads == (
        JOBSET,
        WorkloadResource("kubeflow.org/v1", "PyTorchJob", "pytorchjobs"),
    )


@pytest.mark.parametrize(
    "entry",
    [
        {"apiVersion": "v1", "kind": "Pod", "plural": "pods"},  # no group: not a custom resource
        {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob"},
        {**PYTORCH, "verbs": ["*"]},
    ],
)
def test_a_malformed_custom_resource_is_refused_by_the_values_schema(
    render: Render, tmp_path: Path, entry: dict[str, Any]
) -> None:
    values = {"trialWorkloads": {"customResources": [entry]}}
    with pytest.raises(AssertionError, match=r"values don.t meet the specifications"):
        render("-f", _values(tmp_path, values))
