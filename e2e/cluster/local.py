"""Start and stop a real Kubernetes control plane on loopback, plus one process node.

Components, each its own process group, with its log in ``<state>/logs/``:

- ``etcd`` (embedded etcd at the version k8s.io/kubernetes pins),
- ``kube-apiserver`` (RBAC + Node authorization, the default admission plugins,
  service-account issuer and keys),
- ``kube-controller-manager`` (all default controllers: job, garbage collector,
  namespace, serviceaccount and its tokens, node lifecycle, ...; each controller
  with its own service-account credentials, as in a real cluster),
- ``kube-scheduler``,
- ``process-node`` (``e2e/node/processnode/``): a Node that runs pods as processes;
- on request only, workload controllers (``controllers.py``): the JobSet controller,
  Kueue, Kubeflow Trainer and training-operator (``up --controllers jobset,kueue``).

State lives in ``$KUBESWEEP_CLUSTER_DIR`` (default ``~/.cache/kubesweep/cluster``):
``pki/``, ``etcd/``, ``logs/``, ``node/``, ``admin.kubeconfig`` and ``cluster.json``
(pids and ports), so ``down`` works from any process.

CLI: ``python e2e/cluster up [--fresh] [--controllers NAMES] | down [--controllers NAMES]
| status | kubeconfig | build | build-controllers``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import controllers as workload_controllers
from . import pki
from .kube import ApiError, Kube

HERE = Path(__file__).resolve().parent
E2E = HERE.parent
REPO = E2E.parent
CACHE = Path(os.environ.get("KUBESWEEP_CACHE", Path.home() / ".cache" / "kubesweep"))
NODE_NAME = "kubesweep-node"
REAL_NODE_NAME = "kubesweep-real-node"
NODE_KINDS = ("process", "real")


def default_node_kind() -> str:
    """``KUBESWEEP_NODE`` (``process`` or ``real``); the process node unless it says otherwise."""
    kind = os.environ.get("KUBESWEEP_NODE", "process")
    if kind not in NODE_KINDS:
        raise ValueError(f"KUBESWEEP_NODE={kind!r}: expected one of {', '.join(NODE_KINDS)}")
    return kind


def default_state_dir(node_kind: str | None = None) -> Path:
    """``KUBESWEEP_CLUSTER_DIR``, else one directory per node kind under the cache.

    A cluster with the real node lives apart (``cluster-real``) from the process
    node's (``cluster``), so starting one never stops the other, which someone's
    test run may be using.
    """
    if os.environ.get("KUBESWEEP_CLUSTER_DIR"):
        return Path(os.environ["KUBESWEEP_CLUSTER_DIR"])
    kind = node_kind or default_node_kind()
    return CACHE / ("cluster-real" if kind == "real" else "cluster")


def api_server_exposure(node_kind: str) -> list[str]:
    """How pods find the API server: the flags that differ between the node kinds.

    The process node's pods share this machine's network and reach 127.0.0.1
    directly. The real node's pods reach the ``kubernetes`` Service, whose endpoint
    the API server keeps itself (lease reconciler) at the node address, where the
    node's forwarder (``e2e/node/forwarder.py``) passes connections to loopback.
    """
    if node_kind != "real":
        return ["--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"]
    from node.realconfig import NodeNet

    return [f"--advertise-address={NodeNet().node_ip}", "--endpoint-reconciler-type=lease"]


def build_binaries() -> Path:
    """Run ``build.sh`` (a no-op when the pinned build is cached); return the bin dir.

    ``KUBESWEEP_BIN_DIR`` names a directory of binaries to use instead (no build).
    """
    if os.environ.get("KUBESWEEP_BIN_DIR"):
        return Path(os.environ["KUBESWEEP_BIN_DIR"])
    out = subprocess.run(
        [str(HERE / "build.sh")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout.strip()
    return Path(out.splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def start_time(pid: int) -> str:
    """Start time in clock ticks (field 22 of /proc/PID/stat): with the pid, unique."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _ours(pid: int, state_dir: str) -> bool:
    """Alive and started for this state dir (guards against a reused pid)."""
    if not _alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return state_dir.encode() in f.read()
    except OSError:
        return False


