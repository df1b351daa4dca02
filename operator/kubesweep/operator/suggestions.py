"""Talking to the suggestion service: one batched call per pass, backoff on failure.

Requests and replies are the typed models of :mod:`kubesweep.api.suggestion_wire`,
the ones the service validates and documents: the operator hands the client a
model and gets a model back. A reply that does not parse as its model is the
service's fault, told as such, never a ``KeyError`` deep in a pass.

A slow or unreachable service, or one that answers nonsense, is a temporary
condition of the cluster, never a property of the experiment: calls raise
:class:`SuggestionUnavailable` with a message fit for a status condition, and
:class:`Backoff` spaces the retries of each experiment (1 s, 2 s, 4 s ... up to
a minute) so an outage costs the service nothing and the operator little.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import aiohttp
from pydantic import ValidationError

from kubesweep.api.base import ApiModel
from kubesweep.api.suggestion_wire import StopReply, StopRequest, SuggestReply, SuggestRequest
from kubesweep.operator.monitoring import OperatorMetrics
from kubesweep.planning.executor import ServiceUnavailable

ReplyT = TypeVar("ReplyT", SuggestReply, StopReply)
RequestT = TypeVar("RequestT", SuggestRequest, StopRequest)

#: Validation problems of a malformed reply named in the error message; the rest are counted.
_SHOWN_PROBLEMS = 3


class SuggestionUnavailable(ServiceUnavailable):
    """The service could not answer now; the message says why, for status."""


class SuggestionBackend(Protocol):
    """Answers suggest and stop requests: the service over HTTP, or the algorithms here."""

    async def suggest(self, request: SuggestRequest) -> SuggestReply:
        """``POST /v1/suggest``; raises :class:`SuggestionUnavailable`."""
        ...

    async def stop(self, request: StopRequest) -> StopReply:
        """``POST /v1/stop``; raises :class:`SuggestionUnavailable`."""
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

    async def suggest(self, request: SuggestRequest) -> SuggestReply:
        """New assignments from the service."""
        return await self._post("suggest", request, SuggestReply)

    async def stop(self, request: StopRequest) -> StopReply:
        """Stop decisions from the service."""
        return await self._post("stop", request, StopReply)

    async def _post(self, endpoint: str, request: ApiModel, reply_type: type[ReplyT]) -> ReplyT:
        """POST the request and parse the reply; every failure is :class:`SuggestionUnavailable`."""
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
        # Python's json writes a diverged trial's NaN or infinity as the constant the
        # service reads (and treats as unusable); pydantic's JSON would write null.
        body = request.to_wire()
        try:
            async with self._session.post(target, json=body, headers=headers) as response:
                if response.status >= 400:
                    text = (await response.text())[:500]
                    raise SuggestionUnavailable(
                        f"the suggestion service at {self.url} answered {response.status} "
                        f"to {endpoint}: {text}"
                    )
                raw = await response.read()
        except TimeoutError:
            raise SuggestionUnavailable(
                f"the suggestion service at {self.url} did not answer {endpoint} "
                f"within {self.timeout:g}s"
            ) from None
        except aiohttp.ClientError as error:
            raise SuggestionUnavailable(
                f"the suggestion service at {self.url} is unreachable: {error}"
            ) from None
        try:
            return reply_type.model_validate_json(raw)
        except ValidationError as error:
            raise SuggestionUnavailable(
                f"the suggestion service at {self.url} sent a malformed reply to {endpoint}: "
                f"{_describe(error)}"
            ) from None

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _describe(error: ValidationError) -> str:
    """The first few problems of a reply, each naming its field, for a status condition."""
    problems = error.errors(include_url=False, include_input=False)
    shown = [
        f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
        for problem in problems[:_SHOWN_PROBLEMS]
    ]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")


class InProcessSuggestionBackend:
    """The algorithms run in this process (tests, the local demo), on the same models."""

    async def suggest(self, request: SuggestRequest) -> SuggestReply:
        """The algorithm's assignments, computed in a worker thread."""
        from kubesweep.suggestion import registry

        return await _in_thread(registry.suggest, request)

    async def stop(self, request: StopRequest) -> StopReply:
        """The stopping rule's decisions, computed in a worker thread."""
        from kubesweep.suggestion import registry

        return await _in_thread(registry.stop, request)

    async def close(self) -> None:
        """Nothing to release."""


async def _in_thread(answer: Callable[[RequestT], ReplyT], request: RequestT) -> ReplyT:
    """``answer(request)`` off the event loop; a refusal is what the service would say (422)."""
    try:
        return await asyncio.to_thread(answer, request)
    except ValueError as error:
        raise SuggestionUnavailable(f"the algorithm refused the request: {error}") from None


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

    async def suggest(self, key: str, request: SuggestRequest) -> SuggestReply:
        """``POST /v1/suggest`` for experiment ``key``, unless it is backing off."""
        return await self._call(key, "suggest", lambda: self.backend.suggest(request))

    async def stop(self, key: str, request: StopRequest) -> StopReply:
        """``POST /v1/stop`` for experiment ``key``, unless it is backing off."""
        return await self._call(key, "stop", lambda: self.backend.stop(request))

    async def _call(self, key: str, endpoint: str, ask: Callable[[], Awaitable[ReplyT]]) -> ReplyT:
        """Ask the backend unless ``key`` is backing off; count, time and remember failures."""
        wait = self.backoff.remaining(key)
        if wait > 0:
            last = self._last_error.get(key, "the suggestion service failed")
            raise SuggestionUnavailable(f"{last}; retrying in {wait:.0f}s")
        started = time.monotonic()
        try:
            reply = await ask()
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

    async def close(self) -> None:
        """Release the backend."""
        await self.backend.close()
