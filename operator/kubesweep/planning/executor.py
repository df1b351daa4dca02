"""Carrying a plan out: observe, plan, act, report, in one order for every executor.

The operator (:mod:`kubesweep.operator.reconciler`) and ``kubesweep run``
(:mod:`kubesweep.cli.local.runner`) do the same thing to an experiment with
different means: one writes Trials and Jobs through the API server and asks a
suggestion service over HTTP, the other starts processes and records trials in
a SQLite file. Restart safety and every end reason depend on the order of the
steps, so the order lives here once, and each executor supplies only its
:class:`Ports`:

1. *observe*: every trial as recorded; unfinished ones get their status derived
   from what the port observed (Job, pods, metrics) and written if it changed;
2. *plan* with :func:`~kubesweep.planning.plan_experiment`;
3. stop the trials the plan stops;
4. ask the early-stopping rule about running trials (only when their curves
   changed since it last answered), stop what it names, and plan again;
5. ask for suggestions once for every free slot and create one trial per
   assignment (an existing one is left as it is), then plan again;
6. start the workload of every trial that has none;
7. plan a last time; remove the workloads of finished trials past their retention
   (their status is already recorded, in step 1 of this or an earlier pass), and
   hand the status to the port, which decides whether and when to write it.

Every request carries the experiment's *effective seed*: ``spec.algorithm.seed``
when the user gave one, or else one drawn once, when the experiment first needs
a suggestion, and recorded in status (``status.seed``) before any suggestion
uses it. A later pass, a restart or another executor reads it back from status
and never draws again, so the search of an experiment is reproducible from its
status, and two unseeded experiments search differently.

No I/O happens here: the ports are awaited, and what is decided is a value (a
plan, a status, an :data:`Event`); the seed is drawn by :attr:`Execution.draw_seed`,
an argument like the clock. The only memory between passes is
:class:`ExecutionMemory`, all of it recoverable from the children and status.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from kubesweep.api import ExperimentSpec, ExperimentStatus, TrialPhase, TrialStatus
from kubesweep.api.suggestion_wire import (
    Assignment,
    StopReply,
    StopRequest,
    SuggestReply,
    SuggestRequest,
)
from kubesweep.planning.plan import (
    DEFAULT_STALL_AFTER,
    End,
    NewTrial,
    Plan,
    StopOrder,
    plan_experiment,
    stop_orders,
)
from kubesweep.planning.requests import stop_request, suggest_request
from kubesweep.planning.trial_status import DEFAULT_METRICS_GRACE, derive_trial_status
from kubesweep.planning.views import PodView, SuggestionHealth, TrialMetrics, TrialView
from kubesweep.planning.workload import WorkloadState

#: Seeds are drawn from the range ``spec.algorithm.seed`` accepts.
SEED_LIMIT = 2**31


def draw_seed() -> int:
    """A fresh seed for an experiment that has none, from the operating system's entropy."""
    return secrets.randbelow(SEED_LIMIT)


#: Reasons of a trial that has a record but nothing observable yet: a Trial without
#: status already reads as Pending, so writing them would tell nobody anything.
_NOTHING_TO_TELL = ("Starting", "JobNotCreated")


class ServiceUnavailable(Exception):  # noqa: N818 - a condition, not a bug
    """The suggestion or early-stopping service could not answer now; the message says why."""


@dataclass(frozen=True, slots=True)
class Observation:
    """One trial as an executor observed it.

    ``view`` carries the status as recorded. With ``derive`` set, the status is
    derived afresh from ``job`` (the workload), ``metrics`` and ``pods``; without it (a finished
    trial, one waiting for a GPU, one being retried) the recorded status stands.
    ``recorded`` is false for a trial whose status was never written.
    """

    view: TrialView
    derive: bool = False
    #: The trial's workload: its state, or a ``batch/v1`` Job as a mapping.
    job: Mapping[str, Any] | WorkloadState | None = None
    metrics: TrialMetrics | None = None
    pods: Sequence[PodView] = ()
    recorded: bool = True


@dataclass(frozen=True)
class TrialCreated:
    """A trial was created (not one that existed already)."""

    view: TrialView


@dataclass(frozen=True)
class TrialFinished:
    """A trial reached a final phase through what was observed of it."""

    view: TrialView


@dataclass(frozen=True)
class TrialStopped:
    """A trial was stopped: the plan's end, or the early-stopping rule."""

    order: StopOrder


@dataclass(frozen=True)
class SuggestionsFailing:
    """The suggestion service stopped answering (told once per outage)."""

    message: str


@dataclass(frozen=True)
class ExperimentEnded:
    """The experiment reached an end it had not reached in the previous pass."""

    end: End


@dataclass(frozen=True)
class ExperimentResumed:
    """An ended experiment goes on (its budget grew)."""


Event = (
    TrialCreated
    | TrialFinished
    | TrialStopped
    | SuggestionsFailing
    | ExperimentEnded
    | ExperimentResumed
)


