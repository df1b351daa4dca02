"""The Helm chart on a real API server: lint, render, admission, RBAC, lifecycle.

The chart is rendered over each scenario values file in ``charts/kubesweep/ci``;
the API server judges the result (server-side dry-run, the ``restricted`` Pod
Security admission on the pods the Deployments would create), and the
operator's own workload runs under the chart's ServiceAccount with a real token
to show that the Role grants all it needs and nothing it does not.
"""

from __future__ import annotations

import asyncio
import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio import config as kube_config

from cluster.kube import ApiError, path_for
from conftest import Cluster, wait_for
from kubesweep.cli.main import main as cli_main
from kubesweep.operator.config import config_from_args
from kubesweep.operator.runtime import token_key_from_secret
from kubesweep.suggestion.service import parse_settings
from stack import Stack

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "kubesweep"
# helm built from source renders for Kubernetes v1.20 unless told the version.
KUBE_VERSION = "v1.37.2"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))


def _render(cluster: Cluster, namespace: str, values: Path, *extra: str) -> list[dict[str, Any]]:
    out = cluster.helm(
        "template",
        "kubesweep",
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(values),
        *extra,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _kinds(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        found.setdefault(doc["kind"], []).append(doc)
    return found


def test_helm_lint(cluster: Cluster) -> None:
    for values in SCENARIOS:
        result = cluster.helm("lint", "--strict", str(CHART), "-f", str(values), check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_schema_refuses_a_typo(cluster: Cluster, tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("operator: {replica: 2}\n")
    result = cluster.helm(
        "template", "x", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(typo), check=False
    )
    assert result.returncode != 0
    assert "replica" in result.stderr


def _dry_run_namespaced(
    cluster: Cluster, namespace: str, docs: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    """Every namespaced object of ``docs`` through admission (server-side dry run), unstored.

    CRDs and cluster-scoped RBAC are applied for real by other tests.
    """
    namespaced = [
        d
        for d in docs
        if d["kind"]
        not in {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ServiceMonitor"}
        and d["metadata"].get("namespace") in (None, namespace)
    ]
    return cluster.kubectl(
        *("apply", "--dry-run=server", "--server-side", "-n", namespace, "-f", "-"),
        input=yaml.safe_dump_all(namespaced),
        check=False,
    )


@pytest.mark.parametrize("values", SCENARIOS, ids=lambda p: p.name)
def test_rendered_manifests_pass_server_side_dry_run(
    cluster: Cluster, namespace: str, values: Path
) -> None:
    docs = _render(cluster, namespace, values)
    kinds = _kinds(docs)
    assert "Deployment" in kinds
    result = _dry_run_namespaced(cluster, namespace, docs)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("values", SCENARIOS, ids=lambda p: p.name)
def test_a_dry_run_under_restricted_pod_security_passes(
    cluster: Cluster, namespace: str, values: Path
) -> None:
    """The namespace enforces and warns ``restricted``; the release goes through untouched."""
    cluster.kube.patch(
        f"/api/v1/namespaces/{namespace}",
        {
            "metadata": {
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                }
            }
        },
    )
    docs = _render(cluster, namespace, values)
    result = _dry_run_namespaced(cluster, namespace, docs)
    assert result.returncode == 0, result.stderr
    # A workload that would create refused pods is admitted with a warning only.
    assert "would violate PodSecurity" not in result.stderr, result.stderr
    deployments = _kinds(docs)["Deployment"]
    enabled = (yaml.safe_load(values.read_text()) or {}).get("dashboard", {}).get("enabled")
    expected = {"operator", "suggestion"} | ({"dashboard"} if enabled else set())
    components = {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments}
    assert (components, len(deployments)) == (expected, len(expected))
    for deployment in deployments:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": deployment["metadata"]["name"], "namespace": namespace},
            "spec": copy.deepcopy(deployment["spec"]["template"]["spec"]),
        }
        pod["spec"]["serviceAccountName"] = "default"
        cluster.kube.create(path_for("v1", "pods", namespace) + "?dryRun=All", pod)
    # The standard is really enforced: a pod that runs as root is refused.
    bad = copy.deepcopy(pod)
    bad["spec"]["securityContext"]["runAsNonRoot"] = False
    bad["spec"]["securityContext"]["runAsUser"] = 0
    with pytest.raises(ApiError) as refused:
        cluster.kube.create(path_for("v1", "pods", namespace) + "?dryRun=All", bad)
    assert "restricted" in refused.value.message


def test_rendered_flags_are_understood_by_the_programs(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    key = tmp_path / "key"  # stands in for the mounted Secret
    key.write_text("k")
    for values in SCENARIOS:
        for deployment in _kinds(_render(cluster, namespace, values))["Deployment"]:
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            if container["name"] == "operator":
                args = [
                    f"--token-key-file={key}" if a.startswith("--token-key-file=") else a
                    for a in container["args"]
                ]
                # What the downward API gives the pod.
                config, _ = config_from_args(
                    ["--pod-ip=10.0.0.7", f"--pod-namespace={namespace}", *args]
                )
                assert config.suggestion_url.endswith(":8080")
            elif container["name"] == "dashboard":
                command, *args = container["args"]
                group = cli_main.make_context("kubesweep", [command])
                dashboard = cli_main.get_command(group, command)
                assert dashboard is not None
                assert dashboard.make_context(command, args).params["cluster"] is True
            else:
                parse_settings(container["args"])


def test_namespaced_scope_uses_roles_only(cluster: Cluster, namespace: str) -> None:
    kinds = _kinds(_render(cluster, namespace, CHART / "ci" / "namespaced-values.yaml"))
    assert "ClusterRole" not in kinds
    assert "ClusterRoleBinding" not in kinds
    watching = [r for r in kinds["Role"] if r["metadata"]["name"].endswith("-operator")]
    assert sorted(r["metadata"]["namespace"] for r in watching) == sorted(
        [namespace, "team-a", "team-b"]
    )
    # and one for the operator's own objects (its key Secret), in its own namespace only
    own = [r for r in kinds["Role"] if r["metadata"]["name"].endswith("-operator-own")]
    assert [r["metadata"]["namespace"] for r in own] == [namespace]


def _sa_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [server],
        "users": [{"name": account, "user": {"token": token.strip()}}],
        "contexts": [
            {
                "name": account,
                "context": {"cluster": server["name"], "user": account, "namespace": namespace},
            }
        ],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def installed_rbac(cluster: Cluster, namespace: str) -> str:
    """The chart's ServiceAccounts and RBAC (namespaced scope) applied for real."""
    docs = _render(
        cluster, namespace, CHART / "ci" / "default-values.yaml", "--set", "scope=namespaced"
    )
    objects = [d for d in docs if d["kind"] in {"ServiceAccount", "Role", "RoleBinding"}]
    cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(objects)
    )
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    return "kubesweep-operator"


def test_operator_runs_a_sweep_with_only_the_charts_role(
    cluster: Cluster, namespace: str, installed_rbac: str, tmp_path: Path
) -> None:
    kubeconfig = _sa_kubeconfig(
        cluster, namespace, installed_rbac, tmp_path / "operator.kubeconfig"
    )
    experiment = yaml.safe_load((REPO / "examples" / "random.yaml").read_text())
    experiment["metadata"] = {"name": "rbac-sweep", "namespace": namespace}
    experiment["spec"]["budget"] = {"maxTrials": 2, "parallelTrials": 2}
    with Stack(
        str(kubeconfig),
        tmp_path / "logs",
        namespaces=(namespace,),
        admin_kubeconfig=cluster.kubeconfig,
    ) as stack:
        cluster.kube.create(path_for("kubesweep.io/v1alpha1", "experiments", namespace), experiment)
        path = path_for("kubesweep.io/v1alpha1", "experiments", namespace, "rbac-sweep")
        wait_for(
            lambda: any(
                c["type"] == "Succeeded" and c["status"] == "True"
                for c in cluster.kube.get(path).get("status", {}).get("conditions", [])
            ),
            240,
            what="the sweep to succeed under the chart's Role",
        )
        log = stack.operator.log.read_text() if stack.operator else ""
    # A refusal shows as an HTTP status 403 or kopf's APIForbiddenError; a port
    # number that merely contains the digits 403 is not one.
    assert not re.search(r"(?<![\w:.])403(?!\d)", log), log[-3000:]
    assert "forbidden" not in log.lower(), log[-3000:]


def test_the_operator_creates_and_then_reads_its_key_under_the_charts_role(
    cluster: Cluster, namespace: str, installed_rbac: str, tmp_path: Path
) -> None:
    """Without intake.existingSecret the operator makes the key Secret (the chart renders none)."""
    kubeconfig = _sa_kubeconfig(cluster, namespace, installed_rbac, tmp_path / "op.kubeconfig")

    async def twice() -> tuple[bytes, bytes]:
        configuration = client.Configuration()
        await kube_config.load_kube_config(str(kubeconfig), client_configuration=configuration)
        async with client.ApiClient(configuration) as api:
            created = await token_key_from_secret(api, namespace, "kubesweep-intake")
            read = await token_key_from_secret(api, namespace, "kubesweep-intake")
        return created, read

    created, read = asyncio.run(twice())
    assert created == read
    assert len(created) >= 32
    # Only that Secret: the Role grants no other read.
    result = cluster.kubectl(
        "auth",
        "can-i",
        "get",
        "secrets/other",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:{installed_rbac}",
        check=False,
    )
    assert result.stdout.strip() == "no"


def test_trial_pod_identity_can_do_nothing(
    cluster: Cluster, namespace: str, installed_rbac: str
) -> None:
    identity = f"system:serviceaccount:{namespace}:default"
    for verb, resource in [
        ("get", "pods"),
        ("list", "secrets"),
        ("create", "jobs.batch"),
        ("patch", "trials.kubesweep.io/status"),
        ("list", "experiments.kubesweep.io"),
    ]:
        result = cluster.kubectl(
            "auth", "can-i", verb, resource, "-n", namespace, f"--as={identity}", check=False
        )
        assert result.stdout.strip() == "no", (verb, resource, result.stdout)
    assert (
        cluster.kubectl(
            "auth",
            "can-i",
            "create",
            "trials.kubesweep.io",
            "-n",
            namespace,
            f"--as=system:serviceaccount:{namespace}:{installed_rbac}",
            check=False,
        ).stdout.strip()
        == "yes"
    )


def test_install_upgrade_uninstall_leaves_no_orphans(cluster: Cluster, namespace: str) -> None:
    release = "ks-lifecycle"
    # CRDs other tests applied are adopted by the release, as Helm allows for objects
    # carrying its ownership metadata; with crds.keep they must outlive the release.
    for crd in ("experiments.kubesweep.io", "trials.kubesweep.io"):
        cluster.kubectl("label", "--overwrite", "crd", crd, "app.kubernetes.io/managed-by=Helm")
        cluster.kubectl(
            "annotate",
            "--overwrite",
            "crd",
            crd,
            f"meta.helm.sh/release-name={release}",
            f"meta.helm.sh/release-namespace={namespace}",
        )
    common = [
        "--namespace",
        namespace,
        "--set",
        "operator.replicas=0",
        "--set",
        "suggestion.replicas=0",
    ]
    cluster.helm("install", release, str(CHART), *common, "--wait", "--timeout=120s")
    selector = f"app.kubernetes.io/instance={release}"
    # No key material in the release: the operator makes its key, or mounts the user's.
    assert cluster.kube.list(path_for("v1", "secrets", namespace), labelSelector=selector) == []
    installed = cluster.helm("get", "manifest", release, "--namespace", namespace).stdout
    cluster.helm("upgrade", release, str(CHART), *common)
    upgraded = cluster.helm("get", "manifest", release, "--namespace", namespace).stdout
    assert upgraded == installed, "an upgrade with the same values changes nothing"
    cluster.helm("upgrade", release, str(CHART), *common, "--set", "suggestion.workers=3")
    experiment = yaml.safe_load((REPO / "examples" / "random.yaml").read_text())
    experiment["metadata"] = {"name": "survivor", "namespace": namespace}
    cluster.kube.create(path_for("kubesweep.io/v1alpha1", "experiments", namespace), experiment)

    cluster.helm("uninstall", release, "--namespace", namespace, "--wait")
    for api, plural in [
        ("apps/v1", "deployments"),
        ("v1", "services"),
        ("v1", "serviceaccounts"),
        ("v1", "secrets"),
        ("rbac.authorization.k8s.io/v1", "roles"),
    ]:
        assert cluster.kube.list(path_for(api, plural, namespace), labelSelector=selector) == []
    assert (
        cluster.kube.list("/apis/rbac.authorization.k8s.io/v1/clusterroles", labelSelector=selector)
        == []
    )
    # crds.keep (the default): the CRDs, and so the Experiments, stay.
    assert cluster.kube.get_or_none(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/experiments.kubesweep.io"
    )
    assert cluster.kube.get_or_none(
        path_for("kubesweep.io/v1alpha1", "experiments", namespace, "survivor")
    )


def test_programs_parse_their_own_help() -> None:
    """The entry points the chart starts exist and take --help without a cluster."""
    for script in ("kubesweep-operator", "kubesweep-suggestion"):
        result = subprocess.run(
            [str(Path(sys.executable).parent / script), "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "--" in result.stdout
