"""GPU accounting: what a trial's pods hold, over the time they hold it.

A trial of a distributed workload is several pods (an Indexed Job's completions,
a JobSet's replicated Jobs), and each holds its GPUs from the moment the kubelet
admits it until it ends, whichever rank it is. So a trial's GPU-seconds are the
sum, over every pod it ever had, of that pod's GPUs times its running time, and
``budget.maxGPUHours`` is judged on that sum.

Pods are the truth when they are known (the operator watches them). Where a
runner knows no pods (``kubesweep run`` starts processes), the workload's
template stands in: the GPUs of one pod times the pods that run at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from kubesweep.planning.views import PodView

#: Resource names counted as GPUs for ``gpuSeconds``.
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")


def container_gpus(container: Mapping[str, Any]) -> float:
    """GPUs one container asks for: its limits, else its requests."""
    resources = container.get("resources") or {}
    for kind in ("limits", "requests"):
        values = resources.get(kind) or {}
        found = [float(values[name]) for name in GPU_RESOURCES if name in values]
        if found:
            return sum(found)
    return 0.0


def pod_spec_gpus(pod: Mapping[str, Any]) -> float:
    """GPUs a pod holds, as the scheduler counts them.

    The main containers and native sidecars (init containers that keep running,
    ``restartPolicy: Always``) run together and add up; a plain init container runs
    alone before them, so the pod needs the larger of the two.
    """
    init = [c for c in pod.get("initContainers") or [] if isinstance(c, Mapping)]
    sidecars = [c for c in init if c.get("restartPolicy") == "Always"]
    running = sum(container_gpus(c) for c in [*(pod.get("containers") or []), *sidecars])
    alone = max((container_gpus(c) for c in init if c not in sidecars), default=0.0)
    return max(running, alone)


def gpus_per_pod(job: Mapping[str, Any] | None) -> float:
    """GPUs one pod of a Job asks for (limits, else requests), over all its containers."""
    if not job:
        return 0.0
    spec = job.get("spec") or {}
    return pod_spec_gpus((spec.get("template") or {}).get("spec") or {})


def job_width(job_spec: Mapping[str, Any]) -> int:
    """How many pods of a Job run at once: its parallelism, capped by its completions."""
    parallelism = job_spec.get("parallelism")
    width = 1 if parallelism is None else int(parallelism)
    completions = job_spec.get("completions")
    if completions is not None:
        width = min(width, int(completions))
    return max(width, 0)


def job_gpus(job: Mapping[str, Any] | None) -> float:
    """GPUs a Job's pods hold together while it runs at full width."""
    if not job:
        return 0.0
    return gpus_per_pod(job) * job_width(job.get("spec") or {})


def pods_gpu_seconds(pods: Sequence[PodView], until: datetime) -> float | None:
    """GPU-seconds of every pod, each from its start to its end (or ``until``).

    ``None`` when no pod says what it holds (pods seen by a runner that does not
    read pod specs); then the template has to stand in.
    """
    known = [p for p in pods if p.gpus is not None]
    if not known:
        return None
    return sum(_pod_seconds(p, until) for p in known)


def _pod_seconds(pod: PodView, until: datetime) -> float:
    if pod.start_time is None or not pod.gpus:
        return 0.0
    end = until if pod.finish_time is None else min(pod.finish_time, until)
    return float(pod.gpus) * max(0.0, (end - pod.start_time).total_seconds())
