"""Run the suggestion benchmark and write its section of docs/benchmarks.md.

``python -m bench.suggest.run`` (``make bench-suggest``) runs, in one go and
with the same budgets and seeds for every method:

1. quality: each method x problem x seed, a sequential loop of ``--trials``;
2. multi-fidelity: each method x seed on the simulated clock
   (:mod:`bench.suggest.fidelity`), with the budget of ``--random-trials``
   full-fidelity trials;
3. latency: each method at each history size, one measurement at a time,
   first (nothing else of the benchmark runs meanwhile, so it does not compete).

Runs 1-2 share a pool of ``--processes`` processes, longest tasks first. Every
finished run is appended to ``--results`` (JSON lines) at once, and a run
already there is not repeated, so an interrupted benchmark resumes where it
stopped (``--fresh`` starts over). The report is rendered from that file.

``--profile smoke`` is a seconds-long end-to-end pass (two problems, a few
trials) for the test suite; ``--profile full`` is the documented run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

# The imports below load numpy: the thread limits above must come first.
from bench.machine import cpu_model  # noqa: E402
from bench.suggest import fidelity, latency, ours, peers, problems, report  # noqa: E402

#: Relative cost of one run per method, to start the long ones first.
COST = {
    "skopt-gp": 20.0,
    "optuna-gp": 6.0,
    "smac": 6.0,
    "kubesweep-bayesian": 4.0,
    "kubesweep-bohb": 2.0,
}

#: Methods scheduled after everything else. One 100-trial ``gp_minimize`` run costs
#: about 2-3 CPU-minutes here (measured: 161 s on Hartmann-6 with the machine
#: loaded), Optuna's GPSampler about 30 s, 10-50 times a TPE run: ten seeds of
#: both on seven problems alone would exceed the hour the whole benchmark may
#: take on a shared 2-core machine. They run with their library defaults, after
#: everything else, with fewer seeds where ``--peer-seeds`` says so; the report
#: shows how many seeds each method has.
SLOW = ("optuna-gp", "skopt-gp")


@dataclass
class Settings:
    """Everything that defines a benchmark run (recorded with the results)."""

    profile: str
    seeds: int
    trials: int
    problems: list[str]
    methods: list[str] | None
    peer_seeds: dict[str, int]
    processes: int
    fidelity_problem: str
    fidelity_seeds: int
    random_trials: int
    workers: int
    latency_sizes: list[int]
    latency_methods: list[str] | None
    latency_timeout: float
    skip: list[str] = field(default_factory=list)


PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "seeds": 10,
        "trials": 100,
        "problems": [p.name for p in problems.quality_problems()],
        "methods": None,
        "peer_seeds": {"skopt-gp": 3},
        "processes": 2,
        "fidelity_problem": "mlp-digits",
        "fidelity_seeds": 10,
        "random_trials": 50,
        "workers": 4,
        "latency_sizes": [100, 1000, 10000],
        "latency_methods": None,
        "latency_timeout": 120.0,
    },
    "smoke": {
        "seeds": 2,
        "trials": 8,
        "problems": ["branin", "mixed"],
        "methods": [
            "kubesweep-random",
            "kubesweep-sobol",
            "kubesweep-hyperband",
            "optuna-tpe",
            "hyperopt-tpe",
        ],
        "peer_seeds": {},
        "processes": 1,
        "fidelity_problem": "branin-fidelity",
        "fidelity_seeds": 2,
        "random_trials": 4,
        "workers": 2,
        "latency_sizes": [10, 30],
        "latency_methods": ["kubesweep-random", "optuna-tpe"],
        "latency_timeout": 60.0,
    },
}


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _peer_seeds(text: str) -> dict[str, int]:
    out = {}
    for item in _csv(text):
        name, _, count = item.partition("=")
        out[name] = int(count)
    return out


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, argparse.Namespace]:
    """Command line to settings: a profile, then any flag overrides it."""
    parser = argparse.ArgumentParser(prog="python -m bench.suggest.run", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--seeds", type=int, help="seeds per method and problem")
    parser.add_argument("--trials", type=int, help="trials per quality run")
    parser.add_argument("--problems", type=_csv, help="quality problems (comma-separated)")
    parser.add_argument("--methods", type=_csv, help="only these methods (all phases)")
    parser.add_argument(
        "--peer-seeds",
        type=_peer_seeds,
        help="fewer seeds for slow methods, e.g. skopt-gp=3 (the report shows the count)",
    )
    parser.add_argument("--processes", type=int, help="parallel benchmark processes")
    parser.add_argument("--fidelity-problem", choices=sorted(problems.FIDELITY_PROBLEMS))
    parser.add_argument("--fidelity-seeds", type=int)
    parser.add_argument(
        "--random-trials", type=int, help="multi-fidelity budget, in full-fidelity trials"
    )
    parser.add_argument("--workers", type=int, help="simulated parallel workers")
    parser.add_argument("--latency-sizes", type=lambda t: [int(x) for x in _csv(t)])
    parser.add_argument("--latency-methods", type=_csv)
    parser.add_argument("--latency-timeout", type=float, help="seconds per measurement")
    parser.add_argument(
        "--skip", type=_csv, default=[], help="phases to skip: quality,fidelity,latency"
    )
    parser.add_argument(
        "--results", type=Path, default=Path("artifacts/bench-suggest/results.jsonl")
    )
    parser.add_argument("--docs", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--img", type=Path, default=Path("docs/img"))
    parser.add_argument("--fresh", action="store_true", help="discard earlier results")
    parser.add_argument("--report-only", action="store_true", help="re-render the report")
    args = parser.parse_args(argv)
    values = dict(PROFILES[args.profile])
    for key in list(values):
        override = getattr(args, key, None)
        if override is not None:
            values[key] = override
    settings = Settings(profile=args.profile, skip=args.skip, **values)
    return settings, args


# --- Tasks -----------------------------------------------------------------------------


def quality_methods(settings: Settings) -> list[str]:
    """kubesweep's single-fidelity algorithms (as registered) and the quality peers."""
    names = [ours.PREFIX + a for a in ours.available_algorithms(multi_fidelity=False)]
    names += [p for p in _only(list(peers.QUALITY_PEERS), settings.methods) if _peer_ok(p)]
    return _only(names, settings.methods)


