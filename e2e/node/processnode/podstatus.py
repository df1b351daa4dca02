"""A pod's status, written as a kubelet writes it.

Conditions keep their ``lastTransitionTime`` until their status or reason
changes; the whole status is sent as a strategic-merge patch only when it
differs from the last one written, and retried, because a lost terminal status
would leave a Job waiting forever. The patch names the pod's uid, so a new pod
of the same name is never written to.
"""

from __future__ import annotations

import json
import logging
import time

from cluster.kube import JSON, ApiError, Kube
from node.processnode.clock import now
from node.processnode.container import Container
from node.processnode.host import POD_IP

log = logging.getLogger(__name__)


class PodStatusWriter:
    """Writes the status of one pod; remembers its conditions and what was written last."""

    def __init__(self, kube: Kube, namespace: str, name: str, uid: str, start_time: str) -> None:
        self.kube = kube
        self.ns = namespace
        self.pname = name
        self.uid = uid
        self.start_time = start_time
        self.conditions: dict[str, JSON] = {}
        self._last_written = ""

    def _cond(self, ctype: str, ok: bool, reason: str | None = None) -> None:
        status = "True" if ok else "False"
        old = self.conditions.get(ctype)
        if old and old["status"] == status and old.get("reason") == reason:
            return
        # reason is always present: null removes a stale one under strategic merge
        self.conditions[ctype] = {
            "type": ctype,
            "status": status,
            "lastTransitionTime": now(),
            "reason": reason,
        }

    def write(
        self,
        *,
        phase: str,
        reason: str | None,
        message: str | None,
        init: list[Container],
        main: list[Container],
        terminating: bool,
    ) -> bool:
        """Patch the status if it changed; False when the pod is gone (or is another pod now)."""
        inits_done = all(
            (c.kind == "init" and c.done) or (c.kind == "sidecar" and c.restarts >= 0) for c in init
        )
        sidecars_up = all(c.ready for c in init if c.kind == "sidecar")
        terminal = phase in ("Succeeded", "Failed")
        ready = (
            not terminal
            and inits_done
            and sidecars_up
            and all(c.ready for c in main)
            and not terminating
        )
        self._cond("PodReadyToStartContainers", not terminal)
        self._cond("Initialized", inits_done, None if inits_done else "ContainersNotInitialized")
        ready_reason = "PodCompleted" if terminal else (None if ready else "ContainersNotReady")
        self._cond("ContainersReady", ready, ready_reason)
        self._cond("Ready", ready, ready_reason)
        status: JSON = {
            "phase": phase,
            "conditions": list(self.conditions.values()),
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": self.start_time,
            "containerStatuses": [c.status() for c in main],
        }
        if init:
            status["initContainerStatuses"] = [c.status() for c in init]
        status["reason"], status["message"] = reason, message  # None clears
        text = json.dumps(status, sort_keys=True)
        if text == self._last_written:
            return True
        for attempt in range(5):  # the terminal status must not be lost to a blip
            try:
                self.kube.patch(
                    f"/api/v1/namespaces/{self.ns}/pods/{self.pname}/status",
                    {"metadata": {"uid": self.uid}, "status": status},
                    kind="strategic",
                )
                self._last_written = text
                return True
            except ApiError as e:
                if e.status in (404, 409):  # gone, or a new pod of the same name
                    return False
                log.warning("status of %s/%s: %s", self.ns, self.pname, e)
                if e.status == 422:
                    return True
            except OSError as e:
                log.warning("status of %s/%s: %s", self.ns, self.pname, e)
            time.sleep(0.5 * (attempt + 1))
        return True
