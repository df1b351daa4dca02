"""What ``trialTemplate.checkpoints`` adds to a trial pod, and what can be wrong with it.

The trainer learns two locations, as environment variables and as placeholders
(``${trial.checkpointDir}``, ``${trial.resumeFrom}``): its own checkpoint
directory, and, when the trial continues a parent's training (a promotion, a
pbt step), the parent's. With a claim, the claim is mounted into the primary
container only: the collector never reads checkpoints, and a pod that does not
train (another rank's sidecar) has no use for it. The whole claim is mounted,
not a per-trial ``subPath``, because a child must read its parent's directory.

Nothing here creates the directories: the trainer does (``kubesweep.checkpoint_dir``
does it for Python trainers), since only a running pod can write to the claim.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from kubesweep.api import ExperimentSpec, Trial
from kubesweep.podcontract import ENV_CHECKPOINT_DIR, ENV_RESUME_FROM
from kubesweep.rendering.installation import METRICS_DIR

#: The pod volume that holds the checkpoint claim; reserved in templates.
CHECKPOINT_VOLUME = "kubesweep-checkpoints"
#: Placeholders under ``trial.`` that exist when the template has checkpoints.
CHECKPOINT_FIELDS = ("checkpointDir", "resumeFrom")


def checkpoint_values(spec: ExperimentSpec, trial: Trial) -> dict[str, str]:
    """``trial.checkpointDir`` and ``trial.resumeFrom`` (empty without a parent), or nothing."""
    checkpoints = spec.trial_template.checkpoints
    if checkpoints is None:
        return {}
    experiment = trial.spec.experiment
    parent = trial.spec.parent
    return {
        "trial.checkpointDir": checkpoints.location(experiment, trial.metadata.name),
        "trial.resumeFrom": "" if parent is None else checkpoints.location(experiment, parent),
    }


def checkpoint_env(spec: ExperimentSpec, trial: Trial) -> list[dict[str, Any]]:
    """The primary container's checkpoint variables; the resume one only with a parent."""
    values = checkpoint_values(spec, trial)
    if not values:
        return []
    env = [{"name": ENV_CHECKPOINT_DIR, "value": values["trial.checkpointDir"]}]
    if values["trial.resumeFrom"]:
        env.append({"name": ENV_RESUME_FROM, "value": values["trial.resumeFrom"]})
    return env


def mount_checkpoints(spec: ExperimentSpec, pod: dict[str, Any], primary: dict[str, Any]) -> None:
    """Mount the checkpoint claim into the primary container of ``pod``, if there is one."""
    checkpoints = spec.trial_template.checkpoints
    if checkpoints is None or checkpoints.volume_claim is None:
        return
    mount = {"name": CHECKPOINT_VOLUME, "mountPath": checkpoints.mount_path}
    primary["volumeMounts"] = [*(primary.get("volumeMounts") or []), mount]
    volume = {
        "name": CHECKPOINT_VOLUME,
        "persistentVolumeClaim": {"claimName": checkpoints.volume_claim},
    }
    pod["volumes"] = [*(pod.get("volumes") or []), volume]


def checkpoint_problems(
    spec: ExperimentSpec, pods: list[tuple[str, Mapping[str, Any]]], primaries: list[str]
) -> list[str]:
    """Why the claim could not be mounted as asked: the path, or a name the template took.

    ``pods`` are ``(field, pod spec)`` pairs; ``primaries`` the mount paths the
    primary containers already use.
    """
    checkpoints = spec.trial_template.checkpoints
    if checkpoints is None or checkpoints.volume_claim is None:
        return []
    problems = []
    path = posixpath.normpath(checkpoints.mount_path)
    if path in ("/", METRICS_DIR) or path.startswith(METRICS_DIR + "/"):
        problems.append(
            f"trialTemplate.checkpoints.mountPath: {path} is "
            + ("the root" if path == "/" else "kubesweep's metrics volume")
            + "; mount the checkpoints elsewhere, such as /checkpoints"
        )
    if path in primaries:
        problems.append(
            f"trialTemplate.checkpoints.mountPath: {path} is already a volume mount of the "
            "primary container; choose another path"
        )
    for at, pod in pods:
        for index, volume in enumerate(pod.get("volumes") or []):
            if isinstance(volume, Mapping) and volume.get("name") == CHECKPOINT_VOLUME:
                problems.append(
                    f"{at}.volumes[{index}].name: {CHECKPOINT_VOLUME} is reserved for the "
                    "checkpoint claim; rename the volume"
                )
    return problems
