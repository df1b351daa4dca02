"""Where a trial's workload keeps its pod templates, and which of its pods reports.

A trial runs as one workload of one kind, and kubesweep makes the same additions
to every pod template in it (the assignment, the collector, the shared volume,
the trial's labels). This module is the one place that knows, per kind, where
those templates are and which pod's metrics are the trial's:

- a ``batch/v1`` Job has one pod template; in an Indexed Job of several pods the
  pod of completion index 0 reports;
- a JobSet (``jobset.x-k8s.io/v1alpha2``) has one per replicated Job; the pod of
  completion index 0 of Job 0 of the first replicated Job reports;
- ``trialTemplate.reportingPod`` adds labels and annotations to match, and wins a
  clash with the kind's own rule.

The rule reaches the collector as ``(downward API field, value)`` pairs
(:func:`kubesweep.podcontract.not_reporting_because` reads them in the pod).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubesweep.api import TrialTemplate

#: The annotation the Job controller puts on each pod of an Indexed Job.
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
JOBSET_API_VERSION = "jobset.x-k8s.io/v1alpha2"
#: ``(apiVersion, kind)`` of a Job, the workload every installation runs.
JOB_KIND = ("batch/v1", "Job")
#: Labels the JobSet controller puts on each pod: its replicated Job, and which copy.
LABEL_REPLICATED_JOB = "jobset.sigs.k8s.io/replicatedjob-name"
LABEL_JOB_INDEX = "jobset.sigs.k8s.io/job-index"
#: A label or annotation key: an optional DNS prefix and a name.
_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class PodTemplateAt:
    """A pod template (``PodTemplateSpec``) of a workload: where it is, as keys and as text."""

    keys: tuple[str | int, ...]  # from the workload's spec
    field: str  # as a user reads it, e.g. trialTemplate.job.template


def workload_kind(template: TrialTemplate) -> tuple[str, str]:
    """The ``(apiVersion, kind)`` of the workload the template runs."""
    if template.resource is not None:
        return template.resource.api_version, template.resource.kind
    if template.job_set is not None:
        return JOBSET_API_VERSION, "JobSet"
    return JOB_KIND


def workload_field(template: TrialTemplate) -> str:
    """The field of ``trialTemplate`` that holds the workload's spec."""
    if template.resource is not None:
        return "trialTemplate.resource.spec"
    return "trialTemplate.jobSet" if template.job_set is not None else "trialTemplate.job"


def workload_spec(template: TrialTemplate) -> dict[str, Any]:
    """The workload's spec as the user wrote it (not a copy)."""
    if template.resource is not None:
        return template.resource.spec
    if template.job_set is not None:
        return template.job_set
    assert template.job is not None, "a trial template has exactly one workload"
    return template.job


def spec_path_keys(path: str) -> tuple[str | int, ...]:
    """``a.b[0].c`` as keys: ``("a", "b", 0, "c")``."""
    keys: list[str | int] = []
    for part in path.split("."):
        name, *indexes = part.split("[")
        keys.append(name)
        keys += [int(index.rstrip("]")) for index in indexes]
    return tuple(keys)


def pod_templates(template: TrialTemplate) -> list[PodTemplateAt]:
    """Every pod template of the workload that gets kubesweep's additions."""
    field = workload_field(template)
    if template.resource is not None:
        return [
            PodTemplateAt(spec_path_keys(path), f"{field}.{path}")
            for path in template.resource.pod_templates
        ]
    if template.job_set is not None:
        return [
            PodTemplateAt(
                ("replicatedJobs", index, "template", "spec", "template"),
                f"{field}.replicatedJobs[{index}].template.spec.template",
            )
            for index in range(len(template.replicated_job_names))
        ]
    return [PodTemplateAt(("template",), f"{field}.template")]


def locate(root: Any, keys: tuple[str | int, ...]) -> Any | None:
    """The value at ``keys`` under ``root``, or ``None`` where the path does not exist."""
    node = root
    for key in keys:
        if isinstance(key, int):
            if not isinstance(node, list) or not 0 <= key < len(node):
                return None
        elif not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def pod_specs(template: TrialTemplate) -> list[tuple[str, Mapping[str, Any]]]:
    """``(field of the PodSpec, PodSpec)`` for each pod template that exists."""
    found = []
    for at in pod_templates(template):
        pod = locate(workload_spec(template), (*at.keys, "spec"))
        if isinstance(pod, Mapping):
            found.append((f"{at.field}.spec", pod))
    return found


