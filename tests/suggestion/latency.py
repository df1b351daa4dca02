"""Suggestion latency at large histories: ``python -m tests.suggestion.latency [names]``.

Not a test (timings are no pass/fail on a shared machine); it prints the median
and worst time of ``registry.suggest`` (settings checked, algorithm built,
history analysed, one assignment returned) at 1,000 and 10,000 observed
trials. Histories come from the algorithm itself, in large batches, so the
multi-fidelity ones see their own brackets and rungs (and CMA-ES its
generations, one per call), mostly completed with some pending and failed trials.
"""

from __future__ import annotations

import math
import statistics
import sys
import time

from kubesweep.api.experiment import Algorithm, AlgorithmName, EarlyStopping
from kubesweep.api.status import CurvePoint
from kubesweep.api.suggestion_wire import ObservedTrial, StopRequest, SuggestRequest, TrialState
from kubesweep.suggestion import registry
from tests.suggestion.helpers import observe, request, space_for

SIZES = (1_000, 10_000)
REPEATS = 7


def history(name: AlgorithmName, size: int) -> list[ObservedTrial]:
    """``size`` trials suggested by the algorithm (random for the expensive models).

    CMA-ES replays its generations from their tags, so its history is its own, one
    generation (its default population) per call: the most generations, the costliest
    replay.
    """
    own = {AlgorithmName.HYPERBAND, AlgorithmName.ASHA, AlgorithmName.CMAES}
    source = name if name in own else None
    trials: list[ObservedTrial] = []
    while len(trials) < size:
        batch = min(1000, size - len(trials))
        if name is AlgorithmName.CMAES:
            dimensions = len(space_for(name).parameters)
            batch = min(4 + math.floor(3 * math.log(dimensions)), size - len(trials))
        algo = source or AlgorithmName.RANDOM
        base = request(algo, trials, count=batch)
        if source is None and name in {AlgorithmName.BOHB}:
            base = request(AlgorithmName.HYPERBAND, trials, count=batch)
        reply = registry.suggest(base)
        for assignment in reply.assignments:
            i = len(trials)
            state = TrialState.FAILED if i % 50 == 0 else TrialState.COMPLETED
            trials.append(observe(assignment, i, state=state))
    # The last few are still running.
    for i in range(1, 11):
        trials[-i] = trials[-i].model_copy(update={"state": TrialState.PENDING, "value": None})
    return trials


def measure(name: AlgorithmName, size: int) -> tuple[float, float]:
    """Median and maximum seconds of one suggest call."""
    trials = history(name, size)
    req: SuggestRequest = request(name, trials, count=1)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        registry.suggest(req)
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times)


def curves(size: int, points: int = 20) -> list[ObservedTrial]:
    """``size`` trials with objective curves, the last 100 still running."""
    out = []
    for i in range(size):
        running = i >= size - 100
        length = 1 + i % points if running else points
        curve = [CurvePoint(step=s + 1, value=1.0 / (s + 1) + (i % 17) / 17) for s in range(length)]
        out.append(
            ObservedTrial(
                name=f"t{i}",
                parameters={"lr": 0.01},
                fidelity=27,
                state=TrialState.PENDING if running else TrialState.COMPLETED,
                value=None if running else curve[-1].value,
                intermediate=curve,
            )
        )
    return out


def measure_stop(kind: str, size: int) -> tuple[float, float]:
    """Median and maximum seconds of one stop call (median rule or asha stopping)."""
    trials = curves(size)
    if kind == "median":
        req = StopRequest(
            space=space_for(AlgorithmName.RANDOM),
            early_stopping=EarlyStopping(),
            trials=trials,
        )
    else:
        req = StopRequest(
            space=space_for(AlgorithmName.ASHA),
            algorithm=Algorithm(name=AlgorithmName.ASHA, settings={"mode": "stopping"}),
            trials=trials,
        )
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        registry.stop(req)
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times)


def main(argv: list[str]) -> None:
    """Print a table of latencies for the named (default: all available) algorithms."""
    names = [AlgorithmName(a) for a in argv if a != "stop"] or [
        n for n in AlgorithmName if registry.available(n)
    ]
    print(f"{'algorithm':<10} {'trials':>7} {'median ms':>10} {'max ms':>8}")
    for name in names:
        for size in SIZES:
            median, worst = measure(name, size)
            print(f"{name.value:<10} {size:>7} {median * 1e3:>10.1f} {worst * 1e3:>8.1f}")
    if not argv or "stop" in argv:
        for kind in ("median", "asha-stop"):
            for size in SIZES:
                median, worst = measure_stop(kind, size)
                print(f"{kind:<10} {size:>7} {median * 1e3:>10.1f} {worst * 1e3:>8.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
