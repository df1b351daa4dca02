"""One container's state as the node tracks it, and its entry in the pod's status.

A :class:`Container` is a record: the runtime fills in its process and state,
the probes its :class:`ProbeState`, the pod runner decides when it starts,
restarts or is done. What it reports (``ready``, ``started``, ``restartCount``,
``state``, ``lastState``) follows from that record alone.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field

from cluster.kube import JSON

#: Restart back-off: 1 s doubling to 20 s, shorter than a kubelet's 10 s to 5 min,
#: so tests of restarts finish quickly.
BACKOFF_BASE, BACKOFF_MAX = 1.0, 20.0


@dataclass
class ProbeState:
    """One probe of one container run: when it is due, its streak, its verdict."""

    next_at: float = 0.0
    successes: int = 0
    failures: int = 0
    ok: bool = False


@dataclass
class Container:
    """One container of a pod: its spec, its current process and what it reports."""

    spec: JSON
    kind: str  # "init", "sidecar" or "main"
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = -1  # becomes 0 on the first start
    state: JSON = field(default_factory=lambda: {"waiting": {"reason": "PodInitializing"}})
    last_state: JSON = field(default_factory=dict)
    started_at: str = ""
    next_start: float = 0.0
    backoff: float = BACKOFF_BASE
    done: bool = False  # terminated and will not run again
    gpus: list[int] = field(default_factory=list)
    container_id: str = ""
    env: dict[str, str] = field(default_factory=dict)
    probes: dict[str, ProbeState] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def started_ok(self) -> bool:
        """Running, and its startupProbe (if any) has succeeded."""
        st = self.probes.get("startup")
        return self.running and (st is None or st.ok)

    @property
    def ready(self) -> bool:
        st = self.probes.get("readiness")
        return self.kind != "init" and self.started_ok and (st is None or st.ok)

    def schedule_restart(self) -> None:
        """Wait out the back-off (doubling it for next time) in ``CrashLoopBackOff``."""
        self.last_state = self.state
        self.next_start = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        self.state = {
            "waiting": {"reason": "CrashLoopBackOff", "message": f"back-off restarting {self.name}"}
        }

    def status(self) -> JSON:
        """The container's entry in ``containerStatuses`` (or ``initContainerStatuses``)."""
        st: JSON = {
            "name": self.name,
            "image": self.spec.get("image") or "none",
            "imageID": "",
            "ready": self.ready,
            "started": self.started_ok,
            "restartCount": max(self.restarts, 0),
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            st["containerID"] = self.container_id
        return st
