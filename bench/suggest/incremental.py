"""Ask latency at N observed trials: the whole history per ask against its changes only.

``python -m bench.suggest.incremental --trials 100000``

What is measured, per algorithm, side by side in one run against one service
(``kubesweep-suggestion`` in a capped child process, worker processes, reply
cache off so every ask computes): the operator's HTTP backend asking for one
assignment, timed from the request model to the parsed reply (serializing,
sending, parsing on the service, the algorithm, the reply). ``whole`` sends the
whole history on every ask (the protocol before ``historyBase``); ``changes``
sends what changed since the history the service holds (its first ask, which
sends everything, is reported apart). Between two asks the history moves as a
sweep's does: the oldest running trial finishes and a new one starts, so each
``changes`` ask carries two trials. Both protocols ask on the same histories.

The histories are those of :mod:`bench.suggest.latency` (random points of the
mixed problem; multi-fidelity algorithms their own), with the last
``--running`` trials pending. Building the request from the operator's trials is
not timed here (the memory benchmark records it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from typing import Any

import aiohttp

from bench.machine import cpu_model
from bench.service.run import service, tree_rss, wait_ready
from bench.suggest.latency import build_history
from kubesweep.api.suggestion_wire import ObservedTrial, SuggestRequest, TrialState
from kubesweep.operator.suggestions import HttpSuggestionBackend, SuggestionUnavailable

ALGORITHMS = (
    "grid",
    "random",
    "sobol",
    "bayesian",
    "tpe",
    "cmaes",
    "nsga2",
    "hyperband",
    "asha",
    "bohb",
    "pbt",
)
#: Address space of each service process (server and each worker).
CAP_BYTES = 4 << 30


def pending(trial: ObservedTrial) -> ObservedTrial:
    return trial.model_copy(update={"state": TrialState.PENDING, "value": None})


async def measure(url: str, algorithm: str, n: int, asks: int, running: int) -> dict[str, Any]:
    """Both protocols on the same moving history of ``n`` trials."""
    started = time.perf_counter()
    space, spec, finished = build_history(algorithm, n + asks + running, "branin-fidelity")
    setup = time.perf_counter() - started
    # The first n trials, the last `running` of them pending; later ones start one per ask.
    history = finished[: n - running] + [pending(t) for t in finished[n - running : n]]
    whole = HttpSuggestionBackend(url, 120, incremental=False)
    changes = HttpSuggestionBackend(url, 120)
    uid = f"bench-{algorithm}"

    def request() -> SuggestRequest:
        return SuggestRequest(experiment_uid=uid, space=space, algorithm=spec, trials=history)

    asked = request()
    body_bytes = len(json.dumps(asked.to_wire()))
    started = time.perf_counter()
    await changes.suggest(asked)
    first = time.perf_counter() - started
    timings: dict[str, list[float]] = {"whole": [], "changes": []}
    failures: dict[str, list[str]] = {"whole": [], "changes": []}
    for ask in range(asks):
        oldest = next(i for i, t in enumerate(history) if t.state is TrialState.PENDING)
        history[oldest] = finished[oldest]
        history.append(pending(finished[n + ask]))
        asked = request()  # the planner's work, not timed
        for name, backend in (("whole", whole), ("changes", changes)):
            started = time.perf_counter()
            try:
                await backend.suggest(asked)
            except SuggestionUnavailable as error:
                failures[name].append(str(error)[:160])  # e.g. 504 past the deadline
                continue
            timings[name].append(time.perf_counter() - started)
    await whole.close()
    await changes.close()
    return {
        "algorithm": algorithm,
        "trials": n,
        "body_bytes": body_bytes,
        "setup_s": round(setup, 1),
        "whole_ms": [round(1000 * t, 1) for t in timings["whole"]],
        "changes_ms": [round(1000 * t, 1) for t in timings["changes"]],
        "first_changes_ask_ms": round(1000 * first, 1),
        "whole_median_ms": _median_ms(timings["whole"]),
        "changes_median_ms": _median_ms(timings["changes"]),
        "whole_failed": failures["whole"],
        "changes_failed": failures["changes"],
    }


def _median_ms(seconds: list[float]) -> float | None:
    return round(1000 * statistics.median(seconds), 1) if seconds else None


def _cell(row: dict[str, Any], protocol: str) -> str:
    median = row[f"{protocol}_median_ms"]
    failed = len(row[f"{protocol}_failed"])
    text = "-" if median is None else f"{median:,.0f}"
    return f"{text} ({failed} of {failed + len(row[f'{protocol}_ms'])} failed)" if failed else text


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    # As deployed but with the reply cache off (service's default), so every ask is answered.
    with service(args.workers, "--metrics-port=0", cap_bytes=CAP_BYTES) as (url, pid):
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url)
        for algorithm in args.algorithms.split(","):
            row = await measure(url, algorithm, args.trials, args.asks, args.running)
            row["service_rss_mib"] = round(tree_rss(pid) / 2**20)
            row["load"] = round(os.getloadavg()[0], 2)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.suggest.incremental", description=__doc__
    )
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--asks", type=int, default=5, help="asks per protocol and algorithm")
    parser.add_argument("--running", type=int, default=4, help="pending trials in the history")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    args = parser.parse_args(argv)
    print(
        f"# {platform.node()}: {cpu_model()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rows = asyncio.run(main_async(args))
    print("\n| algorithm | whole history, median ms | changes only, median ms | ratio |")
    print("|---|---:|---:|---:|")
    for row in rows:
        whole, changes = row["whole_median_ms"], row["changes_median_ms"]
        ratio = f"{whole / max(changes, 1e-3):.0f}x" if whole and changes else "-"
        print(f"| {row['algorithm']} | {_cell(row, 'whole')} | {_cell(row, 'changes')} | {ratio} |")


if __name__ == "__main__":
    main()
