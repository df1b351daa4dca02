"""Only allowed ServiceAccounts' tokens for the service's audience may ask for suggestions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from kubesweep.suggestion.auth import (
    Authenticator,
    RefusedError,
    Review,
    ReviewUnavailableError,
    parse_allowed,
    review_from,
)

if TYPE_CHECKING:
    from kubesweep.suggestion.service import Engine

#: The guarded service's test client, and its application.
Guarded = tuple[TestClient[Any, Any], web.Application]

OPERATOR = "system:serviceaccount:kubesweep:kubesweep-operator"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(answers: dict[str, Review], calls: list[str], clock: Clock, **kw: Any) -> Authenticator:
    async def review(token: str, audience: str) -> Review:
        calls.append(token)
        if token == "unreachable":
            raise OSError("connection refused")
        return answers.get(token, Review(False, error="invalid"))

    return Authenticator(review, frozenset({OPERATOR}), clock=clock, **kw)


async def test_the_operators_token_passes_and_its_review_is_cached() -> None:
    calls: list[str] = []
    clock = Clock()
    auth = make({"good": Review(True, OPERATOR)}, calls, clock)
    assert await auth.check("Bearer good") == OPERATOR
    assert await auth.check("bearer good") == OPERATOR
    assert calls == ["good"]
    clock.now += 61
    assert await auth.check("Bearer good") == OPERATOR
    assert calls == ["good", "good"]


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("", 401),
        ("Basic abc", 401),
        ("Bearer ", 401),
        ("Bearer forged", 403),
        ("Bearer someone-else", 403),
    ],
)
async def test_anyone_else_is_refused(header: str | None, status: int) -> None:
    auth = make({"someone-else": Review(True, "system:serviceaccount:team-a:default")}, [], Clock())
    with pytest.raises(RefusedError) as refused:
        await auth.check(header)
    assert refused.value.status == status


async def test_an_unreachable_api_server_is_temporary_and_never_a_pass() -> None:
    auth = make({}, [], Clock())
    with pytest.raises(ReviewUnavailableError):
        await auth.check("Bearer unreachable")


async def test_the_cache_is_bounded() -> None:
    calls: list[str] = []
    auth = make({}, calls, Clock(), max_entries=8)
    for i in range(100):
        with pytest.raises(RefusedError):
            await auth.check(f"Bearer made-up-{i}")
    assert len(auth._answers) == 8


def test_a_token_for_another_audience_is_not_valid() -> None:
    answer: dict[str, Any] = {
        "status": {
            "authenticated": True,
            "user": {"username": OPERATOR},
            "audiences": ["https://kubernetes.default.svc"],
        }
    }
    assert not review_from(answer, "kubesweep-suggestion").authenticated
    answer["status"]["audiences"] = ["kubesweep-suggestion"]
    assert review_from(answer, "kubesweep-suggestion") == Review(True, OPERATOR, "")
    assert not review_from({}, "kubesweep-suggestion").authenticated


def test_allowed_callers_are_namespace_slash_name() -> None:
    assert parse_allowed(["kubesweep/op", " system:serviceaccount:x:y ", ""]) == {
        "system:serviceaccount:kubesweep:op",
        "system:serviceaccount:x:y",
    }
    with pytest.raises(ValueError, match="NAMESPACE/SERVICEACCOUNT"):
        parse_allowed(["just-a-name"])


# -- the service's edge ---------------------------------------------------------------


@pytest.fixture
async def guarded(fake_engine: Engine) -> AsyncIterator[Guarded]:
    from aiohttp.test_utils import TestServer

    from kubesweep.suggestion.service import Settings, create_app

    async def review(token: str, audience: str) -> Review:
        if token == "down":
            raise OSError("the API server is away")
        return Review(token == "operator", OPERATOR if token == "operator" else "x")

    auth = Authenticator(review, frozenset({OPERATOR}))
    settings = Settings(executor="thread", workers=1)
    app = create_app(settings, engine=fake_engine, authenticator=auth)
    async with TestClient(TestServer(app)) as client:
        yield client, app


@pytest.fixture
def fake_engine() -> Engine:
    from tests.suggestion.test_service import FakeAlgorithms

    fake = FakeAlgorithms()
    fake.gate.set()
    return fake.engine()


@pytest.mark.parametrize(
    ("token", "status"), [(None, 401), ("stranger", 403), ("down", 503), ("operator", 200)]
)
async def test_only_the_operator_may_ask(guarded: Guarded, token: str | None, status: int) -> None:
    from tests.suggestion.test_service import suggest_body

    client, _ = guarded
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/v1/suggest", json=suggest_body(), headers=headers)
    assert response.status == status, await response.text()
    if status != 200:
        assert "error" in await response.json()


async def test_probes_stay_open_and_metrics_are_on_a_port_of_their_own(guarded: Guarded) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from kubesweep.suggestion.service import metrics_app

    client, app = guarded
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/metrics")).status == 404  # not beside the API
    async with TestClient(TestServer(metrics_app(app))) as metrics:
        await client.post("/v1/suggest", json={})
        text = await (await metrics.get("/metrics")).text()
    assert 'kind="unauthenticated"' in text