def fidelity_methods(settings: Settings) -> list[str]:
    """kubesweep's multi-fidelity algorithms, random search at full fidelity, Optuna+Hyperband."""
    names = [ours.PREFIX + a for a in ours.available_algorithms(multi_fidelity=True)]
    names.append(ours.PREFIX + "random-full")
    if _peer_ok("optuna-hyperband"):
        names.append("optuna-hyperband")
    if settings.methods is None:
        return names
    wanted = set(settings.methods) | {ours.PREFIX + "random-full", "optuna-hyperband"}
    return [n for n in names if n in wanted or not n.startswith(ours.PREFIX)]


def latency_methods(settings: Settings) -> list[str]:
    """Every kubesweep algorithm that imports, and the peers whose latency is measured."""
    names = [ours.PREFIX + a for a, why in ours.registry_status().items() if why is None]
    wanted = settings.latency_methods or settings.methods
    names += [p for p in _only(list(peers.LATENCY_PEERS), wanted) if _peer_ok(p)]
    return _only(names, wanted)


def _peer_ok(name: str) -> bool:
    return peers.peer_available(name) is None


def _only(names: list[str], wanted: list[str] | None) -> list[str]:
    return names if wanted is None else [n for n in names if n in wanted]


def task_key(task: dict[str, Any]) -> str:
    """Identity of a run, for resuming."""
    fields = ("kind", "method", "problem", "seed", "trials", "budget", "workers", "n")
    return json.dumps([task.get(f) for f in fields])


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """One quality or multi-fidelity run (in a pool process)."""
    peers.quiet_libraries()
    problem = problems.problem_by_name(task["problem"])
    start = time.perf_counter()
    record = dict(task)
    try:
        if task["kind"] == "quality":
            timed = peers.Timed(problem)
            method = task["method"]
            calls: list[float] = []
            if method.startswith(ours.PREFIX):
                calls = ours.run_kubesweep(
                    method.removeprefix(ours.PREFIX), problem, task["seed"], task["trials"], timed
                )
            else:
                peers.PEER_RUNNERS[method](problem, task["seed"], task["trials"], timed)
            wall = time.perf_counter() - start
            record.update(
                values=timed.values[: task["trials"]],
                optimizer_seconds=wall - timed.seconds,
                calls=len(calls),
                call_seconds_max=max(calls, default=None),
            )
        else:
            result = fidelity.simulate(
                task["method"], problem, task["seed"], task["budget"], task["workers"]
            )
            record.update(asdict(result))
        record["status"] = "ok"
    except Exception as error:
        record["status"] = "error"
        record["message"] = f"{type(error).__name__}: {error}"
    record["wall_seconds"] = time.perf_counter() - start
    return record


