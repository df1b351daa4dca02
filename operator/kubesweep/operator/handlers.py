"""kopf registrations: one daemon per Experiment, woken by changes to its children.

Why a daemon: each Experiment gets one long-lived task that runs a pass,
then sleeps until something about the experiment changes (its spec, a Trial,
a Job, a pod) or a timer is due (resync, deadline, suggestion backoff). Passes
of one experiment therefore never overlap, and kopf stops the task when the
operator pauses for a peer (HA) or exits. kopf requires a finalizer for
daemons; it is named ``kubesweep.io/finalizer`` and removed as soon as the
daemon has stopped (deletion waits for a running operator).

Children (Trials, workloads, pods) are tracked by the operator's own list-and-watch
streams (:mod:`kubesweep.operator.informer`), not by kopf indexes, whose start-up
is quadratic in the number of objects (see :mod:`kubesweep.operator.children`).
No daemon plans before every stream has listed once, so a restarted operator
plans from the whole picture; kopf itself watches only Experiments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from kubesweep.api import GROUP, VERSION
from kubesweep.operator.children import Key, Kind, plain
from kubesweep.operator.config import OperatorConfig
from kubesweep.operator.directory import trial_entry
from kubesweep.operator.informer import Informer
from kubesweep.operator.reconciler import (
    STATUS_INTERVAL,
    Children,
    ExperimentState,
    reconcile,
)
from kubesweep.operator.runtime import Runtime, build_runtime

logger = logging.getLogger(__name__)

PREFIX = "kubesweep.io"
FINALIZER = f"{PREFIX}/finalizer"
#: The shortest pause between two passes of one experiment.
DEBOUNCE_SECONDS = 0.3


class Operator:
    """The operator's handlers and per-experiment state, bound to one kopf registry."""

    def __init__(self, config: OperatorConfig, runtime: Runtime | None = None) -> None:
        self.config = config
        self.runtime = runtime
        self.registry = kopf.OperatorRegistry()
        self.wakeups: dict[Key, asyncio.Event] = {}
        self.states: dict[Key, ExperimentState] = {}
        self.semaphore = asyncio.Semaphore(config.concurrency)
        self.informer: Informer | None = None
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
                operator.runtime = await build_runtime(operator.config)
            operator.runtime.intake.start()
            if operator.informer is None and operator.runtime.raw_api is not None:
                operator.informer = Informer(
                    operator.runtime.raw_api,
                    operator.config.namespaces,
                    operator.on_child_change,
                    workloads=operator.config.trial_workloads,
                )
                operator.informer.start()

        @kopf.on.login(id="login", registry=reg)
        def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
            # A private registry has none of kopf's default login handlers.
            info: kopf.ConnectionInfo | None = kopf.login_with_service_account(
                **kwargs
            ) or kopf.login_with_kubeconfig(**kwargs)
            return info

        @kopf.on.cleanup(id="cleanup", registry=reg)
        async def cleanup(**_: Any) -> None:
            if operator.informer is not None:
                await operator.informer.stop()
                operator.informer = None
            if operator.runtime is not None:
                await operator.runtime.intake.stop()
                await operator.runtime.suggestions.close()
                await operator.runtime.close()

        @kopf.on.probe(id="experiments", registry=reg)
        def probe(**_: Any) -> int:
            return len(operator.states)

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

    def on_child_change(
        self, kind: Kind, event_type: str, body: dict[str, Any], experiments: set[Key]
    ) -> None:
        """After the index took a change: update the intake's directory, wake the daemons."""
        if kind is Kind.TRIALS:
            meta = body.get("metadata") or {}
            self.track_trial(event_type, str(meta.get("namespace")), str(meta.get("name")))
        for namespace, experiment in experiments:
            self.wake(namespace, experiment)

    def track_trial(self, event_type: str, namespace: str, name: str) -> None:
        """Keep the intake's directory in step with the indexed Trials."""
        rt = self.runtime
        if rt is None or self.informer is None:
            return
        key = (namespace, name)
        trial = self.informer.index.trial(namespace, name)
        if event_type == "DELETED" or trial is None or not trial.uid:
            if rt.directory.trials.pop(key, None) is not None:
                rt.intake.forget(namespace, name)
            return
        entry = rt.directory.trials[key] = trial_entry(trial, trial.uid)
        if entry.finished:
            rt.intake.forget(namespace, name)  # its final metrics are written

    def children(self, namespace: str, name: str) -> Children:
        """An experiment's children as the index holds them now."""
        assert self.informer is not None, "the informer starts at startup"
        index = self.informer.index
        trials = index.trials((namespace, name))
        jobs = {}
        pods = {}
        for trial in trials:
            trial_name = trial.name
            job = index.job(namespace, trial_name) or index.workload(namespace, trial_name)
            if job is not None:
                jobs[trial_name] = job
            pods[trial_name] = index.pods(namespace, trial_name)
        return Children(trials=trials, jobs=jobs, pods=pods)

    async def run_daemon(
        self,
        *,
        body: kopf.Body,
        namespace: str,
        name: str,
        stopped: kopf.DaemonStopped,
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

        assert self.informer is not None, "the informer starts at startup"
        await _until(self.informer.ready(), stopped)
        while not stopped:
            wake.clear()
            delay = self.config.resync_seconds
            try:
                children = self.children(namespace, name)
                trials = children.trials
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


async def _until(ready: Any, stopped: kopf.DaemonStopped) -> None:
    """Wait for ``ready`` (an awaitable) unless the daemon is stopped first."""
    waiter = asyncio.ensure_future(ready)
    stopper = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, stopper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


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
