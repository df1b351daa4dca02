"""A Kubernetes node that runs pods as local processes (test infrastructure).

It does a kubelet's API-facing work for real: registers a ``Node`` with the
capacity it is given (cpu, memory, pods, ``nvidia.com/gpu``), renews its
``Lease`` and ``Ready`` condition, runs the pods the real scheduler binds to it,
writes their status the way a kubelet does (phase, conditions, container
statuses with states, exit codes, restart counts and termination messages) and
finishes graceful deletion (SIGTERM, grace period, SIGKILL, then deletes the pod
with grace 0).

What it does **not** do: pull or run images. A container's ``command`` + ``args``
run as a process with this machine's Python environment (the repository's
``.venv/bin`` first on ``PATH``) in the repository root unless ``workingDir`` says
otherwise. Pods use host networking semantics: every pod's IP is 127.0.0.1.

Per pod: one directory under ``<state>/pods/<ns>_<name>_<uid>/`` holds volumes,
termination-message files and per-container logs (``<container>/<restart>.log``).
Volumes (emptyDir, configMap, secret, projected incl. service-account tokens,
downwardAPI, hostPath) are bind-mounted at their ``mountPath`` inside a private
mount namespace per container (``unshare -m``), so a pod's containers share
them and other pods do not see them. Missing mount points are created on the
host as empty directories/files (the process has no root filesystem of its own).

GPUs: a pod's ``nvidia.com/gpu`` limits get device indices that no other running
pod holds, passed as ``CUDA_VISIBLE_DEVICES`` and ``NVIDIA_VISIBLE_DEVICES``;
containers without a GPU limit get empty values.

Restart back-off is shorter than a kubelet's (1 s doubling to 20 s, not 10 s to
5 min) so tests of restarts finish quickly. Startup, liveness and readiness
probes run (exec inside the container's mounts, httpGet, tcpSocket; grpc as a
TCP connect).

Run: ``python -m node.processnode --kubeconfig ... --name ... --state-dir ...``
(``e2e/`` on ``PYTHONPATH``); ``e2e/cluster/local.py`` does this.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cluster.kube import JSON, ApiError, Kube, load_kubeconfig
from cluster.local import start_time

log = logging.getLogger("processnode")

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
GPU = "nvidia.com/gpu"
POD_IP = "127.0.0.1"
BACKOFF_BASE, BACKOFF_MAX = 1.0, 20.0
MOUNT_SCRIPT = r"""
set -e
wd=$1; shift
while [ "$1" != "--" ]; do
  src=$1; dst=$2; mode=$3; shift 3
  if [ -d "$src" ]; then mkdir -p "$dst"
  else mkdir -p "$(dirname "$dst")"; [ -e "$dst" ] || : > "$dst"; fi
  mount --bind "$src" "$dst"
  if [ "$mode" = ro ]; then mount -o remount,bind,ro "$dst"; fi
done
shift
mkdir -p "$wd" && cd "$wd"
exec "$@"
"""


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pod_dir_name(pod: JSON) -> str:
    m = pod["metadata"]
    return f"{m['namespace']}_{m['name']}_{m['uid']}"


def container_log_path(
    state_dir: str | os.PathLike[str],
    namespace: str,
    pod: str,
    container: str,
    previous: bool = False,
) -> Path:
    """Log file of a container's newest run (or the run before it); newest pod of that name."""
    pods = sorted(
        Path(state_dir).glob(f"pods/{namespace}_{pod}_*/{container}"),
        key=lambda p: p.stat().st_mtime,
    )
    if not pods:
        raise FileNotFoundError(f"no logs for {namespace}/{pod}/{container}")
    runs = sorted(pods[-1].glob("*.log"), key=lambda p: int(p.stem))
    if previous:
        runs = runs[:-1]
    if not runs:
        raise FileNotFoundError(f"no {'previous ' if previous else ''}run of {container}")
    return runs[-1]


def read_container_log(
    state_dir: str | os.PathLike[str],
    namespace: str,
    pod: str,
    container: str,
    previous: bool = False,
) -> str:
    """Text of a container's log kept by a node with this ``state_dir``."""
    path = container_log_path(state_dir, namespace, pod, container, previous)
    return path.read_text(errors="replace")


