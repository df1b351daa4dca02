"""The suggestion service: the algorithms behind an HTTP/JSON API.

This module is the thin I/O edge around the pure algorithms of
:mod:`kubesweep.suggestion.registry`. It hands each request body to a worker,
which parses, validates and computes, and it classifies every failure once, here:

* a body that is not a JSON object is ``400``; one of the wrong shape (types,
  unknown or missing fields) or with settings the algorithm refuses is ``422``;
  both carry ``{"error", "problems"}`` where each problem names its field;
* a ``Content-Type`` other than JSON is ``415``; a body over the size limit is
  ``413``; one that does not arrive within the body timeout is ``408``;
* too many requests or too many body bytes in flight, or a worker that died,
  is ``503``; a computation past its deadline is ``504`` (its worker process is
  killed and replaced); all temporary conditions the operator retries;
* a client that hangs up mid-upload is counted as ``client_gone``, never as an
  error of the service;
* anything else is a bug in the service: ``500``, with the traceback in the log.

No client input may produce a 5xx; the schemathesis suite checks that.

Algorithm work is CPU-bound (a Gaussian-process fit, a TPE density estimate over
thousands of trials), and so is validating a body of many thousands of trials;
both run in an executor, never on the event loop, so the probes and ``/metrics``
stay responsive while a worker computes. The event loop only reads the body and
hashes it for the cache. Worker processes (the default,
:mod:`kubesweep.suggestion.workers`) give real parallelism, isolation from the
GIL, and a deadline that frees the worker; a thread pool is lighter and suits
tests and small deployments, but a thread past its deadline runs on.

Every request has a bounded cost. Before a body is read, the request must fit
both the number of requests in flight and a budget of body bytes (its declared
``Content-Length``, or the size limit when it has none), so concurrent large
bodies cannot grow memory without bound, and a burst is refused early rather
than answered after the client has given up. The body must arrive within the
body timeout, and the answer within the deadline.

The service keeps no state a client depends on. The optional reply cache
(:mod:`kubesweep.suggestion.cache`) only makes identical repeat requests cheap;
the held histories (:mod:`kubesweep.suggestion.history`) let a request carry
only the trials changed since an earlier reply, and a worker that does not hold
the history named answers 409, after which the client sends it whole. Each
worker process holds its own histories, so the requests of one experiment go
to one worker (read from the first bytes of the body, :func:`experiment_of`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import BrokenExecutor, Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, from_json

from kubesweep.api.experiment import MULTI_FIDELITY_ALGORITHMS, Algorithm, EarlyStopping
from kubesweep.api.suggestion_wire import (
    ErrorReply,
    HealthReply,
    HistoryNeededReply,
    SearchSpace,
    StopReply,
    StopRequest,
    SuggestReply,
    SuggestRequest,
    ValidateReply,
    ValidateRequest,
)
from kubesweep.gcpause import collector_paused
from kubesweep.suggestion.auth import (
    DEFAULT_AUDIENCE,
    Authenticator,
    RefusedError,
    ReviewUnavailableError,
    kubernetes_reviewer,
    parse_allowed,
)
from kubesweep.suggestion.cache import CachedReply, ReplyCache
from kubesweep.suggestion.contract import SettingsError
from kubesweep.suggestion.history import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_EXPERIMENTS,
    HistoryNeededError,
    HistoryStore,
)
from kubesweep.suggestion.openapi import build_document, render
from kubesweep.suggestion.space import SpaceError
from kubesweep.suggestion.telemetry import (
    CONTENT_TYPE,
    CacheResult,
    ErrorKind,
    HistoryResult,
    Telemetry,
)
from kubesweep.suggestion.workers import DeadlineExceededError, ProcessWorkers, WorkerLostError

logger = logging.getLogger(__name__)

#: Problems listed in one error body; the rest are counted, so a huge bad body
#: cannot produce a huge error reply.
MAX_PROBLEMS = 50
#: Pydantic error types that report a value the schema allows but a rule refuses
#: (the CEL rules, distinct values). ``/v1/validate`` answers these with ``valid: false``.
SEMANTIC_ERROR_TYPES = frozenset({"value_error", "assertion_error"})

SUGGEST = "/v1/suggest"
STOP = "/v1/stop"
VALIDATE = "/v1/validate"

ExecutorKind = Literal["process", "thread"]
SuggestFn = Callable[[SuggestRequest], SuggestReply]
StopFn = Callable[[StopRequest], StopReply]
ValidateFn = Callable[[SearchSpace, Algorithm, EarlyStopping | None], list[str]]
ModelT = TypeVar("ModelT", bound=BaseModel)
ReplyT = TypeVar("ReplyT", SuggestReply, StopReply)


@dataclass(frozen=True)
class Settings:
    """How the service runs; every field has a flag and an environment variable."""

    host: str = "0.0.0.0"  # a container listens on all its interfaces
    port: int = 8080
    workers: int = 2
    executor: ExecutorKind = "process"
    cache_entries: int = 1024
    cache_bytes: int = 256 * 1024 * 1024
    #: Experiments whose history each worker holds for incremental requests (0: none).
    history_experiments: int = DEFAULT_MAX_EXPERIMENTS
    #: JSON bytes of the bodies those histories were built from, per worker.
    history_bytes: int = DEFAULT_MAX_BYTES
    max_body_bytes: int = 64 * 1024 * 1024
    #: Bytes of request bodies held at once; four bodies of the largest size.
    max_bytes_in_flight: int = 256 * 1024 * 1024
    max_queue: int = 32
    #: Seconds for a body to arrive in full.
    body_timeout: float = 30.0
    #: Seconds from a body's arrival to its answer: below the operator's 30 s client
    #: timeout, so the operator hears why rather than timing out itself.
    deadline: float = 25.0
    #: Where ``/metrics`` is served: a port of its own, so that a NetworkPolicy can let
    #: Prometheus scrape without letting it ask for suggestions; 0 serves it on ``port``.
    metrics_port: int = 9090
    #: ServiceAccounts (``namespace/name``) whose tokens may ask; none: anyone may.
    allowed_callers: tuple[str, ...] = ()
    #: The audience the callers' projected tokens are bound to.
    token_audience: str = DEFAULT_AUDIENCE
    log_level: str = "INFO"


@dataclass(frozen=True)
class Engine:
    """The pure functions the service serves; module-level so a process pool can pickle them."""

    suggest: SuggestFn
    stop: StopFn
    validate: ValidateFn
    #: Loads what the functions import lazily, in each worker before traffic arrives.
    prepare: Callable[[], None] | None = None


def prepare_registry() -> None:
    """Import every algorithm's module (scikit-learn, scipy) so no request pays for it."""
    from kubesweep.api.experiment import AlgorithmName
    from kubesweep.suggestion import registry

    for name in AlgorithmName:
        registry.available(name)


