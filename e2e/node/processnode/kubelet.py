"""The node itself: its ``Node`` object and ``Lease``, and the pods bound to it.

:class:`ProcessNode` registers the Node with its capacity, renews its Lease
and ``Ready`` condition every 10 s (the whole status every minute), and
follows the pods bound to it with a list-and-watch: a new pod gets a
:class:`~node.processnode.runner.PodRunner`, a changed one is handed to its
runner, and a deleted one stops it. Pods the node has finished are not run
again; a graceful deletion of one is completed with grace 0.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import threading
import time
from pathlib import Path

from cluster.kube import JSON, ApiError, Kube
from node.processnode.clock import now, now_micro
from node.processnode.gpus import GPU, GpuAllocator
from node.processnode.host import POD_IP
from node.processnode.runner import PodRunner

log = logging.getLogger(__name__)


class ProcessNode:
    """A registered Node that runs the pods bound to it as processes."""

    def __init__(
        self,
        kube: Kube,
        name: str,
        state_dir: Path,
        capacity: dict[str, str],
        gpus: int,
        port: int = 0,
    ) -> None:
        self.kube = kube
        self.name = name
        self.state_dir = state_dir
        self.capacity = {**capacity, GPU: str(gpus)} if gpus else capacity
        self.gpus = GpuAllocator(gpus)
        self.port = port
        self.runners: dict[str, PodRunner] = {}
        self.finished: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()

    # ----------------------------------------------------------- node object

    def node_status(self) -> JSON:
        t = now()
        conds = [
            ("Ready", "True", "KubeletReady", "process node is posting ready status"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
        ]
        try:
            version = self.kube.get("/version").get("gitVersion", "v0.0.0")
        except ApiError:
            version = "v0.0.0"
        return {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": [
                {
                    "type": ty,
                    "status": s,
                    "reason": r,
                    "message": msg,
                    "lastHeartbeatTime": t,
                    "lastTransitionTime": t,
                }
                for ty, s, r, msg in conds
            ],
            "addresses": [
                {"type": "InternalIP", "address": POD_IP},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": "kubesweep process node (no container images)",
                "containerRuntimeVersion": "process://1.0",
                "kubeletVersion": version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def register(self) -> None:
        body: JSON = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "kubesweep.io/process-node": "true",
                },
            },
            "spec": {},
        }
        with contextlib.suppress(ApiError):
            self.kube.create("/api/v1/nodes", body)
        self.heartbeat(full=True)

    def heartbeat(self, full: bool = False) -> None:
        st = self.node_status()
        if not full:
            st = {"conditions": st["conditions"]}
        self.kube.patch(f"/api/v1/nodes/{self.name}/status", {"status": st}, kind="strategic")
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": now_micro()}
        try:
            self.kube.patch(lease_path, {"spec": spec})
        except ApiError as e:
            if e.status != 404:
                raise
            node = self.kube.get(f"/api/v1/nodes/{self.name}")
            self.kube.create(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": self.name,
                        "ownerReferences": [
                            {
                                "apiVersion": "v1",
                                "kind": "Node",
                                "name": self.name,
                                "uid": node["metadata"]["uid"],
                            }
                        ],
                    },
                    "spec": spec,
                },
            )

    def heartbeat_loop(self) -> None:
        n = 0
        while not self.stop.wait(10):
            n += 1
            try:
                self.heartbeat(full=n % 6 == 0)
            except Exception as e:
                log.warning("heartbeat: %s", e)

    # ----------------------------------------------------------- pods

    def delete_pod(self, ns: str, name: str, uid: str) -> None:
        with contextlib.suppress(ApiError):
            self.kube.delete(
                f"/api/v1/namespaces/{ns}/pods/{name}",
                {
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": uid},
                },
            )

    def runner_done(self, r: PodRunner) -> None:
        with self.lock:
            self.runners.pop(r.uid, None)
            self.finished.add(r.uid)

    def handle(self, etype: str, pod: JSON) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            runner = self.runners.get(uid)
            finished = uid in self.finished
        if etype == "DELETED":
            if runner:
                runner.deleted.set()
            return
        if runner:
            runner.update(pod)
            return
        phase = pod.get("status", {}).get("phase")
        deleting = pod["metadata"].get("deletionTimestamp")
        if deleting and (finished or phase in ("Succeeded", "Failed")):
            if pod["metadata"].get("deletionGracePeriodSeconds") != 0:
                self.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], uid)
            return
        if finished or phase in ("Succeeded", "Failed"):
            return
        if deleting:
            self.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], uid)
            return
        r = PodRunner(self, pod)
        with self.lock:
            self.runners[uid] = r
        log.info("pod %s/%s: starting", pod["metadata"]["namespace"], pod["metadata"]["name"])
        r.start()

    def watch_pods(self) -> None:
        sel = {"fieldSelector": f"spec.nodeName={self.name}"}
        while not self.stop.is_set():
            try:
                lst = self.kube.get("/api/v1/pods", **sel)
                for p in lst.get("items") or []:
                    self.handle("ADDED", p)
                rv = lst["metadata"]["resourceVersion"]
                while not self.stop.is_set():
                    for et, obj in self.kube.watch(
                        "/api/v1/pods",
                        timeout_seconds=60,
                        resourceVersion=rv,
                        allowWatchBookmarks="true",
                        **sel,
                    ):
                        if et == "ERROR":
                            raise ApiError(int(obj.get("code", 500)), obj, "WATCH", "pods")
                        rv = obj["metadata"]["resourceVersion"]
                        if et != "BOOKMARK":
                            self.handle(et, obj)
            except Exception as e:
                if not self.stop.is_set():
                    log.warning("pod watch: %s; relisting", e)
                    time.sleep(1)

    def shutdown(self) -> None:
        self.stop.set()
        with self.lock:
            runners = list(self.runners.values())
        for r in runners:
            r.shutdown.set()
        for r in runners:
            r.join(10)
