"""The metrics intake: collector batches in, coalesced Trial status patches out.

A batch is POSTed to ``/v1/metrics/<namespace>/<trial>`` with its trial's
token (an HMAC of the trial UID, see :mod:`kubesweep.metrics.tokens`; a
previous key is accepted while keys rotate). The token is checked against the
trial the path names before the body is read, and the body must name the same
trial and UID, so a pod can only ever report for itself and an unauthenticated
caller costs no parsing. Observations are merged into per-trial
accumulators (stats per metric, the objective's curve, downsampled to a fixed
bound) and written to the Trial's status at most once per ``flush_seconds``
per trial, however fast pods push: the API server sees a bounded write rate.
Retried batches are recognised by ``(boot, seq)`` and applied once; what a
trial may hold (metrics, curve points, boots remembered) is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kubesweep.api import Objective
from kubesweep.api.status import MAX_CURVE_POINTS, MAX_TRIAL_METRICS
from kubesweep.metrics.models import curve_points, metric_stats, metric_summaries
from kubesweep.metrics.observation import Observation
from kubesweep.metrics.reduce import MetricStats, Point, best_for, downsample
from kubesweep.metrics.tokens import TOKEN_HEADER, token_from_authorization, verify_token_any
from kubesweep.metrics.wire import MAX_BATCH_BYTES, Batch, Summary, WireError, decode_batch
from kubesweep.operator.directory import Directory, TrialEntry
from kubesweep.operator.monitoring import OperatorMetrics
from kubesweep.planning import TrialMetrics

logger = logging.getLogger(__name__)

#: ``patch(namespace, trial, status_patch)`` writes a Trial's status.
StatusPatcher = Callable[[str, str, dict[str, Any]], Awaitable[None]]
#: Batches are POSTed to ``<prefix>/<namespace>/<trial>``.
INTAKE_PREFIXES = ("/v1/metrics", "")
#: Collector boots remembered per trial for recognising replays; older ones are forgotten.
MAX_BOOTS_PER_TRIAL = 8


@dataclass
class Accumulator:
    """A trial's metrics merged so far, and when they were last written.

    The curve maps each step to its newest value, so replays and a trainer that
    reports a step again never leave duplicate steps. ``summarized`` says the
    collector's summary was taken: from then on the metrics are its complete
    account, and later batches (replays of what it already counted) change nothing.
    """

    stats: dict[str, MetricStats] = field(default_factory=dict)
    curve: dict[int, float] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)  # boot -> last applied seq
    summarized: bool = False
    dirty: bool = False
    flushed_at: float = float("-inf")
    hold_until: float = float("-inf")  # after the final batch: leave the write to the pass

    @staticmethod
    def from_entry(entry: TrialEntry) -> Accumulator:
        """Continue from what the trial's status already holds."""
        return Accumulator(
            stats={m.name: metric_stats(m) for m in entry.metrics},
            curve={p.step: p.value for p in entry.curve},
        )

    def add(self, observations: Iterable[Observation], objective: Objective | None) -> int:
        """Merge observations in order; returns how many were taken."""
        if self.summarized:
            return 0
        taken = 0
        for obs in observations:
            current = self.stats.get(obs.name)
            if current is None:
                if len(self.stats) >= MAX_TRIAL_METRICS and (
                    objective is None or obs.name != objective.metric
                ):
                    continue
                current = MetricStats.first(obs)
            else:
                current = current.add(obs)
            self.stats[obs.name] = current
            if objective is not None and obs.name == objective.metric:
                step = current.count - 1 if obs.step is None else obs.step
                self.curve.pop(step, None)  # the newest value of a step is the one kept
                self.curve[step] = obs.value
            taken += 1
        if len(self.curve) > 2 * MAX_CURVE_POINTS:
            self._shrink(objective)
        self.dirty = self.dirty or taken > 0
        return taken

    def take_summary(self, summary: Summary) -> None:
        """Adopt the collector's whole-run summary: its figures are the complete account.

        Pushed batches may have been lost (an operator restart between receipt and
        write) or applied twice (a replay after a restart); the summary counted each
        observation once. Its stats replace ours for every metric it names; metrics
        it had to leave out (a termination message is small) keep what was pushed.
        Its curve points are merged in by step.
        """
        for stats in summary.metrics:
            self.stats[stats.name] = stats
        for step, value in summary.curve:
            self.curve.pop(step, None)
            self.curve[step] = value
        self.summarized = True
        self.dirty = True

    def _points(self, objective: Objective | None) -> list[Point]:
        points = sorted(self.curve.items())
        if len(points) <= MAX_CURVE_POINTS:
            return points
        best = best_for(objective.strategy_for(objective.metric).value) if objective else None
        return downsample(points, MAX_CURVE_POINTS, best)

    def _shrink(self, objective: Objective | None) -> None:
        self.curve = dict(self._points(objective))

    def metrics(self, objective: Objective | None) -> TrialMetrics:
        """The trial's metrics as status holds them."""
        if len(self.curve) > MAX_CURVE_POINTS:
            self._shrink(objective)
        ordered = dict(self.stats)
        if objective is not None and objective.metric in ordered:
            ordered = {objective.metric: ordered[objective.metric], **ordered}
        value = None
        if objective is not None and objective.metric in self.stats:
            strategy = objective.strategy_for(objective.metric).value
            value = self.stats[objective.metric].value(strategy)
        return TrialMetrics(
            objective=value,
            metrics=tuple(metric_summaries(ordered)),
            curve=tuple(curve_points(sorted(self.curve.items()))),
            complete=self.summarized,
        )