class Ports(Protocol):
    """What an executor does with its own means; :class:`Execution` decides when."""

    async def observe(self) -> Sequence[Observation]:
        """Every trial of the experiment, as recorded and as observed now."""
        ...

    async def write_trial_status(self, view: TrialView, status: TrialStatus) -> TrialView:
        """Record a trial's new status; the trial's view afterwards."""
        ...

    async def stop_trial(self, order: StopOrder, current: TrialStatus | None) -> TrialStatus | None:
        """Mark a trial stopped and stop its workload; its new status, ``None``: not stoppable."""
        ...

    async def ask_to_stop(self, request: StopRequest) -> StopReply:
        """The early-stopping rule's decisions; raises :class:`ServiceUnavailable`."""
        ...

    async def suggest(self, request: SuggestRequest) -> SuggestReply:
        """New assignments for the request; raises :class:`ServiceUnavailable`."""
        ...

    async def create_trial(self, new: NewTrial, assignment: Assignment) -> TrialView | None:
        """Record a new trial; ``None`` if it exists already (an earlier pass made it)."""
        ...

    async def start_workload(self, view: TrialView) -> TrialView | None:
        """Start the trial's workload (Job, process); its view afterwards, ``None``: unchanged."""
        ...

    async def remove_workload(self, view: TrialView) -> TrialView | None:
        """Remove a finished trial's workload; its view afterwards, ``None``: unchanged."""
        ...

    async def write_experiment_status(self, plan: Plan) -> None:
        """Record the experiment's status from the final plan, if and when the port sees fit."""
        ...

    def emit(self, event: Event) -> None:
        """Tell the user what happened (Kubernetes Events, the progress display)."""
        ...


@dataclass
class ExecutionMemory:
    """What one pass leaves to the next; losing it costs a question, never a trial."""

    health: SuggestionHealth = field(default_factory=SuggestionHealth)
    #: The curves the early-stopping rule last judged: unchanged curves, same answer.
    judged: tuple[Any, ...] | None = None
    #: The end reason of the last pass, to tell an end (or a resumption) once.
    last_end: str | None = None
    #: A seed this executor drew, with the uid of its experiment, until status shows it
    #: (a pass may read a status older than its own last write).
    drawn: tuple[str | None, int] | None = None


@dataclass(frozen=True)
class Policy:
    """How an executor differs in judgement, not in means.

    ``metrics_grace``: how long a completed workload waits for the collector's
    summary. ``exhaust_when_idle``: an empty reply while nothing runs ends the
    search (locally nothing could change the algorithm's answer; on a cluster
    the service may answer differently later). ``workload_retention``: how long a
    finished trial's workload stays before it is removed (``None``: for good).
    """

    metrics_grace: timedelta = DEFAULT_METRICS_GRACE
    stall_after: timedelta = DEFAULT_STALL_AFTER
    exhaust_when_idle: bool = False
    workload_retention: timedelta | None = None


