"""The CLI's views at N trials: ``python -m bench.report_scale --trials 100000``.

What ``kubesweep report``, ``kubesweep trials --limit`` and ``kubesweep best
--top`` cost at an experiment's size, apart from reading the Trials (the API
server's part). The trials are made up: the example ``digits-random`` sweep's
three parameters at random, a loss from them, a curve of ``--curve`` points,
every trial succeeded. Each figure is the median of ``--repeats`` runs, in this
process; the report's file size is printed with it.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.machine import cpu_model
from kubesweep.api import Direction, Experiment, TrialPhase, load_experiments
from kubesweep.cli import display
from kubesweep.cli.ranking import TrialRecord, best_records, sort_records

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 12, 6, tzinfo=UTC)


def experiment() -> Experiment:
    """The example random sweep, which the made-up trials belong to."""
    return load_experiments((ROOT / "examples" / "random.yaml").read_text())[0]


def records(count: int, curve: int, seed: int = 0) -> list[TrialRecord]:
    """``count`` succeeded trials of the example's space, each with a curve of ``curve`` points."""
    rng = random.Random(seed)
    out = []
    for index in range(count):
        alpha = 10 ** rng.uniform(-6, -2)
        eta0 = 10 ** rng.uniform(-3, 0)
        penalty = rng.choice(["l2", "l1", "elasticnet"])
        loss = abs(math.log10(eta0) + 1.5) / 3 + alpha * 10 + (penalty == "l1") * 0.1
        points = tuple((step, loss + 1 / step) for step in range(1, curve + 1))
        out.append(
            TrialRecord(
                name=f"digits-random-{index}",
                index=index,
                phase=TrialPhase.SUCCEEDED,
                parameters={"alpha": alpha, "eta0": eta0, "penalty": penalty},
                objective=loss,
                metrics={"val_loss": loss, "accuracy": 1 - loss / 2},
                start_time=T0 + timedelta(seconds=index),
                completion_time=T0 + timedelta(seconds=index + 30),
                curve=points,
            )
        )
    return out


def timed(step: Callable[[], object], repeats: int) -> float:
    """The median seconds of ``repeats`` calls."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report_scale", description=__doc__)
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--curve", type=int, default=8, help="curve points per trial")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from kubesweep.cli.report.html import write_report

    print(
        f"# {platform.node()}: {cpu_model()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    sweep = experiment()
    trials = records(args.trials, args.curve)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "report.html"
        report = timed(lambda: write_report(sweep, trials, path), args.repeats)
        size = path.stat().st_size
    minimize = Direction.MINIMIZE
    top = timed(lambda: best_records(trials, sweep.spec, 10), args.repeats)
    table = timed(
        lambda: display.experiment_trials_table(
            sweep, sort_records(trials, "objective", minimize)[:50], ranked=True
        ),
        args.repeats,
    )
    print("| trials | report, s | report size, MB | best --top 10, s | trials --limit 50, s |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {args.trials:,} | {report:.2f} | {size / 1e6:.1f} | {top:.2f} | {table:.2f} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
