"""Multi-fidelity runs on a simulated clock with N parallel workers.

Why simulate: the budget that matters is training time (epochs), not the
benchmark's own wall time, and parallel workers change what an algorithm knows
when it decides (a rung is rarely complete when a slot frees up). A
deterministic clock gives both without threads: one tick trains every running
trial one more epoch; after each tick finished trials report, the method may
stop running ones, and free workers get new trials.

Accounting (the same for every method):

- Budget consumed is the number of epochs trained, summed over trials. A
  promoted configuration (hyperband, asha, bohb start it again at a higher
  fidelity) is trained from scratch and pays in full, as a new Kubernetes Job
  does without checkpoints; a pruned Optuna trial pays for the epochs it ran.
  A method named with :data:`RESUME` (``kubesweep-asha+resume``) runs as with
  ``trialTemplate.checkpoints``: a trial whose assignment names a parent starts
  from the parent's curve and pays only for the epochs it adds.
- The incumbent is the best validation loss among trials trained to the
  maximum fidelity (what one would deploy); a low-fidelity value never counts.
- The run ends when the budget is spent (running trials are cut off there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.suggest.ours import PREFIX, space_of
from bench.suggest.peers import plain
from bench.suggest.problems import Problem
from kubesweep.api.experiment import Algorithm, AlgorithmName, ParameterValue
from kubesweep.api.status import CurvePoint
from kubesweep.api.suggestion_wire import (
    Assignment,
    ObservedTrial,
    StopRequest,
    SuggestRequest,
    TrialState,
)


@dataclass
class Running:
    """A trial on a simulated worker."""

    name: str
    parameters: dict[str, ParameterValue]
    target: int  # epochs to train
    tags: dict[str, str] = field(default_factory=dict)
    handle: Any = None
    curve: list[float] = field(default_factory=list)


#: The suffix of a method name that resumes promotions from the parent's checkpoint.
RESUME = "+resume"


class Method(Protocol):
    """A multi-fidelity method under the simulator."""

    def start(self, count: int) -> list[Running]:
        """Up to ``count`` new trials (fewer or none when the method waits or is done)."""
        ...

    def observe(self, running: Sequence[Running]) -> set[str]:
        """After a tick: the names of running (unfinished) trials to stop now."""
        ...

    def finish(self, trial: Running, stopped: bool) -> None:
        """A trial ended: trained to its target, or stopped early."""
        ...


class Kubesweep:
    """A kubesweep algorithm through the registry (``suggest``; ``stop`` when it stops trials)."""

    def __init__(self, algorithm: str, problem: Problem, seed: int, resume: bool = False) -> None:
        from kubesweep.suggestion import registry

        self.registry = registry
        self.problem = problem
        self.multi = algorithm != "random"
        self.space = space_of(problem, with_fidelity=self.multi)
        self.spec = Algorithm(name=AlgorithmName(algorithm), seed=seed)
        self.done: list[ObservedTrial] = []
        self.resume = resume
        #: Each finished trial's curve: a resumed child starts from its parent's.
        self.curves: dict[str, list[float]] = {}
        self.running: dict[str, Running] = {}
        self.count = 0
        self.stops = callable(getattr(registry.build(self.space, self.spec), "decide", None))
        assert problem.fidelity is not None
        self.max_epochs = round(problem.fidelity.max)
        self.calls = 0
        self.seconds = 0.0

    def _history(self) -> list[ObservedTrial]:
        pending = [
            ObservedTrial(
                name=r.name,
                parameters=r.parameters,
                fidelity=float(r.target) if self.multi else None,
                state=TrialState.PENDING,
                intermediate=[CurvePoint(step=i + 1, value=v) for i, v in enumerate(r.curve)],
                tags=r.tags,
            )
            for r in self.running.values()
        ]
        return [*self.done, *pending]

    def start(self, count: int) -> list[Running]:
        begin = time.perf_counter()
        reply = self.registry.suggest(
            SuggestRequest(
                space=self.space, algorithm=self.spec, trials=self._history(), count=count
            )
        )
        self.calls += 1
        self.seconds += time.perf_counter() - begin
        return [self.begin(assignment) for assignment in reply.assignments]

    def begin(self, assignment: Assignment) -> Running:
        """The trial of ``assignment``, from its parent's curve when it resumes."""
        target = self.max_epochs if assignment.fidelity is None else round(assignment.fidelity)
        trial = Running(
            name=f"trial-{self.count}",
            parameters=dict(assignment.parameters),
            target=max(1, min(self.max_epochs, target)),
            tags=dict(assignment.tags),
        )
        if self.resume and assignment.parent in self.curves:
            trial.curve = list(self.curves[assignment.parent][: trial.target])
        self.count += 1
        self.running[trial.name] = trial
        return trial

    def observe(self, running: Sequence[Running]) -> set[str]:
        if not self.stops or not running:
            return set()
        begin = time.perf_counter()
        reply = self.registry.stop(
            StopRequest(space=self.space, algorithm=self.spec, trials=self._history())
        )
        self.calls += 1
        self.seconds += time.perf_counter() - begin
        return {d.name for d in reply.stop}

    def finish(self, trial: Running, stopped: bool) -> None:
        self.running.pop(trial.name, None)
        self.curves[trial.name] = list(trial.curve)
        self.done.append(
            ObservedTrial(
                name=trial.name,
                parameters=trial.parameters,
                fidelity=float(trial.target) if self.multi else None,
                state=TrialState.STOPPED if stopped else TrialState.COMPLETED,
                value=trial.curve[-1],
                intermediate=[CurvePoint(step=i + 1, value=v) for i, v in enumerate(trial.curve)],
                tags=trial.tags,
            )
        )


