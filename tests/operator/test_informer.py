"""The child streams against a scripted API: paging, watching, bookmarks, 410, reconnects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubesweep.operator.children import ChildIndex, Key, Kind
from kubesweep.operator.informer import Informer, OnChange, Source, Stream, sources_for
from kubesweep.operator.workloads import JOBSET
from kubesweep.rendering import LABEL_EXPERIMENT, LABEL_TRIAL
from tests.operator.test_children import child_body, phase_of, trial_body


class FakeContent:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


class FakeResponse:
    """Enough of ``aiohttp.ClientResponse`` for the streams."""

    def __init__(
        self, status: int = 200, body: Any = None, chunks: list[bytes] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.content = FakeContent(chunks or [])

    async def json(self, loads: Any = json.loads) -> Any:
        return self.body

    async def text(self) -> str:
        return json.dumps(self.body)

    def release(self) -> None:
        pass

    async def __aenter__(self) -> FakeResponse:
        return self

    async def __aexit__(self, *_: Any) -> None:
        pass


def frames(*events: dict[str, Any], split_at: int = 0) -> list[bytes]:
    """Watch events as the server sends them, optionally cut mid-line."""
    data = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    if not split_at:
        return [data]
    return [data[i : i + split_at] for i in range(0, len(data), split_at)]


class ScriptedApi:
    """Answers requests in order from a script; then waits forever (a quiet watch)."""

    def __init__(self, script: list[FakeResponse]) -> None:
        self.script = script
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.exhausted = asyncio.Event()

    async def _answer(self, path: str, query: list[tuple[str, str]]) -> FakeResponse:
        self.requests.append((path, dict(query)))
        if not self.script:
            self.exhausted.set()
            await asyncio.Event().wait()
        return self.script.pop(0)

    def call_api(self, resource_path: str, method: str, **kwargs: Any) -> Any:
        assert method == "GET"
        assert kwargs["_preload_content"] is False
        return self._answer(resource_path, kwargs["query_params"])


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The streams' backoff pauses, recorded instead of waited."""
    pauses: list[float] = []

    async def no_sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr("kubesweep.operator.informer.asyncio.sleep", no_sleep)
    return pauses


def listing(items: list[dict[str, Any]], version: str, token: str = "") -> FakeResponse:
    meta = {"resourceVersion": version}
    if token:
        meta["continue"] = token
    return FakeResponse(body={"items": items, "metadata": meta})


