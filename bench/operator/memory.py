"""Operator memory with many finished trials: 50 x 100, and one experiment of 100,000.

Issue 5 asked for 50 experiments and 5,000 trials under 250 MiB RSS; issue 14
for 100,000 finished Trials in one experiment under 500 MiB and a restarted
operator ready to reconcile within 60 s.

The operator keeps an index of every Trial, Job and pod it owns (slim records
fed by its own list-and-watch streams), and a directory entry per trial for the
intake, so its memory grows with the number of trials it watches. Running
5,000 trials through real pods on this two-core machine would take hours, so the
benchmark builds the state that such a sweep leaves behind, directly through
the API, before the operator starts:

- 50 Experiments, ``maxTrials: 100`` each;
- 5,000 Trials (100 per experiment), owned by their Experiment, each with a
  finished status written through the status subresource: phase Succeeded, the
  objective, two metric summaries and a 20-point curve, as the operator writes;
- with ``children`` (``memory-full`` in the runner), for each trial also a
  suspended Job labelled as the operator labels its Jobs, and a pod held back by
  a scheduling gate and labelled as a trial pod, so the operator's Job and pod
  records are loaded too (the renderer sets no TTL on Jobs, so a finished sweep
  keeps its Jobs and pods). Without it, Trials only: the lower bound.

Then the operator starts, as after a restart: it indexes everything, runs a
pass of every experiment, finds each at ``maxTrials`` and ends it. RSS is
sampled every half second from start until 20 s after the last experiment
ended (or the wait ran out); the figures are the RSS then, the peak
(VmHWM), how long start-up took, and the RSS of an idle operator watching an
empty namespace, for comparison. Also recorded: the largest Trial and
Experiment as stored (JSON bytes: the last-created Trial, whose name is the
longest, and the Experiment after its pass) and etcd's database size.

Bounded, since the machine is shared: trials are created by ``WORKERS``
threads, and the operator runs under an address-space limit (``memory_limit_mib``,
``RLIMIT_AS``) so that a leak fails the run instead of the machine.
"""

from __future__ import annotations

import json
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.operator.common import (
    API,
    LABEL_EXPERIMENT,
    LABEL_TRIAL,
    Bench,
    ended,
    experiment,
    load_average,
    log,
    operator_pid,
    path_for,
    sample_process,
)

NAMESPACE = "bench-op-memory"
IDLE_NAMESPACE = "bench-op-idle"
WORKERS = 8


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def trial_body(exp: dict[str, Any], index: int) -> dict[str, Any]:
    name = exp["metadata"]["name"]
    return {
        "apiVersion": API,
        "kind": "Trial",
        "metadata": {
            "name": f"{name}-{index}",
            "labels": {LABEL_EXPERIMENT: name, "app.kubernetes.io/managed-by": "kubesweep"},
            "ownerReferences": [
                {
                    "apiVersion": API,
                    "kind": "Experiment",
                    "name": name,
                    "uid": exp["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"experiment": name, "index": index, "parameters": {"x": (index % 97) / 97}},
    }


def trial_status(index: int) -> dict[str, Any]:
    """A finished trial's status of the size the operator writes for a short curve."""
    loss = 0.5 + (index % 13) / 100
    now = _now()
    return {
        "status": {
            "phase": "Succeeded",
            "reason": "Completed",
            "startTime": now,
            "completionTime": now,
            "objective": loss,
            "metrics": [
                {"name": "loss", "latest": loss, "min": loss, "max": 1.0, "step": 19, "count": 20},
                {
                    "name": "accuracy",
                    "latest": 0.9,
                    "min": 0.1,
                    "max": 0.9,
                    "step": 19,
                    "count": 20,
                },
            ],
            "curve": [{"step": s, "value": 1.0 - s * (1.0 - loss) / 19} for s in range(20)],
        }
    }


def job_body(experiment_name: str, trial: str) -> dict[str, Any]:
    labels = {LABEL_EXPERIMENT: experiment_name, LABEL_TRIAL: trial}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": trial, "labels": labels},
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "trainer", "image": "kubesweep/bench:local", "command": ["true"]}
                    ],
                },
            },
        },
    }


