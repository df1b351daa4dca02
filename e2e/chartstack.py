"""kubesweep as users install it: the Helm chart, with the built images, on the real node.

``stack.py`` runs the operator and the suggestion service as processes beside the
process node; this module is its counterpart for the real node, where they run as
the chart's pods: the images that ``make images`` built are imported into the
node's containerd (what a registry would deliver), the chart is installed by
``helm install`` with its registry and tags pointed at them, into a namespace that
enforces the ``restricted`` Pod Security Standard, and Experiments name the trainer
image the same way. The demo (``e2e/demo.py``) and the real-node e2e tests share it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cluster.kube import JSON, Kube, path_for

if TYPE_CHECKING:
    from conftest import Cluster

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "kubesweep"
IMAGE_CACHE = (
    Path(os.environ.get("KUBESWEEP_CACHE", Path.home() / ".cache" / "kubesweep")) / "images"
)
#: The images a sweep on the real node runs: the chart's three and the example trainer.
CHART_IMAGES = ("operator", "suggestion", "collector")
TRAINER_IMAGE = "trainer-sklearn"
#: The chart runs it only with ``dashboard.enabled``; ``make images`` builds it when named.
DASHBOARD_IMAGE = "dashboard"
#: How the example manifests name the trainer image (the published name, any tag).
PUBLISHED_TRAINER = "kubesweep/trainer-sklearn"
RELEASE = "kubesweep"
SYSTEM_NAMESPACE = "kubesweep-system"


@dataclass(frozen=True)
class BuiltImage:
    """One image ``make images`` built: its reference and OCI archive."""

    name: str
    reference: str
    archive: Path

    @property
    def registry(self) -> str:
        return self.reference.split("/", 1)[0]

    @property
    def tag(self) -> str:
        return self.reference.rsplit(":", 1)[1]


def built_image(name: str) -> BuiltImage | None:
    """The record ``images/build.py`` wrote for ``name``, or ``None`` if it is not built."""
    record = IMAGE_CACHE / f"{name}.json"
    if not record.exists():
        return None
    data = json.loads(record.read_text())
    return BuiltImage(name, data["reference"], Path(data["archive"]))


def missing_images(names: tuple[str, ...] = (*CHART_IMAGES, TRAINER_IMAGE)) -> list[str]:
    return [name for name in names if built_image(name) is None]


def build_images(names: tuple[str, ...] = (*CHART_IMAGES, TRAINER_IMAGE)) -> None:
    """``images/build.py build`` for ``names``: nothing is rebuilt whose inputs are unchanged."""
    subprocess.run(
        [sys.executable, str(REPO / "images" / "build.py"), "build", *names], check=True, cwd=REPO
    )


def import_images(info: Any, names: tuple[str, ...] = (*CHART_IMAGES, TRAINER_IMAGE)) -> None:
    """Import the built archives into the real node's containerd."""
    from node import realnode

    for name in names:
        image = built_image(name)
        if image is None:
            raise RuntimeError(f"image {name} is not built: run `make images`")
        realnode.import_image(info, image.archive)


def chart_values(*, replicas: int = 1) -> list[str]:
    """``--set`` flags pointing the chart at the local images, never pulled."""
    operator = built_image("operator")
    if operator is None:
        raise RuntimeError("image operator is not built: run `make images`")
    flags = ["global.imageRegistry=" + operator.registry]
    for component in CHART_IMAGES:
        image = built_image(component)
        assert image is not None, component
        flags.append(f"{component}.image.tag={image.tag}")
        flags.append(f"{component}.image.pullPolicy=Never")
    flags += [
        f"operator.replicas={replicas}",
        # One replica and one worker keep the suggestion service small on a 2-core machine.
        "suggestion.replicas=1",
        "suggestion.workers=1",
        "operator.resyncSeconds=5",
    ]
    return [arg for flag in flags for arg in ("--set", flag)]


def dashboard_values() -> list[str]:
    """``--set`` flags that enable the chart's dashboard with the local image, never pulled."""
    image = built_image(DASHBOARD_IMAGE)
    if image is None:
        raise RuntimeError(f"image {DASHBOARD_IMAGE} is not built: run `make images`")
    flags = ["dashboard.enabled=true", f"dashboard.image.tag={image.tag}"]
    flags.append("dashboard.image.pullPolicy=Never")
    return [arg for flag in flags for arg in ("--set", flag)]