# --------------------------------------------------------------------------- GPUs


class GpuAllocator:
    """Device indices held by running pods; a pod's indices are disjoint from all others'."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._held: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def allocate(self, uid: str, n: int) -> list[int] | None:
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


def gpu_limit(c: JSON) -> int:
    res = c.get("resources") or {}
    v = (res.get("limits") or {}).get(GPU) or (res.get("requests") or {}).get(GPU) or 0
    return int(v)


# --------------------------------------------------------------------------- containers


class ConfigError(Exception):
    """A container cannot be created yet (missing configMap/secret): CreateContainerConfigError."""


@dataclass
class ProbeState:
    next_at: float = 0.0
    successes: int = 0
    failures: int = 0
    ok: bool = False


@dataclass
class Container:
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

    def status(self) -> JSON:
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


class PodRunner(threading.Thread):
    """Runs one pod from admission to its terminal phase (and final deletion)."""

    def __init__(self, node: ProcessNode, pod: JSON) -> None:
        super().__init__(name=f"pod-{pod['metadata']['name']}", daemon=True)
        self.node = node
        self.kube = node.kube
        self._pod = pod
        self._lock = threading.Lock()
        self.uid: str = pod["metadata"]["uid"]
        self.ns: str = pod["metadata"]["namespace"]
        self.pname: str = pod["metadata"]["name"]
        self.dir = node.state_dir / "pods" / pod_dir_name(pod)
        self.deleted = threading.Event()  # the object is gone: stop at once
        self.shutdown = threading.Event()  # the node stops: kill, write nothing
        spec = pod["spec"]
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.init = [
            Container(c, "sidecar" if c.get("restartPolicy") == "Always" else "init")
            for c in spec.get("initContainers") or []
        ]
        self.main = [Container(c, "main") for c in spec.get("containers") or []]
        self.conditions: dict[str, JSON] = {}
        self.start_time = now()
        ads = spec.get("activeDeadlineSeconds")
        self.deadline = time.monotonic() + float(ads) if ads else None
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        self._last_written: str = ""
        self._mounts: list[tuple[str, str, str]] = []
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

    # ----------------------------------------------------------- status

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

    def write_status(self) -> None:
        if self.shutdown.is_set() or self.deleted.is_set():
            return
        inits_done = all(
            (c.kind == "init" and c.done) or (c.kind == "sidecar" and c.restarts >= 0)
            for c in self.init
        )
        sidecars_up = all(c.ready for c in self.init if c.kind == "sidecar")
        terminal = self.phase in ("Succeeded", "Failed")
        ready = (
            not terminal
            and inits_done
            and sidecars_up
            and all(c.ready for c in self.main)
            and not self.terminating
        )
        self._cond("PodReadyToStartContainers", not terminal)
        self._cond("Initialized", inits_done, None if inits_done else "ContainersNotInitialized")
        reason = "PodCompleted" if terminal else (None if ready else "ContainersNotReady")
        self._cond("ContainersReady", ready, reason)
        self._cond("Ready", ready, reason)
        status: JSON = {
            "phase": self.phase,
            "conditions": list(self.conditions.values()),
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": self.start_time,
            "containerStatuses": [c.status() for c in self.main],
        }
        if self.init:
            status["initContainerStatuses"] = [c.status() for c in self.init]
        status["reason"], status["message"] = self.reason, self.message  # None clears
        text = json.dumps(status, sort_keys=True)
        if text == self._last_written:
            return
        for attempt in range(5):  # the terminal status must not be lost to a blip
            try:
                self.kube.patch(
                    f"/api/v1/namespaces/{self.ns}/pods/{self.pname}/status",
                    {"metadata": {"uid": self.uid}, "status": status},
                    kind="strategic",
                )
                self._last_written = text
                return
            except ApiError as e:
                if e.status in (404, 409):  # gone, or a new pod of the same name
                    self.deleted.set()
                    return
                log.warning("status of %s/%s: %s", self.ns, self.pname, e)
                if e.status == 422:
                    return
            except OSError as e:
                log.warning("status of %s/%s: %s", self.ns, self.pname, e)
            time.sleep(0.5 * (attempt + 1))

    # ----------------------------------------------------------- volumes and env

    def _get(self, kind: str, name: str, optional: bool) -> JSON | None:
        obj = self.kube.get_or_none(f"/api/v1/namespaces/{self.ns}/{kind}/{name}")
        if obj is None and not optional:
            raise ConfigError(f'{kind[:-1]} "{name}" not found')
        return obj

    def _data(self, kind: str, obj: JSON) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v) if kind == "secrets" else str(v).encode()
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v)
        return out

    def _field(self, path: str) -> str:
        pod = self.pod
        m = pod["metadata"]
        simple = {
            "metadata.name": m["name"],
            "metadata.namespace": m["namespace"],
            "metadata.uid": m["uid"],
            "spec.nodeName": pod["spec"].get("nodeName", ""),
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
            "status.podIP": POD_IP,
            "status.podIPs": POD_IP,
            "status.hostIP": POD_IP,
            "status.hostIPs": POD_IP,
        }
        if path in simple:
            return str(simple[path])
        mm = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if mm:
            return str((m.get(mm.group(1)) or {}).get(mm.group(2), ""))
        if path in ("metadata.labels", "metadata.annotations"):
            d = m.get(path.split(".")[1]) or {}
            return "\n".join(f'{k}="{v}"' for k, v in sorted(d.items()))
        raise ConfigError(f"unsupported fieldRef {path}")

    def _write_files(self, target: Path, files: dict[str, bytes], mode: int) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            p = target / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            p.chmod(mode)

    def _select(self, data: dict[str, bytes], items: list[JSON] | None) -> dict[str, bytes]:
        if not items:
            return data
        return {it["path"]: data[it["key"]] for it in items if it["key"] in data}

    def _projected(self, src: JSON) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        if "serviceAccountToken" in src:
            t = src["serviceAccountToken"]
            sa = self.pod["spec"].get("serviceAccountName") or "default"
            spec: JSON = {
                "expirationSeconds": int(t.get("expirationSeconds", 3607)),
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": self.pname,
                    "uid": self.uid,
                },
            }
            if t.get("audience"):
                spec["audiences"] = [t["audience"]]
            tr = self.kube.create(
                f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token",
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            )
            files[t["path"]] = tr["status"]["token"].encode()
        for kind, key in (("configmaps", "configMap"), ("secrets", "secret")):
            if key in src:
                s = src[key]
                obj = self._get(kind, s["name"], bool(s.get("optional")))
                if obj:
                    files.update(self._select(self._data(kind, obj), s.get("items")))
        if "downwardAPI" in src:
            for it in src["downwardAPI"].get("items") or []:
                if "fieldRef" in it:
                    files[it["path"]] = self._field(it["fieldRef"]["fieldPath"]).encode()
        return files

    def prepare_volumes(self) -> None:
        vol_root = self.dir / "volumes"
        for v in self.pod["spec"].get("volumes") or []:
            name = v["name"]
            target = vol_root / name
            mode = (
                int(v.get("defaultMode", 0o644)) if isinstance(v.get("defaultMode"), int) else 0o644
            )
            if "emptyDir" in v:
                target.mkdir(parents=True, exist_ok=True)
            elif "hostPath" in v:
                target = Path(v["hostPath"]["path"])
                if v["hostPath"].get("type") in ("DirectoryOrCreate", None, ""):
                    target.mkdir(parents=True, exist_ok=True)
            elif "configMap" in v or "secret" in v:
                kind, key = (
                    ("configmaps", "configMap") if "configMap" in v else ("secrets", "secret")
                )
                s = v[key]
                obj_name = s.get("name") or s.get("secretName")
                mode = int(s.get("defaultMode", 0o644))
                obj = self._get(kind, obj_name, bool(s.get("optional")))
                data = self._select(self._data(kind, obj), s.get("items")) if obj else {}
                self._write_files(target, data, mode)
            elif "projected" in v:
                files: dict[str, bytes] = {}
                for src in v["projected"].get("sources") or []:
                    files.update(self._projected(src))
                self._write_files(target, files, int(v["projected"].get("defaultMode", 0o644)))
            elif "downwardAPI" in v:
                files = self._projected({"downwardAPI": v["downwardAPI"]})
                self._write_files(target, files, int(v["downwardAPI"].get("defaultMode", 0o644)))
            else:
                raise ConfigError(f"volume {name}: type not supported by the process node")
            self._volumes[name] = target

    def build_env(self, c: Container) -> dict[str, str]:
        apiserver = urllib.parse.urlsplit(self.kube.config.server)
        env: dict[str, str] = {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/root"),
            "HOSTNAME": self.pname,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "KUBERNETES_SERVICE_HOST": apiserver.hostname or POD_IP,
            "KUBERNETES_SERVICE_PORT": str(apiserver.port or 443),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(apiserver.port or 443),
            "CUDA_VISIBLE_DEVICES": ",".join(map(str, c.gpus)),
            "NVIDIA_VISIBLE_DEVICES": ",".join(map(str, c.gpus)) if c.gpus else "void",
        }
        for ef in c.spec.get("envFrom") or []:
            prefix = ef.get("prefix", "")
            for kind, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
                if key in ef:
                    obj = self._get(kind, ef[key]["name"], bool(ef[key].get("optional")))
                    for k, b in (self._data(kind, obj) if obj else {}).items():
                        env[prefix + k] = b.decode(errors="replace")
        for e in c.spec.get("env") or []:
            if "valueFrom" not in e:
                env[e["name"]] = expand(e.get("value", ""), env)
                continue
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                env[e["name"]] = self._field(vf["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in vf:
                res = c.spec.get("resources") or {}
                kind_, _, rname = vf["resourceFieldRef"]["resource"].partition(".")
                env[e["name"]] = str((res.get(kind_) or {}).get(rname, "0"))
            else:
                kind, key = (
                    ("configmaps", "configMapKeyRef")
                    if "configMapKeyRef" in vf
                    else ("secrets", "secretKeyRef")
                )
                ref = vf[key]
                obj = self._get(kind, ref["name"], bool(ref.get("optional")))
                data = self._data(kind, obj) if obj else {}
                if ref["key"] in data:
                    env[e["name"]] = data[ref["key"]].decode(errors="replace")
                elif not ref.get("optional"):
                    raise ConfigError(
                        f"couldn't find key {ref['key']} in {kind[:-1]} {ref['name']}"
                    )
        return env

    # ----------------------------------------------------------- processes

    def start_container(self, c: Container) -> None:
        c.restarts += 1
        cdir = self.dir / c.name
        cdir.mkdir(parents=True, exist_ok=True)
        try:
            env = self.build_env(c)
        except (ConfigError, ApiError, OSError) as e:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
            c.restarts -= 1
            c.next_start = time.monotonic() + 2
            return
        argv = [expand(a, env) for a in (c.spec.get("command") or []) + (c.spec.get("args") or [])]
        if not c.spec.get("command"):  # no image entrypoint to fall back on
            msg = "the process node runs no images: a container needs a command"
            argv = ["sh", "-c", f"echo '{msg}' | tee /dev/termination-log >&2; exit 128"]
        term = cdir / "termination-log"
        term.write_bytes(b"")
        mounts: list[str] = []
        for vm in c.spec.get("volumeMounts") or []:
            src = self._volumes.get(vm["name"])
            if src is None:
                continue
            if vm.get("subPath"):
                src = src / vm["subPath"]
                src.mkdir(parents=True, exist_ok=True)
            mounts += [str(src), vm["mountPath"], "ro" if vm.get("readOnly") else "rw"]
        mounts += [str(term), c.spec.get("terminationMessagePath") or "/dev/termination-log", "rw"]
        wd = c.spec.get("workingDir") or str(REPO)
        unshare = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            unshare.insert(1, "--map-root-user")
        full = [*unshare, "sh", "-c", MOUNT_SCRIPT, "sh", wd, *mounts, "--", *argv]
        logf = cdir / f"{c.restarts}.log"
        with open(logf, "ab") as out:
            c.proc = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                cwd=str(self.dir),
            )
        # "pid start-time": lets `cluster down` kill what a dead node left, and only that
        (self.dir / f"{c.name}.pid").write_text(f"{c.proc.pid} {start_time(c.proc.pid)}")
        c.env = env
        t0 = time.monotonic()
        c.probes = {
            kind: ProbeState(
                next_at=t0 + float(c.spec[f"{kind}Probe"].get("initialDelaySeconds", 0))
            )
            for kind in ("startup", "liveness", "readiness")
            if c.spec.get(f"{kind}Probe")
        }
        c.container_id = f"process://{self.uid[:8]}-{c.name}-{c.restarts}-{c.proc.pid}"
        c.started_at = now()
        c.state = {"running": {"startedAt": c.started_at}}

    def _exited(
        self, c: Container, code: int, reason: str | None = None, message: str = ""
    ) -> None:
        cdir = self.dir / c.name
        with contextlib.suppress(OSError):
            (self.dir / f"{c.name}.pid").unlink()
        if not message:
            with contextlib.suppress(OSError):
                message = (cdir / "termination-log").read_bytes()[:4096].decode(errors="replace")
        if (
            not message
            and code != 0
            and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            with contextlib.suppress(OSError):
                lines = (cdir / f"{c.restarts}.log").read_bytes().splitlines()[-80:]
                message = b"\n".join(lines)[-2048:].decode(errors="replace")
        term: JSON = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": c.started_at or now(),
            "finishedAt": now(),
        }
        if code < 0:  # killed by a signal: report as a shell would
            term["exitCode"], term["signal"] = 128 - code, -code
        if message:
            term["message"] = message
        if c.container_id:
            term["containerID"] = c.container_id
        c.state = {"terminated": term}
        c.proc = None

    def poll(self, c: Container) -> int | None:
        """Exit code if the container's process just ended (and record it), else None."""
        if c.proc is None:
            return None
        code = c.proc.poll()
        if code is None:
            return None
        self._exited(c, code)
        return int(c.state["terminated"]["exitCode"])

    def should_restart(self, c: Container, code: int) -> bool:
        if c.kind == "sidecar":
            return True
        return self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)

    def schedule_restart(self, c: Container) -> None:
        c.last_state = c.state
        c.next_start = time.monotonic() + c.backoff
        c.backoff = min(c.backoff * 2, BACKOFF_MAX)
        c.state = {
            "waiting": {"reason": "CrashLoopBackOff", "message": f"back-off restarting {c.name}"}
        }

    def kill(self, containers: list[Container], grace: float) -> None:
        live = [c for c in containers if c.running]
        for c in live:
            assert c.proc is not None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(c.running for c in live) and time.monotonic() < deadline:
            time.sleep(0.05)
        for c in live:
            if c.running:
                assert c.proc is not None
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(c.proc.pid, signal.SIGKILL)
                c.proc.wait()
            self.poll(c)
            c.done = True

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
            self.kill(self.init + self.main, 0)
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
        # volumes: retry while objects they need are missing
        while True:
            try:
                self.prepare_volumes()
                break
            except (ConfigError, ApiError, OSError) as e:
                self.message = str(e)
                self.write_status()
                if self._sleep_or_event(2):
                    self._finish()
                    return
        self.message = None
        # init containers in order; sidecars are started (and startup-probed) and left running
        for c in self.init:
            while not (c.done if c.kind == "init" else c.started_ok):
                if c.proc is None and time.monotonic() >= c.next_start:
                    self.start_container(c)
                    self.write_status()
                code = self.poll(c)
                if code is not None and c.kind == "sidecar":
                    self.schedule_restart(c)
                elif code is not None:
                    if code == 0:
                        c.done = True
                    elif self.restart_policy == "Never":
                        c.done = True
                        self.write_status()
                        self._finish(failed=True)
                        return
                    else:
                        self.schedule_restart(c)
                    self.write_status()
                if self._restart_sidecars() | self._run_probes(self.init):
                    self.write_status()
                if self._sleep_or_event(0.1):
                    self._finish()
                    return
        # main containers
        for c in self.main:
            self.start_container(c)
        self.phase = "Running"
        self.write_status()
        while not all(c.done for c in self.main):
            changed = self._restart_sidecars() | self._run_probes(self.init + self.main)
            for c in self.main:
                if c.done:
                    continue
                code = self.poll(c)
                if code is not None:
                    changed = True
                    if self.should_restart(c, code):
                        self.schedule_restart(c)
                    else:
                        c.done = True
                elif c.proc is None and time.monotonic() >= c.next_start:
                    self.start_container(c)
                    changed = True
            if changed:
                self.write_status()
            if self._sleep_or_event(0.1):
                self._finish()
                return
        self._finish()

    def _run_probes(self, containers: list[Container]) -> bool:
        """Run the probes that are due; True when a container's readiness changed."""
        changed = False
        for c in containers:
            for kind, st in c.probes.items():
                if not c.running or time.monotonic() < st.next_at:
                    continue
                if kind == "startup" and st.ok:
                    continue
                if kind != "startup" and not c.started_ok:
                    continue
                spec = c.spec[f"{kind}Probe"]
                st.next_at = time.monotonic() + float(spec.get("periodSeconds", 10))
                if self._probe(c, spec):
                    st.successes, st.failures = st.successes + 1, 0
                    if not st.ok and st.successes >= int(spec.get("successThreshold", 1)):
                        st.ok, changed = True, True
                    continue
                st.successes, st.failures = 0, st.failures + 1
                if st.failures < int(spec.get("failureThreshold", 3)):
                    continue
                if kind == "readiness":
                    changed = changed or st.ok
                    st.ok = False
                elif c.proc is not None:  # liveness/startup failed: kill, restart per policy
                    log.info("pod %s/%s: %s probe of %s failed", self.ns, self.pname, kind, c.name)
                    self._kill_one(
                        c, float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
                    )
                    changed = True
        return changed

    def _kill_one(self, c: Container, grace: float) -> None:
        assert c.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(c.proc.pid, signal.SIGTERM)
        try:
            c.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.proc.pid, signal.SIGKILL)
            c.proc.wait()

    def _probe(self, c: Container, spec: JSON) -> bool:
        timeout = float(spec.get("timeoutSeconds", 1))

        def port_of(p: int | str) -> int:
            if isinstance(p, int) or str(p).isdigit():
                return int(p)
            for cp in c.spec.get("ports") or []:
                if cp.get("name") == p:
                    return int(cp["containerPort"])
            raise ValueError(f"no port named {p}")

        try:
            if "exec" in spec:
                cmd = list(spec["exec"].get("command") or [])
                if os.geteuid() == 0 and c.proc is not None:  # inside the container's mounts
                    cmd = ["nsenter", "-t", str(c.proc.pid), "-m", "--", *cmd]
                res = subprocess.run(
                    cmd, env=c.env, capture_output=True, timeout=timeout, check=False
                )
                return res.returncode == 0
            if "httpGet" in spec:
                h = spec["httpGet"]
                scheme = str(h.get("scheme", "HTTP")).lower()
                url = (
                    f"{scheme}://{h.get('host') or POD_IP}:{port_of(h['port'])}{h.get('path', '/')}"
                )
                req = urllib.request.Request(
                    url, headers={x["name"]: x["value"] for x in h.get("httpHeaders") or []}
                )
                ctx = ssl._create_unverified_context() if scheme == "https" else None
                with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
                    return 200 <= int(r.status) < 400
            sock: JSON = spec.get("tcpSocket") or spec.get("grpc") or {}
            port, host = sock.get("port", 0), sock.get("host") or POD_IP
            with socket.create_connection((host, port_of(port)), timeout=timeout):
                return True
        except Exception:
            return False

    def _restart_sidecars(self) -> bool:
        changed = False
        for c in self.init:
            if c.kind != "sidecar" or c.done:
                continue
            if c.proc is not None and self.poll(c) is not None:
                self.schedule_restart(c)
                changed = True
            elif c.proc is None and c.restarts >= 0 and time.monotonic() >= c.next_start:
                self.start_container(c)
                changed = True
        return changed

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
            self.kill(self.init + self.main, 2)
            return
        grace = 0.0 if self.deleted.is_set() else self.grace()
        if self.reason == "DeadlineExceeded":
            failed = True
        start = time.monotonic()
        if self.terminating:
            log.info("pod %s/%s: terminating, grace %.0fs", self.ns, self.pname, grace)
        self.kill(self.main, grace)
        # sidecars stop after the main containers, in reverse order, within what is left
        for c in reversed([c for c in self.init if c.kind == "sidecar"]):
            left = max(grace - (time.monotonic() - start), 2.0) if self.terminating else grace
            self.kill([c], left)
        self.kill([c for c in self.init if c.kind == "init"], 0)
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


