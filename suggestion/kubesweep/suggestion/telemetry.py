"""Prometheus metrics of the suggestion service.

The questions an operator of the service asks are: is a suggestion call getting
slow as experiments grow (Katib's Bayesian service times out after a few hundred
trials; ours must not), which algorithm is the slow one, how big are the requests,
and are clients sending requests we refuse. Hence latency by endpoint and
algorithm, request size in observed trials, errors by kind, and the cache's hit
rate, which says whether repeat calls (operator retries) are served cheaply.

Every metric lives in a :class:`~prometheus_client.CollectorRegistry` owned by one
:class:`Telemetry` object rather than in the process-wide default registry, so that
several apps (tests, or a second listener) never collide over metric names.
Label values are drawn from closed sets (endpoint paths, algorithm names, error
kinds), which keeps the series count bounded whatever clients send.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Seconds; from a cached reply (sub-millisecond) up to a Bayesian fit on a large history.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
#: Observed trials per request; the design targets 100,000-trial experiments.
TRIALS_BUCKETS = (0, 10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000)

#: The metrics' exposition content type, for the ``/metrics`` handler.
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ErrorKind(StrEnum):
    """Why a request was not answered with a success; the ``kind`` label of errors."""

    BAD_JSON = "bad_json"  # the body is not JSON, or not an object
    INVALID_REQUEST = "invalid_request"  # wrong types, unknown or missing fields
    INVALID_SETTINGS = "invalid_settings"  # the algorithm refused its settings or space
    TOO_LARGE = "too_large"  # body over the size limit
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # a Content-Type other than JSON
    SLOW_UPLOAD = "slow_upload"  # the body did not arrive in time
    CLIENT_GONE = "client_gone"  # the client closed the connection mid-upload
    NOT_FOUND = "not_found"  # unknown path or method
    UNAUTHENTICATED = "unauthenticated"  # no bearer token
    FORBIDDEN = "forbidden"  # a token of a caller that may not ask, or for another audience
    AUTH_UNAVAILABLE = "auth_unavailable"  # the API server could not review the token
    OVERLOADED = "overloaded"  # too many requests, or body bytes, in flight
    DEADLINE_EXCEEDED = "deadline_exceeded"  # no answer by the deadline; worker replaced
    WORKER_LOST = "worker_lost"  # a worker process died computing the request
    INTERNAL = "internal"  # a bug: logged with its traceback
    HISTORY_NEEDED = "history_needed"  # a historyBase this worker does not hold (409)


class CacheResult(StrEnum):
    """How the reply cache served a request."""

    HIT = "hit"  # answered from a stored reply
    SHARED = "shared"  # joined an identical request already being computed
    MISS = "miss"  # computed
    BYPASS = "bypass"  # not cacheable (no experiment UID) or cache disabled


class HistoryResult(StrEnum):
    """How a suggest or stop request's history reached the algorithm."""

    WHOLE = "whole"  # the request carried the whole history
    CHANGES = "changes"  # the changes since a held history (historyBase)
    NEEDED = "needed"  # a historyBase the worker did not hold: answered 409


class Telemetry:
    """The service's metrics, registered in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.latency = Histogram(
            "kubesweep_suggestion_request_duration_seconds",
            "Time to answer a request, by endpoint and algorithm (or stopping rule).",
            ["endpoint", "algorithm"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.trials = Histogram(
            "kubesweep_suggestion_request_trials",
            "Observed trials carried by a request, by endpoint.",
            ["endpoint"],
            buckets=TRIALS_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "kubesweep_suggestion_errors",
            "Requests not answered with success, by endpoint and kind.",
            ["endpoint", "kind"],
            registry=self.registry,
        )
        self.cache = Counter(
            "kubesweep_suggestion_cache_requests",
            "How the reply cache served suggest and stop requests.",
            ["endpoint", "result"],
            registry=self.registry,
        )
        self.history = Counter(
            "kubesweep_suggestion_history_requests",
            "How suggest and stop requests carried their history: whole, as changes since "
            "a held history, or naming a history the worker did not hold (409).",
            ["endpoint", "result"],
            registry=self.registry,
        )
        self.cache_entries = Gauge(
            "kubesweep_suggestion_cache_entries",
            "Replies held in the cache.",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "kubesweep_suggestion_in_flight",
            "Requests admitted and not yet answered: receiving, queued or computing.",
            registry=self.registry,
        )
        self.body_bytes = Gauge(
            "kubesweep_suggestion_body_bytes_in_flight",
            "Bytes reserved for the bodies of admitted requests (declared or maximum size).",
            registry=self.registry,
        )
        self.workers_replaced = Counter(
            "kubesweep_suggestion_workers_replaced",
            "Worker processes killed past the deadline, or found dead, and replaced.",
            registry=self.registry,
        )

    def observe(self, endpoint: str, algorithm: str, seconds: float) -> None:
        """Record one answered request's latency."""
        self.latency.labels(endpoint=endpoint, algorithm=algorithm).observe(seconds)

    def observe_trials(self, endpoint: str, count: int) -> None:
        """Record the size of one request in observed trials."""
        self.trials.labels(endpoint=endpoint).observe(count)

    def error(self, endpoint: str, kind: ErrorKind) -> None:
        """Count one refused or failed request."""
        self.errors.labels(endpoint=endpoint, kind=kind.value).inc()

    def cache_result(self, endpoint: str, result: CacheResult) -> None:
        """Count how the cache served one request."""
        self.cache.labels(endpoint=endpoint, result=result.value).inc()

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return bytes(generate_latest(self.registry))
