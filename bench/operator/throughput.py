"""Trial throughput with 20 experiments at once, beside two peers on the same cluster.

Issue 5's goal is that throughput is limited by the API server, not by the
operator. A rate alone cannot tell which part limits it, so the same run also
measures, against the same API server and node:

- **API server peer**: a plain client loop creating (suspended, so pod-less)
  Jobs, one connection at a time and from several threads: the write rate the
  API server sustains here, to compare with the writes a trial costs;
- **no-operator peer**: the very Jobs the operator rendered (collector sidecar,
  stdout wrapper and all), re-created by a closed loop that keeps the same
  number in flight and replaces each as soon as it completes: what the Job
  controller, scheduler and process node deliver with a controller that costs
  nothing. The operator's rate over this peer's is the operator's efficiency.

Stage timings per trial (Job created -> pod created -> bound -> running ->
finished -> Job complete -> Trial finished) show where a trial's time goes,
and the CPU time of each process shows who was busy.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.operator.common import (
    API,
    LABEL_TRIAL,
    Bench,
    Watcher,
    experiment,
    load_average,
    log,
    median,
    operator_pid,
    path_for,
    sample_process,
)

NAMESPACE = "bench-op-throughput"
PEER_NAMESPACE = "bench-op-peer"
FINISHED = ("Succeeded", "Failed", "EarlyStopped", "MetricsUnavailable")


def _job_done(obj: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


class Timeline:
    """First-seen times of each stage of each trial (keyed by Job name), from watches."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stages: dict[str, dict[str, float]] = {}
        self.changed = threading.Condition(self.lock)

    def mark(self, key: str, stage: str, now: float) -> None:
        with self.lock:
            self.stages.setdefault(key, {}).setdefault(stage, now)
            self.changed.notify_all()

    def on_job(self, now: float, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if kind == "ADDED":
            self.mark(name, "job", now)
        if _job_done(obj):
            self.mark(name, "job_done", now)

    def on_pod(self, now: float, _kind: str, obj: dict[str, Any]) -> None:
        job = (obj["metadata"].get("labels") or {}).get("job-name")
        if not job:
            return
        self.mark(job, "pod", now)
        if obj.get("spec", {}).get("nodeName"):
            self.mark(job, "bound", now)
        phase = (obj.get("status") or {}).get("phase")
        if phase in ("Running", "Succeeded", "Failed"):
            self.mark(job, "running", now)
        if phase in ("Succeeded", "Failed"):
            self.mark(job, "pod_done", now)

    def on_trial(self, now: float, _kind: str, obj: dict[str, Any]) -> None:
        if (obj.get("status") or {}).get("phase") in FINISHED:
            self.mark(obj["metadata"]["name"], "trial_done", now)

    def count(self, stage: str) -> int:
        with self.lock:
            return sum(1 for s in self.stages.values() if stage in s)

    def times(self, stage: str) -> list[float]:
        with self.lock:
            return sorted(s[stage] for s in self.stages.values() if stage in s)

    def gaps(self, first: str, second: str) -> list[float]:
        with self.lock:
            return [
                s[second] - s[first] for s in self.stages.values() if first in s and second in s
            ]


def _rate(times: list[float], start: float) -> float:
    """Events per second from ``start`` to the last event."""
    return len(times) / (times[-1] - start) if times and times[-1] > start else float("nan")


def _steady_rate(times: list[float]) -> float:
    """Events per second between the first and the last, i.e. once the pipeline is full."""
    if len(times) < 2 or times[-1] <= times[0]:
        return float("nan")
    return (len(times) - 1) / (times[-1] - times[0])


def _stages(timeline: Timeline, trial: bool) -> dict[str, float]:
    pairs = [
        ("job", "pod", "Job -> pod created (Job controller)"),
        ("pod", "bound", "pod -> bound (scheduler)"),
        ("bound", "running", "bound -> running (node)"),
        ("running", "pod_done", "running -> pod finished (node, trial program)"),
        ("pod_done", "job_done", "pod finished -> Job complete (Job controller)"),
    ]
    if trial:
        pairs.append(("job_done", "trial_done", "Job complete -> Trial finished (operator)"))
    return {label: median(timeline.gaps(a, b)) for a, b, label in pairs}


class CpuMeter:
    """CPU seconds of the cluster's and the stack's processes between two readings."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before = self._read()
        self.started = time.monotonic()

    def _read(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, pid in self.pids.items():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            # utime, stime, and children's cutime, cstime (the node's pod processes).
            out[name] = sum(int(x) for x in stat[11:15]) / 100
        return out

    def read(self) -> dict[str, dict[str, float]]:
        after = self._read()
        wall = time.monotonic() - self.started
        return {
            name: {
                "cpu_s": after[name] - self.before.get(name, 0.0),
                "cores": (after[name] - self.before.get(name, 0.0)) / wall,
            }
            for name in after
        }


def _pids(bench: Bench, stack_pids: dict[str, int]) -> dict[str, int]:
    return {**bench.info.pids, **stack_pids}


def operator_run(
    bench: Bench,
    experiments: int,
    trials: int,
    parallel: int,
    peer: Callable[[dict[str, Any]], dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """20 experiments at once through the operator, then ``peer`` with a rendered Job."""
    ns = bench.namespace(NAMESPACE)
    timeline = Timeline()
    watchers = [
        Watcher(bench.kube, path_for("batch/v1", "jobs", ns), timeline.on_job).start(),
        Watcher(bench.kube, path_for("v1", "pods", ns), timeline.on_pod).start(),
        Watcher(bench.kube, path_for(API, "trials", ns), timeline.on_trial).start(),
    ]
    names = [f"tp-{i}" for i in range(experiments)]
    try:
        with bench.stack(ns, "throughput") as stack:
            assert stack.suggestion is not None
            assert stack.suggestion.popen is not None
            pid = operator_pid(stack)
            cpu = CpuMeter(
                _pids(bench, {"operator": pid, "suggestion": stack.suggestion.popen.pid})
            )
            rss_before = sample_process(pid)
            start = time.monotonic()
            for name in names:
                bench.kube.create(
                    path_for(API, "experiments", ns), experiment(name, trials, parallel)
                )
            created = time.monotonic() - start
            bench.wait(lambda: bench.experiments_ended(ns, names), 1200, "the sweeps to end", 2.0)
            ended = time.monotonic()
            busy = cpu.read()
            rss_after = sample_process(pid)
            job = bench.kube.list(path_for("batch/v1", "jobs", ns))[0]
            phases = Counter(
                (t.get("status") or {}).get("phase", "Pending")
                for t in bench.kube.list(path_for(API, "trials", ns))
            )
            peer_result = peer(job)
    finally:
        for watcher in watchers:
            watcher.stop()
        bench.drop_namespace(ns)
    total = experiments * trials
    started_at = timeline.times("job")
    done_at = timeline.times("trial_done")
    result = {
        "experiments": experiments,
        "trials_per_experiment": trials,
        "parallel_per_experiment": parallel,
        "in_flight": experiments * parallel,
        "trials": total,
        "trial_phases": dict(phases),
        "create_experiments_s": created,
        "elapsed_s": ended - start,
        "started_per_s": _rate(started_at, start),
        "started_per_s_steady": _steady_rate(started_at),
        "completed_per_s": _rate(done_at, start),
        "completed_per_s_steady": _steady_rate(done_at),
        "first_job_after_s": started_at[0] - start if started_at else float("nan"),
        "stages_median_s": _stages(timeline, trial=True),
        "cpu": busy,
        "operator_rss_mib": {"before": rss_before.rss_mib, "after": rss_after.rss_mib},
        "load_average": load_average(),
    }
    log(
        f"throughput: {total} trials in {result['elapsed_s']:.0f}s, "
        f"{result['completed_per_s']:.2f} completed/s"
    )
    return result, peer_result


def _bare_job(rendered: dict[str, Any], name: str) -> dict[str, Any]:
    """The operator's Job under a new name, with no owner and no kubesweep labels.

    Its collector gets no intake address: the copies belong to no trial the
    intake knows, and a collector told to push would retry its batches until its
    grace period ends, making the peer's pods slower than the operator's. Without
    an address it writes its summary and exits as promptly as a collector whose
    pushes were accepted.
    """
    job = copy.deepcopy(rendered)
    pod_spec = job["spec"]["template"]["spec"]
    for container in [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]:
        container["env"] = [
            e for e in container.get("env", []) if e.get("name") != "KUBESWEEP_INTAKE_URL"
        ]
    meta = {"name": name, "labels": {"bench": "peer"}}
    job["metadata"] = meta
    spec = job["spec"]
    spec.pop("selector", None)
    template_meta = spec["template"].setdefault("metadata", {})
    template_meta["labels"] = {"bench": "peer"}
    template_meta.pop("annotations", None)
    job.pop("status", None)
    return job


def closed_loop_peer(
    bench: Bench, rendered: dict[str, Any], total: int, in_flight: int
) -> dict[str, Any]:
    """Keep ``in_flight`` copies of the operator's Job running until ``total`` completed."""
    ns = bench.namespace(PEER_NAMESPACE)
    timeline = Timeline()
    watchers = [
        Watcher(bench.kube, path_for("batch/v1", "jobs", ns), timeline.on_job).start(),
        Watcher(bench.kube, path_for("v1", "pods", ns), timeline.on_pod).start(),
    ]
    path = path_for("batch/v1", "jobs", ns)
    cpu = CpuMeter(_pids(bench, {}))
    start = time.monotonic()
    issued = 0
    try:
        with timeline.changed:
            while True:
                done = sum(1 for s in timeline.stages.values() if "job_done" in s)
                if done >= total:
                    break
                while issued < total and issued - done < in_flight:
                    timeline.lock.release()
                    try:
                        bench.kube.create(path, _bare_job(rendered, f"peer-{issued}"))
                    finally:
                        timeline.lock.acquire()
                    issued += 1
                if not timeline.changed.wait(timeout=600):
                    raise TimeoutError("the no-operator peer made no progress in 600 s")
        elapsed = time.monotonic() - start
        busy = cpu.read()
    finally:
        for watcher in watchers:
            watcher.stop()
        bench.drop_namespace(ns)
    started_at = timeline.times("job")
    done_at = timeline.times("job_done")
    result = {
        "jobs": total,
        "in_flight": in_flight,
        "elapsed_s": elapsed,
        "started_per_s": _rate(started_at, start),
        "completed_per_s": _rate(done_at, start),
        "completed_per_s_steady": _steady_rate(done_at),
        "stages_median_s": _stages(timeline, trial=False),
        "cpu": busy,
    }
    log(f"no-operator peer: {total} Jobs, {result['completed_per_s']:.2f} completed/s")
    return result


def api_peer(bench: Bench, creates: int, threads: tuple[int, ...] = (1, 8)) -> dict[str, Any]:
    """Suspended Jobs created by a plain loop: the API server's write rate here.

    The loop keeps its connections alive (:class:`~bench.operator.common.KeepAliveKube`),
    as the operator's client does, so it measures request handling, not TLS handshakes.
    """
    ns = bench.namespace(PEER_NAMESPACE)
    path = path_for("batch/v1", "jobs", ns)

    def body(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "labels": {LABEL_TRIAL: "no", "bench": "api"}},
            "spec": {
                "suspend": True,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {"name": "c", "image": "none", "command": ["true"]},
                        ],
                    }
                },
            },
        }

    result: dict[str, Any] = {}
    try:
        for workers in threads:

            def create(i: int, w: int = workers) -> None:
                bench.bulk.create_once(path, body(f"api-{w}-{i}"))

            start = time.monotonic()
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(create, range(creates)))
            rate = creates / (time.monotonic() - start)
            result[f"job_creates_per_s_{workers}_clients"] = rate
            log(f"API server peer: {rate:.0f} Job creates/s with {workers} client(s)")
    finally:
        bench.drop_namespace(ns)
    result["creates"] = creates
    return result


def run(
    bench: Bench,
    experiments: int = 20,
    trials: int = 4,
    parallel: int = 2,
    api_creates: int = 300,
) -> dict[str, Any]:
    """The operator run, then both peers at the same parallelism and trial count."""
    ours, peer = operator_run(
        bench,
        experiments,
        trials,
        parallel,
        lambda job: closed_loop_peer(bench, job, experiments * trials, experiments * parallel),
    )
    api = api_peer(bench, api_creates)
    ratio = ours["completed_per_s"] / peer["completed_per_s"]
    return {
        "operator": ours,
        "no_operator_peer": peer,
        "api_server_peer": api,
        "operator_over_peer": ratio,
    }
