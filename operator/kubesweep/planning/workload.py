"""What a trial's workload says about how it runs, the same for every kind.

A trial runs as a ``batch/v1`` Job, a JobSet, or a custom resource, and each
tells success and failure its own way: a Job and a JobSet by conditions
(``Complete``/``Failed``, ``Completed``/``Failed``), a custom resource by the
condition or status field the template names. Each is read here into one
:class:`WorkloadState`, so the rules of :mod:`kubesweep.planning.trial_status`
are written once.

A workload fails only when its own failure policy gives up: a Job's
``backoffLimit`` and ``podFailurePolicy``, a JobSet's ``failurePolicy``
(``maxRestarts``, rules). A failed pod of a distributed trial is therefore not a
failed trial; the trial fails when the workload's ``Failed`` condition says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubesweep.api import ResourceTemplate, StatusMatch, TrialTemplate
from kubesweep.planning.gpu import job_gpus, job_width, pod_spec_gpus


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp of the API (``2026-11-22T10:00:00Z``) as an aware datetime."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Ending:
    """How a workload ended: the condition (or field) that says so."""

    reason: str = ""
    message: str = ""
    at: datetime | None = None


@dataclass(frozen=True)
class WorkloadState:
    """A trial's workload, as the rules of a trial's status read it."""

    kind: str = "Job"
    #: Set once the workload succeeded (its own success policy holds).
    succeeded: Ending | None = None
    #: Set once the workload failed (its own failure policy gave up).
    failed: Ending | None = None
    #: Waiting for admission (Kueue suspends workloads until their quota is free).
    suspended: bool = False
    start_time: datetime | None = None
    completion_time: datetime | None = None
    #: The workload itself says a pod is ready (a Job's ``status.ready``), for when no
    #: pod has been seen yet.
    ready: bool = False
    #: GPUs its pods hold together at full width, where no pod says what it holds.
    template_gpus: float = 0.0
    #: How a message says that it ended well, where "the <kind> completed" would be
    #: wrong: a local trial is a process, which exits.
    completion_phrase: str = ""

    @property
    def said_completed(self) -> str:
        """The words for ending well: ``the Job completed``, else :attr:`completion_phrase`."""
        return self.completion_phrase or f"the {self.kind} completed"

    @property
    def ended(self) -> bool:
        """Whether the workload succeeded or failed."""
        return self.succeeded is not None or self.failed is not None


def true_condition(status: Mapping[str, Any], type_: str) -> Ending | None:
    """The ``True`` condition of ``type_`` in ``status.conditions``, as an ending."""
    return condition_with(status, type_, "True")


def condition_with(status: Mapping[str, Any], type_: str, value: str) -> Ending | None:
    """The condition of ``type_`` whose status is ``value``, as an ending."""
    for condition in status.get("conditions") or []:
        if (
            isinstance(condition, Mapping)
            and condition.get("type") == type_
            and condition.get("status") == value
        ):
            return Ending(
                reason=str(condition.get("reason") or ""),
                message=str(condition.get("message") or ""),
                at=parse_time(condition.get("lastTransitionTime")),
            )
    return None


def job_state(job: Mapping[str, Any]) -> WorkloadState:
    """A ``batch/v1`` Job: ``Complete`` or ``Failed`` conditions, ``spec.suspend``."""
    status = job.get("status") or {}
    return WorkloadState(
        kind="Job",
        succeeded=true_condition(status, "Complete"),
        failed=true_condition(status, "Failed"),
        suspended=bool((job.get("spec") or {}).get("suspend")),
        start_time=parse_time(status.get("startTime")),
        completion_time=parse_time(status.get("completionTime")),
        ready=bool(status.get("ready")),
        template_gpus=job_gpus(job),
    )


def jobset_gpus(spec: Mapping[str, Any]) -> float:
    """GPUs of every pod of a JobSet at full width: each replicated Job, times its replicas."""
    total = 0.0
    for replicated in spec.get("replicatedJobs") or []:
        if not isinstance(replicated, Mapping):
            continue
        job_spec = (replicated.get("template") or {}).get("spec") or {}
        pod = (job_spec.get("template") or {}).get("spec") or {}
        replicas = replicated.get("replicas")
        copies = 1 if replicas is None else int(replicas)
        total += copies * job_width(job_spec) * pod_spec_gpus(pod)
    return total


def jobset_state(jobset: Mapping[str, Any]) -> WorkloadState:
    """A JobSet (``jobset.x-k8s.io/v1alpha2``): ``Completed``, ``Failed``, ``Suspended``."""
    status = jobset.get("status") or {}
    spec = jobset.get("spec") or {}
    completed = true_condition(status, "Completed")
    failed = true_condition(status, "Failed")
    done = completed or failed
    return WorkloadState(
        kind="JobSet",
        succeeded=completed,
        failed=failed,
        suspended=bool(spec.get("suspend")) or true_condition(status, "Suspended") is not None,
        completion_time=None if done is None else done.at,
        template_gpus=jobset_gpus(spec),
    )


def _matched(resource: Mapping[str, Any], match: StatusMatch) -> Ending | None:
    """The ending ``match`` reads in a custom resource's status, if it holds."""
    status = resource.get("status") or {}
    if match.condition is not None:
        return condition_with(status, match.condition, match.status)
    if match.field is None:
        return None
    node: Any = resource
    for key in match.field.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    if node is None or isinstance(node, Mapping | list) or str(node) not in match.values:
        return None
    return Ending(reason=f"{match.field.rsplit('.', 1)[-1]}={node}", message="")


def resource_state(resource: Mapping[str, Any], template: ResourceTemplate) -> WorkloadState:
    """A custom resource: success and failure as ``trialTemplate.resource`` tells them.

    A failure the status shows wins over a success it shows at the same time.
    """
    failed = _matched(resource, template.failure)
    return WorkloadState(
        kind=template.kind,
        succeeded=None if failed is not None else _matched(resource, template.success),
        failed=failed,
        suspended=bool((resource.get("spec") or {}).get("suspend")),
    )


def workload_state(
    template: TrialTemplate, workload: Mapping[str, Any] | None
) -> WorkloadState | None:
    """The state of a trial's workload, read the way the template's kind says."""
    if workload is None:
        return None
    if template.resource is not None:
        return resource_state(workload, template.resource)
    if template.job_set is not None:
        return jobset_state(workload)
    return job_state(workload)
