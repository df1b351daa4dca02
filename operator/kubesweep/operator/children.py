"""The operator's picture of every experiment's children: Trials, workloads and pods.

Why not kopf indexes: kopf (1.45) holds back every handler until each object of
the first listing of every indexed resource has been indexed, with one readiness
toggle per object, each of which wakes all objects already waiting. At 5,000
Trials with their Jobs and pods that is hours of start-up, and one idle worker
task per object (see docs/operator.md). This module is the pure half of the
replacement: the records, grouped the way a reconciliation pass reads them,
changed one watch event at a time (a listing is a run of them). :mod:`kubesweep.operator.informer`
feeds it from list-and-watch streams.

Each change answers which experiment it concerns, so the operator wakes exactly
that experiment's daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import ValidationError

from kubesweep.api import Trial
from kubesweep.operator.compact import IndexedTrial, indexed_trial
from kubesweep.planning import PodView, pod_spec_gpus
from kubesweep.planning.workload import parse_time
from kubesweep.rendering import COLLECTOR_NAME, LABEL_EXPERIMENT, LABEL_TRIAL

logger = logging.getLogger(__name__)

#: ``(namespace, name)``.
Key = tuple[str, str]


class Kind(Enum):
    """The child resources the operator follows."""

    TRIALS = "trials"
    JOBS = "jobs"
    PODS = "pods"
    #: Trial workloads of other kinds (JobSets, custom resources), whatever their resource.
    WORKLOADS = "workloads"


@dataclass(frozen=True)
class PodRecord:
    """A trial pod as a pass reads it: its view and the collector's termination message."""

    view: PodView
    summary_message: str | None = None


def plain(value: Any) -> Any:
    """Mapping views as plain dicts and lists, for pydantic and merge patches."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def slim_trial(body: Mapping[str, Any]) -> IndexedTrial | None:
    """A Trial from its JSON body, validated, as the index keeps it (see compact).

    Bodies come from the list-and-watch streams' JSON, so they are plain dicts
    already; the metadata kubesweep never reads is not validated at all.
    """
    meta = body.get("metadata", {})
    try:
        trial = Trial.model_validate(
            {
                "metadata": {
                    "name": meta.get("name"),
                    "namespace": meta.get("namespace"),
                    "uid": meta.get("uid"),
                },
                "spec": body.get("spec"),
                "status": body.get("status") or None,
            }
        )
    except ValidationError as error:
        logger.warning("ignoring malformed Trial %s: %s", meta.get("name"), error)
        return None
    return indexed_trial(trial)


def _slim_job_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A JobSpec as GPU accounting reads it: width, suspension, containers' resources."""
    pod = (spec.get("template") or {}).get("spec") or {}

    def resources(containers: Any) -> list[dict[str, Any]]:
        # restartPolicy tells a native sidecar (its GPUs add up) from an init container.
        kept = ("resources", "restartPolicy")
        return [{k: plain(c[k]) for k in kept if c.get(k)} for c in containers or []]

    width = {key: spec[key] for key in ("parallelism", "completions") if spec.get(key) is not None}
    return {
        **width,
        "suspend": bool(spec.get("suspend")),
        "template": {
            "spec": {
                "containers": resources(pod.get("containers")),
                "initContainers": resources(pod.get("initContainers")),
            }
        },
    }


