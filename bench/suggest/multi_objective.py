"""Multi-objective search side by side: hypervolume at a budget, ours against Optuna's.

Four problems (:mod:`bench.suggest.mo_problems`: ZDT1, DTLZ2, and two tabulated
training runs trading validation loss against training cost or model size) are
searched by ``nsga2`` and ``tpe`` (several objectives) and by Optuna's NSGA-II and
TPE samplers, every method with every seed, one trial at a time, for ``--trials``
trials. Ours get the tags they put on their suggestions back with the results, as
the operator returns them. The figure is the hypervolume of the non-dominated
trials at the end (``moocore``), against a fixed reference point per problem;
larger is better. Medians and the spread (the lowest and highest value over the
seeds) are printed as a Markdown table.

Run: ``python -m bench.suggest.multi_objective --trials 100 --seeds 10``
(bounded: each run holds at most ``--trials`` trials; nothing runs in parallel; the
training runs' tables are built on first use, about 500 fits, and cached).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from bench.suggest.mo_problems import PROBLEMS, MoProblem, build_tables, mo_problems
from bench.suggest.peers import optuna_distributions, plain
from kubesweep.api.experiment import Algorithm, AlgorithmName, Direction
from kubesweep.api.suggestion_wire import ObservedTrial, SearchSpace, SuggestRequest, TrialState
from kubesweep.suggestion import registry
from kubesweep.suggestion.algorithms._pareto import hypervolume, pareto_ranks


def front_hypervolume(points: list[list[float]], reference: Sequence[float]) -> float:
    """Hypervolume of the non-dominated points (all minimised)."""
    losses = np.array(points, dtype=float)
    return hypervolume(losses[pareto_ranks(losses) == 0], reference)


def run_ours(name: AlgorithmName, problem: MoProblem, seed: int, trials: int) -> list[list[float]]:
    """kubesweep's algorithm through the registry, one trial at a time, as the service runs it."""
    space = SearchSpace(parameters=list(problem.parameters))
    directions = [Direction.MINIMIZE] * len(problem.reference)
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
        assignment = reply.assignments[0]
        values = problem.evaluate(assignment.parameters)
        points.append(values)
        history.append(
            ObservedTrial(
                name=f"t{index}",
                parameters=assignment.parameters,
                state=TrialState.COMPLETED,
                value=values[0],
                values=values,
                tags=assignment.tags,
            )
        )
    return points


def run_optuna(sampler_name: str, problem: MoProblem, seed: int, trials: int) -> list[list[float]]:
    """Optuna's ask/tell loop over the same space, with the sampler's defaults."""
    import optuna  # type: ignore[import-not-found, import-untyped, unused-ignore]

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler: optuna.samplers.BaseSampler = (
        optuna.samplers.NSGAIISampler(seed=seed)
        if sampler_name == "nsga2"
        else optuna.samplers.TPESampler(seed=seed)
    )
    study = optuna.create_study(sampler=sampler, directions=["minimize"] * len(problem.reference))
    distributions = optuna_distributions(problem.parameters)
    points: list[list[float]] = []
    for _ in range(trials):
        trial = study.ask(distributions)
        values = problem.evaluate(plain(trial.params, problem.parameters))
        points.append(values)
        study.tell(trial, values)
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
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument(
        "--processes", type=int, default=1, help="processes that build missing tables"
    )
    args = parser.parse_args(argv)
    build_tables(args.processes)
    print("| problem | method | median hypervolume | spread (min to max) | seconds per run |")
    print("|---|---|---|---|---|")
    for problem in mo_problems(args.problems):
        for method in args.methods:
            run = METHODS[method]
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
