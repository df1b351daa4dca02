"""Replicas from one pod template: distinct priorities, one active, the intake routed to it.

The API calls go to a small in-process imitation of the API server (on
127.0.0.1) through the real Kubernetes client, so the paths, verbs and bodies
are the ones the operator sends to a cluster.
"""

from __future__ import annotations

import base64
import functools
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from kubernetes_asyncio import client

from kubesweep.operator.config import OperatorConfig, config_from_args
from kubesweep.operator.peering import (
    TIEBREAK_BITS,
    IntakeRoute,
    PeeringWatch,
    derive_priority,
    intake_endpoint_slice,
    is_active,
    new_priority,
)
from kubesweep.operator.runtime import token_key_from_secret

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _peer(priority: int, seen: datetime = NOW, lifetime: int = 60) -> dict[str, Any]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


# -- priorities -------------------------------------------------------------------


def test_an_older_replica_outranks_a_newer_one() -> None:
    started = NOW.timestamp()
    older = derive_priority(started, (1 << TIEBREAK_BITS) - 1)
    newer = derive_priority(started + 0.001, 0)
    assert older > newer


def test_replicas_started_in_one_millisecond_differ_by_their_random_bits() -> None:
    started = NOW.timestamp()
    assert derive_priority(started, 1) != derive_priority(started, 2)
    with pytest.raises(ValueError, match="tiebreak"):
        derive_priority(started, 1 << TIEBREAK_BITS)


def test_a_derived_priority_fits_the_api_servers_integers() -> None:
    latest = datetime(2200, 1, 1, tzinfo=UTC).timestamp()
    assert -(2**63) <= derive_priority(latest, (1 << TIEBREAK_BITS) - 1) < 0


def test_a_new_priority_is_derived_from_now() -> None:
    assert new_priority(random.Random(1)) < derive_priority(NOW.timestamp(), 0)


def test_peering_without_a_priority_leaves_it_to_be_derived() -> None:
    assert config_from_args(["--peering=ks"])[0].priority is None
    assert config_from_args(["--peering=ks", "--priority=5"])[0].priority == 5


def test_a_bad_priority_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config_from_args(["--priority=high"])
    assert "--priority / KUBESWEEP_PRIORITY: 'high'" in capsys.readouterr().err


# -- who is active ---------------------------------------------------------------------


def test_replicas_from_one_template_leave_exactly_one_active() -> None:
    # The worst case: every replica started in the same millisecond.
    rng = random.Random(7)
    for _ in range(200):
        status = {
            f"pod-{i}": _peer(derive_priority(NOW.timestamp(), rng.randrange(1 << TIEBREAK_BITS)))
            for i in range(3)
        }
        active = [
            pod for pod, peer in status.items() if is_active(status, pod, peer["priority"], NOW)
        ]
        assert len(active) == 1


def test_equal_priorities_pause_everyone_as_kopf_does() -> None:
    status = {"a": _peer(0), "b": _peer(0)}
    assert not is_active(status, "a", 0, NOW)
    assert not is_active(status, "b", 0, NOW)


def test_a_dead_peer_no_longer_outranks() -> None:
    status = {"old": _peer(10, seen=NOW - timedelta(seconds=61)), "new": _peer(5)}
    assert is_active(status, "new", 5, NOW)
    assert not is_active(status, "old", 10, NOW)


def test_a_replica_kopf_has_not_announced_is_not_active() -> None:
    assert not is_active({}, "me", 5, NOW)
    assert not is_active({"other": _peer(1)}, "me", 5, NOW)


# -- the API server imitation --------------------------------------------------------