def default_engine() -> Engine:
    """The algorithms of :mod:`kubesweep.suggestion.registry`."""
    from kubesweep.suggestion import registry

    return Engine(
        suggest=registry.suggest,
        stop=registry.stop,
        validate=registry.validate,
        prepare=prepare_registry,
    )


#: Seconds a worker process may take to import the algorithms before serving.
WARM_UP_SECONDS = 300.0


def _is_json(request: web.Request) -> bool:
    """Whether the body is declared JSON; no ``Content-Type`` at all is taken as JSON."""
    if "Content-Type" not in request.headers:
        return True
    kind = request.content_type
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


class ClientGoneError(Exception):
    """The client closed the connection before its body arrived."""


class ClientError(Exception):
    """A request refused at the edge: the status, the sentence, the problems."""

    def __init__(
        self, status: int, kind: ErrorKind, error: str, problems: Sequence[str] = ()
    ) -> None:
        super().__init__(error)
        self.status = status
        self.kind = kind
        self.error = error
        self.problems = list(problems)


@dataclass(frozen=True)
class Labels:
    """What the metrics and the cache need to know of a request, once it is parsed."""

    experiment: str | None = None
    algorithm: str = "unknown"
    trials: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What a worker hands back (plain values, so it crosses a process boundary).

    Either a serialized reply (``kind`` None) or a refusal, and in both cases the
    labels the metrics need, known only once the body is parsed.
    """

    body: bytes = b""
    status: int = 200
    kind: ErrorKind | None = None
    error: str = ""
    problems: list[str] = field(default_factory=list)
    labels: Labels = Labels()
    #: How the request carried its history (suggest and stop only).
    history: HistoryResult | None = None

    @classmethod
    def refused(cls, error: ClientError, labels: Labels | None = None) -> Outcome:
        """The outcome of a request refused with ``error``."""
        return cls(
            status=error.status,
            kind=error.kind,
            error=error.error,
            problems=error.problems,
            labels=labels or Labels(),
        )


# --- work done in a worker: module-level functions, picklable ---------------------------
#
# Parsing runs here too, not on the event loop: validating a body of 100,000
# trials takes seconds, during which the probes would go unanswered.


def _finite(value: object) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _check_assignments(reply: SuggestReply, count: int, *, may_wait: bool) -> None:
    """The contract's promises about a reply; a broken one is a bug, not a client error.

    ``may_wait``: the algorithm is one that may answer with fewer while it waits for
    pending results (a multi-fidelity algorithm; pbt while a member holds others back).
    """
    if len(reply.assignments) > count:
        raise RuntimeError(f"algorithm returned {len(reply.assignments)} assignments for {count}")
    if len(reply.assignments) < count and not reply.exhausted and not may_wait:
        raise RuntimeError("algorithm returned fewer assignments than asked without exhaustion")
    for assignment in reply.assignments:
        values = [*assignment.parameters.values(), assignment.fidelity]
        if not all(_finite(v) for v in values):
            raise RuntimeError(f"algorithm returned a non-finite value: {assignment}")


def _engine_problems(
    engine: Engine, space: SearchSpace, algorithm: Algorithm, stopping: EarlyStopping | None
) -> list[str]:
    """Every problem the service and the algorithms find with a space and its settings."""
    problems = space_problems(space)
    if problems:
        return problems
    try:
        return engine.validate(space, algorithm, stopping)
    except (SettingsError, SpaceError) as error:
        return _problems_of(error)


def _problems_of(error: SettingsError | SpaceError) -> list[str]:
    """What an algorithm's refusal says, as problems that name their field."""
    return error.problems if isinstance(error, SpaceError) else [str(error)]


