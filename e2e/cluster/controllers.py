"""Workload controllers on the local cluster: JobSet, Kueue, Kubeflow Trainer, training-operator.

Optional components, started only when asked (``up --controllers jobset,kueue``, or
the e2e fixture of ``e2e/test_controllers.py``), so a cluster started without them
is exactly what it was before. Each is its release's own controller manager, built
from Go modules by ``build-controllers.sh`` (``jobsetbin/`` and ``kueuebin/`` pin them)
or, keyed apart, ``build-training-operator.sh`` (``trainingopbin/``), and runs as a
local process, recorded in ``cluster.json`` like the control plane, its log in
``logs/<name>.log``.

What a start does, for each controller (those it needs first: Kueue and Trainer need
JobSet):

- renders the release's own kustomize trees (copied next to the binary at build
  time) with the cluster's ``kubectl kustomize``, any remote reference refused;
- applies its Namespace, CRDs (waiting until they are established), ClusterRoles and
  Roles as they ship; the bindings that name its ServiceAccount name instead a user
  of its own (``kubesweep:<name>``), whose client certificate the cluster's CA signs
  (``pki.ensure_cert``); the controller's kubeconfig holds it;
- writes its configuration: leader election off, its own certificate management off,
  the webhook server on ``127.0.0.1:<free port>`` with a serving certificate of the
  cluster's CA naming ``127.0.0.1``, health probes on another loopback port, the
  metrics server off (Kueue: ``manageJobsWithoutQueueName: false``, integrations
  ``batch/job`` and ``jobset.x-k8s.io/jobset``, its visibility API server off);
- starts it, waits for its ``/readyz``, then registers its webhook configurations
  with ``clientConfig.url: https://127.0.0.1:<port><path>`` and the cluster's CA as
  ``caBundle`` (CRD conversion webhooks likewise), and waits until the API server
  calls them (:func:`webhooks_called`).

Stopping removes its webhook configurations first and waits until the API server no
longer calls them (their failure policy is ``Fail``: a webhook without its process
would refuse every matching request), then stops the process. CRDs, roles and
objects stay, so a restart finds them. A cluster start removes any webhook
configuration a controller left behind (a killed harness, etcd kept across
``down``/``up``).

Kubeflow's training-operator (v1, for PyTorchJob) cannot be configured like the
others: its webhook server binds every interface (a port flag, no host), and its
certificate rotator always runs, waiting for a certificate file at the fixed path
``/tmp/k8s-webhook-server/serving-certs`` and for a Secret to keep its own CA in. It
runs in a network namespace of its own (``netns.py``: its API server connections and
its health probe are joined to loopback, its webhook server reaches nobody), with
the harness's serving certificate laid over a private ``/tmp``, and the empty Secret
applied. Its webhook only validates, and is not registered: the rotator would write
its own CA (for a Service name) into the configuration it is named after, and the
API server could not call a server in that namespace anyway. Its worker pods' init
container waits for the master's DNS name, which the process node does not serve;
the harness gives it an init container that waits for nothing
(``--pytorch-init-container-template-file``).

Nothing listens beyond loopback, and nothing is fetched: rendering runs with every
proxy variable pointing at a closed loopback port and git limited to local files.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import pki
from .kube import JSON, ApiError, Kube, path_for

if TYPE_CHECKING:
    from .local import ClusterInfo

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build-controllers.sh"
BIN_DIR_ENV = "KUBESWEEP_CONTROLLERS_BIN_DIR"
TRAINING_OPERATOR_BUILD_SCRIPT = HERE / "build-training-operator.sh"
TRAINING_OPERATOR_BIN_DIR_ENV = "KUBESWEEP_TRAINING_OPERATOR_BIN_DIR"
TRAINING_OPERATOR = "training-operator"
#: Every object the harness applies for a controller carries this label (value: its name).
LABEL = "kubesweep.io/local-cluster-controller"
FIELD_MANAGER = "kubesweep-local-cluster"
WEBHOOK_KINDS = {
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
    "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
}
# kind -> (plural, namespaced); what the harness applies from a release's manifests.
APPLIED_KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "ClusterRole": ("clusterroles", False),
    "Role": ("roles", True),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "RoleBinding": ("rolebindings", True),
    **{kind: (plural, False) for kind, plural in WEBHOOK_KINDS.items()},
    "Secret": ("secrets", True),
}
# What a release ships for running in a pod and the harness does otherwise: the
# Deployment is the local process, the Services are the loopback URLs, the Secret is
# the harness's certificate, the ConfigMap is the configuration file below, and
# Kueue's APIService is its visibility server, which the harness leaves off.
SKIPPED_KINDS = {"Deployment", "Service", "Secret", "ConfigMap", "ServiceAccount", "APIService"}


@dataclass(frozen=True)
class Spec:
    """One controller: where its manifests are and who it is in them."""

    name: str
    namespace: str
    #: The ServiceAccount its release binds its roles to; the harness binds its user instead.
    service_account: str
    #: Kustomize directories under ``manifests/<name>/`` in the bin directory.
    trees: tuple[str, ...]
    needs: tuple[str, ...] = ()
    #: The script that builds it, and the variable that names a bin directory instead.
    build_script: Path = BUILD_SCRIPT
    bin_dir_env: str = BIN_DIR_ENV
    #: The CRDs applied, when not all that the trees hold.
    only_crds: tuple[str, ...] = ()
    #: Whether its webhook configurations are registered.
    webhooks: bool = True
    #: Empty Secrets its process needs in its namespace (a certificate rotator's).
    secrets: tuple[str, ...] = ()

    @property
    def user(self) -> str:
        return f"kubesweep:{self.name}"


SPECS: dict[str, Spec] = {
    "jobset": Spec("jobset", "jobset-system", "jobset-controller-manager", ("default",)),
    "kueue": Spec(
        "kueue", "kueue-system", "kueue-controller-manager", ("default",), needs=("jobset",)
    ),
    # Trainer's overlays pull JobSet's release manifests from the network; its base
    # trees are rendered one by one instead, and JobSet is the harness's own.
    "trainer": Spec(
        "trainer",
        "kubeflow-system",
        "kubeflow-trainer-controller-manager",
        ("base/crds", "base/rbac", "base/webhook"),
        needs=("jobset",),
    ),
    # PyTorchJob only: the other kinds' CRDs are not applied, their controllers not enabled.
    TRAINING_OPERATOR: Spec(
        TRAINING_OPERATOR,
        "kubeflow",
        "training-operator",
        ("base",),
        build_script=TRAINING_OPERATOR_BUILD_SCRIPT,
        bin_dir_env=TRAINING_OPERATOR_BIN_DIR_ENV,
        only_crds=("pytorchjobs.kubeflow.org",),
        webhooks=False,
        secrets=("training-operator-webhook-cert",),
    ),
}
NAMES = tuple(SPECS)


def resolve(names: Iterable[str]) -> list[str]:
    """``names`` with what they need, in start order (needs first); unknown names refused."""
    out: list[str] = []

    def add(name: str) -> None:
        if name not in SPECS:
            raise ValueError(f"unknown controller {name!r}: expected some of {', '.join(NAMES)}")
        for need in SPECS[name].needs:
            add(need)
        if name not in out:
            out.append(name)

    for n in names:
        add(n.strip())
    return out


def parse(text: str) -> list[str]:
    """``"jobset,kueue"`` -> ``["jobset", "kueue"]`` (checked, needs added)."""
    return resolve(n for n in text.split(",") if n.strip())


def built_bin_dir(name: str = "jobset") -> Path | None:
    """``name``'s bin directory if it is built (or the one its variable names).

    JobSet, Kueue and Trainer share ``build-controllers.sh``'s directory
    (``KUBESWEEP_CONTROLLERS_BIN_DIR``); training-operator has its own
    (``KUBESWEEP_TRAINING_OPERATOR_BIN_DIR``).
    """
    spec = SPECS[name]
    if os.environ.get(spec.bin_dir_env):
        return Path(os.environ[spec.bin_dir_env])
    done = subprocess.run(
        [str(spec.build_script), "--check"], stdout=subprocess.PIPE, text=True, check=False
    )
    return Path(done.stdout.strip()) if done.returncode == 0 else None


def build_binaries(name: str = "jobset") -> Path:
    """Run ``name``'s build script (a no-op when the pinned build is cached)."""
    spec = SPECS[name]
    if os.environ.get(spec.bin_dir_env):
        return Path(os.environ[spec.bin_dir_env])
    out = subprocess.run(
        [str(spec.build_script)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout.strip()
    return Path(out.splitlines()[-1])


def running(info: ClusterInfo) -> list[str]:
    """The controllers this cluster runs now."""
    from .local import _ours

    return [n for n in NAMES if (pid := info.pids.get(n)) and _ours(pid, info.state_dir)]


# ---- manifests ----


def _offline_env() -> dict[str, str]:
    """Environment for rendering: any attempt to fetch a remote base fails at once."""
    env = dict(os.environ)
    closed = "http://127.0.0.1:9"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[var] = closed
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    env["GIT_ALLOW_PROTOCOL"] = "file"
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def render(kubectl: str, tree: Path) -> list[JSON]:
    """``kubectl kustomize tree``, as objects."""
    done = subprocess.run(
        [kubectl, "kustomize", str(tree)],
        capture_output=True,
        text=True,
        env=_offline_env(),
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {tree} failed: {done.stderr.strip()[-2000:]}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _client_config(url: str, ca_bundle: str) -> JSON:
    return {"url": url, "caBundle": ca_bundle}


def prepare(spec: Spec, objects: list[JSON], *, webhook_base: str, ca_bundle: str) -> list[JSON]:
    """The objects the harness applies for ``spec``, rewritten for a local process.

    - kinds the harness replaces (Deployment, Services, ...) are dropped;
    - namespaced objects without a namespace go into the controller's;
    - bindings name the controller's user where they named its ServiceAccount;
    - webhook configurations and CRD conversion webhooks call ``webhook_base`` + path,
      trusting ``ca_bundle`` (base64 PEM);
    - everything carries :data:`LABEL`.
    """
    out: list[JSON] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": spec.namespace},
        }
    ]
    for upstream in objects:
        kind = upstream.get("kind", "")
        if kind in SKIPPED_KINDS or (
            kind == "Namespace" and upstream["metadata"]["name"] == spec.namespace
        ):
            continue
        if kind not in APPLIED_KINDS:
            raise ValueError(
                f"{spec.name}: a {kind} in its manifests; the harness applies no such kind"
            )
        if not _wanted(spec, upstream):
            continue
        obj: JSON = json.loads(json.dumps(upstream))
        meta = obj.setdefault("metadata", {})
        if APPLIED_KINDS[kind][1]:
            meta.setdefault("namespace", spec.namespace)
        # cert-manager's CA injection does not run here; the harness sets caBundle itself.
        annotations = meta.get("annotations") or {}
        for key in [k for k in annotations if k.startswith("cert-manager.io/")]:
            del annotations[key]
        if kind.endswith("Binding"):
            user = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": spec.user}
            obj["subjects"] = [
                user
                if s.get("kind") == "ServiceAccount" and s.get("name") == spec.service_account
                else s
                for s in obj.get("subjects") or []
            ]
        elif kind in WEBHOOK_KINDS:
            for hook in obj.get("webhooks") or []:
                path = hook["clientConfig"]["service"].get("path", "/")
                hook["clientConfig"] = _client_config(webhook_base + path, ca_bundle)
        elif kind == "CustomResourceDefinition":
            conversion = obj["spec"].get("conversion") or {}
            if conversion.get("strategy") == "Webhook":
                cc = conversion["webhook"]["clientConfig"]
                path = (cc.get("service") or {}).get("path", "/convert")
                conversion["webhook"]["clientConfig"] = _client_config(
                    webhook_base + path, ca_bundle
                )
        meta.setdefault("labels", {})[LABEL] = spec.name
        out.append(obj)
    out += [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": spec.namespace, "labels": {LABEL: spec.name}},
        }
        for name in spec.secrets
    ]
    return out


