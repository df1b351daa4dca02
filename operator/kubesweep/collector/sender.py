"""Pushing batches to the operator's intake: in the background, with retries.

A sender thread takes observations from a bounded outbox and POSTs them in
batches (:mod:`kubesweep.metrics.wire`). A batch keeps its ``seq`` across
retries so the intake can recognise a repeat. Failures are classified once:

* connection errors, timeouts, 429 and 5xx are temporary: retried with
  exponential backoff and jitter, as long as the collector runs;
* 401 and 403 mean the token is refused. The intake answers 403 for a trial it
  has not indexed yet too (it tells nobody which trials exist), so a refusal is
  retried like an outage for ``REFUSAL_PATIENCE`` seconds; refused that long, the
  sender stops and the termination message is all the operator will get;
* any other 4xx means this batch is unacceptable: it is dropped, sending goes on.

If the intake stays away, the outbox keeps the newest observations up to its
bound and counts what it discards; the summary in the termination message is
computed from everything regardless.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from urllib.parse import quote

from kubesweep.metrics.observation import Observation
from kubesweep.metrics.tokens import TOKEN_HEADER, authorization
from kubesweep.metrics.wire import MAX_BATCH_OBSERVATIONS, Batch, Summary

logger = logging.getLogger(__name__)

#: Observations held while the intake is unreachable.
MAX_PENDING = 100_000
BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
#: How long refusals of the token are retried before the sender gives up.
REFUSAL_PATIENCE = 60.0


class PermanentError(Exception):
    """The intake refuses this collector for good (its token)."""


class RejectedError(Exception):
    """The intake refuses one batch."""


def post(url: str, body: bytes, token: str | None, timeout: float) -> None:
    """POST one batch; raises :class:`PermanentError`, :class:`RejectedError` or ``OSError``."""
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header(TOKEN_HEADER, authorization(token))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise PermanentError(f"intake refused the token: HTTP {error.code}") from None
        if error.code == 429 or error.code >= 500:
            raise OSError(f"intake unavailable: HTTP {error.code}") from None
        raise RejectedError(f"intake rejected a batch: HTTP {error.code}") from None


class Sender:
    """The background sender; :meth:`submit` never blocks, :meth:`close` flushes."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        trial: str,
        namespace: str,
        uid: str,
        boot: str,
        flush_seconds: float = 2.0,
        timeout: float = 5.0,
        max_pending: int = MAX_PENDING,
        refusal_patience: float = REFUSAL_PATIENCE,
        send: Callable[[str, bytes, str | None, float], None] = post,
    ) -> None:
        self._refusal_patience = refusal_patience
        # The intake authenticates on the trial its path names, before reading the body.
        self._url = f"{url.rstrip('/')}/{quote(namespace, safe='')}/{quote(trial, safe='')}"
        self._token = token
        self._identity = (trial, namespace, uid, boot)
        self._flush_seconds = flush_seconds
        self._timeout = timeout
        self._send = send
        self._pending: deque[Observation] = deque(maxlen=max_pending)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._final: Summary | None = None
        self._dropped = 0
        self._seq = 0
        self.discarded = 0
        self.sent = 0
        self.refused = False
        self.final_sent = False
        self._thread = threading.Thread(target=self._run, name="intake", daemon=True)

    def start(self) -> None:
        """Start the sender thread."""
        self._thread.start()

    def submit(self, observations: Iterable[Observation], dropped: int = 0) -> None:
        """Queue observations; the oldest are discarded if the outbox is full."""
        with self._lock:
            for observation in observations:
                if len(self._pending) == self._pending.maxlen:
                    self.discarded += 1
                self._pending.append(observation)
            self._dropped += dropped
            if len(self._pending) >= MAX_BATCH_OBSERVATIONS:
                self._wake.set()

    def close(self, summary: Summary, timeout: float) -> bool:
        """Send what is pending and a final batch with ``summary``, within ``timeout`` seconds.

        Returns whether the final batch was delivered.
        """
        self._final = summary
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return self.final_sent

    def _next_batch(self) -> Batch | None:
        with self._lock:
            count = min(len(self._pending), MAX_BATCH_OBSERVATIONS)
            closing = self._closing.is_set()
            if count == 0 and not closing:
                return None
            observations = tuple(self._pending.popleft() for _ in range(count))
            final = closing and not self._pending
            dropped, self._dropped = self._dropped, 0
        trial, namespace, uid, boot = self._identity
        self._seq += 1
        return Batch(
            trial=trial,
            namespace=namespace,
            uid=uid,
            observations=observations,
            final=final,
            seq=self._seq,
            boot=boot,
            dropped=dropped,
            summary=self._final if final else None,
        )

    def _deliver(self, batch: Batch) -> bool:
        """Send ``batch`` until it lands, is rejected, or time is up; ``False`` to stop."""
        body = batch.to_json()
        attempt = 0
        refused_since: float | None = None
        while True:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self._send(self._url, body, self._token, min(self._timeout, remaining))
            except PermanentError as error:
                refused_since = refused_since or time.monotonic()
                if time.monotonic() - refused_since >= self._refusal_patience:
                    logger.error("%s; metrics now reach the operator only via the summary", error)
                    self.refused = True
                    return False
                delay = min(BACKOFF_MAX, BACKOFF_MIN * 2**attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                logger.info("%s; retrying in %.1fs", error, delay)
                self._wait(delay)
                continue
            except RejectedError as error:
                logger.warning("%s (%d observations dropped)", error, len(batch.observations))
                return True
            except OSError as error:
                delay = min(BACKOFF_MAX, BACKOFF_MIN * 2**attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                logger.info("intake push failed (%s); retrying in %.1fs", error, delay)
                if self._closing.is_set():
                    delay = min(delay, max(0.0, self._deadline - time.monotonic()))
                self._wait(delay)
                continue
            self.sent += len(batch.observations)
            if batch.final:
                self.final_sent = True
            return True

    def _wait(self, seconds: float) -> None:
        if self._closing.is_set():
            time.sleep(max(0.0, min(seconds, self._deadline - time.monotonic())))
        else:
            self._closing.wait(seconds)

    def _run(self) -> None:
        while True:
            if not self._closing.is_set():
                self._wake.wait(self._flush_seconds)
                self._wake.clear()
            batch = self._next_batch()
            if batch is None:
                continue
            if not self._deliver(batch):
                return
            if batch.final:
                return