class FakeApi:
    """The peering object, EndpointSlices and Secrets, in dicts."""

    def __init__(self) -> None:
        self.peering: dict[str, Any] = {"metadata": {"name": "ks"}, "status": {}}
        self.slices: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/apis/kopf.dev/v1/clusterkopfpeerings/{name}", self.get_peering)
        slices = "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
        app.router.add_post(slices, self.create_slice)
        app.router.add_get(slices + "/{name}", self.get_slice)
        app.router.add_patch(slices + "/{name}", self.patch_slice)
        app.router.add_post("/api/v1/namespaces/{ns}/secrets", self.create_secret)
        app.router.add_get("/api/v1/namespaces/{ns}/secrets/{name}", self.get_secret)
        return app

    @staticmethod
    def _missing(name: str) -> web.Response:
        return web.json_response(
            {"kind": "Status", "code": 404, "reason": "NotFound", "message": name}, status=404
        )

    async def get_peering(self, request: web.Request) -> web.Response:
        return web.json_response(self.peering)

    async def create_slice(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = (request.match_info["ns"], body["metadata"]["name"])
        self.slices[key] = body
        self.writes.append(f"create {key[1]}")
        return web.json_response(body, status=201)

    async def get_slice(self, request: web.Request) -> web.Response:
        found = self.slices.get((request.match_info["ns"], request.match_info["name"]))
        return web.json_response(found) if found else self._missing(request.match_info["name"])

    async def patch_slice(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/merge-patch+json"
        current = self.slices[(request.match_info["ns"], request.match_info["name"])]
        current.update(await request.json())
        self.writes.append(f"patch {request.match_info['name']}")
        return web.json_response(current)

    async def create_secret(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = (request.match_info["ns"], body["metadata"]["name"])
        if key in self.secrets:
            return web.json_response(
                {"kind": "Status", "code": 409, "reason": "AlreadyExists"}, status=409
            )
        self.secrets[key] = body
        return web.json_response(body, status=201)

    async def get_secret(self, request: web.Request) -> web.Response:
        found = self.secrets.get((request.match_info["ns"], request.match_info["name"]))
        return web.json_response(found) if found else self._missing(request.match_info["name"])


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeApi, client.ApiClient]]:
    api = FakeApi()
    server = TestServer(api.app(), host="127.0.0.1")
    await server.start_server()
    configuration = client.Configuration(host=str(server.make_url("")).rstrip("/"))
    kube = client.ApiClient(configuration)
    try:
        yield api, kube
    finally:
        await kube.close()
        await server.close()


def _config(pod_ip: str) -> OperatorConfig:
    return OperatorConfig(
        peering_name="ks",
        intake_service="ks-intake",
        intake_port=8081,
        pod_ip=pod_ip,
        pod_namespace="kubesweep",
    )


async def _publish(route: IntakeRoute) -> None:
    """What the operator does while active: keep the intake routed to itself."""
    await route.publish()


def _routed_to(api: FakeApi) -> list[str]:
    endpoint_slice = api.slices[("kubesweep", "ks-intake")]
    assert endpoint_slice["metadata"]["labels"]["kubernetes.io/service-name"] == "ks-intake"
    return [a for e in endpoint_slice["endpoints"] for a in e["addresses"]]


async def test_the_intake_service_follows_the_active_replica(
    fake: tuple[FakeApi, client.ApiClient],
) -> None:
    api, kube = fake
    clock = {"now": NOW}
    # The first replica started a second before the second one.
    first_priority = derive_priority(NOW.timestamp(), 5)
    second_priority = derive_priority(NOW.timestamp() + 1, 3)
    api.peering["status"] = {"first": _peer(first_priority), "second": _peer(second_priority)}
    replicas = {}
    for identity, ip, priority in [
        ("first", "10.0.0.1", first_priority),
        ("second", "10.0.0.2", second_priority),
    ]:
        route = IntakeRoute(kube, _config(ip), identity)
        replicas[identity] = PeeringWatch(
            kube,
            _config(ip),
            identity,
            priority,
            functools.partial(_publish, route),
            clock=lambda: clock["now"],
        )
    assert [await w.poll() for w in replicas.values()] == [True, False]
    assert _routed_to(api) == ["10.0.0.1"]
    # Polls while nothing changes write nothing.
    await replicas["first"].poll()
    assert api.writes == ["create ks-intake"]

    # The active replica dies: its keep-alive runs out, the standby takes over the route.
    api.peering["status"]["second"] = _peer(second_priority, seen=NOW + timedelta(seconds=90))
    clock["now"] = NOW + timedelta(seconds=91)
    assert await replicas["second"].poll()
    assert await replicas["first"].poll() is False
    assert _routed_to(api) == ["10.0.0.2"]
    assert api.writes == ["create ks-intake", "patch ks-intake"]


async def test_the_key_is_created_once_and_then_read(
    fake: tuple[FakeApi, client.ApiClient],
) -> None:
    api, kube = fake
    first = await token_key_from_secret(kube, "kubesweep", "ks-intake")
    second = await token_key_from_secret(kube, "kubesweep", "ks-intake")
    assert first == second
    assert len(first) >= 32
    stored = api.secrets[("kubesweep", "ks-intake")]
    assert base64.b64decode(stored["data"]["key"]) == first
    assert stored["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kubesweep"


def test_a_mounted_key_file_is_optional_only_beside_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBESWEEP_TOKEN_KEY", raising=False)
    missing = tmp_path / "key"
    config, _ = config_from_args(
        [f"--token-key-file={missing}", "--token-key-secret=ks-intake", "--pod-namespace=ns"]
    )
    assert config.token_key == b""
    assert config.token_key_secret == "ks-intake"
    missing.write_text("s3cret\n")
    assert config_from_args([f"--token-key-file={missing}"])[0].token_key == b"s3cret"
    with pytest.raises(SystemExit):
        config_from_args([f"--token-key-file={tmp_path / 'absent'}"])
    assert "is missing or empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        config_from_args(["--token-key-secret=ks-intake"])
    assert "--token-key-secret needs --pod-namespace" in capsys.readouterr().err


def test_the_slice_names_the_pod_only_when_the_identity_is_a_pod_name() -> None:
    in_pod = intake_endpoint_slice("ks-intake", "ns", "10.1.2.3", 8081, "ks-operator-5d9f-x2")
    assert in_pod["endpoints"][0]["targetRef"]["name"] == "ks-operator-5d9f-x2"
    assert in_pod["addressType"] == "IPv4"
    outside = intake_endpoint_slice("ks-intake", "ns", "fd00::1", 8081, "host/4242/abc123")
    assert "targetRef" not in outside["endpoints"][0]
    assert outside["addressType"] == "IPv6"


def test_routing_the_intake_needs_the_pods_address(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBESWEEP_POD_IP", raising=False)
    monkeypatch.delenv("KUBESWEEP_POD_NAMESPACE", raising=False)
    with pytest.raises(SystemExit):
        config_from_args(["--peering=ks", "--intake-service=ks-intake"])
    assert "--intake-service needs --pod-ip and --pod-namespace" in capsys.readouterr().err
    monkeypatch.setenv("KUBESWEEP_POD_IP", "10.0.0.7")
    monkeypatch.setenv("KUBESWEEP_POD_NAMESPACE", "kubesweep")
    config = config_from_args(["--peering=ks", "--intake-service=ks-intake"])[0]
    assert (config.pod_ip, config.pod_namespace) == ("10.0.0.7", "kubesweep")
