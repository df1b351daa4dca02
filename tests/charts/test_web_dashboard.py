"""The chart's optional web dashboard: off by default, read-only RBAC of the chart's scope.

The Deployment runs ``kubesweep dashboard --cluster`` with flags the command
understands, under the chart's URL prefix (pages, probes, every path), and is
reached with ``kubectl port-forward`` unless ``dashboard.allowedFrom`` admits more.
"""

from __future__ import annotations

from typing import Any

from kubesweep.cli.main import main

from .conftest import CHART, Render

SCENARIO = CHART / "ci" / "dashboard-values.yaml"
READ = {"get", "list", "watch"}


def _dashboard(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d
        for d in docs
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "dashboard"
    ]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in _dashboard(docs) if d["kind"] == kind]
    return found


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][
        0
    ]
    return container


def _granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_dashboard_is_off_by_default(render: Render) -> None:
    assert _dashboard(render()) == []


def test_cluster_scope_reads_every_namespace_with_a_read_only_cluster_role(
    render: Render,
) -> None:
    docs = render("-f", str(SCENARIO))
    role = _one(docs, "ClusterRole")
    assert _granted(role["rules"]) == {
        *(("kubesweep.io", kind, verb) for kind in ("experiments", "trials") for verb in READ),
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "pods/log", "get"),
    }
    binding = _one(docs, "ClusterRoleBinding")
    account = _one(docs, "ServiceAccount")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": "kubesweep"}
    ]
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account
    args = _container(docs)["args"]
    assert "--all-namespaces" in args
    assert args[0] == "dashboard"
    command = main.get_command(main.make_context("kubesweep", ["dashboard"]), "dashboard")
    assert command is not None
    parsed = command.make_context("dashboard", list(args[1:])).params  # understood
    assert parsed["cluster"] is True
    assert parsed["all_namespaces"] is True


def test_namespaced_scope_reads_the_watched_namespaces_with_roles(render: Render) -> None:
    docs = render(
        "-f", str(SCENARIO), "--set", "scope=namespaced", "--set", "watchNamespaces={a,b}"
    )
    assert [d for d in _dashboard(docs) if d["kind"].startswith("Cluster")] == []
    roles = [d for d in _dashboard(docs) if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["a", "b", "kubesweep"]
    for role in roles:
        assert {verb for _, _, verb in _granted(role["rules"])} <= READ
    bindings = [d for d in _dashboard(docs) if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["a", "b", "kubesweep"]
    args = _container(docs)["args"]
    namespaces = [a.removeprefix("--namespace=") for a in args if a.startswith("--namespace=")]
    assert namespaces == ["kubesweep", "a", "b"]
    assert "--all-namespaces" not in args


def test_the_url_prefix_reaches_the_server_and_its_probes(render: Render) -> None:
    container = _container(render("-f", str(SCENARIO)))
    assert "--prefix=/sweeps/" in container["args"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/sweeps/"
    assert container["readinessProbe"]["httpGet"]["path"] == "/sweeps/api/experiments"
    plain = _container(render("--set", "dashboard.enabled=true"))
    assert "--prefix=/" in plain["args"]
    assert plain["livenessProbe"]["httpGet"]["path"] == "/"


def test_only_port_forward_reaches_it_unless_peers_are_allowed(render: Render) -> None:
    policy = _one(render("--set", "dashboard.enabled=true"), "NetworkPolicy")
    assert policy["spec"]["ingress"] == []
    allowed = _one(render("-f", str(SCENARIO)), "NetworkPolicy")
    (rule,) = allowed["spec"]["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
    ]
    service = _one(render("-f", str(SCENARIO)), "Service")
    assert service["spec"]["type"] == "ClusterIP"
