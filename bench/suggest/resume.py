"""Promotions that resume against promotions that retrain, side by side on one clock.

``python -m bench.suggest.resume`` runs hyperband, asha and bohb twice each on
the multi-fidelity task of :mod:`bench.suggest.fidelity` (same seeds, workers
and budget): once as today without checkpoints, where a promoted configuration
trains again from epoch 0, and once with ``+resume``, where it starts from its
parent's checkpoint and pays only for the epochs it adds. Random search at full
fidelity runs beside them and sets the bar: the budget each method needs until
its median incumbent is as good as random search's final median value. The
table it prints is the one in ``docs/benchmarks.md``.

Bounded: ``--seeds`` runs per method (default 10) of ``--random-trials`` full
trainings' worth of epochs (default 50), in ``--processes`` processes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from typing import Any

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from bench.suggest import fidelity, problems, report  # noqa: E402
from bench.suggest.ours import PREFIX  # noqa: E402

ALGORITHMS = ("hyperband", "asha", "bohb")


def methods() -> list[str]:
    """Each algorithm without and with resume, then random search at full fidelity."""
    names = [PREFIX + a + suffix for a in ALGORITHMS for suffix in ("", fidelity.RESUME)]
    return [*names, PREFIX + "random-full"]


def run_one(task: dict[str, Any]) -> dict[str, Any]:
    """One method and seed on the simulated clock, as a record :class:`report.Fidelity` reads."""
    problem = problems.fidelity_problem(task["problem"])
    result = fidelity.simulate(
        task["method"], problem, task["seed"], task["budget"], task["workers"]
    )
    return {"kind": "fidelity", "status": "ok", **task, **asdict(result)}


def table(records: list[dict[str, Any]]) -> list[str]:
    """Final values and the budget to reach random search's final value, resume beside retrain."""
    f = report.Fidelity(records)
    lines = [
        "| method | median final value | budget to reach random's final value | "
        "epochs saved by resuming | trials (median) | at full fidelity | seeds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method in methods():
        reach = f.reach(method)
        reach_text = "not reached" if reach is None else f"{reach} ({reach / f.budget:.0%})"
        saved = "-"
        if method.endswith(fidelity.RESUME):
            without = f.reach(method.removesuffix(fidelity.RESUME))
            if reach is not None and without is not None:
                saved = f"{1 - reach / without:.0%}"
        lines.append(
            f"| {method.replace(PREFIX, 'ks-')} | {float(f.curve(method)[-1]):.4f} | "
            f"{reach_text} | {saved} | {f.median_of(method, 'started'):.0f} | "
            f"{f.median_of(method, 'full_trials'):.0f} | {len(f.runs[method])} |"
        )
    target = f.target()
    lines += ["", f"Budget: {f.budget} epochs; random search's final median value: {target:.4f}."]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run every method and seed, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--problem", default="mlp-digits", choices=sorted(problems.FIDELITY_PROBLEMS)
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--random-trials", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    problem = problems.fidelity_problem(args.problem)
    assert problem.fidelity is not None
    budget = args.random_trials * round(problem.fidelity.max)
    tasks = [
        {
            "method": method,
            "seed": seed,
            "problem": args.problem,
            "budget": budget,
            "workers": args.workers,
        }
        for method in methods()
        for seed in range(args.seeds)
    ]
    begin = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        records = list(pool.map(run_one, tasks))
    command = shlex.join(["python", "-m", "bench.suggest.resume", *(argv or sys.argv[1:])])
    print(f"`{command}`: {len(tasks)} runs in {time.monotonic() - begin:.0f} s")
    print()
    print("\n".join(table(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