class OptunaHyperband:
    """Optuna's default sampler (TPE) with ``HyperbandPruner``, ``report``/``should_prune``
    after every epoch."""

    def __init__(self, problem: Problem, seed: int) -> None:
        import optuna  # type: ignore[import-not-found, import-untyped, unused-ignore]

        from bench.suggest.peers import optuna_distributions

        assert problem.fidelity is not None
        self.max_epochs = round(problem.fidelity.max)
        self.optuna = optuna
        self.study = optuna.create_study(
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.HyperbandPruner(
                min_resource=round(problem.fidelity.min),
                max_resource=self.max_epochs,
                reduction_factor=round(problem.fidelity.eta),
            ),
        )
        self.distributions = optuna_distributions(problem.parameters)
        self.problem = problem
        self.calls = 0
        self.seconds = 0.0

    def start(self, count: int) -> list[Running]:
        out = []
        for _ in range(count):
            begin = time.perf_counter()
            trial = self.study.ask(self.distributions)
            self.seconds += time.perf_counter() - begin
            self.calls += 1
            parameters = plain(trial.params, self.problem.parameters)
            out.append(Running(f"trial-{trial.number}", parameters, self.max_epochs, handle=trial))
        return out

    def observe(self, running: Sequence[Running]) -> set[str]:
        begin = time.perf_counter()
        stop = set()
        for r in running:
            r.handle.report(r.curve[-1], len(r.curve))
            if r.handle.should_prune():
                stop.add(r.name)
        self.seconds += time.perf_counter() - begin
        return stop

    def finish(self, trial: Running, stopped: bool) -> None:
        begin = time.perf_counter()
        if stopped:
            self.study.tell(trial.handle, state=self.optuna.trial.TrialState.PRUNED)
        else:
            trial.handle.report(trial.curve[-1], len(trial.curve))
            self.study.tell(trial.handle, trial.curve[-1])
        self.seconds += time.perf_counter() - begin


@dataclass
class FidelityRun:
    """The trace of one run: the incumbent after each full-fidelity completion."""

    at: list[int] = field(default_factory=list)  # epochs consumed when the incumbent changed
    best: list[float] = field(default_factory=list)
    started: int = 0
    full_trials: int = 0
    epochs: int = 0
    optimizer_seconds: float = 0.0
    calls: int = 0


def make_method(name: str, problem: Problem, seed: int) -> Method:
    """The method called ``name`` in reports."""
    if name == "optuna-hyperband":
        return OptunaHyperband(problem, seed)
    if name == f"{PREFIX}random-full":
        return Kubesweep("random", problem, seed)
    if name.startswith(PREFIX):
        algorithm = name.removeprefix(PREFIX)
        resume = algorithm.endswith(RESUME)
        return Kubesweep(algorithm.removesuffix(RESUME), problem, seed, resume=resume)
    raise KeyError(name)


def simulate(name: str, problem: Problem, seed: int, budget: int, workers: int) -> FidelityRun:
    """Run ``name`` on ``problem`` until ``budget`` epochs are spent by ``workers`` workers."""
    assert problem.fidelity is not None
    method = make_method(name, problem, seed)
    max_epochs = round(problem.fidelity.max)
    run = FidelityRun()
    running: list[Running] = []
    curves: Curves = {}
    idle_ticks = 0
    while run.epochs < budget:
        if len(running) < workers:
            new = method.start(workers - len(running))
            run.started += len(new)
            running.extend(new)
        if not running:
            idle_ticks += 1
            if idle_ticks > 3:
                break  # the method has nothing more to run
            continue
        idle_ticks = 0
        _train_one_epoch_each(
            running, problem=problem, curves=curves, max_epochs=max_epochs, run=run, budget=budget
        )
        for trial in (t for t in running if len(t.curve) >= t.target):
            method.finish(trial, stopped=False)
            _record_finished(run, trial, max_epochs)
        running = [t for t in running if len(t.curve) < t.target]
        if run.epochs >= budget:
            break
        to_stop = method.observe(running)
        for trial in running:
            if trial.name in to_stop:
                method.finish(trial, stopped=True)
        running = [t for t in running if t.name not in to_stop]
    run.optimizer_seconds = float(getattr(method, "seconds", 0.0))
    run.calls = int(getattr(method, "calls", 0))
    return run


#: Each configuration's learning curve, evaluated once to the longest length asked.
Curves = dict[tuple[tuple[str, str], ...], list[float]]


def _train_one_epoch_each(
    running: list[Running],
    *,
    problem: Problem,
    curves: Curves,
    max_epochs: int,
    run: FidelityRun,
    budget: int,
) -> None:
    """One more epoch for each running trial, until the budget is spent."""
    for trial in running:
        if len(trial.curve) >= trial.target:
            continue  # resumed at its target already: nothing left to train
        key = tuple(sorted((k, repr(v)) for k, v in trial.parameters.items()))
        curve = curves.get(key)
        if curve is None or len(curve) < trial.target:
            curve = problem.evaluate_curve(trial.parameters, max(trial.target, max_epochs))
            curves[key] = curve
        trial.curve.append(curve[len(trial.curve)])
        run.epochs += 1
        if run.epochs >= budget:
            return


def _record_finished(run: FidelityRun, trial: Running, max_epochs: int) -> None:
    """A trial trained to the full fidelity counts, and may be the new best so far."""
    if trial.target < max_epochs:
        return
    run.full_trials += 1
    if trial.curve[-1] < (run.best[-1] if run.best else math.inf):
        run.at.append(run.epochs)
        run.best.append(trial.curve[-1])
