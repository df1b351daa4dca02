"""Time from an Experiment's creation to its first trial Job (issue 5: under 1 s median).

This is what a user feels after ``kubectl apply``: how long before anything runs.
Experiments are created one after another against an operator that is already
up (so the operator's start-up is not counted), each waited for before the next,
so every sample is one experiment alone. A watch on Jobs (and one on Trials)
timestamps each object as it appears; the clock starts just before the create
call, so the figure includes the API round trip of the create itself, as
``kubectl apply`` would.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.operator.common import (
    API,
    LABEL_EXPERIMENT,
    Bench,
    Watcher,
    experiment,
    load_average,
    log,
    median,
    path_for,
    percentile,
)

NAMESPACE = "bench-op-latency"
#: Issue 5's goal for the median.
GOAL_S = 1.0


def run(bench: Bench, count: int = 10) -> dict[str, Any]:
    """Create ``count`` one-trial experiments in turn; return the latencies in seconds."""
    ns = bench.namespace(NAMESPACE)
    first_job: dict[str, float] = {}
    first_trial: dict[str, float] = {}
    seen = threading.Condition()

    def on_job(now: float, kind: str, obj: dict[str, Any]) -> None:
        exp = (obj["metadata"].get("labels") or {}).get(LABEL_EXPERIMENT)
        if kind == "ADDED" and exp:
            with seen:
                first_job.setdefault(exp, now)
                seen.notify_all()

    def on_trial(now: float, kind: str, obj: dict[str, Any]) -> None:
        exp = (obj.get("spec") or {}).get("experiment")
        if kind == "ADDED" and exp:
            first_trial.setdefault(exp, now)

    jobs = Watcher(bench.kube, path_for("batch/v1", "jobs", ns), on_job).start()
    trials = Watcher(bench.kube, path_for(API, "trials", ns), on_trial).start()
    created: dict[str, float] = {}
    job_latency: list[float] = []
    trial_latency: list[float] = []
    try:
        with bench.stack(ns, "latency"):
            # One experiment first, not counted: the suggestion service and the
            # operator's clients open their connections on first use.
            names = ["warmup", *[f"lat-{i}" for i in range(count)]]
            for name in names:
                time.sleep(1.0)  # the previous experiment's trial settles first
                created[name] = time.monotonic()
                bench.kube.create(path_for(API, "experiments", ns), experiment(name, 1, 1))

                def arrived(n: str = name) -> bool:
                    return n in first_job

                with seen:
                    if not seen.wait_for(arrived, timeout=60):
                        raise TimeoutError(f"no Job for {name} within 60 s")
                if name == "warmup":
                    continue
                job_latency.append(first_job[name] - created[name])
                if name in first_trial:
                    trial_latency.append(first_trial[name] - created[name])
                log(f"latency: {name} first Job after {job_latency[-1] * 1000:.0f} ms")
    finally:
        jobs.stop()
        trials.stop()
        bench.drop_namespace(ns)
    result: dict[str, Any] = {
        "experiments": count,
        "job_seconds": job_latency,
        "job_median_s": median(job_latency),
        "job_p90_s": percentile(job_latency, 90),
        "job_max_s": max(job_latency),
        "trial_median_s": median(trial_latency),
        "load_average": load_average(),
        "goal_s": GOAL_S,
        "goal_met": median(job_latency) < GOAL_S,
    }
    return result
