"""Every request has a bounded cost at the HTTP edge: admission before reading,
a byte budget for bodies in flight, a body timeout, a deadline that frees the
worker, 415 for a body that is not JSON, and a client hanging up is not an
error of the service.

Slow and vanishing clients are played on raw sockets, since an HTTP client
library will not stall halfway through a body. Every wait is on a condition
(a response, a metric), bounded by a timeout that says what it waited for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kubesweep.api.suggestion_wire import Assignment, SuggestReply, SuggestRequest
from kubesweep.suggestion.service import Engine, Settings, create_app
from tests.suggestion.test_service import (
    JSON_TYPE,
    FakeAlgorithms,
    error_of,
    no_problems,
    no_stops,
    suggest_body,
)

Client = TestClient[Any, Any]
Factory = Callable[..., Awaitable[Client]]

#: Seconds any one wait below may take before the test fails, naming the wait.
PATIENCE = 20.0


FAKE = web.AppKey("fake", FakeAlgorithms)


class ProductionLikeServer(TestServer):
    """A test server that, like ``web.run_app``, lets a handler finish when its client
    hangs up (aiohttp's test server cancels it instead)."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs["handler_cancellation"] = False
        return web.AppRunner(self.app, **kwargs)


@pytest.fixture
async def serve() -> AsyncIterator[Factory]:
    """Start the service on a fake engine (threads) with given settings."""
    fake = FakeAlgorithms()
    clients: list[Client] = []

    async def start(engine: Engine | None = None, **overrides: Any) -> Client:
        settings = Settings(
            **{"executor": "thread", "workers": 1, "max_queue": 4, "metrics_port": 0, **overrides}
        )
        app = create_app(settings, engine=engine or fake.engine())
        app[FAKE] = fake
        client: Client = TestClient(ProductionLikeServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    fake.gate.set()
    for client in clients:
        await client.close()


async def within(awaitable: Awaitable[Any], what: str, seconds: float = PATIENCE) -> Any:
    """``awaitable``'s result, or a failure that says what did not happen in time."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds:g}s waiting for {what}") from None


async def metric(client: Client, line_start: str) -> float:
    """The value of the first exposition line starting with ``line_start`` (0 if absent)."""
    text = await (await client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def until_metric(client: Client, line_start: str, expected: float) -> None:
    """Wait until the metric reads ``expected``."""

    async def poll() -> None:
        while await metric(client, line_start) != expected:
            await asyncio.sleep(0.02)

    await within(poll(), f"{line_start} to read {expected}")


async def ready(client: Client) -> None:
    """Wait until ``/readyz`` answers 200: every worker has prepared itself."""
    while (await client.get("/readyz")).status != 200:
        await asyncio.sleep(0.05)


class RawUpload:
    """A client on a raw socket: headers, then as much of the body as the test says."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def begin(self, headers: dict[str, str], part: bytes = b"") -> None:
        """Send the request line, ``headers`` and the first ``part`` of the body."""
        server = self.client.server
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", server.port)
        lines = ["POST /v1/suggest HTTP/1.1", "Host: 127.0.0.1", *_header_lines(headers)]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + part)
        await self.writer.drain()

    async def status(self) -> int:
        """The status code of the response."""
        assert self.reader is not None
        line = await within(self.reader.readline(), "the response's status line")
        return int(line.split()[1])

    def hang_up(self) -> None:
        assert self.writer is not None
        self.writer.close()


def _header_lines(headers: dict[str, str]) -> list[str]:
    return [f"{name}: {value}" for name, value in headers.items()]


def json_headers(length: int | None) -> dict[str, str]:
    if length is None:
        return {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    return {"Content-Type": "application/json", "Content-Length": str(length)}


# --- content type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_body_that_is_not_declared_json_is_415(serve: Factory, content_type: str) -> None:
    client = await serve()
    body = json.dumps(suggest_body())
    response = await client.post("/v1/suggest", data=body, headers={"Content-Type": content_type})
    error = await error_of(response, 415)
    assert "application/json" in error["error"]
    assert (
        await metric(
            client,
            'kubesweep_suggestion_errors_total{endpoint="/v1/suggest",kind="unsupported_media_type"}',
        )
        == 1
    )


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
async def test_json_content_types_are_accepted(serve: Factory, content_type: str) -> None:
    client = await serve()
    body = json.dumps(suggest_body())
    response = await client.post("/v1/suggest", data=body, headers={"Content-Type": content_type})
    assert response.status == 200, await response.text()


# --- admission before the body is read ------------------------------------------------------


async def test_a_declared_length_over_the_limit_is_413_before_the_body_is_sent(
    serve: Factory,
) -> None:
    client = await serve(max_body_bytes=1000, max_bytes_in_flight=4000)
    upload = RawUpload(client)
    await upload.begin(json_headers(10**12))  # a terabyte declared, nothing sent
    assert await upload.status() == 413
    upload.hang_up()


async def test_bodies_in_flight_are_bounded_in_bytes_before_they_are_read(serve: Factory) -> None:
    client = await serve(max_body_bytes=1000, max_bytes_in_flight=2500, body_timeout=PATIENCE)
    stalled = [RawUpload(client), RawUpload(client)]
    for upload in stalled:
        await upload.begin(json_headers(1000), b'{"space":')
    gauge = "kubesweep_suggestion_body_bytes_in_flight "
    await until_metric(client, gauge, 2000)
    # A third declared body, and an undeclared (chunked) one, do not fit the 500 bytes left.
    for length in (1000, None):
        third = RawUpload(client)
        await third.begin(json_headers(length))
        assert await third.status() == 503
        third.hang_up()
    # A small body still fits, and is answered.
    small = json.dumps(suggest_body()).encode()
    response = await client.post("/v1/suggest", data=small, headers=JSON_TYPE)
    assert response.status == 200, await response.text()
    for upload in stalled:
        upload.hang_up()
    await until_metric(client, gauge, 0)


async def test_requests_in_flight_are_bounded_before_their_bodies_are_read(
    serve: Factory,
) -> None:
    client = await serve(workers=1, max_queue=1, body_timeout=PATIENCE)
    stalled = [RawUpload(client), RawUpload(client)]
    for upload in stalled:
        await upload.begin(json_headers(100), b"{")
    await until_metric(client, "kubesweep_suggestion_in_flight ", 2)
    response = await client.post("/v1/suggest", json=suggest_body())
    error = await error_of(response, 503)
    assert "in flight" in error["error"]
    assert response.headers["Retry-After"] == "1"
    for upload in stalled:
        upload.hang_up()


# --- slow and vanishing clients -------------------------------------------------------------


async def test_a_slow_upload_is_408_after_the_body_timeout(serve: Factory) -> None:
    client = await serve(body_timeout=0.3)
    upload = RawUpload(client)
    started = time.monotonic()
    await upload.begin(json_headers(500), b'{"space": ')
    assert await upload.status() == 408
    assert time.monotonic() - started < PATIENCE
    upload.hang_up()
    await until_metric(client, "kubesweep_suggestion_in_flight ", 0)
    kind = 'kubesweep_suggestion_errors_total{endpoint="/v1/suggest",kind="slow_upload"}'
    assert await metric(client, kind) == 1


async def test_a_client_hanging_up_mid_upload_is_not_an_internal_error(
    serve: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await serve(body_timeout=PATIENCE)
    upload = RawUpload(client)
    with caplog.at_level(logging.DEBUG):
        await upload.begin(json_headers(5000), b'{"space": {"parameters": [')
        await until_metric(client, "kubesweep_suggestion_in_flight ", 1)
        upload.hang_up()
        gone = 'kubesweep_suggestion_errors_total{endpoint="/v1/suggest",kind="client_gone"}'
        await until_metric(client, gone, 1)
    internal = 'kubesweep_suggestion_errors_total{endpoint="/v1/suggest",kind="internal"}'
    assert await metric(client, internal) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    await until_metric(client, "kubesweep_suggestion_in_flight ", 0)


# --- the deadline ---------------------------------------------------------------------------


def suggest_or_spin(request: SuggestRequest) -> SuggestReply:
    """Runs in a worker process: computes forever when asked to, like a runaway fit."""
    if "spin" in request.algorithm.settings:
        while True:
            pass
    return SuggestReply(assignments=[Assignment(parameters={"lr": 0.01})] * request.count)


async def test_a_computation_past_the_deadline_is_504_and_its_worker_is_replaced(
    serve: Factory,
) -> None:
    engine = Engine(suggest=suggest_or_spin, stop=no_stops, validate=no_problems)
    client = await serve(engine=engine, executor="process", workers=1, deadline=1.0)
    await within(ready(client), "the worker to be ready")
    spin = suggest_body(algorithm={"name": "random", "settings": {"spin": True}})
    response = await within(client.post("/v1/suggest", json=spin), "the deadline's answer")
    error = await error_of(response, 504)
    assert "deadline of 1 s" in error["error"]
    assert await metric(client, "kubesweep_suggestion_workers_replaced_total ") == 1
    # The only worker was replaced: requests are answered again once the fresh
    # process has started (until then they wait for it, within their deadline).

    async def answered() -> None:
        while (await client.post("/v1/suggest", json=suggest_body())).status != 200:
            pass

    await within(answered(), "an answer from the fresh worker")


async def test_a_thread_past_the_deadline_still_answers_the_client(serve: Factory) -> None:
    client = await serve(deadline=0.3)
    assert isinstance(client.server, TestServer)
    fake: FakeAlgorithms = client.server.app[FAKE]
    fake.gate.clear()  # the computation waits (up to 10 s), like a slow fit
    response = await within(client.post("/v1/suggest", json=suggest_body()), "the 504")
    await error_of(response, 504)
    fake.gate.set()