def slim_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Job that status derivation reads."""
    return {
        "metadata": {"name": body.get("metadata", {}).get("name")},
        "spec": _slim_job_spec(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


#: Status fields of a workload of another kind kept in the index, at most.
MAX_STATUS_FIELDS = 64


def _slim_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """Conditions and the scalar fields (up to three levels down) a template may name."""
    kept: dict[str, Any] = {}
    conditions = [
        {
            k: plain(c[k])
            for k in ("type", "status", "reason", "message", "lastTransitionTime")
            if k in c
        }
        for c in status.get("conditions") or []
        if isinstance(c, Mapping)
    ]
    if conditions:
        kept["conditions"] = conditions[:MAX_STATUS_FIELDS]

    def scalars(node: Mapping[str, Any], into: dict[str, Any], depth: int) -> None:
        for key, value in node.items():
            if len(kept) + len(into) >= MAX_STATUS_FIELDS or key == "conditions":
                continue
            if isinstance(value, str | int | float | bool):
                into[str(key)] = value
            elif isinstance(value, Mapping) and depth < 3:
                inner: dict[str, Any] = {}
                scalars(value, inner, depth + 1)
                if inner:
                    into[str(key)] = inner

    scalars(status, kept, 1)
    return kept


def slim_workload(body: Mapping[str, Any]) -> dict[str, Any]:
    """A trial workload of another kind, as :mod:`kubesweep.planning.workload` reads it."""
    spec = body.get("spec") or {}
    slim_spec: dict[str, Any] = {"suspend": bool(spec.get("suspend"))}
    replicated = spec.get("replicatedJobs")
    if isinstance(replicated, list):  # a JobSet: its Jobs' width and GPUs
        slim_spec["replicatedJobs"] = [
            {
                "replicas": r.get("replicas", 1),
                "template": {"spec": _slim_job_spec((r.get("template") or {}).get("spec") or {})},
            }
            for r in replicated
            if isinstance(r, Mapping)
        ]
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": (body.get("metadata") or {}).get("name")},
        "spec": slim_spec,
        "status": _slim_status(body.get("status") or {}),
    }


def _owned_by_another_controller(body: Mapping[str, Any]) -> bool:
    """A Job some other controller made (a JobSet's), not a trial's own workload."""
    for owner in (body.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller") and owner.get("kind") != "Trial":
            return True
    return False


def pod_record(body: Mapping[str, Any]) -> PodRecord:
    """What a trial pod tells: phase, start, why it waits, the collector's summary."""
    status = body.get("status") or {}
    unschedulable = None
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            unschedulable = str(condition.get("message") or "no node fits the pod")
    waiting = None
    for container in status.get("containerStatuses") or []:
        reason = (container.get("state") or {}).get("waiting", {}).get("reason")
        if reason and reason not in ("ContainerCreating", "PodInitializing"):
            waiting = str(reason)
    summary = None
    for container in status.get("initContainerStatuses") or []:
        if container.get("name") != COLLECTOR_NAME:
            continue
        for state_key in ("state", "lastState"):
            terminated = (container.get(state_key) or {}).get("terminated") or {}
            if terminated.get("message"):
                summary = str(terminated["message"])
                break
    phase = str(status.get("phase") or "Pending")
    view = PodView(
        name=str(body.get("metadata", {}).get("name")),
        phase=phase,
        start_time=parse_time(status.get("startTime")),
        unschedulable_message=unschedulable,
        waiting_reason=waiting,
        gpus=pod_spec_gpus(body.get("spec") or {}),
        finish_time=_finish_time(status) if phase in ("Succeeded", "Failed") else None,
    )
    return PodRecord(view=view, summary_message=summary)


def _finish_time(status: Mapping[str, Any]) -> datetime | None:
    """When an ended pod's last container ended (the pod holds its GPUs until then)."""
    ends = [
        parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for c in [
            *(status.get("containerStatuses") or []),
            *(status.get("initContainerStatuses") or []),
        ]
    ]
    return max((end for end in ends if end is not None), default=None)


@dataclass(frozen=True, slots=True)
class _Entry:
    group: Key  # where a pass looks it up
    experiment: Key  # whom a change concerns
    record: Any


@dataclass
class _Grouped:
    """Records by object, and the same records grouped by the key a pass reads."""

    by_object: dict[Key, _Entry] = field(default_factory=dict)
    groups: dict[Key, dict[str, Any]] = field(default_factory=dict)

    def put(self, obj: Key, entry: _Entry) -> None:
        self.drop(obj)
        self.by_object[obj] = entry
        self.groups.setdefault(entry.group, {})[obj[1]] = entry.record

    def drop(self, obj: Key) -> Key | None:
        entry = self.by_object.pop(obj, None)
        if entry is None:
            return None
        members = self.groups.get(entry.group)
        if members is not None:
            members.pop(obj[1], None)
            if not members:
                del self.groups[entry.group]
        return entry.experiment


def _object_key(body: Mapping[str, Any]) -> Key | None:
    meta = body.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    if not namespace or not name:
        return None
    return (str(namespace), str(name))


def _entry(kind: Kind, obj: Key, body: Mapping[str, Any]) -> _Entry | None:
    """The record of one object, or ``None`` when it is not a kubesweep child."""
    namespace = obj[0]
    if kind is Kind.TRIALS:
        trial = slim_trial(body)
        if trial is None:
            return None
        experiment = (namespace, trial.experiment)
        return _Entry(group=experiment, experiment=experiment, record=trial)
    labels = (body.get("metadata") or {}).get("labels") or {}
    trial_name, experiment_name = labels.get(LABEL_TRIAL), labels.get(LABEL_EXPERIMENT)
    if not trial_name or not experiment_name:
        return None
    if kind is Kind.JOBS and _owned_by_another_controller(body):
        return None
    record = {
        Kind.JOBS: slim_job,
        Kind.PODS: pod_record,
        Kind.WORKLOADS: slim_workload,
    }[kind](body)
    return _Entry(
        group=(namespace, str(trial_name)),
        experiment=(namespace, str(experiment_name)),
        record=record,
    )


@dataclass
class ChildIndex:
    """Trials by experiment, Jobs and pods by trial, as the latest events left them."""

    _kinds: dict[Kind, _Grouped] = field(
        default_factory=lambda: {kind: _Grouped() for kind in Kind}
    )

    def apply(self, kind: Kind, event_type: str, body: Mapping[str, Any]) -> set[Key]:
        """One watch event (ADDED, MODIFIED, DELETED); the experiments it concerns."""
        obj = _object_key(body)
        if obj is None:
            return set()
        grouped = self._kinds[kind]
        touched: set[Key] = set()
        before = grouped.drop(obj)
        if before is not None:
            touched.add(before)
        if event_type != "DELETED":
            entry = _entry(kind, obj, body)
            if entry is not None:
                grouped.put(obj, entry)
                touched.add(entry.experiment)
        return touched

    def objects(self, kind: Kind, namespace: str | None) -> list[Key]:
        """The objects of a kind known in a namespace (``None``: all)."""
        return [o for o in self._kinds[kind].by_object if namespace in (None, o[0])]

    def trial(self, namespace: str, name: str) -> IndexedTrial | None:
        """A Trial by name."""
        entry = self._kinds[Kind.TRIALS].by_object.get((namespace, name))
        return None if entry is None else entry.record

    def trials(self, experiment: Key) -> list[IndexedTrial]:
        """The Trials of an experiment."""
        return list(self._kinds[Kind.TRIALS].groups.get(experiment, {}).values())

    def job(self, namespace: str, trial: str) -> dict[str, Any] | None:
        """The (slim) Job of a trial, if any."""
        jobs = self._kinds[Kind.JOBS].groups.get((namespace, trial), {})
        return next(iter(jobs.values()), None)

    def workload(self, namespace: str, trial: str) -> dict[str, Any] | None:
        """The (slim) workload of another kind than Job of a trial, if any."""
        found = self._kinds[Kind.WORKLOADS].groups.get((namespace, trial), {})
        return next(iter(found.values()), None)

    def pods(self, namespace: str, trial: str) -> list[PodRecord]:
        """The pods of a trial."""
        return list(self._kinds[Kind.PODS].groups.get((namespace, trial), {}).values())

    def count(self, kind: Kind) -> int:
        """How many objects of a kind are known."""
        return len(self._kinds[kind].by_object)
