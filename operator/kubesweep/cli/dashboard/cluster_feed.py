"""The dashboard's cluster feed: Experiments and Trials of a namespace, followed by watches.

Each kind is listed once, then watched from the list's resourceVersion, as
kubectl and every informer do; the objects live in memory, parsed into the API
models once per change, so a page reads no API at all (a trial's log tail is
the one read that goes to the API server, through the pod log API). A watch
that ends is resumed from the last version seen; one the server says is too
old (410 Gone) lists again. Every change bumps :meth:`ClusterFeed.version`,
which the event stream pushes to the pages.

Read-only by construction: the feed issues GETs only (lists, watches, logs),
with the user's kubeconfig, so it sees what the user may see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

import aiohttp

from kubesweep.api import API_VERSION, Experiment, Trial
from kubesweep.cli.cluster import ClusterSource, parse_experiment, parse_trial
from kubesweep.cli.experiment_sources import NotFoundError, trial_records
from kubesweep.cli.kube import JSON, Kube, KubeError, path_for
from kubesweep.cli.ranking import TrialRecord

M = TypeVar("M")

#: Seconds a watch asks the server to keep it open; it is resumed when it ends.
WATCH_SECONDS = 240
#: Seconds between two tries after the API server could not be reached, first and at most.
RETRY_FIRST, RETRY_MOST = 1.0, 30.0


class Change(Enum):
    """What one watch event did to a cache."""

    CHANGED = "changed"
    #: A bookmark: only the resourceVersion moved.
    QUIET = "quiet"
    #: The server no longer has the version asked for: list again.
    EXPIRED = "expired"


class WatchError(KubeError):
    """The watch answered an error other than "too old"."""


@dataclass
class ObjectCache(Generic[M]):
    """Objects of one kind by namespace and name, as a list and the events after it leave them."""

    parse: Callable[[JSON], M]
    objects: dict[tuple[str, str], M] = field(default_factory=dict)
    resource_version: str = ""

    def replace(self, listing: JSON) -> None:
        """Start again from a list's items and its resourceVersion."""
        items: Iterable[JSON] = listing.get("items") or []
        self.objects = {_key(item): self.parse(item) for item in items}
        self.resource_version = str((listing.get("metadata") or {}).get("resourceVersion") or "")

    def apply(self, event: JSON) -> Change:
        """One watch event: an object added, modified or deleted, a bookmark, or an error."""
        kind = event.get("type")
        body: JSON = event.get("object") or {}
        if kind == "ERROR":
            if body.get("code") == 410:
                return Change.EXPIRED
            raise WatchError(f"watch error: {body.get('message') or body}", body.get("code"), body)
        version = (body.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind == "BOOKMARK":
            return Change.QUIET
        if kind == "DELETED":
            self.objects.pop(_key(body), None)
        else:
            self.objects[_key(body)] = self.parse(body)
        return Change.CHANGED


def _key(body: JSON) -> tuple[str, str]:
    metadata = body.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


@dataclass
class LineBuffer:
    """Bytes of a stream in, whole lines out (a watch sends one JSON object a line)."""

    pending: bytes = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines that ``chunk`` completes, blank ones left out."""
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        return [line for line in lines if line.strip()]


class ClusterFeed:
    """Experiments and Trials of some namespaces (or all), listed then watched, for the dashboard.

    ``namespaces`` empty: the kubeconfig context's namespace; ``all_namespaces``:
    one list and watch of each kind across the cluster (what a ClusterRole allows).
    """

    local = False

    def __init__(
        self, kube: Kube, namespaces: Sequence[str] = (), *, all_namespaces: bool = False
    ) -> None:
        self.kube = kube
        #: Where each kind is listed and watched: namespaces, or ``None`` for every one.
        self.scopes: list[str | None] = (
            [None] if all_namespaces else list(dict.fromkeys(namespaces or [kube.namespace]))
        )
        self.experiment_caches: dict[str | None, ObjectCache[Experiment]] = {
            scope: ObjectCache(parse_experiment) for scope in self.scopes
        }
        self.trial_caches: dict[str | None, ObjectCache[Trial]] = {
            scope: ObjectCache(parse_trial) for scope in self.scopes
        }
        #: The last failure to reach the API server, cleared when a watch runs again.
        self.problem: str | None = None
        self._changes = 0
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def describe(self) -> str:
        """Which namespaces it follows, in words."""
        if self.scopes == [None]:
            return "every namespace"
        return "namespace " + ", ".join(str(s) for s in self.scopes)

    # -- following -----------------------------------------------------------------

    async def start(self) -> None:
        """List both kinds (raising :class:`KubeError` when that fails), then watch them."""
        self._session = aiohttp.ClientSession()
        caches: list[tuple[str, ObjectCache[Any]]] = [
            *(
                (path_for(API_VERSION, "experiments", s), c)
                for s, c in self.experiment_caches.items()
            ),
            *((path_for(API_VERSION, "trials", s), c) for s, c in self.trial_caches.items()),
        ]
        try:
            for path, cache in caches:
                await self._list(path, cache)
        except BaseException:
            await self.close()
            raise
        self._tasks = [asyncio.create_task(self._follow(p, c)) for p, c in caches]

    async def close(self) -> None:
        """Stop the watches."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _list(self, path: str, cache: ObjectCache[Any]) -> None:
        assert self._session is not None
        async with self._session.get(
            self.kube.absolute_url(path), ssl=self._tls(), headers=self._headers()
        ) as response:
            text = await response.text()
            self._refused(response.status)
            if response.status >= 300:
                raise KubeError(f"GET {path}: {response.status} {text[:300]}", response.status)
        cache.replace(json.loads(text))
        self._changed()

    def _headers(self) -> dict[str, str]:
        # Asked for at every request, never kept in the session: a service account's
        # projected token rotates while the dashboard runs, and the kubelet writes the new
        # one to the same file (see Kube.headers).
        return self.kube.headers()

    def _refused(self, status: int) -> None:
        if status == 401:
            self.kube.credentials_refused()

    def _tls(self) -> Any:
        return self.kube.tls if self.kube.tls is not None else False

    async def _follow(self, path: str, cache: ObjectCache[Any]) -> None:
        """Watch from the cache's version for ever; list again when it expired or failed."""
        pause = RETRY_FIRST
        while True:
            try:
                if await self._watch(path, cache) is Change.EXPIRED:
                    await self._list(path, cache)
                pause = RETRY_FIRST
            except (aiohttp.ClientError, TimeoutError, KubeError, ValueError) as error:
                self.problem = f"watching {path}: {error}"
                await asyncio.sleep(pause)
                pause = min(RETRY_MOST, pause * 2)
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, KubeError):
                    await self._list(path, cache)

    async def _watch(self, path: str, cache: ObjectCache[Any]) -> Change:
        """One watch until the server ends it (``QUIET``) or says the version expired."""
        assert self._session is not None
        params = {
            "watch": "true",
            "resourceVersion": cache.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": WATCH_SECONDS,
        }
        url = self.kube.absolute_url(path, params)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=WATCH_SECONDS + 30)
        async with self._session.get(
            url, ssl=self._tls(), timeout=timeout, headers=self._headers()
        ) as response:
            self._refused(response.status)
            if response.status == 410:
                return Change.EXPIRED
            if response.status >= 300:
                text = await response.text()
                raise KubeError(f"watch {path}: {response.status} {text[:300]}", response.status)
            self.problem = None
            lines = LineBuffer()
            async for chunk in response.content.iter_any():
                for line in lines.feed(chunk):
                    change = cache.apply(json.loads(line))
                    if change is Change.EXPIRED:
                        return change
                    if change is Change.CHANGED:
                        self._changed()
        return Change.QUIET

    def _changed(self) -> None:
        self._changes += 1

    # -- reads ---------------------------------------------------------------------

    def version(self) -> int:
        """How many changes the lists and watches brought so far."""
        return self._changes

    def _experiments(self) -> list[Experiment]:
        return [e for cache in self.experiment_caches.values() for e in cache.objects.values()]

    def _trials(self) -> list[Trial]:
        return [t for cache in self.trial_caches.values() for t in cache.objects.values()]

    def experiments(self) -> list[Experiment]:
        """The Experiments followed, by namespace and name."""
        return sorted(
            self._experiments(), key=lambda e: (e.metadata.namespace or "", e.metadata.name)
        )

    def experiment(self, name: str) -> Experiment:
        """The Experiment called ``name``; one name in two namespaces is refused, naming both."""
        found = [e for e in self._experiments() if e.metadata.name == name]
        if not found:
            raise NotFoundError(f"experiment {name} not found in {self.describe()}")
        if len(found) > 1:
            where = ", ".join(sorted(e.metadata.namespace or "" for e in found))
            raise NotFoundError(
                f"experiment {name} is in several namespaces ({where}); follow one with -n"
            )
        return found[0]

    def trials(self, experiment: Experiment) -> list[TrialRecord]:
        """The experiment's Trials as records, by index."""
        name, namespace = experiment.metadata.name, experiment.metadata.namespace
        owned = [
            t
            for t in self._trials()
            if t.spec.experiment == name and t.metadata.namespace == namespace
        ]
        return trial_records(owned, experiment)

    def log_lines(self, trial: str, lines: int) -> list[str] | None:
        """The primary container's log tail of the trial's newest pod, through the pod log API.

        ``None`` when there is no pod (yet, or any more) or the API refuses it.
        """
        found = next((t for t in self._trials() if t.metadata.name == trial), None)
        if found is None or not found.metadata.namespace:
            return None
        try:
            text = ClusterSource(self.kube, found.metadata.namespace).log(trial, lines)
        except (NotFoundError, KubeError):
            return None
        return text.splitlines()