def _reply_or_problems(
    engine: Engine,
    request: SuggestRequest | StopRequest,
    stopping: EarlyStopping | None,
    compute: Callable[[], ReplyT],
) -> ReplyT | list[str]:
    """``compute()``'s reply once the space and settings pass; else every problem found."""
    problems = _engine_problems(engine, request.space, request.algorithm, stopping)
    if problems:
        return problems
    try:
        return compute()
    except (SettingsError, SpaceError) as error:
        return _problems_of(error)


def _settings_refused(problems: Sequence[str], labels: Labels) -> Outcome:
    error = ClientError(
        422,
        ErrorKind.INVALID_SETTINGS,
        "the algorithm refuses the space or its settings",
        _limited(problems),
    )
    return Outcome.refused(error, labels)


@dataclass(frozen=True)
class HistoryLimits:
    """Which store of held histories a job uses, and its bounds (plain values: picklable).

    Each process keeps its stores in :data:`_HISTORIES`, by ``key`` (one per
    service): a worker process holds its own, threads of one process share one.
    """

    key: str
    max_experiments: int = DEFAULT_MAX_EXPERIMENTS
    max_bytes: int = DEFAULT_MAX_BYTES


#: This process's held histories, by :attr:`HistoryLimits.key`.
_HISTORIES: dict[str, HistoryStore] = {}
_HISTORIES_LOCK = threading.Lock()


def history_store(limits: HistoryLimits) -> HistoryStore:
    """This process's store for ``limits.key``, created on first use."""
    with _HISTORIES_LOCK:
        store = _HISTORIES.get(limits.key)
        if store is None:
            store = HistoryStore(limits.max_experiments, limits.max_bytes)
            _HISTORIES[limits.key] = store
        return store


HistoryRequestT = TypeVar("HistoryRequestT", SuggestRequest, StopRequest)


def _whole(
    request: HistoryRequestT, body: bytes, limits: HistoryLimits | None
) -> tuple[HistoryRequestT, str | None]:
    """The request with its whole history, and the token of that history if held.

    Raises :class:`HistoryNeededError` for a ``historyBase`` this process does not hold.
    """
    if limits is None or not (request.hold_history or request.history_base is not None):
        if request.history_base is not None:
            raise HistoryNeededError("this service holds no histories; send the whole history")
        return request, None
    resolved = history_store(limits).resolve(
        request.experiment_uid, request.history_base, request.trials, body
    )
    if request.history_base is None:
        return request, resolved.token
    whole = request.model_copy(update={"trials": resolved.trials, "history_base": None})
    return whole, resolved.token


def _history_needed(error: HistoryNeededError, labels: Labels) -> Outcome:
    return Outcome(
        status=409,
        kind=ErrorKind.HISTORY_NEEDED,
        error=str(error),
        labels=labels,
        history=HistoryResult.NEEDED,
    )


def _carried(base: str | None) -> HistoryResult:
    return HistoryResult.WHOLE if base is None else HistoryResult.CHANGES


def handle_suggest(engine: Engine, body: bytes, histories: HistoryLimits | None = None) -> Outcome:
    """Parse, make the whole history, validate the space and settings, then suggest."""
    with collector_paused():  # a history of 100,000 trials makes as many acyclic objects
        return _suggest(engine, body, histories)


def _suggest(engine: Engine, body: bytes, histories: HistoryLimits | None) -> Outcome:
    try:
        request = parse(SuggestRequest, body)
    except ClientError as error:
        return Outcome.refused(error)
    labels = Labels(request.experiment_uid, request.algorithm.name.value, len(request.trials))
    carried = _carried(request.history_base)
    try:
        request, token = _whole(request, body, histories)
    except HistoryNeededError as error:
        return _history_needed(error, labels)
    labels = Labels(request.experiment_uid, request.algorithm.name.value, len(request.trials))
    whole = request
    reply = _reply_or_problems(engine, whole, None, lambda: engine.suggest(whole))
    if isinstance(reply, list):
        return _settings_refused(reply, labels)
    _check_assignments(
        reply, request.count, may_wait=request.algorithm.name in MULTI_FIDELITY_ALGORITHMS
    )
    if token is not None:
        reply = reply.model_copy(update={"history": token})
    return Outcome(body=_dump(reply), labels=labels, history=carried)


def handle_stop(engine: Engine, body: bytes, histories: HistoryLimits | None = None) -> Outcome:
    """Parse, make the whole history, validate the space and the stopping rule, then decide."""
    with collector_paused():
        return _stop(engine, body, histories)


def _stop(engine: Engine, body: bytes, histories: HistoryLimits | None) -> Outcome:
    try:
        request = parse(StopRequest, body)
    except ClientError as error:
        return Outcome.refused(error)
    # The stopping rule decides, or else a stop-based algorithm (asha).
    stopping = request.early_stopping
    rule = stopping.name.value if stopping else request.algorithm.name.value
    labels = Labels(request.experiment_uid, rule, len(request.trials))
    carried = _carried(request.history_base)
    try:
        request, token = _whole(request, body, histories)
    except HistoryNeededError as error:
        return _history_needed(error, labels)
    labels = Labels(request.experiment_uid, rule, len(request.trials))
    whole = request
    reply = _reply_or_problems(engine, whole, stopping, lambda: engine.stop(whole))
    if isinstance(reply, list):
        return _settings_refused(reply, labels)
    if token is not None:
        reply = reply.model_copy(update={"history": token})
    return Outcome(body=_dump(reply), labels=labels, history=carried)


