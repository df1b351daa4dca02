"""Talking to the suggestion service: one batched call per pass, backoff on failure.

A slow or unreachable service is a temporary condition of the cluster, never
a property of the experiment: calls raise :class:`SuggestionUnavailable` with a
message fit for a status condition, and :class:`Backoff` spaces the retries of
each experiment (1 s, 2 s, 4 s ... up to a minute) so an outage costs the
service nothing and the operator little.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from kubesweep.operator.monitoring import OperatorMetrics
from kubesweep.planning.executor import ServiceUnavailable


class SuggestionUnavailable(ServiceUnavailable):
    """The service could not answer now; the message says why, for status."""


class SuggestionBackend(Protocol):
    """Answers suggest and stop requests given as wire dicts."""

    async def call(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``/v1/<endpoint>`` and return the reply's JSON."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class BearerTokenFile:
    """A token the kubelet keeps current in a file (a projected ServiceAccount token).

    The kubelet rewrites the file before the token expires, so it is read again
    whenever the file changes, and never more than once per change.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int] | None = None
        self._token = ""

    def header(self) -> str:
        """The ``Authorization`` header value; raises ``OSError`` if the file is unreadable."""
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._seen:
            self._token = self.path.read_text().strip()
            self._seen = stamp
        return f"Bearer {self._token}"


class HttpSuggestionBackend:
    """The suggestion service over HTTP/JSON, as an allowed caller when given a token."""

    def __init__(self, url: str, timeout: float, token: BearerTokenFile | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.token = token
        self._session: aiohttp.ClientSession | None = None

    async def call(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST the request; every failure becomes :class:`SuggestionUnavailable`."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        target = f"{self.url}/v1/{endpoint}"
        headers = {}
        if self.token is not None:
            try:
                headers["Authorization"] = self.token.header()
            except OSError as error:
                raise SuggestionUnavailable(
                    f"cannot read the token for the suggestion service: {error}"
                ) from None
        try:
            async with self._session.post(target, json=body, headers=headers) as response:
                if response.status >= 400:
                    text = (await response.text())[:500]
                    raise SuggestionUnavailable(
                        f"the suggestion service at {self.url} answered {response.status} "
                        f"to {endpoint}: {text}"
                    )
                reply = await response.json()
        except TimeoutError:
            raise SuggestionUnavailable(
                f"the suggestion service at {self.url} did not answer {endpoint} "
                f"within {self.timeout:g}s"
            ) from None
        except aiohttp.ClientError as error:
            raise SuggestionUnavailable(
                f"the suggestion service at {self.url} is unreachable: {error}"
            ) from None
        if not isinstance(reply, dict):
            raise SuggestionUnavailable(f"the suggestion service sent a non-object to {endpoint}")
        return reply

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class InProcessSuggestionBackend:
    """The algorithms run in this process (tests, the local demo); same wire format."""

    async def call(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """Validate the request as the service would and answer it in a worker thread."""
        from kubesweep.api.suggestion_wire import StopRequest, SuggestRequest
        from kubesweep.suggestion import registry

        try:
            if endpoint == "suggest":
                request = SuggestRequest.model_validate(body)
                reply: Any = await asyncio.to_thread(registry.suggest, request)
            else:
                stop_request = StopRequest.model_validate(body)
                reply = await asyncio.to_thread(registry.stop, stop_request)
        except ValueError as error:
            raise SuggestionUnavailable(f"the algorithm refused the request: {error}") from None
        result: dict[str, Any] = reply.model_dump(by_alias=True, mode="json", exclude_none=True)
        return result

    async def close(self) -> None:
        """Nothing to release."""


@dataclass
class Backoff:
    """Exponential backoff per key (an experiment), on the monotonic clock."""

    base: float = 1.0
    maximum: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, int] = field(default_factory=dict)
    _next: dict[str, float] = field(default_factory=dict)

    def remaining(self, key: str) -> float:
        """Seconds until ``key`` may call again (0 when it may now)."""
        remaining = float(self._next.get(key, 0.0)) - float(self.clock())
        return max(0.0, remaining)

    def failed(self, key: str) -> float:
        """Record a failure; return the delay before the next try."""
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        delay: float = min(self.maximum, self.base * 2.0 ** (count - 1))
        self._next[key] = self.clock() + delay
        return delay

    def succeeded(self, key: str) -> None:
        """Forget the failures of ``key``."""
        self._failures.pop(key, None)
        self._next.pop(key, None)


class SuggestionClient:
    """Backed-off, measured calls to a :class:`SuggestionBackend`."""

    def __init__(
        self,
        backend: SuggestionBackend,
        metrics: OperatorMetrics | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.backoff = backoff or Backoff()
        self._last_error: dict[str, str] = {}

    async def call(self, key: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """Call ``endpoint`` for experiment ``key`` unless it is backing off."""
        wait = self.backoff.remaining(key)
        if wait > 0:
            last = self._last_error.get(key, "the suggestion service failed")
            raise SuggestionUnavailable(f"{last}; retrying in {wait:.0f}s")
        started = time.monotonic()
        try:
            reply = await self.backend.call(endpoint, body)
        except SuggestionUnavailable as error:
            if self.metrics is not None:
                self.metrics.suggestion_errors.labels(endpoint).inc()
            self._last_error[key] = str(error)
            self.backoff.failed(key)
            raise
        finally:
            if self.metrics is not None:
                self.metrics.suggestion_seconds.labels(endpoint).observe(time.monotonic() - started)
        self.backoff.succeeded(key)
        self._last_error.pop(key, None)
        return reply

    async def suggest(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/suggest``."""
        return await self.call(key, "suggest", body)

    async def stop(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/stop``."""
        return await self.call(key, "stop", body)

    async def close(self) -> None:
        """Release the backend."""
        await self.backend.close()
