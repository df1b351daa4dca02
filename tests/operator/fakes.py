"""An in-memory API server and suggestion service, enough to drive reconciliation passes."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Set
from datetime import UTC, datetime, timedelta
from typing import Any

from kubesweep.api.suggestion_wire import StopReply, StopRequest, SuggestReply, SuggestRequest
from kubesweep.metrics.observation import Observation
from kubesweep.metrics.reduce import SeriesReducer
from kubesweep.metrics.wire import Summary, encode_summary
from kubesweep.operator.children import PodRecord, slim_job, slim_trial, slim_workload
from kubesweep.operator.directory import Directory, trial_entry
from kubesweep.operator.intake import Intake
from kubesweep.operator.reconciler import Children, ExperimentState, reconcile
from kubesweep.operator.runtime import Runtime
from kubesweep.operator.suggestions import Backoff, SuggestionClient, SuggestionUnavailable
from kubesweep.operator.workloads import WorkloadResource
from kubesweep.planning import Plan, PodView
from kubesweep.podcontract import wrap_command
from kubesweep.rendering import RenderSettings

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def apply_merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            apply_merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeKube:
    """Trials and Jobs in dicts; creation is idempotent like the API server's."""

    def __init__(self) -> None:
        self.trials: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        #: Workloads of other kinds (JobSets, ...) by name.
        self.workloads: dict[str, dict[str, Any]] = {}
        self.experiment_status: dict[str, Any] = {}
        self.pods: dict[str, list[PodRecord]] = {}
        self.uids = itertools.count()
        self.trial_creates = 0
        self.conflicts = 0
        self.writes = 0
        self.experiment_patches = 0

    async def create_trial(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        name = body["metadata"]["name"]
        if name in self.trials:
            self.conflicts += 1
            return None
        stored = copy.deepcopy(body)
        stored["metadata"]["uid"] = f"uid-{next(self.uids)}"
        self.trials[name] = stored
        self.trial_creates += 1
        self.writes += 1
        return copy.deepcopy(stored)

    async def create_job(self, namespace: str, body: dict[str, Any]) -> bool:
        name = body["metadata"]["name"]
        if name in self.jobs:
            return False
        self.jobs[name] = copy.deepcopy(body)
        self.writes += 1
        return True

    async def delete_job(self, namespace: str, name: str) -> None:
        self.jobs.pop(name, None)
        self.writes += 1

    async def create_custom(
        self, resource: WorkloadResource, namespace: str, body: dict[str, Any]
    ) -> bool:
        name = body["metadata"]["name"]
        if name in self.workloads:
            return False
        assert (body["apiVersion"], body["kind"]) == resource.key
        self.workloads[name] = copy.deepcopy(body)
        self.writes += 1
        return True

    async def delete_custom(self, resource: WorkloadResource, namespace: str, name: str) -> None:
        self.workloads.pop(name, None)
        self.writes += 1

    async def patch_trial_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        if name in self.trials:
            apply_merge_patch(self.trials[name].setdefault("status", {}), patch)
            self.writes += 1

    async def patch_experiment_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        apply_merge_patch(self.experiment_status, patch)
        self.writes += 1
        self.experiment_patches += 1

    def children(self) -> Children:
        trials = [t for t in (slim_trial(b) for b in self.trials.values()) if t is not None]
        jobs = {n: slim_job(j) for n, j in self.jobs.items()}
        jobs.update({n: slim_workload(w) for n, w in self.workloads.items()})
        return Children(trials=trials, jobs=jobs, pods=dict(self.pods))

    def index_into(self, directory: Directory) -> None:
        """Fill the intake's directory as the operator's Trial stream does."""
        for trial in (slim_trial(b) for b in self.trials.values()):
            if trial is not None and trial.uid:
                key = (trial.namespace or "ns", trial.name)
                directory.trials[key] = trial_entry(trial, trial.uid)

    # -- what the job controller and the collector would do ------------------

    def finish_jobs(self, now: datetime, objective: Any, *, fail: Set[str] = frozenset()) -> None:
        """Complete (or fail) every running Job; report ``objective(trial)`` as intake would."""
        done = (now - timedelta(minutes=1)).isoformat()
        for name, job in self.jobs.items():
            if job.get("status"):
                continue
            if name in fail:
                job["status"] = {
                    "conditions": [
                        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
                    ]
                }
                continue
            job["status"] = {
                "startTime": done,
                "completionTime": done,
                "conditions": [{"type": "Complete", "status": "True"}],
            }
            trial = self.trials[name]
            value = objective(trial)
            trial.setdefault("status", {})["objective"] = value
            self.pods[name] = [collector_pod(name, [value])]


def collector_pod(name: str, losses: list[float]) -> PodRecord:
    """A Succeeded trial pod whose collector left the summary of ``losses`` (one per step)."""
    reducer = SeriesReducer(priority=["loss"], best={"loss": "min"})
    reducer.extend(Observation("loss", value, step=i) for i, value in enumerate(losses))
    message = encode_summary(Summary.of(reducer, "loss"))
    return PodRecord(view=PodView(f"{name}-pod", "Succeeded"), summary_message=message)


class FakeBackend:
    """Assignments ``lr = 0.01 * k``; can be made to fail, or to stop trials.

    It answers the bodies as the service receives them (``calls`` records them).
    """

    def __init__(self) -> None:
        self.counter = itertools.count(1)
        self.down = False
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.stop_names: list[str] = []
        self.limit: int | None = None  # an exhaustible space

    async def call(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((endpoint, body))
        if self.down:
            raise SuggestionUnavailable("the suggestion service at http://s is unreachable")
        if endpoint == "stop":
            return {
                "stop": [{"name": n, "reason": "worse than the median"} for n in self.stop_names]
            }
        assignments: list[dict[str, Any]] = []
        for _ in range(body["count"]):
            k = next(self.counter)
            if self.limit is not None and k > self.limit:
                return {"assignments": assignments, "exhausted": True}
            assignments.append({"parameters": {"lr": round(0.001 * k, 6)}})
        return {"assignments": assignments}

    async def suggest(self, request: SuggestRequest) -> SuggestReply:
        return SuggestReply.model_validate(await self.call("suggest", request.to_wire()))

    async def stop(self, request: StopRequest) -> StopReply:
        return StopReply.model_validate(await self.call("stop", request.to_wire()))

    async def close(self) -> None:
        pass


def make_runtime(
    kube: FakeKube, backend: FakeBackend, workloads: tuple[WorkloadResource, ...] = ()
) -> Runtime:
    directory = Directory()
    return Runtime(
        kube=kube,
        suggestions=SuggestionClient(backend, backoff=Backoff(base=0.0, maximum=0.0)),
        intake=Intake(directory, b"k", kube.patch_trial_status),
        directory=directory,
        render_settings=RenderSettings(
            collector_image="collector:test",
            intake_url="http://intake",
            wrap_command=wrap_command,
        ),
        token_key=b"k",
        stall_after=timedelta(seconds=30),
        workloads={resource.key: resource for resource in workloads},
    )


def experiment_body(budget: dict[str, Any], kube: FakeKube, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "exp", "namespace": "ns", "uid": "exp-uid", "generation": 1},
        "spec": {
            "objective": {"metric": "loss", "direction": "minimize", **spec.pop("objective", {})},
            "algorithm": {"name": "random"},
            "parameters": [{"name": "lr", "type": "float", "min": 0.0001, "max": 0.1}],
            "budget": budget,
            "trialTemplate": {
                "primaryContainer": "main",
                "job": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "trainer",
                                    "command": ["python", "train.py"],
                                }
                            ]
                        }
                    }
                },
            },
            **spec,
        },
        "status": kube.experiment_status,
    }


class Driver:
    """Runs passes like the daemon does, with the clock under control."""

    def __init__(self, budget: dict[str, Any], **spec: Any) -> None:
        self.kube = FakeKube()
        self.backend = FakeBackend()
        self.rt = make_runtime(self.kube, self.backend)
        self.state = ExperimentState()
        self.body = experiment_body(budget, self.kube, **spec)
        self.events: list[tuple[str, str]] = []
        self.now = T0

    async def step(
        self,
        children: Children | None = None,
        state: ExperimentState | None = None,
        advance: timedelta = timedelta(seconds=10),
    ) -> Plan | None:
        self.body["status"] = copy.deepcopy(self.kube.experiment_status)
        self.kube.index_into(self.rt.directory)
        plan = await reconcile(
            rt=self.rt,
            state=state or self.state,
            body=self.body,
            children=children or self.kube.children(),
            emit=lambda reason, message, warning: self.events.append((reason, message)),
            now=self.now,
        )
        self.now += advance
        return plan
