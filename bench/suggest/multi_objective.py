"""Multi-objective search side by side: hypervolume at a budget, ours against Optuna's.

Two standard problems with known fronts (ZDT1 in 5 variables, DTLZ2 in 3
objectives and 6 variables) are searched by ``nsga2`` and ``tpe`` (several
objectives) and by Optuna's NSGA-II and TPE samplers, every method with every
seed, one trial at a time, for ``--trials`` trials. The figure is the
hypervolume of the non-dominated trials at the end (``moocore``), against a
fixed reference point per problem; larger is better. Medians and the spread
(the lowest and highest value over the seeds) are printed as a Markdown table.

Run: ``python -m bench.suggest.multi_objective --trials 100 --seeds 10``
(bounded: each run holds at most ``--trials`` trials; nothing runs in parallel).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kubesweep.api.experiment import Algorithm, AlgorithmName, Direction
from kubesweep.api.suggestion_wire import ObservedTrial, SearchSpace, SuggestRequest, TrialState
from kubesweep.suggestion import registry
from kubesweep.suggestion.algorithms._pareto import hypervolume, pareto_ranks


@dataclass(frozen=True)
class MoProblem:
    """A problem of ``dim`` variables in [0, 1] and its objectives (all minimised)."""

    name: str
    dim: int
    objectives: int
    reference: tuple[float, ...]
    evaluate: Callable[[Sequence[float]], list[float]]


def zdt1(x: Sequence[float]) -> list[float]:
    """ZDT1: the front is f2 = 1 - sqrt(f1) at x[1:] = 0."""
    g = 1.0 + 9.0 * sum(x[1:]) / (len(x) - 1)
    return [x[0], g * (1.0 - math.sqrt(x[0] / g))]


def dtlz2(x: Sequence[float], objectives: int = 3) -> list[float]:
    """DTLZ2: the front is the unit sphere's positive orthant at x[m-1:] = 0.5."""
    g = sum((v - 0.5) ** 2 for v in x[objectives - 1 :])
    out = []
    for i in range(objectives):
        f = 1.0 + g
        for v in x[: objectives - 1 - i]:
            f *= math.cos(v * math.pi / 2)
        if i > 0:
            f *= math.sin(x[objectives - 1 - i] * math.pi / 2)
        out.append(f)
    return out


PROBLEMS = {
    "zdt1-5d": MoProblem("zdt1-5d", 5, 2, (1.1, 11.0), zdt1),
    "dtlz2-6d": MoProblem("dtlz2-6d", 6, 3, (2.5, 2.5, 2.5), dtlz2),
}


def front_hypervolume(points: list[list[float]], reference: Sequence[float]) -> float:
    """Hypervolume of the non-dominated points (all minimised)."""
    losses = np.array(points, dtype=float)
    return hypervolume(losses[pareto_ranks(losses) == 0], reference)


def run_ours(name: AlgorithmName, problem: MoProblem, seed: int, trials: int) -> list[list[float]]:
    space = SearchSpace.model_validate(
        {
            "parameters": [
                {"name": f"x{i}", "type": "float", "min": 0, "max": 1} for i in range(problem.dim)
            ]
        }
    )
    directions = [Direction.MINIMIZE] * problem.objectives
    history: list[ObservedTrial] = []
    points = []
    for index in range(trials):
        reply = registry.suggest(
            SuggestRequest(
                space=space,
                objectives=directions,
                algorithm=Algorithm(name=name, seed=seed),
                trials=history,
            )
        )
        parameters = reply.assignments[0].parameters
        values = problem.evaluate([float(parameters[f"x{i}"]) for i in range(problem.dim)])
        points.append(values)
        history.append(
            ObservedTrial(
                name=f"t{index}",
                parameters=parameters,
                state=TrialState.COMPLETED,
                value=values[0],
                values=values,
            )
        )
    return points


def run_optuna(sampler_name: str, problem: MoProblem, seed: int, trials: int) -> list[list[float]]:
    import optuna  # type: ignore[import-not-found, import-untyped, unused-ignore]

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler: optuna.samplers.BaseSampler = (
        optuna.samplers.NSGAIISampler(seed=seed)
        if sampler_name == "nsga2"
        else optuna.samplers.TPESampler(seed=seed)
    )
    study = optuna.create_study(sampler=sampler, directions=["minimize"] * problem.objectives)
    points: list[list[float]] = []

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        x = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(problem.dim)]
        values = problem.evaluate(x)
        points.append(values)
        return tuple(values)

    study.optimize(objective, n_trials=trials)
    return points


METHODS: dict[str, Callable[[MoProblem, int, int], list[list[float]]]] = {
    "nsga2": lambda p, s, n: run_ours(AlgorithmName.NSGA2, p, s, n),
    "tpe": lambda p, s, n: run_ours(AlgorithmName.TPE, p, s, n),
    "optuna-nsga2": lambda p, s, n: run_optuna("nsga2", p, s, n),
    "optuna-tpe": lambda p, s, n: run_optuna("tpe", p, s, n),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args(argv)
    print("| problem | method | median hypervolume | spread (min to max) | seconds per run |")
    print("|---|---|---|---|---|")
    for problem in PROBLEMS.values():
        for method, run in METHODS.items():
            values, seconds = [], []
            for seed in range(args.seeds):
                start = time.perf_counter()
                points = run(problem, seed, args.trials)
                seconds.append(time.perf_counter() - start)
                values.append(front_hypervolume(points, problem.reference))
            print(
                f"| {problem.name} | {method} | {statistics.median(values):.4f} | "
                f"{min(values):.4f} to {max(values):.4f} | {statistics.median(seconds):.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
