"""One reconciliation pass of one Experiment: observe, plan, execute, report.

The pass reads only what it is given (the Experiment body and its children
from the operator's index), derives each unfinished Trial's status, asks
:func:`~kubesweep.planning.plan_experiment` what to do, and does it:

1. stop the trials the plan stops (status first, then the Job, so a restart
   in between finds an EarlyStopped trial and only deletes its Job);
2. ask the early-stopping rule about running trials, and stop those it names;
3. ask the suggestion service once for all free slots, create one Trial per
   assignment (409: it exists, fine), then its Job (owned by the Trial);
4. create Jobs of Trials that lack one (an earlier pass died in between);
5. plan again with what was just done and patch the Experiment status if it
   changed.

Everything here tolerates repetition; nothing depends on what a previous pass
remembered except suggestion backoff and trials created but not yet indexed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from kubesweep.api import (
    Experiment,
    ExperimentSpec,
    ExperimentStatus,
    ObjectMeta,
    Trial,
    TrialPhase,
    TrialStatus,
)
from kubesweep.api.resources import describe_validation_error
from kubesweep.metrics.tokens import trial_token
from kubesweep.metrics.wire import WireError, decode_summary
from kubesweep.operator.children import PodRecord
from kubesweep.operator.patching import merge_patch
from kubesweep.operator.runtime import Runtime
from kubesweep.operator.suggestions import SuggestionUnavailable
from kubesweep.planning import (
    Plan,
    StopOrder,
    SuggestionHealth,
    TrialMetrics,
    TrialView,
    derive_trial_status,
    plan_experiment,
    stop_orders,
    stop_request,
    suggest_request,
)
from kubesweep.planning.trial_status import stopped_status
from kubesweep.rendering import check_template, render_trial, trial_manifest

logger = logging.getLogger(__name__)

#: Status fields that only report progress; their changes are written at a bounded rate.
PROGRESS_FIELDS = frozenset({"trials", "gpuSeconds", "message"})
#: The shortest interval between two progress-only writes of an Experiment's status.
STATUS_INTERVAL = timedelta(seconds=2)

#: ``emit(reason, message, warning)`` posts an Event on the Experiment.
Emit = Callable[[str, str, bool], None]


@dataclass
class ExperimentState:
    """The little a pass remembers for the next one, all of it recoverable."""

    created: dict[str, TrialView] = field(default_factory=dict)  # created, not yet indexed
    jobs_created: set[str] = field(default_factory=set)
    health: SuggestionHealth = field(default_factory=SuggestionHealth)
    last_end: str | None = None
    # What this process last wrote, so a pass that runs before the watch shows
    # our own write does not write the same thing again.
    written_status: dict[str, Any] | None = None
    written_at: datetime | None = None
    status_due: bool = False  # a progress-only change waits for STATUS_INTERVAL
    # The curves the early-stopping rule last judged: unchanged curves, same answer.
    judged: tuple[Any, ...] | None = None
    written_trials: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Children:
    """An experiment's Trials, and their Jobs and pods by trial name."""

    trials: Sequence[Trial]
    jobs: Mapping[str, Mapping[str, Any]]
    pods: Mapping[str, Sequence[PodRecord]]


def _complete(job: Mapping[str, Any] | None) -> bool:
    for condition in (job or {}).get("status", {}).get("conditions") or []:
        if condition.get("type") == "Complete" and condition.get("status") == "True":
            return True
    return False


def _view(trial: Trial, status: TrialStatus, has_job: bool) -> TrialView:
    return TrialView(
        name=trial.metadata.name,
        index=trial.spec.index,
        parameters=trial.spec.parameters,
        fidelity=trial.spec.fidelity,
        tags=trial.spec.tags,
        status=status,
        has_job=has_job,
    )


def _finished_event(view: TrialView) -> tuple[str, str, bool]:
    status = view.status
    if status.phase is TrialPhase.SUCCEEDED:
        return "TrialSucceeded", f"trial {view.name} succeeded: objective {status.objective}", False
    detail = f"{status.reason}: {status.message}" if status.message else str(status.reason)
    warning = status.phase in (TrialPhase.FAILED, TrialPhase.METRICS_UNAVAILABLE)
    return (
        f"Trial{status.phase.value}",
        f"trial {view.name} {status.phase.value}: {detail}",
        warning,
    )


def _significant(status: Mapping[str, Any]) -> dict[str, Any]:
    """Status without progress: conditions by type, status and reason (not message)."""
    kept = {k: v for k, v in status.items() if k not in PROGRESS_FIELDS}
    kept["conditions"] = [
        (c.get("type"), c.get("status"), c.get("reason"), c.get("observedGeneration"))
        for c in status.get("conditions", [])
    ]
    return kept


