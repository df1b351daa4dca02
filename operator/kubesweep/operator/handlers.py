"""kopf registrations: indexes of children, wake-ups on change, one daemon per Experiment.

Why a daemon: each Experiment gets one long-lived task that runs a pass,
then sleeps until something about the experiment changes (its spec, a Trial,
a Job, a pod) or a timer is due (resync, deadline, suggestion backoff). Passes
of one experiment therefore never overlap, and kopf stops the task when the
operator pauses for a peer (HA) or exits. kopf requires a finalizer for
daemons; it is named ``kubesweep.io/finalizer`` and removed as soon as the
daemon has stopped (deletion waits for a running operator).

Children are tracked by kopf indexes, which kopf fills completely before any
daemon starts, so a restarted operator plans from the whole picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from kubesweep.api import GROUP, VERSION, Trial
from kubesweep.operator.config import OperatorConfig
from kubesweep.operator.directory import TrialEntry
from kubesweep.operator.reconciler import (
    STATUS_INTERVAL,
    Children,
    ExperimentState,
    PodRecord,
    Runtime,
    reconcile,
)
from kubesweep.planning import PodView
from kubesweep.planning.trial_status import parse_time
from kubesweep.rendering import COLLECTOR_NAME, LABEL_EXPERIMENT, LABEL_TRIAL

logger = logging.getLogger(__name__)

PREFIX = "kubesweep.io"
FINALIZER = f"{PREFIX}/finalizer"
#: The shortest pause between two passes of one experiment.
DEBOUNCE_SECONDS = 0.3
Key = tuple[str, str]


def plain(value: Any) -> Any:
    """kopf's mapping views as plain dicts and lists, for pydantic and merge patches."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def slim_trial(body: Mapping[str, Any]) -> Trial | None:
    """A Trial from its body, without the metadata kubesweep never reads."""
    meta = body.get("metadata", {})
    try:
        return Trial.model_validate(
            {
                "metadata": {
                    "name": meta.get("name"),
                    "namespace": meta.get("namespace"),
                    "uid": meta.get("uid"),
                    "labels": dict(meta.get("labels") or {}),
                },
                "spec": plain(body.get("spec")),
                "status": plain(body.get("status")) or None,
            }
        )
    except ValidationError as error:
        logger.warning("ignoring malformed Trial %s: %s", meta.get("name"), error)
        return None


def slim_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Job that status derivation reads."""
    spec = body.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})

    def resources(containers: Any) -> list[dict[str, Any]]:
        return [{"resources": dict(c.get("resources") or {})} for c in containers or []]

    return {
        "metadata": {"name": body.get("metadata", {}).get("name")},
        "spec": {
            "suspend": bool(spec.get("suspend")),
            "template": {
                "spec": {
                    "containers": resources(pod.get("containers")),
                    "initContainers": resources(pod.get("initContainers")),
                }
            },
        },
        "status": dict(body.get("status") or {}),
    }


def pod_record(body: Mapping[str, Any]) -> PodRecord:
    """What a trial pod tells: phase, start, why it waits, the collector's summary."""
    status = body.get("status") or {}
    unschedulable = None
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            unschedulable = str(condition.get("message") or "no node fits the pod")
    waiting = None
    for container in status.get("containerStatuses") or []:
        reason = (container.get("state") or {}).get("waiting", {}).get("reason")
        if reason and reason not in ("ContainerCreating", "PodInitializing"):
            waiting = str(reason)
    summary = None
    for container in status.get("initContainerStatuses") or []:
        if container.get("name") != COLLECTOR_NAME:
            continue
        for state_key in ("state", "lastState"):
            terminated = (container.get(state_key) or {}).get("terminated") or {}
            if terminated.get("message"):
                summary = str(terminated["message"])
                break
    view = PodView(
        name=str(body.get("metadata", {}).get("name")),
        phase=str(status.get("phase") or "Pending"),
        start_time=parse_time(status.get("startTime")),
        unschedulable_message=unschedulable,
        waiting_reason=waiting,
    )
    return PodRecord(view=view, summary_message=summary)


