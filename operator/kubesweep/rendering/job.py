"""Render a Trial into the ``batch/v1`` Job that runs it.

The user's JobSpec is the contract: everything in it reaches the cluster as
written (resources, GPUs, tolerations, pod failure policy, ...) and the renderer
only *adds*, in documented places (``docs/trial-jobs.md``):

- identity: the Job's name is the Trial's, it is owned by the Trial (so deleting
  the Trial, or the Experiment above it, removes Job and pods), and it carries
  labels that let the operator and humans select by experiment and trial;
- the assignment: placeholders in the primary container's command, args and env
  values, and the same values as environment variables;
- the collector: a native sidecar sharing an emptyDir with the primary
  container, the stdout wrapper when metrics come from stdout, the intake URL and
  the per-trial token;
- safe defaults that the template may override: no service-account token in the
  pod, ``backoffLimit`` from ``trialTemplate.retries``, ``restartPolicy: Never``.

It is pure and deterministic: the same inputs give an equal dict, and the inputs
are never mutated (the operator compares rendered Jobs to decide nothing changed).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from kubesweep.api import (
    API_VERSION,
    Experiment,
    ExperimentSpec,
    MetricsSource,
    ParameterValue,
    Trial,
)
from kubesweep.podcontract import (
    ENV_COLLECTOR_CONFIG,
    ENV_EXPERIMENT,
    ENV_INTAKE_URL,
    ENV_METRICS_DIR,
    ENV_METRICS_PATH,
    ENV_PARAMS,
    ENV_POD_NAME,
    ENV_REPORT_URL,
    ENV_TRIAL_INDEX,
    ENV_TRIAL_NAME,
    ENV_TRIAL_NAMESPACE,
    ENV_TRIAL_TOKEN,
    ENV_TRIAL_UID,
    READY_FILE,
)
from kubesweep.rendering.installation import (
    COLLECTOR_NAME,
    METRICS_DIR,
    METRICS_VOLUME,
    STDOUT_LOG,
    RenderSettings,
)
from kubesweep.rendering.placeholders import (
    RenderError,
    format_value,
    json_value,
    known_placeholders,
    params_json,
    substitute,
)
from kubesweep.rendering.validate import (
    check_template,
    extra_mount_dir,
    metrics_path,
    param_env_name,
)

LABEL_EXPERIMENT = "kubesweep.io/experiment"
LABEL_TRIAL = "kubesweep.io/trial"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"
MANAGER = "kubesweep"

#: The collector reads its source configuration from this variable (JSON).
COLLECTOR_CONFIG_ENV = ENV_COLLECTOR_CONFIG

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_JOB_NAME = 63


def labels_for(experiment: str, trial: str) -> dict[str, str]:
    """The labels every object of a trial carries (Job and pod)."""
    return {
        LABEL_EXPERIMENT: experiment,
        LABEL_TRIAL: trial,
        LABEL_MANAGED_BY: MANAGER,
    }


def owner_reference(trial: Trial) -> dict[str, Any]:
    """A controller reference to ``trial``; the garbage collector deletes the Job with it."""
    if not trial.metadata.uid:
        raise ValueError(
            f"trial {trial.metadata.name} has no metadata.uid; render it after the Trial "
            "is created, as the Job's ownerReference needs the uid"
        )
    return {
        "apiVersion": API_VERSION,
        "kind": "Trial",
        "name": trial.metadata.name,
        "uid": trial.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def trial_values(spec: ExperimentSpec, trial: Trial, namespace: str) -> dict[str, str]:
    """The text of every placeholder this trial resolves, keyed like ``params.lr``."""
    values: dict[str, str] = {}
    for name, value in assignment(spec, trial).items():
        values[f"params.{name}"] = format_value(value, _kind_of(spec, name))
    values["trial.name"] = trial.metadata.name
    values["trial.index"] = str(trial.spec.index)
    values["trial.namespace"] = namespace
    if spec.fidelity is not None:
        values["trial.fidelity"] = values[f"params.{spec.fidelity.parameter}"]
    values["experiment.name"] = trial.spec.experiment
    return values


def _kind_of(spec: ExperimentSpec, name: str) -> str | None:
    if spec.fidelity is not None and name == spec.fidelity.parameter:
        return spec.fidelity.type
    try:
        return str(spec.parameter(name).type)
    except KeyError:
        return None


def assignment(spec: ExperimentSpec, trial: Trial) -> dict[str, ParameterValue]:
    """The trial's parameters plus the fidelity budget under its parameter name.

    Ordered as the spec declares them, so env and JSON come out in a stable order.
    Inactive conditional parameters are absent, as in the Trial.
    """
    declared = [p.name for p in spec.parameters]
    unknown = sorted(set(trial.spec.parameters) - set(declared))
    if unknown:
        raise RenderError(
            f"trial {trial.metadata.name} assigns {', '.join(unknown)}, which "
            "spec.parameters does not declare"
        )
    values: dict[str, ParameterValue] = {
        name: json_value(trial.spec.parameters[name], _kind_of(spec, name))
        for name in declared
        if name in trial.spec.parameters
    }
    if spec.fidelity is not None:
        if trial.spec.fidelity is None:
            raise RenderError(
                f"trial {trial.metadata.name} has no spec.fidelity, but the experiment's "
                f"algorithm assigns {spec.fidelity.parameter} through spec.fidelity"
            )
        values[spec.fidelity.parameter] = json_value(trial.spec.fidelity, spec.fidelity.type)
    return values


def collector_config(spec: ExperimentSpec, settings: RenderSettings) -> str:
    """The collector's source configuration as compact JSON (``KUBESWEEP_COLLECTOR_CONFIG``).

    It is the ``trialTemplate.metrics`` object as the user wrote it (camelCase),
    with ``path`` made absolute and the fields the collector cannot know added:
    the metric names to keep (objective first), the objective's reduction (which
    curve point survives downsampling), the stdout log path and the push port.
    ``kubesweep.collector.config`` reads it.
    """
    metrics = spec.trial_template.metrics
    config: dict[str, Any] = metrics.to_wire()
    path = metrics_path(spec)
    if path is not None:
        config["path"] = path
    if metrics.source is MetricsSource.STDOUT:
        config["path"] = STDOUT_LOG
    if metrics.source is MetricsSource.PUSH:
        config["port"] = settings.push_port
    config["metrics"] = spec.objective.metric_names
    config["objectiveStrategy"] = str(spec.objective.objective_strategy)
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def _primary_env(
    spec: ExperimentSpec, trial: Trial, settings: RenderSettings
) -> list[dict[str, Any]]:
    values = assignment(spec, trial)
    env: list[dict[str, Any]] = [
        {"name": ENV_EXPERIMENT, "value": trial.spec.experiment},
        {"name": ENV_TRIAL_NAME, "value": trial.metadata.name},
        {"name": ENV_TRIAL_INDEX, "value": str(trial.spec.index)},
        {"name": ENV_PARAMS, "value": params_json(values)},
    ]
    for name, value in values.items():
        env.append(
            {"name": param_env_name(name), "value": format_value(value, _kind_of(spec, name))}
        )
    env.append({"name": ENV_METRICS_DIR, "value": METRICS_DIR})
    path = metrics_path(spec)
    if path is not None:
        env.append({"name": ENV_METRICS_PATH, "value": path})
    if spec.trial_template.metrics.source is MetricsSource.PUSH:
        env.append({"name": ENV_REPORT_URL, "value": f"http://127.0.0.1:{settings.push_port}"})
    return env


def _token_env(token: str | None) -> dict[str, Any]:
    if not token:
        raise ValueError("render_trial needs the trial's token (the HMAC of its uid)")
    return {"name": ENV_TRIAL_TOKEN, "value": token}


def _collector(
    spec: ExperimentSpec,
    trial: Trial,
    settings: RenderSettings,
    token: str | None,
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """The collector as a native sidecar of the trial pod."""
    container: dict[str, Any] = {
        "name": COLLECTOR_NAME,
        "image": settings.collector_image,
    }
    if settings.collector_image_pull_policy is not None:
        container["imagePullPolicy"] = settings.collector_image_pull_policy
    container["command"] = ["kubesweep-collector"]
    container["env"] = [
        {"name": ENV_COLLECTOR_CONFIG, "value": collector_config(spec, settings)},
        {"name": ENV_INTAKE_URL, "value": settings.intake_url},
        _token_env(token),
        {"name": ENV_EXPERIMENT, "value": trial.spec.experiment},
        {"name": ENV_TRIAL_NAME, "value": trial.metadata.name},
        {
            "name": ENV_TRIAL_NAMESPACE,
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        {"name": ENV_TRIAL_UID, "value": str(trial.metadata.uid)},
        {"name": ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    container["resources"] = copy.deepcopy(dict(settings.collector_resources))
    container["securityContext"] = copy.deepcopy(dict(settings.collector_security_context))
    container["volumeMounts"] = copy.deepcopy(mounts)
    # The kubelet starts the trainer only once this probe passes: a trainer that
    # ends in a split second cannot be stopped before the collector can catch SIGTERM.
    container["startupProbe"] = {
        "exec": {"command": ["test", "-e", f"{METRICS_DIR}/{READY_FILE}"]},
        "periodSeconds": 1,
        "failureThreshold": 120,
    }
    # A native sidecar: started before the main containers, stopped after them,
    # and not counted for the Job's completion.
    container["restartPolicy"] = "Always"
    return container


def render_trial(
    experiment: Experiment,
    trial: Trial,
    settings: RenderSettings,
    token: str | None = None,
    *,
    template_checked: bool = False,
) -> dict[str, Any]:
    """The ``batch/v1`` Job manifest that runs ``trial`` of ``experiment``.

    ``token`` is the trial's intake token (the operator's HMAC of the trial UID).
    ``template_checked`` says the caller has already found :func:`check_template`
    silent for this spec (the operator checks once per pass, before any Job).

    Raises :class:`RenderError` (a ``ValueError``) when the spec and trial cannot
    make a valid Job: an unknown placeholder, a reserved name in the template, a
    stdout source without an explicit command, a name too long for a Job.
    """
    spec = experiment.spec
    template = spec.trial_template
    name = trial.metadata.name
    namespace = _job_namespace(experiment, trial)
    if not template_checked:
        _refuse_template_problems(spec)

    job_spec: dict[str, Any] = copy.deepcopy(template.job)
    pod_template: dict[str, Any] = job_spec["template"]
    pod: dict[str, Any] = pod_template["spec"]
    index, primary = _primary_container(pod, template.primary_container)
    _substitute_placeholders(primary, index, spec, trial, namespace)
    if template.metrics.source is MetricsSource.STDOUT:
        _wrap_stdout(primary, settings)
    # The assignment and identity as env, first so the template's env can use $(VAR).
    primary["env"] = [*_primary_env(spec, trial, settings), *(primary.get("env") or [])]
    mounts = _share_metrics_volume(spec, pod, primary, settings)
    pod["initContainers"] = [
        *(pod.get("initContainers") or []),
        _collector(spec, trial, settings, token, mounts),
    ]
    _apply_defaults(job_spec, pod, template.retries)
    labels = labels_for(trial.spec.experiment, name)
    pod_metadata: dict[str, Any] = pod_template.setdefault("metadata", {})
    pod_metadata["labels"] = {**(pod_metadata.get("labels") or {}), **labels}
    return _job(trial, namespace, labels, template.queue_name, job_spec)


def _job_namespace(experiment: Experiment, trial: Trial) -> str:
    """Where the Job goes (beside its Trial), after checking the trial may have one."""
    name = trial.metadata.name
    if len(name) > _MAX_JOB_NAME or not _DNS_LABEL.match(name):
        raise RenderError(
            f"trial name {name!r} is not a valid Job name (lower-case letters, digits and "
            f"'-', at most {_MAX_JOB_NAME} characters); shorten the Experiment's name"
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


def _refuse_template_problems(spec: ExperimentSpec) -> None:
    problems = check_template(spec)
    if problems:
        raise RenderError("; ".join(problems))


def _primary_container(pod: dict[str, Any], primary_name: str) -> tuple[int, dict[str, Any]]:
    return next((i, c) for i, c in enumerate(pod["containers"]) if c.get("name") == primary_name)


def _substitute_placeholders(
    primary: dict[str, Any], index: int, spec: ExperimentSpec, trial: Trial, namespace: str
) -> None:
    """Placeholders, in command, args and literal env values only."""
    path = f"trialTemplate.job.template.spec.containers[{index}]"
    known = known_placeholders(spec)
    values = trial_values(spec, trial, namespace)
    for field in ("command", "args"):
        if isinstance(primary.get(field), list):
            primary[field] = [
                substitute(item, f"{path}.{field}[{i}]", values, known)
                if isinstance(item, str)
                else item
                for i, item in enumerate(primary[field])
            ]
    for i, entry in enumerate(primary.get("env") or []):
        if isinstance(entry, dict) and isinstance(entry.get("value"), str):
            entry["value"] = substitute(entry["value"], f"{path}.env[{i}].value", values, known)


def _wrap_stdout(primary: dict[str, Any], settings: RenderSettings) -> None:
    """The stdout source: tee the output into the shared volume, keep the exit code."""
    command, args = settings.wrap_command(
        list(primary["command"]), list(primary.get("args") or []), STDOUT_LOG
    )
    primary["command"] = list(command)
    primary["args"] = list(args)


def _share_metrics_volume(
    spec: ExperimentSpec, pod: dict[str, Any], primary: dict[str, Any], settings: RenderSettings
) -> list[dict[str, Any]]:
    """One emptyDir shared by the primary container and the collector; its mounts."""
    mounts: list[dict[str, Any]] = [{"name": METRICS_VOLUME, "mountPath": METRICS_DIR}]
    extra = extra_mount_dir(spec)
    if extra is not None:
        mounts.append({"name": METRICS_VOLUME, "mountPath": extra})
    primary["volumeMounts"] = [*(primary.get("volumeMounts") or []), *copy.deepcopy(mounts)]
    volume: dict[str, Any] = {"name": METRICS_VOLUME, "emptyDir": {}}
    if settings.metrics_volume_size_limit is not None:
        volume["emptyDir"]["sizeLimit"] = settings.metrics_volume_size_limit
    pod["volumes"] = [*(pod.get("volumes") or []), volume]
    return mounts


def _apply_defaults(job_spec: dict[str, Any], pod: dict[str, Any], retries: int) -> None:
    """Defaults the template may override."""
    pod.setdefault("restartPolicy", "Never")
    pod.setdefault("automountServiceAccountToken", False)
    job_spec.setdefault("backoffLimit", retries)


def _job(
    trial: Trial,
    namespace: str,
    labels: dict[str, str],
    queue_name: str | None,
    job_spec: dict[str, Any],
) -> dict[str, Any]:
    job_labels = dict(labels)
    if queue_name is not None:
        job_labels[LABEL_QUEUE] = queue_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": trial.metadata.name,
            "namespace": namespace,
            "labels": job_labels,
            "ownerReferences": [owner_reference(trial)],
        },
        "spec": job_spec,
    }
