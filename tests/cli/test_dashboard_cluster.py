"""The dashboard's cluster feed: its cache of watched objects, and its watches on a fake API.

The fake API server answers lists and streams watch events the test puts in a
queue, as the API server does; the real one is in ``e2e/test_dashboard.py``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubesweep.api import Experiment
from kubesweep.cli.experiment_sources import NotFoundError
from kubesweep.cli.kube import JSON, Kube, KubeConfig
from tests.cli.conftest import example

pytest.importorskip("aiohttp", reason="the dashboard needs aiohttp (kubesweep[cli])")

from aiohttp import test_utils, web

from kubesweep.cli.dashboard.cluster_feed import (
    Change,
    ClusterFeed,
    LineBuffer,
    ObjectCache,
    WatchError,
)
from kubesweep.cli.dashboard.server import make_app

NS = "team-a"
WAIT = 10.0


def experiment_body(name: str, done: int = 0, namespace: str = NS) -> JSON:
    body = example("random").to_wire()
    body["metadata"] = {"name": name, "namespace": namespace, "resourceVersion": "1"}
    body["status"] = {"phase": "Running", "trials": {"created": done, "completed": done}}
    return body


def trial_body(
    experiment: str, index: int, loss: float | None = None, rv: str = "1", namespace: str = NS
) -> JSON:
    status: JSON = {"phase": "Running"}
    if loss is not None:
        status = {"phase": "Succeeded", "reason": "Completed", "objective": loss}
    return {
        "apiVersion": "kubesweep.io/v1alpha1",
        "kind": "Trial",
        "metadata": {
            "name": f"{experiment}-{index}",
            "namespace": namespace,
            "resourceVersion": rv,
        },
        "spec": {"experiment": experiment, "index": index, "parameters": {"eta0": 0.1}},
        "status": status,
    }


def test_the_cache_follows_a_list_then_its_events() -> None:
    cache: ObjectCache[JSON] = ObjectCache(dict)
    cache.replace({"metadata": {"resourceVersion": "7"}, "items": [trial_body("e", 0)]})
    assert set(cache.objects) == {(NS, "e-0")}
    assert cache.resource_version == "7"
    assert cache.apply({"type": "ADDED", "object": trial_body("e", 1, rv="8")}) is Change.CHANGED
    modified = trial_body("e", 0, loss=0.5, rv="9")
    assert cache.apply({"type": "MODIFIED", "object": modified}) is Change.CHANGED
    assert cache.objects[(NS, "e-0")]["status"]["objective"] == 0.5
    deleted = {"type": "DELETED", "object": trial_body("e", 1, rv="10")}
    assert cache.apply(deleted) is Change.CHANGED
    assert set(cache.objects) == {(NS, "e-0")}
    bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}}
    assert cache.apply(bookmark) is Change.QUIET
    assert cache.resource_version == "12"
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410}}
    assert cache.apply(gone) is Change.EXPIRED
    with pytest.raises(WatchError, match="forbidden"):
        cache.apply({"type": "ERROR", "object": {"code": 403, "message": "forbidden"}})


def test_lines_are_whole_whatever_the_chunks() -> None:
    lines = LineBuffer()
    assert lines.feed(b'{"a":') == []
    assert lines.feed(b'1}\n\n{"b"') == [b'{"a":1}']
    assert lines.feed(b":2}\n") == [b'{"b":2}']
    assert lines.pending == b""


@dataclass
class FakeApi:
    """Lists of experiments and trials, and a queue of watch events per namespace and kind.

    A namespace of ``""`` is the cluster-wide collection.
    """

    objects: dict[str, list[JSON]] = field(default_factory=dict)
    events: dict[tuple[str, str], asyncio.Queue[JSON | None]] = field(default_factory=dict)
    lists: dict[tuple[str, str], int] = field(default_factory=dict)
    methods: set[str] = field(default_factory=set)
    #: The one bearer token accepted, when set (others are answered 401), and those refused.
    token: str | None = None
    refused: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route(
            "*", "/apis/kubesweep.io/v1alpha1/namespaces/{ns}/{plural}", self.serve
        )
        app.router.add_route("*", "/apis/kubesweep.io/v1alpha1/{plural}", self.serve)
        return app

    async def serve(self, request: web.Request) -> web.StreamResponse:
        self.methods.add(request.method)
        if self.token is not None:
            sent = request.headers.get("Authorization", "")
            if sent != f"Bearer {self.token}":
                self.refused.append(sent)
                return web.json_response({"kind": "Status", "code": 401}, status=401)
        where = (request.match_info.get("ns", ""), request.match_info["plural"])
        queue = self.events.setdefault(where, asyncio.Queue())
        if request.query.get("watch") != "true":
            self.lists[where] = self.lists.get(where, 0) + 1
            items = [
                item
                for item in self.objects.get(where[1], [])
                if where[0] in ("", item["metadata"]["namespace"])
            ]
            return web.json_response({"metadata": {"resourceVersion": "5"}, "items": items})
        response = web.StreamResponse()
        await response.prepare(request)
        while (event := await queue.get()) is not None:
            await response.write(json.dumps(event).encode() + b"\n")
        return response


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeApi, Kube]]:
    fake = FakeApi(
        objects={"experiments": [experiment_body("demo")], "trials": [trial_body("demo", 0)]}
    )
    server = test_utils.TestServer(fake.app())
    await server.start_server()
    kube = Kube(KubeConfig(server=str(server.make_url("")).rstrip("/"), namespace=NS))
    yield fake, kube
    for queue in fake.events.values():
        queue.put_nowait(None)
    await server.close()


async def _until(predicate: Any, what: str) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), WAIT)
    except TimeoutError:
        raise AssertionError(f"not within {WAIT}s: {what}") from None


async def test_the_feed_lists_then_follows_watch_events(api: tuple[FakeApi, Kube]) -> None:
    fake, kube = api
    feed = ClusterFeed(kube)
    await feed.start()
    try:
        assert [e.metadata.name for e in feed.experiments()] == ["demo"]
        demo: Experiment = feed.experiment("demo")
        assert [(r.name, r.objective) for r in feed.trials(demo)] == [("demo-0", None)]
        before = feed.version()
        fake.events[(NS, "trials")].put_nowait(
            {"type": "MODIFIED", "object": trial_body("demo", 0, loss=0.25, rv="6")}
        )
        await _until(lambda: feed.version() != before, "the watched change counted")
        assert [(r.name, r.objective) for r in feed.trials(demo)] == [("demo-0", 0.25)]
        fake.objects["trials"].append(trial_body("demo", 1, loss=0.5))
        fake.events[(NS, "trials")].put_nowait({"type": "ERROR", "object": {"code": 410}})
        await _until(lambda: len(feed.trials(demo)) == 2, "a list again after 410 Gone")
        assert fake.lists[(NS, "trials")] == 2
        assert fake.methods == {"GET"}
    finally:
        await feed.close()


async def test_a_rotated_token_file_is_read_again(
    api: tuple[FakeApi, Kube], tmp_path: Path
) -> None:
    """A projected service-account token is replaced in its file while the dashboard runs:
    the next list or watch carries the new token, and a change after it is followed."""
    fake, kube = api
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    fake.token = "first"
    rotating = Kube(KubeConfig(server=kube.config.server, namespace=NS, token_file=str(token_file)))
    feed = ClusterFeed(rotating)
    await feed.start()
    try:
        demo = feed.experiment("demo")
        token_file.write_text("second\n")
        fake.token = "second"
        # The server ends the watch; the next one must present the rotated token.
        fake.events[(NS, "trials")].put_nowait(None)
        fake.objects["trials"] = [trial_body("demo", 0, loss=0.125)]
        fake.events[(NS, "trials")].put_nowait(
            {"type": "MODIFIED", "object": trial_body("demo", 0, loss=0.125, rv="6")}
        )
        await _until(
            lambda: [r.objective for r in feed.trials(demo)] == [0.125],
            "the change watched with the rotated token",
        )
        assert "Bearer first" not in fake.refused
        assert rotating.headers()["Authorization"] == "Bearer second"
    finally:
        await feed.close()


def test_a_refused_plugin_token_is_asked_for_again(tmp_path: Path) -> None:
    """A 401 drops a credential plugin's token: the plugin runs again at the next request."""
    plugin = tmp_path / "plugin.py"
    count = tmp_path / "count"
    plugin.write_text(
        "import json, pathlib\n"
        f"p = pathlib.Path({str(count)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "print(json.dumps({'status': {'token': f'token-{n}'}}))\n"
    )
    spec = {"command": sys.executable, "args": [str(plugin)]}
    kube = Kube(KubeConfig(server="http://127.0.0.1:1", exec_spec=spec))
    assert kube.headers()["Authorization"] == "Bearer token-1"
    assert kube.headers()["Authorization"] == "Bearer token-1"
    kube.credentials_refused()
    assert kube.headers()["Authorization"] == "Bearer token-2"