def primary_containers(template: TrialTemplate) -> list[tuple[str, Mapping[str, Any]]]:
    """``(field, container)`` of the primary container in each pod template that has one."""
    found = []
    for field, pod in pod_specs(template):
        for index, container in enumerate(pod.get("containers") or []):
            if isinstance(container, Mapping) and container.get("name") == (
                template.primary_container
            ):
                found.append((f"{field}.containers[{index}]", container))
    return found


def reporting_selector(template: TrialTemplate) -> tuple[dict[str, str], dict[str, str]]:
    """The labels and annotations of the pod that reports: the kind's rule, then the user's."""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    if template.job is not None and template.job.get("completionMode") == "Indexed":
        annotations[COMPLETION_INDEX] = "0"
    if template.job_set is not None:
        labels[LABEL_REPLICATED_JOB] = template.replicated_job_names[0]
        labels[LABEL_JOB_INDEX] = "0"
    if template.reporting_pod is not None:
        labels.update(template.reporting_pod.match_labels)
        annotations.update(template.reporting_pod.match_annotations)
    if template.job_set is not None and _indexed(_reporting_job(template, labels)):
        annotations.setdefault(COMPLETION_INDEX, "0")
    return labels, annotations


def _reporting_job(template: TrialTemplate, labels: dict[str, str]) -> dict[str, Any] | None:
    """The JobSpec of the replicated Job whose pods the rule selects, if it exists."""
    name = labels.get(LABEL_REPLICATED_JOB)
    for replicated, spec in zip(
        template.replicated_job_names, template.replicated_job_specs, strict=True
    ):
        if replicated == name:
            return spec
    return None


def _indexed(job_spec: dict[str, Any] | None) -> bool:
    """Whether a JobSet's Job is Indexed (kubesweep, like JobSet, makes it so by default)."""
    return job_spec is not None and job_spec.get("completionMode", "Indexed") == "Indexed"


def reporting_conditions(template: TrialTemplate) -> tuple[tuple[str, str], ...]:
    """The reporting rule as ``(downward API field path, value)`` pairs, in a stable order."""
    labels, annotations = reporting_selector(template)
    return tuple(
        (f"metadata.{kind}['{key}']", value)
        for kind, matched in (("labels", labels), ("annotations", annotations))
        for key, value in sorted(matched.items())
    )


def pod_template_problems(template: TrialTemplate) -> list[str]:
    """A custom resource's pod template paths that lead to no pod template, or no primary."""
    if template.resource is None:
        return []
    problems = []
    for index, at in enumerate(pod_templates(template)):
        found = locate(template.resource.spec, at.keys)
        containers = (
            (found.get("spec") or {}).get("containers") if isinstance(found, Mapping) else None
        )
        if not isinstance(containers, list) or not containers:
            problems.append(
                f"trialTemplate.resource.podTemplates[{index}]: {at.field} is not a pod "
                "template (an object with spec.containers)"
            )
    if not problems and not primary_containers(template):
        problems.append(
            f"trialTemplate.primaryContainer: no pod template of trialTemplate.resource has a "
            f"container {template.primary_container}"
        )
    return problems


def reporting_problems(template: TrialTemplate) -> list[str]:
    """A reporting pod no workload could have: an unknown replicated Job, a key no pod carries."""
    problems = []
    if template.job_set is not None:
        labels, _ = reporting_selector(template)
        job = _reporting_job(template, labels)
        names = ", ".join(template.replicated_job_names)
        if job is None:
            problems.append(
                f"trialTemplate.reportingPod.matchLabels: {LABEL_REPLICATED_JOB} "
                f"{labels.get(LABEL_REPLICATED_JOB)!r} names no replicated Job of "
                f"trialTemplate.jobSet (they are {names})"
            )
        elif template.primary_container not in _names(job.get("template")):
            problems.append(
                f"trialTemplate.primaryContainer: the reporting pod's replicated Job "
                f"{labels[LABEL_REPLICATED_JOB]} has no container "
                f"{template.primary_container}; name another replicated Job in "
                "reportingPod.matchLabels, or add the container"
            )
    if template.reporting_pod is None:
        return problems
    for field, matched in (
        ("matchLabels", template.reporting_pod.match_labels),
        ("matchAnnotations", template.reporting_pod.match_annotations),
    ):
        for key in matched:
            if not _KEY.match(key) or len(key) > 317:
                problems.append(
                    f"trialTemplate.reportingPod.{field}: {key!r} is not a label or annotation "
                    "key (an optional DNS prefix and '/', then letters, digits, '-', '_', '.')"
                )
    return problems


def _names(pod_template: Any) -> list[str]:
    if not isinstance(pod_template, Mapping):
        return []
    containers = (pod_template.get("spec") or {}).get("containers") or []
    return [str(c.get("name")) for c in containers if isinstance(c, Mapping)]
