"""Population Based Training against ASHA and random search where the best learning rate moves.

``python -m bench.suggest.schedule`` runs each method on the same simulated
clock, with the same seeds, workers and budget of epochs, on a problem built so
that no fixed hyperparameters are best throughout: simulated SGD on a quadratic
loss, whose progress per step grows with the learning rate and whose noise
floor grows with it too (``lr / batch``), as SGD's does. A large rate is best
early, a small one late; a fixed rate must compromise, a schedule need not.
Population Based Training can find one (each interval, the worst members copy
a better member's state and perturb its rate), while ASHA and random search
train each configuration with one rate from start to end.

The training state is the loss itself, so a checkpoint is one number: a trial
that resumes from its parent starts from the parent's loss and epoch count,
and pays only for the epochs it adds; one that does not starts at epoch 0.
The incumbent is the best loss among trials trained to the last epoch.

Bounded: ``--seeds`` runs per method (default 10), ``--population`` members
trained for ``--epochs`` in intervals of ``--interval`` (the budget for every
method is what PBT spends: population x epochs).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kubesweep.api.experiment import Algorithm, AlgorithmName, ParameterValue
from kubesweep.api.status import CurvePoint
from kubesweep.api.suggestion_wire import (
    ObservedTrial,
    SearchSpace,
    SuggestRequest,
    TrialState,
)
from kubesweep.suggestion import registry

#: The search space: the learning rate and the batch size.
PARAMETERS = [
    {"name": "lr", "type": "float", "min": 1e-3, "max": 1.0, "log": True},
    {"name": "batch", "type": "int", "min": 16, "max": 256, "log": True},
]
#: Examples per epoch: an epoch is ``EXAMPLES / batch`` SGD steps.
EXAMPLES = 320
START_LOSS = 1.0


def train_epoch(loss: float, parameters: dict[str, ParameterValue]) -> float:
    """The loss after one more epoch of SGD from ``loss`` with these hyperparameters.

    Each step removes a share ``lr`` (at most 0.9) of the gap to the noise floor
    ``0.5 * lr * 32 / batch``; an epoch has ``EXAMPLES / batch`` steps.
    """
    lr, batch = float(parameters["lr"]), float(parameters["batch"])
    floor = 0.5 * lr * 32.0 / batch
    steps = EXAMPLES / batch
    return float(floor + (loss - floor) * (1.0 - min(0.9, lr)) ** steps)


@dataclass
class Trial:
    """A trial on a simulated worker: where it starts, where it ends, what it reported."""

    name: str
    parameters: dict[str, ParameterValue]
    target: int
    epoch: int
    loss: float
    tags: dict[str, str]
    curve: list[CurvePoint] = field(default_factory=list)

    def observed(self, state: TrialState) -> ObservedTrial:
        """The trial as the algorithm sees it."""
        return ObservedTrial(
            name=self.name,
            parameters=self.parameters,
            fidelity=float(self.target),
            state=state,
            value=self.loss if state is TrialState.COMPLETED else None,
            intermediate=self.curve,
            tags=self.tags,
        )


@dataclass
class Run:
    """One method's run: the incumbent after each improvement, and what was spent."""

    at: list[int] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    epochs: int = 0
    trials: int = 0


@dataclass(frozen=True)
class Setup:
    """What every method shares: the fidelity ladder, the workers and the budget."""

    epochs: int
    interval: int
    population: int
    workers: int

    @property
    def budget(self) -> int:
        """PBT's whole spend: every member trained to the last epoch."""
        return self.population * self.epochs


def _request(
    method: str, setup: Setup, seed: int, trials: list[ObservedTrial], count: int
) -> SuggestRequest:
    """The suggest request of ``method`` (pbt with the population, the others as set)."""
    algorithm = method.removesuffix("+resume").removesuffix("-full")
    settings: dict[str, ParameterValue] = {}
    space: dict[str, object] = {"parameters": PARAMETERS}
    if algorithm == "pbt":
        settings = {"populationSize": setup.population}
    if algorithm != "random":
        space["fidelity"] = {
            "parameter": "epochs",
            "min": setup.interval,
            "max": setup.epochs,
            "eta": 3,
        }
    return SuggestRequest(
        space=SearchSpace.model_validate(space),
        algorithm=Algorithm(name=AlgorithmName(algorithm), seed=seed, settings=settings),
        trials=trials,
        count=count,
    )