def _wanted(spec: Spec, obj: JSON) -> bool:
    """Whether ``spec`` applies ``obj``: its CRDs (the ones named, if any), its webhooks if on."""
    kind = obj["kind"]
    if kind == "CustomResourceDefinition" and spec.only_crds:
        return bool(obj["metadata"]["name"] in spec.only_crds)
    return spec.webhooks or kind not in WEBHOOK_KINDS


def object_path(obj: JSON) -> str:
    plural, namespaced = APPLIED_KINDS[obj["kind"]]
    meta = obj["metadata"]
    return path_for(
        obj["apiVersion"], plural, meta.get("namespace") if namespaced else None, meta["name"]
    )


def _apply_all(client: Kube, objects: Iterable[JSON]) -> None:
    for obj in objects:
        client.apply(object_path(obj), obj, field_manager=FIELD_MANAGER)


def _established(client: Kube, names: list[str]) -> bool:
    for name in names:
        crd = client.get(
            path_for("apiextensions.k8s.io/v1", "customresourcedefinitions", None, name)
        )
        conds = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions") or []}
        if conds.get("Established") != "True":
            return False
    return True


def _dry_run(client: Kube, obj: JSON, plural: str) -> JSON:
    return client.request(
        "POST",
        path_for(obj["apiVersion"], plural, "default"),
        obj,
        params={"dryRun": "All"},
    )


