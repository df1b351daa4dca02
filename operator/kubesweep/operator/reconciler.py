"""One reconciliation pass of one Experiment, carried out against the API server.

The order of a pass (observe, plan, stop, ask the early-stopping rule, create
trials, start their Jobs, report) is :class:`kubesweep.planning.executor.Execution`'s,
shared with ``kubesweep run``. This module supplies the operator's means, as
:class:`ClusterPorts`, and what only the operator must do:

* it reads only what it is given (the Experiment body and its children from the
  operator's index) and refuses a spec the CRD could not check before any
  trial is spent on it (the template is checked once per pass, not per Job);
* a trial's final metrics are the collector's complete account: its final
  batch's summary, or else the summary in its termination message;
* a trial is marked stopped before its Job is deleted, so a restart in between
  finds an EarlyStopped trial and only deletes its Job;
* a Trial is created with a deterministic name (409: it exists, fine), and its
  Job, owned by the Trial, right after in the same pass;
* Experiment status is written when it changed, progress-only changes at a
  bounded rate (:data:`STATUS_INTERVAL`).

Everything here tolerates repetition; nothing depends on what a previous pass
remembered except suggestion backoff and trials created but not yet indexed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from kubesweep.api.suggestion_wire import (
    Assignment,
    StopReply,
    StopRequest,
    SuggestReply,
    SuggestRequest,
)
from kubesweep.metrics.tokens import trial_token
from kubesweep.metrics.wire import WireError, decode_summary
from kubesweep.operator.children import PodRecord
from kubesweep.operator.compact import IndexedTrial
from kubesweep.operator.patching import merge_patch
from kubesweep.operator.runtime import Runtime
from kubesweep.operator.workloads import WorkloadResource
from kubesweep.planning import (
    NewTrial,
    Plan,
    StopOrder,
    SuggestionHealth,
    TrialMetrics,
    TrialView,
    trial_view,
)
from kubesweep.planning.executor import (
    Event,
    Execution,
    ExecutionMemory,
    ExperimentEnded,
    ExperimentResumed,
    Observation,
    Policy,
    SuggestionsFailing,
    TrialCreated,
    TrialFinished,
    TrialStopped,
)
from kubesweep.planning.trial_status import stopped_status
from kubesweep.planning.workload import WorkloadState, workload_state
from kubesweep.rendering import (
    JOB_KIND,
    check_template,
    render_trial,
    trial_manifest,
    workload_field,
    workload_kind,
)

logger = logging.getLogger(__name__)

#: Status fields that only report progress; their changes are written at a bounded rate.
PROGRESS_FIELDS = frozenset({"trials", "gpuSeconds", "gpuHours", "message"})
#: The shortest interval between two progress-only writes of an Experiment's status.
STATUS_INTERVAL = timedelta(seconds=2)

#: ``emit(reason, message, warning)`` posts an Event on the Experiment.
Emit = Callable[[str, str, bool], None]


@dataclass
class ExperimentState:
    """The little a pass remembers for the next one, all of it recoverable."""

    created: dict[str, TrialView] = field(default_factory=dict)  # created, not yet indexed
    #: The Trials behind ``created``, as the API server returned them (their Jobs need the uid).
    created_trials: dict[str, Trial] = field(default_factory=dict)
    jobs_created: set[str] = field(default_factory=set)
    #: Workloads deleted by their retention that the informer may still show.
    workloads_removed: set[str] = field(default_factory=set)
    #: What the shared executor remembers: suggestion health, the last judged curves, the end.
    memory: ExecutionMemory = field(default_factory=ExecutionMemory)
    # What this process last wrote, so a pass that runs before the watch shows
    # our own write does not write the same thing again.
    written_status: dict[str, Any] | None = None
    written_at: datetime | None = None
    status_due: bool = False  # a progress-only change waits for STATUS_INTERVAL
    written_trials: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def health(self) -> SuggestionHealth:
        """Whether the suggestion service answers (for the daemon's backoff wake-up)."""
        return self.memory.health


@dataclass(frozen=True)
class Children:
    """An experiment's Trials, and their workloads (Jobs, JobSets, ...) and pods by trial name."""

    trials: Sequence[IndexedTrial]
    jobs: Mapping[str, Mapping[str, Any]]
    pods: Mapping[str, Sequence[PodRecord]]


def _created_view(trial: Trial) -> TrialView:
    """A Trial this pass created, before the index shows it."""
    return TrialView(
        name=trial.metadata.name,
        index=trial.spec.index,
        parameters=trial.spec.parameters,
        fidelity=trial.spec.fidelity,
        tags=trial.spec.tags,
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


def kubernetes_event(event: Event) -> tuple[str, str, bool]:
    """The (reason, message, warning) of the Kubernetes Event that tells ``event``."""
    match event:
        case TrialCreated(view=view):
            return "TrialCreated", f"trial {view.name} created: {view.parameters}", False
        case TrialFinished(view=view):
            return _finished_event(view)
        case TrialStopped(order=order):
            return "TrialStopped", f"trial {order.name} stopped: {order.message}", False
        case SuggestionsFailing(message=message):
            return "SuggestionServiceUnavailable", message, True
        case ExperimentEnded(end=end):
            kind = "ExperimentSucceeded" if end.succeeded else "ExperimentFailed"
            return kind, f"{end.reason.value}: {end.message}", not end.succeeded
        case ExperimentResumed():
            return "ExperimentResumed", "the budget grew; the sweep goes on", False


def _significant(status: Mapping[str, Any]) -> dict[str, Any]:
    """Status without progress: conditions by type, status and reason (not message)."""
    kept = {k: v for k, v in status.items() if k not in PROGRESS_FIELDS}
    kept["conditions"] = [
        (c.get("type"), c.get("status"), c.get("reason"), c.get("observedGeneration"))
        for c in status.get("conditions", [])
    ]
    return kept


class ClusterPorts:
    """The executor's ports on a cluster: Trials, Jobs and status through the API server."""

    def __init__(
        self,
        *,
        rt: Runtime,
        state: ExperimentState,
        experiment: Experiment,
        raw_status: Mapping[str, Any] | None,
        children: Children,
        emit: Emit,
        now: datetime,
    ) -> None:
        self.rt = rt
        self.state = state
        self.experiment = experiment
        self.raw_status = raw_status
        self.children = children
        self._emit = emit
        self.now = now
        self.name = experiment.metadata.name
        self.namespace = experiment.metadata.namespace or ""
        self.uid = experiment.metadata.uid
        self.key = self.uid or f"{self.namespace}/{self.name}"
        self.trials_by_name = {t.name: t for t in children.trials}

    # -- observe ---------------------------------------------------------------

    def _state(self, name: str) -> WorkloadState | None:
        """The state of a trial's workload, as its kind tells it."""
        return workload_state(self.experiment.spec.trial_template, self.children.jobs.get(name))

    async def _metrics_for(
        self, trial: IndexedTrial, state: WorkloadState | None
    ) -> TrialMetrics | None:
        """The last metrics of a trial whose workload completed, to write with its final phase.

        They must be the collector's complete account: its final batch's summary, or
        else the summary in its termination message. Pushes alone are not enough,
        even with the objective among them: an operator restart may have lost some
        that the collector counted as delivered.
        """
        if state is None or state.succeeded is None:
            return None
        name = trial.name
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

    async def observe(self) -> list[Observation]:
        """Every indexed Trial (unfinished ones with Job, pods and metrics), then created ones."""
        seen: list[Observation] = []
        for trial in self.children.trials:
            name = trial.name
            self.state.created.pop(name, None)
            self.state.created_trials.pop(name, None)
            job = self._state(name)
            if job is not None:
                self.state.jobs_created.discard(name)
            else:
                self.state.workloads_removed.discard(name)
            has_job = (
                job is not None and name not in self.state.workloads_removed
            ) or name in self.state.jobs_created
            view = trial_view(trial, trial.status or TrialStatus(), has_job)
            if view.finished:
                self.state.written_trials.pop(name, None)
                seen.append(Observation(view))
                continue
            seen.append(
                Observation(
                    view,
                    derive=True,
                    job=job,
                    metrics=await self._metrics_for(trial, job),
                    pods=[p.view for p in self.children.pods.get(name, ())],
                    recorded=trial.status is not None,
                )
            )
        seen.extend(Observation(view) for view in self.state.created.values())
        return seen

    async def write_trial_status(self, view: TrialView, status: TrialStatus) -> TrialView:
        """Merge-patch the Trial's status, unless this process wrote the same already."""
        wire = status.to_wire()
        if self.state.written_trials.get(view.name) != wire:
            patch = merge_patch(view.status.to_wire(), wire)
            await self.rt.kube.patch_trial_status(self.namespace, view.name, patch)
            self.state.written_trials[view.name] = wire
        return replace(view, status=status)

    # -- act -------------------------------------------------------------------

    async def stop_trial(self, order: StopOrder, current: TrialStatus | None) -> TrialStatus | None:
        """Mark a trial EarlyStopped, then delete its Job."""
        trial = self.trials_by_name.get(order.name)
        if trial is None:
            return None
        previous = current if current is not None else trial.status
        pods = [p.view for p in self.children.pods.get(order.name, ())]
        status = stopped_status(
            previous, order.reason, order.message, self.now, job=self._state(order.name), pods=pods
        )
        patch = merge_patch((previous or TrialStatus()).to_wire(), status.to_wire())
        await self.rt.kube.patch_trial_status(self.namespace, order.name, patch)
        # Deleting the workload stops every pod of it (its own children go with it).
        resource = self._resource()
        if resource is None:
            await self.rt.kube.delete_job(self.namespace, order.name)
        else:
            await self.rt.kube.delete_custom(resource, self.namespace, order.name)
        self.rt.intake.forget(self.namespace, order.name)
        return status

    async def ask_to_stop(self, request: StopRequest) -> StopReply:
        """The suggestion service's early-stopping answer (it backs off while failing)."""
        return await self.rt.suggestions.stop(self.key, request)

    async def suggest(self, request: SuggestRequest) -> SuggestReply:
        """One suggestion call for every free slot."""
        return await self.rt.suggestions.suggest(self.key, request)

    async def create_trial(self, new: NewTrial, assignment: Assignment) -> TrialView | None:
        """Create the Trial (409: an earlier pass did; the index will show it)."""
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
            return None
        trial = Trial.model_validate(stored)
        self.rt.metrics.trials_created.inc()
        view = _created_view(trial)
        self.state.created[new.name] = view
        self.state.created_trials[new.name] = trial
        return view

    async def start_workload(self, view: TrialView) -> TrialView | None:
        """Render and create the Trial's Job (409: it exists); a template error fails the trial."""
        name = view.name
        indexed = self.trials_by_name.get(name)
        trial = indexed.source if indexed is not None else self.state.created_trials.get(name)
        if trial is None or name in self.state.jobs_created or trial.metadata.uid is None:
            return None
        try:
            token = trial_token(self.rt.token_key, trial.metadata.uid)
            workload = render_trial(
                self.experiment, trial, self.rt.render_settings, token, template_checked=True
            )
            resource = self._resource()
            if resource is None:
                await self.rt.kube.create_job(self.namespace, workload)
            else:
                await self.rt.kube.create_custom(resource, self.namespace, workload)
        except ValueError as error:  # a template that cannot render: the trial fails
            await self._render_failed(trial, str(error))
            return None
        self.state.jobs_created.add(name)
        started = replace(view, has_job=True)
        if name in self.state.created:
            self.state.created[name] = started
        return started

    async def remove_workload(self, view: TrialView) -> TrialView | None:
        """Delete a finished trial's workload; its pods go with it (the Trial stays)."""
        resource = self._resource()
        if resource is None:
            await self.rt.kube.delete_job(self.namespace, view.name)
        else:
            await self.rt.kube.delete_custom(resource, self.namespace, view.name)
        self.state.workloads_removed.add(view.name)
        return replace(view, has_job=False)

    def _resource(self) -> WorkloadResource | None:
        """The enabled resource of the experiment's workload kind; ``None`` for a Job."""
        key = workload_kind(self.experiment.spec.trial_template)
        return None if key == JOB_KIND else self.rt.workloads.get(key)

    async def _render_failed(self, trial: Trial, message: str) -> None:
        status = TrialStatus(
            phase=TrialPhase.FAILED,
            reason="InvalidTemplate",
            message=message[:4096],
            completion_time=self.now,
        )
        await self.rt.kube.patch_trial_status(self.namespace, trial.metadata.name, status.to_wire())
        self._emit("TrialFailed", f"trial {trial.metadata.name}: {message}", True)

    # -- report ----------------------------------------------------------------

    async def write_experiment_status(self, plan: Plan) -> None:
        """Patch the Experiment's status if it changed: at once, or progress at a bounded rate."""
        wire = plan.status.to_wire()
        if plan.status_changed and wire != self.state.written_status and self._status_now(wire):
            patch = merge_patch(dict(self.raw_status or {}), wire)
            await self.rt.kube.patch_experiment_status(self.namespace, self.name, patch)
            self.state.written_status = wire
            self.state.written_at = self.now
            self.state.status_due = False

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

    def emit(self, event: Event) -> None:
        """Post the event on the Experiment."""
        self._emit(*kubernetes_event(event))


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

    async def run(self) -> Plan | None:
        """Check the spec, then execute the plan. Returns the final plan (None: spec unusable)."""
        try:
            spec = ExperimentSpec.model_validate(self.body.get("spec") or {})
        except ValidationError as error:
            problems = [f"spec.{line}" for line in describe_validation_error(error)]
            await self._invalid_spec("; ".join(problems))
            return None
        # What the CRD cannot check (placeholders, reserved names, metric paths) stops the
        # experiment here, before any trial is spent on it; fixing the spec resumes it.
        template_problems = check_template(spec) + self._kind_problems(spec)
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
        ports = ClusterPorts(
            rt=self.rt,
            state=self.state,
            experiment=experiment,
            raw_status=raw_status if isinstance(raw_status, dict) else None,
            children=self.children,
            emit=self.emit,
            now=self.now,
        )
        final = await Execution(
            name=self.name,
            spec=spec,
            now=self.now,
            ports=ports,
            memory=self.state.memory,
            uid=self.uid,
            generation=self.generation,
            previous=self._previous(raw_status),
            policy=Policy(
                stall_after=self.rt.stall_after, workload_retention=self.rt.workload_retention
            ),
        ).run()
        self._report(final)
        return final

    def _kind_problems(self, spec: ExperimentSpec) -> list[str]:
        """A workload kind this installation does not run (its RBAC grants nothing for it)."""
        key = workload_kind(spec.trial_template)
        if key == JOB_KIND or key in self.rt.workloads:
            return []
        api_version, kind = key
        return [
            f"{workload_field(spec.trial_template)}: this kubesweep installation does not run "
            f"{kind} ({api_version}) trials; a platform team enables them in the chart's "
            "values (trialWorkloads), which grants the operator access to them"
        ]

    def _previous(self, raw: object) -> ExperimentStatus | None:
        if not isinstance(raw, dict) or not raw:
            return None
        try:
            return ExperimentStatus.model_validate(raw)
        except ValidationError:
            logger.warning("ignoring unreadable status of %s/%s", self.namespace, self.name)
            return None

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
