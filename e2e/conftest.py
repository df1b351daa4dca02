"""pytest fixtures for tests against a real Kubernetes API server.

Which cluster
-------------
- Default: the local cluster of ``e2e/cluster`` (control plane built from Go
  modules into ``~/.cache/kubesweep``, one process node with 4 GPUs). If one is
  already running in the state dir (``make dev-cluster``) it is reused and left
  running; otherwise the session starts a fresh one and stops it at the end.
- ``KUBESWEEP_E2E_KUBECONFIG=/path/to/kubeconfig``: use that cluster (kind, a
  real one) and start nothing. ``KUBECONFIG`` alone is deliberately *not* used,
  so a developer's everyday cluster is never touched by accident.
- ``KUBESWEEP_E2E_KEEP=1``: leave a cluster this session started running (to
  look around with ``e2e/cluster/kubectl``; ``make dev-cluster-down`` stops it).
- ``KUBESWEEP_E2E_NODE=real``: the local cluster's node is a real kubelet with
  containerd (``e2e/node/realnode.py``) instead of the process node; a running
  cluster is reused only if its node is of the kind asked for. Tests that need one
  kind (``e2e/test_realnode.py``) skip, saying why, on the other.

Every test under ``e2e/`` gets the ``e2e`` marker; ``pytest tests/`` never loads
this file and needs no cluster.

Fixture API (for the operator's e2e tests)
------------------------------------------
``cluster`` (session): a :class:`Cluster` with
    ``kubeconfig`` (path), ``kube`` (a blocking :class:`cluster.kube.Kube` client
    with admin rights: ``get/list/create/patch/apply/delete/watch`` on REST
    paths built by ``path_for(api_version, plural, namespace, name)``),
    ``kubectl(*args, input=None, check=True)`` and ``helm(*args)`` (subprocess,
    text output), ``api_client()`` (a ``kubernetes_asyncio`` ApiClient for this
    cluster, for code under test), ``logs(namespace, pod, container)`` (container
    log text), ``local`` (the :class:`cluster.local.ClusterInfo`, or ``None`` for
    an external cluster), ``gpus`` (GPUs the cluster's nodes offer).
``namespace``: a fresh namespace for one test, deleted afterwards (its name).
``apply``: ``apply(manifest)`` server-side applies a YAML string, a dict or a list
    of dicts (default namespace: the test's), returns the applied objects; tests
    annotate it as ``Apply``.
``wait_for(predicate, timeout=60, interval=0.25, what="...")``: polls until the
    predicate returns something truthy and returns it; raises ``TimeoutError``
    with the last value or exception otherwise. Plain function, importable as
    ``from conftest import wait_for``.
``IMAGE``: the container image test pods name (``KUBESWEEP_E2E_IMAGE``, default
    ``python:3.11-slim``); the process node ignores it and runs the command with
    this machine's Python.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

# e2e/ holds the harness packages (cluster, node) and the helpers tests import
# from this module; put it on sys.path whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import local
from cluster.kube import JSON, ApiError, Kube, path_for

T = TypeVar("T")
E2E_DIR = Path(__file__).resolve().parent
IMAGE = os.environ.get("KUBESWEEP_E2E_IMAGE", "python:3.11-slim")
EXTERNAL_ENV = "KUBESWEEP_E2E_KUBECONFIG"
NODE_ENV = "KUBESWEEP_E2E_NODE"
#: The ``apply`` fixture: a YAML string, one object or a list of them in, the applied objects out.
Apply = Callable[[str | JSON | list[JSON]], list[JSON]]


def e2e_node_kind() -> str:
    """The local cluster's node for this session: ``process`` (default) or ``real``."""
    kind = os.environ.get(NODE_ENV, "process")
    if kind not in local.NODE_KINDS:
        raise pytest.UsageError(f"{NODE_ENV}={kind!r}: expected one of {local.NODE_KINDS}")
    return kind


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 60.0,
    interval: float = 0.25,
    what: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned); API errors are retried."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except (ApiError, subprocess.CalledProcessError, KeyError, IndexError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s; last: {last!r}")
        time.sleep(interval)


@dataclass
class Cluster:
    kubeconfig: str
    kube: Kube
    kubectl_bin: str
    helm_bin: str | None
    local: local.ClusterInfo | None

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if not self.helm_bin:
            raise RuntimeError("no helm binary")
        return subprocess.run(
            [self.helm_bin, f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=300,
        )

    @contextlib.asynccontextmanager
    async def api_client(self) -> AsyncIterator[Any]:
        """``async with cluster.api_client() as api:`` a kubernetes_asyncio ApiClient."""
        from kubernetes_asyncio import client, config

        cfg = client.Configuration()
        await config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg)
        async with client.ApiClient(cfg) as api:
            yield api

    def logs(self, namespace: str, pod: str, container: str, previous: bool = False) -> str:
        """A container's log: from the process node's files, or the API for other clusters."""
        if self.local is not None and self.local.node_kind == "process":
            from node.processnode import read_container_log

            return read_container_log(self.local.node_dir, namespace, pod, container, previous)
        return self.kube.get_raw(
            path_for("v1", "pods", namespace, pod) + "/log",
            {"container": container, "previous": str(previous).lower()},
        )

    @property
    def gpus(self) -> int:
        return sum(
            int((n.get("status", {}).get("allocatable") or {}).get("nvidia.com/gpu", 0))
            for n in self.kube.list("/api/v1/nodes")
        )


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    external = os.environ.get(EXTERNAL_ENV)
    if external:
        kubectl = shutil.which("kubectl") or str(local.build_binaries() / "kubectl")
        kube = Kube.from_kubeconfig(external)
        yield Cluster(external, kube, kubectl, shutil.which("helm"), None)
        return
    kind = e2e_node_kind()
    existing = local.ClusterInfo.load(local.default_state_dir(kind))
    reuse = existing is not None and existing.running() and existing.node_kind == kind
    info = local.up(fresh=not reuse, node_kind=kind)
    try:
        yield Cluster(info.kubeconfig, info.client(), info.kubectl, info.helm, info)
    finally:
        if not reuse and not os.environ.get("KUBESWEEP_E2E_KEEP"):
            local.down(node_kind=kind)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"e2e-{base}-{uuid.uuid4().hex[:5]}"
    cluster.kube.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    wait_for(
        lambda: cluster.kube.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        30,
        what=f"default service account in {name}",
    )
    yield name
    cluster.kube.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def apply(cluster: Cluster, namespace: str) -> Apply:
    def _apply(manifest: str | JSON | list[JSON]) -> list[JSON]:
        if isinstance(manifest, str):
            docs = [d for d in yaml.safe_load_all(manifest) if d]
        elif isinstance(manifest, dict):
            docs = [manifest]
        else:
            docs = list(manifest)
        text = yaml.safe_dump_all(docs)
        out = cluster.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            f"--namespace={namespace}",
            "-o",
            "yaml",
            "-f",
            "-",
            input=text,
        ).stdout
        result = yaml.safe_load(out)
        items: list[JSON] = result.get("items", [result]) if result else []
        return items

    return _apply
