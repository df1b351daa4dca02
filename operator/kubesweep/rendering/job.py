"""Render a Trial into the workload that runs it: today a ``batch/v1`` Job.

The user's JobSpec is the contract: everything in it reaches the cluster as
written (resources, GPUs, tolerations, pod failure policy, ...) and the renderer
only *adds*, in documented places (``docs/trial-jobs.md``): the workload's
identity (name, labels, the Trial as owner, :mod:`kubesweep.rendering.identity`),
the additions to each pod template (:mod:`kubesweep.rendering.pod`), and safe
defaults the template may override (``backoffLimit`` from
``trialTemplate.retries``).

It is pure and deterministic: the same inputs give an equal dict, and the inputs
are never mutated (the operator compares rendered workloads to decide nothing
changed).
"""

from __future__ import annotations

import copy
from typing import Any

from kubesweep.api import Experiment, Trial
from kubesweep.podcontract import ENV_COLLECTOR_CONFIG
from kubesweep.rendering.identity import labels_for, workload_metadata, workload_namespace
from kubesweep.rendering.installation import RenderSettings
from kubesweep.rendering.placeholders import RenderError
from kubesweep.rendering.pod import PodAdditions
from kubesweep.rendering.validate import check_template
from kubesweep.rendering.workloads import locate, pod_templates, reporting_conditions

#: The collector reads its source configuration from this variable (JSON).
COLLECTOR_CONFIG_ENV = ENV_COLLECTOR_CONFIG


def render_trial(
    experiment: Experiment,
    trial: Trial,
    settings: RenderSettings,
    token: str | None = None,
    *,
    template_checked: bool = False,
) -> dict[str, Any]:
    """The manifest of the workload (a ``batch/v1`` Job) that runs ``trial`` of ``experiment``.

    ``token`` is the trial's intake token (the operator's HMAC of the trial UID).
    ``template_checked`` says the caller has already found :func:`check_template`
    silent for this spec (the operator checks once per pass, before any workload).

    Raises :class:`RenderError` (a ``ValueError``) when the spec and trial cannot
    make a valid workload: an unknown placeholder, a reserved name in the template,
    a stdout source without an explicit command, a name too long for a Job.
    """
    spec = experiment.spec
    template = spec.trial_template
    namespace = workload_namespace(experiment, trial)
    if not template_checked:
        problems = check_template(spec)
        if problems:
            raise RenderError("; ".join(problems))
    labels = labels_for(trial.spec.experiment, trial.metadata.name)
    additions = PodAdditions(
        spec=spec,
        trial=trial,
        settings=settings,
        token=token,
        namespace=namespace,
        labels=labels,
        reporting=reporting_conditions(template),
    )
    workload: dict[str, Any] = copy.deepcopy(template.job)
    for at in pod_templates(template):
        pod_template = locate(workload, at.keys)
        if isinstance(pod_template, dict):
            additions.apply(pod_template, at.field)
    workload.setdefault("backoffLimit", template.retries)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": workload_metadata(trial, namespace, labels, template.queue_name),
        "spec": workload,
    }
