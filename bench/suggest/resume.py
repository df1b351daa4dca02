"""Promotions that resume against promotions that retrain, side by side on one clock.

``python -m bench.suggest.resume`` runs hyperband, asha and bohb twice each on
the multi-fidelity task of :mod:`bench.suggest.fidelity` (same seeds, workers
and budget of trained epochs): once as today without checkpoints, where a
promoted configuration trains again from epoch 0, and once with ``+resume``,
where it starts from its parent's checkpoint and pays only for the epochs it
adds. Both sides spend the same number of *trained* epochs, so the resume side
may spend what it saves on more configurations. Random search at full fidelity
runs beside them and sets the bar: the budget each method needs until its
incumbent is as good as random search's final median value.

Two readings of "the budget to reach", because one alone misleads:

- on the median incumbent (the curve of medians over seeds), as in the
  suggestion benchmark: one number, but a step function whose step can land on
  either side of the target by chance;
- per seed, then the median and quartiles over seeds, with the saving paired
  by seed (the same seed with and without resume).

The final value is compared per seed too: the paired difference, how many
seeds resume ends equal or better, and Wilcoxon's signed-rank test, so that a
small gap between two medians can be told from noise.

``--eta`` changes the reduction factor of every multi-fidelity method on both
sides alike (random search does not use it). :func:`ladder_cost` prints what
the rung ladder alone allows ASHA to save: the epochs one bottom-rung
configuration costs in steady state, with and without resume.

Bounded: ``--seeds`` runs per method (default 10) of ``--random-trials`` full
trainings' worth of epochs (default 50), in ``--processes`` processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

from bench.suggest import fidelity, problems, report  # noqa: E402
from bench.suggest.ours import PREFIX  # noqa: E402
from bench.suggest.problems import Problem  # noqa: E402
from kubesweep.suggestion.space import rung_budgets  # noqa: E402

ALGORITHMS = ("hyperband", "asha", "bohb")


def methods() -> list[str]:
    """Each algorithm without and with resume, then random search at full fidelity."""
    names = [PREFIX + a + suffix for a in ALGORITHMS for suffix in ("", fidelity.RESUME)]
    return [*names, PREFIX + "random-full"]


def problem_with_eta(name: str, eta: float | None) -> Problem:
    """The fidelity problem ``name``, its reduction factor replaced when ``eta`` is given."""
    problem = problems.fidelity_problem(name)
    if eta is None:
        return problem
    assert problem.fidelity is not None
    return dataclasses.replace(problem, fidelity=problem.fidelity.model_copy(update={"eta": eta}))


def run_one(task: dict[str, Any]) -> dict[str, Any]:
    """One method and seed on the simulated clock, as a record :class:`report.Fidelity` reads."""
    problem = problem_with_eta(task["problem"], task["eta"])
    result = fidelity.simulate(
        task["method"], problem, task["seed"], task["budget"], task["workers"]
    )
    return {"kind": "fidelity", "status": "ok", **task, **asdict(result)}


def ladder_cost(budgets: Sequence[float], eta: float) -> tuple[float, float]:
    """Epochs per configuration started at the bottom rung, (retrained, resumed), in steady state.

    In ASHA's steady state a share ``eta**-k`` of the configurations reaches rung
    ``k``. Retrained, each of those pays the rung's whole budget; resumed, only
    the epochs above the rung below. The ratio is the most resuming can save
    on ASHA's total epochs, whatever the search finds.
    """
    retrained = sum(b * eta**-k for k, b in enumerate(budgets))
    resumed = sum((b - (budgets[k - 1] if k else 0.0)) * eta**-k for k, b in enumerate(budgets))
    return retrained, resumed


def seed_reach(record: dict[str, Any], target: float) -> float:
    """Epochs trained until this run's incumbent was as good as ``target`` (inf: never)."""
    for at, best in zip(record["at"], record["best"], strict=True):
        if best <= target:
            return float(at)
    return math.inf


def final_value(record: dict[str, Any]) -> float:
    """The run's incumbent at the end of its budget (inf without one)."""
    return float(record["best"][-1]) if record["best"] else math.inf


def _spread(values: Sequence[float]) -> tuple[float, float, float]:
    """The quartiles of ``values``, where an infinite one (never reached) stays infinite."""
    with np.errstate(invalid="ignore"):
        q = np.quantile(np.array(values, dtype=float), [0.25, 0.5, 0.75])
    q1, q2, q3 = (math.inf if math.isnan(v) else float(v) for v in q)
    return q1, q2, q3


def _quartiles(values: Sequence[float], digits: int = 4) -> str:
    if not values:
        return "-"
    q1, q2, q3 = _spread(values)
    if not math.isfinite(q2):
        return "not reached"

    def text(v: float) -> str:
        return "∞" if not math.isfinite(v) else f"{v:.{digits}f}"

    return f"{text(q2)} [{text(q1)}, {text(q3)}]"


