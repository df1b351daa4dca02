"""Each trial workload shape is checked at admission, naming the field: Python and CEL agree.

The e2e suite sends every case of :data:`SHAPE_MISTAKES` to a real API server too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from kubesweep.api import ManifestError, parse_experiment
from tests.api.conftest import VALID

Bend = Callable[[dict[str, Any]], None]


def _pod(container: str = "trainer") -> dict[str, Any]:
    trainer = {"name": container, "image": "i", "command": ["python", "train.py"]}
    return {"spec": {"restartPolicy": "Never", "containers": [trainer]}}


def _replicated(name: str, **job: Any) -> dict[str, Any]:
    return {"name": name, "replicas": 1, "template": {"spec": {"template": _pod(), **job}}}


def as_jobset(*replicated: dict[str, Any]) -> Bend:
    def bend(spec: dict[str, Any]) -> None:
        template = spec["trialTemplate"]
        del template["job"]
        template["jobSet"] = {"replicatedJobs": list(replicated) or [_replicated("workers")]}

    return bend


def _both(spec: dict[str, Any]) -> None:
    spec["trialTemplate"]["jobSet"] = {"replicatedJobs": [_replicated("workers")]}


def _neither(spec: dict[str, Any]) -> None:
    del spec["trialTemplate"]["job"]


def _primary_elsewhere(spec: dict[str, Any]) -> None:
    as_jobset()(spec)
    spec["trialTemplate"]["primaryContainer"] = "main"


def _then(first: Bend, second: Bend) -> Bend:
    def bend(spec: dict[str, Any]) -> None:
        first(spec)
        second(spec)

    return bend


def _no_replicated_jobs(spec: dict[str, Any]) -> None:
    spec["trialTemplate"]["jobSet"]["replicatedJobs"] = []


def _containers_missing(spec: dict[str, Any]) -> None:
    as_jobset()(spec)
    del spec["trialTemplate"]["jobSet"]["replicatedJobs"][0]["template"]["spec"]["template"][
        "spec"
    ]["containers"]


PYTORCH: dict[str, Any] = {
    "apiVersion": "kubeflow.org/v1",
    "kind": "PyTorchJob",
    "spec": {
        "pytorchReplicaSpecs": {
            "Master": {"replicas": 1, "template": _pod()},
            "Worker": {"replicas": 3, "template": _pod()},
        }
    },
    "podTemplates": ["pytorchReplicaSpecs.Master.template", "pytorchReplicaSpecs.Worker.template"],
    "success": {"condition": "Succeeded"},
    "failure": {"condition": "Failed"},
}


def as_resource(**changes: Any) -> Bend:
    def bend(spec: dict[str, Any]) -> None:
        template = spec["trialTemplate"]
        del template["job"]
        template["resource"] = {**copy.deepcopy(PYTORCH), **changes}
        template["reportingPod"] = {"matchLabels": {"training.kubeflow.org/replica-type": "master"}}

    return bend


def _without_reporting_pod(spec: dict[str, Any]) -> None:
    del spec["trialTemplate"]["reportingPod"]


#: (case, how the valid manifest's spec is bent, what both refusals say)
SHAPE_MISTAKES: list[tuple[str, Bend, str]] = [
    ("job-and-jobset", _both, "trialTemplate needs exactly one workload"),
    ("no-workload", _neither, "trialTemplate needs exactly one workload"),
    ("no-replicated-jobs", _then(as_jobset(), _no_replicated_jobs), "jobSet.replicatedJobs"),
    ("primary-in-no-pod", _primary_elsewhere, "primaryContainer must name a container of a pod"),
    (
        "duplicate-replicated-jobs",
        as_jobset(_replicated("workers"), _replicated("workers")),
        "replicatedJobs[].name must be unique",
    ),
    (
        "several-pods-not-indexed",
        as_jobset(_replicated("workers", parallelism=2, completionMode="NonIndexed")),
        "completionMode must be Indexed",
    ),
    ("pod-without-containers", _containers_missing, "template.spec.template.spec.containers"),
    (
        "resource-without-reporting-pod",
        _then(as_resource(), _without_reporting_pod),
        "trialTemplate.reportingPod is required with trialTemplate.resource",
    ),
    (
        "resource-condition-and-field",
        as_resource(success={"condition": "Succeeded", "field": "status.phase"}),
        "either condition or field",
    ),
    (
        "resource-field-without-values",
        as_resource(failure={"field": "status.phase"}),
        "a status field needs values",
    ),
    (
        "resource-field-outside-status",
        as_resource(failure={"field": "spec.phase", "values": ["Failed"]}),
        "trialTemplate.resource.failure.field",
    ),
    ("resource-is-a-job", as_resource(apiVersion="batch/v1", kind="Job"), "use trialTemplate.job"),
    ("resource-without-group", as_resource(apiVersion="v1"), "trialTemplate.resource.apiVersion"),
    ("resource-no-pod-templates", as_resource(podTemplates=[]), "resource.podTemplates"),
    (
        "resource-pod-template-path",
        as_resource(podTemplates=["replicas..template"]),
        "resource.podTemplates[0]",
    ),
]


def bent(bend: Bend) -> dict[str, Any]:
    """The valid manifest, bent."""
    manifest = copy.deepcopy(VALID)
    bend(manifest["spec"])
    return manifest


@pytest.mark.parametrize(
    ("case", "bend", "expected"), SHAPE_MISTAKES, ids=[c for c, _, _ in SHAPE_MISTAKES]
)
def test_a_malformed_workload_is_refused_naming_the_field(
    case: str, bend: Bend, expected: str
) -> None:
    with pytest.raises(ManifestError) as refused:
        parse_experiment(bent(bend))
    assert expected in str(refused.value), case


def test_a_jobset_template_is_read() -> None:
    spec = parse_experiment(bent(as_jobset(_replicated("launcher"), _replicated("workers")))).spec
    template = spec.trial_template
    assert template.job is None
    assert template.replicated_job_names == ["launcher", "workers"]
    assert template.container_names == ["trainer", "trainer"]
    assert template.to_wire()["jobSet"]["replicatedJobs"][1]["name"] == "workers"


def test_a_resource_template_is_read() -> None:
    spec = parse_experiment(bent(as_resource())).spec
    resource = spec.trial_template.resource
    assert resource is not None
    assert (resource.api_version, resource.kind) == ("kubeflow.org/v1", "PyTorchJob")
    assert resource.success.condition == "Succeeded"
    wire = spec.trial_template.to_wire()["resource"]
    assert wire["podTemplates"][1] == "pytorchReplicaSpecs.Worker.template"
    assert wire["success"] == {"condition": "Succeeded", "status": "True", "values": []}
