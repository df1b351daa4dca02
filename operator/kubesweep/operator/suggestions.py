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

Asks cost what is new: the HTTP backend remembers, per experiment, the token of
the history the service last answered from and which trials it sent, and sends
only the trials new or changed since (``historyBase``). A trial sent in a final
state (completed, failed, stopped) is never sent again: finished phases are final
(:mod:`kubesweep.planning.trial_status`); a pending one is sent on every ask,
since its curve grows. When the service does not hold that history (a restart,
another replica, an eviction) it answers 409 and the whole history is sent once,
so an operator restart or a service rollout costs one full ask per experiment.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import aiohttp
from pydantic import ValidationError

from kubesweep.api.base import ApiModel
from kubesweep.api.suggestion_wire import (
    ObservedTrial,
    StopReply,
    StopRequest,
    SuggestReply,
    SuggestRequest,
    TrialState,
)
from kubesweep.operator.monitoring import OperatorMetrics
from kubesweep.planning.executor import ServiceUnavailable

ReplyT = TypeVar("ReplyT", SuggestReply, StopReply)
RequestT = TypeVar("RequestT", SuggestRequest, StopRequest)

#: The service's status for a ``historyBase`` it does not hold.
HISTORY_NEEDED = 409
#: Validation problems of a malformed reply named in the error message; the rest are counted.
_SHOWN_PROBLEMS = 3


class SuggestionUnavailable(ServiceUnavailable):
    """The service could not answer now; the message says why, for status."""


class HistoryNeeded(SuggestionUnavailable):
    """The service does not hold the history a request built on (409): send it whole."""


#: Experiments whose sent history the HTTP backend remembers; beyond it, the least
#: recently asked experiment sends its whole history on its next ask.
SENT_HISTORIES = 1024


@dataclass
class SentHistory:
    """What the service holds of one experiment's history, as far as this client knows."""

    token: str
    #: Every trial name sent, and whether it was sent in a final state.
    final: dict[str, bool]


class SentHistories:
    """Per experiment, the history the service answered from: what to send next."""

    def __init__(self, max_experiments: int = SENT_HISTORIES) -> None:
        self.max_experiments = max_experiments
        self._held: OrderedDict[str, SentHistory] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def changes(
        self, uid: str, trials: Sequence[ObservedTrial]
    ) -> tuple[str, list[ObservedTrial]] | None:
        """The base token and the trials to send on it; None: send the whole history.

        The whole history goes when nothing was held, or when a trial sent before
        is missing now (the service's history would keep it).
        """
        held = self._held.get(uid)
        if held is None:
            return None
        self._held.move_to_end(uid)
        changed = []
        present = 0
        for trial in trials:
            final = held.final.get(trial.name)
            if final is None:
                changed.append(trial)
                continue
            present += 1
            if not final:
                changed.append(trial)
        if present != len(held.final):
            return None
        return held.token, changed

    def record(
        self, uid: str, sent: Sequence[ObservedTrial], token: str | None, *, whole: bool
    ) -> None:
        """The service answered ``token`` to ``sent`` (the whole history, or changes)."""
        held = self._held.get(uid)
        if token is None or (held is None and not whole):
            self.forget(uid)
            return
        final = {} if whole or held is None else held.final
        for trial in sent:
            final[trial.name] = trial.state is not TrialState.PENDING
        self._held[uid] = SentHistory(token, final)
        self._held.move_to_end(uid)
        while len(self._held) > self.max_experiments:
            self._held.popitem(last=False)

    def forget(self, uid: str) -> None:
        """Send the whole history on the next ask."""
        self._held.pop(uid, None)


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

    def __init__(
        self,
        url: str,
        timeout: float,
        token: BearerTokenFile | None = None,
        *,
        incremental: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.token = token
        #: None: every ask carries the whole history.
        self.sent: SentHistories | None = SentHistories() if incremental else None
        self._session: aiohttp.ClientSession | None = None

    async def suggest(self, request: SuggestRequest) -> SuggestReply:
        """New assignments from the service."""
        return await self._ask("suggest", request, SuggestReply)

    async def stop(self, request: StopRequest) -> StopReply:
        """Stop decisions from the service."""
        return await self._ask("stop", request, StopReply)

    async def _ask(self, endpoint: str, request: RequestT, reply_type: type[ReplyT]) -> ReplyT:
        """Send the changes since the history the service holds, or else the whole history.

        The operator asks for one experiment at a time (one pass, stop then
        suggest), so the history remembered for it is never raced.
        """
        uid = request.experiment_uid
        sent = self.sent
        if uid is None or sent is None or request.history_base is not None:
            return await self._post(endpoint, request, reply_type)
        request = request.model_copy(update={"hold_history": True})
        changes = sent.changes(uid, request.trials)
        if changes is not None:
            base, changed = changes
            update = {"trials": changed, "history_base": base}
            try:
                reply = await self._post(endpoint, request.model_copy(update=update), reply_type)
            except HistoryNeeded:
                sent.forget(uid)
            except SuggestionUnavailable:
                sent.forget(uid)  # whether the service moved on is unknown
                raise
            else:
                sent.record(uid, changed, reply.history, whole=False)
                return reply
        try:
            reply = await self._post(endpoint, request, reply_type)
        except SuggestionUnavailable:
            sent.forget(uid)
            raise
        sent.record(uid, request.trials, reply.history, whole=True)
        return reply

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
                if response.status == HISTORY_NEEDED:
                    text = (await response.text())[:500]
                    raise HistoryNeeded(
                        f"the suggestion service at {self.url} needs the whole history: {text}"
                    )
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