def simulate(method: str, setup: Setup, seed: int) -> Run:
    """``method`` on the clock: one epoch per running trial per tick, until the budget is spent."""
    resumes = method == "pbt" or method.endswith("+resume")
    finished: dict[str, Trial] = {}
    history: list[ObservedTrial] = []
    running: list[Trial] = []
    run = Run()
    idle = 0
    while run.epochs < setup.budget:
        free = setup.workers - len(running)
        if free > 0:
            pending = [t.observed(TrialState.PENDING) for t in running]
            reply = registry.suggest(_request(method, setup, seed, history + pending, free))
            for assignment in reply.assignments:
                parent = finished.get(assignment.parent or "") if resumes else None
                target = round(assignment.fidelity or setup.epochs)
                running.append(
                    Trial(
                        name=f"t{run.trials}",
                        parameters=dict(assignment.parameters),
                        target=target,
                        epoch=parent.epoch if parent is not None else 0,
                        loss=parent.loss if parent is not None else START_LOSS,
                        tags=dict(assignment.tags),
                    )
                )
                run.trials += 1
        if not running:
            idle += 1
            if idle > 3:
                break
            continue
        idle = 0
        for trial in running:
            if run.epochs >= setup.budget:
                break
            trial.loss = train_epoch(trial.loss, trial.parameters)
            trial.epoch += 1
            trial.curve.append(CurvePoint(step=trial.epoch, value=trial.loss))
            run.epochs += 1
        for trial in [t for t in running if t.epoch >= t.target]:
            running.remove(trial)
            finished[trial.name] = trial
            history.append(trial.observed(TrialState.COMPLETED))
            if trial.target >= setup.epochs and trial.loss < (
                run.best[-1] if run.best else math.inf
            ):
                run.at.append(run.epochs)
                run.best.append(trial.loss)
    return run


def best_fixed(setup: Setup) -> tuple[float, dict[str, ParameterValue]]:
    """The best loss any fixed configuration reaches in ``setup.epochs`` (a fine grid)."""
    best: tuple[float, dict[str, ParameterValue]] = (math.inf, {})
    for lr in np.geomspace(1e-3, 1.0, 301):
        for batch in (16, 23, 32, 45, 64, 91, 128, 181, 256):
            parameters: dict[str, ParameterValue] = {"lr": float(lr), "batch": batch}
            loss = START_LOSS
            for _ in range(setup.epochs):
                loss = train_epoch(loss, parameters)
            best = min(best, (loss, parameters), key=lambda item: item[0])
    return best


def reach(run: Run, target: float) -> int | None:
    """Epochs spent when the incumbent first was at least as good as ``target``."""
    return next((at for at, value in zip(run.at, run.best, strict=True) if value <= target), None)


METHODS = ("random-full", "asha", "asha+resume", "pbt")


def main(argv: Sequence[str] | None = None) -> int:
    """Run every method and seed, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--interval", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    setup = Setup(args.epochs, args.interval, args.population, args.workers)
    begin = time.monotonic()
    runs = {m: [simulate(m, setup, seed) for seed in range(args.seeds)] for m in METHODS}
    finals = {m: [r.best[-1] if r.best else math.inf for r in rs] for m, rs in runs.items()}
    target = float(np.median(finals["random-full"]))
    fixed, where = best_fixed(setup)
    command = shlex.join(["python", "-m", "bench.suggest.schedule", *(argv or sys.argv[1:])])
    print(f"`{command}`: {len(METHODS) * args.seeds} runs in {time.monotonic() - begin:.0f} s")
    print()
    print(
        "| method | median final loss | best seed | seeds better than the best fixed "
        "configuration | budget to reach random's final value (median) | trials (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for method in METHODS:
        reached = [reach(r, target) for r in runs[method]]
        spent = [x for x in reached if x is not None]
        reach_text = (
            f"{np.median(spent):.0f} of {setup.budget} ({len(spent)}/{args.seeds} seeds)"
            if spent
            else "not reached"
        )
        print(
            f"| {method} | {np.median(finals[method]):.4f} | {min(finals[method]):.4f} | "
            f"{sum(v < fixed for v in finals[method])}/{args.seeds} | {reach_text} | "
            f"{np.median([r.trials for r in runs[method]]):.0f} |"
        )
    print()
    print(
        f"Budget: {setup.budget} epochs each ({setup.population} x {setup.epochs}); "
        f"{setup.workers} workers. The best fixed configuration reaches {fixed:.4f} "
        f"(lr {float(where['lr']):.3g}, batch {where['batch']})."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
