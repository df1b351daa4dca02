"""One experiment of thousands of short trials, end to end (issue 14, item 3).

The other benchmarks measure the operator in pieces: a few dozen trials for
throughput and writes, Trials created through the API for memory. This one runs
a whole sweep through the real path at scale: one Experiment (random search,
seeded) whose trials print their objective and exit, through the operator, the
suggestion service, the Job controller, the scheduler and the process node, to
``Succeeded`` with exactly ``maxTrials`` Trials.

What a long sweep does to the cluster shows only over time, so everything is
sampled every ``every`` seconds while it runs and kept as a time series:

- trials completed (and so throughput per minute, per interval and overall);
- API writes: the operator's, counted exactly by the counting proxy it talks
  through, and every client's on the sweep's resources from the API server's
  ``apiserver_request_total``;
- the operator's CPU seconds and RSS;
- etcd's database size from etcd's own ``/metrics`` (total and in use);
- the Jobs and pods that exist: with ``--finished-workload-retention`` short,
  they must stay near ``parallelTrials`` instead of growing with the sweep.

At the end it checks what "ended well" means: the Experiment's ``Succeeded``
condition is true, exactly N Trials exist with the expected names, every one is
finished, and the status counts agree with the Trials' phases. The checks are
recorded with the figures (a run that fails them says so in the docs) rather
than raised, so a long run never loses its time series.

Bounded, since the machine is shared: the operator and the suggestion service
run under an address-space limit, and the run stops if the cluster's and the
stack's processes together exceed ``rss_guard_mib`` of resident memory; it
also stops when no trial completed for ``stall_s`` (a stalled sweep would
otherwise hold the machine until the timeout).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from bench.operator.common import (
    API,
    LABEL_EXPERIMENT,
    WRITE_VERBS,
    Bench,
    apiserver_writes,
    conditions,
    ended,
    experiment,
    load_average,
    log,
    operator_pid,
    parse_prometheus,
    path_for,
    sample_process,
)
from bench.operator.memory import limit_memory, stored_bytes
from bench.operator.proxy import CountingProxy
from bench.operator.throughput import FINISHED, CpuMeter
from bench.operator.writes import EXPERIMENT_RESOURCES, SWEEP_RESOURCES

NAMESPACE = "bench-op-scale"
NAME = "scale"
#: Prints an objective that depends on the assignment (``sys.argv[1]`` is ``${params.x}``).
PROGRAM = "import sys; print('loss=%.6f' % (float(sys.argv[1]) - 0.3) ** 2, flush=True)"
#: A Trial's phase -> the key of ``status.trials`` that counts it.
PHASE_COUNTS = {
    "Succeeded": "succeeded",
    "Failed": "failed",
    "EarlyStopped": "earlyStopped",
    "MetricsUnavailable": "metricsUnavailable",
}


def _write_total(counts: Counter[tuple[str, str]]) -> int:
    return sum(n for (_, verb), n in counts.items() if verb in WRITE_VERBS)


def _sweep_writes(counts: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """Only what a sweep writes: not node heartbeats, leases or namespace clean-up."""
    return Counter({k: n for k, n in counts.items() if k[0].split("/")[0] in SWEEP_RESOURCES})


def etcd_sizes(bench: Bench) -> dict[str, float]:
    """etcd's database size, total (file, free pages included) and in use, from its /metrics."""
    url = f"http://127.0.0.1:{bench.info.ports['etcd']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    out: dict[str, float] = {}
    for metric, key in (
        ("etcd_mvcc_db_total_size_in_bytes", "etcd_db_bytes"),
        ("etcd_mvcc_db_total_size_in_use_in_bytes", "etcd_db_in_use_bytes"),
        ("etcd_debugging_mvcc_keys_total", "etcd_keys"),
    ):
        for _, value in parse_prometheus(text, metric):
            out[key] = value
    return out


def _count(bench: Bench, path: str) -> int:
    """How many objects a collection holds, from a one-item page (no full list)."""
    page = bench.kube.get(path, limit=1)
    return len(page.get("items") or []) + int(page["metadata"].get("remainingItemCount") or 0)


