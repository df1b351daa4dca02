"""GPU device indices: a pod holds its own, disjoint from every other running pod's.

There are no devices behind the indices; what tests check is the scheduler's
and the operator's arithmetic, and that no two pods are told the same index.
"""

from __future__ import annotations

import threading

from cluster.kube import JSON

#: The extended resource the node offers and containers ask for.
GPU = "nvidia.com/gpu"


class GpuAllocator:
    """Device indices held by running pods; a pod's indices are disjoint from all others'."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._held: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def allocate(self, uid: str, n: int) -> list[int] | None:
        """``n`` free indices for pod ``uid`` (the ones it holds already, if any), or None."""
        with self._lock:
            if uid in self._held:
                return self._held[uid]
            busy = {i for ids in self._held.values() for i in ids}
            free = [i for i in range(self.count) if i not in busy]
            if len(free) < n:
                return None
            self._held[uid] = free[:n]
            return self._held[uid]

    def release(self, uid: str) -> None:
        with self._lock:
            self._held.pop(uid, None)


def gpu_limit(container: JSON) -> int:
    """The GPUs a container spec asks for (its limit, else its request)."""
    res = container.get("resources") or {}
    v = (res.get("limits") or {}).get(GPU) or (res.get("requests") or {}).get(GPU) or 0
    return int(v)
