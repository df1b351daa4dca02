"""The HTTP edge of the suggestion service: status codes, error bodies, cache, probes.

Most tests serve a fake engine, so they pin the service's own behaviour (error
classification, caching, queue bounds) independently of any algorithm; a few
serve the real registry to show the pieces fit.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kubesweep.api.experiment import Algorithm, EarlyStopping
from kubesweep.api.suggestion_wire import (
    Assignment,
    SearchSpace,
    StopDecision,
    StopReply,
    StopRequest,
    SuggestReply,
    SuggestRequest,
    TrialState,
)
from kubesweep.suggestion.cache import CachedReply, ReplyCache
from kubesweep.suggestion.contract import SettingsError
from kubesweep.suggestion.openapi import build_document
from kubesweep.suggestion.service import Engine, Settings, create_app, parse_settings

SPACE: dict[str, Any] = {
    "parameters": [
        {"name": "lr", "type": "float", "min": 0.001, "max": 0.1, "log": True},
        {"name": "opt", "type": "categorical", "values": ["adam", "sgd"]},
    ]
}


#: The header of a JSON body sent as bytes (aiohttp would declare octet-stream).
JSON_TYPE = {"Content-Type": "application/json"}


def suggest_body(**extra: Any) -> dict[str, Any]:
    return {"space": SPACE, "algorithm": {"name": "random", "seed": 1}, **extra}


class FakeAlgorithms:
    """A deterministic engine whose behaviour the request's settings select."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def suggest(self, request: SuggestRequest) -> SuggestReply:
        with self.lock:
            self.calls += 1
        self.entered.set()
        self.gate.wait(10)
        settings = request.algorithm.settings
        if "refuse" in settings:
            raise SettingsError("refuse", "not a setting of random")
        if "crash" in settings:
            raise ZeroDivisionError("a bug")
        if "overflow" in settings:
            return SuggestReply(assignments=[Assignment(parameters={"lr": float("inf")})])
        return SuggestReply(
            assignments=[
                Assignment(parameters={"lr": 0.01 * (i + 1), "opt": "adam"})
                for i in range(request.count)
            ]
        )

    def stop(self, request: StopRequest) -> StopReply:
        return StopReply(
            stop=[
                StopDecision(name=t.name, reason="worse than the median")
                for t in request.trials
                if t.state is TrialState.PENDING
            ]
        )

    def validate(
        self, space: SearchSpace, algorithm: Algorithm, early_stopping: EarlyStopping | None
    ) -> list[str]:
        if "bad" in algorithm.settings:
            return ["algorithm.settings.bad: must be a positive integer"]
        return []

    def engine(self) -> Engine:
        return Engine(suggest=self.suggest, stop=self.stop, validate=self.validate)


Factory = Callable[..., Any]


@pytest.fixture
def fake() -> FakeAlgorithms:
    return FakeAlgorithms()


@pytest.fixture
async def serve(fake: FakeAlgorithms) -> AsyncIterator[Factory]:
    """Start the service with given settings on the fake engine; closed at teardown."""
    clients: list[TestClient[Any, Any]] = []

    async def start(**overrides: Any) -> TestClient[Any, Any]:
        settings = Settings(**{"executor": "thread", "workers": 2, "metrics_port": 0, **overrides})
        client: TestClient[Any, Any] = TestClient(
            TestServer(create_app(settings, engine=fake.engine()))
        )
        await client.start_server()
        clients.append(client)
        return client

    yield start
    fake.gate.set()
    for client in clients:
        await client.close()


@pytest.fixture
async def client(serve: Factory) -> TestClient[Any, Any]:
    result: TestClient[Any, Any] = await serve()
    return result


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert set(body) == {"error", "problems"}
    return body


# --- success ----------------------------------------------------------------------------