# --------------------------------------------------------------------------- the node


def expand(s: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names are replaced, ``$$`` escapes."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, s)


class ProcessNode:
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


# --------------------------------------------------------------------------- kubelet API (logs)


def serve_logs(
    node: ProcessNode, cert: str, key: str, client_ca: str | None
) -> ThreadingHTTPServer:
    """Serve ``/containerLogs/<ns>/<pod>/<container>``, so ``kubectl logs`` works."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(url.query)
            parts = url.path.strip("/").split("/")
            if url.path in ("/healthz", "/readyz", "/livez"):
                self._send(200, b"ok")
                return
            if len(parts) != 4 or parts[0] != "containerLogs":
                self._send(404, b"not found")
                return
            _, ns, pod, container = parts
            previous = q.get("previous", [""])[0] == "true"
            try:
                path = container_log_path(node.state_dir, ns, pod, container, previous)
            except FileNotFoundError as e:
                self._send(404, str(e).encode())
                return
            f = open(path, "rb")  # noqa: SIM115 - kept open to follow
            text = f.read().decode(errors="replace")
            if "tailLines" in q:
                text = "\n".join(text.splitlines()[-int(q["tailLines"][0]) :]) + "\n"
            if q.get("follow", [""])[0] != "true" or previous:
                f.close()
                self._send(200, text.encode())
                return
            # follow: stream what the file gains until the container's process is gone
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            pidfile = path.parent.parent / f"{container}.pid"
            with f:
                self.wfile.write(text.encode())
                self.wfile.flush()
                while True:
                    running = pidfile.exists()
                    chunk = f.read()
                    if chunk:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    elif not running or node.stop.is_set():
                        return
                    else:
                        time.sleep(0.2)

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", node.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    node.port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, name="kubelet-api", daemon=True).start()
    return srv


def iter_capacity(items: list[str]) -> Iterator[tuple[str, str]]:
    for it in items:
        k, _, v = it.partition("=")
        yield k, v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="a Kubernetes node that runs pods as processes")
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--name", default="kubesweep-node")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--gpus", type=int, default=4)
    ap.add_argument(
        "--capacity",
        action="append",
        default=[],
        help="resource=quantity, e.g. cpu=16 (repeatable)",
    )
    ap.add_argument("--port", type=int, default=0, help="kubelet API port (logs)")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s"
    )
    capacity = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    capacity.update(iter_capacity(args.capacity))
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    node = ProcessNode(
        Kube(load_kubeconfig(args.kubeconfig)), args.name, state, capacity, args.gpus, args.port
    )
    if args.tls_cert and args.tls_key:
        serve_logs(node, args.tls_cert, args.tls_key, args.client_ca)

    def on_signal(signum: int, frame: Any) -> None:
        node.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    node.register()
    log.info("node %s registered (capacity %s)", node.name, node.capacity)
    threading.Thread(target=node.heartbeat_loop, name="heartbeat", daemon=True).start()
    threading.Thread(target=node.watch_pods, name="pod-watch", daemon=True).start()
    node.stop.wait()
    log.info("node %s stopping: killing its pods' processes", node.name)
    node.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