class Operator:
    """The operator's handlers and per-experiment state, bound to one kopf registry."""

    def __init__(self, config: OperatorConfig, runtime: Runtime | None = None) -> None:
        self.config = config
        self.runtime = runtime
        self.registry = kopf.OperatorRegistry()
        self.wakeups: dict[Key, asyncio.Event] = {}
        self.states: dict[Key, ExperimentState] = {}
        self.semaphore = asyncio.Semaphore(config.concurrency)
        self._register()

    def wake(self, namespace: str | None, experiment: str | None) -> None:
        """Make the experiment's daemon run a pass now."""
        if namespace and experiment:
            event = self.wakeups.get((namespace, experiment))
            if event is not None:
                event.set()

    def _register(self) -> None:
        reg = self.registry
        operator = self

        @kopf.on.startup(id="configure", registry=reg)
        async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
            settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
                prefix=PREFIX, key="last-handled-configuration"
            )
            settings.persistence.finalizer = FINALIZER
            settings.posting.level = logging.INFO
            settings.watching.server_timeout = 300
            # The resources are known and the namespaces given: no cluster-wide listing of
            # CRDs or namespaces, so the operator needs no permission beyond its Role.
            settings.scanning.disabled = True
            if operator.runtime is None:
                from kubesweep.operator.main import build_runtime

                operator.runtime = await build_runtime(operator.config)
            operator.runtime.intake.start()

        @kopf.on.login(id="login", registry=reg)
        def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
            # A private registry has none of kopf's default login handlers.
            info: kopf.ConnectionInfo | None = kopf.login_with_service_account(
                **kwargs
            ) or kopf.login_with_kubeconfig(**kwargs)
            return info

        @kopf.on.cleanup(id="cleanup", registry=reg)
        async def cleanup(**_: Any) -> None:
            if operator.runtime is not None:
                await operator.runtime.intake.stop()
                await operator.runtime.suggestions.close()
                await operator.runtime.close()

        @kopf.on.probe(id="experiments", registry=reg)
        def probe(**_: Any) -> int:
            return len(operator.states)

        @kopf.index(GROUP, VERSION, "trials", id="trials_idx", registry=reg)
        def trials_idx(**kwargs: Any) -> dict[Key, Trial]:
            trial = slim_trial(kwargs["body"])
            return {} if trial is None else {(kwargs["namespace"], trial.spec.experiment): trial}

        @kopf.index(
            "batch", "v1", "jobs", id="jobs_idx", labels={LABEL_TRIAL: kopf.PRESENT}, registry=reg
        )
        def jobs_idx(**kwargs: Any) -> dict[Key, dict[str, Any]]:
            trial = kwargs["labels"][LABEL_TRIAL]
            return {(kwargs["namespace"], trial): slim_job(kwargs["body"])}

        @kopf.index(
            "", "v1", "pods", id="pods_idx", labels={LABEL_TRIAL: kopf.PRESENT}, registry=reg
        )
        def pods_idx(**kwargs: Any) -> dict[Key, PodRecord]:
            trial = kwargs["labels"][LABEL_TRIAL]
            return {(kwargs["namespace"], trial): pod_record(kwargs["body"])}

        @kopf.on.event(GROUP, VERSION, "trials", id="trial_event", registry=reg)
        def trial_event(**kwargs: Any) -> None:
            namespace, body = kwargs["namespace"], kwargs["body"]
            operator.track_trial(kwargs["type"], namespace, kwargs["name"], body)
            operator.wake(namespace, (body.get("spec") or {}).get("experiment"))

        @kopf.on.event(
            "batch", "v1", "jobs", id="job_event", labels={LABEL_TRIAL: kopf.PRESENT}, registry=reg
        )
        def job_event(**kwargs: Any) -> None:
            operator.wake(kwargs["namespace"], kwargs["labels"].get(LABEL_EXPERIMENT))

        @kopf.on.event(
            "", "v1", "pods", id="pod_event", labels={LABEL_TRIAL: kopf.PRESENT}, registry=reg
        )
        def pod_event(**kwargs: Any) -> None:
            operator.wake(kwargs["namespace"], kwargs["labels"].get(LABEL_EXPERIMENT))

        @kopf.on.event(GROUP, VERSION, "experiments", id="experiment_event", registry=reg)
        def experiment_event(**kwargs: Any) -> None:
            namespace, name = kwargs["namespace"], kwargs["name"]
            if kwargs["type"] == "DELETED":
                operator.states.pop((namespace, name), None)
                operator.wakeups.pop((namespace, name), None)
                if operator.runtime is not None:
                    operator.runtime.directory.objectives.pop((namespace, name), None)
            else:
                operator.wake(namespace, name)

        @kopf.daemon(
            GROUP, VERSION, "experiments", id="reconcile", cancellation_timeout=10.0, registry=reg
        )
        async def experiment_daemon(**kwargs: Any) -> None:
            await operator.run_daemon(**kwargs)

    def track_trial(self, type_: str | None, namespace: str, name: str, body: Any) -> None:
        """Keep the intake's directory in step with Trial events."""
        rt = self.runtime
        if rt is None:
            return
        key = (namespace, name)
        if type_ == "DELETED":
            rt.directory.trials.pop(key, None)
            rt.intake.forget(namespace, name)
            return
        trial = slim_trial(body)
        if trial is not None and trial.metadata.uid:
            status = trial.status
            rt.directory.trials[key] = TrialEntry(
                uid=trial.metadata.uid,
                experiment=trial.spec.experiment,
                finished=bool(status and status.phase.is_finished),
                metrics=tuple(status.metrics) if status else (),
                curve=tuple(status.curve) if status else (),
            )

    async def run_daemon(
        self,
        *,
        body: kopf.Body,
        namespace: str,
        name: str,
        stopped: kopf.DaemonStopped,
        trials_idx: Any,
        jobs_idx: Any,
        pods_idx: Any,
        **_: Any,
    ) -> None:
        """Pass, sleep until woken or due, repeat, until kopf stops the daemon."""
        key = (namespace, name)
        wake = self.wakeups.setdefault(key, asyncio.Event())
        state = self.states.setdefault(key, ExperimentState())
        rt = self.runtime
        assert rt is not None, "the runtime is built at startup"

        def emit(reason: str, message: str, warning: bool) -> None:
            kopf.event(
                body, type="Warning" if warning else "Normal", reason=reason, message=message[:1000]
            )

        while not stopped:
            wake.clear()
            delay = self.config.resync_seconds
            try:
                trials = list(trials_idx.get(key, []))
                names = {t.metadata.name for t in trials}
                jobs = {n: next(iter(jobs_idx.get((namespace, n), [])), None) for n in names}
                children = Children(
                    trials=trials,
                    jobs={n: j for n, j in jobs.items() if j is not None},
                    pods={n: list(pods_idx.get((namespace, n), [])) for n in names},
                )
                async with self.semaphore:
                    plan = await reconcile(
                        rt=rt,
                        state=state,
                        body=plain(body),
                        children=children,
                        emit=emit,
                        now=datetime.now(UTC),
                    )
                if plan is not None:
                    if plan.requeue_after is not None:
                        delay = min(delay, plan.requeue_after.total_seconds() + 0.5)
                    if (
                        any(
                            t.status.reason == "CollectingMetrics"
                            for t in trials
                            if t.status is not None
                        )
                        or state.created
                    ):
                        delay = min(delay, 2.0)
                if state.status_due:
                    delay = min(delay, STATUS_INTERVAL.total_seconds())
                if state.health.error is not None:
                    backoff = rt.suggestions.backoff.remaining(body["metadata"].get("uid") or "")
                    delay = min(delay, max(backoff, 0.5))
            except ApiException as error:  # the API refused: say what, without a trace
                logger.warning(
                    "reconciling %s/%s: the API answered %s %s; retrying",
                    namespace,
                    name,
                    error.status,
                    error.reason,
                )
                rt.metrics.reconcile_errors.inc()
                delay = min(delay, 5.0)
            except Exception:
                logger.exception("reconciling %s/%s failed; retrying", namespace, name)
                rt.metrics.reconcile_errors.inc()
                delay = min(delay, 5.0)
            # Events come in bursts (pod, Job and Trial of one transition): a short
            # pause lets one pass see them all, and write status once.
            await _sleep(wake, stopped, DEBOUNCE_SECONDS)
            await _sleep(wake, stopped, max(0.0, delay - DEBOUNCE_SECONDS))


async def _sleep(wake: asyncio.Event, stopped: kopf.DaemonStopped, delay: float) -> None:
    async def until_stopped() -> None:
        await stopped.wait()

    waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(until_stopped())}
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
