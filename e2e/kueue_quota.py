"""A Kueue GPU quota for one test namespace, and how to read what Kueue admitted.

``gpu_quota`` makes a ResourceFlavor, a ClusterQueue of ``gpus`` GPUs open to the
test's namespace only, and a LocalQueue in it, and waits until both queues are
``Active``. On the way out it removes them again while Kueue runs: Kueue's
finalizers on the queues and on the workloads' ``Workload`` objects would
otherwise hold the objects (and the test's namespace) after Kueue stops. The
namespace's workloads (Jobs, JobSets and whatever ``owners`` names, such as
Experiments) go first, so no admitted workload holds the ClusterQueue.

``admitted_intervals`` reads from each finished ``Workload`` when it was admitted
and when it finished: what "at most N at a time" is judged on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from cluster.kube import JSON, path_for
from conftest import Apply, Cluster, wait_for

KUEUE = "kueue.x-k8s.io/v1beta2"
GPU = "nvidia.com/gpu"
#: Workload kinds whose objects are removed before the queues (api version, plural).
WORKLOAD_KINDS = (("batch/v1", "jobs"), ("jobset.x-k8s.io/v1alpha2", "jobsets"))


def condition(obj: JSON | None, ctype: str) -> JSON | None:
    """The condition ``ctype`` of ``obj`` if it is ``True``."""
    for c in (obj or {}).get("status", {}).get("conditions") or []:
        if c["type"] == ctype and c["status"] == "True":
            found: JSON = c
            return found
    return None


def timestamp(stamp: str) -> datetime:
    """An API server's RFC 3339 time."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def most_at_once(intervals: Sequence[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one time; one that ends when another starts does not overlap."""
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda e: (e[0], e[1]),
    )
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def admitted_intervals(cluster: Cluster, namespace: str) -> list[tuple[datetime, datetime]]:
    """``(admitted, finished)`` of every Workload of the namespace; each must have finished."""
    intervals = []
    for workload in cluster.kube.list(path_for(KUEUE, "workloads", namespace)):
        # A finished workload keeps its Admitted condition, from the time it was admitted.
        admitted, finished = condition(workload, "Admitted"), condition(workload, "Finished")
        assert admitted is not None, workload["status"]
        assert finished is not None, workload["status"]
        intervals.append(
            (timestamp(admitted["lastTransitionTime"]), timestamp(finished["lastTransitionTime"]))
        )
    return intervals


@contextmanager
def gpu_quota(
    cluster: Cluster,
    namespace: str,
    apply: Apply,
    *,
    gpus: int,
    local_queue: str,
    owners: Sequence[tuple[str, str]] = (),
) -> Iterator[str]:
    """A ClusterQueue of ``gpus`` GPUs for ``namespace`` and its LocalQueue; yields the CQ's name.

    ``owners`` are ``(api version, plural)`` of objects that own the workloads (deleted
    first, in the foreground, so their workloads go with them).
    """
    kube = cluster.kube
    flavor, cluster_queue = f"{namespace}-flavor", f"{namespace}-cq"
    cq_path = path_for(KUEUE, "clusterqueues", None, cluster_queue)
    kube.create(
        path_for(KUEUE, "resourceflavors"),
        {"apiVersion": KUEUE, "kind": "ResourceFlavor", "metadata": {"name": flavor}},
    )
    quota = [
        {"name": "cpu", "nominalQuota": "16"},
        {"name": "memory", "nominalQuota": "64Gi"},
        {"name": GPU, "nominalQuota": gpus},
    ]
    kube.create(
        path_for(KUEUE, "clusterqueues"),
        {
            "apiVersion": KUEUE,
            "kind": "ClusterQueue",
            "metadata": {"name": cluster_queue},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", GPU],
                        "flavors": [{"name": flavor, "resources": quota}],
                    }
                ],
            },
        },
    )
    try:
        wait_for(
            lambda: condition(kube.get(cq_path), "Active"),
            30,
            what=f"ClusterQueue {cluster_queue} Active",
        )
        apply(
            {
                "apiVersion": KUEUE,
                "kind": "LocalQueue",
                "metadata": {"name": local_queue},
                "spec": {"clusterQueue": cluster_queue},
            }
        )
        wait_for(
            lambda: condition(
                kube.get(path_for(KUEUE, "localqueues", namespace, local_queue)), "Active"
            ),
            30,
            what=f"LocalQueue {local_queue} Active",
        )
        yield cluster_queue
    finally:
        _remove(cluster, namespace, owners, flavor, cluster_queue, local_queue)


def _remove(
    cluster: Cluster,
    namespace: str,
    owners: Sequence[tuple[str, str]],
    flavor: str,
    cluster_queue: str,
    local_queue: str,
) -> None:
    kube = cluster.kube
    for api, plural in [*owners, *WORKLOAD_KINDS]:
        for obj in kube.list(path_for(api, plural, namespace)):
            kube.delete(
                path_for(api, plural, namespace, obj["metadata"]["name"]),
                propagationPolicy="Background",
            )
    wait_for(
        lambda: not any(kube.list(path_for(api, p, namespace)) for api, p in owners),
        60,
        what=f"{', '.join(p for _, p in owners) or 'owners'} in {namespace} gone",
    )
    kube.delete(path_for(KUEUE, "localqueues", namespace, local_queue))
    kube.delete(path_for(KUEUE, "clusterqueues", None, cluster_queue))
    kube.delete(path_for(KUEUE, "resourceflavors", None, flavor))
    wait_for(
        lambda: (
            not kube.list(path_for(KUEUE, "workloads", namespace))
            and kube.get_or_none(path_for(KUEUE, "clusterqueues", None, cluster_queue)) is None
            and kube.get_or_none(path_for(KUEUE, "resourceflavors", None, flavor)) is None
        ),
        60,
        what=f"Kueue's workloads in {namespace}, ClusterQueue {cluster_queue}, {flavor} gone",
    )