class Sampler:
    """One row of the time series per call: progress, writes, operator, etcd, children."""

    def __init__(self, bench: Bench, ns: str, proxy: CountingProxy, pid: int, log_file: Path):
        self.bench = bench
        self.ns = ns
        self.proxy = proxy
        self.pid = pid
        self.log_file = log_file
        self.start = time.monotonic()
        self.operator_before, _ = proxy.snapshot()
        self.cluster_before = _sweep_writes(apiserver_writes(bench.kube))
        self.cpu_before = sample_process(pid).cpu_seconds
        self.rows: list[dict[str, Any]] = []

    def __call__(self) -> dict[str, Any]:
        exp = self.bench.kube.get(path_for(API, "experiments", self.ns, NAME))
        counts = (exp.get("status") or {}).get("trials") or {}
        operator_now, _ = self.proxy.snapshot()
        cluster_now = _sweep_writes(apiserver_writes(self.bench.kube))
        proc = sample_process(self.pid)
        row: dict[str, Any] = {
            "t_s": round(time.monotonic() - self.start, 1),
            "created": counts.get("created", 0),
            "running": counts.get("running", 0),
            "completed": counts.get("completed", 0),
            "jobs": _count(self.bench, path_for("batch/v1", "jobs", self.ns)),
            "pods": _count(self.bench, path_for("v1", "pods", self.ns)),
            "operator_writes": _write_total(operator_now - self.operator_before),
            "cluster_writes": sum((cluster_now - self.cluster_before).values()),
            "operator_cpu_s": round(proc.cpu_seconds - self.cpu_before, 2),
            "operator_rss_mib": round(proc.rss_mib, 1),
            "load_average": load_average(),
            **etcd_sizes(self.bench),
        }
        self.rows.append(row)
        with self.log_file.open("a") as out:
            out.write(json.dumps(row) + "\n")
        return row


