"""One pod's life on the process node, from admission to its terminal phase.

A :class:`PodRunner` thread per pod does what a kubelet's pod worker does:
admits the pod (its GPUs), prepares its volumes, runs init containers in
order and native sidecars in their place, then the main containers with
restarts per ``restartPolicy``, runs probes, enforces ``activeDeadlineSeconds``,
and on deletion stops the main containers, then the sidecars in reverse order,
within the grace period. It writes the pod's status at every change and, for a
graceful deletion, deletes the pod with grace 0 at the end. The node's watch
hands it newer versions of the pod (:meth:`PodRunner.update`).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Protocol

from cluster.kube import JSON, ApiError, Kube
from node.processnode import probes
from node.processnode.clock import now
from node.processnode.container import Container
from node.processnode.environment import container_env
from node.processnode.gpus import GPU, GpuAllocator, gpu_limit
from node.processnode.layout import pod_directory
from node.processnode.podstatus import PodStatusWriter
from node.processnode.runtime import ProcessRuntime
from node.processnode.sources import ConfigError
from node.processnode.volumes import prepare_volumes

log = logging.getLogger(__name__)


class Node(Protocol):
    """What a pod runner needs of its node."""

    kube: Kube
    state_dir: Path
    gpus: GpuAllocator

    def runner_done(self, runner: PodRunner) -> None:
        """The runner's thread ends: the pod is done on this node."""

    def delete_pod(self, ns: str, name: str, uid: str) -> None:
        """Delete the pod with grace 0, as a kubelet ends a graceful deletion."""


