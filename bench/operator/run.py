"""``make bench-operator``: the operator's performance figures of issue 5, end to end.

Starts a local cluster of its own (``$KUBESWEEP_BENCH_CLUSTER_DIR``, default
``/tmp/kubesweep-bench-operator-cluster``; fresh etcd each run, so nothing a
previous run left is counted), runs the benchmarks in turn, prints the
figures, keeps the raw results in ``artifacts/bench-operator/results.json`` and
rewrites the ``## Operator`` section of ``docs/benchmarks.md`` between its
markers (other sections are left as they are). The goals' verdicts are
computed from the measured numbers, never written by hand.

``memory`` loads Trials only; ``memory-full`` also gives every Trial a Job and
a pod, as a finished sweep leaves them.
``scale`` (only when named) runs one Experiment of 10,000 trials through real
pods and samples it over time.
``--profile smoke`` runs every benchmark at a tiny scale (a few minutes) to
check the machinery; its figures go to ``results-smoke.json``, not to the docs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench.machine import cpu_model
from bench.operator import latency, memory, scale, throughput, writes
from bench.operator.common import DEFAULT_STATE_DIR, REPO, Bench, load_average, log
from cluster import local

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "latency": {"count": 10},
        "writes": {"experiments": 2, "trials": 10, "parallel": 3},
        "throughput": {"experiments": 20, "trials": 4, "parallel": 2, "api_creates": 300},
        "memory": {"experiments": 50, "trials": 100, "timeout": 300},
        "memory-full": {"experiments": 50, "trials": 100, "timeout": 600},
        "memory-one": {"experiments": 1, "trials": 100_000, "timeout": 600},
        "scale": {"trials": 10_000, "parallel": 30, "timeout": 4 * 3600},
    },
    "smoke": {
        "latency": {"count": 2},
        "writes": {"experiments": 1, "trials": 2, "parallel": 2},
        "throughput": {"experiments": 2, "trials": 2, "parallel": 1, "api_creates": 20},
        "memory": {"experiments": 2, "trials": 10},
        "memory-full": {"experiments": 2, "trials": 10, "timeout": 120},
        "memory-one": {"experiments": 1, "trials": 200, "timeout": 120},
        "scale": {"trials": 30, "parallel": 10, "timeout": 900, "every": 5.0},
    },
}
BENCHMARKS = ("latency", "writes", "throughput", "memory", "memory-full")
#: Run only when named (``--only memory-one``): filling 100,000 Trials takes most of an
#: hour; ``scale`` runs 10,000 trials through real pods, hours on this machine.
EXTRA = ("memory-one", "scale")
DOCS = REPO / "docs" / "benchmarks.md"
RESULTS_DIR = REPO / "artifacts" / "bench-operator"


def results_path(profile: str) -> Path:
    """``results.json`` for the full profile (the docs' figures), one file per other profile."""
    return RESULTS_DIR / ("results.json" if profile == "full" else f"results-{profile}.json")


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "load_average_at_start": load_average(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    profile = PROFILES[args.profile]
    state_dir = Path(os.environ.get("KUBESWEEP_BENCH_CLUSTER_DIR", DEFAULT_STATE_DIR)).resolve()
    results: dict[str, Any] = {}
    if args.merge and results_path(args.profile).exists():
        results = json.loads(results_path(args.profile).read_text())
    results |= {
        "profile": args.profile,
        "command": "make bench-operator"
        + (f' BENCH_ARGS="{shlex.join(sys.argv[1:])}"' if sys.argv[1:] else ""),
        "machine": _machine(),
    }
    started = time.monotonic()
    bench = Bench.up(state_dir, fresh=not args.reuse)
    try:
        modules: dict[str, Any] = {"latency": latency, "writes": writes, "throughput": throughput}
        # Always in BENCHMARKS' order: the memory benchmarks leave thousands of objects
        # whose deletion would slow the Job controller for anything measured after them.
        chosen = [b for b in BENCHMARKS if not args.only or b in args.only]
        chosen += [b for b in EXTRA if args.only and b in args.only]
        for name in chosen:
            log(f"== {name}")
            t0 = time.monotonic()
            try:
                if name == "memory":
                    results[name] = memory.run(
                        bench, cleanup=True, children=False, **profile["memory"]
                    )
                elif name == "memory-full":
                    # Its 15,000 objects go with the cluster, not one by one.
                    results[name] = memory.run(
                        bench, cleanup=args.keep, children=True, **profile["memory-full"]
                    )
                elif name == "memory-one":
                    # Issue 14: 100,000 finished Trials in one experiment, Trials only.
                    options = profile["memory-one"] | (
                        {"trials": args.trials} if args.trials else {}
                    )
                    results[name] = memory.run(
                        bench,
                        cleanup=not args.keep,
                        reuse=args.reuse,
                        children=False,
                        goal_mib=500,
                        goal_ready_s=60,
                        **options,
                    )
                elif name == "scale":
                    # Issue 14: one experiment of 10,000 trials through real pods.
                    options = profile["scale"] | {
                        k: v
                        for k, v in (
                            ("trials", args.trials),
                            ("parallel", args.parallel),
                            ("timeout", args.timeout),
                        )
                        if v
                    }
                    results[name] = scale.run(bench, **options)
                else:
                    results[name] = modules[name].run(bench, **profile[name])
            except Exception as error:  # one benchmark failing keeps the others' figures
                log(f"{name} failed: {error!r}")
                results[name] = {"error": repr(error)}
            results[name]["wall_s"] = time.monotonic() - t0
            save(results, args.profile)
    finally:
        if not args.keep:
            log("stopping the benchmark cluster")
            local.down(state_dir)
    results["machine"]["load_average_at_end"] = load_average()
    results["wall_s"] = results.get("wall_s", 0.0) * args.merge + time.monotonic() - started
    return results


def save(results: dict[str, Any], profile: str) -> None:
    path = results_path(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS + EXTRA, help="run only these")
    parser.add_argument(
        "--trials", type=int, help="trials of memory-one (default 100,000) or scale (10,000)"
    )
    parser.add_argument("--parallel", type=int, help="parallelTrials of scale (default 30)")
    parser.add_argument(
        "--timeout", type=float, help="seconds scale waits for its sweep to end (default 4 h)"
    )
    parser.add_argument(
        "--merge", action="store_true", help="add to results.json instead of starting anew"
    )
    parser.add_argument("--reuse", action="store_true", help="keep etcd of an earlier run")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the docs from results.json"
    )
    args = parser.parse_args(argv)
    from bench.operator import report

    if args.report_only:
        results = json.loads(results_path(args.profile).read_text())
    else:
        results = run(args)
        save(results, args.profile)
    print(report.summary(results))
    complete = all("error" not in results.get(name, {"error": 1}) for name in BENCHMARKS)
    if results["profile"] == "full" and complete:
        report.write(results, DOCS)
        log(f"wrote the Operator section of {DOCS.relative_to(REPO)}")
    if results["profile"] == "full" and "error" not in results.get("scale", {"error": 1}):
        report.write_scale(results, DOCS)
        log(f"wrote the scale run into the Operator section of {DOCS.relative_to(REPO)}")
    return 0 if results.get("scale", {}).get("passed", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