async def test_the_dashboard_serves_a_cluster_feed(api: tuple[FakeApi, Kube]) -> None:
    fake, kube = api
    client = test_utils.TestClient(test_utils.TestServer(make_app(ClusterFeed(kube))))
    await client.start_server()
    try:
        lines = await (await client.get("/api/experiments")).json()
        assert [(line["name"], line["namespace"]) for line in lines] == [("demo", NS)]
        page = await (await client.get("/api/experiments/demo")).json()
        assert [t["name"] for t in page["trials"]] == ["demo-0"]
        trial = await (await client.get("/api/experiments/demo/trials/demo-0")).json()
        assert trial["log"] is None  # no pod on this fake API
        events = await client.get("/api/events?experiment=demo")
        first = await events.content.readuntil(b"\n\n")
        assert json.loads(first.split(b"data: ", 1)[1])["done"] == 0
        body = experiment_body("demo", done=1)
        fake.events[(NS, "experiments")].put_nowait({"type": "MODIFIED", "object": body})
        pushed = await asyncio.wait_for(events.content.readuntil(b"\n\n"), WAIT)
        assert json.loads(pushed.split(b"data: ", 1)[1])["done"] == 1
        events.close()
    finally:
        await client.close()


async def test_the_feed_follows_several_namespaces_or_all_of_them(
    api: tuple[FakeApi, Kube],
) -> None:
    fake, kube = api
    fake.objects["experiments"] += [
        experiment_body("demo", namespace="b"),
        experiment_body("x", namespace="c"),
    ]
    fake.objects["trials"].append(trial_body("demo", 0, loss=0.5, namespace="b"))
    both = ClusterFeed(kube, [NS, "b"])
    await both.start()
    try:
        names = [(e.metadata.namespace, e.metadata.name) for e in both.experiments()]
        assert names == [("b", "demo"), (NS, "demo")]
        with pytest.raises(NotFoundError, match=f"several namespaces \\(b, {NS}\\)"):
            both.experiment("demo")
    finally:
        await both.close()
    every = ClusterFeed(kube, all_namespaces=True)
    await every.start()
    try:
        assert {e.metadata.name for e in every.experiments()} == {"demo", "x"}
        (x,) = [e for e in every.experiments() if e.metadata.name == "x"]
        assert every.trials(x) == []
        assert every.experiment("x").metadata.namespace == "c"
        assert ("", "experiments") in fake.lists
    finally:
        await every.close()
