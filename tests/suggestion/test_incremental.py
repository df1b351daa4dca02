"""Asks that carry only what changed: the operator's client against the real service.

The service runs the real algorithms in threads on loopback; the operator's HTTP
backend builds on the history the service holds, and falls back to the whole
history when the service does not hold it (restart, another replica, eviction).
Each incremental reply must equal the reply to the whole history.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kubesweep.api.experiment import Algorithm, AlgorithmName
from kubesweep.api.status import CurvePoint
from kubesweep.api.suggestion_wire import (
    ObservedTrial,
    SearchSpace,
    StopRequest,
    SuggestRequest,
    TrialState,
)
from kubesweep.operator.suggestions import HttpSuggestionBackend, SentHistories
from kubesweep.suggestion.service import (
    SERVICE_KEY,
    HistoryLimits,
    Service,
    Settings,
    create_app,
    default_engine,
    experiment_of,
    handle_suggest,
)
from kubesweep.suggestion.workers import ProcessWorkers

SPACE = SearchSpace.model_validate(
    {
        "parameters": [
            {"name": "lr", "type": "float", "min": 0.001, "max": 0.1, "log": True},
            {"name": "opt", "type": "categorical", "values": ["adam", "sgd"]},
        ]
    }
)


def observed(i: int, state: TrialState = TrialState.COMPLETED) -> ObservedTrial:
    done = state is not TrialState.PENDING
    return ObservedTrial(
        name=f"exp-{i}",
        parameters={"lr": 0.001 * (1 + i % 50), "opt": "adam" if i % 3 else "sgd"},
        state=state,
        value=(i * 7919 % 101) / 100 if done else None,
        intermediate=[CurvePoint(step=1, value=0.5 + i % 5 / 10)],
    )


def asking(trials: list[ObservedTrial], uid: str | None = "uid-1") -> SuggestRequest:
    return SuggestRequest(
        experiment_uid=uid,
        space=SPACE,
        algorithm=Algorithm(name=AlgorithmName.TPE, seed=3),
        trials=trials,
        count=2,
    )


#: Starts the real service (threads) and returns its URL, the bodies it was sent, its Service.
Start = Callable[..., Any]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    servers: list[TestServer] = []

    async def launch(**overrides: Any) -> tuple[str, list[dict[str, Any]], Service]:
        settings = Settings(**{"executor": "thread", "workers": 1, "metrics_port": 0, **overrides})
        app = create_app(settings)
        bodies: list[dict[str, Any]] = []

        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.method == "POST":
                bodies.append(await request.json())
            response: web.StreamResponse = await handler(request)
            return response

        app.middlewares.insert(0, record)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")), bodies, app[SERVICE_KEY]

    yield launch
    for server in servers:
        await server.close()


async def test_later_asks_send_only_the_changes_and_answer_as_the_whole_history(
    start: Start,
) -> None:
    url, bodies, _ = await start()
    backend = HttpSuggestionBackend(url, 30)
    history = [observed(i) for i in range(30)] + [observed(30, TrialState.PENDING)]
    await backend.suggest(asking(history))
    assert len(bodies[-1]["trials"]) == 31
    assert "historyBase" not in bodies[-1]
    # t30 finishes, two more start: the next ask carries those three only.
    history[30] = observed(30)
    history += [observed(31, TrialState.PENDING), observed(32, TrialState.PENDING)]
    reply = await backend.suggest(asking(history))
    assert [t["name"] for t in bodies[-1]["trials"]] == ["exp-30", "exp-31", "exp-32"]
    assert bodies[-1]["historyBase"]
    # The same answer as a client that sends the whole history (no history held).
    whole = await HttpSuggestionBackend(url, 30, incremental=False).suggest(asking(history))
    assert len(bodies[-1]["trials"]) == 33
    assert reply.assignments == whole.assignments
    assert whole.history is None
    await backend.close()


async def test_a_restarted_service_gets_the_whole_history_once(start: Start) -> None:
    url, _, _ = await start()
    backend = HttpSuggestionBackend(url, 30)
    history = [observed(i) for i in range(20)]
    await backend.suggest(asking(history))
    assert backend.sent is not None
    assert len(backend.sent) == 1
    # Another replica (or this one restarted) holds nothing: 409, then the whole history.
    other_url, other_bodies, other = await start()
    backend.url = other_url
    history.append(observed(20))
    reply = await backend.suggest(asking(history))
    assert [len(b["trials"]) for b in other_bodies] == [1, 21]
    assert "historyBase" in other_bodies[0]
    assert "historyBase" not in other_bodies[1]
    expected = await HttpSuggestionBackend(other_url, 30, incremental=False).suggest(
        asking(history)
    )
    assert reply.assignments == expected.assignments
    exposition = other.telemetry.exposition().decode()
    assert (
        'kubesweep_suggestion_history_requests_total{endpoint="/v1/suggest",result="needed"} 1.0'
        in exposition
    )
    # And the history builds on the new replica from then on.
    history.append(observed(21))
    await backend.suggest(asking(history))
    assert len(other_bodies[-1]["trials"]) == 1
    await backend.close()


async def test_an_evicted_history_is_sent_whole_again(start: Start) -> None:
    url, bodies, _ = await start(history_experiments=1)
    backend = HttpSuggestionBackend(url, 30)
    mine = [observed(i) for i in range(10)]
    await backend.suggest(asking(mine, "uid-1"))
    await backend.suggest(asking([observed(i) for i in range(5)], "uid-2"))  # evicts uid-1
    mine.append(observed(10))
    await backend.suggest(asking(mine, "uid-1"))
    assert [len(b["trials"]) for b in bodies] == [10, 5, 1, 11]
    await backend.close()


async def test_a_client_that_lost_a_sent_trial_sends_the_whole_history(start: Start) -> None:
    url, bodies, _ = await start()
    backend = HttpSuggestionBackend(url, 30)
    history = [observed(i) for i in range(10)]
    await backend.suggest(asking(history))
    del history[3]  # a Trial deleted by hand: the service must not keep it
    await backend.suggest(asking(history))
    assert [len(b["trials"]) for b in bodies] == [10, 9]
    assert "historyBase" not in bodies[-1]
    await backend.close()


async def test_stop_and_suggest_build_on_one_history(start: Start) -> None:
    url, bodies, _ = await start()
    backend = HttpSuggestionBackend(url, 30)
    history = [observed(i) for i in range(12)] + [observed(12, TrialState.PENDING)]
    await backend.suggest(asking(history))
    stop = StopRequest(
        experiment_uid="uid-1",
        space=SPACE,
        algorithm=Algorithm(name=AlgorithmName.TPE, seed=3),
        early_stopping={"name": "median", "settings": {"minTrials": 3, "startStep": 1}},
        trials=history,
    )
    await backend.stop(stop)
    assert [t["name"] for t in bodies[-1]["trials"]] == ["exp-12"]
    await backend.close()


async def test_old_clients_get_no_history_field() -> None:
    """A client that predates historyBase parses replies strictly: nothing new appears."""
    body = asking([observed(i) for i in range(5)]).model_dump_json(by_alias=True).encode()
    limits = HistoryLimits("test-old-clients")
    outcome = handle_suggest(default_engine(), body, limits)
    assert outcome.status == 200
    assert b"history" not in outcome.body


def test_the_routing_key_is_read_from_the_first_bytes_only() -> None:
    body = asking([observed(i) for i in range(200)], "uid-7").model_dump_json(by_alias=True)
    assert len(body) > 4096
    assert experiment_of(body.encode()) == "uid-7"
    assert experiment_of(b'{"space": {}, "experimentUid": "late"}') == "late"
    assert experiment_of(b"not json") is None
    assert experiment_of(b'["uid"]') is None


def _pid() -> int:
    return os.getpid()


async def test_each_experiment_keeps_its_worker_process() -> None:
    workers = ProcessWorkers(2)
    workers.start()
    try:
        deadline = asyncio.get_running_loop().time() + 60
        a = {await workers.run(_pid, deadline=deadline, affinity="uid-a") for _ in range(4)}
        b = {await workers.run(_pid, deadline=deadline, affinity="uid-b") for _ in range(4)}
        assert len(a) == 1
        assert len(b) == 1
        assert a != b  # a new experiment goes to the worker with the fewest
    finally:
        workers.close()


def test_sent_histories_are_bounded() -> None:
    sent = SentHistories(max_experiments=2)
    for uid in ("a", "b", "c"):
        sent.record(uid, [observed(0)], "token", whole=True)
    assert len(sent) == 2
    assert sent.changes("a", [observed(0)]) is None
    assert sent.changes("c", [observed(0), observed(1)]) == ("token", [observed(1)])