def build_tasks(settings: Settings) -> list[dict[str, Any]]:
    """All quality and multi-fidelity runs, costliest first."""
    tasks: list[dict[str, Any]] = []
    if "quality" not in settings.skip:
        for method in quality_methods(settings):
            seeds = settings.peer_seeds.get(method, settings.seeds)
            for problem in settings.problems:
                if not ours.searchable(method, problems.problem_by_name(problem)):
                    continue  # cmaes searches numbers only
                for seed in range(seeds):
                    tasks.append(
                        {
                            "kind": "quality",
                            "method": method,
                            "problem": problem,
                            "seed": seed,
                            "trials": settings.trials,
                        }
                    )
    if "fidelity" not in settings.skip:
        task = problems.fidelity_problem(settings.fidelity_problem)
        assert task.fidelity is not None
        budget = settings.random_trials * round(task.fidelity.max)
        for method in fidelity_methods(settings):
            for seed in range(settings.fidelity_seeds):
                tasks.append(
                    {
                        "kind": "fidelity",
                        "method": method,
                        "problem": task.name,
                        "seed": seed,
                        "budget": budget,
                        "workers": settings.workers,
                    }
                )
    # Seed-major order: every method finishes seed k before any starts seed k+1, so a
    # run cut short (this machine is shared) still compares whole seeds; within a seed
    # the longest runs go first to balance the pool. The SLOW methods go last, in order.
    tasks.sort(
        key=lambda t: (
            SLOW.index(t["method"]) + 1 if t["method"] in SLOW else 0,
            t["seed"],
            -COST.get(t["method"], 1.0) * (t.get("trials") or 50),
        )
    )
    return tasks