async def run_until_exhausted(stream: Stream, api: ScriptedApi) -> None:
    task = asyncio.create_task(stream.run())
    await asyncio.wait_for(api.exhausted.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def recorder() -> tuple[list[tuple[Kind, str, str, set[Key]]], OnChange]:
    seen: list[tuple[Kind, str, str, set[Key]]] = []

    def on_change(kind: Kind, event_type: str, body: dict[str, Any], experiments: set[Key]) -> None:
        seen.append((kind, event_type, body["metadata"]["name"], experiments))

    return seen, on_change


def with_version(body: dict[str, Any], version: str) -> dict[str, Any]:
    body["metadata"]["resourceVersion"] = version
    return body


async def test_pages_then_watches_from_the_listing_version_and_follows_bookmarks() -> None:
    api = ScriptedApi(
        [
            listing([trial_body("a-0", "a")], "", token="page2"),
            listing([trial_body("a-1", "a")], "10"),
            FakeResponse(
                chunks=frames(
                    {"type": "ADDED", "object": with_version(trial_body("b-0", "b"), "11")},
                    {
                        "type": "MODIFIED",
                        "object": with_version(trial_body("a-0", "a", phase="Succeeded"), "12"),
                    },
                    {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
                    {"type": "DELETED", "object": with_version(trial_body("a-1", "a"), "16")},
                    split_at=37,  # frames arrive cut anywhere
                )
            ),
            FakeResponse(chunks=[]),  # the server ended the watch: reopen
        ]
    )
    seen, on_change = recorder()
    stream = Stream(
        api, Source(Kind.TRIALS, "ns"), index := _index(), on_change, stream_lists=False
    )
    await run_until_exhausted(stream, api)

    paths = {path for path, _ in api.requests}
    assert paths == {"/apis/kubesweep.io/v1alpha1/namespaces/ns/trials"}
    first, second, watch, rewatch, _ = (query for _, query in api.requests)
    assert first == {"limit": "500"}
    assert second == {"limit": "500", "continue": "page2"}
    assert watch["watch"] == "1"
    assert watch["resourceVersion"] == "10"
    assert watch["allowWatchBookmarks"] == "true"
    assert rewatch["resourceVersion"] == "16"  # the last event's version, past the bookmark
    assert stream.listed.is_set()

    assert [(t.name, phase_of(t)) for t in index.trials(("ns", "a"))] == [("a-0", "Succeeded")]
    assert [t.name for t in index.trials(("ns", "b"))] == ["b-0"]
    assert [(k, e, n) for k, e, n, _ in seen] == [
        (Kind.TRIALS, "ADDED", "a-0"),
        (Kind.TRIALS, "ADDED", "a-1"),
        (Kind.TRIALS, "ADDED", "b-0"),
        (Kind.TRIALS, "MODIFIED", "a-0"),
        (Kind.TRIALS, "DELETED", "a-1"),
    ]
    assert seen[2][3] == {("ns", "b")}


async def test_a_version_too_old_relists_and_what_vanished_meanwhile_is_deleted() -> None:
    api = ScriptedApi(
        [
            listing([trial_body("a-0", "a"), trial_body("a-1", "a")], "10"),
            FakeResponse(status=410, body={"message": "too old resource version"}),
            listing([trial_body("a-1", "a")], "30"),
            FakeResponse(
                chunks=frames({"type": "ERROR", "object": {"code": 410, "message": "expired"}})
            ),
            listing([trial_body("a-1", "a"), trial_body("a-2", "a")], "40"),
        ]
    )
    seen, on_change = recorder()
    stream = Stream(
        api, Source(Kind.TRIALS, "ns"), index := _index(), on_change, stream_lists=False
    )
    await run_until_exhausted(stream, api)

    assert [q.get("resourceVersion") for _, q in api.requests] == [
        None,
        "10",
        None,
        "30",
        None,
        "40",
    ]
    assert sorted(t.name for t in index.trials(("ns", "a"))) == ["a-1", "a-2"]
    assert ("DELETED", "a-0") in [(e, n) for _, e, n, _ in seen]


async def test_errors_are_retried_and_jobs_and_pods_are_selected_by_label_on_the_server(
    slept: list[float],
) -> None:
    api = ScriptedApi(
        [
            FakeResponse(status=503, body={"message": "unavailable"}),
            listing([child_body("a-0-x", "a-0", "a")], "5"),
        ]
    )
    seen, on_change = recorder()
    stream = paged(api, Source(Kind.PODS, None), index := _index(), on_change)
    await run_until_exhausted(stream, api)

    assert slept == [1.0]
    path, query = api.requests[0]
    assert path == "/api/v1/pods"
    assert query["labelSelector"] == LABEL_TRIAL
    assert [p.view.name for p in index.pods("ns", "a-0")] == ["a-0-x"]
    assert seen == [(Kind.PODS, "ADDED", "a-0-x", {("ns", "a")})]


def test_one_stream_per_kind_and_namespace() -> None:
    assert {(s.kind, s.namespace) for s in sources_for(["x", "y"])} == {
        (kind, ns) for kind in Kind for ns in ("x", "y") if kind is not Kind.WORKLOADS
    }
    assert [s.path for s in sources_for([])] == [
        "/apis/kubesweep.io/v1alpha1/trials",
        "/apis/batch/v1/jobs",
        "/api/v1/pods",
    ]
    assert LABEL_EXPERIMENT  # children are told apart by both labels


class ListsThenHolds:
    """Every LIST of a path waits until the test releases that path; WATCHes stay quiet."""

    def __init__(self) -> None:
        self.released: dict[str, asyncio.Event] = {}

    async def _answer(self, path: str, query: dict[str, str]) -> FakeResponse:
        if "watch" in query:
            await asyncio.Event().wait()
        await self.released.setdefault(path, asyncio.Event()).wait()
        return listing([], "1")

    def call_api(self, resource_path: str, method: str, **kwargs: Any) -> Any:
        return self._answer(resource_path, dict(kwargs["query_params"]))


async def test_the_informer_is_ready_only_when_every_stream_has_listed() -> None:
    api = ListsThenHolds()
    informer = Informer(api, ["ns"], lambda *_: None, stream_lists=False)
    informer.start()
    paths = [s.source.path for s in informer.streams]
    for path in paths:
        assert not informer.is_ready
        api.released.setdefault(path, asyncio.Event()).set()
        await asyncio.wait_for(informer.streams[paths.index(path)].listed.wait(), 5)
    await asyncio.wait_for(informer.ready(), 5)
    assert informer.is_ready
    await informer.stop()


def _index() -> ChildIndex:
    return ChildIndex()


def paged(api: ScriptedApi, source: Source, index: ChildIndex, on_change: OnChange) -> Stream:
    """A stream that lists in pages (the server's streaming listing is tested below)."""
    return Stream(api, source, index, on_change, stream_lists=False)


async def test_an_expired_continue_token_starts_the_listing_again() -> None:
    api = ScriptedApi(
        [
            listing([trial_body("a-0", "a")], "", token="page2"),
            FakeResponse(status=410, body={"message": "the continue token has expired"}),
            listing([trial_body("a-1", "a")], "20"),
        ]
    )
    seen, on_change = recorder()
    stream = Stream(
        api, Source(Kind.TRIALS, "ns"), index := _index(), on_change, stream_lists=False
    )
    await run_until_exhausted(stream, api)

    assert [q.get("continue") for _, q in api.requests[:3]] == [None, "page2", None]
    assert api.requests[3][1]["resourceVersion"] == "20"
    # The fresh listing lacks a-0: it went while the first listing was under way.
    assert [t.name for t in index.trials(("ns", "a"))] == ["a-1"]
    assert ("DELETED", "a-0") in [(e, n) for _, e, n, _ in seen]


async def test_a_first_page_refused_with_410_is_retried_after_a_pause(slept: list[float]) -> None:
    api = ScriptedApi([FakeResponse(status=410, body={"message": "gone"}), listing([], "1")])
    stream = paged(api, Source(Kind.TRIALS, "ns"), _index(), lambda *_: None)
    await run_until_exhausted(stream, api)
    assert slept == [1.0]
    assert stream.listed.is_set()


def test_one_more_stream_per_enabled_workload_kind() -> None:
    sources = sources_for(["x"], [JOBSET])
    assert [s.path for s in sources if s.kind is Kind.WORKLOADS] == [
        "/apis/jobset.x-k8s.io/v1alpha2/namespaces/x/jobsets"
    ]
    assert all(s.label_selector == LABEL_TRIAL for s in sources if s.kind is not Kind.TRIALS)


async def test_a_workload_kind_whose_crd_is_missing_does_not_hold_planning_back(
    slept: list[float],
) -> None:
    api = ScriptedApi(
        [
            FakeResponse(status=404, body={"message": "the server could not find the resource"}),
            listing([child_body("a-0", "a-0", "a")], "7"),
        ]
    )
    seen, on_change = recorder()
    stream = Stream(
        api, Source(Kind.WORKLOADS, "ns", JOBSET), _index(), on_change, stream_lists=False
    )
    task = asyncio.create_task(stream.run())
    await asyncio.wait_for(stream.listed.wait(), 5)
    assert slept == [1.0]  # listed as empty at once, and asked again after a pause
    await asyncio.wait_for(api.exhausted.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert api.requests[0][0] == "/apis/jobset.x-k8s.io/v1alpha2/namespaces/ns/jobsets"
    assert seen == [(Kind.WORKLOADS, "ADDED", "a-0", {("ns", "a")})]


def end_of_initial_events(version: str) -> dict[str, Any]:
    return {
        "type": "BOOKMARK",
        "object": {
            "metadata": {
                "resourceVersion": version,
                "annotations": {"k8s.io/initial-events-end": "true"},
            }
        },
    }


async def test_a_streaming_listing_is_ready_at_its_end_bookmark_and_goes_on_watching() -> None:
    index = _index()
    index.apply(Kind.TRIALS, "ADDED", trial_body("gone-0", "gone"))  # from before a restart
    api = ScriptedApi(
        [
            FakeResponse(
                chunks=frames(
                    # initial events come in no order of version: none of theirs is kept
                    {"type": "ADDED", "object": with_version(trial_body("a-0", "a"), "30")},
                    {"type": "ADDED", "object": with_version(trial_body("a-1", "a"), "12")},
                    end_of_initial_events("31"),
                    {
                        "type": "MODIFIED",
                        "object": with_version(trial_body("a-1", "a", phase="Succeeded"), "33"),
                    },
                    split_at=41,
                )
            ),
        ]
    )
    seen, on_change = recorder()
    stream = Stream(api, Source(Kind.TRIALS, "ns"), index, on_change)
    await run_until_exhausted(stream, api)

    path, query = api.requests[0]
    assert path == "/apis/kubesweep.io/v1alpha1/namespaces/ns/trials"
    assert query["watch"] == "1"
    assert query["sendInitialEvents"] == "true"
    assert query["resourceVersionMatch"] == "NotOlderThan"
    assert "resourceVersion" not in query
    assert stream.listed.is_set()
    # the watch after the server ended this one starts from the last event's version
    assert api.requests[1][1]["resourceVersion"] == "33"
    assert "sendInitialEvents" not in api.requests[1][1]
    assert [(e, n) for _, e, n, _ in seen] == [
        ("ADDED", "a-0"),
        ("ADDED", "a-1"),
        ("DELETED", "gone-0"),  # the listing lacked it
        ("MODIFIED", "a-1"),
    ]
    assert {t.name: phase_of(t) for t in index.trials(("ns", "a"))} == {
        "a-0": "Running",
        "a-1": "Succeeded",
    }


async def test_a_server_that_refuses_streaming_lists_is_listed_in_pages_from_then_on() -> None:
    refusal = {"message": "sendInitialEvents is forbidden for watch unless ..."}
    api = ScriptedApi(
        [
            FakeResponse(status=422, body=refusal),
            listing([trial_body("a-0", "a")], "5"),
            FakeResponse(status=410, body={"message": "too old"}),  # the watch falls behind
            listing([trial_body("a-0", "a")], "9"),  # listed in pages again, not streamed
        ]
    )
    stream = Stream(api, Source(Kind.TRIALS, "ns"), _index(), lambda *_: None)
    await run_until_exhausted(stream, api)
    kinds = ["watch" if q.get("watch") else "list" for _, q in api.requests]
    assert kinds == ["watch", "list", "watch", "list", "watch"]
    assert "sendInitialEvents" not in api.requests[2][1]
    assert stream.listed.is_set()
    assert not stream.stream_lists


async def test_a_watch_that_ends_before_its_initial_events_are_marked_is_listed_in_pages(
    slept: list[float],
) -> None:
    # A server that ignores sendInitialEvents sends the objects but never the end mark.
    api = ScriptedApi(
        [
            FakeResponse(
                chunks=frames(
                    {"type": "ADDED", "object": with_version(trial_body("a-0", "a"), "3")}
                )
            ),
            listing([trial_body("a-0", "a"), trial_body("a-1", "a")], "8"),
        ]
    )
    stream = Stream(api, Source(Kind.TRIALS, "ns"), index := _index(), lambda *_: None)
    await run_until_exhausted(stream, api)
    assert stream.listed.is_set()
    assert not stream.stream_lists
    assert api.requests[2][1]["resourceVersion"] == "8"
    assert sorted(t.name for t in index.trials(("ns", "a"))) == ["a-0", "a-1"]
    assert slept == []


async def test_a_streaming_listing_cut_before_its_end_keeps_no_version_and_lists_again(
    slept: list[float],
) -> None:
    api = ScriptedApi(
        [
            FakeResponse(
                chunks=frames(
                    {"type": "ADDED", "object": with_version(trial_body("a-0", "a"), "40")},
                    {
                        "type": "MODIFIED",
                        "object": with_version(trial_body("a-0", "a", phase="Succeeded"), "41"),
                    },
                    {"type": "ERROR", "object": {"code": 500, "message": "etcd went away"}},
                )
            ),
            FakeResponse(chunks=frames(end_of_initial_events("50"))),
        ]
    )
    stream = Stream(api, Source(Kind.TRIALS, "ns"), index := _index(), lambda *_: None)
    await run_until_exhausted(stream, api)
    # neither object version was kept: the stream listed again, then watched from 50
    assert [q.get("sendInitialEvents") for _, q in api.requests] == ["true", "true", None]
    assert api.requests[2][1]["resourceVersion"] == "50"
    assert index.trials(("ns", "a")) == []  # the second listing had no a-0
    assert slept == [1.0]  # after the error, a pause