def handle_validate(
    engine: Engine, body: bytes, _histories: HistoryLimits | None = None
) -> Outcome:
    """Parse and check; problems with values are the answer (200), not a refusal."""
    try:
        request = parse(ValidateRequest, body)
    except ClientError as error:
        details = error.details if isinstance(error, InvalidBodyError) else []
        if details and all(e["type"] in SEMANTIC_ERROR_TYPES for e in details):
            return Outcome(body=_dump(ValidateReply(valid=False, problems=error.problems)))
        return Outcome.refused(error)
    problems = _engine_problems(engine, request.space, request.algorithm, request.early_stopping)
    reply = ValidateReply(valid=not problems, problems=_limited(problems))
    return Outcome(body=_dump(reply), labels=Labels(algorithm=request.algorithm.name.value))


def warm_up(engine: Engine) -> None:
    """Prepare a fresh worker; receiving ``engine`` already imported the modules it names."""
    if engine.prepare is not None:
        engine.prepare()


def _dump(model: BaseModel) -> bytes:
    return model.model_dump_json(by_alias=True, exclude_none=True).encode()


#: How a job is called: the engine, the body, and the held histories it may use.
Job = Callable[[Engine, bytes, HistoryLimits | None], Outcome]
#: Bytes of a body searched for its experiment UID (clients send it first; see below).
_ROUTING_PREFIX = 4096


def experiment_of(body: bytes) -> str | None:
    """The ``experimentUid`` of a body, read from its first bytes only, or None.

    Only routing uses it (to the worker holding the experiment's history), so it
    must not parse a body of 57 MB on the event loop: the models put the UID
    first, and a partial parse of the first few KiB finds it. A body that puts it
    later is answered all the same, from any worker.
    """
    try:
        head = from_json(body[:_ROUTING_PREFIX], allow_partial=True)
    except ValueError:
        return None
    uid = head.get("experimentUid") if isinstance(head, dict) else None
    return uid if isinstance(uid, str) else None


# --- request parsing -------------------------------------------------------------------


def _problem(error: ErrorDetails) -> str:
    path = ".".join(str(part) for part in error["loc"]) or "body"
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f"{path}: {message}"


