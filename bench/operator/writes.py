"""API writes per trial lifecycle (issue 5: at most 8 writes per trial).

Every write costs the API server and etcd a round of validation, admission,
storage and watch fan-out, so writes per trial bound how many trials a cluster
can carry. The operator runs behind :class:`~bench.operator.proxy.CountingProxy`,
which attributes each request to it exactly; the API server's own
``apiserver_request_total`` is read before and after as well, for what the
whole cluster (Job controller, scheduler, node) spent on the same trials.

Writes are split in two: those that belong to an experiment whatever its size
(its status, kopf's finalizer and annotations, ``Experiment*`` Events) and the
rest, which are per trial. The goal is judged on the per-trial writes; the
all-in figure (experiment writes spread over its trials) is reported too.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from bench.operator.common import (
    API,
    Bench,
    apiserver_writes,
    experiment,
    log,
    operator_metrics,
    parse_prometheus,
    path_for,
)
from bench.operator.proxy import CountingProxy

NAMESPACE = "bench-op-writes"
#: Writes that an experiment costs once, whatever its number of trials.
EXPERIMENT_RESOURCES = frozenset({"experiments", "experiments/status"})
#: What a sweep writes, by whoever writes it (Events included).
SWEEP_RESOURCES = frozenset({"experiments", "trials", "jobs", "pods", "events"})
#: The trial sleeps 2 s before it prints: long enough for the collector sidecar (a
#: Python process) to start on this loaded machine, so trials take the usual path
#: (metrics pushed to the intake, phase Succeeded) rather than ending
#: MetricsUnavailable, which a trial that exits at once often does here.
PROGRAM = "import time; time.sleep(2); print('loss=0.5', flush=True)"


def _table(counts: Counter[tuple[str, str]]) -> dict[str, int]:
    return {f"{r} {v}": n for (r, v), n in sorted(counts.items()) if n}


def run(bench: Bench, experiments: int = 2, trials: int = 10, parallel: int = 3) -> dict[str, Any]:
    """Run ``experiments`` sweeps of ``trials`` trials; count writes per trial."""
    ns = bench.namespace(NAMESPACE)
    proxy = CountingProxy(bench.info.kubeconfig).start()
    kubeconfig = proxy.kubeconfig(bench.log_dir / "writes" / "operator-proxy.kubeconfig")
    names = [f"writes-{i}" for i in range(experiments)]
    try:
        with bench.stack(ns, "writes", kubeconfig=kubeconfig) as stack:
            time.sleep(2.0)  # start-up requests of kopf are not part of any trial
            ours_before, reasons_before = proxy.snapshot()
            cluster_before = apiserver_writes(bench.kube)
            started = time.monotonic()
            for name in names:
                bench.kube.create(
                    path_for(API, "experiments", ns),
                    experiment(name, trials, parallel, program=PROGRAM),
                )
            bench.wait(lambda: bench.experiments_ended(ns, names), 900, "the sweeps to end", 1.0)
            elapsed = time.monotonic() - started
            time.sleep(5.0)  # late writes (a coalesced status, an Event) are counted too
            ours_after, reasons_after = proxy.snapshot()
            cluster_after = apiserver_writes(bench.kube)
            own_counter = {
                f"{labels['resource']} {labels['verb']}": int(value)
                for labels, value in parse_prometheus(
                    operator_metrics(stack), "kubesweep_api_writes_total"
                )
            }
            phases = Counter(
                (t.get("status") or {}).get("phase", "Pending")
                for t in bench.kube.list(path_for(API, "trials", ns))
            )
    finally:
        proxy.stop()
        bench.drop_namespace(ns)
    ours = ours_after - ours_before
    reasons = reasons_after - reasons_before
    writes = Counter({k: n for k, n in ours.items() if k[1] in ("POST", "PUT", "PATCH", "DELETE")})
    reads = Counter({k: n for k, n in ours.items() if k not in writes})
    experiment_events = sum(n for r, n in reasons.items() if r.startswith("Experiment"))
    experiment_writes = (
        sum(n for (r, _), n in writes.items() if r in EXPERIMENT_RESOURCES) + experiment_events
    )
    total_trials = experiments * trials
    total_writes = sum(writes.values())
    per_trial = (total_writes - experiment_writes) / total_trials
    # Only the resources a sweep touches: the namespace controller's clean-up of an
    # earlier benchmark's namespace and node heartbeats are not the trials' doing.
    cluster = Counter(
        {
            k: n
            for k, n in (cluster_after - cluster_before).items()
            if k[0].split("/")[0] in SWEEP_RESOURCES
        }
    )
    log(f"writes: {total_writes} operator writes for {total_trials} trials")
    return {
        "experiments": experiments,
        "trials_per_experiment": trials,
        "parallel": parallel,
        "trials": total_trials,
        "trial_phases": dict(phases),
        "elapsed_s": elapsed,
        "operator_writes": _table(writes),
        "operator_reads": _table(reads),
        "event_reasons": dict(sorted(reasons.items())),
        "operator_writes_total": total_writes,
        "experiment_writes": experiment_writes,
        "writes_per_trial": per_trial,
        "writes_per_trial_all_in": total_writes / total_trials,
        "operator_counter": own_counter,
        "cluster_writes": _table(cluster),
        "cluster_writes_per_trial": sum(cluster.values()) / total_trials,
        "goal": 8,
        "goal_met": per_trial <= 8,
    }
