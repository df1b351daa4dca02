"""A real node for the local cluster: containerd, runc, the kubelet and kube-proxy.

The process node (``processnode/``) imitates a kubelet and is fast; this node *is*
one, so native sidecars, termination messages, signal order, images' entrypoints,
users and Service networking behave as on the clusters users run. What it is made of
is decided in ``realconfig.py``; this module starts and stops it.

Two halves:

- the harness side (:func:`start`, :func:`stop`, :func:`import_image`), called from
  ``cluster/local.py`` in the machine's own namespaces: certificates, configuration
  files, links and routes, then one supervisor process; at the end pods are deleted
  through the API while the kubelet still runs, the supervisor is stopped, and every
  link, route and nftables table the node made is removed;
- the supervisor (``python -m node.realnode supervise ...``), started under
  ``unshare --mount --propagation private``: containerd, the kubelet and kube-proxy
  share that private mount namespace, in which the /proc/sys files the kubelet
  writes are covered by files of the node's own and a tmpfs covers /var/log (the
  kubelet's fixed /var/log/containers). On SIGTERM it stops the kubelet, kills and
  removes what is left in containerd, stops containerd and kube-proxy, and lets
  kube-proxy remove its rules.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cluster import pki
from cluster.kube import ApiError, Kube

from .ociarchive import write_single_binary_image
from .realconfig import (
    CONTAINERD_FIXED_STATE,
    COREDNS_RULES,
    COREDNS_USER,
    COVERED_SYSCTLS,
    GPU,
    K8S_NAMESPACE,
    PAUSE_IMAGE,
    NodeNet,
    NodePaths,
    cni_config,
    containerd_config,
    corefile,
    guard_ruleset,
    kube_proxy_config,
    kubelet_config,
    network_down,
    network_up,
)

if TYPE_CHECKING:
    from cluster.local import ClusterInfo

log = logging.getLogger("realnode")

HERE = Path(__file__).resolve().parent
E2E = HERE.parent
BUILD_SCRIPT = E2E / "cluster" / "build-node.sh"
DNS_BUILD_SCRIPT = E2E / "cluster" / "build-dns.sh"
SUPERVISOR = "real-node"
# The harness's own helpers of the node, run in the machine's namespaces.
API_FORWARDER = "apiserver-forwarder"
CLUSTER_DNS = "coredns"
HELPERS = (CLUSTER_DNS, API_FORWARDER)
# Debian packages the node needs at run time (the Go binaries are built by build-node.sh).
REQUIRED_TOOLS = {
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "nft": "nftables",
    "unshare": "util-linux",
}


def missing_tools() -> list[str]:
    """Debian packages to install before the real node can start (empty when none)."""
    from shutil import which

    missing = []
    for tool, package in REQUIRED_TOOLS.items():
        found = Path(tool).exists() if tool.startswith("/") else which(tool)
        if not found:
            missing.append(package)
    return sorted(set(missing))


def unavailable_reason() -> str | None:
    """Why a real node cannot run here, or ``None`` when it can."""
    if os.geteuid() != 0:
        return "the real node needs root (links, mounts, cgroups)"
    if not Path("/sys/fs/cgroup").is_dir():
        return "no cgroup file system"
    missing = missing_tools()
    if missing:
        return f"missing Debian packages: {' '.join(missing)}"
    return None


def build_binaries() -> Path:
    """``build-node.sh`` (a no-op when cached); ``KUBESWEEP_NODE_BIN_DIR`` overrides it."""
    if os.environ.get("KUBESWEEP_NODE_BIN_DIR"):
        return Path(os.environ["KUBESWEEP_NODE_BIN_DIR"])
    out = subprocess.run(
        [str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout.strip()
    return Path(out.splitlines()[-1])


def build_dns_binary() -> Path:
    """``build-dns.sh`` (a no-op when cached): the directory holding ``coredns``."""
    if os.environ.get("KUBESWEEP_DNS_BIN_DIR"):
        return Path(os.environ["KUBESWEEP_DNS_BIN_DIR"])
    out = subprocess.run(
        [str(DNS_BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout.strip()
    return Path(out.splitlines()[-1])


def api_server_port(info: ClusterInfo) -> int:
    return int(info.ports["apiserver"])


def _quiet(argv: list[str], stdin: str | None = None) -> bool:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    return done.returncode == 0


# ---- harness side ----


def start(
    info: ClusterInfo, spawn: Callable[..., None], wait: Callable[..., None], gpus: int
) -> None:
    """Build (cached), configure and start the node; wait until it is Ready with its GPUs.

    ``spawn(name, argv, env)`` and ``wait(name, check, timeout)`` are the cluster
    starter's, so the supervisor is recorded in ``cluster.json`` like any component.
    """
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(f"real node unavailable: {reason}")
    from cluster.local import _free_port

    net = NodeNet()
    sd = Path(info.state_dir)
    paths = NodePaths(sd / "realnode")
    bin_dir = build_binaries()
    dns_dir = build_dns_binary()
    p = sd / "pki"
    name = info.node_name
    kubelet_crt, kubelet_key = pki.ensure_cert(
        p, "realnode-kubelet", f"system:node:{name}", ["system:nodes"]
    )
    serving_crt, serving_key = pki.ensure_cert(
        p, "realnode-serving", f"system:node:{name}", [], [net.node_ip, name]
    )
    proxy_crt, proxy_key = pki.ensure_cert(p, "realnode-proxy", "system:kube-proxy", [])
    dns_crt, dns_key = pki.ensure_cert(p, "realnode-coredns", COREDNS_USER, [])
    for sub in ("cni", "kubelet", "pod-logs", "containerd/state", "containerd/runc"):
        # What a previous run left is stale: IP allocations, pod directories, state.
        subprocess.run(["rm", "-rf", "--one-file-system", str(paths.root / sub)], check=False)
    for d in (
        paths.cni_conf_dir,
        paths.cni_data_dir,
        paths.kubelet_root,
        paths.pod_logs,
        paths.sysctl_dir,
        paths.logs,
        paths.containerd_root,
        paths.containerd_state,
    ):
        d.mkdir(parents=True, exist_ok=True)
    ports = {
        k: _free_port()
        for k in (
            "kubelet",
            "kubelet-healthz",
            "proxy-healthz",
            "proxy-metrics",
            "dns-health",
            "dns-ready",
        )
    }
    info.ports.update({f"realnode-{k}": v for k, v in ports.items()})
    info.save()
    kubeconfig = sd / "realnode-kubelet.kubeconfig"
    kubeconfig.write_text(pki.kubeconfig(info.server, p / "ca.crt", kubelet_crt, kubelet_key))
    proxy_kubeconfig = sd / "realnode-proxy.kubeconfig"
    proxy_kubeconfig.write_text(pki.kubeconfig(info.server, p / "ca.crt", proxy_crt, proxy_key))
    paths.containerd_config.write_text(containerd_config(paths))
    (paths.cni_conf_dir / "10-kubesweep.conflist").write_text(cni_config(net, paths))
    paths.resolv_conf.write_text("# pods of the local real node resolve no names\n")
    paths.kubelet_config.write_text(
        kubelet_config(
            net,
            paths,
            port=ports["kubelet"],
            healthz_port=ports["kubelet-healthz"],
            ca=p / "ca.crt",
            tls_cert=serving_crt,
            tls_key=serving_key,
        )
    )
    paths.kube_proxy_config.write_text(
        kube_proxy_config(
            net,
            kubeconfig=proxy_kubeconfig,
            node_name=name,
            healthz_port=ports["proxy-healthz"],
            metrics_port=ports["proxy-metrics"],
        )
    )
    write_single_binary_image(
        bin_dir / "pause", "/pause", PAUSE_IMAGE, paths.root / "pause.oci.tar"
    )
    dns_kubeconfig = sd / "realnode-coredns.kubeconfig"
    dns_kubeconfig.write_text(pki.kubeconfig(info.server, p / "ca.crt", dns_crt, dns_key))
    paths.corefile.write_text(
        corefile(
            net,
            kubeconfig=dns_kubeconfig,
            health_port=ports["dns-health"],
            ready_port=ports["dns-ready"],
        )
    )
    client = info.client()
    grant_cluster_dns(client)
    record_host_state(paths)
    make_network(net)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(E2E), *filter(None, [env.get("PYTHONPATH")])])
    api_port = api_server_port(info)
    spawn(
        API_FORWARDER,
        [
            sys.executable,
            "-m",
            "node.forwarder",
            f"--listen={net.node_ip}:{api_port}",
            f"--to=127.0.0.1:{api_port}",
            f"--owner={sd}",
        ],
        env,
    )
    wait(API_FORWARDER, lambda: _connects(net.node_ip, api_port), 30)
    spawn(CLUSTER_DNS, [str(dns_dir / "coredns"), "-conf", str(paths.corefile)], env)
    wait(CLUSTER_DNS, lambda: _http_ok(f"http://127.0.0.1:{ports['dns-ready']}/ready"), 60)
    _start_supervisor(info, spawn, wait, gpus)


def _start_supervisor(
    info: ClusterInfo, spawn: Callable[..., None], wait: Callable[..., None], gpus: int
) -> None:
    """The supervisor in a private mount namespace; returns once the node is Ready."""
    from cluster.local import node_ready

    paths = NodePaths(Path(info.state_dir) / "realnode")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(E2E), *filter(None, [env.get("PYTHONPATH")])])
    spawn(
        SUPERVISOR,
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            sys.executable,
            "-m",
            "node.realnode",
            "supervise",
            f"--state-dir={paths.root}",
            f"--bin-dir={build_binaries()}",
            f"--node-name={info.node_name}",
            f"--node-ip={NodeNet().node_ip}",
            f"--kubeconfig={Path(info.state_dir) / 'realnode-kubelet.kubeconfig'}",
        ],
        env,
    )
    client = info.client()
    wait(SUPERVISOR, lambda: node_ready(client, info.node_name), 120)
    # The Node object outlives a down (etcd is kept unless --fresh), cordoned by it.
    client.patch(f"/api/v1/nodes/{info.node_name}", {"spec": {"unschedulable": None}})
    advertise_gpus(client, info.node_name, gpus)


def lose(info: ClusterInfo) -> None:
    """The node fails as a machine does: all of its processes SIGKILLed at once.

    The supervisor, containerd, the kubelet, kube-proxy and the shims (each names the
    node's state directory), then every container's processes (found by the
    kubelet's ``kubepods`` cgroups, which the shims no longer guard). Nothing is
    cleaned up: links, routes and rules stay as a powered-off machine leaves them.
    The harness's own helpers beside the node (CoreDNS, the API forwarder) live on.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(info.pids[SUPERVISOR], signal.SIGKILL)
    spared = frozenset(info.pids[h] for h in HELPERS if h in info.pids)
    kill_leftovers(NodePaths(Path(info.state_dir) / "realnode"), spared)
    for cgroup in Path("/proc").glob("[0-9]*/cgroup"):
        with contextlib.suppress(OSError, ValueError):
            if "/kubepods" in cgroup.read_text():
                os.kill(int(cgroup.parent.name), signal.SIGKILL)


def bring_back(
    info: ClusterInfo, spawn: Callable[..., None], wait: Callable[..., None], gpus: int
) -> None:
    """The lost node boots again: what lived in its ``/run`` is gone, its disks are kept."""
    paths = NodePaths(Path(info.state_dir) / "realnode")
    subprocess.run(["rm", "-rf", "--one-file-system", str(paths.containerd_state)], check=False)
    paths.containerd_state.mkdir(parents=True, exist_ok=True)
    _start_supervisor(info, spawn, wait, gpus)


def _connects(host: str, port: int) -> bool:
    import socket

    with socket.create_connection((host, port), timeout=2):
        return True


def _http_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as reply:
        return bool(reply.status == 200)


def grant_cluster_dns(client: Kube) -> None:
    """Let CoreDNS's certificate list and watch what names are made of, and nothing else."""
    meta = {"name": "kubesweep:coredns"}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole"}
    client.apply(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/kubesweep:coredns",
        {**role, "metadata": meta, "rules": COREDNS_RULES},
    )
    client.apply(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubesweep:coredns",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": meta["name"],
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COREDNS_USER}
            ],
        },
    )