async def test_suggest_answers_in_camel_case(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/suggest", json=suggest_body(count=3))
    assert response.status == 200
    body = await response.json()
    assert body == {
        "assignments": [
            {"parameters": {"lr": 0.01 * (i + 1), "opt": "adam"}, "tags": {}} for i in range(3)
        ],
        "exhausted": False,
    }


async def test_stop_names_the_trials_to_stop(client: TestClient[Any, Any]) -> None:
    trials = [
        {"name": "t-0", "parameters": {"lr": 0.01}, "state": "completed", "value": 0.5},
        {"name": "t-1", "parameters": {"lr": 0.02}, "state": "pending"},
    ]
    response = await client.post(
        "/v1/stop", json={"space": SPACE, "earlyStopping": {"name": "median"}, "trials": trials}
    )
    assert response.status == 200
    assert await response.json() == {"stop": [{"name": "t-1", "reason": "worse than the median"}]}


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", b"42"])
async def test_a_body_that_is_not_a_json_object_is_400(
    client: TestClient[Any, Any], body: bytes
) -> None:
    response = await client.post("/v1/suggest", data=body, headers=JSON_TYPE)
    error = await error_of(response, 400)
    assert error["problems"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"count": "3"}, "count: Input should be a valid integer"),
        ({"count": 0}, "count: Input should be greater than or equal to 1"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"algorithm": {"name": "annealing"}}, "algorithm.name: Input should be"),
        (
            {"space": {"parameters": [{"name": "x", "type": "float", "min": 2, "max": 1}]}},
            "space.parameters.0: parameters[].max must be greater than min",
        ),
        (
            {"space": {"parameters": [{"name": "x", "type": "float", "min": 0, "max": 1e999}]}},
            "space.parameters.0.max: must be a finite number",
        ),
        (
            {
                "space": {
                    "parameters": [{"name": "x", "type": "float", "min": -1e308, "max": 1e308}]
                }
            },
            "space.parameters.0.max: max - min must be a finite number",
        ),
        (
            {
                "space": {
                    "parameters": [
                        {"name": "x", "type": "float", "min": 0, "max": 10, "step": 5e-324}
                    ]
                }
            },
            "space.parameters.0.step: too small for the bounds",
        ),
        ({"space": None}, "space: Input should be an object"),
    ],
)
async def test_an_invalid_request_is_422_naming_the_field(
    client: TestClient[Any, Any], change: dict[str, Any], field: str
) -> None:
    body = json.dumps(suggest_body(**change)).replace("Infinity", "1e999")
    response = await client.post("/v1/suggest", data=body, headers=JSON_TYPE)
    error = await error_of(response, 422)
    assert any(problem.startswith(field) for problem in error["problems"]), error


async def test_missing_space_is_named(client: TestClient[Any, Any]) -> None:
    error = await error_of(await client.post("/v1/suggest", json={"count": 1}), 422)
    assert error["problems"] == ["space: Field required"]


async def test_settings_the_algorithm_refuses_are_422(client: TestClient[Any, Any]) -> None:
    body = suggest_body(algorithm={"name": "random", "settings": {"refuse": 1}})
    error = await error_of(await client.post("/v1/suggest", json=body), 422)
    assert error["problems"] == ["algorithm.settings.refuse: not a setting of random"]
    body = suggest_body(algorithm={"name": "random", "settings": {"bad": 1}})
    error = await error_of(await client.post("/v1/suggest", json=body), 422)
    assert error["problems"] == ["algorithm.settings.bad: must be a positive integer"]


