"""List-and-watch streams that keep a :class:`~kubesweep.operator.children.ChildIndex` current.

One stream per child kind (and enabled workload resource, such as JobSets) and
watched namespace (or one cluster-wide): a listing, then a WATCH from the
listing's resourceVersion with bookmarks, reopened when the server ends it, and
a fresh listing when the server says the version is too old (410). Jobs and pods
are selected by the trial label on the server, so the operator never receives
the namespace's other pods.

A listing is a streaming one where the server offers it: a WATCH that first
sends every object as an ADDED event from the API server's cache and then a
bookmark marking their end (``sendInitialEvents``, Kubernetes' watch-list), the
way client-go's informers list. Why: a paged LIST of 100,000 Trials is 200
consistent reads of etcd, each decoded and encoded by the API server, 86 s on
the benchmark machine, against 24 s streamed from its cache, one object at a
time (see docs/benchmarks.md). A server that refuses it (an older one, or the
feature turned off) is listed in pages of 500 from then on.

The streams read raw JSON (no model deserialisation) and pass each object to
the index at once, so memory holds only the slim records. ``ready`` is set when
every stream has listed once: a restarted operator plans from the whole
picture, never from half a listing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from kubesweep.api import GROUP, VERSION
from kubesweep.operator.children import ChildIndex, Key, Kind
from kubesweep.operator.workloads import WorkloadResource
from kubesweep.rendering import LABEL_TRIAL

logger = logging.getLogger(__name__)

#: Objects per LIST page.
PAGE_SIZE = 500
#: How long the server keeps one WATCH open before we reopen it.
WATCH_SECONDS = 300
#: The longest pause between two attempts after an error.
MAX_BACKOFF_SECONDS = 30.0
#: The bookmark annotation that ends a streaming listing's initial events.
INITIAL_EVENTS_END = "k8s.io/initial-events-end"

#: ``on_change(kind, event_type, body, experiments)``, after the index has the change.
OnChange = Callable[[Kind, str, dict[str, Any], set[Key]], None]


class RawApi(Protocol):
    """What a stream needs from ``kubernetes_asyncio.client.ApiClient``."""

    def call_api(
        self,
        resource_path: str,
        method: str,
        *,
        query_params: Any | None = ...,
        header_params: dict[Any, Any] | None = ...,
        auth_settings: list[Any] | None = ...,
        _preload_content: bool = ...,
        _request_timeout: Any = ...,
    ) -> Any:
        """Send one request (an awaitable)."""
        ...


class ResourceVersionGoneError(Exception):
    """The server no longer has the resourceVersion a WATCH asked for (410)."""


class WatchListRefusedError(Exception):
    """The API server does not list by a streaming WATCH (``sendInitialEvents``)."""


class WatchRequestError(Exception):
    """The API server answered a LIST or WATCH with an error status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status}: {text[:300]}")
        self.status = status


@dataclass(frozen=True)
class Source:
    """Where one stream reads: a kind, a namespace (``None``: all) and a label selector.

    ``resource`` names the collection of a :attr:`Kind.WORKLOADS` stream (JobSets,
    an enabled custom resource).
    """

    kind: Kind
    namespace: str | None
    resource: WorkloadResource | None = None

    @property
    def path(self) -> str:
        """The collection's URL path."""
        scope = f"/namespaces/{self.namespace}" if self.namespace else ""
        if self.resource is not None:
            return f"/apis/{self.resource.api_version}{scope}/{self.resource.plural}"
        prefix = {
            Kind.TRIALS: f"/apis/{GROUP}/{VERSION}",
            Kind.JOBS: "/apis/batch/v1",
            Kind.PODS: "/api/v1",
        }[self.kind]
        return f"{prefix}{scope}/{self.kind.value}"

    @property
    def label_selector(self) -> str | None:
        """Server-side selection: only kubesweep's Jobs and pods."""
        return None if self.kind is Kind.TRIALS else LABEL_TRIAL

    def describe(self) -> str:
        """For log lines."""
        what = self.resource.plural if self.resource is not None else self.kind.value
        return f"{what} in {self.namespace or 'all namespaces'}"