@dataclass
class Execution:
    """One pass over one experiment; construct, then ``await run()``."""

    name: str
    spec: ExperimentSpec
    now: datetime
    ports: Ports
    memory: ExecutionMemory
    uid: str | None = None
    generation: int | None = None
    previous: ExperimentStatus | None = None
    policy: Policy = field(default_factory=Policy)
    draw_seed: Callable[[], int] = draw_seed
    #: The seed of every request of this pass (see the module's docstring).
    seed: int = field(init=False)
    _seed_recorded: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.seed, self._seed_recorded = self._effective_seed()

    def _effective_seed(self) -> tuple[int, bool]:
        """The seed of every request, and whether status (or the spec) already holds it."""
        if self.spec.algorithm.seed is not None:
            return self.spec.algorithm.seed, True
        if self.previous is not None and self.previous.seed is not None:
            return self.previous.seed, True
        drawn = self.memory.drawn
        if drawn is None or drawn[0] != self.uid:
            drawn = (self.uid, self.draw_seed() % SEED_LIMIT)
            self.memory.drawn = drawn
        return drawn[1], False

    async def run(self) -> Plan:
        """Observe, plan, act, report; the final plan."""
        views = await self.observe()
        plan = self.plan(views)
        for order in plan.stop:
            views = await self.stop(order, views)
        if plan.ask_early_stop:
            views = await self.early_stop(views)
            plan = self.plan(views)
        if plan.new_trials:
            await self._record_seed(plan)
            views = await self.create_trials(plan, views)
            plan = self.plan(views)
        for name in plan.create_jobs:
            views = await self.start(name, views)
        final = self.plan(views)
        for name in final.remove_workloads:
            views = await self.remove(name, views)
        await self.ports.write_experiment_status(final)
        self._tell_end(final.end)
        return final

    def plan(self, views: Sequence[TrialView]) -> Plan:
        """What the experiment needs, given ``views`` and the suggestion service's health."""
        return plan_experiment(
            self.name,
            self.spec,
            views,
            self.now,
            generation=self.generation,
            previous=self.previous,
            suggestion=self.memory.health,
            stall_after=self.policy.stall_after,
            seed=self.seed,
            workload_retention=self.policy.workload_retention,
        )

    async def _record_seed(self, plan: Plan) -> None:
        """Write status once before a drawn seed's first use, so a restart finds it there."""
        if self._seed_recorded:
            return
        await self.ports.write_experiment_status(plan)
        self.previous = plan.status
        self._seed_recorded = True

    # -- observe -------------------------------------------------------------------

    async def observe(self) -> list[TrialView]:
        """Every trial's view, with fresh status derived (and written) for observed ones."""
        views: list[TrialView] = []
        for seen in await self.ports.observe():
            view = seen.view
            status = self._derived(seen) if seen.derive else view.status
            if status != view.status:
                view = await self.ports.write_trial_status(view, status)
                if status.phase.is_finished:
                    self.ports.emit(TrialFinished(view))
            views.append(view)
        return views

    def _derived(self, seen: Observation) -> TrialStatus:
        recorded = seen.view.status
        status = derive_trial_status(
            seen.job,
            seen.metrics,
            self.now,
            previous=recorded,
            pods=seen.pods,
            objective_metric=self.spec.objective.metric,
            metrics_grace=self.policy.metrics_grace,
        )
        fresh = not seen.recorded and status.phase is TrialPhase.PENDING
        if fresh and status.reason in _NOTHING_TO_TELL:
            return recorded
        return status

    # -- act -----------------------------------------------------------------------

    async def stop(self, order: StopOrder, views: list[TrialView]) -> list[TrialView]:
        """Stop one trial (status first, then its workload)."""
        current = next((v.status for v in views if v.name == order.name), None)
        status = await self.ports.stop_trial(order, current)
        if status is None:
            return views
        self.ports.emit(TrialStopped(order))
        return [replace(v, status=status) if v.name == order.name else v for v in views]

    async def early_stop(self, views: list[TrialView]) -> list[TrialView]:
        """Ask the early-stopping rule (unless nothing changed), then stop what it names."""
        signature = tuple(
            (v.name, v.phase.value, len(v.status.curve), v.status.curve[-1].step)
            if v.status.curve
            else (v.name, v.phase.value)
            for v in views
        )
        if signature == self.memory.judged:
            return views
        try:
            reply = await self.ports.ask_to_stop(
                stop_request(self.spec, self.uid, views, self.seed)
            )
        except ServiceUnavailable as error:
            self._failing(error)
            return views
        self._healthy()
        self.memory.judged = signature
        for order in stop_orders([(d.name, d.reason) for d in reply.stop], views):
            views = await self.stop(order, views)
        return views

    async def create_trials(self, plan: Plan, views: list[TrialView]) -> list[TrialView]:
        """One suggestion request for every free slot, then one trial per assignment."""
        count = plan.suggestion_count
        try:
            reply = await self.ports.suggest(
                suggest_request(self.spec, self.uid, views, count, self.seed)
            )
        except ServiceUnavailable as error:
            self._failing(error)
            return views
        assignments = list(reply.assignments)
        exhausted = reply.exhausted and len(assignments) < count
        if self.policy.exhaust_when_idle and not assignments and all(v.finished for v in views):
            exhausted = True
        self._healthy(exhausted=exhausted)
        created = list(views)
        for new, assignment in zip(plan.new_trials, assignments, strict=False):
            view = await self.ports.create_trial(new, assignment)
            if view is None:
                continue  # it exists: an earlier pass created it
            self.ports.emit(TrialCreated(view))
            created.append(view)
        return created

    async def start(self, name: str, views: list[TrialView]) -> list[TrialView]:
        """Start the workload of a trial that has none."""
        view = next((v for v in views if v.name == name), None)
        started = None if view is None else await self.ports.start_workload(view)
        if started is None:
            return views
        return [started if v.name == name else v for v in views]

    async def remove(self, name: str, views: list[TrialView]) -> list[TrialView]:
        """Remove the workload of a finished trial (its recorded status stays)."""
        view = next((v for v in views if v.name == name), None)
        removed = None if view is None else await self.ports.remove_workload(view)
        if removed is None:
            return views
        return [removed if v.name == name else v for v in views]

    # -- health and ends -------------------------------------------------------------

    def _failing(self, error: ServiceUnavailable) -> None:
        health = self.memory.health
        self.memory.health = SuggestionHealth(
            error=str(error),
            failing_since=health.failing_since or self.now,
            exhausted=health.exhausted,
        )
        if health.error is None:
            self.ports.emit(SuggestionsFailing(str(error)))

    def _healthy(self, exhausted: bool | None = None) -> None:
        health = self.memory.health
        self.memory.health = SuggestionHealth(
            exhausted=health.exhausted if exhausted is None else exhausted
        )

    def _tell_end(self, end: End | None) -> None:
        label = None if end is None else end.reason.value
        if label == self.memory.last_end:
            return
        if end is not None:
            self.ports.emit(ExperimentEnded(end))
        elif self.memory.last_end is not None:
            self.ports.emit(ExperimentResumed())
        self.memory.last_end = label
