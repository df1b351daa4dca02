"""What the real node is made of, as values: addresses, paths and configuration files.

The real node (``e2e/node/realnode.py``) runs a kubelet, kube-proxy and containerd on
this machine. Every address it uses lives on links that the harness creates and
removes, every file under the cluster's state directory, and every setting that a
component would otherwise write machine-wide is either configured off or pointed at a
file of the node's own. Keeping those decisions here, as pure functions of a
:class:`NodeNet` and :class:`NodePaths`, lets tests read them without starting anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

GPU = "nvidia.com/gpu"
PAUSE_IMAGE = "localhost/kubesweep/pause:1"
K8S_NAMESPACE = "k8s.io"  # containerd's namespace for what the CRI plugin runs
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class NodeNet:
    """Addresses and link names. Pods and Services get ranges that nothing else here routes.

    ``node_ip`` sits alone (/32) on one end of a veth pair: a kubelet refuses a loopback
    node address, and this kernel has no ``dummy`` links. Pods reach the node address,
    each other and Service addresses through the bridge; they get no default route, and
    a guard table drops anything the bridge would forward elsewhere, so no packet of
    theirs leaves the machine.
    """

    node_ip: str = "10.201.0.1"
    pod_cidr: str = "10.244.0.0/24"
    pod_range: str = "10.244.0.0/16"
    gateway: str = "10.244.0.1"
    service_cidr: str = "10.96.0.0/16"
    bridge: str = "ksw-br0"
    veth: str = "ksw-node0"
    veth_peer: str = "ksw-node1"
    guard_table: str = "kubesweep_node"


@dataclass(frozen=True)
class NodePaths:
    """Everything the node writes, under ``<cluster state>/realnode``."""

    root: Path

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd" / "config.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        return self.root / "containerd" / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.root / "kube-proxy.yaml"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def resolv_conf(self) -> Path:
        return self.root / "resolv.conf"

    @property
    def sysctl_dir(self) -> Path:
        return self.root / "sysctl"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def corefile(self) -> Path:
        return self.root / "Corefile"


# Machine-wide settings the node's components write: the kubelet the first three at
# start-up, the CNI bridge plugin IPv4 forwarding (and, with it, every link's
# accept_redirects) at a pod's first address. Inside the node's private mount
# namespace each /proc/sys file is covered by a file of ours holding the value they
# want, so they read back what they expect and the machine keeps its own values.
# Forwarding is on for the pods' bridge alone (see network_up).
COVERED_SYSCTLS: dict[str, str] = {
    "vm/overcommit_memory": "1",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "net/ipv4/ip_forward": "1",
}
# containerd v2 puts its shims' sockets under this fixed directory; inside the node's
# namespace it is a tmpfs of the node's own (the harness makes the mount point, if
# missing, and removes it again).
CONTAINERD_FIXED_STATE = "/run/containerd"


def containerd_config(paths: NodePaths) -> str:
    """containerd v2 (config version 3): every directory under the node's state."""
    runtime = "plugins.'io.containerd.cri.v1.runtime'"
    return f"""version = 3
root = "{paths.containerd_root}"
state = "{paths.containerd_state}"
disabled_plugins = [
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{paths.containerd_socket}"

[ttrpc]
  address = "{paths.containerd_socket}.ttrpc"

[debug]
  address = ""

[plugins.'io.containerd.internal.v1.opt']
  path = "{paths.root / "containerd" / "opt"}"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "{PAUSE_IMAGE}"

[{runtime}]
  # No CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_cdi = false
  enable_criu = false

[{runtime}.containerd]
  default_runtime_name = "runc"

[{runtime}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{runtime}.containerd.runtimes.runc.options]
  BinaryName = "runc"
  Root = "{paths.runc_root}"
  SystemdCgroup = false

[{runtime}.cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "{paths.cni_conf_dir}"
  max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


def cni_config(net: NodeNet, paths: NodePaths) -> str:
    """A bridge the harness made, host-local addresses, routes only to what is local.

    No ``ipMasq`` and no default route: a pod can reach the node, other pods and
    Service addresses, and nothing beyond this machine.
    """
    conf = {
        "cniVersion": "1.0.0",
        "name": "kubesweep-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": True,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths.cni_data_dir),
                    "ranges": [[{"subnet": net.pod_cidr, "gateway": net.gateway}]],
                    "routes": [
                        {"dst": net.service_cidr, "gw": net.gateway},
                        {"dst": f"{net.node_ip}/32", "gw": net.gateway},
                    ],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conf, indent=2) + "\n"


def kubelet_config(
    net: NodeNet,
    paths: NodePaths,
    *,
    port: int,
    healthz_port: int,
    ca: Path,
    tls_cert: Path,
    tls_key: Path,
) -> str:
    """KubeletConfiguration: cgroup v1 allowed, cgroupfs, serving on the node address only."""
    conf = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "address": net.node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(tls_cert),
        "tlsPrivateKeyFile": str(tls_key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": CLUSTER_DOMAIN,
        # CoreDNS of the harness, listening on the node address (see corefile()).
        "clusterDNS": [net.node_ip],
        "resolvConf": str(paths.resolv_conf),
        "podLogsDir": str(paths.pod_logs),
        "podCIDR": net.pod_cidr,
        "failSwapOn": False,
        "registerNode": True,
        "syncFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        # A shared development machine: never evict pods over the host's disk or memory.
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
    }
    return json.dumps(conf, indent=2) + "\n"


def kube_proxy_config(
    net: NodeNet, *, kubeconfig: Path, node_name: str, healthz_port: int, metrics_port: int
) -> str:
    """nftables mode, and every knob that would change a machine-wide setting turned off."""
    conf = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "clusterCIDR": net.pod_range,
        "bindAddress": net.node_ip,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "nodePortAddresses": [f"{net.node_ip}/32"],
        "iptables": {"localhostNodePorts": False},
        # 0 leaves each conntrack sysctl as the machine has it.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
            "udpTimeout": "0s",
            "udpStreamTimeout": "0s",
        },
    }
    return json.dumps(conf, indent=2) + "\n"


def guard_ruleset(net: NodeNet) -> str:
    """Our own nftables table: whatever the bridge would forward off the bridge is dropped."""
    return (
        f"table inet {net.guard_table} {{\n"
        "  chain forward {\n"
        "    type filter hook forward priority -10; policy accept;\n"
        f'    iifname "{net.bridge}" oifname != "{net.bridge}" drop\n'
        "  }\n"
        "}\n"
    )


def network_up(net: NodeNet) -> list[list[str]]:
    """The commands that make the node's links and routes (undone by :func:`network_down`).

    Forwarding is switched on for the bridge alone (a per-link setting that goes with
    the link), never machine-wide: Service traffic between pods is routed through it.
    """
    return [
        ["ip", "link", "add", net.veth, "type", "veth", "peer", "name", net.veth_peer],
        ["ip", "addr", "add", f"{net.node_ip}/32", "dev", net.veth],
        ["ip", "link", "set", net.veth, "up"],
        ["ip", "link", "set", net.veth_peer, "up"],
        ["ip", "link", "add", net.bridge, "type", "bridge"],
        ["ip", "addr", "add", f"{net.gateway}/{net.pod_cidr.split('/')[1]}", "dev", net.bridge],
        ["ip", "link", "set", net.bridge, "up"],
        ["sysctl", "-q", "-w", f"net.ipv4.conf.{net.bridge}.forwarding=1"],
        ["ip", "route", "add", "blackhole", net.pod_range],
        ["ip", "route", "add", "blackhole", net.service_cidr],
        ["nft", "-f", "-"],  # stdin: guard_ruleset(net)
    ]


def network_down(net: NodeNet) -> list[list[str]]:
    """Remove what :func:`network_up` and kube-proxy made; each may fail if already gone."""
    return [
        ["nft", "delete", "table", "inet", net.guard_table],
        ["nft", "delete", "table", "ip", "kube-proxy"],
        ["nft", "delete", "table", "ip6", "kube-proxy"],
        ["ip", "route", "del", "blackhole", net.pod_range],
        ["ip", "route", "del", "blackhole", net.service_cidr],
        ["ip", "link", "del", net.bridge],
        ["ip", "link", "del", net.veth],
    ]


def corefile(net: NodeNet, *, kubeconfig: Path, health_port: int, ready_port: int) -> str:
    """CoreDNS for Service and pod names, on the node address alone, forwarding nowhere.

    Pods (``dnsPolicy: ClusterFirst``) get the node address as their name server
    from the kubelet's ``clusterDNS``. Names outside ``cluster.local`` are refused:
    there is no ``forward`` plugin, so no query leaves this machine.
    """
    return f"""{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {net.node_ip}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
    loadbalance
}}
"""


# What CoreDNS's kubernetes plugin reads, granted to the client certificate it uses.
COREDNS_USER = "kubesweep:coredns"
COREDNS_RULES = [
    {
        "apiGroups": [""],
        "resources": ["services", "namespaces", "pods"],
        "verbs": ["list", "watch"],
    },
    {
        "apiGroups": ["discovery.k8s.io"],
        "resources": ["endpointslices"],
        "verbs": ["list", "watch"],
    },
]