def _rss_mib(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += sample_process(pid).rss_mib
        except (OSError, KeyError):
            continue
    return total


def _when(rows: list[dict[str, Any]], done: int) -> float | None:
    """The first sample time at which at least ``done`` trials had completed."""
    return next((r["t_s"] for r in rows if r["completed"] >= done), None)


def throughput(rows: list[dict[str, Any]], trials: int, elapsed: float) -> dict[str, float]:
    """Trials per minute: overall, and steady (between 10 % and 90 % completed)."""
    low, high = _when(rows, trials // 10), _when(rows, trials * 9 // 10)
    steady = float("nan")
    if low is not None and high is not None and high > low:
        steady = (trials * 9 // 10 - trials // 10) / (high - low) * 60
    return {"overall_per_min": trials / elapsed * 60, "steady_per_min": steady}


def verify(exp: dict[str, Any], trials: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """What ``Succeeded with exactly N trials`` means, checked one by one."""
    phases = Counter((t.get("status") or {}).get("phase", "Pending") for t in trials)
    names = {t["metadata"]["name"] for t in trials}
    status = (exp.get("status") or {}).get("trials") or {}
    expected = {key: phases.get(phase, 0) for phase, key in PHASE_COUNTS.items()}
    checks = {
        "experiment_succeeded": conditions(exp).get("Succeeded") == "True",
        "exactly_n_trials": len(trials) == count,
        "names_are_0_to_n_minus_1": names == {f"{NAME}-{i}" for i in range(count)},
        "all_finished": sum(phases.get(p, 0) for p in FINISHED) == len(trials),
        "status_created_is_n": status.get("created") == count,
        "status_completed_is_n": status.get("completed") == count,
        "status_counts_match_phases": all(status.get(k, 0) == v for k, v in expected.items()),
    }
    return {"checks": checks, "passed": all(checks.values()), "trial_phases": dict(phases)}


def run(
    bench: Bench,
    *,
    trials: int = 10_000,
    parallel: int = 30,
    retention: str | None = "0s",
    every: float = 15.0,
    timeout: float = 4 * 3600,
    memory_limit_mib: int = 4096,
    rss_guard_mib: float = 8192,
    stall_s: float = 300.0,
) -> dict[str, Any]:
    """Run one Experiment of ``trials`` trials to its end; sample it every ``every`` seconds."""
    ns = bench.namespace(NAMESPACE)
    log_dir = bench.log_dir / "scale"
    log_dir.mkdir(parents=True, exist_ok=True)
    samples_file = log_dir / "samples.jsonl"
    samples_file.write_text("")
    proxy = CountingProxy(bench.info.kubeconfig).start()
    kubeconfig = proxy.kubeconfig(log_dir / "operator-proxy.kubeconfig")
    args = (f"--finished-workload-retention={retention}",) if retention is not None else ()
    body = experiment(NAME, trials, parallel, program=PROGRAM)
    try:
        with bench.stack(ns, "scale", kubeconfig=kubeconfig, operator_args=args) as stack:
            assert stack.suggestion is not None
            assert stack.suggestion.popen is not None
            pid = operator_pid(stack)
            suggestion_pid = stack.suggestion.popen.pid
            for capped in (pid, suggestion_pid):
                limit_memory(capped, memory_limit_mib)
            guarded = [pid, suggestion_pid, *bench.info.pids.values()]
            time.sleep(2.0)  # kopf's start-up requests are no trial's
            cpu = CpuMeter({**bench.info.pids, "operator": pid, "suggestion": suggestion_pid})
            _, reasons_before = proxy.snapshot()
            operator_before, _ = proxy.snapshot()
            bench.kube.create(path_for(API, "experiments", ns), body)
            sample = Sampler(bench, ns, proxy, pid, samples_file)
            deadline = sample.start + timeout
            outcome = "ended"
            progress = (0, sample.start)  # (completed, when it last grew)
            while True:
                row = sample()
                if row["completed"] > progress[0]:
                    progress = (row["completed"], time.monotonic())
                rate = row["completed"] / max(row["t_s"], 1e-9) * 60
                log(
                    f"scale: {row['completed']}/{trials} completed ({rate:.0f}/min), "
                    f"{row['jobs']} Jobs, {row['pods']} pods, operator "
                    f"{row['operator_rss_mib']:.0f} MiB, etcd "
                    f"{row.get('etcd_db_bytes', 0) / 1e6:.0f} MB, load {row['load_average']:.1f}"
                )
                exp = bench.kube.get(path_for(API, "experiments", ns, NAME))
                if ended(exp):
                    break
                if time.monotonic() > deadline:
                    outcome = f"timed out after {timeout:.0f} s"
                    break
                if time.monotonic() - progress[1] > stall_s:
                    outcome = f"stopped: no trial completed for {stall_s:.0f} s"
                    break
                if (rss := _rss_mib(guarded)) > rss_guard_mib:
                    outcome = f"stopped: the processes held {rss:.0f} MiB (> {rss_guard_mib})"
                    break
                time.sleep(max(0.0, every - (time.monotonic() - sample.start - row["t_s"])))
            elapsed = time.monotonic() - sample.start
            log(f"scale: {outcome} after {elapsed:.0f} s")
            time.sleep(5.0)  # late writes (the last status, an Event) are counted too
            final = sample()
            busy = cpu.read()
            operator_after, reasons_after = proxy.snapshot()
            peak = sample_process(pid).hwm_mib
            exp = bench.kube.get(path_for(API, "experiments", ns, NAME))
            listed = bench.kube.list(
                path_for(API, "trials", ns), labelSelector=f"{LABEL_EXPERIMENT}={NAME}"
            )
            largest_trial = max(
                (len(json.dumps(t, separators=(",", ":"))) for t in listed), default=0
            )
            largest_experiment = stored_bytes(bench, path_for(API, "experiments", ns, NAME))
    finally:
        proxy.stop()
        bench.drop_namespace(ns)
    verdict = verify(exp, listed, trials)
    writes = Counter(
        {k: n for k, n in (operator_after - operator_before).items() if k[1] in WRITE_VERBS}
    )
    reasons = reasons_after - reasons_before
    experiment_writes = sum(n for (r, _), n in writes.items() if r in EXPERIMENT_RESOURCES) + sum(
        n for r, n in reasons.items() if r.startswith("Experiment")
    )
    total = sum(writes.values())
    succeeded = next(
        (
            c.get("reason")
            for c in (exp.get("status") or {}).get("conditions") or []
            if c["type"] in ("Succeeded", "Failed") and c["status"] == "True"
        ),
        None,
    )
    result = {
        "trials": trials,
        "parallel": parallel,
        "algorithm": body["spec"]["algorithm"],
        "program": PROGRAM,
        "finished_workload_retention": retention,
        "sample_every_s": every,
        "outcome": outcome,
        "end_reason": succeeded,
        "elapsed_s": elapsed,
        **verdict,
        "throughput": throughput(sample.rows, trials, elapsed),
        "operator_writes": {f"{r} {v}": n for (r, v), n in sorted(writes.items())},
        "operator_writes_total": total,
        "experiment_writes": experiment_writes,
        "operator_writes_per_trial": (total - experiment_writes) / trials,
        "operator_writes_per_trial_all_in": total / trials,
        "cluster_writes_per_trial": final["cluster_writes"] / trials,
        "event_reasons": dict(sorted(reasons.items())),
        "operator_cpu_s": final["operator_cpu_s"],
        "operator_rss_mib": final["operator_rss_mib"],
        "operator_peak_rss_mib": peak,
        "cpu": busy,
        "largest_trial_bytes": largest_trial,
        "largest_experiment_bytes": largest_experiment,
        "memory_limit_mib": memory_limit_mib,
        "samples": sample.rows,
        "load_average": load_average(),
    }
    log(
        f"scale: {trials} trials in {elapsed:.0f} s "
        f"({result['throughput']['overall_per_min']:.0f}/min), checks "
        + ("passed" if verdict["passed"] else f"FAILED: {verdict['checks']}")
    )
    return result