def restricted_namespace(name: str) -> dict[str, Any]:
    level = "restricted"
    labels = {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "warn")}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def install_chart(
    helm: list[str],
    kubectl: list[str],
    *,
    namespace: str = SYSTEM_NAMESPACE,
    release: str = RELEASE,
    extra: tuple[str, ...] = (),
    timeout_s: int = 240,
) -> float:
    """``helm install --wait`` into a ``restricted`` namespace; returns the seconds it took."""
    subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", "-"],
        input=json.dumps(restricted_namespace(namespace)),
        check=True,
        capture_output=True,
        text=True,
    )
    started = time.monotonic()
    done = subprocess.run(
        [
            *helm,
            "upgrade",
            "--install",
            release,
            str(CHART),
            "--namespace",
            namespace,
            *chart_values(),
            *extra,
            "--wait",
            f"--timeout={timeout_s}s",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pods = subprocess.run(
            [*kubectl, "get", "pods", "-n", namespace, "-o", "wide"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        raise RuntimeError(
            f"helm install {release} into {namespace} failed within {timeout_s}s:\n"
            f"{done.stderr.strip()}\npods:\n{pods}"
        )
    return time.monotonic() - started


def localize_experiment(document: dict[str, Any]) -> dict[str, Any]:
    """An example Experiment with its trainer image pointed at the one built here.

    Containers that name ``kubesweep/trainer-sklearn`` (the published name) get the
    local reference and ``imagePullPolicy: Never``; nothing else changes.
    """
    trainer = built_image(TRAINER_IMAGE)
    if trainer is None:
        raise RuntimeError(f"image {TRAINER_IMAGE} is not built: run `make images`")
    result = copy.deepcopy(document)
    pod = result["spec"]["trialTemplate"]["job"]["template"]["spec"]
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        if container.get("image", "").split(":", 1)[0] == PUBLISHED_TRAINER:
            container["image"] = trainer.reference
            container["imagePullPolicy"] = "Never"
    return result


@contextlib.contextmanager
def installed_chart(
    cluster: Cluster, *extra: str, dashboard: bool = False
) -> Iterator[InstalledChart]:
    """The chart installed into ``kubesweep-system`` with the built images; uninstalled after.

    A test module's fixture holds it (``extra``: more ``helm`` flags; ``dashboard``:
    its dashboard enabled too). It skips the module, naming them, when images are
    not built.
    """
    import pytest

    names = (*CHART_IMAGES, TRAINER_IMAGE, *((DASHBOARD_IMAGE,) if dashboard else ()))
    missing = missing_images(names)
    if missing:
        pytest.skip(f"images not built: {' '.join(missing)} (run `make images`)")
    assert cluster.local is not None
    assert cluster.helm_bin is not None
    import_images(cluster.local, names)
    if dashboard:
        extra = (*extra, *dashboard_values())
    kubeconfig = f"--kubeconfig={cluster.kubeconfig}"
    install_chart([cluster.helm_bin, kubeconfig], [cluster.kubectl_bin, kubeconfig], extra=extra)
    try:
        yield InstalledChart(cluster.kube)
    finally:
        from conftest import wait_for

        cluster.helm("uninstall", RELEASE, "--namespace", SYSTEM_NAMESPACE, "--wait", check=False)
        namespace = f"/api/v1/namespaces/{SYSTEM_NAMESPACE}"
        cluster.kube.delete(namespace)
        # The next module installs into the same namespace: it must be gone, not terminating.
        wait_for(
            lambda: cluster.kube.get_or_none(namespace) is None,
            180,
            1.0,
            what=f"namespace {SYSTEM_NAMESPACE} to be deleted after helm uninstall",
        )


@dataclass(frozen=True)
class InstalledChart:
    """The chart's operator and suggestion service, as a fault test handles them.

    The counterpart of ``stack.Stack`` on the real node: the service goes away as a
    Deployment scaled to zero does, and the operator dies as a crashed process does
    (SIGKILL to its container's processes) before its pod is replaced.
    """

    kube: Kube
    namespace: str = SYSTEM_NAMESPACE
    release: str = RELEASE

    def _pods(self, component: str) -> list[JSON]:
        return self.kube.list(
            path_for("v1", "pods", self.namespace),
            labelSelector=f"app.kubernetes.io/component={component}",
        )

    def _scale(self, component: str, replicas: int) -> None:
        deployment = path_for("apps/v1", "deployments", self.namespace)
        self.kube.patch(
            f"{deployment}/{self.release}-{component}/scale", {"spec": {"replicas": replicas}}
        )

    def _ready(self, component: str) -> bool:
        """Whether a pod of ``component`` that is not being deleted has all containers ready."""
        for pod in self._pods(component):
            statuses = pod["status"].get("containerStatuses") or []
            live = pod["metadata"].get("deletionTimestamp") is None
            if live and statuses and all(s["ready"] for s in statuses):
                return True
        return False

    def stop_suggestion(self) -> None:
        """Scaled to zero; returns once no suggestion pod is left."""
        from conftest import wait_for

        self._scale("suggestion", 0)
        wait_for(lambda: not self._pods("suggestion"), 60, what="the suggestion pods to end")

    def start_suggestion(self) -> None:
        """Scaled to one again; returns once its pod is ready."""
        from conftest import wait_for

        self._scale("suggestion", 1)
        wait_for(lambda: self._ready("suggestion"), 120, what="a ready suggestion pod")

    def kill_operator(self) -> None:
        """SIGKILL to the operator container's processes, then its pod deleted at once.

        The process dies with no chance to finish anything, as in a crash; deleting the
        pod lets the Deployment start a fresh one with no crash-loop back-off.
        """
        for pod in self._pods("operator"):
            for status in pod["status"].get("containerStatuses") or []:
                container_id = status.get("containerID", "").partition("://")[2]
                if container_id:
                    _kill_container(container_id)
            self.kube.delete(
                path_for("v1", "pods", self.namespace, pod["metadata"]["name"]),
                gracePeriodSeconds=0,
            )

    def start_operator(self) -> None:
        """Returns once a live operator pod is ready (the Deployment starts one itself)."""
        from conftest import wait_for

        wait_for(lambda: self._ready("operator"), 120, what="a ready operator pod")

    def restart_operator(self) -> None:
        self.kill_operator()
        self.start_operator()


def _kill_container(container_id: str) -> None:
    """SIGKILL every process of one container, found by the id in its cgroup path."""
    for cgroup in Path("/proc").glob("[0-9]*/cgroup"):
        try:
            if container_id not in cgroup.read_text():
                continue
            os.kill(int(cgroup.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue  # the process ended while we looked