def advertise_gpus(client: Kube, name: str, gpus: int) -> None:
    """Add ``nvidia.com/gpu`` to the node's capacity; the kubelet keeps extended resources."""
    client.patch(f"/api/v1/nodes/{name}/status", {"status": {"capacity": {GPU: str(gpus)}}})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        node = client.get(f"/api/v1/nodes/{name}")
        if (node.get("status", {}).get("allocatable") or {}).get(GPU) == str(gpus):
            return
        time.sleep(0.25)
    raise TimeoutError(f"node {name} did not report {gpus} allocatable {GPU} within 30s")


def make_network(net: NodeNet) -> None:
    if Path(f"/sys/class/net/{net.bridge}").exists():
        raise RuntimeError(
            f"link {net.bridge} exists: another real node runs on this machine, or one was "
            "not stopped (`python -m cluster down` for its state dir removes it)"
        )
    for argv in network_up(net):
        done = subprocess.run(
            argv,
            input=guard_ruleset(net) if argv[:2] == ["nft", "-f"] else None,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            remove_network(net)
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def remove_network(net: NodeNet) -> None:
    for argv in network_down(net):
        _quiet(argv)


# Chains the kubelet and kube-proxy add through iptables (nft-backed) in tables they
# share with everyone else, and the built-in chains that jump to them.
IPTABLES_CHAINS: dict[str, list[str]] = {
    "mangle": ["KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"],
    "nat": ["KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY", "KUBE-MARK-MASQ", "KUBE-POSTROUTING"],
    "filter": ["KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY", "KUBE-FIREWALL"],
}
BUILTIN_CHAINS = ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING")


def remove_iptables_chains() -> None:
    for tool in ("iptables", "ip6tables"):
        for table, chains in IPTABLES_CHAINS.items():
            for chain in chains:
                for builtin in BUILTIN_CHAINS:
                    while _quiet([tool, "-w", "-t", table, "-D", builtin, "-j", chain]):
                        pass
                _quiet([tool, "-w", "-t", table, "-F", chain])
                _quiet([tool, "-w", "-t", table, "-X", chain])


def _nft_tables() -> dict[tuple[str, str], int]:
    """Each nftables table (family, name) with its number of rules."""
    done = subprocess.run(
        ["nft", "-j", "list", "ruleset"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {}
    tables: dict[tuple[str, str], int] = {}
    for item in json.loads(done.stdout).get("nftables", []):
        if "table" in item:
            tables.setdefault((item["table"]["family"], item["table"]["name"]), 0)
        elif "rule" in item:
            key = (item["rule"]["family"], item["rule"]["table"])
            tables[key] = tables.get(key, 0) + 1
    return tables


HOST_STATE = "host-before.json"


def record_host_state(paths: NodePaths) -> None:
    """What existed before the node: nftables tables, the containerd mount point."""
    fixed = Path(CONTAINERD_FIXED_STATE)
    state = {
        "nft_tables": sorted(f"{f} {n}" for f, n in _nft_tables()),
        "made_containerd_dir": not fixed.exists(),
    }
    fixed.mkdir(mode=0o711, exist_ok=True)
    (paths.root / HOST_STATE).write_text(json.dumps(state))


def restore_host_state(paths: NodePaths) -> None:
    """Remove the chains the node added, the tables it made (now empty), its mount point."""
    remove_iptables_chains()
    try:
        state = json.loads((paths.root / HOST_STATE).read_text())
    except (OSError, ValueError):
        return
    before = set(state.get("nft_tables", []))
    for (family, name), rules in _nft_tables().items():
        if f"{family} {name}" not in before and rules == 0:
            _quiet(["nft", "delete", "table", family, name])
    if state.get("made_containerd_dir"):
        for d in (Path(CONTAINERD_FIXED_STATE) / "s", Path(CONTAINERD_FIXED_STATE)):
            with contextlib.suppress(OSError):
                d.rmdir()
    (paths.root / HOST_STATE).unlink()


def delete_node_pods(client: Kube, name: str, timeout: float = 90) -> None:
    """Cordon the node, delete every pod bound to it, wait until the kubelet let them go.

    Done while the kubelet runs, so it stops containers and tears down pod networks
    the way it does on a real cluster (containerd's shims would outlive it otherwise).
    Cordoning first, as a drain does, keeps the replacements that controllers make
    (a Deployment's pods) off the node, so the node empties.
    """
    with contextlib.suppress(ApiError):
        client.patch(f"/api/v1/nodes/{name}", {"spec": {"unschedulable": True}})
    selector = {"fieldSelector": f"spec.nodeName={name}"}
    deadline = time.monotonic() + timeout
    while pods := client.list("/api/v1/pods", **selector):
        if time.monotonic() > deadline:
            left = [p["metadata"]["name"] for p in pods]
            log.warning("pods still on %s after %ss: %s", name, timeout, left)
            return
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            with contextlib.suppress(ApiError):
                client.delete(
                    f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                    gracePeriodSeconds="5",
                )
        time.sleep(0.5)


def stop(info: ClusterInfo, stop_group: Callable[[int, float], None]) -> None:
    """Pods first, then the supervisor (which empties containerd), then links and tables."""
    pid = info.pids.get(SUPERVISOR)
    from cluster.local import _ours

    if pid and _ours(pid, info.state_dir):
        with contextlib.suppress(Exception):
            delete_node_pods(info.client(), info.node_name)
        stop_group(pid, 90.0)
    for helper in HELPERS:
        helper_pid = info.pids.get(helper)
        if helper_pid and _ours(helper_pid, info.state_dir):
            stop_group(helper_pid, 10.0)
    paths = NodePaths(Path(info.state_dir) / "realnode")
    kill_leftovers(paths)
    remove_network(NodeNet())
    restore_host_state(paths)
    remove_cgroups()


def kill_leftovers(paths: NodePaths, spared: frozenset[int] = frozenset()) -> None:
    """Kill any process of this node that outlived its supervisor (shims, a killed child).

    The node's components run in sessions of their own (so that stopping the
    supervisor's group does not signal them all at once); each names the node's state
    directory on its command line, which is how they are found here, by pid. The
    processes in ``spared`` are left alone.
    """
    marker = str(paths.root).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in {os.getpid(), *spared}:
            continue
        with contextlib.suppress(OSError):
            if marker in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)


def remove_cgroups() -> None:
    """The kubelet's ``kubepods`` hierarchy in each cgroup controller, deepest first."""
    for top in Path("/sys/fs/cgroup").glob("*/kubepods*"):
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def import_image(info: ClusterInfo, archive: Path) -> None:
    """Make an OCI archive's image available to the node (what a registry would do)."""
    paths = NodePaths(Path(info.state_dir) / "realnode")
    ctr = Path(_bin_dir(info)) / "ctr"
    done = subprocess.run(
        [
            str(ctr),
            "--address",
            str(paths.containerd_socket),
            "-n",
            K8S_NAMESPACE,
            "images",
            "import",
            "--no-unpack=false",
            str(archive),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ctr images import {archive} failed: {done.stderr.strip()}")


def _bin_dir(info: ClusterInfo) -> str:
    with open(f"/proc/{info.pids[SUPERVISOR]}/cmdline", "rb") as f:
        for arg in f.read().split(b"\0"):
            if arg.startswith(b"--bin-dir="):
                return arg.split(b"=", 1)[1].decode()
    raise RuntimeError("the real node's supervisor names no --bin-dir")


# ---- supervisor side (inside the private mount namespace) ----


class Supervisor:
    """containerd, then the kubelet and kube-proxy; stopped in the reverse order."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.paths = NodePaths(Path(args.state_dir))
        self.bin = Path(args.bin_dir)
        self.args = args
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = dict(os.environ)
        self.env["PATH"] = f"{self.bin}:{self.env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        self.stopping = False

    def mount_private(self) -> None:
        for rel, value in COVERED_SYSCTLS.items():
            cover = self.paths.sysctl_dir / rel.replace("/", ".")
            cover.write_text(value + "\n")
            subprocess.run(["mount", "--bind", str(cover), f"/proc/sys/{rel}"], check=True)
        for target in ("/var/log", CONTAINERD_FIXED_STATE):
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=16m,mode=755", "tmpfs", target], check=True
            )

    def spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.paths.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.procs[name] = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(self.bin / "ctr"),
                "--address",
                str(self.paths.containerd_socket),
                "-n",
                K8S_NAMESPACE,
                *args,
            ],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )

    def start(self) -> None:
        self.mount_private()
        self.spawn(
            "containerd",
            [str(self.bin / "containerd"), "--config", str(self.paths.containerd_config)],
        )
        deadline = time.monotonic() + 60
        while self.ctr("version").returncode != 0:
            if time.monotonic() > deadline or self.procs["containerd"].poll() is not None:
                raise RuntimeError("containerd did not answer within 60s; see its log")
            time.sleep(0.2)
        done = self.ctr("images", "import", str(self.paths.root / "pause.oci.tar"))
        if done.returncode != 0:
            raise RuntimeError(f"importing the pause image failed: {done.stderr}")
        self.spawn(
            "kubelet",
            [
                str(self.bin / "kubelet"),
                f"--config={self.paths.kubelet_config}",
                f"--kubeconfig={self.args.kubeconfig}",
                f"--root-dir={self.paths.kubelet_root}",
                f"--hostname-override={self.args.node_name}",
                f"--node-ip={self.args.node_ip}",
                "--v=1",
            ],
        )
        self.spawn(
            "kube-proxy",
            [str(self.bin / "kube-proxy"), f"--config={self.paths.kube_proxy_config}", "--v=1"],
        )

    def stop(self) -> None:
        self.stopping = True
        self._end("kubelet", 30)
        self.empty_containerd()
        self._end("containerd", 30)
        self._end("kube-proxy", 10)
        subprocess.run(
            [str(self.bin / "kube-proxy"), f"--config={self.paths.kube_proxy_config}", "--cleanup"],
            capture_output=True,
            env=self.env,
            check=False,
        )

    def empty_containerd(self) -> None:
        """Kill and delete every task and container the CRI plugin left (their shims exit)."""
        for _ in range(3):
            listing = self.ctr("tasks", "list", "-q").stdout.split()
            for task in listing:
                self.ctr("tasks", "kill", "-a", "-s", "SIGKILL", task)
            for task in listing:
                self.ctr("tasks", "delete", "-f", task)
            containers = self.ctr("containers", "list", "-q").stdout.split()
            for c in containers:
                self.ctr("containers", "delete", c)
            if not listing and not containers:
                return
            time.sleep(0.5)

    def _end(self, name: str, grace: float) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def run(self) -> int:
        def on_term(signum: int, frame: object) -> None:
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        try:
            self.start()
            while True:
                for name, proc in self.procs.items():
                    if proc.poll() is not None:
                        log.error("%s exited with %s; stopping the node", name, proc.returncode)
                        return 1
                time.sleep(1)
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.stop()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ap = argparse.ArgumentParser(prog="realnode", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("supervise", help="run the node's components (inside unshare -m)")
    s.add_argument("--state-dir", required=True)
    s.add_argument("--bin-dir", required=True)
    s.add_argument("--node-name", required=True)
    s.add_argument("--node-ip", required=True)
    s.add_argument("--kubeconfig", required=True)
    args = ap.parse_args(argv)
    return Supervisor(args).run()


if __name__ == "__main__":
    sys.exit(main())
