"""Everything about a trial template that can be wrong before any trial exists.

:func:`check_template` lists every problem of a spec at once, each naming the
field and the fix, so the operator can refuse an Experiment on its first
reconcile (and ``kubesweep validate`` can do so locally) instead of failing each
trial at render time. :func:`~kubesweep.rendering.render_trial` runs the same
checks, so the two can never disagree.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from kubesweep.api import ExperimentSpec, MetricsSource
from kubesweep.rendering.checkpoints import checkpoint_problems
from kubesweep.rendering.installation import COLLECTOR_NAME, METRICS_DIR, METRICS_VOLUME
from kubesweep.rendering.placeholders import check_placeholders
from kubesweep.rendering.workloads import (
    pod_specs,
    pod_template_problems,
    primary_containers,
    reporting_problems,
)

#: Env of the primary container that kubesweep owns; a template may not set them.
ENV_PREFIX = "KUBESWEEP_"

_PATH_SOURCES = (MetricsSource.FILE, MetricsSource.JSON, MetricsSource.TFEVENT)
#: Directories the shared volume may never be mounted over: it would hide what the
#: image (or the kernel) keeps there and break the container.
_SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/sys",
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/local/bin",
        "/usr/local/lib",
        "/usr/sbin",
        "/var",
    }
)
_KERNEL_TREES = ("/proc/", "/sys/", "/dev/")


def param_env_name(name: str) -> str:
    """The environment variable that carries parameter ``name``."""
    return f"KUBESWEEP_PARAM_{name.upper()}"


def metrics_path(spec: ExperimentSpec) -> str | None:
    """Where the collector finds the trainer's metrics file or directory, as an absolute path.

    A relative ``metrics.path`` is taken inside the shared volume, which is the
    convention the examples use: the trainer reads ``$KUBESWEEP_METRICS_PATH``.
    """
    path = spec.trial_template.metrics.path
    if spec.trial_template.metrics.source not in _PATH_SOURCES or path is None:
        return None
    return posixpath.normpath(posixpath.join(METRICS_DIR, path))


def extra_mount_dir(spec: ExperimentSpec) -> str | None:
    """A directory outside ``/kubesweep`` where the shared volume must also be mounted.

    Like Katib, a metrics file the trainer writes elsewhere (``/output/m.jsonl``)
    is made visible to the collector by mounting the shared emptyDir at that
    directory in both containers.
    """
    path = metrics_path(spec)
    if path is None:
        return None
    directory = (
        path
        if spec.trial_template.metrics.source is MetricsSource.TFEVENT
        else posixpath.dirname(path)
    )
    if directory == METRICS_DIR or directory.startswith(METRICS_DIR + "/"):
        return None
    return directory


def _objects(items: Any) -> list[Mapping[str, Any]]:
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, Mapping)]


def _reserved_names(at: str, pod: Mapping[str, Any]) -> list[str]:
    """The collector's container and volume names, taken in a pod template."""
    problems = []
    for field in ("containers", "initContainers"):
        for index, container in enumerate(_objects(pod.get(field))):
            if container.get("name") == COLLECTOR_NAME:
                problems.append(
                    f"{at}.{field}[{index}].name: {COLLECTOR_NAME} is reserved for "
                    "kubesweep's collector sidecar; rename the container"
                )
    for index, volume in enumerate(_objects(pod.get("volumes"))):
        if volume.get("name") == METRICS_VOLUME:
            problems.append(
                f"{at}.volumes[{index}].name: {METRICS_VOLUME} is reserved for kubesweep's "
                "metrics volume; rename the volume"
            )
    return problems


def _metrics_path_problems(spec: ExperimentSpec, primary: Mapping[str, Any]) -> list[str]:
    given = spec.trial_template.metrics.path
    if given is None or spec.trial_template.metrics.source not in _PATH_SOURCES:
        return []
    if not given.startswith("/") and not (metrics_path(spec) or "").startswith(METRICS_DIR + "/"):
        return [
            f"trialTemplate.metrics.path: the relative path {given!r} leaves /kubesweep; "
            "give a path inside it (such as metrics.jsonl) or an absolute one"
        ]
    extra = extra_mount_dir(spec)
    if extra is None:
        return []
    if extra in _SYSTEM_DIRS or extra.startswith(_KERNEL_TREES):
        return [
            f"trialTemplate.metrics.path: kubesweep would mount the metrics volume over "
            f"{extra}, which the container needs; write the metrics under /kubesweep, or "
            "give a relative path (taken in /kubesweep)"
        ]
    if extra in {m.get("mountPath") for m in _objects(primary.get("volumeMounts"))}:
        return [
            f"trialTemplate.metrics.path: {extra} is already a volume mount of the primary "
            "container; write the metrics under /kubesweep or give a relative path"
        ]
    return []


def check_template(spec: ExperimentSpec) -> list[str]:
    """Every reason the spec's trials could not be rendered, one message each."""
    template = spec.trial_template
    problems = check_placeholders(spec)
    for at, pod in pod_specs(template):
        problems += _reserved_names(at, pod)
    for path, primary in primary_containers(template):
        for index, entry in enumerate(_objects(primary.get("env"))):
            name = entry.get("name")
            if isinstance(name, str) and name.startswith(ENV_PREFIX):
                problems.append(
                    f"{path}.env[{index}].name: {name} is set by kubesweep (variables starting "
                    f"with {ENV_PREFIX} are reserved); remove it from the template"
                )
        if template.metrics.source is MetricsSource.STDOUT and not primary.get("command"):
            problems.append(
                f"{path}.command: the stdout metrics source needs an explicit command, since "
                "Kubernetes cannot wrap an image's ENTRYPOINT it does not know; set command "
                "(and args), or use another metrics source"
            )
        problems += _metrics_path_problems(spec, primary)
    problems += pod_template_problems(template) + reporting_problems(template)
    problems += checkpoint_problems(
        spec,
        list(pod_specs(template)),
        [
            str(m.get("mountPath"))
            for _, primary in primary_containers(template)
            for m in _objects(primary.get("volumeMounts"))
        ],
    )

    names = [p.name for p in spec.parameters]
    if spec.fidelity is not None:
        names.append(spec.fidelity.parameter)
    seen: dict[str, str] = {}
    for name in names:
        variable = param_env_name(name)
        if variable in seen:
            problems.append(
                f"spec.parameters: {seen[variable]} and {name} both become {variable}; "
                "rename one so their upper-case names differ"
            )
        seen[variable] = name
    return list(dict.fromkeys(problems))  # one message for what several pod templates share
