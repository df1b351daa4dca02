"""What kubesweep adds to each pod template of a trial's workload.

The user's pod template is the contract: everything in it reaches the cluster
as written, and only these additions are made (``docs/trial-jobs.md``):

- the assignment: placeholders in the primary container's command, args and env
  values, and the same values as environment variables;
- the collector: a native sidecar sharing an emptyDir with the primary
  container, the stdout wrapper when metrics come from stdout, the intake URL,
  the per-trial token, and the rule that tells it whether its pod is the one
  that reports (in a multi-pod workload only one is);
- with ``trialTemplate.checkpoints``: the claim, mounted into the primary
  container, and where its checkpoint goes and its parent's is
  (:mod:`kubesweep.rendering.checkpoints`);
- the trial's labels, and safe defaults the template may override: no
  service-account token in the pod, ``restartPolicy: Never``.

A workload of several pod templates (a JobSet's replicated Jobs) gets the same
additions in each, so every rank's trainer finds its parameters, and a push from
any rank finds an endpoint. Everything here mutates the deep copy it is given and
nothing else.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from kubesweep.api import ExperimentSpec, MetricsSource, ParameterValue, Trial
from kubesweep.podcontract import (
    ENV_COLLECTOR_CONFIG,
    ENV_EXPERIMENT,
    ENV_INTAKE_URL,
    ENV_METRICS_DIR,
    ENV_METRICS_PATH,
    ENV_PARAMS,
    ENV_POD_NAME,
    ENV_REPORT_URL,
    ENV_REPORTING_FIELD_PREFIX,
    ENV_REPORTING_POD,
    ENV_TRIAL_INDEX,
    ENV_TRIAL_NAME,
    ENV_TRIAL_NAMESPACE,
    ENV_TRIAL_TOKEN,
    ENV_TRIAL_UID,
    READY_FILE,
    reporting_rule_text,
)
from kubesweep.rendering.checkpoints import checkpoint_env, checkpoint_values, mount_checkpoints
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
from kubesweep.rendering.validate import extra_mount_dir, metrics_path, param_env_name


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
    values.update(checkpoint_values(spec, trial))
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


@dataclass(frozen=True)
class PodAdditions:
    """What every pod template of one trial gets, computed once per trial."""

    spec: ExperimentSpec
    trial: Trial
    settings: RenderSettings
    token: str | None
    namespace: str
    labels: dict[str, str]
    #: ``(downward API field, value)`` pairs that pick the reporting pod; empty: every pod.
    reporting: tuple[tuple[str, str], ...] = ()
    #: Substitute in the primary container (a custom resource's spec is substituted whole).
    substitute_primary: bool = True

    def apply(self, pod_template: dict[str, Any], field: str) -> None:
        """Make every addition to ``pod_template`` (a PodTemplateSpec at ``field``)."""
        pod: dict[str, Any] = pod_template.setdefault("spec", {})
        primary = _primary_container(pod, self.spec.trial_template.primary_container)
        if primary is not None:
            index, container = primary
            if self.substitute_primary:
                self._substitute(container, f"{field}.spec.containers[{index}]")
            if self.spec.trial_template.metrics.source is MetricsSource.STDOUT:
                _wrap_stdout(container, self.settings)
            # The assignment and identity as env, first so the template's env can use $(VAR).
            container["env"] = [*self._primary_env(), *(container.get("env") or [])]
            mount_checkpoints(self.spec, pod, container)
        mounts = _share_metrics_volume(
            self.spec, pod, None if primary is None else primary[1], self.settings
        )
        pod["initContainers"] = [*(pod.get("initContainers") or []), self._collector(mounts)]
        pod.setdefault("restartPolicy", "Never")
        pod.setdefault("automountServiceAccountToken", False)
        metadata: dict[str, Any] = pod_template.setdefault("metadata", {})
        metadata["labels"] = {**(metadata.get("labels") or {}), **self.labels}

    def _substitute(self, primary: dict[str, Any], path: str) -> None:
        """Placeholders, in command, args and literal env values only."""
        known = known_placeholders(self.spec)
        values = trial_values(self.spec, self.trial, self.namespace)
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

    def _primary_env(self) -> list[dict[str, Any]]:
        spec, trial = self.spec, self.trial
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
            env.append(
                {"name": ENV_REPORT_URL, "value": f"http://127.0.0.1:{self.settings.push_port}"}
            )
        env += checkpoint_env(spec, trial)
        return env

    def _collector(self, mounts: list[dict[str, Any]]) -> dict[str, Any]:
        """The collector as a native sidecar of the trial pod."""
        settings, trial = self.settings, self.trial
        container: dict[str, Any] = {
            "name": COLLECTOR_NAME,
            "image": settings.collector_image,
        }
        if settings.collector_image_pull_policy is not None:
            container["imagePullPolicy"] = settings.collector_image_pull_policy
        container["command"] = ["kubesweep-collector"]
        container["env"] = [
            {"name": ENV_COLLECTOR_CONFIG, "value": collector_config(self.spec, settings)},
            {"name": ENV_INTAKE_URL, "value": settings.intake_url},
            _token_env(self.token),
            {"name": ENV_EXPERIMENT, "value": trial.spec.experiment},
            {"name": ENV_TRIAL_NAME, "value": trial.metadata.name},
            {
                "name": ENV_TRIAL_NAMESPACE,
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            {"name": ENV_TRIAL_UID, "value": str(trial.metadata.uid)},
            {"name": ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            *self._reporting_env(),
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

    def _reporting_env(self) -> list[dict[str, Any]]:
        """The rule and, through the downward API, each pod field it compares."""
        if not self.reporting:
            return []
        return [
            {"name": ENV_REPORTING_POD, "value": reporting_rule_text(self.reporting)},
            *(
                {
                    "name": f"{ENV_REPORTING_FIELD_PREFIX}{index}",
                    "valueFrom": {"fieldRef": {"fieldPath": field}},
                }
                for index, (field, _) in enumerate(self.reporting)
            ),
        ]


def _token_env(token: str | None) -> dict[str, Any]:
    if not token:
        raise ValueError("render_trial needs the trial's token (the HMAC of its uid)")
    return {"name": ENV_TRIAL_TOKEN, "value": token}


def _primary_container(pod: dict[str, Any], primary_name: str) -> tuple[int, dict[str, Any]] | None:
    containers = enumerate(pod.get("containers") or [])
    return next(((i, c) for i, c in containers if c.get("name") == primary_name), None)


def _wrap_stdout(primary: dict[str, Any], settings: RenderSettings) -> None:
    """The stdout source: tee the output into the shared volume, keep the exit code."""
    command, args = settings.wrap_command(
        list(primary["command"]), list(primary.get("args") or []), STDOUT_LOG
    )
    primary["command"] = list(command)
    primary["args"] = list(args)


def _share_metrics_volume(
    spec: ExperimentSpec,
    pod: dict[str, Any],
    primary: dict[str, Any] | None,
    settings: RenderSettings,
) -> list[dict[str, Any]]:
    """One emptyDir shared by the primary container and the collector; its mounts."""
    mounts: list[dict[str, Any]] = [{"name": METRICS_VOLUME, "mountPath": METRICS_DIR}]
    extra = extra_mount_dir(spec)
    if extra is not None:
        mounts.append({"name": METRICS_VOLUME, "mountPath": extra})
    if primary is not None:
        primary["volumeMounts"] = [*(primary.get("volumeMounts") or []), *copy.deepcopy(mounts)]
    volume: dict[str, Any] = {"name": METRICS_VOLUME, "emptyDir": {}}
    if settings.metrics_volume_size_limit is not None:
        volume["emptyDir"]["sizeLimit"] = settings.metrics_volume_size_limit
    pod["volumes"] = [*(pod.get("volumes") or []), volume]
    return mounts