@dataclass
class ClusterInfo:
    """What ``cluster.json`` holds: enough for any process to use or stop the cluster."""

    state_dir: str
    bin_dir: str
    kubeconfig: str
    server: str
    ports: dict[str, int]
    pids: dict[str, int] = field(default_factory=dict)
    node_name: str = NODE_NAME
    started_at: float = 0.0
    node_kind: str = "process"

    @property
    def kubectl(self) -> str:
        return str(Path(self.bin_dir) / "kubectl")

    @property
    def helm(self) -> str:
        return str(Path(self.bin_dir) / "helm")

    @property
    def log_dir(self) -> Path:
        return Path(self.state_dir) / "logs"

    @property
    def node_dir(self) -> Path:
        return Path(self.state_dir) / "node"

    def save(self) -> None:
        path = Path(self.state_dir) / "cluster.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, state_dir: Path) -> ClusterInfo | None:
        try:
            return cls(**json.loads((state_dir / "cluster.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def client(self) -> Kube:
        return Kube.from_kubeconfig(self.kubeconfig)

    def running(self) -> bool:
        return bool(self.pids) and all(_ours(p, self.state_dir) for p in self.pids.values())


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Starter:
    def __init__(self, info: ClusterInfo) -> None:
        self.info = info
        info.log_dir.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = self.info.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            out.write(f"\n==== {time.strftime('%FT%T')} starting {name}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=self.info.state_dir,
            )
        self.info.pids[name] = proc.pid
        self.info.save()

    def wait(self, name: str, check: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not _alive(self.info.pids[name]):
                raise RuntimeError(
                    f"{name} exited during start-up; log tail:\n"
                    + _log_tail(self.info.log_dir / f"{name}.log")
                )
            try:
                if check():
                    return
            except Exception as e:
                last = e
            time.sleep(0.3)
        raise TimeoutError(
            f"{name} not ready after {timeout}s ({last}); log tail:\n"
            + _log_tail(self.info.log_dir / f"{name}.log")
        )


def _https_ok(port: int, path: str) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=3) as r:
        return bool(r.status == 200)


@contextlib.contextmanager
def _locked(sd: Path) -> Iterator[None]:
    """One ``up``/``down`` at a time per state dir, across processes."""
    sd.mkdir(parents=True, exist_ok=True)
    with open(sd / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def up(
    state_dir: Path | None = None,
    *,
    fresh: bool = False,
    gpus: int = 4,
    node: bool = True,
    node_kind: str | None = None,
    controllers: Sequence[str] = (),
) -> ClusterInfo:
    """Start the cluster, or return the one already running in ``state_dir``.

    ``fresh`` wipes etcd and node state first (certificates are kept). ``node_kind``:
    ``process`` (``e2e/node/processnode/``) or ``real`` (``e2e/node/realnode.py``);
    default :func:`default_node_kind`. ``controllers`` (``jobset``, ``kueue``,
    ``trainer``, ``training-operator``): workload controllers to run as well, on a new
    or a running cluster.
    """
    kind = node_kind or default_node_kind()
    sd = (state_dir or default_state_dir(kind)).resolve()
    with _locked(sd):
        info = _up(sd, fresh=fresh, gpus=gpus, node=node, node_kind=kind)
        if controllers:
            _start_controllers(info, controllers)
        return info


def _start_controllers(info: ClusterInfo, names: Sequence[str]) -> list[str]:
    before = set(workload_controllers.running(info))
    st = _Starter(info)
    try:
        return workload_controllers.start(info, names, st.spawn, st.wait)
    except BaseException:
        new = [n for n in workload_controllers.resolve(names) if n not in before]
        workload_controllers.stop(info, new, _stop_group)
        raise


def start_controllers(
    names: Sequence[str], state_dir: Path | None = None, node_kind: str | None = None
) -> tuple[ClusterInfo, list[str]]:
    """Start workload controllers on the running cluster; (its info, those started now)."""
    sd = (state_dir or default_state_dir(node_kind)).resolve()
    with _locked(sd):
        info = ClusterInfo.load(sd)
        if info is None or not info.running():
            raise RuntimeError(f"no cluster running in {sd}")
        return info, _start_controllers(info, names)


def stop_controllers(
    names: Sequence[str] | None = None,
    state_dir: Path | None = None,
    node_kind: str | None = None,
) -> list[str]:
    """Stop workload controllers (default: all); their webhook configurations go first."""
    sd = (state_dir or default_state_dir(node_kind)).resolve()
    with _locked(sd):
        info = ClusterInfo.load(sd)
        if info is None:
            return []
        return workload_controllers.stop(info, names, _stop_group)


def _up(sd: Path, *, fresh: bool, gpus: int, node: bool, node_kind: str) -> ClusterInfo:
    existing = ClusterInfo.load(sd)
    if existing and existing.running() and not fresh and existing.node_kind == node_kind:
        with contextlib.suppress(Exception):
            existing.client().get_raw("/readyz")
            return existing
    if existing:
        _down(sd)
    bin_dir = build_binaries()
    kubebin = str(bin_dir / "kubebin")
    sd.mkdir(parents=True, exist_ok=True)
    if fresh:
        for sub in ("etcd", "node", "logs"):
            shutil.rmtree(sd / sub, ignore_errors=True)
    p = sd / "pki"
    pki.ensure_pki(p, [NODE_NAME])
    ports = {
        "etcd": _free_port(),
        "etcd-peer": _free_port(),
        "apiserver": _free_port(),
        "controller-manager": _free_port(),
        "scheduler": _free_port(),
        "kubelet": _free_port(),
    }
    server = f"https://127.0.0.1:{ports['apiserver']}"
    kc = {}
    for user, stem in [
        ("admin", "admin"),
        ("controller-manager", "controller-manager"),
        ("scheduler", "scheduler"),
    ]:
        path = sd / f"{user}.kubeconfig"
        path.write_text(pki.kubeconfig(server, p / "ca.crt", p / f"{stem}.crt", p / f"{stem}.key"))
        path.chmod(0o600)
        kc[user] = str(path)
    info = ClusterInfo(
        state_dir=str(sd),
        bin_dir=str(bin_dir),
        kubeconfig=kc["admin"],
        server=server,
        ports=ports,
        started_at=time.time(),
        node_kind=node_kind,
        node_name=REAL_NODE_NAME if node_kind == "real" else NODE_NAME,
    )
    info.save()
    st = _Starter(info)
    try:
        st.spawn(
            "etcd",
            [
                kubebin,
                "etcd",
                f"--data-dir={sd / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{ports['etcd']}",
                f"--listen-peer-urls=http://127.0.0.1:{ports['etcd-peer']}",
                "--unsafe-no-fsync=true",
            ],
        )

        def etcd_ok() -> bool:
            url = f"http://127.0.0.1:{ports['etcd']}/health"
            with urllib.request.urlopen(url, timeout=3) as r:
                return b'"true"' in r.read()

        st.wait("etcd", etcd_ok, 60)
        st.spawn(
            "kube-apiserver",
            [
                kubebin,
                "apiserver",
                f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
                "--bind-address=127.0.0.1",
                *api_server_exposure(node_kind),
                f"--secure-port={ports['apiserver']}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={p / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                "--profiling=false",
                "--v=1",
            ],
        )
        client = info.client()
        st.wait("kube-apiserver", lambda: client.get_raw("/readyz") == "ok", 120)
        # No workload controller runs yet: webhooks an earlier run registered for one
        # (etcd kept across down/up, a killed harness) would refuse what they match.
        workload_controllers.remove_webhooks(client)
        common = ["--leader-elect=false", "--bind-address=127.0.0.1", "--profiling=false"]
        st.spawn(
            "kube-controller-manager",
            [
                kubebin,
                "controller-manager",
                f"--kubeconfig={kc['controller-manager']}",
                f"--secure-port={ports['controller-manager']}",
                "--controllers=*",
                "--use-service-account-credentials=true",
                f"--root-ca-file={p / 'ca.crt'}",
                f"--service-account-private-key-file={p / 'sa.key'}",
                f"--cluster-signing-cert-file={p / 'ca.crt'}",
                f"--cluster-signing-key-file={p / 'ca.key'}",
                "--node-monitor-grace-period=40s",
                "--v=1",
                *common,
            ],
        )
        st.spawn(
            "kube-scheduler",
            [
                kubebin,
                "scheduler",
                f"--kubeconfig={kc['scheduler']}",
                f"--secure-port={ports['scheduler']}",
                "--v=1",
                *common,
            ],
        )
        st.wait(
            "kube-controller-manager",
            lambda: _https_ok(ports["controller-manager"], "/healthz"),
            60,
        )
        st.wait("kube-scheduler", lambda: _https_ok(ports["scheduler"], "/healthz"), 60)
        if node and node_kind == "real":
            from node import realnode

            realnode.start(info, st.spawn, st.wait, gpus)
        elif node:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([str(E2E), *filter(None, [env.get("PYTHONPATH")])])
            st.spawn(
                "process-node",
                [
                    sys.executable,
                    "-m",
                    "node.processnode",
                    f"--kubeconfig={info.kubeconfig}",
                    f"--name={NODE_NAME}",
                    f"--gpus={gpus}",
                    f"--state-dir={info.node_dir}",
                    f"--port={ports['kubelet']}",
                    f"--tls-cert={p / f'node-{NODE_NAME}.crt'}",
                    f"--tls-key={p / f'node-{NODE_NAME}.key'}",
                    f"--client-ca={p / 'ca.crt'}",
                ],
                env=env,
            )
            st.wait("process-node", lambda: node_ready(client, NODE_NAME), 60)
        # The controllers create the default service account shortly after start-up.
        st.wait(
            "kube-controller-manager",
            lambda: client.get_or_none("/api/v1/namespaces/default/serviceaccounts/default"),
            60,
        )
    except BaseException:
        _down(sd)
        raise
    return info


def node_ready(client: Kube, name: str) -> bool:
    try:
        n = client.get(f"/api/v1/nodes/{name}")
    except ApiError:
        return False
    conds = {c["type"]: c["status"] for c in n.get("status", {}).get("conditions", [])}
    taints = [t["key"] for t in n.get("spec", {}).get("taints") or []]
    return conds.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints


STOP_ORDER = [
    "process-node",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
]


def _stop_group(pid: int, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def kill_orphan_containers(node_dir: Path) -> int:
    """Kill container process groups a node left behind (it writes ``*.pid`` per container)."""
    n = 0
    for pidfile in node_dir.glob("pods/*/*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid_s, _, started = pidfile.read_text().strip().partition(" ")
            pid = int(pid_s)
            if _alive(pid) and start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                    n += 1
            pidfile.unlink()
    return n


def down(state_dir: Path | None = None, node_kind: str | None = None) -> None:
    """Stop every component (SIGTERM, then SIGKILL after a grace period)."""
    sd = (state_dir or default_state_dir(node_kind)).resolve()
    if not sd.exists():
        return
    with _locked(sd):
        _down(sd)


def _down(sd: Path) -> None:
    info = ClusterInfo.load(sd)
    if info is None:
        return
    workload_controllers.stop(info, None, _stop_group)
    if info.node_kind == "real":
        from node import realnode

        realnode.stop(info, _stop_group)
    for name in STOP_ORDER:
        pid = info.pids.get(name)
        if pid and _ours(pid, info.state_dir):
            _stop_group(pid, 20.0 if name == "process-node" else 10.0)
    kill_orphan_containers(info.node_dir)
    info.pids = {}
    info.save()


def status(state_dir: Path | None = None, node_kind: str | None = None) -> dict[str, Any]:
    sd = (state_dir or default_state_dir(node_kind)).resolve()
    info = ClusterInfo.load(sd)
    if info is None:
        return {"state_dir": str(sd), "running": False}
    return {
        "state_dir": str(sd),
        "running": info.running(),
        "kubeconfig": info.kubeconfig,
        "server": info.server,
        "components": {
            n: {"pid": p, "alive": _ours(p, info.state_dir)} for n, p in info.pids.items()
        },
        "logs": str(info.log_dir),
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="cluster", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="start (or reuse) the cluster")
    u.add_argument("--fresh", action="store_true", help="wipe etcd and node state first")
    u.add_argument("--gpus", type=int, default=4)
    u.add_argument("--no-node", action="store_true")
    u.add_argument(
        "--node",
        choices=NODE_KINDS,
        default=None,
        help="process (default) or real; or KUBESWEEP_NODE",
    )
    names = ",".join(workload_controllers.NAMES)
    u.add_argument(
        "--controllers",
        default="",
        metavar="NAMES",
        help=f"also run these workload controllers (some of {names}; on a running cluster too)",
    )
    parsers = {}
    for name, text in (
        ("down", "stop everything"),
        ("status", "print component status as JSON"),
        ("kubeconfig", "print the admin kubeconfig path"),
    ):
        parsers[name] = sub.add_parser(name, help=text)
        parsers[name].add_argument(
            "--node", choices=NODE_KINDS, default=None, help="whose cluster (state dir)"
        )
    parsers["down"].add_argument(
        "--controllers",
        default=None,
        metavar="NAMES",
        help=f"stop only these workload controllers (some of {names}); the cluster stays",
    )
    sub.add_parser("build", help="build the binaries (cached) and print their directory")
    sub.add_parser(
        "build-controllers", help="build the workload controllers (cached), print their directory"
    )
    args = ap.parse_args(argv)
    if args.cmd == "up":
        info = up(
            fresh=args.fresh,
            gpus=args.gpus,
            node=not args.no_node,
            node_kind=args.node,
            controllers=workload_controllers.parse(args.controllers),
        )
        print(f"cluster up: {info.server}")
        print(f"  export KUBECONFIG={info.kubeconfig}")
        print(f"  kubectl: {REPO / 'e2e/cluster/kubectl'}   logs: {info.log_dir}")
        if workload_controllers.running(info):
            print(f"  controllers: {', '.join(workload_controllers.running(info))}")
    elif args.cmd == "down" and args.controllers is not None:
        stopped = stop_controllers(
            workload_controllers.parse(args.controllers), node_kind=args.node
        )
        print(f"controllers stopped: {', '.join(stopped) or 'none was running'}")
    elif args.cmd == "down":
        down(node_kind=args.node)
        print("cluster down")
    elif args.cmd == "status":
        print(json.dumps(status(node_kind=args.node), indent=2))
    elif args.cmd == "build":
        print(build_binaries())
    elif args.cmd == "build-controllers":
        print(workload_controllers.build_binaries())
    elif args.cmd == "kubeconfig":
        print(default_state_dir(args.node).resolve() / "admin.kubeconfig")
    return 0