def webhooks_called(client: Kube, name: str) -> bool:
    """Whether the API server calls ``name``'s webhooks now: a dry-run request they answer.

    The API server picks webhook configurations up from a watch, a moment after they
    are written; these requests tell when that happened (or, after a removal, that the
    process may go): JobSet's defaulting makes a JobSet's Jobs ``Indexed``, Kueue's
    suspends a Job that names a queue, Trainer's validation refuses a TrainJob whose
    runtime does not exist.
    """
    pod = {"spec": {"containers": [{"name": "probe", "image": "probe"}]}}
    if name == "jobset":
        js = _dry_run(
            client,
            {
                "apiVersion": "jobset.x-k8s.io/v1alpha2",
                "kind": "JobSet",
                "metadata": {"name": "kubesweep-probe"},
                "spec": {
                    "replicatedJobs": [{"name": "probe", "template": {"spec": {"template": pod}}}]
                },
            },
            "jobsets",
        )
        job = js["spec"]["replicatedJobs"][0]["template"]["spec"]
        return bool(job.get("completionMode") == "Indexed")
    if name == "kueue":
        job = _dry_run(
            client,
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": "kubesweep-probe",
                    "labels": {"kueue.x-k8s.io/queue-name": "kubesweep-probe"},
                },
                "spec": {"template": {"spec": {**pod["spec"], "restartPolicy": "Never"}}},
            },
            "jobs",
        )
        return bool(job["spec"].get("suspend") is True)
    if name == "trainer":
        try:
            _dry_run(
                client,
                {
                    "apiVersion": "trainer.kubeflow.org/v1alpha1",
                    "kind": "TrainJob",
                    "metadata": {"name": "kubesweep-probe"},
                    "spec": {"runtimeRef": {"name": "kubesweep-probe-no-such-runtime"}},
                },
                "trainjobs",
            )
        except ApiError as e:
            return "admission webhook" in e.message and "trainer.kubeflow.org" in e.message
        return False
    raise ValueError(name)


