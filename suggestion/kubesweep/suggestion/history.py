"""Histories held per experiment, so that an ask costs what is new, not what is old.

Why: at 100,000 observed trials a request carrying the whole history is about
57 MB of JSON, and parsing it costs more than any algorithm's answer. The
operator's trials change little between two asks (a few finish, a few start), so
a request may instead name the history it builds on (``historyBase``, the token
of an earlier reply) and carry only the trials that are new or changed since.

What a replica holds: per experiment UID, the history it last computed from, in
order, by trial name, and that history's token. A token is a digest chain: the
SHA-256 of the experiment UID, the base token and the body that moved the
history on, so it names one exact sequence of bodies, and a stale or foreign
base can never match by accident.

Applying changes: a trial whose name the history holds replaces it in place (a
pending trial that finished, a curve that grew); a new name follows the others.
Nothing is ever removed by a change; a client whose history lost a trial sends
the whole history instead.

A miss is never a wrong answer: a replica that does not hold the base (it
restarted, evicted it, or another replica served the experiment before) raises
:class:`HistoryNeededError`, which the service answers with 409, and the client
sends the whole history once. So the service stays freely restartable and
scalable: the held histories only save work.

Bounded memory: the store keeps at most ``max_experiments`` histories and an
estimate of at most ``max_bytes`` of them, both per process (each worker
process of the service holds its own store), evicting the least recently used
experiment first. The estimate is the JSON size of the bodies that built each
history, which is what the client sends; the parsed trials take a few times
more (docs/suggestion-service.md gives the measured ratio).

The algorithms are untouched: they receive the whole history, as from a full
request, and stay pure functions of it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from kubesweep.api.suggestion_wire import ObservedTrial

#: Histories held per process by default, and the JSON bytes they may be built from.
DEFAULT_MAX_EXPERIMENTS = 64
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class HistoryNeededError(Exception):
    """The request builds on a history this process does not hold."""


@dataclass
class _Held:
    """One experiment's history, by trial name in order, and its token."""

    token: str
    trials: dict[str, ObservedTrial]
    size: int


@dataclass(frozen=True)
class Resolved:
    """The whole history a request stands for, and the token to answer with (if held)."""

    trials: list[ObservedTrial]
    token: str | None


def chain(experiment: str, base: str | None, body: bytes) -> str:
    """The token of the history ``body`` makes from ``base`` (None: from nothing)."""
    digest = hashlib.sha256(experiment.encode())
    digest.update(b"\0")
    digest.update((base or "").encode())
    digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


@dataclass
class HistoryStore:
    """Per-experiment histories, LRU-bounded by count and estimated JSON bytes."""

    max_experiments: int = DEFAULT_MAX_EXPERIMENTS
    max_bytes: int = DEFAULT_MAX_BYTES
    _held: OrderedDict[str, _Held] = field(default_factory=OrderedDict)
    _size: int = 0
    # Worker threads (the thread executor) share one store; processes have one each.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def enabled(self) -> bool:
        """Whether histories are held at all."""
        return self.max_experiments > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._held)

    @property
    def size_bytes(self) -> int:
        """The estimated JSON bytes of the held histories."""
        return self._size

    def token(self, experiment: str) -> str | None:
        """The token of the history held for ``experiment``, if any."""
        held = self._held.get(experiment)
        return held.token if held is not None else None

    def resolve(
        self,
        experiment: str | None,
        base: str | None,
        trials: Sequence[ObservedTrial],
        body: bytes,
    ) -> Resolved:
        """The whole history of a request, holding it for the next one when it can.

        ``trials`` is the whole history without ``base``, else the changes since
        ``base``. Raises :class:`HistoryNeededError` when ``base`` is not the
        history held for ``experiment``.
        """
        with self._lock:
            if base is None:
                return self._replace(experiment, trials, body)
            held = self._held.get(experiment) if experiment is not None else None
            if experiment is None or held is None or held.token != base:
                raise HistoryNeededError(
                    f"this replica does not hold history {base[:12]} of experiment "
                    f"{experiment}; send the whole history"
                )
            return self._apply(experiment, held, trials, body)

    def _replace(
        self, experiment: str | None, trials: Sequence[ObservedTrial], body: bytes
    ) -> Resolved:
        whole = list(trials)
        if experiment is None or not self.enabled:
            return Resolved(whole, None)
        self._drop(experiment)
        by_name = {trial.name: trial for trial in whole}
        if len(by_name) != len(whole) or len(body) > self.max_bytes:
            # Repeated names cannot be changed by name; too large a history is not held.
            return Resolved(whole, None)
        held = _Held(chain(experiment, None, body), by_name, len(body))
        self._hold(experiment, held)
        return Resolved(whole, held.token)

    def _apply(
        self, experiment: str, held: _Held, changes: Sequence[ObservedTrial], body: bytes
    ) -> Resolved:
        fresh = 0
        for trial in changes:
            fresh += trial.name not in held.trials
            held.trials[trial.name] = trial
        # A replaced trial is counted at its old size; a new one at its share of the body.
        growth = len(body) * fresh // max(1, len(changes))
        self._drop(experiment)
        held = _Held(chain(experiment, held.token, body), held.trials, held.size + growth)
        whole = list(held.trials.values())
        if held.size > self.max_bytes:
            return Resolved(whole, None)
        self._hold(experiment, held)
        return Resolved(whole, held.token)

    def _hold(self, experiment: str, held: _Held) -> None:
        self._held[experiment] = held
        self._size += held.size
        while len(self._held) > self.max_experiments or self._size > self.max_bytes:
            oldest = next(iter(self._held))
            self._drop(oldest)

    def _drop(self, experiment: str) -> None:
        held = self._held.pop(experiment, None)
        if held is not None:
            self._size -= held.size


__all__ = ["HistoryNeededError", "HistoryStore", "Resolved", "chain"]