async def test_a_bug_is_500_with_the_traceback_logged(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    body = suggest_body(algorithm={"name": "random", "settings": {"crash": True}})
    with caplog.at_level(logging.ERROR, logger="kubesweep.suggestion.service"):
        error = await error_of(await client.post("/v1/suggest", json=body), 500)
    assert "traceback" in error["error"]
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


async def test_a_reply_breaking_the_contract_is_500_not_garbage(
    client: TestClient[Any, Any],
) -> None:
    body = suggest_body(algorithm={"name": "random", "settings": {"overflow": True}})
    await error_of(await client.post("/v1/suggest", json=body), 500)


async def test_a_body_over_the_limit_is_413(serve: Factory) -> None:
    client = await serve(max_body_bytes=1024)
    trials = [
        {"name": f"t-{i}", "parameters": {"lr": 0.01}, "state": "completed", "value": 1.0}
        for i in range(100)
    ]
    response = await client.post("/v1/suggest", json=suggest_body(trials=trials))
    await error_of(response, 413)


async def test_unknown_paths_and_methods_answer_json(client: TestClient[Any, Any]) -> None:
    await error_of(await client.get("/v2/suggest"), 404)
    response = await client.get("/v1/suggest")
    await error_of(response, 405)
    assert response.headers["Allow"] == "POST"


# --- validate ------------------------------------------------------------------------------


async def test_validate_accepts_a_good_space(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/validate", json={"space": SPACE})
    assert response.status == 200
    assert await response.json() == {"valid": True, "problems": []}


async def test_validate_reports_value_problems_as_the_answer(
    client: TestClient[Any, Any],
) -> None:
    space = {"parameters": [{"name": "x", "type": "float", "min": 0, "max": 1, "log": True}]}
    response = await client.post("/v1/validate", json={"space": space})
    assert response.status == 200
    body = await response.json()
    assert body["valid"] is False
    assert body["problems"][0].startswith("space.parameters.0: parameters[].min must be positive")

    response = await client.post(
        "/v1/validate", json={"space": SPACE, "algorithm": {"settings": {"bad": 1}}}
    )
    assert await response.json() == {
        "valid": False,
        "problems": ["algorithm.settings.bad: must be a positive integer"],
    }


async def test_validate_reports_numbers_no_algorithm_can_use(client: TestClient[Any, Any]) -> None:
    space = {"parameters": [{"name": "x", "type": "float", "min": -1e308, "max": 1e308}]}
    response = await client.post("/v1/validate", json={"space": space})
    body = await response.json()
    assert body["valid"] is False
    assert body["problems"] == [
        "space.parameters.0.max: max - min must be a finite number; narrow the bounds"
    ]


async def test_stop_refuses_bad_settings_naming_them(client: TestClient[Any, Any]) -> None:
    body = {"space": SPACE, "algorithm": {"settings": {"bad": 1}}, "earlyStopping": {}}
    error = await error_of(await client.post("/v1/stop", json=body), 422)
    assert error["problems"] == ["algorithm.settings.bad: must be a positive integer"]


async def test_validate_refuses_a_body_of_the_wrong_shape(client: TestClient[Any, Any]) -> None:
    error = await error_of(await client.post("/v1/validate", json={"space": SPACE, "x": 1}), 422)
    assert error["problems"] == ["x: Extra inputs are not permitted"]
    await error_of(await client.post("/v1/validate", data=b"", headers=JSON_TYPE), 400)


# --- probes, metrics, document -------------------------------------------------------------


async def test_probes(client: TestClient[Any, Any]) -> None:
    response = await client.get("/healthz")
    assert (response.status, await response.json()) == (200, {"status": "ok"})
    for _ in range(100):  # ready once the workers are warm
        response = await client.get("/readyz")
        if response.status == 200:
            break
        await asyncio.sleep(0.05)
    assert (response.status, await response.json()) == (200, {"status": "ok"})


async def test_metrics_count_latency_sizes_and_errors(client: TestClient[Any, Any]) -> None:
    await client.post("/v1/suggest", json=suggest_body())
    await client.post("/v1/suggest", data=b"nope", headers=JSON_TYPE)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    assert (
        'kubesweep_suggestion_request_duration_seconds_count{algorithm="random",'
        'endpoint="/v1/suggest"} 1.0' in text
    )
    assert 'kubesweep_suggestion_request_trials_count{endpoint="/v1/suggest"} 1.0' in text
    assert 'kubesweep_suggestion_errors_total{endpoint="/v1/suggest",kind="bad_json"} 1.0' in text


async def test_openapi_document_is_served(client: TestClient[Any, Any]) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert await response.json() == build_document()


# --- cache and concurrency --------------------------------------------------------------


async def test_repeat_requests_are_answered_from_the_cache(
    client: TestClient[Any, Any], fake: FakeAlgorithms
) -> None:
    body = suggest_body(experimentUid="uid-1", count=2)
    first = await client.post("/v1/suggest", json=body)
    second = await client.post("/v1/suggest", json=body)
    assert await first.json() == await second.json()
    assert fake.calls == 1
    changed = await client.post("/v1/suggest", json={**body, "count": 3})
    assert len((await changed.json())["assignments"]) == 3
    assert fake.calls == 2
    text = await (await client.get("/metrics")).text()
    assert 'kubesweep_suggestion_cache_requests_total{endpoint="/v1/suggest",result="hit"} 1.0' in (
        text
    )
    assert (  # hits are labelled with the algorithm too, though they skip the parse
        'kubesweep_suggestion_request_duration_seconds_count{algorithm="random",'
        'endpoint="/v1/suggest"} 3.0' in text
    )


async def test_requests_without_an_experiment_uid_are_not_cached(
    client: TestClient[Any, Any], fake: FakeAlgorithms
) -> None:
    for _ in range(2):
        assert (await client.post("/v1/suggest", json=suggest_body())).status == 200
    assert fake.calls == 2


async def test_refusals_are_not_cached(client: TestClient[Any, Any], fake: FakeAlgorithms) -> None:
    body = suggest_body(experimentUid="u", algorithm={"settings": {"refuse": 1}})
    for _ in range(2):
        await error_of(await client.post("/v1/suggest", json=body), 422)
    assert fake.calls == 2


async def test_identical_concurrent_requests_share_one_computation(
    client: TestClient[Any, Any], fake: FakeAlgorithms
) -> None:
    fake.gate.clear()
    body = suggest_body(experimentUid="uid-2")
    first = asyncio.create_task(client.post("/v1/suggest", json=body))
    await asyncio.to_thread(fake.entered.wait, 5)
    second = asyncio.create_task(client.post("/v1/suggest", json=body))
    await asyncio.sleep(0.1)
    fake.gate.set()
    replies = [await first, await second]
    assert [r.status for r in replies] == [200, 200]
    assert fake.calls == 1


async def test_health_answers_while_workers_compute(
    client: TestClient[Any, Any], fake: FakeAlgorithms
) -> None:
    fake.gate.clear()
    pending = asyncio.create_task(client.post("/v1/suggest", json=suggest_body()))
    await asyncio.to_thread(fake.entered.wait, 5)
    response = await asyncio.wait_for(client.get("/healthz"), timeout=2)
    assert response.status == 200
    assert not pending.done()
    fake.gate.set()
    assert (await pending).status == 200


async def test_a_full_queue_is_503_with_retry_after(serve: Factory, fake: FakeAlgorithms) -> None:
    client = await serve(workers=1, max_queue=0)
    fake.gate.clear()
    pending = asyncio.create_task(client.post("/v1/suggest", json=suggest_body()))
    await asyncio.to_thread(fake.entered.wait, 5)
    response = await client.post("/v1/suggest", json=suggest_body(count=2))
    await error_of(response, 503)
    assert response.headers["Retry-After"] == "1"
    fake.gate.set()
    assert (await pending).status == 200


def test_cache_keeps_few_replies_per_experiment_and_evicts_least_recent() -> None:
    cache = ReplyCache(max_entries=3, max_bytes=1000, per_experiment=2)

    def put(experiment: str, key: str, size: int = 10) -> None:
        cache.put(key, CachedReply(experiment, b"x" * size, "random", 0))

    put("a", "a1")
    put("a", "a2")
    put("a", "a3")  # a1 is the experiment's oldest: dropped
    assert cache.get("a1") is None
    assert cache.get("a2") is not None
    put("b", "b1")
    assert cache.get("a2") is not None  # a becomes the most recent experiment
    put("c", "c1")  # over 3 entries: b, now least recent, loses b1
    assert cache.get("b1") is None
    assert len(cache) == 3
    put("d", "d1", size=990)  # over the byte bound: oldest go until it fits
    assert cache.size_bytes <= 1000
    assert cache.get("d1") is not None
    disabled = ReplyCache(max_entries=0)
    disabled.put("k", CachedReply("a", b"x", "random", 0))
    assert disabled.get("k") is None


def test_settings_come_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBESWEEP_SUGGESTION_PORT", "9000")
    monkeypatch.setenv("KUBESWEEP_SUGGESTION_CACHE_ENTRIES", "0")
    settings = parse_settings(["--workers", "3", "--executor", "thread", "--log-level", "debug"])
    assert (settings.port, settings.workers, settings.executor) == (9000, 3, "thread")
    assert (settings.cache_entries, settings.log_level) == (0, "DEBUG")
    with pytest.raises(SystemExit):
        parse_settings(["--workers", "0"])


def suggest_or_die(request: SuggestRequest) -> SuggestReply:
    """Runs in a worker process: exits it abruptly when asked to, like an OOM kill."""
    if "die" in request.algorithm.settings:
        os._exit(3)
    return SuggestReply(assignments=[Assignment(parameters={"lr": 0.01})] * request.count)


def no_problems(*_: Any) -> list[str]:
    return []


def no_stops(_: StopRequest) -> StopReply:
    return StopReply()


async def test_a_dead_worker_is_503_and_the_pool_is_replaced() -> None:
    engine = Engine(suggest=suggest_or_die, stop=no_stops, validate=no_problems)
    app = create_app(Settings(executor="process", workers=1, cache_entries=0), engine=engine)
    async with TestClient(TestServer(app)) as client:
        body = suggest_body(algorithm={"name": "random", "settings": {"die": True}})
        response = await client.post("/v1/suggest", json=body)
        await error_of(response, 503)
        response = await client.post("/v1/suggest", json=suggest_body())
        assert response.status == 200, await response.text()


# --- the real algorithms ------------------------------------------------------------------


async def test_the_real_registry() -> None:
    """The registry's algorithms behind the service (threads: processes cost seconds to start)."""
    pytest.importorskip("kubesweep.suggestion.registry")
    app = create_app(Settings(executor="thread", workers=1, cache_entries=0))
    async with TestClient(TestServer(app)) as client:
        body = suggest_body(count=4)
        first = await client.post("/v1/suggest", json=body)
        assert first.status == 200, await first.text()
        reply = await first.json()
        assert len(reply["assignments"]) == 4
        for assignment in reply["assignments"]:
            assert 0.001 <= assignment["parameters"]["lr"] <= 0.1
            assert assignment["parameters"]["opt"] in {"adam", "sgd"}
        again = await client.post("/v1/suggest", json=body)
        assert await again.json() == reply  # pure: same request, same answer, no cache
        bad = suggest_body(algorithm={"name": "random", "settings": {"noSuchSetting": 1}})
        error = await error_of(await client.post("/v1/suggest", json=bad), 422)
        assert error["problems"][0].startswith("algorithm.settings.noSuchSetting")


def test_an_ask_runs_with_the_cyclic_collector_paused() -> None:
    """A held history of 100,000 trials makes as many acyclic objects per ask: the
    collector's full passes over them were most of an incremental ask's time."""
    from kubesweep.suggestion.service import handle_stop, handle_suggest

    seen: list[bool] = []

    def suggest(_: SuggestRequest) -> SuggestReply:
        seen.append(gc.isenabled())
        return SuggestReply(assignments=[], exhausted=True)

    def stop(_: StopRequest) -> StopReply:
        seen.append(gc.isenabled())
        return StopReply()

    engine = Engine(suggest=suggest, stop=stop, validate=no_problems)
    # Whether the collector runs before and after is the process's (and tests/test_gcpause's).
    assert handle_suggest(engine, json.dumps(suggest_body()).encode()).status == 200
    assert handle_stop(engine, json.dumps(suggest_body()).encode()).status == 200
    assert seen == [False, False]