def _webhooks_gone(client: Kube, name: str) -> bool:
    return not webhooks_called(client, name)


def remove_webhooks(client: Kube, names: Iterable[str] | None = None) -> int:
    """Delete the webhook configurations the harness registered (for ``names``, or all)."""
    selector = LABEL if names is None else f"{LABEL} in ({','.join(names)})"
    n = 0
    for plural in WEBHOOK_KINDS.values():
        base = path_for("admissionregistration.k8s.io/v1", plural)
        for item in client.list(base, labelSelector=selector):
            client.delete(f"{base}/{item['metadata']['name']}")
            n += 1
    return n


# ---- configuration ----


def configuration(
    name: str, *, namespace: str, webhook_port: int, health_port: int, cert_dir: Path
) -> JSON:
    """The controller's configuration file (each release's own ``Configuration`` kind)."""
    webhook = {"host": "127.0.0.1", "port": webhook_port}
    health = {"healthProbeBindAddress": f"127.0.0.1:{health_port}"}
    off = {"leaderElect": False}
    if name == "jobset":
        return {
            "apiVersion": "config.jobset.x-k8s.io/v1alpha1",
            "kind": "Configuration",
            "leaderElection": off,
            "internalCertManagement": {"enable": False},
            "webhook": {**webhook, "certDir": str(cert_dir)},
            "metrics": {"bindAddress": "0"},
            "health": health,
        }
    if name == "kueue":
        return {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2",
            "kind": "Configuration",
            "namespace": namespace,
            "leaderElection": off,
            "internalCertManagement": {"enable": False},
            "webhook": {**webhook, "certDir": str(cert_dir)},
            "metrics": {"bindAddress": "0"},
            "health": health,
            "manageJobsWithoutQueueName": False,
            "integrations": {"frameworks": ["batch/job", "jobset.x-k8s.io/jobset"]},
            # An aggregated API server of its own (pending workloads); not needed here.
            "featureGates": {"VisibilityOnDemand": False},
        }
    if name == "trainer":
        # Trainer reads its serving certificate from <TMPDIR>/k8s-webhook-server/serving-certs.
        return {
            "apiVersion": "config.trainer.kubeflow.org/v1alpha1",
            "kind": "Configuration",
            "leaderElection": off,
            "certManagement": {"enable": False},
            "webhook": webhook,
            "metrics": {"bindAddress": "0"},
            "health": {
                **health,
                "readinessEndpointName": "readyz",
                "livenessEndpointName": "healthz",
            },
        }
    raise ValueError(name)


