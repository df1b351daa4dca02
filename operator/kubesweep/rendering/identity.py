"""Who a trial's objects are: their names, labels and owner, whatever the workload kind.

Every object the operator creates for a trial (the Job, JobSet or custom
resource, and through its pod templates every pod) carries the same labels, so
the operator's streams select them on the server and humans select a sweep's pods
with one ``-l``; the workload is owned by its Trial, so deleting the Trial, or
the Experiment above it, removes the workload and, through the workload's own
children, every pod.
"""

from __future__ import annotations

import re
from typing import Any

from kubesweep.api import API_VERSION, Experiment, Trial
from kubesweep.rendering.placeholders import RenderError

LABEL_EXPERIMENT = "kubesweep.io/experiment"
LABEL_TRIAL = "kubesweep.io/trial"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"
MANAGER = "kubesweep"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: The longest name a workload whose name reaches pods (a Job's, as a label) may have.
MAX_WORKLOAD_NAME = 63


def labels_for(experiment: str, trial: str) -> dict[str, str]:
    """The labels every object of a trial carries (workload and pods)."""
    return {
        LABEL_EXPERIMENT: experiment,
        LABEL_TRIAL: trial,
        LABEL_MANAGED_BY: MANAGER,
    }


def owner_reference(trial: Trial) -> dict[str, Any]:
    """A controller reference to ``trial``; the garbage collector deletes the workload with it."""
    if not trial.metadata.uid:
        raise ValueError(
            f"trial {trial.metadata.name} has no metadata.uid; render it after the Trial "
            "is created, as the workload's ownerReference needs the uid"
        )
    return {
        "apiVersion": API_VERSION,
        "kind": "Trial",
        "name": trial.metadata.name,
        "uid": trial.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def workload_namespace(experiment: Experiment, trial: Trial) -> str:
    """Where the workload goes (beside its Trial), after checking the trial may have one."""
    name = trial.metadata.name
    if len(name) > MAX_WORKLOAD_NAME or not _DNS_LABEL.match(name):
        raise RenderError(
            f"trial name {name!r} is not a valid Job name (lower-case letters, digits and "
            f"'-', at most {MAX_WORKLOAD_NAME} characters); shorten the Experiment's name"
        )
    if trial.spec.experiment != experiment.metadata.name:
        raise ValueError(
            f"trial {name} belongs to experiment {trial.spec.experiment!r}, "
            f"not {experiment.metadata.name!r}"
        )
    namespace = trial.metadata.namespace or experiment.metadata.namespace
    if namespace is None:
        raise ValueError(f"trial {name} has no namespace; the Job must live beside its Trial")
    return namespace


def workload_metadata(
    trial: Trial, namespace: str, labels: dict[str, str], queue_name: str | None
) -> dict[str, Any]:
    """The metadata of a trial's workload: its name, labels (and Kueue's queue), owner."""
    workload_labels = dict(labels)
    if queue_name is not None:
        workload_labels[LABEL_QUEUE] = queue_name
    return {
        "name": trial.metadata.name,
        "namespace": namespace,
        "labels": workload_labels,
        "ownerReferences": [owner_reference(trial)],
    }
