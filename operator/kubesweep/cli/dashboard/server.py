"""The dashboard's HTTP server: three pages, their JSON, and a stream of changes.

aiohttp serves everything from the package (the pages' script and style, and the
report's drawing script), so the dashboard works offline. Every route is a GET:
there is no write path. What it shows comes from a
:class:`~kubesweep.cli.dashboard.feeds.Feed`: the local runs' state files, or a
cluster followed by watches. Reads run in worker threads, so a slow read never
stalls the event streams.

Live updates are server-sent events: ``/api/events`` compares the feed's
version every ``interval`` seconds (a state file's fingerprint, or the count of
changes the watches brought) and, when it changed, sends the experiments' lines
(or the one experiment's line) as an ``update`` event; the page then fetches
what it draws. A page never reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from kubesweep.api import TrialPhase
from kubesweep.cli.dashboard.deltas import diff
from kubesweep.cli.dashboard.feeds import Feed, LocalFeed
from kubesweep.cli.dashboard.views import (
    LOG_TAIL,
    TrialRows,
    experiment_row,
    experiment_view,
    trial_view,
)
from kubesweep.cli.experiment_sources import NotFoundError
from kubesweep.cli.kube import KubeError
from kubesweep.cli.report.data import importances
from kubesweep.cli.report.html import STYLE, VENDOR
from kubesweep.cli.report.sample import fitted_records
from kubesweep.gcpause import collector_paused

#: Seconds between two looks at the state files, and between keep-alive comments.
INTERVAL = 0.5
KEEPALIVE = 15.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FEED: web.AppKey[Feed] = web.AppKey("feed")
SETTINGS: web.AppKey[dict[str, Any]] = web.AppKey("settings", dict)
VIEWS: web.AppKey[Views] = web.AppKey("views")


def _asset(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def normal_prefix(prefix: str) -> str:
    """A URL prefix as ``/a/b/``: leading and trailing slash, ``/`` for none."""
    parts = [p for p in prefix.split("/") if p]
    return "/" + "".join(f"{p}/" for p in parts)


def _json(data: Any) -> web.Response:
    return web.json_response(data, dumps=lambda d: json.dumps(d, allow_nan=False))


def _experiments(feed: Feed) -> list[dict[str, Any]]:
    return [experiment_row(experiment) for experiment in feed.experiments()]


#: Seconds the parameter importance of an experiment is reused for, at most, before it is
#: fitted again; and how many times its last fit's duration it is reused for when shorter
#: (a fit of a few trials is cheap and redone at the next change).
IMPORTANCE_EVERY = 60.0
FIT_SHARE = 20.0


@dataclass
class _Importance:
    fitted_at: float
    succeeded: int
    shares: list[dict[str, Any]]
    took: float


#: Patches an experiment's page keeps: a stream that fell further behind sends ``reset``
#: and its page loads the whole JSON again.
PATCHES_KEPT = 64


@dataclass
class PageState:
    """One experiment page's JSON at sequence number ``seq``, and the patches that led to it.

    ``patches[n]`` turns version ``n - 1`` into version ``n``.
    """

    version: object
    seq: int
    view: dict[str, Any]
    patches: dict[int, bytes] = field(default_factory=dict)
    _body: bytes | None = None

    def body(self) -> bytes:
        """The whole JSON with its ``seq``, encoded when first asked for: most versions are
        only ever sent as deltas, and encoding 10,000 trials takes a fair part of a second."""
        if self._body is None:
            self._body = _encode({**self.view, "seq": self.seq})
        return self._body


@dataclass
class Views:
    """The experiment pages' JSON, computed once per change of the feed, and its deltas.

    Every open page asks for the same body after an update: it is computed once
    (under a lock per experiment) and served as bytes until the files change.
    Each new version that differs from the last gets the next sequence number and
    the patch from the last (:mod:`~kubesweep.cli.dashboard.deltas`), which the
    event stream sends instead of the whole body.
    Importance is fitted again when more trials succeeded, at most every
    :data:`IMPORTANCE_EVERY` seconds, or every :data:`FIT_SHARE` times as long as
    its last fit took when that is shorter.
    """

    feed: Feed
    importance_every: float = IMPORTANCE_EVERY
    fit_share: float = FIT_SHARE
    states: dict[str, PageState] = field(default_factory=dict)
    importance: dict[str, _Importance] = field(default_factory=dict)
    rows: dict[str, TrialRows] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def state(self, name: str) -> PageState:
        """Experiment ``name``'s page as of the feed's current version."""
        lock = self.locks.setdefault(name, asyncio.Lock())
        async with lock:
            version = await asyncio.to_thread(self.feed.version)
            known = self.states.get(name)
            if known is not None and known.version == version:
                return known
            state: PageState = await _read(self._advance, name, known, version)
            self.states[name] = state
            return state

    async def body(self, name: str) -> bytes:
        """The JSON of experiment ``name``'s page, with its ``seq``."""
        state = await self.state(name)
        return await asyncio.to_thread(state.body)

    def _advance(self, name: str, known: PageState | None, version: object) -> PageState:
        with collector_paused():  # a page of 100,000 trials is millions of small objects
            return self._advance_from(name, known, version)

    def _advance_from(self, name: str, known: PageState | None, version: object) -> PageState:
        view = self._compute(name)
        if known is None:
            return PageState(version, 0, view)
        patch = diff(known.view, view)
        if patch is None:
            return PageState(version, known.seq, known.view, known.patches, known._body)
        seq = known.seq + 1
        patches = {n: p for n, p in known.patches.items() if n > seq - PATCHES_KEPT}
        patches[seq] = _encode({"from": known.seq, "to": seq, "patch": patch})
        return PageState(version, seq, view, patches)

    def _compute(self, name: str) -> dict[str, Any]:
        experiment = self.feed.experiment(name)
        records = self.feed.trials(experiment)
        succeeded = sum(r.phase is TrialPhase.SUCCEEDED for r in records)
        known = self.importance.get(name)
        now = time.monotonic()
        if known is None or (
            known.succeeded != succeeded
            and now - known.fitted_at >= min(self.importance_every, self.fit_share * known.took)
        ):
            shares = importances(fitted_records(records), experiment)
            known = _Importance(now, succeeded, shares, time.monotonic() - now)
            self.importance[name] = known
        rows = self.rows.setdefault(name, TrialRows())
        return experiment_view(experiment, records, importance=known.shares, rows=rows)