def _copy_pair(crt: Path, key: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(crt, into / "tls.crt")
    shutil.copyfile(key, into / "tls.key")
    (into / "tls.key").chmod(0o600)


def _ready(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as reply:
        return bool(reply.status == 200)


def command(name: str, binary: Path, config: Path, home: Path) -> list[str]:
    """The controller's command line.

    Kueue, with its own certificate management off, reads a metrics certificate from
    the fixed path ``/etc/kueue/metrics/certs`` and exits without one (even with its
    metrics server off). It runs in a private mount namespace in which a read-only
    overlay adds that directory to ``/etc``; the machine's ``/etc`` is not touched.
    """
    argv = [str(binary), f"--config={config}", "--zap-log-level=2"]
    if name != "kueue":
        return argv
    layer = home / "etc-layer"
    ns = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        ns[1:1] = ["--user", "--map-root-user"]
    script = 'mount -t overlay kubesweep-kueue-etc -o "lowerdir=$1:/etc" /etc && shift && exec "$@"'
    return [*ns, "sh", "-c", script, "sh", str(layer), *argv]


#: The init container training-operator adds to each worker pod (the flag's template).
#: Its own waits for the master's DNS name, which the process node does not serve.
NO_WAIT_INIT_CONTAINER = """\
- name: init-pytorch
  image: {{.InitContainerImage}}
  imagePullPolicy: IfNotPresent
  command: ["true"]
"""


def training_operator_command(
    binary: Path, home: Path, *, api_port: int, health_port: int, webhook_port: int
) -> list[str]:
    """training-operator in a network namespace of its own (``netns.py``), PyTorchJob only.

    Its webhook server binds every interface of that namespace, which reach nobody;
    the API server and its health probe are joined to this machine's loopback. Its
    ``/tmp`` there holds the serving certificate its rotator waits for.
    """
    init = home / "init-container.yaml"
    init.write_text(NO_WAIT_INIT_CONTAINER)
    argv = [
        str(binary),
        "--enable-scheme=pytorchjob",
        "--metrics-bind-address=0",
        f"--health-probe-bind-address=127.0.0.1:{health_port}",
        f"--webhook-server-port={webhook_port}",
        f"--pytorch-init-container-template-file={init}",
        "--zap-log-level=2",
    ]
    joins = [f"--out={api_port}", f"--in={health_port}", f"--tmp-layer={home / 'tmp-layer'}"]
    return [sys.executable, "-m", "cluster.netns", *joins, "--", *argv]


# ---- start and stop ----


def start(
    info: ClusterInfo,
    names: Iterable[str],
    spawn: Callable[..., None],
    wait: Callable[..., None],
    bin_dir: Path | None = None,
) -> list[str]:
    """Start ``names`` (and what they need) unless running; return those started.

    ``spawn(name, argv, env)`` and ``wait(name, check, timeout)`` are the cluster
    starter's, so each controller is recorded in ``cluster.json`` like the control plane.
    """
    wanted = resolve(names)
    todo = [n for n in wanted if n not in running(info)]
    if not todo:
        return []
    bdirs: dict[Path, Path] = {}
    client = info.client()
    sd = Path(info.state_dir)
    p = sd / "pki"
    ca_bundle = base64.b64encode((p / "ca.crt").read_bytes()).decode()
    from .local import _free_port

    started = []
    for name in todo:
        spec = SPECS[name]
        if bin_dir is not None:
            bdir = bin_dir
        elif spec.build_script in bdirs:
            bdir = bdirs[spec.build_script]
        else:
            bdir = bdirs[spec.build_script] = build_binaries(name)
        home = sd / "controllers" / name
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        # A controller's webhooks must not outlive it: drop any left by an earlier run.
        remove_webhooks(client, [name])
        webhook_port, health_port = _free_port(), _free_port()
        info.ports[f"{name}-webhook"] = webhook_port
        info.ports[f"{name}-health"] = health_port
        info.save()
        objects: list[JSON] = []
        for tree in spec.trees:
            objects += render(info.kubectl, bdir / "manifests" / name / tree)
        prepared = prepare(
            spec, objects, webhook_base=f"https://127.0.0.1:{webhook_port}", ca_bundle=ca_bundle
        )
        first = [o for o in prepared if o["kind"] not in WEBHOOK_KINDS]
        hooks = [o for o in prepared if o["kind"] in WEBHOOK_KINDS]
        _apply_all(client, first)
        crds = [o["metadata"]["name"] for o in first if o["kind"] == "CustomResourceDefinition"]
        _wait_for(partial(_established, client, crds), 60, f"{name}'s CRDs established")

        serving = pki.ensure_cert(
            p, f"{name}-webhook", f"{name}-webhook", [], ["127.0.0.1", "localhost"]
        )
        client_crt, client_key = pki.ensure_cert(p, f"{name}-controller", spec.user, [])
        kubeconfig = sd / f"{name}.kubeconfig"
        kubeconfig.write_text(
            pki.kubeconfig(info.server, p / "ca.crt", client_crt, client_key, user=spec.user)
        )
        kubeconfig.chmod(0o600)
        env = dict(os.environ)
        env["KUBECONFIG"] = str(kubeconfig)
        for var in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            env.pop(var, None)
        argv = _argv(
            spec,
            bdir / name,
            home,
            env,
            serving,
            api_port=int(info.server.rstrip("/").rsplit(":", 1)[1]),
            webhook_port=webhook_port,
            health_port=health_port,
        )
        spawn(name, argv, env)
        wait(name, partial(_ready, health_port), 120)
        if hooks:
            _apply_all(client, hooks)
            wait(name, partial(webhooks_called, client, name), 30)
        started.append(name)
    return started


def _argv(
    spec: Spec,
    binary: Path,
    home: Path,
    env: dict[str, str],
    serving: tuple[Path, Path],
    *,
    api_port: int,
    webhook_port: int,
    health_port: int,
) -> list[str]:
    """The controller's command line, after writing the files it reads (``env`` is amended).

    Each reads its serving certificate from its own place: the directory its
    configuration names; Trainer's ``$TMPDIR/k8s-webhook-server/serving-certs``;
    training-operator's ``/tmp/k8s-webhook-server/serving-certs`` (a private ``/tmp``).
    """
    name = spec.name
    if name == TRAINING_OPERATOR:
        _copy_pair(*serving, home / "tmp-layer" / "k8s-webhook-server" / "serving-certs")
        env["PYTHONPATH"] = os.pathsep.join(
            [str(HERE.parent), *filter(None, [env.get("PYTHONPATH")])]
        )
        env["MY_POD_NAMESPACE"] = spec.namespace
        env.pop("TMPDIR", None)
        return training_operator_command(
            binary, home, api_port=api_port, health_port=health_port, webhook_port=webhook_port
        )
    cert_dir = home / "certs"
    _copy_pair(*serving, cert_dir)
    if name == "trainer":
        tmp = home / "tmp"
        _copy_pair(*serving, tmp / "k8s-webhook-server" / "serving-certs")
        env["TMPDIR"] = str(tmp)
    if name == "kueue":
        _copy_pair(*serving, home / "etc-layer" / "kueue" / "metrics" / "certs")
    config = home / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            configuration(
                name,
                namespace=spec.namespace,
                webhook_port=webhook_port,
                health_port=health_port,
                cert_dir=cert_dir,
            ),
            sort_keys=False,
        )
    )
    return command(name, binary, config, home)


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (ApiError, OSError) as e:
            last = e
        time.sleep(0.3)
    raise TimeoutError(f"{what}: not within {timeout}s ({last})")