class PodRunner(threading.Thread):
    """Runs one pod from admission to its terminal phase (and final deletion)."""

    def __init__(self, node: Node, pod: JSON) -> None:
        super().__init__(name=f"pod-{pod['metadata']['name']}", daemon=True)
        self.node = node
        self.kube = node.kube
        self._pod = pod
        self._lock = threading.Lock()
        self.uid: str = pod["metadata"]["uid"]
        self.ns: str = pod["metadata"]["namespace"]
        self.pname: str = pod["metadata"]["name"]
        self.dir = pod_directory(node.state_dir, pod)
        self.runtime = ProcessRuntime(self.dir, self.uid)
        self.deleted = threading.Event()  # the object is gone: stop at once
        self.shutdown = threading.Event()  # the node stops: kill, write nothing
        spec = pod["spec"]
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.init = [
            Container(c, "sidecar" if c.get("restartPolicy") == "Always" else "init")
            for c in spec.get("initContainers") or []
        ]
        self.main = [Container(c, "main") for c in spec.get("containers") or []]
        self.status = PodStatusWriter(self.kube, self.ns, self.pname, self.uid, now())
        ads = spec.get("activeDeadlineSeconds")
        self.deadline = time.monotonic() + float(ads) if ads else None
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        self._volumes: dict[str, Path] = {}

    # ----------------------------------------------------------- shared state

    @property
    def pod(self) -> JSON:
        with self._lock:
            return self._pod

    def update(self, pod: JSON) -> None:
        with self._lock:
            self._pod = pod

    @property
    def terminating(self) -> bool:
        return bool(self.pod["metadata"].get("deletionTimestamp")) or self.deleted.is_set()

    def grace(self) -> float:
        m = self.pod["metadata"]
        g = m.get("deletionGracePeriodSeconds")
        if g is None:
            g = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return float(g)

    def write_status(self) -> None:
        if self.shutdown.is_set() or self.deleted.is_set():
            return
        written = self.status.write(
            phase=self.phase,
            reason=self.reason,
            message=self.message,
            init=self.init,
            main=self.main,
            terminating=self.terminating,
        )
        if not written:
            self.deleted.set()

    # ----------------------------------------------------------- containers

    def start_container(self, c: Container) -> None:
        c.restarts += 1
        (self.dir / c.name).mkdir(parents=True, exist_ok=True)
        try:
            env = container_env(self.kube, self.pod, c.spec, c.gpus)
        except (ConfigError, ApiError, OSError) as e:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
            c.restarts -= 1
            c.next_start = time.monotonic() + 2
            return
        self.runtime.launch(c, env, self._volumes)
        c.probes = probes.initial_probes(c.spec)

    def should_restart(self, c: Container, code: int) -> bool:
        if c.kind == "sidecar":
            return True
        return self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)

    def _probe_failed(self, c: Container, kind: str) -> None:
        log.info("pod %s/%s: %s probe of %s failed", self.ns, self.pname, kind, c.name)
        self.runtime.kill_one(c, float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)))

    def _run_probes(self, containers: list[Container]) -> bool:
        return probes.run_probes(containers, self._probe_failed)

    def _restart_sidecars(self) -> bool:
        changed = False
        for c in self.init:
            if c.kind != "sidecar" or c.done:
                continue
            if c.proc is not None and self.runtime.poll(c) is not None:
                c.schedule_restart()
                changed = True
            elif c.proc is None and c.restarts >= 0 and time.monotonic() >= c.next_start:
                self.start_container(c)
                changed = True
        return changed

    def _must_stop(self) -> bool:
        if self.terminating or self.shutdown.is_set():
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.reason = "DeadlineExceeded"
            self.message = "Pod was active on the node longer than the specified deadline"
            return True
        return False

    def _sleep_or_event(self, seconds: float) -> bool:
        """Sleep; True when the pod must stop (deleted, past its deadline, node shutdown)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self._must_stop():
                return True
            time.sleep(0.05)
        return self._must_stop()

    # ----------------------------------------------------------- lifecycle

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s/%s", self.ns, self.pname)
            self.runtime.kill(self.init + self.main, 0)
            self.phase, self.reason = "Failed", "ProcessNodeError"
            self.write_status()
        finally:
            self.node.gpus.release(self.uid)
            shutil.rmtree(self.dir / "volumes", ignore_errors=True)
            self.node.runner_done(self)

    def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for c in self.init + self.main:
            c.state = {
                "waiting": {
                    "reason": "PodInitializing" if c.kind == "main" else "ContainerCreating"
                }
            }
        self.write_status()
        if not self._admit():
            return
        # Each phase ends the pod itself when it returns False (deleted, failed, past its
        # deadline); after the last one the pod ends as its main containers did.
        phases = (self._mount_volumes, self._run_init_containers, self._run_main_containers)
        if all(phase() for phase in phases):
            self._finish()

    def _mount_volumes(self) -> bool:
        """The pod's volumes, retried while objects they need are missing."""
        while True:
            try:
                self._volumes = prepare_volumes(self.kube, self.pod, self.dir / "volumes")
            except (ConfigError, ApiError, OSError) as e:
                self.message = str(e)
                self.write_status()
                if self._sleep_or_event(2):
                    self._finish()
                    return False
                continue
            self.message = None
            return True

    def _run_init_containers(self) -> bool:
        """Init containers in order; sidecars are started (and startup-probed) and left running."""
        for c in self.init:
            while not (c.done if c.kind == "init" else c.started_ok):
                if c.proc is None and time.monotonic() >= c.next_start:
                    self.start_container(c)
                    self.write_status()
                code = self.runtime.poll(c)
                if code is not None and c.kind == "sidecar":
                    c.schedule_restart()
                elif code is not None:
                    if code == 0:
                        c.done = True
                    elif self.restart_policy == "Never":
                        c.done = True
                        self.write_status()
                        self._finish(failed=True)
                        return False
                    else:
                        c.schedule_restart()
                    self.write_status()
                if self._restart_sidecars() | self._run_probes(self.init):
                    self.write_status()
                if self._sleep_or_event(0.1):
                    self._finish()
                    return False
        return True

    def _run_main_containers(self) -> bool:
        """The main containers, restarted as the pod's policy says, until all are done."""
        for c in self.main:
            self.start_container(c)
        self.phase = "Running"
        self.write_status()
        while not all(c.done for c in self.main):
            changed = self._restart_sidecars() | self._run_probes(self.init + self.main)
            for c in self.main:
                if c.done:
                    continue
                code = self.runtime.poll(c)
                if code is not None:
                    changed = True
                    if self.should_restart(c, code):
                        c.schedule_restart()
                    else:
                        c.done = True
                elif c.proc is None and time.monotonic() >= c.next_start:
                    self.start_container(c)
                    changed = True
            if changed:
                self.write_status()
            if self._sleep_or_event(0.1):
                self._finish()
                return False
        return True

    def _admit(self) -> bool:
        """Allocate GPUs; a real kubelet rejects a pod it cannot fit (UnexpectedAdmissionError)."""
        sidecars = sum(gpu_limit(c.spec) for c in self.init if c.kind == "sidecar")
        need = max(
            sidecars + sum(gpu_limit(c.spec) for c in self.main),
            max((gpu_limit(c.spec) for c in self.init if c.kind == "init"), default=0),
        )
        if need == 0:
            return True
        deadline = time.monotonic() + 30  # devices of a pod that is just ending may still be held
        ids = self.node.gpus.allocate(self.uid, need)
        while ids is None:
            if time.monotonic() > deadline:
                self.phase, self.reason = "Failed", "UnexpectedAdmissionError"
                self.message = (
                    f"Allocate failed due to requested number of devices unavailable for {GPU}"
                )
                self.write_status()
                return False
            if self._sleep_or_event(0.5):
                self._finish()
                return False
            ids = self.node.gpus.allocate(self.uid, need)
        offset = 0
        for c in [*(c for c in self.init if c.kind == "sidecar"), *self.main]:
            n = gpu_limit(c.spec)
            c.gpus, offset = ids[offset : offset + n], offset + n
        for c in self.init:
            if c.kind == "init":
                c.gpus = ids[: gpu_limit(c.spec)]
        log.info("pod %s/%s holds GPUs %s", self.ns, self.pname, ids)
        return True

    def _finish(self, failed: bool = False) -> None:
        """Stop what still runs, write the terminal status, finish a deletion."""
        if self.shutdown.is_set():
            self.runtime.kill(self.init + self.main, 2)
            return
        grace = 0.0 if self.deleted.is_set() else self.grace()
        if self.reason == "DeadlineExceeded":
            failed = True
        start = time.monotonic()
        if self.terminating:
            log.info("pod %s/%s: terminating, grace %.0fs", self.ns, self.pname, grace)
        self.runtime.kill(self.main, grace)
        # sidecars stop after the main containers, in reverse order, within what is left
        for c in reversed([c for c in self.init if c.kind == "sidecar"]):
            left = max(grace - (time.monotonic() - start), 2.0) if self.terminating else grace
            self.runtime.kill([c], left)
        self.runtime.kill([c for c in self.init if c.kind == "init"], 0)
        self.node.gpus.release(self.uid)
        codes = [
            c.state.get("terminated", {}).get("exitCode", 1)
            for c in self.main
            if c.restarts >= 0 or c.state.get("terminated")
        ]
        ok = (
            not failed
            and bool(codes)
            and len(codes) == len(self.main)
            and all(x == 0 for x in codes)
        )
        if self.phase not in ("Succeeded", "Failed"):
            self.phase = "Succeeded" if ok else "Failed"
        # containers of a deleted pod that never ran are reported as terminated, like a kubelet
        for c in self.init + self.main:
            if self.terminating and "waiting" in c.state and c.restarts < 0:
                c.state = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}}
        self.write_status()
        if self.terminating and not self.deleted.is_set():
            self.node.delete_pod(self.ns, self.pname, self.uid)
