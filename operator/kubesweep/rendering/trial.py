"""Render one suggestion into the Trial object the operator creates.

The Trial is the durable record of an assignment: its name is deterministic
(``<experiment>-<index>``), so creating it twice is a 409 rather than a second
trial, and it is owned by its Experiment, so deleting the Experiment removes it
(and, through the Job's owner reference, everything under it). Rendering it here,
beside the Job, keeps every manifest the operator writes in one pure package.
"""

from __future__ import annotations

from typing import Any

from kubesweep.api import API_VERSION, TrialSpec
from kubesweep.api.suggestion_wire import Assignment
from kubesweep.rendering.identity import LABEL_EXPERIMENT, LABEL_MANAGED_BY, MANAGER


def trial_manifest(
    *,
    experiment: str,
    namespace: str,
    experiment_uid: str | None,
    index: int,
    name: str,
    assignment: Assignment,
) -> dict[str, Any]:
    """The Trial ``name`` (index ``index``) of ``experiment`` carrying ``assignment``.

    ``assignment`` is one entry of the suggestion service's reply.
    """
    spec = TrialSpec(
        experiment=experiment,
        index=index,
        parameters=assignment.parameters,
        fidelity=assignment.fidelity,
        tags=assignment.tags,
        parent=assignment.parent,
        perturbation=assignment.perturbation,
    )
    owner = {
        "apiVersion": API_VERSION,
        "kind": "Experiment",
        "name": experiment,
        "uid": experiment_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "Trial",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {LABEL_EXPERIMENT: experiment, LABEL_MANAGED_BY: MANAGER},
            "ownerReferences": [owner],
        },
        "spec": spec.to_wire(),
    }