def table(records: list[dict[str, Any]]) -> list[str]:
    """Final values and the budget to reach random search's final value, resume beside retrain."""
    f = report.Fidelity(records)
    target = f.target()
    assert target is not None
    lines = [
        "| method | final value: median [quartiles] | budget to reach random's final value "
        "(median incumbent) | epochs saved by resuming | per seed: budget to reach, median "
        "[quartiles] | seeds that reach | trials (median) | at full fidelity | seeds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method in methods():
        reach = f.reach(method)
        reach_text = "not reached" if reach is None else f"{reach} ({reach / f.budget:.0%})"
        saved = "-"
        if method.endswith(fidelity.RESUME):
            without = f.reach(method.removesuffix(fidelity.RESUME))
            if reach is not None and without is not None:
                saved = f"{1 - reach / without:.0%}"
        runs = f.runs[method]
        reaches = [seed_reach(r, target) for r in runs]
        lines.append(
            f"| {method.replace(PREFIX, 'ks-')} | {_quartiles([final_value(r) for r in runs])} | "
            f"{reach_text} | {saved} | {_quartiles(reaches, 0)} | "
            f"{sum(math.isfinite(x) for x in reaches)}/{len(runs)} | "
            f"{f.median_of(method, 'started'):.0f} | "
            f"{f.median_of(method, 'full_trials'):.0f} | {len(runs)} |"
        )
    lines += ["", f"Budget: {f.budget} epochs; random search's final median value: {target:.4f}."]
    return lines


def paired(records: list[dict[str, Any]]) -> list[str]:
    """Resume against retrain seed by seed: the saving and the final value's difference."""
    from scipy import stats

    f = report.Fidelity(records)
    target = f.target()
    assert target is not None
    lines = [
        "| algorithm | per seed: epochs saved by resuming, median [quartiles] | "
        "final value, resume minus retrain: median [quartiles] | seeds where resume ends "
        "equal or better | Wilcoxon signed-rank p (final values) |",
        "|---|---:|---:|---:|---:|",
    ]
    for algorithm in ALGORITHMS:
        without = {r["seed"]: r for r in f.runs[PREFIX + algorithm]}
        within = {r["seed"]: r for r in f.runs[PREFIX + algorithm + fidelity.RESUME]}
        seeds = sorted(set(without) & set(within))
        savings = []
        for seed in seeds:
            a, b = seed_reach(without[seed], target), seed_reach(within[seed], target)
            if math.isfinite(a) and math.isfinite(b):
                savings.append(1 - b / a)
        diffs = [final_value(within[s]) - final_value(without[s]) for s in seeds]
        better = sum(d <= 0 for d in diffs)
        nonzero = [d for d in diffs if d != 0 and math.isfinite(d)]
        p = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 6 else math.nan
        saved = "-" if not savings else _percent_quartiles(savings)
        lines.append(
            f"| {algorithm} | {saved} (of {len(savings)} seeds that reach on both sides) | "
            f"{_signed_quartiles(diffs)} | {better}/{len(seeds)} | {p:.2f} |"
        )
    return lines


def _percent_quartiles(values: Sequence[float]) -> str:
    q1, q2, q3 = _spread(values)
    return f"{q2:.0%} [{q1:.0%}, {q3:.0%}]"


def _signed_quartiles(values: Sequence[float]) -> str:
    q1, q2, q3 = _spread(values)
    return f"{q2:+.4f} [{q1:+.4f}, {q3:+.4f}]"


def ladder_lines(problem: Problem) -> list[str]:
    """What the rung ladder lets ASHA save by resuming, whatever the search finds."""
    assert problem.fidelity is not None
    budgets = rung_budgets(problem.fidelity)
    retrained, resumed = ladder_cost(budgets, problem.fidelity.eta)
    ladder = ", ".join(f"{b:g}" for b in budgets)
    return [
        f"Rungs {ladder} (eta {problem.fidelity.eta:g}): in ASHA's steady state one bottom-rung "
        f"configuration costs {retrained:.2f} epochs retrained and {resumed:.2f} resumed, "
        f"so resuming saves at most {1 - resumed / retrained:.0%} of ASHA's epochs."
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run every method and seed, then print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--problem", default="mlp-digits", choices=sorted(problems.FIDELITY_PROBLEMS)
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--random-trials", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--eta",
        type=float,
        default=None,
        help="reduction factor for every method (default: the problem's)",
    )
    parser.add_argument(
        "--records", type=Path, default=None, help="write each run as a JSON line here"
    )
    args = parser.parse_args(argv)
    problem = problem_with_eta(args.problem, args.eta)
    assert problem.fidelity is not None
    budget = args.random_trials * round(problem.fidelity.max)
    tasks = [
        {
            "method": method,
            "seed": seed,
            "problem": args.problem,
            "eta": args.eta,
            "budget": budget,
            "workers": args.workers,
        }
        for method in methods()
        for seed in range(args.seeds)
    ]
    begin = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        records = list(pool.map(run_one, tasks))
    if args.records is not None:
        args.records.write_text("".join(json.dumps(r) + "\n" for r in records))
    command = shlex.join(["python", "-m", "bench.suggest.resume", *(argv or sys.argv[1:])])
    print(f"`{command}`: {len(tasks)} runs in {time.monotonic() - begin:.0f} s")
    print()
    print("\n".join(table(records)))
    print()
    print("\n".join(paired(records)))
    print()
    print("\n".join(ladder_lines(problem)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