def load_results(path: Path) -> list[dict[str, Any]]:
    """Records of earlier runs (the last record of a key wins)."""
    if not path.exists():
        return []
    out: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            out[task_key(record)] = record
    return list(out.values())


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _log(message: str) -> None:
    print(f"[bench-suggest {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def execute(tasks: list[dict[str, Any]], processes: int, results: Path) -> None:
    """Run tasks (in a pool when ``processes`` > 1), appending each record as it finishes."""
    done = 0

    def record(result: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        _append(results, result)
        status = result["status"] if result["status"] == "ok" else result.get("message")
        _log(
            f"{done}/{len(tasks)} {result['kind']} {result['method']} {result['problem']} "
            f"seed {result['seed']}: {result['wall_seconds']:.1f}s {status}"
        )

    if processes <= 1:
        for task in tasks:
            record(run_task(task))
        return
    import multiprocessing

    # Workers end by the pool's SIGTERM; the parent's handler (an interrupt that
    # saves the results so far) is not theirs to inherit.
    with multiprocessing.get_context("fork").Pool(
        processes, maxtasksperchild=20, initializer=_default_sigterm
    ) as pool:
        for result in pool.imap_unordered(run_task, tasks):
            record(result)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "memory": memory,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def versions() -> dict[str, str]:
    """Versions of the peers and the numeric stack."""
    from importlib import metadata

    out = {}
    for name in (
        "optuna",
        "scikit-optimize",
        "hyperopt",
        "scikit-learn",
        "numpy",
        "scipy",
        "torch",
        "smac",
        "ConfigSpace",
        "cmaes",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or re-render its report) and write the docs section."""
    settings, args = parse_args(argv)
    results: Path = args.results
    results.parent.mkdir(parents=True, exist_ok=True)
    meta_path = results.with_suffix(".meta.json")
    if args.fresh and results.exists():
        results.unlink()
    started = time.time()
    if not args.report_only:
        peers.quiet_libraries()
        _prepare_tables(settings)
        earlier = load_results(results)
        # Failed runs are retried; a latency measurement that timed out is a result.
        have = {task_key(r) for r in earlier if r.get("status") == "ok" or r["kind"] == "latency"}
        tasks = [t for t in build_tasks(settings) if task_key(t) not in have]
        # SIGTERM (or Ctrl-C) stops the runs but still records this invocation and
        # renders the report from what finished; a later invocation resumes.
        signal.signal(signal.SIGTERM, _interrupt)
        commit = _commit()  # the code measured is the code at the start
        interrupted = False
        try:
            if "latency" not in settings.skip:
                _latency(settings, results, have)
            _log(f"{len(tasks)} runs to do ({len(have)} already in {results})")
            execute(tasks, settings.processes, results)
        except KeyboardInterrupt:
            interrupted = True
            _log("interrupted: recording what finished")
        # A resumed benchmark keeps the record of its earlier invocations.
        sessions = []
        if meta_path.exists() and not args.fresh:
            sessions = json.loads(meta_path.read_text()).get("sessions", [])
        now = datetime.now(UTC)
        sessions.append(
            {
                "command": _command(argv),
                "start": datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "end": now.strftime("%Y-%m-%d %H:%M UTC"),
                "seconds": time.time() - started,
                "interrupted": interrupted,
                "commit": commit,
            }
        )
        meta = {
            "sessions": sessions,
            "settings": asdict(settings),
            "command": sessions[0]["command"],
            "date": now.strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "commit": "; ".join(dict.fromkeys(str(x.get("commit", "unknown")) for x in sessions)),
            "versions": versions(),
            "algorithms": ours.registry_status(),
            "peers": {
                p: peers.peer_available(p) for p in (*peers.QUALITY_PEERS, "optuna-hyperband")
            },
            "seconds": sum(x["seconds"] for x in sessions),
        }
        meta_path.write_text(json.dumps(meta, indent=2))
    meta = json.loads(meta_path.read_text())
    report.write(load_results(results), meta, args.docs, args.img)
    _log(f"report written to {args.docs} ({time.time() - started:.0f}s)")
    return 0


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _prepare_tables(settings: Settings) -> None:
    """Build the tabular problems' tables first, with every process (cached after)."""
    if "quality" not in settings.skip and "gbm-breast-cancer" in settings.problems:
        _log("gradient-boosting table (cached after the first run)")
        problems.gbm_table(settings.processes)
    if "fidelity" not in settings.skip and settings.fidelity_problem == "mlp-digits":
        _log("MLP learning-curve table (cached after the first run)")
        problems.mlp_table(settings.processes)


def _latency(settings: Settings, results: Path, have: Iterable[str]) -> None:
    done = set(have)
    for method in latency_methods(settings):
        for n in settings.latency_sizes:
            key = task_key({"kind": "latency", "method": method, "n": n})
            if key in done:
                continue
            record = latency.measure(method, n, settings.fidelity_problem, settings.latency_timeout)
            _append(results, record)
            calls = record["calls"]
            shown = f"{sorted(calls)[len(calls) // 2] * 1000:.1f} ms" if calls else "-"
            _log(f"latency {method} n={n}: {shown} {record['status']}")


def _commit() -> str:
    """The checkout measured: HEAD, and whether the algorithms had uncommitted changes."""
    import subprocess

    def git(*words: str) -> str:
        try:
            return subprocess.run(
                ["git", *words], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "suggestion")
    return f"{head} (suggestion/ with uncommitted changes)" if dirty else head


def _command(argv: Sequence[str] | None) -> str:
    words = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "-m", "bench.suggest.run", *words])


if __name__ == "__main__":
    raise SystemExit(main())
