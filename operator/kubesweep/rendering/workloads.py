"""Where a trial's workload keeps its pod templates, and which of its pods reports.

A trial runs as one workload of one kind, and kubesweep makes the same additions
to every pod template in it (the assignment, the collector, the shared volume,
the trial's labels). This module is the one place that knows, per kind, where
those templates are and which pod's metrics are the trial's:

- a ``batch/v1`` Job has one pod template; in an Indexed Job of several pods the
  pod of completion index 0 reports;
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
#: A label or annotation key: an optional DNS prefix and a name.
_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class PodTemplateAt:
    """A pod template (``PodTemplateSpec``) of a workload: where it is, as keys and as text."""

    keys: tuple[str | int, ...]  # from the workload's spec
    field: str  # as a user reads it, e.g. trialTemplate.job.template


def workload_field(template: TrialTemplate) -> str:
    """The field of ``trialTemplate`` that holds the workload's spec."""
    del template
    return "trialTemplate.job"


def workload_spec(template: TrialTemplate) -> dict[str, Any]:
    """The workload's spec as the user wrote it (not a copy)."""
    return template.job


def pod_templates(template: TrialTemplate) -> list[PodTemplateAt]:
    """Every pod template of the workload that gets kubesweep's additions."""
    return [PodTemplateAt(("template",), f"{workload_field(template)}.template")]


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
    if template.job.get("completionMode") == "Indexed":
        annotations[COMPLETION_INDEX] = "0"
    if template.reporting_pod is not None:
        labels.update(template.reporting_pod.match_labels)
        annotations.update(template.reporting_pod.match_annotations)
    return labels, annotations


def reporting_conditions(template: TrialTemplate) -> tuple[tuple[str, str], ...]:
    """The reporting rule as ``(downward API field path, value)`` pairs, in a stable order."""
    labels, annotations = reporting_selector(template)
    return tuple(
        (f"metadata.{kind}['{key}']", value)
        for kind, matched in (("labels", labels), ("annotations", annotations))
        for key, value in sorted(matched.items())
    )


def reporting_problems(template: TrialTemplate) -> list[str]:
    """Keys of ``reportingPod`` that no pod could carry (the downward API could not read them)."""
    if template.reporting_pod is None:
        return []
    problems = []
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