def _encode(data: Any) -> bytes:
    return json.dumps(data, allow_nan=False, separators=(",", ":")).encode()


def _trial(feed: Feed, name: str, trial: str) -> dict[str, Any]:
    experiment = feed.experiment(name)
    records = feed.trials(experiment)
    for record in records:
        if record.name == trial:
            log = feed.log_lines(trial, LOG_TAIL)
            return trial_view(experiment, record, log, local=feed.local, records=records)
    raise NotFoundError(f"experiment {name} has no trial {trial}")


async def _read(func: Callable[..., Any], *args: Any) -> Any:
    try:
        return await asyncio.to_thread(func, *args)
    except NotFoundError as error:
        raise web.HTTPNotFound(
            text=json.dumps({"error": str(error)}), content_type="application/json"
        ) from None


async def api_experiments(request: web.Request) -> web.Response:
    """Every experiment's line."""
    return _json(await _read(_experiments, request.app[FEED]))


async def api_experiment(request: web.Request) -> web.Response:
    """One experiment: its line, the plot data and its trials."""
    body = await request.app[VIEWS].body(request.match_info["name"])
    return web.Response(body=body, content_type="application/json")


async def api_trial(request: web.Request) -> web.Response:
    """One trial."""
    info = request.match_info
    return _json(await _read(_trial, request.app[FEED], info["name"], info["trial"]))


def _summary(feed: Feed, name: str | None) -> Any:
    if name is None:
        return _experiments(feed)
    return experiment_row(feed.experiment(name))


async def api_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: an ``update`` with the current lines whenever the feed changed.

    With ``?experiment=NAME&deltas=1`` (the experiment page), the page's changes
    instead: first ``sync`` with the current ``seq``, then a ``delta`` per new
    version (``from``, ``to``, ``patch``), or ``reset`` when the patches a slow
    stream missed are no longer kept; the page loads the whole JSON again when its
    ``seq`` does not meet a delta's ``from``.
    """
    name = request.query.get("experiment") or None
    deltas = name is not None and request.query.get("deltas") == "1"
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    # A page that closes (a navigation, a reload) ends its stream: nothing is left to send.
    with contextlib.suppress(ConnectionResetError):
        await _stream(request, response, name, deltas)
    return response


async def _stream(
    request: web.Request, response: web.StreamResponse, name: str | None, deltas: bool
) -> None:
    feed = request.app[FEED]
    interval = float(request.app[SETTINGS]["interval"])
    seen: object = None
    sent: int | None = None
    quiet = 0.0
    while True:
        version = await asyncio.to_thread(feed.version)
        if version != seen:
            seen = version
            if deltas and name is not None:
                sent = await _send_deltas(request.app[VIEWS], name, sent, response)
            else:
                try:
                    data = await asyncio.to_thread(_summary, feed, name)
                except (NotFoundError, KubeError, sqlite3.DatabaseError) as error:
                    data = {"error": str(error)}
                await response.write(f"event: update\ndata: {json.dumps(data)}\n\n".encode())
            quiet = 0.0
        elif quiet >= KEEPALIVE:
            await response.write(b": keep-alive\n\n")
            quiet = 0.0
        await asyncio.sleep(interval)
        quiet += interval


async def _send_deltas(
    views: Views, name: str, sent: int | None, response: web.StreamResponse
) -> int | None:
    """The patches after ``sent`` (``sync`` the first time); the last ``seq`` sent."""
    try:
        state = await views.state(name)
    except (web.HTTPNotFound, KubeError, sqlite3.DatabaseError) as error:
        data = json.dumps({"error": getattr(error, "text", None) or str(error)})
        await response.write(f"event: failed\ndata: {data}\n\n".encode())
        return sent
    if sent is None:
        await response.write(f'event: sync\ndata: {{"seq":{state.seq}}}\n\n'.encode())
        return state.seq
    for seq in range(sent + 1, state.seq + 1):
        patch = state.patches.get(seq)
        if patch is None:
            await response.write(f'event: reset\ndata: {{"seq":{state.seq}}}\n\n'.encode())
            break
        await response.write(b"event: delta\ndata: " + patch + b"\n\n")
    return state.seq


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{base}static/uPlot.min.css">
<style>{report_style}</style>
<link rel="stylesheet" href="{base}static/dashboard.css"></head>
<body data-base="{base}" data-page="{page}" data-experiment="{experiment}" data-trial="{trial}">
<nav><a href="{base}">kubesweep dashboard</a>{crumbs}</nav>
<main id="main"><p class="empty">Loading…</p></main>
<script type="application/json" id="report-data">null</script>
<script src="{base}static/uPlot.iife.min.js"></script>
<script src="{base}static/dashboard.js"></script>
</body></html>
"""


