"""What one trial runs locally, derived from the Job the operator would create for it.

The trial is rendered with :func:`kubesweep.rendering.render_trial`, exactly
as on a cluster, and the primary container of the rendered Job is turned into
a process: its (substituted) command and args, its env (``KUBESWEEP_PARAMS``,
``KUBESWEEP_PARAM_*`` and the template's own, with ``$(VAR)`` expanded as the
kubelet would), and the collector's source configuration as the sidecar would
read it. The only renderer setting that differs is the stdout wrapper, which
is not needed here: the runner sends the process's output to the log itself.

Paths in the pod's shared volume (``/kubesweep``, or the directory a metrics
file lives in) become the trial's own directory, in env values and in
arguments, so parallel trials never write into each other's files. The
checkpoint claim's mount path becomes the run's checkpoint directory.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesweep.api import Experiment, ObjectMeta, Trial, TrialSpec
from kubesweep.collector.config import CONFIG_ENV, CollectorConfig
from kubesweep.planning import gpus_per_pod
from kubesweep.rendering import METRICS_DIR, RenderSettings, collector_config, render_trial
from kubesweep.rendering.validate import extra_mount_dir

#: The namespace a local trial renders into (only ``${trial.namespace}`` sees it).
LOCAL_NAMESPACE = "local"
_KUBE_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class LaunchError(ValueError):
    """The trial cannot run as a local process; the message says why and what to change."""


@dataclass(frozen=True)
class Launch:
    """A trial as a local process, plus where its metrics come from."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    log_path: Path
    collector: CollectorConfig
    gpus: int
    image: str | None
    skipped_env: tuple[str, ...] = ()


def _no_wrap(command: list[str], args: list[str], log_path: str) -> tuple[list[str], list[str]]:
    """The stdout wrapper's stand-in: locally the runner writes the log itself."""
    del log_path
    return command, args


def local_trial(experiment: Experiment, trial_index: int, name: str, **spec: Any) -> Trial:
    """The ``Trial`` object the renderer needs, as the API server would return it."""
    return Trial(
        metadata=ObjectMeta(name=name, namespace=LOCAL_NAMESPACE, uid=f"local-{name}"),
        spec=TrialSpec(experiment=experiment.metadata.name, index=trial_index, **spec),
    )


def expand_kube_vars(text: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` replaced from ``env`` as the kubelet does; unknown ones stay, ``$$`` is ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _KUBE_VAR.sub(replace, text)


def remap_paths(text: str, mapping: Mapping[str, Path]) -> str:
    """Every mention of a pod path from ``mapping`` (as a whole path component) made local."""
    for pod_path, local in sorted(mapping.items(), key=lambda item: -len(item[0])):
        pattern = re.compile(rf"(?<![\w./-]){re.escape(pod_path)}(?=/|$|[\s\"',;:])")
        text = pattern.sub(str(local), text)
    return text


def path_mapping(
    experiment: Experiment, trial_dir: Path, checkpoint_root: Path | None = None
) -> dict[str, Path]:
    """Pod paths of the shared volume (and the checkpoint claim) and where they live locally.

    The checkpoint claim's mount path becomes ``checkpoint_root``, shared by every
    trial of the run as the claim is on a cluster, so a child finds its parent's.
    """
    mapping = {METRICS_DIR: trial_dir}
    checkpoints = experiment.spec.trial_template.checkpoints
    if checkpoints is not None and checkpoints.volume_claim is not None:
        mapping[checkpoints.mount_path] = checkpoint_root or trial_dir / "checkpoints"
    extra = extra_mount_dir(experiment.spec)
    if extra is not None:
        mapping[extra] = trial_dir / "mnt" / extra.lstrip("/")
    return mapping


def _primary(job: Mapping[str, Any], name: str) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    return dict(next(c for c in containers if c.get("name") == name))


def build_launch(
    experiment: Experiment,
    trial: Trial,
    trial_dir: Path,
    *,
    push_port: int,
    base_env: Mapping[str, str],
    template_checked: bool = False,
    checkpoint_root: Path | None = None,
) -> Launch:
    """The process for ``trial``; raises :class:`LaunchError` or the renderer's ``RenderError``.

    ``template_checked`` says the caller has already found the spec's template free of
    problems (see :func:`~kubesweep.rendering.render_trial`).
    """
    settings = RenderSettings(
        collector_image="local",
        intake_url="http://127.0.0.1:0",
        wrap_command=_no_wrap,
        push_port=push_port,
    )
    job = render_trial(
        experiment, trial, settings, token="local", template_checked=template_checked
    )
    spec = experiment.spec
    primary = _primary(job, spec.trial_template.primary_container)
    command = [str(c) for c in primary.get("command") or []]
    if not command:
        raise LaunchError(
            f"trialTemplate: container {primary['name']} sets no command; a local run cannot "
            "know the image's entrypoint, so set command (and args) explicitly"
        )
    mapping = path_mapping(experiment, trial_dir, checkpoint_root)
    env = dict(base_env)
    skipped: list[str] = []
    for entry in primary.get("env") or []:
        if "value" in entry:
            value = expand_kube_vars(str(entry["value"]), env)
            env[str(entry["name"])] = remap_paths(value, mapping)
        else:
            skipped.append(str(entry["name"]))
    if primary.get("envFrom"):
        skipped.append("envFrom")
    argv = [
        remap_paths(expand_kube_vars(str(item), env), mapping)
        for item in [*command, *(primary.get("args") or [])]
    ]
    log_path = trial_dir / "stdout.log"
    config = json.loads(collector_config(spec, settings))
    if config.get("path"):
        config["path"] = remap_paths(str(config["path"]), mapping)
    if config.get("source") == "push":
        config.pop("port", None)  # the runner serves the push endpoint itself
    collector = CollectorConfig.from_env(
        {
            CONFIG_ENV: json.dumps(config),
            "KUBESWEEP_STDOUT_LOG": str(log_path),
            "KUBESWEEP_PUSH_PORT": "0",
            "KUBESWEEP_TRIAL_NAME": trial.metadata.name,
        }
    )
    return Launch(
        argv=tuple(argv),
        env=env,
        log_path=log_path,
        collector=collector,
        gpus=math.ceil(gpus_per_pod(job)),
        image=primary.get("image"),
        skipped_env=tuple(skipped),
    )


def describe_launch(launch: Launch, cwd: Path) -> str:
    """One line for the user: the image is not used, this command runs instead."""
    shown = " ".join(_quote(a) for a in launch.argv[:8])
    if len(launch.argv) > 8:
        shown += " ..."
    image = f"the image {launch.image} is not used; " if launch.image else ""
    return f"{image}trials run as local processes in {cwd}: {shown}"


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else json.dumps(arg)


def python_path_env(base: Mapping[str, str], executable: str) -> dict[str, str]:
    """``base`` with this Python's directory first on PATH, so ``python`` is this one."""
    env = dict(base)
    directory = str(Path(executable).parent)
    parts = [p for p in env.get("PATH", "").split(":") if p and p != directory]
    env["PATH"] = ":".join([directory, *parts])
    return env


def gpu_devices(lines: Sequence[str], visible: str | None) -> list[str]:
    """GPU indexes from ``nvidia-smi -L`` lines, narrowed to ``CUDA_VISIBLE_DEVICES`` if set."""
    found = []
    for line in lines:
        match = re.match(r"GPU (\d+):", line.strip())
        if match:
            found.append(match.group(1))
    if visible is not None and visible.strip():
        allowed = [v.strip() for v in visible.split(",") if v.strip()]
        return [d for d in allowed if d in found]
    return found
