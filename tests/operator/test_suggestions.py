"""The suggestion client against a local aiohttp server: batching, errors, backoff."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kubesweep.api.suggestion_wire import SuggestRequest
from kubesweep.operator.monitoring import OperatorMetrics
from kubesweep.operator.suggestions import (
    Backoff,
    BearerTokenFile,
    HttpSuggestionBackend,
    SuggestionClient,
    SuggestionUnavailable,
)
from kubesweep.planning import suggest_request
from tests.planning.builders import make_spec


def asking(count: int) -> SuggestRequest:
    """A request for ``count`` assignments of a one-parameter space, no history."""
    return suggest_request(make_spec(), None, [], count)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


#: The fake service, the bodies it received, and how it answers (``status``, ``delay``).
Service = tuple[TestServer, list[dict[str, Any]], dict[str, Any]]


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    calls: list[dict[str, Any]] = []
    mode: dict[str, Any] = {"status": 200, "delay": 0.0}

    async def suggest(request: web.Request) -> web.Response:
        body = await request.json()
        calls.append(body)
        await asyncio.sleep(mode["delay"])
        if mode["status"] != 200:
            return web.json_response({"error": "boom"}, status=mode["status"])
        count = body["count"]
        return web.json_response({"assignments": [{"parameters": {"x": i}} for i in range(count)]})

    app = web.Application()
    app.router.add_post("/v1/suggest", suggest)
    server = TestServer(app)
    await server.start_server()
    yield server, calls, mode
    await server.close()


async def test_one_call_for_all_slots(service: Service) -> None:
    server, calls, _ = service
    client = SuggestionClient(HttpSuggestionBackend(str(server.make_url("")), 5))
    reply = await client.suggest("e1", asking(3))
    assert len(reply.assignments) == 3
    assert len(calls) == 1
    await client.close()


async def test_errors_back_off_then_recover(service: Service) -> None:
    server, calls, mode = service
    clock = Clock()
    metrics = OperatorMetrics()
    client = SuggestionClient(
        HttpSuggestionBackend(str(server.make_url("")), 5), metrics, Backoff(clock=clock)
    )
    mode["status"] = 500
    with pytest.raises(SuggestionUnavailable, match="answered 500"):
        await client.suggest("e1", asking(1))
    # inside the backoff window: no call is made, the message says when it retries
    with pytest.raises(SuggestionUnavailable, match="retrying in 1s"):
        await client.suggest("e1", asking(1))
    assert len(calls) == 1
    # other experiments are not held back
    with pytest.raises(SuggestionUnavailable, match="answered 500"):
        await client.suggest("e2", asking(1))
    clock.now += 1.0
    with pytest.raises(SuggestionUnavailable):
        await client.suggest("e1", asking(1))
    assert client.backoff.remaining("e1") == 2.0  # doubled
    mode["status"] = 200
    clock.now += 2.0
    assert (await client.suggest("e1", asking(1))).assignments
    assert client.backoff.remaining("e1") == 0
    errors = metrics.registry.get_sample_value(
        "kubesweep_suggestion_errors_total", {"endpoint": "suggest"}
    )
    assert errors == 3
    await client.close()


async def test_slow_service_times_out_with_a_clear_message(service: Service) -> None:
    server, _, mode = service
    mode["delay"] = 1.0
    client = SuggestionClient(HttpSuggestionBackend(str(server.make_url("")), 0.2))
    with pytest.raises(SuggestionUnavailable, match=r"did not answer suggest within 0\.2s"):
        await client.suggest("e1", asking(1))
    await client.close()


async def test_unreachable_service() -> None:
    client = SuggestionClient(HttpSuggestionBackend("http://127.0.0.1:9", 1))
    with pytest.raises(SuggestionUnavailable, match="unreachable"):
        await client.suggest("e1", asking(1))
    await client.close()


def test_backoff_is_capped() -> None:
    clock = Clock()
    backoff = Backoff(base=1, maximum=8, clock=clock)
    delays = [backoff.failed("k") for _ in range(6)]
    assert delays == [1, 2, 4, 8, 8, 8]


async def test_in_process_backend_answers_like_the_service() -> None:
    from kubesweep.operator.suggestions import InProcessSuggestionBackend

    client = SuggestionClient(InProcessSuggestionBackend())
    reply = await client.suggest("e1", suggest_request(make_spec(), "uid", [], 3))
    assert len(reply.assignments) == 3
    assert all(0.001 <= float(a.parameters["lr"]) <= 0.1 for a in reply.assignments)
    bad = suggest_request(
        make_spec(extra={"algorithm": {"name": "random", "settings": {"x": 1}}}), None, [], 1
    )
    with pytest.raises(SuggestionUnavailable, match="refused"):
        await client.suggest("e2", bad)


async def test_the_projected_token_is_sent_and_read_again_when_the_kubelet_rotates_it(
    tmp_path: Path,
) -> None:
    seen: list[str | None] = []

    async def suggest(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"assignments": []})

    app = web.Application()
    app.router.add_post("/v1/suggest", suggest)
    server = TestServer(app)
    await server.start_server()
    token = tmp_path / "token"
    token.write_text("first-token\n")
    backend = HttpSuggestionBackend(str(server.make_url("")), 5, BearerTokenFile(str(token)))
    try:
        await backend.suggest(asking(1))
        token.write_text("second-token-after-rotation\n")
        await backend.suggest(asking(1))
        token.unlink()
        with pytest.raises(SuggestionUnavailable, match="cannot read the token"):
            await backend.suggest(asking(1))
    finally:
        await backend.close()
        await server.close()
    assert seen == ["Bearer first-token", "Bearer second-token-after-rotation"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"assignments": [{"params": {"x": 1}}]}', "assignments.0.parameters: Field required"),
        (b'{"stop": []}', "assignments: Field required"),
        (b"[]", "body: Input should be an object"),
        (b"<html>busy</html>", "body: Invalid JSON"),
    ],
)
async def test_a_malformed_reply_is_the_services_fault_and_backs_off(
    body: bytes, problem: str
) -> None:
    async def suggest(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/suggest", suggest)
    server = TestServer(app)
    await server.start_server()
    client = SuggestionClient(HttpSuggestionBackend(str(server.make_url("")), 5))
    try:
        with pytest.raises(SuggestionUnavailable, match="sent a malformed reply to suggest") as err:
            await client.suggest("e1", asking(1))
        assert problem in str(err.value)
        assert client.backoff.remaining("e1") > 0
    finally:
        await client.close()
        await server.close()


async def test_a_diverged_trials_nan_reaches_the_service_as_the_service_reads_it() -> None:
    from kubesweep.api import CurvePoint, TrialPhase, TrialStatus
    from kubesweep.planning import TrialView

    received: list[bytes] = []

    async def suggest(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({"assignments": [{"parameters": {"lr": 0.01}}]})

    app = web.Application()
    app.router.add_post("/v1/suggest", suggest)
    server = TestServer(app)
    await server.start_server()
    diverged = TrialView(
        name="exp-0",
        index=0,
        parameters={"lr": 0.1},
        status=TrialStatus(
            phase=TrialPhase.SUCCEEDED,
            objective=float("inf"),
            curve=[CurvePoint(step=1, value=float("nan"))],
        ),
    )
    client = SuggestionClient(HttpSuggestionBackend(str(server.make_url("")), 5))
    try:
        await client.suggest("e1", suggest_request(make_spec(), "uid", [diverged], 1))
    finally:
        await client.close()
        await server.close()
    parsed = SuggestRequest.model_validate_json(received[0], strict=True)  # as the service does
    assert parsed.trials[0].value == float("inf")
    assert math.isnan(parsed.trials[0].intermediate[0].value)
