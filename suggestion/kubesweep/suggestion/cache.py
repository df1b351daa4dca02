"""An optional, bounded cache of replies, grouped per experiment.

Why a reply cache is safe: every algorithm is a pure function of the request
(space, direction, algorithm and seed, observed trials, count); randomness is
seeded from the seed and the history length. So a request whose bytes are
identical to one already answered has, provably, the same answer, and the stored
reply can be sent again. The key is therefore a SHA-256 fingerprint of the
endpoint and the *whole* request body, not only of the history: ``count`` or a
setting changes the answer too. A request that differs in any byte (a new trial,
a reordered key) is simply a miss, never a wrong answer.

Why it pays: the operator is level-based and retries. A reconcile pass that
failed after asking for suggestions (a conflict creating the Trial, a timeout
reading the reply) asks again with the same history, and a client that timed out
on a slow Bayesian fit asks again while the first computation is still running.
The first case is served from the store; the second joins the computation in
flight (*single flight*) instead of starting a second one on a busy worker.

Why per experiment: replies are filed under the experiment's UID and only
requests that carry one are cached, so a client without a UID never fills the
cache with one-off entries. Histories only grow, so an experiment's old replies
are unlikely to recur: each experiment keeps its few most recent ones, and the
least recently used experiment loses its entries first when the cache is full
(by entry count or by bytes).

Clients cannot tell whether the cache exists: any replica, with or without it,
answers every request from the request alone.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

#: Replies kept per experiment; histories grow, so older ones rarely recur.
DEFAULT_PER_EXPERIMENT = 4


@dataclass(frozen=True)
class CachedReply:
    """A serialized reply and what the metrics need to know about its request."""

    experiment: str
    body: bytes
    algorithm: str
    trials: int


class ReplyCache:
    """A bounded LRU of serialized replies, filed per experiment, with single flight.

    All methods run on the event loop's thread; no locking is needed.
    """

    def __init__(
        self,
        max_entries: int,
        max_bytes: int = 64 * 1024 * 1024,
        per_experiment: int = DEFAULT_PER_EXPERIMENT,
    ) -> None:
        if max_entries < 0 or max_bytes < 0 or per_experiment < 1:
            raise ValueError("cache bounds must be non-negative (per_experiment at least 1)")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.per_experiment = per_experiment
        # experiment UID -> (fingerprint -> reply); both levels ordered oldest first.
        self._experiments: OrderedDict[str, OrderedDict[str, CachedReply]] = OrderedDict()
        self._index: dict[str, str] = {}  # fingerprint -> experiment UID
        self._bytes = 0
        self._in_flight: dict[str, asyncio.Future[Any]] = {}

    @property
    def enabled(self) -> bool:
        """Whether replies are stored at all."""
        return self.max_entries > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._index)

    @property
    def size_bytes(self) -> int:
        """Bytes of reply bodies held."""
        return self._bytes

    @staticmethod
    def fingerprint(endpoint: str, body: bytes) -> str:
        """The key of a request: its endpoint and every byte of its body."""
        digest = hashlib.sha256(endpoint.encode())
        digest.update(b"\0")
        digest.update(body)
        return digest.hexdigest()

    def get(self, fingerprint: str) -> CachedReply | None:
        """The stored reply for this fingerprint, marking it recently used."""
        experiment = self._index.get(fingerprint)
        if experiment is None:
            return None
        replies = self._experiments[experiment]
        self._experiments.move_to_end(experiment)
        replies.move_to_end(fingerprint)
        return replies[fingerprint]

    def put(self, fingerprint: str, reply: CachedReply) -> None:
        """Store a reply, evicting old ones to stay within the bounds."""
        if not self.enabled or len(reply.body) > self.max_bytes:
            return
        if fingerprint in self._index:
            self._remove(self._index[fingerprint], fingerprint)
        replies = self._experiments.setdefault(reply.experiment, OrderedDict())
        self._experiments.move_to_end(reply.experiment)
        replies[fingerprint] = reply
        self._index[fingerprint] = reply.experiment
        self._bytes += len(reply.body)
        while len(replies) > self.per_experiment:
            self._remove(reply.experiment, next(iter(replies)))
        while len(self._index) > self.max_entries or self._bytes > self.max_bytes:
            oldest_experiment, oldest_replies = next(iter(self._experiments.items()))
            self._remove(oldest_experiment, next(iter(oldest_replies)))

    def _remove(self, experiment: str, fingerprint: str) -> None:
        replies = self._experiments[experiment]
        reply = replies.pop(fingerprint)
        del self._index[fingerprint]
        self._bytes -= len(reply.body)
        if not replies:
            del self._experiments[experiment]

    async def compute_once(
        self, fingerprint: str, compute: Callable[[], Awaitable[T]]
    ) -> tuple[T, bool]:
        """Compute, or join the identical computation already running (single flight).

        Returns the result and whether it was shared with a computation started
        by another request. Storing the result is the caller's decision (only
        successful replies of requests with an experiment UID are stored); a
        failure reaches every waiter.
        """
        running = self._in_flight.get(fingerprint)
        if running is not None:
            # Shielded: one waiter giving up (client disconnect) must not cancel the
            # computation the others wait for.
            result: T = await asyncio.shield(running)
            return result, True
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._in_flight[fingerprint] = future
        try:
            result = await compute()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._in_flight[fingerprint]
        future.set_result(result)
        return result, False