def _page(request: web.Request, page: str, title: str) -> web.Response:
    esc = html.escape
    base = request.app[SETTINGS]["prefix"]
    name = request.match_info.get("name", "")
    trial = request.match_info.get("trial", "")
    crumbs = ""
    if name:
        crumbs += f' / <a href="{esc(base)}experiments/{esc(name)}">{esc(name)}</a>'
    if trial:
        crumbs += f" / {esc(trial)}"
    text = PAGE.format(
        title=esc(title),
        report_style=STYLE,
        base=esc(base),
        page=page,
        experiment=esc(name),
        trial=esc(trial),
        crumbs=crumbs,
    )
    return web.Response(text=text, content_type="text/html")


async def page_experiments(request: web.Request) -> web.Response:
    """The list of experiments."""
    return _page(request, "experiments", "kubesweep: experiments")


async def page_experiment(request: web.Request) -> web.Response:
    """One experiment."""
    return _page(request, "experiment", f"kubesweep: {request.match_info['name']}")


async def page_trial(request: web.Request) -> web.Response:
    """One trial."""
    return _page(request, "trial", f"kubesweep: {request.match_info['trial']}")


#: The files under ``static/``: the package each comes from, its path there, its type.
STATIC = {
    "dashboard.js": ("kubesweep.cli.dashboard", "static/dashboard.js", "application/javascript"),
    "dashboard.css": ("kubesweep.cli.dashboard", "static/dashboard.css", "text/css"),
    "report.js": ("kubesweep.cli.report", "report.js", "application/javascript"),
    "uPlot.iife.min.js": ("kubesweep.cli.report", VENDOR[0], "application/javascript"),
    "uPlot.min.css": ("kubesweep.cli.report", VENDOR[1], "text/css"),
}


async def static(request: web.Request) -> web.Response:
    """The pages' script and style, the report's drawing script and uPlot, from the package."""
    name = request.match_info["file"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    package, path, content_type = STATIC[name]
    return web.Response(text=_asset(package, path), content_type=content_type)


def make_app(source: Path | Feed, prefix: str = "/", interval: float = INTERVAL) -> web.Application:
    """The dashboard for ``source`` (a folder of local runs, or a feed), under URL ``prefix``."""
    app = web.Application()
    feed = LocalFeed(source) if isinstance(source, Path) else source
    app[FEED] = feed
    app[VIEWS] = Views(feed)
    app.on_startup.append(lambda _: feed.start())
    app.on_cleanup.append(lambda _: feed.close())
    base = normal_prefix(prefix)
    app[SETTINGS] = {"prefix": base, "interval": interval}
    routes = [
        ("", page_experiments),
        ("experiments/{name}", page_experiment),
        ("experiments/{name}/trials/{trial}", page_trial),
        ("api/experiments", api_experiments),
        ("api/experiments/{name}", api_experiment),
        ("api/experiments/{name}/trials/{trial}", api_trial),
        ("api/events", api_events),
        ("static/{file}", static),
    ]
    for path, handler in routes:
        app.router.add_get(base + path, handler)
    if base != "/":
        app.router.add_get(base.rstrip("/"), page_experiments)
    return app


def serve(source: Path | Feed, host: str, port: int, prefix: str = "/") -> None:
    """Serve until interrupted."""
    web.run_app(make_app(source, prefix), host=host, port=port, print=None)