def _limited(problems: Sequence[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return list(problems)
    return [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more"]


class InvalidBodyError(ClientError):
    """A body pydantic refused, with its error details (kept to tell shape from values)."""

    def __init__(self, model: type[BaseModel], error: ValidationError) -> None:
        self.details = error.errors(include_url=False, include_input=False)
        problems = _limited([_problem(e) for e in self.details])
        not_json = any(e["type"] == "json_invalid" for e in self.details)
        first = self.details[0] if self.details else None
        not_object = (
            len(self.details) == 1 and first is not None and first["type"] == "model_type"
        ) and not first["loc"]
        if not_json or not_object:
            super().__init__(400, ErrorKind.BAD_JSON, "the body must be a JSON object", problems)
        else:
            super().__init__(
                422,
                ErrorKind.INVALID_REQUEST,
                f"the request is not a valid {model.__name__}",
                problems,
            )


def parse(model: type[ModelT], body: bytes) -> ModelT:
    """Validate a body strictly (no string-to-number coercion): what the schema says, no more.

    Strict mode matters for the contract: a client sending ``"count": "3"`` is
    told so, instead of working by accident against this server and failing
    against a stricter one.
    """
    if not body.strip():
        raise ClientError(400, ErrorKind.BAD_JSON, "the request needs a JSON body", ["body: empty"])
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError as error:
        raise InvalidBodyError(model, error) from None


def space_problems(space: SearchSpace, prefix: str = "space") -> list[str]:
    """Numbers that JSON allows but no algorithm can compute with.

    ``1e999`` parses as infinity; bounds such as ``-1e308 .. 1e308`` have an
    infinite width, and a step such as ``5e-324`` an infinite number of grid
    points. Each is refused here, naming the field, rather than overflowing
    inside an algorithm.
    """
    problems = []
    for index, parameter in enumerate(space.parameters):
        at = f"{prefix}.parameters.{index}"
        numbers = [getattr(parameter, name) for name in ("min", "max", "step")]
        for name, number in zip(("min", "max", "step"), numbers, strict=True):
            if not _finite(number):
                problems.append(f"{at}.{name}: must be a finite number")
        low, high, step = numbers
        if low is not None and high is not None and all(_finite(v) for v in numbers):
            width = high - low
            if not math.isfinite(width):
                problems.append(f"{at}.max: max - min must be a finite number; narrow the bounds")
            elif step is not None and not math.isfinite(width / step):
                problems.append(f"{at}.step: too small for the bounds; raise it")
        for position, value in enumerate(parameter.values or ()):
            if not _finite(value):
                problems.append(f"{at}.values.{position}: must be a finite number")
    if space.fidelity is not None:
        for name in ("min", "max", "eta"):
            if not _finite(getattr(space.fidelity, name)):
                problems.append(f"{prefix}.fidelity.{name}: must be a finite number")
    return problems


# --- the application -------------------------------------------------------------------


def _error_response(
    status: int, error: str, problems: Sequence[str] = (), headers: dict[str, str] | None = None
) -> web.Response:
    body = ErrorReply(error=error, problems=list(problems))
    return web.Response(
        body=_dump(body), status=status, content_type="application/json", headers=headers
    )


def _json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


class Service:
    """The handlers and the state they share: executor, cache, metrics, readiness."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        executor: Executor | None = None,
        telemetry: Telemetry | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.authenticator = authenticator
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.cache = ReplyCache(settings.cache_entries, settings.cache_bytes)
        self.histories = HistoryLimits(
            f"service-{uuid.uuid4().hex}", settings.history_experiments, settings.history_bytes
        )
        self._executor = executor
        self._owns_executor = executor is None
        self._workers: ProcessWorkers | None = None
        self._pending = 0
        self._body_bytes = 0
        self.status: Literal["ok", "starting", "draining"] = "starting"
        self._warm_up: asyncio.Task[None] | None = None
        self.document = render(build_document()).encode()

    # lifecycle

    async def start(self, _app: web.Application) -> None:
        """Start the workers; ready once each has imported the algorithms."""
        workers = max(1, self.settings.workers)
        if self._executor is None and self.settings.executor == "process":
            # Each process prepares itself, replacements included.
            self._workers = ProcessWorkers(
                workers,
                initializer=functools.partial(warm_up, self.engine),
                on_replace=self.telemetry.workers_replaced.inc,
            )
            self._workers.start()
        elif self._executor is None:
            self._executor = ThreadPoolExecutor(workers, thread_name_prefix="suggest")
        self._warm_up = asyncio.create_task(self._warm())

    async def _warm(self) -> None:
        loop = asyncio.get_running_loop()
        count = max(1, self.settings.workers)
        try:
            if self._workers is not None:
                # A job per worker answers only once that worker has prepared itself.
                deadline = loop.time() + WARM_UP_SECONDS
                workers = self._workers
                await asyncio.gather(
                    *(workers.run(warm_up, self.engine, deadline=deadline) for _ in range(count))
                )
            else:
                await asyncio.gather(
                    *(
                        loop.run_in_executor(self._executor, warm_up, self.engine)
                        for _ in range(count)
                    )
                )
        except Exception:
            logger.exception("warming up the workers failed; serving anyway")
        if self.status == "starting":
            self.status = "ok"

    async def drain(self, _app: web.Application) -> None:
        """Report not ready, so that load balancers stop routing here before shutdown."""
        self.status = "draining"

    async def stop(self, _app: web.Application) -> None:
        """Stop the workers this service started."""
        if self._warm_up is not None:
            self._warm_up.cancel()
        if self._workers is not None:
            self._workers.close()
        if self._owns_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        with _HISTORIES_LOCK:
            _HISTORIES.pop(self.histories.key, None)  # held here with the thread executor

    # admission: what a request may hold before its body is read

    @asynccontextmanager
    async def _admitted(self, request: web.Request) -> AsyncIterator[None]:
        """Hold a place among the requests in flight, and the bytes of the body to come.

        Checked before a byte of the body is read: the declared length must fit
        the size limit, and the request must fit both the count of requests in
        flight and the budget of body bytes. A body without a declared length
        (chunked) reserves the size limit.
        """
        if not _is_json(request):
            raise ClientError(
                415,
                ErrorKind.UNSUPPORTED_MEDIA_TYPE,
                f"the body must be application/json, not {request.content_type}",
            )
        settings = self.settings
        declared = request.content_length
        if declared is not None and declared > settings.max_body_bytes:
            raise ClientError(
                413,
                ErrorKind.TOO_LARGE,
                f"the body of {declared} bytes is over the limit of {settings.max_body_bytes}",
            )
        limit = max(1, settings.workers) + settings.max_queue
        if self._pending >= limit:
            raise ClientError(
                503, ErrorKind.OVERLOADED, f"{self._pending} requests are already in flight"
            )
        reserved = declared if declared is not None else settings.max_body_bytes
        if self._body_bytes + reserved > settings.max_bytes_in_flight:
            raise ClientError(
                503,
                ErrorKind.OVERLOADED,
                f"request bodies in flight already hold {self._body_bytes} of "
                f"{settings.max_bytes_in_flight} bytes",
            )
        self._pending += 1
        self._body_bytes += reserved
        self._show_load()
        try:
            yield
        finally:
            self._pending -= 1
            self._body_bytes -= reserved
            self._show_load()

    def _show_load(self) -> None:
        self.telemetry.in_flight.set(self._pending)
        self.telemetry.body_bytes.set(self._body_bytes)

    async def _read(self, request: web.Request) -> bytes:
        """The whole body, within the body timeout; a client hanging up is its own outcome."""
        timeout = self.settings.body_timeout
        try:
            async with asyncio.timeout(timeout):
                return await request.read()
        except TimeoutError:
            raise ClientError(
                408, ErrorKind.SLOW_UPLOAD, f"the body did not arrive within {timeout:g} s"
            ) from None
        except ConnectionError:
            raise ClientGoneError from None

    # the work queue

    async def _run(self, job: Job, body: bytes) -> Outcome:
        """``job`` on a worker, answered by the deadline or refused with 504.

        Every request of one experiment goes to the same worker process, the one
        that holds its history (:mod:`kubesweep.suggestion.history`).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.deadline
        histories = self.histories
        try:
            if self._workers is not None:
                return await self._workers.run(
                    job,
                    self.engine,
                    body,
                    histories,
                    deadline=deadline,
                    affinity=experiment_of(body),
                )
            # A thread cannot be stopped: past the deadline the client is answered
            # and the thread runs on (one reason processes are the default).
            async with asyncio.timeout_at(deadline):
                return await loop.run_in_executor(self._executor, job, self.engine, body, histories)
        except (DeadlineExceededError, TimeoutError):
            raise ClientError(
                504,
                ErrorKind.DEADLINE_EXCEEDED,
                f"no answer within the deadline of {self.settings.deadline:g} s; the "
                "computation was stopped. Lower the algorithm's cost settings or the history "
                "sent, or raise the service's --deadline",
            ) from None
        except (WorkerLostError, BrokenExecutor):
            # A worker died (killed for memory, most likely); it has been replaced.
            logger.exception("a worker died computing a request")
            raise ClientError(
                503, ErrorKind.WORKER_LOST, "the worker computing this request died; retry"
            ) from None

    async def _serve(self, endpoint: str, request: web.Request, job: Job) -> web.Response:
        """Answer a POST: from the cache, by joining an identical computation, or by a worker."""
        started = time.perf_counter()
        algorithm = "unknown"
        try:
            async with self._admitted(request):
                body = await self._read(request)
                cached = self._cached(endpoint, body)
                if cached is not None:
                    algorithm = cached.algorithm
                    return _json_response(cached.body)
                outcome = await self._compute(endpoint, body, job)
            algorithm = outcome.labels.algorithm
            if outcome.labels.trials is not None:
                self.telemetry.observe_trials(endpoint, outcome.labels.trials)
            if outcome.history is not None:
                self.telemetry.history.labels(endpoint=endpoint, result=outcome.history).inc()
            if outcome.history is HistoryResult.NEEDED:
                self.telemetry.error(endpoint, ErrorKind.HISTORY_NEEDED)
                return _json_response(_dump(HistoryNeededReply(error=outcome.error)), status=409)
            if outcome.kind is not None:
                raise ClientError(outcome.status, outcome.kind, outcome.error, outcome.problems)
            return _json_response(outcome.body)
        finally:
            self.telemetry.observe(endpoint, algorithm, time.perf_counter() - started)

    async def _compute(self, endpoint: str, body: bytes, job: Job) -> Outcome:
        """Run ``job`` on a worker, once for identical concurrent bodies; store what may be."""
        if not self.cache.enabled:
            self.telemetry.cache_result(endpoint, CacheResult.BYPASS)
            return await self._run(job, body)
        fingerprint = self.cache.fingerprint(endpoint, body)
        outcome, shared = await self.cache.compute_once(fingerprint, lambda: self._run(job, body))
        if shared:
            self.telemetry.cache_result(endpoint, CacheResult.SHARED)
        elif outcome.kind is None and (experiment := outcome.labels.experiment) is not None:
            labels = outcome.labels
            reply = CachedReply(experiment, outcome.body, labels.algorithm, labels.trials or 0)
            self.cache.put(fingerprint, reply)
            self.telemetry.cache_result(endpoint, CacheResult.MISS)
            self.telemetry.cache_entries.set(len(self.cache))
        else:
            self.telemetry.cache_result(endpoint, CacheResult.BYPASS)
        return outcome

    def _cached(self, endpoint: str, body: bytes) -> CachedReply | None:
        """A stored reply to these exact bytes, skipping even the parse."""
        if not self.cache.enabled:
            return None
        reply = self.cache.get(self.cache.fingerprint(endpoint, body))
        if reply is not None:
            self.telemetry.cache_result(endpoint, CacheResult.HIT)
            self.telemetry.observe_trials(endpoint, reply.trials)
        return reply

    # handlers

    async def suggest(self, request: web.Request) -> web.Response:
        """``POST /v1/suggest``."""
        return await self._serve(SUGGEST, request, handle_suggest)

    async def stop_trials(self, request: web.Request) -> web.Response:
        """``POST /v1/stop``."""
        return await self._serve(STOP, request, handle_stop)

    async def validate(self, request: web.Request) -> web.Response:
        """``POST /v1/validate``: value problems are the answer (200), shape problems 4xx."""
        return await self._serve(VALIDATE, request, handle_validate)

    async def healthz(self, _request: web.Request) -> web.Response:
        """``GET /healthz``: the event loop answers; nothing else is checked."""
        return _json_response(_dump(HealthReply(status="ok")))

    async def readyz(self, _request: web.Request) -> web.Response:
        """``GET /readyz``: 200 when serving, 503 while starting or draining."""
        status = 200 if self.status == "ok" else 503
        return _json_response(_dump(HealthReply(status=self.status)), status=status)

    async def metrics(self, _request: web.Request) -> web.Response:
        """``GET /metrics``: Prometheus text format."""
        response = web.Response(body=self.telemetry.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def openapi(self, _request: web.Request) -> web.Response:
        """``GET /openapi.json``."""
        return _json_response(self.document)

    # the edge

    def _endpoint(self, request: web.Request) -> str:
        resource = request.match_info.route.resource
        return resource.canonical if resource is not None else "other"

    @web.middleware
    async def authenticated(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Let only allowed callers reach the computing endpoints (probes stay open)."""
        if self.authenticator is not None and request.path in GUARDED:
            try:
                await self.authenticator.check(request.headers.get("Authorization"))
            except RefusedError as refused:
                kind = ErrorKind.UNAUTHENTICATED if refused.status == 401 else ErrorKind.FORBIDDEN
                raise ClientError(refused.status, kind, str(refused)) from None
            except ReviewUnavailableError as error:
                raise ClientError(503, ErrorKind.AUTH_UNAVAILABLE, str(error)) from None
        return await handler(request)

    @web.middleware
    async def errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Turn every failure into a JSON error body, and count it by kind."""
        endpoint = self._endpoint(request)
        try:
            return await handler(request)
        except ClientGoneError:
            # Nobody will read an answer; the client's choice, not the service's error.
            logger.debug("client hung up during %s %s", request.method, request.path)
            self.telemetry.error(endpoint, ErrorKind.CLIENT_GONE)
            return _error_response(400, "the client closed the connection mid-upload")
        except ClientError as error:
            self.telemetry.error(endpoint, error.kind)
            headers = {"Retry-After": "1"} if error.status == 503 else None
            return _error_response(error.status, error.error, error.problems, headers)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            kind = {413: ErrorKind.TOO_LARGE}.get(error.status, ErrorKind.NOT_FOUND)
            self.telemetry.error(endpoint, kind)
            headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
            return _error_response(error.status, error.reason, headers=headers)
        except asyncio.CancelledError:
            # A server that cancels handlers when the client hangs up (a test server).
            transport = request.transport
            if transport is None or transport.is_closing():
                self.telemetry.error(endpoint, ErrorKind.CLIENT_GONE)
            raise
        except Exception:
            logger.exception("internal error answering %s %s", request.method, request.path)
            self.telemetry.error(endpoint, ErrorKind.INTERNAL)
            return _error_response(500, "internal error; the service log has the traceback")


SERVICE_KEY = web.AppKey("service", Service)
#: The endpoints that compute, and so only allowed callers may reach.
GUARDED = frozenset({SUGGEST, STOP, VALIDATE})


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    executor: Executor | None = None,
    telemetry: Telemetry | None = None,
    authenticator: Authenticator | None = None,
) -> web.Application:
    """The aiohttp application; ``executor`` overrides the one ``settings`` describes.

    ``authenticator`` guards the computing endpoints. With ``metrics_port`` set,
    ``/metrics`` is not served here: :func:`metrics_app` serves it on its own port.
    """
    settings = settings if settings is not None else Settings()
    service = Service(settings, engine or default_engine(), executor, telemetry, authenticator)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[service.errors, service.authenticated],
    )
    app[SERVICE_KEY] = service
    app.router.add_post(SUGGEST, service.suggest)
    app.router.add_post(STOP, service.stop_trials)
    app.router.add_post(VALIDATE, service.validate)
    app.router.add_get("/healthz", service.healthz, allow_head=False)
    app.router.add_get("/readyz", service.readyz, allow_head=False)
    if not settings.metrics_port:
        app.router.add_get("/metrics", service.metrics, allow_head=False)
    app.router.add_get("/openapi.json", service.openapi, allow_head=False)
    app.on_startup.append(service.start)
    app.on_shutdown.append(service.drain)
    app.on_cleanup.append(service.stop)
    return app


def metrics_app(app: web.Application) -> web.Application:
    """``/metrics`` of the service ``app`` serves, as an application of its own."""
    metrics = web.Application()
    metrics.router.add_get("/metrics", app[SERVICE_KEY].metrics, allow_head=False)
    return metrics


METRICS_RUNNER = web.AppKey("metrics_runner", web.AppRunner)


def serve_metrics_beside(app: web.Application, host: str, port: int) -> None:
    """Start ``/metrics`` on ``host:port`` with ``app``, and stop it with ``app``."""

    async def start(_app: web.Application) -> None:
        runner = web.AppRunner(metrics_app(app), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        app[METRICS_RUNNER] = runner

    async def stop(_app: web.Application) -> None:
        if METRICS_RUNNER in app:
            await app[METRICS_RUNNER].cleanup()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


# --- the command -----------------------------------------------------------------------


def _env(name: str, default: str) -> str:
    return os.environ.get(f"KUBESWEEP_SUGGESTION_{name}", default)


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Settings from flags, each defaulting to its ``KUBESWEEP_SUGGESTION_*`` variable."""
    d = Settings()
    parser = argparse.ArgumentParser(
        prog="kubesweep-suggestion", description="The kubesweep suggestion service."
    )
    parser.add_argument("--host", default=_env("HOST", d.host), help="address to listen on")
    parser.add_argument("--port", type=int, default=_env_int("PORT", d.port))
    parser.add_argument(
        "--workers",
        type=int,
        default=_env_int("WORKERS", d.workers),
        help="algorithm computations run in parallel",
    )
    parser.add_argument(
        "--executor", choices=["process", "thread"], default=_env("EXECUTOR", d.executor)
    )
    parser.add_argument(
        "--cache-entries",
        type=int,
        default=_env_int("CACHE_ENTRIES", d.cache_entries),
        help="replies kept for repeat requests; 0 disables the cache",
    )
    parser.add_argument("--cache-bytes", type=int, default=_env_int("CACHE_BYTES", d.cache_bytes))
    parser.add_argument(
        "--history-experiments",
        type=int,
        default=_env_int("HISTORY_EXPERIMENTS", d.history_experiments),
        help="experiments whose history each worker holds, so that a request may carry only "
        "the trials changed since (historyBase); 0 holds none",
    )
    parser.add_argument(
        "--history-bytes",
        type=int,
        default=_env_int("HISTORY_BYTES", d.history_bytes),
        help="JSON bytes of the bodies the held histories of each worker were built from; "
        "the least recently used experiment's is dropped beyond it",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=_env_int("MAX_BODY_BYTES", d.max_body_bytes),
        help="larger request bodies are refused with 413",
    )
    parser.add_argument(
        "--max-bytes-in-flight",
        type=int,
        default=_env_int("MAX_BYTES_IN_FLIGHT", d.max_bytes_in_flight),
        help="bytes of request bodies held at once (declared, or the size limit if "
        "undeclared); more are refused with 503 before they are read",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=float(_env("BODY_TIMEOUT", str(d.body_timeout))),
        help="seconds for a body to arrive in full before 408",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=float(_env("DEADLINE", str(d.deadline))),
        help="seconds from a body's arrival to its answer; past it the worker is replaced "
        "and the client gets 504",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=_env_int("MAX_QUEUE", d.max_queue),
        help="computations waiting for a worker before 503",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=_env_int("METRICS_PORT", d.metrics_port),
        help="port of /metrics, apart from the API's; 0 serves it on --port",
    )
    parser.add_argument(
        "--allowed-callers",
        default=_env("ALLOWED_CALLERS", ",".join(d.allowed_callers)),
        help="comma-separated NAMESPACE/SERVICEACCOUNT whose projected tokens may ask for "
        "suggestions (checked with TokenReview); empty: anyone who reaches the port may",
    )
    parser.add_argument(
        "--token-audience",
        default=_env("TOKEN_AUDIENCE", d.token_audience),
        help="the audience the callers' tokens must be bound to",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        default=_env("LOG_LEVEL", d.log_level).upper(),
    )
    args = parser.parse_args(argv)
    sizes = (args.max_queue, args.cache_entries, args.cache_bytes)
    if args.workers < 1 or min(sizes) < 0 or min(args.history_experiments, args.history_bytes) < 0:
        parser.error("--workers must be at least 1; queue, cache and history sizes non-negative")
    if args.max_bytes_in_flight < args.max_body_bytes:
        parser.error("--max-bytes-in-flight must hold at least one body of --max-body-bytes")
    if not (args.deadline > 0 and args.body_timeout > 0):
        parser.error("--deadline and --body-timeout must be positive")
    try:
        callers = tuple(sorted(parse_allowed(args.allowed_callers.split(","))))
    except ValueError as error:
        parser.error(f"--allowed-callers: {error}")
    if args.metrics_port and args.metrics_port == args.port:
        parser.error("--metrics-port must differ from --port (0 serves /metrics on --port)")
    return Settings(
        host=args.host,
        port=args.port,
        workers=args.workers,
        executor=args.executor,
        cache_entries=args.cache_entries,
        cache_bytes=args.cache_bytes,
        history_experiments=args.history_experiments,
        history_bytes=args.history_bytes,
        max_body_bytes=args.max_body_bytes,
        max_bytes_in_flight=args.max_bytes_in_flight,
        max_queue=args.max_queue,
        body_timeout=args.body_timeout,
        deadline=args.deadline,
        metrics_port=args.metrics_port,
        allowed_callers=callers,
        token_audience=args.token_audience,
        log_level=args.log_level,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """The ``kubesweep-suggestion`` command: configure logging, serve until SIGTERM."""
    settings = parse_settings(argv)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logger.info(
        "serving on %s:%d with %d %s workers",
        settings.host,
        settings.port,
        settings.workers,
        settings.executor,
    )
    authenticator = None
    if settings.allowed_callers:
        authenticator = Authenticator(
            kubernetes_reviewer(),
            frozenset(settings.allowed_callers),
            audience=settings.token_audience,
        )
        logger.info("only %s may ask for suggestions", ", ".join(settings.allowed_callers))
    else:
        logger.warning(
            "no --allowed-callers: anyone who reaches port %d may ask for suggestions",
            settings.port,
        )
    app = create_app(settings, authenticator=authenticator)
    if settings.metrics_port:
        serve_metrics_beside(app, settings.host, settings.metrics_port)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        # Probes would fill an INFO access log; it appears at DEBUG.
        access_log=logger if settings.log_level == "DEBUG" else None,
        print=None,
    )


if __name__ == "__main__":
    main()
