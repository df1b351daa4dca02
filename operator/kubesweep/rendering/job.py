"""Render a Trial into the workload that runs it: a Job, a JobSet or a custom resource.

The user's JobSpec is the contract: everything in it reaches the cluster as
written (resources, GPUs, tolerations, pod failure policy, ...) and the renderer
only *adds*, in documented places (``docs/trial-jobs.md``): the workload's
identity (name, labels, the Trial as owner, :mod:`kubesweep.rendering.identity`),
the additions to each pod template (:mod:`kubesweep.rendering.pod`), and safe
defaults the template may override (a Job's ``backoffLimit``, a JobSet's
``failurePolicy.maxRestarts``, from ``trialTemplate.retries``).

It is pure and deterministic: the same inputs give an equal dict, and the inputs
are never mutated (the operator compares rendered workloads to decide nothing
changed).
"""

from __future__ import annotations

import copy
from typing import Any

from kubesweep.api import Experiment, Trial
from kubesweep.podcontract import ENV_COLLECTOR_CONFIG
from kubesweep.rendering.identity import (
    MAX_WORKLOAD_NAME,
    labels_for,
    workload_metadata,
    workload_namespace,
)
from kubesweep.rendering.installation import RenderSettings
from kubesweep.rendering.placeholders import RenderError, known_placeholders, substitute_everywhere
from kubesweep.rendering.pod import PodAdditions, trial_values
from kubesweep.rendering.validate import check_template
from kubesweep.rendering.workloads import (
    locate,
    pod_templates,
    reporting_conditions,
    workload_field,
    workload_kind,
    workload_spec,
)

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
    """The manifest of the workload (Job, JobSet, custom resource) running ``trial``.

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
        substitute_primary=template.resource is None,
    )
    workload: dict[str, Any] = copy.deepcopy(workload_spec(template))
    if template.resource is not None:
        values = trial_values(spec, trial, namespace)
        known = known_placeholders(spec)
        workload = substitute_everywhere(workload, workload_field(template), values, known)
    for at in pod_templates(template):
        pod_template = locate(workload, at.keys)
        if isinstance(pod_template, dict):
            additions.apply(pod_template, at.field)
    if template.job_set is not None:
        _jobset_defaults(workload, trial.metadata.name, template.retries)
    elif template.job is not None:
        workload.setdefault("backoffLimit", template.retries)
    api_version, kind = workload_kind(template)
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": workload_metadata(trial, namespace, labels, template.queue_name),
        "spec": workload,
    }


def _jobset_defaults(jobset: dict[str, Any], name: str, retries: int) -> None:
    """A JobSet's defaults: Indexed Jobs, restarts of the whole set, names that fit.

    A distributed trial's ranks rarely survive one of them restarting alone, so a
    failed pod fails its Job (``backoffLimit: 0``) and the JobSet's failure policy
    restarts all of them, ``trialTemplate.retries`` times (``maxRestarts``). Jobs are
    Indexed, as JobSet's own webhook makes them, so pods have a completion index
    even where the webhook has not run. The template wins wherever it says otherwise.
    """
    for replicated in jobset["replicatedJobs"]:
        job_spec = replicated["template"]["spec"]
        job_spec.setdefault("completionMode", "Indexed")
        job_spec.setdefault("backoffLimit", 0)
        last = max(int(replicated.get("replicas", 1)) - 1, 0)
        child = f"{name}-{replicated['name']}-{last}"
        if len(child) > MAX_WORKLOAD_NAME:
            raise RenderError(
                f"trialTemplate.jobSet.replicatedJobs: the Job name {child!r} has more than "
                f"{MAX_WORKLOAD_NAME} characters; shorten the Experiment's or the replicated "
                "Job's name"
            )
    failure_policy: dict[str, Any] = jobset.setdefault("failurePolicy", {})
    failure_policy.setdefault("maxRestarts", retries)