class Pass:
    """One pass over one experiment; construct, then ``await run()``."""

    def __init__(
        self,
        *,
        rt: Runtime,
        state: ExperimentState,
        body: Mapping[str, Any],
        children: Children,
        emit: Emit,
        now: datetime,
    ) -> None:
        self.rt = rt
        self.state = state
        self.body = body
        self.children = children
        self.emit = emit
        self.now = now
        meta = body["metadata"]
        self.name: str = meta["name"]
        self.namespace: str = meta["namespace"]
        self.uid: str | None = meta.get("uid")
        self.generation: int | None = meta.get("generation")
        self.trials_by_name = {t.metadata.name: t for t in children.trials}

    # -- observe ---------------------------------------------------------------

    async def _metrics_for(
        self, trial: Trial, job: Mapping[str, Any] | None
    ) -> TrialMetrics | None:
        """The last metrics of a trial whose Job completed, to write with its final phase.

        They must be the collector's complete account: its final batch's summary, or
        else the summary in its termination message. Pushes alone are not enough,
        even with the objective among them: an operator restart may have lost some
        that the collector counted as delivered.
        """
        if not _complete(job):
            return None
        name = trial.metadata.name
        metrics = self.rt.intake.take(self.namespace, name)
        if metrics is not None and metrics.complete:
            return metrics
        pods = self.children.pods.get(name, ())
        for pod in sorted(pods, key=lambda p: p.view.phase != "Succeeded"):
            if not pod.summary_message:
                continue
            try:
                summary = decode_summary(pod.summary_message)
            except WireError as error:
                logger.warning("unreadable termination message of %s: %s", name, error)
                continue
            adopted = await self.rt.intake.adopt_summary(self.namespace, name, summary)
            if adopted is not None:
                return adopted
        return metrics

    async def observe(self, spec: ExperimentSpec) -> list[TrialView]:
        """Every trial's view, with fresh status derived (and written) for unfinished ones."""
        views: list[TrialView] = []
        for trial in self.children.trials:
            name = trial.metadata.name
            self.state.created.pop(name, None)
            job = self.children.jobs.get(name)
            if job is not None:
                self.state.jobs_created.discard(name)
            has_job = job is not None or name in self.state.jobs_created
            status = trial.status or TrialStatus()
            if status.phase.is_finished:
                self.state.written_trials.pop(name, None)
            else:
                metrics = await self._metrics_for(trial, job)
                pods = [p.view for p in self.children.pods.get(name, ())]
                new = derive_trial_status(
                    job,
                    metrics,
                    self.now,
                    previous=status,
                    pods=pods,
                    objective_metric=spec.objective.metric,
                )
                fresh = trial.status is None and new.phase is TrialPhase.PENDING
                if fresh and new.reason in ("Starting", "JobNotCreated"):
                    new = status  # nothing to tell yet: a Trial without status is Pending
                if new != status:
                    wire = new.to_wire()
                    if self.state.written_trials.get(name) != wire:
                        patch = merge_patch(status.to_wire(), wire)
                        await self.rt.kube.patch_trial_status(self.namespace, name, patch)
                        self.state.written_trials[name] = wire
                    status = new
                    if new.phase.is_finished:
                        self.emit(*_finished_event(_view(trial, new, has_job)))
            views.append(_view(trial, status, has_job))
        views.extend(v for n, v in self.state.created.items() if n not in self.trials_by_name)
        return views

    # -- act -------------------------------------------------------------------

    async def stop(self, order: StopOrder, views: list[TrialView]) -> list[TrialView]:
        """Mark a trial EarlyStopped, then delete its Job."""
        trial = self.trials_by_name.get(order.name)
        if trial is None:
            return views
        previous = next((v.status for v in views if v.name == order.name), trial.status)
        job = self.children.jobs.get(order.name)
        status = stopped_status(previous, order.reason, order.message, self.now, job)
        patch = merge_patch((previous or TrialStatus()).to_wire(), status.to_wire())
        await self.rt.kube.patch_trial_status(self.namespace, order.name, patch)
        await self.rt.kube.delete_job(self.namespace, order.name)
        self.rt.intake.forget(self.namespace, order.name)
        self.emit("TrialStopped", f"trial {order.name} stopped: {order.message}", False)
        return [_view(trial, status, v.has_job) if v.name == order.name else v for v in views]

    def _failing(self, error: SuggestionUnavailable) -> None:
        health = self.state.health
        first = health.error is None
        self.state.health = SuggestionHealth(
            error=str(error),
            failing_since=health.failing_since or self.now,
            exhausted=health.exhausted,
        )
        if first:
            self.emit("SuggestionServiceUnavailable", str(error), True)

    def _healthy(self, exhausted: bool | None = None) -> None:
        health = self.state.health
        self.state.health = SuggestionHealth(
            exhausted=health.exhausted if exhausted is None else exhausted
        )

    async def early_stop(self, spec: ExperimentSpec, views: list[TrialView]) -> list[TrialView]:
        """Ask the early-stopping rule, then stop what it names."""
        signature = tuple(
            (v.name, v.phase.value, len(v.status.curve), v.status.curve[-1].step)
            if v.status.curve
            else (v.name, v.phase.value)
            for v in views
        )
        if signature == self.state.judged:
            return views
        key = self.uid or f"{self.namespace}/{self.name}"
        try:
            reply = await self.rt.suggestions.stop(key, stop_request(spec, self.uid, views))
        except SuggestionUnavailable as error:
            self._failing(error)
            return views
        self._healthy()
        self.state.judged = signature
        decisions = [
            (str(d.get("name")), str(d.get("reason", ""))) for d in reply.get("stop") or []
        ]
        for order in stop_orders(decisions, views):
            views = await self.stop(order, views)
        return views

    async def create_job(self, experiment: Experiment, trial: Trial) -> None:
        """Render and create the Job of a Trial (409: it exists)."""
        uid = trial.metadata.uid
        if uid is None:
            return
        token = trial_token(self.rt.token_key, uid)
        job = render_trial(experiment, trial, self.rt.render_settings, token, template_checked=True)
        await self.rt.kube.create_job(self.namespace, job)
        self.state.jobs_created.add(trial.metadata.name)

    async def create_trials(
        self, experiment: Experiment, plan: Plan, views: list[TrialView]
    ) -> list[TrialView]:
        """One suggestion call for all free slots, then a Trial and a Job per assignment."""
        spec = experiment.spec
        key = self.uid or f"{self.namespace}/{self.name}"
        body = suggest_request(spec, self.uid, views, plan.suggestion_count)
        try:
            reply = await self.rt.suggestions.suggest(key, body)
        except SuggestionUnavailable as error:
            self._failing(error)
            return views
        assignments = list(reply.get("assignments") or [])
        exhausted = bool(reply.get("exhausted")) and len(assignments) < plan.suggestion_count
        self._healthy(exhausted=exhausted)
        created = list(views)
        for new, assignment in zip(plan.new_trials, assignments, strict=False):
            body = trial_manifest(
                experiment=self.name,
                namespace=self.namespace,
                experiment_uid=self.uid,
                index=new.index,
                name=new.name,
                assignment=assignment,
            )
            stored = await self.rt.kube.create_trial(self.namespace, body)
            if stored is None:
                continue  # it exists: an earlier pass created it; the index will show it
            trial = Trial.model_validate(stored)
            self.rt.metrics.trials_created.inc()
            self.emit("TrialCreated", f"trial {new.name} created: {trial.spec.parameters}", False)
            view = _view(trial, TrialStatus(), has_job=False)
            self.state.created[new.name] = view
            try:
                await self.create_job(experiment, trial)
            except ValueError as error:  # a template that cannot render: the trial fails
                await self._render_failed(trial, str(error))
                continue
            view = _view(trial, TrialStatus(), has_job=True)
            self.state.created[new.name] = view
            created.append(view)
        return created

    async def _render_failed(self, trial: Trial, message: str) -> None:
        status = TrialStatus(
            phase=TrialPhase.FAILED,
            reason="InvalidTemplate",
            message=message[:4096],
            completion_time=self.now,
        )
        await self.rt.kube.patch_trial_status(self.namespace, trial.metadata.name, status.to_wire())
        self.emit("TrialFailed", f"trial {trial.metadata.name}: {message}", True)

    # -- the pass --------------------------------------------------------------

    async def run(self) -> Plan | None:
        """Observe, plan, act, report. Returns the final plan (None: spec unreadable)."""
        try:
            spec = ExperimentSpec.model_validate(self.body.get("spec") or {})
        except ValidationError as error:
            problems = [f"spec.{line}" for line in describe_validation_error(error)]
            await self._invalid_spec("; ".join(problems))
            return None
        # What the CRD cannot check (placeholders, reserved names, metric paths) stops the
        # experiment here, before any trial is spent on it; fixing the spec resumes it.
        template_problems = check_template(spec)
        if template_problems:
            await self._invalid_spec("; ".join(template_problems))
            return None
        self.rt.directory.objectives[(self.namespace, self.name)] = spec.objective
        experiment = Experiment(
            metadata=ObjectMeta(
                name=self.name, namespace=self.namespace, uid=self.uid, generation=self.generation
            ),
            spec=spec,
        )
        raw_status = self.body.get("status") or None
        previous = self._previous(raw_status)
        views = await self.observe(spec)

        plan = self._plan(spec, views, previous)
        for order in plan.stop:
            views = await self.stop(order, views)
        if plan.ask_early_stop:
            views = await self.early_stop(spec, views)
            plan = self._plan(spec, views, previous)
        if plan.new_trials:
            views = await self.create_trials(experiment, plan, views)
        for name in plan.create_jobs:
            trial = self.trials_by_name.get(name)
            if trial is not None and name not in self.state.jobs_created:
                try:
                    await self.create_job(experiment, trial)
                except ValueError as error:
                    await self._render_failed(trial, str(error))

        final = self._plan(spec, views, previous)
        wire = final.status.to_wire()
        if final.status_changed and wire != self.state.written_status and self._status_now(wire):
            patch = merge_patch(raw_status if isinstance(raw_status, dict) else {}, wire)
            await self.rt.kube.patch_experiment_status(self.namespace, self.name, patch)
            self.state.written_status = wire
            self.state.written_at = self.now
            self.state.status_due = False
        self._report(final)
        return final

    def _status_now(self, wire: dict[str, Any]) -> bool:
        """Whether to write status now: at once for what matters, progress at a bounded rate.

        Conditions (type, status, reason), phase, best trial and the rest are written
        at once; a change in counts, GPU-seconds or messages alone waits until
        ``STATUS_INTERVAL`` after the last write, so a burst of trial transitions costs
        one write, not one each.
        """
        before = self.state.written_status
        if before is None or self.state.written_at is None:
            return True
        if _significant(wire) != _significant(before):
            return True
        if self.now - self.state.written_at >= STATUS_INTERVAL:
            return True
        self.state.status_due = True
        return False

    def _previous(self, raw: object) -> ExperimentStatus | None:
        if not isinstance(raw, dict) or not raw:
            return None
        try:
            return ExperimentStatus.model_validate(raw)
        except ValidationError:
            logger.warning("ignoring unreadable status of %s/%s", self.namespace, self.name)
            return None

    def _plan(
        self, spec: ExperimentSpec, views: list[TrialView], previous: ExperimentStatus | None
    ) -> Plan:
        return plan_experiment(
            self.name,
            spec,
            views,
            self.now,
            generation=self.generation,
            previous=previous,
            suggestion=self.state.health,
            stall_after=self.rt.stall_after,
        )

    async def _invalid_spec(self, message: str) -> None:
        status = {
            "observedGeneration": self.generation,
            "conditions": [
                {
                    "type": "Stalled",
                    "status": "True",
                    "reason": "InvalidSpec",
                    "message": message[:4000],
                    "lastTransitionTime": self.now.isoformat().replace("+00:00", "Z"),
                    "observedGeneration": self.generation,
                }
            ],
        }
        await self.rt.kube.patch_experiment_status(self.namespace, self.name, status)

    def _report(self, plan: Plan) -> None:
        counts = plan.status.trials
        gauge = self.rt.metrics.trials
        for phase, value in (
            ("Pending", counts.pending),
            ("Running", counts.running),
            ("Succeeded", counts.succeeded),
            ("Failed", counts.failed),
            ("EarlyStopped", counts.early_stopped),
            ("MetricsUnavailable", counts.metrics_unavailable),
        ):
            gauge.labels(self.namespace, self.name, phase).set(value)
        self.rt.metrics.gpu_seconds.labels(self.namespace, self.name).set(plan.status.gpu_seconds)
        end = plan.end
        label = None if end is None else end.reason.value
        if label != self.state.last_end:
            if end is not None:
                kind = "ExperimentSucceeded" if end.succeeded else "ExperimentFailed"
                self.emit(kind, f"{end.reason.value}: {end.message}", not end.succeeded)
            elif self.state.last_end is not None:
                self.emit("ExperimentResumed", "the budget grew; the sweep goes on", False)
            self.state.last_end = label


async def reconcile(
    *,
    rt: Runtime,
    state: ExperimentState,
    body: Mapping[str, Any],
    children: Children,
    emit: Emit,
    now: datetime,
) -> Plan | None:
    """Run one pass, timing it."""
    with rt.metrics.reconcile_seconds.time():
        return await Pass(
            rt=rt, state=state, body=body, children=children, emit=emit, now=now
        ).run()