def status_patch(metrics: TrialMetrics) -> dict[str, Any]:
    """The Trial status merge patch carrying ``metrics``."""
    patch: dict[str, Any] = {
        "metrics": [m.to_wire() for m in metrics.metrics],
        "curve": [p.to_wire() for p in metrics.curve],
    }
    if metrics.objective is not None:
        patch["objective"] = metrics.objective
    return patch


class Intake:
    """Receives batches, verifies tokens, coalesces and flushes status patches."""

    def __init__(
        self,
        directory: Directory,
        key: bytes,
        patch: StatusPatcher,
        *,
        previous_keys: Sequence[bytes] = (),
        flush_seconds: float = 2.0,
        metrics: OperatorMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.key = key
        #: Tokens under the current key, or under a previous one while keys rotate.
        self.keys = (key, *previous_keys)
        self.patch = patch
        self.flush_seconds = flush_seconds
        self.metrics = metrics
        self.clock = clock
        self.accumulators: dict[tuple[str, str], Accumulator] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None

    # -- HTTP ---------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application serving the intake."""
        app = web.Application(client_max_size=MAX_BATCH_BYTES)
        for prefix in INTAKE_PREFIXES:
            app.router.add_post(prefix + "/{namespace}/{trial}", self.handle)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        del request
        return web.Response(text="ok")

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.intake_batches.labels(outcome).inc()

    def _refuse(self, outcome: str, status: int, message: str) -> web.Response:
        self._count(outcome)
        return web.json_response({"error": message}, status=status)

    async def handle(self, request: web.Request) -> web.Response:
        """``POST`` one batch to ``…/{namespace}/{trial}``.

        The caller is authenticated before a byte of the body is read: the path
        names the trial, the token must be that trial's. A trial that does not
        exist (or is not indexed yet) gets the same 403 as a forged token, so
        nobody learns which trial names exist.
        """
        namespace, trial = request.match_info["namespace"], request.match_info["trial"]
        token = token_from_authorization(request.headers.get(TOKEN_HEADER))
        if token is None:
            return self._refuse("unauthorized", 401, "missing bearer token")
        entry = self.directory.trial(namespace, trial)
        if entry is None or not verify_token_any(self.keys, entry.uid, token):
            return self._refuse("forbidden", 403, "the token does not belong to this trial")
        if request.content_type != "application/json":
            return self._refuse("invalid", 415, "Content-Type must be application/json")
        if (request.content_length or 0) > MAX_BATCH_BYTES:
            return self._refuse("invalid", 413, f"a batch is at most {MAX_BATCH_BYTES} bytes")
        try:
            batch = decode_batch(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return self._refuse("invalid", 413, f"a batch is at most {MAX_BATCH_BYTES} bytes")
        except WireError as error:
            return self._refuse("invalid", 400, str(error))
        if (batch.namespace, batch.trial, batch.uid) != (namespace, trial, entry.uid):
            return self._refuse("forbidden", 403, "the batch names another trial than its path")
        applied = await self.accept(batch, entry)
        self._count("accepted" if applied else "duplicate")
        return web.json_response({"applied": applied})

    # -- merging and flushing ------------------------------------------------

    async def accept(self, batch: Batch, entry: TrialEntry) -> bool:
        """Merge an authenticated batch; ``False`` if it was a repeat or came too late.

        A finished trial's metrics are final: a batch that arrives after them (a
        replay, a collector that outlived its Job) changes nothing.
        """
        if entry.finished:
            return False
        key = (batch.namespace, batch.trial)
        objective = self.directory.objective(batch.namespace, entry.experiment)
        acc = self.accumulators.get(key)
        if acc is None:
            acc = self.accumulators[key] = Accumulator.from_entry(entry)
        last = acc.seen.pop(batch.boot, None)
        if last is not None and batch.seq <= last:
            acc.seen[batch.boot] = last
            return False
        acc.seen[batch.boot] = batch.seq  # newest last: the oldest boot is forgotten first
        while len(acc.seen) > MAX_BOOTS_PER_TRIAL:
            del acc.seen[next(iter(acc.seen))]
        taken = acc.add(batch.observations, objective)
        if self.metrics is not None:
            self.metrics.intake_points.inc(taken)
        if batch.summary is not None:
            acc.take_summary(batch.summary)
        if batch.final:
            # The Job completes next; its pass writes these metrics together with the
            # trial's final phase (one write). Should no pass take them, the flusher
            # writes them once the hold is over.
            acc.hold_until = self.clock() + self.flush_seconds * 2
        return True

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def flush(self, namespace: str, trial: str, *, force: bool = False) -> bool:
        """Write a trial's metrics if dirty and (unless forced) not written too recently."""
        key = (namespace, trial)
        acc = self.accumulators.get(key)
        if acc is None or not acc.dirty:
            return False
        if not force and (
            self.clock() - acc.flushed_at < self.flush_seconds or self.clock() < acc.hold_until
        ):
            return False
        async with self._lock(key):
            if not acc.dirty:
                return False
            entry = self.directory.trial(namespace, trial)
            if entry is None or entry.finished:
                acc.dirty = False  # its final status was written with its phase
                return False
            objective = self.directory.objective(namespace, entry.experiment)
            acc.dirty = False
            acc.flushed_at = self.clock()
            try:
                await self.patch(namespace, trial, status_patch(acc.metrics(objective)))
            except Exception:
                acc.dirty = True
                raise
        return True

    def take(self, namespace: str, trial: str) -> TrialMetrics | None:
        """A trial's metrics for the caller to write (its Job finished); marks them written.

        The caller writes them with the trial's final status, in one patch; if that
        write fails, the next pass takes them again (the trial has no final phase yet).
        """
        acc = self.accumulators.get((namespace, trial))
        if acc is None:
            return None
        acc.dirty = False
        acc.flushed_at = self.clock()
        return acc.metrics(self._objective(namespace, trial))

    def _objective(self, namespace: str, trial: str) -> Objective | None:
        """The objective of the trial's experiment, if both are known."""
        entry = self.directory.trial(namespace, trial)
        return self.directory.objective(namespace, entry.experiment) if entry else None

    async def adopt_summary(
        self, namespace: str, trial: str, summary: Summary
    ) -> TrialMetrics | None:
        """Take a collector's termination-message summary (pushes were lost), like :meth:`take`."""
        entry = self.directory.trial(namespace, trial)
        if entry is None:
            return None
        key = (namespace, trial)
        acc = self.accumulators.get(key)
        if acc is None:
            acc = self.accumulators[key] = Accumulator.from_entry(entry)
        acc.take_summary(summary)
        return self.take(namespace, trial)

    async def flush_due(self) -> int:
        """Flush every trial whose interval has passed; returns how many were written."""
        written = 0
        for namespace, trial in list(self.accumulators):
            try:
                written += await self.flush(namespace, trial)
            except Exception as error:  # keep flushing the others; retried next round
                logger.warning("could not write metrics of %s/%s: %s", namespace, trial, error)
        return written

    def forget(self, namespace: str, trial: str) -> None:
        """Drop a deleted trial's accumulator."""
        self.accumulators.pop((namespace, trial), None)
        self._locks.pop((namespace, trial), None)

    async def run_flusher(self) -> None:
        """Flush due trials forever, at twice the flush rate."""
        while True:
            await asyncio.sleep(self.flush_seconds / 2)
            await self.flush_due()

    def start(self) -> None:
        """Start the background flusher."""
        if self._task is None:
            self._task = asyncio.create_task(self.run_flusher())

    async def stop(self) -> None:
        """Stop the flusher after a last flush."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush_due()