def sources_for(
    namespaces: Sequence[str], workloads: Sequence[WorkloadResource] = ()
) -> list[Source]:
    """One source per kind and namespace, and per enabled workload resource.

    Cluster-wide when no namespace is given.
    """
    scopes: Sequence[str | None] = list(namespaces) or [None]
    fixed = [Source(kind, ns) for ns in scopes for kind in Kind if kind is not Kind.WORKLOADS]
    return fixed + [Source(Kind.WORKLOADS, ns, r) for ns in scopes for r in workloads]


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """Newline-delimited frames of a WATCH body, whatever their size."""
    pending = b""
    async for chunk in response.content.iter_any():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


class Stream:
    """One LIST-then-WATCH loop feeding the index."""

    def __init__(
        self,
        api: RawApi,
        source: Source,
        index: ChildIndex,
        on_change: OnChange,
        *,
        stream_lists: bool = True,
    ) -> None:
        self.api = api
        self.source = source
        self.index = index
        self.on_change = on_change
        self.listed = asyncio.Event()
        self.resource_version: str | None = None
        #: Whether to list by a streaming WATCH; off for good once the server refuses it.
        self.stream_lists = stream_lists

    async def _get(self, params: dict[str, str], timeout: float | None) -> Any:
        query = dict(params)
        if self.source.label_selector:
            query["labelSelector"] = self.source.label_selector
        response = await self.api.call_api(
            self.source.path,
            "GET",
            query_params=list(query.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
        )
        if response.status >= 400:
            text = await response.text()
            response.release()
            if response.status == 410:
                raise ResourceVersionGoneError(text)
            raise WatchRequestError(response.status, text)
        return response

    async def list_all(self) -> None:
        """Page through the collection into the index; drop what the listing lacks.

        Each page goes into the index as it arrives, so the raw objects of a
        listing of thousands never sit in memory at once.
        """
        kind = self.source.kind
        listed: set[Key] = set()
        token = ""
        while True:
            params = {"limit": str(PAGE_SIZE)}
            if token:
                params["continue"] = token
            try:
                response = await self._get(params, timeout=60)
            except ResourceVersionGoneError as error:
                if not token:  # nothing to start again from: an error like any other
                    raise WatchRequestError(410, str(error)) from None
                listed, token = set(), ""  # the continue token expired: start again
                continue
            async with response:
                page = await response.json(loads=json.loads)
            for body in page.get("items") or []:
                meta = body.get("metadata") or {}
                listed.add((str(meta.get("namespace")), str(meta.get("name"))))
                self.on_change(kind, "ADDED", body, self.index.apply(kind, "ADDED", body))
            meta = page.get("metadata") or {}
            del page
            token = meta.get("continue") or ""
            if not token:
                self.resource_version = meta.get("resourceVersion")
                break
        self._listed(listed)

    def _listed(self, listed: set[Key]) -> None:
        """A listing ended: what it lacks was deleted while no watch was open."""
        kind = self.source.kind
        for namespace, name in self.index.objects(kind, self.source.namespace):
            if (namespace, name) not in listed:
                body = {"metadata": {"namespace": namespace, "name": name}}
                self.on_change(kind, "DELETED", body, self.index.apply(kind, "DELETED", body))
        self.listed.set()

    async def stream_list(self) -> None:
        """List by a WATCH that sends every object first, then go on watching on it.

        The objects' own resourceVersions say nothing while the initial events
        come (they are not in order), so the stream's version is the end
        bookmark's: a connection lost before it is a listing to do again.
        Raises :class:`WatchListRefusedError` when the server does not stream lists:
        it refuses the request, or it ends the watch without marking the end.
        """
        params = {
            "watch": "1",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        try:
            response = await self._get(params, timeout=WATCH_SECONDS + 30)
        except WatchRequestError as error:
            if error.status in (400, 403, 422):  # not offered, or not allowed here
                raise WatchListRefusedError(str(error)) from None
            raise
        kind = self.source.kind
        listed: set[Key] | None = set()
        async with response:
            async for line in _lines(response):
                event = json.loads(line)
                if listed is None:  # listed: an ordinary watch from here on
                    self.handle(event)
                    continue
                body = event.get("object") or {}
                meta = body.get("metadata") or {}
                event_type = str(event.get("type"))
                if event_type == "ADDED":
                    listed.add((str(meta.get("namespace")), str(meta.get("name"))))
                    self.on_change(kind, "ADDED", body, self.index.apply(kind, "ADDED", body))
                elif event_type == "BOOKMARK":
                    if (meta.get("annotations") or {}).get(INITIAL_EVENTS_END) == "true":
                        self.resource_version = str(meta.get("resourceVersion") or "") or None
                        self._listed(listed)
                        listed = None
                elif event_type == "ERROR":
                    self.handle(event)  # raises: 410 lists again, others back off
                else:  # not expected before the end; applied, its version not kept
                    self.on_change(kind, event_type, body, self.index.apply(kind, event_type, body))
        if listed is not None:
            # The server ended the watch without marking the end of its initial
            # events: one that ignores sendInitialEvents sends them unmarked.
            raise WatchListRefusedError("the watch ended before its initial events did")

    async def watch_once(self) -> None:
        """One WATCH from the current resourceVersion until the server ends it."""
        params = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        if self.resource_version:
            params["resourceVersion"] = self.resource_version
        response = await self._get(params, timeout=WATCH_SECONDS + 30)
        async with response:
            async for line in _lines(response):
                event = json.loads(line)
                self.handle(event)

    def handle(self, event: dict[str, Any]) -> None:
        """Apply one WATCH event to the index and report what it concerns."""
        event_type = str(event.get("type"))
        body = event.get("object") or {}
        if event_type == "ERROR":
            if body.get("code") == 410:
                raise ResourceVersionGoneError(str(body.get("message")))
            raise WatchRequestError(int(body.get("code") or 500), str(body.get("message")))
        version = (body.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if event_type == "BOOKMARK":
            return
        touched = self.index.apply(self.source.kind, event_type, body)
        self.on_change(self.source.kind, event_type, body, touched)

    async def run(self) -> None:
        """LIST and WATCH until cancelled, recovering from every error."""
        failures = 0
        while True:
            try:
                if self.resource_version is None and self.stream_lists:
                    try:
                        await self.stream_list()
                        failures = 0
                        continue
                    except WatchListRefusedError as error:
                        logger.info(
                            "%s: the API server does not stream lists (%s); listing in pages",
                            self.source.describe(),
                            error,
                        )
                        self.stream_lists = False
                if self.resource_version is None:
                    await self.list_all()
                await self.watch_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except ResourceVersionGoneError:
                logger.info("%s: the watch fell behind; listing again", self.source.describe())
                self.resource_version = None
            except WatchRequestError as error:
                failures += 1
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2**failures)
                if error.status == 404 and self.source.resource is not None:
                    # An enabled kind whose CRD is not (yet) installed: nothing of it exists,
                    # so planning need not wait; its trials wait until the CRD appears.
                    logger.warning(
                        "%s: the API server does not serve this resource (is its CRD "
                        "installed?); retrying in %.1f s",
                        self.source.describe(),
                        delay,
                    )
                    self.listed.set()
                else:
                    logger.warning(
                        "%s: %s; retrying in %.1f s", self.source.describe(), error, delay
                    )
                await asyncio.sleep(delay)
            except Exception as error:  # the API server restarts, the network blips
                failures += 1
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2**failures)
                logger.warning("%s: %s; retrying in %.1f s", self.source.describe(), error, delay)
                await asyncio.sleep(delay)


class Informer:
    """All streams of one operator, sharing one index."""

    def __init__(
        self,
        api: RawApi,
        namespaces: Sequence[str],
        on_change: OnChange,
        index: ChildIndex | None = None,
        workloads: Sequence[WorkloadResource] = (),
        *,
        stream_lists: bool = True,
    ) -> None:
        self.index = index if index is not None else ChildIndex()
        self.streams = [
            Stream(api, s, self.index, on_change, stream_lists=stream_lists)
            for s in sources_for(namespaces, workloads)
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start every stream in the background."""
        self._tasks = [
            asyncio.create_task(s.run(), name=f"informer {s.source.describe()}")
            for s in self.streams
        ]

    async def ready(self) -> None:
        """Return once every stream has listed once."""
        for stream in self.streams:
            await stream.listed.wait()

    @property
    def is_ready(self) -> bool:
        """Whether every stream has listed once."""
        return all(s.listed.is_set() for s in self.streams)

    async def stop(self) -> None:
        """Cancel the streams and wait for them to end."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