def pod_body(experiment_name: str, trial: str) -> dict[str, Any]:
    labels = {LABEL_EXPERIMENT: experiment_name, LABEL_TRIAL: trial, "job-name": trial}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{trial}-pod", "labels": labels},
        "spec": {
            "schedulingGates": [{"name": "kubesweep.io/bench"}],
            "restartPolicy": "Never",
            "containers": [
                {"name": "trainer", "image": "kubesweep/bench:local", "command": ["true"]}
            ],
        },
    }


def _first_missing(bench: Bench, ns: str, name: str, trials: int) -> int:
    """Where an earlier run's trials end (bisected; some before it may be missing, see below).

    Trials are created by a pool, so the last few before the answer may be
    missing too: filling starts ``WORKERS`` before it (creating is idempotent).
    """
    low, high = 0, trials
    while low < high:
        mid = (low + high) // 2
        if bench.kube.get_or_none(path_for(API, "trials", ns, f"{name}-{mid}")) is None:
            high = mid
        else:
            low = mid + 1
    return max(0, low - 2 * WORKERS)


def _fill(bench: Bench, ns: str, experiments: int, trials: int, children: bool) -> float:
    """Create the experiments, trials (with status) and their Jobs and pods; return seconds."""
    start = time.monotonic()
    exps = []
    for i in range(experiments):
        body = experiment(f"mem-{i:02d}", trials, 5)
        path = path_for(API, "experiments", ns, body["metadata"]["name"])
        if bench.kube.get_or_none(path) is not None:  # topping up an earlier run's
            budget = {"spec": {"budget": {"maxTrials": trials}}}
            exps.append(bench.kube.patch(path, budget))
        else:
            exps.append(bench.kube.create(path_for(API, "experiments", ns), body))
    first = _first_missing(bench, ns, exps[0]["metadata"]["name"], trials)
    done = 0
    lock = threading.Lock()

    def one(job: tuple[int, int]) -> None:
        nonlocal done
        e, index = job
        exp = exps[e]
        body = trial_body(exp, index)
        name = body["metadata"]["name"]
        kube = bench.bulk
        kube.create_once(path_for(API, "trials", ns), body)
        kube.patch(path_for(API, "trials", ns, name) + "/status", trial_status(index))
        if children:
            exp_name = exp["metadata"]["name"]
            kube.create_once(path_for("batch/v1", "jobs", ns), job_body(exp_name, name))
            kube.create_once(path_for("v1", "pods", ns), pod_body(exp_name, name))
        with lock:
            done += 1
            if done % 1000 == 0:
                log(f"memory: {done} trials created")

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, [(e, i) for e in range(experiments) for i in range(first, trials)]))
    return time.monotonic() - start


def etcd_db_bytes(bench: Bench) -> int:
    """etcd's database file, as big as etcd's own ``db_total_size`` (including free pages)."""
    db = Path(bench.info.state_dir) / "etcd" / "member" / "snap" / "db"
    return db.stat().st_size if db.exists() else 0


def stored_bytes(bench: Bench, path: str) -> int:
    """An object's size as the API server stores it (compact JSON)."""
    body = bench.kube.get_or_none(path)
    return len(json.dumps(body, separators=(",", ":"))) if body is not None else 0


def limit_memory(pid: int, limit_mib: int | None) -> None:
    """Cap the operator's address space, so a runaway fails it and spares the machine."""
    if limit_mib is not None:
        limit = limit_mib * 1024 * 1024
        resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))


def _reopen(bench: Bench, ns: str, names: list[str]) -> None:
    """Clear the ended state an earlier run left, so the operator must decide again."""
    for name in names:
        bench.kube.patch(path_for(API, "experiments", ns, name) + "/status", {"status": None})


def idle_rss(bench: Bench) -> float:
    """RSS of an operator watching an empty namespace, once settled."""
    ns = bench.namespace(IDLE_NAMESPACE)
    try:
        with bench.stack(ns, "memory-idle") as stack:
            time.sleep(5.0)
            return sample_process(operator_pid(stack)).rss_mib
    finally:
        bench.drop_namespace(ns)


