"""What ``helm template`` makes of the chart: stable, adoptable by platform teams, HA-ready.

No cluster is needed; the API server's judgement of the same output (server-side
dry-run, ``restricted`` Pod Security) is in ``e2e/test_chart.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubesweep.operator.config import config_from_args
from kubesweep.operator.runtime import render_settings
from kubesweep.podcontract import wrap_command
from kubesweep.suggestion.service import parse_settings

from .conftest import CHART, SCENARIOS, Render, template

PLATFORM = CHART / "ci" / "platform-values.yaml"


def _of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    found = [d for d in _of_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, (kind, suffix, [d["metadata"]["name"] for d in docs])
    return found[0]


def _container(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    deployment = _one(docs, "Deployment", f"-{component}")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def _operator_config(container: dict[str, Any], tmp_path: Path) -> Any:
    """The operator's config from the rendered flags, as the kubelet would start it.

    The mounted key file and the downward API's values are stood in for.
    """
    key = tmp_path / "key"
    key.write_text("k")
    args = [
        f"--token-key-file={key}" if a.startswith("--token-key-file=") else a
        for a in container["args"]
    ]
    downward = {"status.podIP": "--pod-ip=10.0.0.7", "metadata.namespace": "--pod-namespace=ns"}
    for env in container.get("env", []):
        field = env.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if field in downward:
            args.insert(0, downward[field])
    return config_from_args(args)[0]


# -- stable rendering (GitOps) ----------------------------------------------------


@pytest.mark.parametrize("values", SCENARIOS, ids=lambda p: p.name)
def test_two_renders_of_a_release_are_identical(helm: str, values: Path) -> None:
    first = template(helm, "-f", str(values))
    assert first == template(helm, "-f", str(values)), "a GitOps tool would never be in sync"


@pytest.mark.parametrize("values", SCENARIOS, ids=lambda p: p.name)
def test_no_key_material_is_rendered(render: Render, values: Path) -> None:
    docs = render("-f", str(values))
    assert _of_kind(docs, "Secret") == []
    for doc in docs:
        for container in (
            doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        ):
            assert "KUBESWEEP_TOKEN_KEY" not in {e["name"] for e in container.get("env", [])}


def test_the_key_reaches_the_operator_as_a_mounted_file(render: Render, tmp_path: Path) -> None:
    docs = render()
    pod = _one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "intake-key")
    assert volume["secret"]["secretName"] == "ks-kubesweep-intake"
    assert volume["secret"]["optional"] is True  # the operator creates it on first start
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "intake-key")
    config = _operator_config(pod["containers"][0], tmp_path)
    assert pod["containers"][0]["args"].count(f"--token-key-file={mount['mountPath']}/key") == 1
    assert config.token_key_secret == "ks-kubesweep-intake"
    # The operator may create that Secret and read only that one.
    own = _one(docs, "Role", "-operator-own")["rules"]
    assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]} in own
    assert {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["ks-kubesweep-intake"],
        "verbs": ["get"],
    } in own


def test_an_existing_secret_is_mounted_and_nothing_is_created(
    render: Render, tmp_path: Path
) -> None:
    docs = render("--set", "intake.existingSecret=team-key")
    pod = _one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "intake-key")
    assert volume["secret"] == {"secretName": "team-key", "items": [{"key": "key", "path": "key"}]}
    assert not any(a.startswith("--token-key-secret") for a in pod["containers"][0]["args"])
    assert _of_kind(docs, "Role") == []


# -- HA from the chart's own values ------------------------------------------------------


def test_replicas_peer_without_fixed_priorities_and_the_intake_follows_the_active_one(
    render: Render, tmp_path: Path
) -> None:
    docs = render("--set", "operator.replicas=2")
    container = _container(docs, "operator")
    assert not any(a.startswith("--priority") for a in container["args"])
    config = _operator_config(container, tmp_path)
    assert config.peering_name == "ks-kubesweep"
    assert config.priority is None  # each replica derives its own
    assert config.intake_service == "ks-kubesweep-intake"
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env["POD_ID"] == "metadata.name"
    assert env["KUBESWEEP_POD_IP"] == "status.podIP"
    assert env["KUBESWEEP_POD_NAMESPACE"] == "metadata.namespace"
    # Only the active replica's EndpointSlice routes the Service: it has no selector.
    service = _one(docs, "Service", "-intake")
    assert "selector" not in service["spec"]
    assert service["spec"]["ports"][0]["name"] == "intake"
    own = _one(docs, "Role", "-operator-own")["rules"]
    assert {
        "apiGroups": ["discovery.k8s.io"],
        "resources": ["endpointslices"],
        "resourceNames": ["ks-kubesweep-intake"],
        "verbs": ["get", "patch"],
    } in own
    peering = {
        r["apiGroups"][0]: r["verbs"] for r in _one(docs, "ClusterRole", "-operator")["rules"]
    }
    assert "patch" in peering["kopf.dev"]
    assert _one(docs, "Deployment", "-operator")["spec"]["strategy"] == {"type": "RollingUpdate"}


def test_one_replica_is_standalone_and_never_runs_beside_another(
    render: Render, tmp_path: Path
) -> None:
    docs = render()
    container = _container(docs, "operator")
    config = _operator_config(container, tmp_path)
    assert config.peering_name is None
    assert config.intake_service == ""
    assert _one(docs, "Service", "-intake")["spec"]["selector"]
    assert _one(docs, "Deployment", "-operator")["spec"]["strategy"] == {"type": "Recreate"}


# -- what platform teams expect ---------------------------------------------------------


def test_a_registry_override_and_digests_reach_all_three_images(
    render: Render, tmp_path: Path
) -> None:
    docs = render("-f", str(PLATFORM))
    prefix = "registry.example.com/mirror/kubesweep/"
    assert _container(docs, "operator")["image"] == f"{prefix}operator@sha256:{'1' * 64}"
    assert _container(docs, "suggestion")["image"] == f"{prefix}suggestion@sha256:{'2' * 64}"
    config = _operator_config(_container(docs, "operator"), tmp_path)
    assert config.collector_image == f"{prefix}collector@sha256:{'3' * 64}"
    assert config.collector_image_pull_policy == "Always"
    settings = render_settings(config, wrap_command)
    assert settings.collector_resources == {
        "requests": {"cpu": "20m", "memory": "64Mi"},
        "limits": {"cpu": "200m", "memory": "256Mi"},
    }
    default = render()
    assert _container(default, "suggestion")["image"] == "kubesweep/suggestion:0.1.0"


def test_extra_args_env_and_volumes_reach_both_programs(render: Render, tmp_path: Path) -> None:
    docs = render("-f", str(PLATFORM))
    operator = _container(docs, "operator")
    config = _operator_config(operator, tmp_path)
    assert config.concurrency == 16
    assert config.stall_after_seconds == 300.0
    assert {"name": "TZ", "value": "UTC"} in operator["env"]
    assert {"name": "ca", "mountPath": "/etc/ssl/corporate", "readOnly": True} in operator[
        "volumeMounts"
    ]
    pod = _one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    assert {"name": "ca", "configMap": {"name": "corporate-ca"}} in pod["volumes"]
    suggestion = _container(docs, "suggestion")
    settings = parse_settings(suggestion["args"])
    assert settings.max_queue == 64
    assert settings.executor == "thread"
    assert suggestion["env"] == [{"name": "OMP_NUM_THREADS", "value": "1"}]


def test_the_held_histories_of_the_suggestion_service_are_sized_by_values(
    render: Render,
) -> None:
    default = parse_settings(_container(render(), "suggestion")["args"])
    assert (default.history_experiments, default.history_bytes) == (64, 64 * 1024 * 1024)
    docs = render(
        "--set", "suggestion.history.experiments=8", "--set", "suggestion.history.bytes=300000000"
    )
    settings = parse_settings(_container(docs, "suggestion")["args"])
    assert (settings.history_experiments, settings.history_bytes) == (8, 300_000_000)


@pytest.mark.parametrize("values", SCENARIOS, ids=lambda p: p.name)
def test_rendered_flags_are_understood_by_the_programs(
    render: Render, values: Path, tmp_path: Path
) -> None:
    docs = render("-f", str(values))
    _operator_config(_container(docs, "operator"), tmp_path)
    parse_settings(_container(docs, "suggestion")["args"])


def test_common_labels_are_on_every_object_and_pod(render: Render) -> None:
    docs = render("-f", str(PLATFORM), "--set", "crds.install=true")
    assert len(docs) > 10
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["team"] == "ml-platform", doc["metadata"]["name"]
        assert labels["cost-center"] == "4711"
        template_labels = doc.get("spec", {}).get("template", {}).get("metadata", {})
        if template_labels:
            assert template_labels["labels"]["team"] == "ml-platform"
    # Selectors stay as they were: a Deployment's selector cannot change.
    selector = _one(docs, "Deployment", "-operator")["spec"]["selector"]["matchLabels"]
    assert "team" not in selector


def test_a_namespace_override_moves_every_namespaced_object(render: Render) -> None:
    docs = render("--set", "namespaceOverride=sweeps", "--set", "operator.replicas=2")
    for doc in docs:
        if doc["kind"] in {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}:
            assert "namespace" not in doc["metadata"]
        else:
            assert doc["metadata"]["namespace"] == "sweeps", doc["metadata"]["name"]
    binding = _one(docs, "ClusterRoleBinding", "-operator")
    assert binding["subjects"][0]["namespace"] == "sweeps"
    args = _container(docs, "operator")["args"]
    assert "--intake-url=http://ks-kubesweep-intake.sweeps.svc:8081" in args


def test_strategy_history_probes_and_spread_are_settable(render: Render) -> None:
    docs = render("-f", str(PLATFORM))
    deployment = _one(docs, "Deployment", "-operator")
    assert deployment["spec"]["revisionHistoryLimit"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    liveness = pod["containers"][0]["livenessProbe"]
    assert liveness["initialDelaySeconds"] == 30
    assert liveness["failureThreshold"] == 5
    readiness = _container(docs, "suggestion")["readinessProbe"]
    assert readiness == {
        "httpGet": {"path": "/readyz", "port": "http"},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 2,
    }


def test_a_disruption_budget_never_blocks_a_drain_of_one_replica(render: Render) -> None:
    single = render(
        "--set", "operator.pdb.enabled=true", "--set", "suggestion.pdb.enabled=true",
        "--set", "suggestion.replicas=1",
    )  # fmt: skip
    assert _of_kind(single, "PodDisruptionBudget") == []
    several = render("-f", str(CHART / "ci" / "ha-values.yaml"))
    budgets = _of_kind(several, "PodDisruptionBudget")
    assert len(budgets) == 2
    for budget in budgets:
        assert budget["spec"] == {
            "maxUnavailable": 1,
            "selector": budget["spec"]["selector"],
        }


def test_namespace_edit_and_view_users_get_experiments_and_trials(render: Render) -> None:
    docs = render()
    edit = _one(docs, "ClusterRole", "-edit")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert set(edit["rules"][0]["resources"]) == {"experiments", "trials"}
    assert {"create", "delete", "patch"} <= set(edit["rules"][0]["verbs"])
    view = _one(docs, "ClusterRole", "-view")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert set(view["rules"][0]["verbs"]) == {"get", "list", "watch"}
    # Namespaced scope installs no ClusterRole at all; off on request.
    assert _of_kind(render("--set", "scope=namespaced"), "ClusterRole") == []
    off = render("--set", "rbac.aggregateToDefaultRoles=false")
    assert [r["metadata"]["name"] for r in _of_kind(off, "ClusterRole")] == [
        "ks-kubesweep-operator"
    ]


def test_the_intake_can_serve_tls(render: Render, tmp_path: Path, helm: str) -> None:
    docs = render("-f", str(PLATFORM))
    container = _container(docs, "operator")
    config = _operator_config(container, tmp_path)
    assert config.intake_url == "https://ks-kubesweep-intake.kubesweep.svc:8081"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "intake-tls")
    assert config.intake_tls_cert_file == f"{mount['mountPath']}/tls.crt"
    assert config.intake_tls_key_file == f"{mount['mountPath']}/tls.key"
    pod = _one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "intake-tls")
    assert volume["secret"]["secretName"] == "kubesweep-intake-tls"
    with pytest.raises(AssertionError, match=r"intake.tls.enabled needs intake.tls.secretName"):
        template(helm, "--set", "intake.tls.enabled=true")


def test_the_collector_resources_are_the_operators_when_unset(
    render: Render, tmp_path: Path
) -> None:
    config = _operator_config(_container(render(), "operator"), tmp_path)
    assert config.collector_resources is None
    resources = render_settings(config, wrap_command).collector_resources
    assert json.loads(json.dumps(dict(resources)))["limits"] == {"memory": "128Mi"}


def test_only_the_operator_may_ask_the_suggestion_service(render: Render) -> None:
    docs = render()
    operator = _container(docs, "operator")
    suggestion = _container(docs, "suggestion")
    assert (
        "--suggestion-token-file=/var/run/secrets/kubesweep.io/suggestion/token"
        in (operator["args"])
    )
    pod = _one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    projected = next(v for v in pod["volumes"] if v["name"] == "suggestion-token")["projected"]
    assert projected["sources"][0]["serviceAccountToken"]["audience"] == "kubesweep-suggestion"
    operator_account = pod["serviceAccountName"]
    assert f"--allowed-callers=kubesweep/{operator_account}" in suggestion["args"]
    assert "--metrics-port=9090" in suggestion["args"]
    binding = _one(docs, "ClusterRoleBinding", "-suggestion-auth-delegator")
    assert binding["roleRef"]["name"] == "system:auth-delegator"
    # Off on request; off in namespaced scope unless asked (it needs a ClusterRoleBinding).
    namespaced = ("--set", "scope=namespaced")
    for off in (
        render("--set", "suggestion.auth.enabled=false"),
        render(*namespaced),
    ):
        args = _container(off, "suggestion")["args"]
        assert not any(a.startswith("--allowed-callers") for a in args)
        assert not any(
            a.startswith("--suggestion-token") for a in _container(off, "operator")["args"]
        )
        assert _of_kind(off, "ClusterRoleBinding") == [] or not any(
            b["metadata"]["name"].endswith("-auth-delegator")
            for b in _of_kind(off, "ClusterRoleBinding")
        )
    asked = render(*namespaced, "--set", "suggestion.auth.inNamespacedScope=true")
    assert any(a.startswith("--allowed-callers") for a in _container(asked, "suggestion")["args"])


def test_network_policies_are_on_and_no_pod_label_opens_them(render: Render) -> None:
    """A pod can label itself at will; namespaces' name labels are the API server's own."""
    for docs in (render(), render("--set", "scope=namespaced")):
        policies = _of_kind(docs, "NetworkPolicy")
        assert len(policies) == 2
        for policy in policies:
            for rule in policy["spec"]["ingress"]:
                for peer in rule["from"]:
                    if "podSelector" in peer:
                        # Only the release's own operator pods, in the release's namespace.
                        assert "namespaceSelector" not in peer, policy
                        labels = peer["podSelector"]["matchLabels"]
                        assert labels["app.kubernetes.io/component"] == "operator"
    suggestion = _one(render(), "NetworkPolicy", "-suggestion")
    api_rule = next(r for r in suggestion["spec"]["ingress"] if r["ports"][0]["port"] == "http")
    assert len(api_rule["from"]) == 1