def stop(
    info: ClusterInfo,
    names: Iterable[str] | None,
    stop_group: Callable[[int, float], None],
) -> list[str]:
    """Stop ``names`` (default: all that run), and whatever needs them; webhooks first."""
    from .local import _ours

    targets = set(NAMES if names is None else names)
    # Kueue and Trainer need JobSet: stopping it stops them too.
    targets |= {n for n, s in SPECS.items() if targets & set(s.needs)}
    order = [n for n in reversed(NAMES) if n in targets]
    live = [n for n in order if n in running(info)]
    with contextlib.suppress(ApiError, OSError, TimeoutError):
        client = info.client()
        remove_webhooks(client, order)
        # Until the API server has dropped them, a webhook without its process would
        # refuse what it matches (failure policy Fail): the process goes after that.
        for name in [n for n in live if SPECS[n].webhooks]:
            _wait_for(
                partial(_webhooks_gone, client, name),
                30,
                f"API server no longer calling {name}'s webhooks",
            )
    stopped = []
    for name in order:
        pid = info.pids.pop(name, None)
        if pid and _ours(pid, info.state_dir):
            stop_group(pid, 10.0)
            stopped.append(name)
        for port in ("webhook", "health"):
            info.ports.pop(f"{name}-{port}", None)
    info.save()
    return stopped


def describe(info: ClusterInfo) -> dict[str, Any]:
    """Which controllers run, with their ports (for ``status``)."""
    return {
        n: {"webhook": info.ports.get(f"{n}-webhook"), "health": info.ports.get(f"{n}-health")}
        for n in running(info)
    }