def run(
    bench: Bench,
    *,
    experiments: int = 50,
    trials: int = 100,
    children: bool = True,
    cleanup: bool = True,
    timeout: float = 900.0,
    memory_limit_mib: int | None = 4096,
    goal_mib: float = 250,
    goal_ready_s: float | None = None,
    reuse: bool = False,
) -> dict[str, Any]:
    """Load the cluster with a finished sweep's state, then start the operator on it."""
    idle = idle_rss(bench)
    names = [f"mem-{i:02d}" for i in range(experiments)]
    etcd_before = etcd_db_bytes(bench)
    fill_s: float | None = None
    last = path_for(API, "trials", NAMESPACE, f"{names[-1]}-{trials - 1}")
    if reuse and bench.kube.get_or_none(last) is not None:
        ns = NAMESPACE  # kept by an earlier run (``cleanup=False``): the same state again
        log(f"memory: reusing the {experiments * trials} trials of an earlier run")
        _reopen(bench, ns, names)
    else:
        kept = reuse and bench.kube.get_or_none(f"/api/v1/namespaces/{NAMESPACE}") is not None
        ns = NAMESPACE if kept else bench.namespace(NAMESPACE)
        log(f"memory: creating {experiments} experiments and {experiments * trials} trials")
        fill_s = _fill(bench, ns, experiments, trials, children)
        log(f"memory: created in {fill_s:.0f} s")
        if kept:
            _reopen(bench, ns, names)  # topped up: ended by the earlier run
    largest_trial = stored_bytes(bench, path_for(API, "trials", ns, f"{names[-1]}-{trials - 1}"))
    samples: list[tuple[float, float]] = []
    try:
        with bench.stack(ns, "memory") as stack:
            pid = operator_pid(stack)
            limit_memory(pid, memory_limit_mib)
            start = time.monotonic()
            stop = threading.Event()

            def sampler() -> None:
                while not stop.is_set():
                    samples.append((time.monotonic() - start, sample_process(pid).rss_mib))
                    stop.wait(0.5)

            thread = threading.Thread(target=sampler, daemon=True)
            thread.start()
            ended_s: float | None = None
            try:
                bench.wait(
                    lambda: bench.experiments_ended(ns, names),
                    timeout,
                    "the experiments to end",
                    2.0,
                )
                ended_s = time.monotonic() - start
            except TimeoutError:
                log(f"memory: the experiments did not all end within {timeout:.0f} s")
            ended_count = sum(
                1 for e in bench.kube.list(path_for(API, "experiments", ns)) if ended(e)
            )
            largest_experiment = max(
                stored_bytes(bench, path_for(API, "experiments", ns, n)) for n in names
            )
            time.sleep(20.0)
            stop.set()
            thread.join()
            final = sample_process(pid)
            cpu_s = final.cpu_seconds
    finally:
        if cleanup:
            bench.drop_namespace(ns)
    result = {
        "experiments": experiments,
        "trials": experiments * trials,
        "jobs_and_pods": children,
        "fill_s": fill_s,
        "all_ended_after_s": ended_s,
        "ended_experiments": ended_count,
        "timeout_s": timeout,
        "operator_cpu_s": cpu_s,
        "idle_rss_mib": idle,
        "rss_mib": final.rss_mib,
        "peak_rss_mib": final.hwm_mib,
        "rss_samples": samples[:: max(1, len(samples) // 40)],
        "memory_limit_mib": memory_limit_mib,
        "largest_trial_bytes": largest_trial,
        "largest_experiment_bytes": largest_experiment,
        "etcd_db_bytes_before": etcd_before,
        "etcd_db_bytes": etcd_db_bytes(bench),
        "load_average": load_average(),
        "goal_mib": goal_mib,
        "goal_ready_s": goal_ready_s,
    }
    result["goal_met"] = max(final.rss_mib, final.hwm_mib) < goal_mib and (
        goal_ready_s is None or (ended_s is not None and ended_s < goal_ready_s)
    )
    log(f"memory: RSS {final.rss_mib:.0f} MiB (peak {final.hwm_mib:.0f} MiB)")
    return result
