"""Latency of one suggestion after N observed trials, each measurement in its own process.

What is measured, for kubesweep: the service's work for one request without
the HTTP round trip. ``parse`` is ``SuggestRequest.model_validate_json`` of the
request body (N trials), ``call`` is ``registry.suggest`` on the parsed request
(count 1, no experiment UID, so no model cache: every call is cold). The goal
is judged on parse + call, the cost a replica pays per request.

The history: for single-fidelity algorithms, N uniformly random points of the
mixed problem (5 parameters: floats, a log float, an int, a categorical),
completed with their values; the same points for the peers. Multi-fidelity
algorithms need their own bookkeeping (brackets, rungs, tags), so their history
is produced by the algorithm itself (BOHB's by hyperband, whose brackets and
tags it shares), asked for up to 1,000 assignments at a time and each trial
completed at its fidelity (reported as setup time). CMA-ES keeps its generations
in tags too and searches numbers only: its history is its own, one generation per
call, over the mixed problem's numbers (the categorical fixed).

For the peers, see :func:`bench.suggest.peers.peer_latency`.

Each measurement runs in a child process with a time limit: a peer whose model
is cubic in N would otherwise hold the whole benchmark at 10,000 trials; a
measurement that runs out of time is reported as "> limit", never dropped.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench.suggest.ours import NUMBERS_ONLY, PREFIX, space_of
from bench.suggest.peers import peer_latency, random_history
from bench.suggest.problems import Problem, problem_by_name
from kubesweep.api.experiment import MULTI_FIDELITY_ALGORITHMS, Algorithm, AlgorithmName
from kubesweep.api.status import CurvePoint
from kubesweep.api.suggestion_wire import ObservedTrial, SearchSpace, SuggestRequest, TrialState

Report = Callable[[str, float], None]


def _completed(
    problem: Problem,
    i: int,
    parameters: dict[str, Any],
    fidelity: float | None,
    tags: dict[str, str],
    *,
    trained_from: int = 0,
) -> ObservedTrial:
    """A finished trial; its curve holds the steps after ``trained_from`` (a resumed trial's)."""
    if fidelity is None:
        return ObservedTrial(
            name=f"trial-{i}",
            parameters=parameters,
            state=TrialState.COMPLETED,
            value=problem.evaluate(parameters),
            tags=tags,
        )
    curve = problem.evaluate_curve(parameters, max(1, round(fidelity)))
    return ObservedTrial(
        name=f"trial-{i}",
        parameters=parameters,
        fidelity=fidelity,
        state=TrialState.COMPLETED,
        value=curve[-1],
        intermediate=[
            CurvePoint(step=s + 1, value=v) for s, v in enumerate(curve) if s >= trained_from
        ],
        tags=tags,
    )


def kubesweep_latency(
    algorithm: str, n: int, fidelity_problem: str, repeats: int, report: Report
) -> None:
    """Build the history of ``n`` trials, then time parse and suggest ``repeats`` times."""
    from kubesweep.suggestion import registry

    start = time.perf_counter()
    space, spec, history = build_history(algorithm, n, fidelity_problem)
    body = SuggestRequest(space=space, algorithm=spec, trials=history, count=1).model_dump_json(
        by_alias=True
    )
    report("setup", time.perf_counter() - start)
    report("bytes", float(len(body)))
    for _ in range(repeats):
        start = time.perf_counter()
        request = SuggestRequest.model_validate_json(body)
        report("parse", time.perf_counter() - start)
        start = time.perf_counter()
        registry.suggest(request)
        report("call", time.perf_counter() - start)


def build_history(
    algorithm: str, n: int, fidelity_problem: str
) -> tuple[SearchSpace, Algorithm, list[ObservedTrial]]:
    """The space, the seeded algorithm and a history of ``n`` finished trials it accepts."""
    from kubesweep.suggestion import registry

    name = AlgorithmName(algorithm)
    multi = name in MULTI_FIDELITY_ALGORITHMS
    problem = problem_by_name(fidelity_problem if multi else "mixed")
    space = space_of(problem, with_fidelity=multi)
    spec = Algorithm(name=name, seed=0)
    if name is AlgorithmName.PBT:
        space, spec = _pbt_population(space, n)
    history: list[ObservedTrial] = []
    if multi:
        # BOHB keeps hyperband's brackets, rungs and tags and only samples new
        # configurations from a model, so hyperband's history is a valid BOHB history;
        # driving BOHB's model itself to 10,000 trials ran past the time limit.
        driver = (
            Algorithm(name=AlgorithmName.HYPERBAND, seed=0) if name is AlgorithmName.BOHB else spec
        )
        assert space.fidelity is not None  # a multi-fidelity problem's space
        while len(history) < n:
            reply = registry.suggest(
                SuggestRequest(
                    space=space, algorithm=driver, trials=history, count=min(1000, n - len(history))
                )
            )
            if not reply.assignments:
                raise RuntimeError(
                    f"{algorithm} gave no assignment at {len(history)} trials"
                    + (" (its schedule ended)" if reply.exhausted else "")
                )
            for a in reply.assignments:
                start = 0
                if name is AlgorithmName.PBT and a.fidelity is not None:
                    # A pbt trial resumes its parent's checkpoint and trains one interval.
                    start = round(a.fidelity - space.fidelity.min)
                history.append(
                    _completed(
                        problem,
                        len(history),
                        dict(a.parameters),
                        a.fidelity,
                        a.tags,
                        trained_from=start,
                    )
                )
    elif name in NUMBERS_ONLY:
        # CMA-ES keeps its generations in tags and searches numbers only: its own
        # history over the mixed problem's numbers (the categorical fixed at its first
        # value), one generation per call, as a sweep with that many slots makes it.
        fixed = {p.name: (p.values or [""])[0] for p in problem.parameters if p.values}
        space = SearchSpace(parameters=[p for p in problem.parameters if p.name not in fixed])
        count = 4 + math.floor(3 * math.log(len(space.parameters)))
        if n > 10_000:
            # One generation per ask makes the build quadratic (12,500 asks for 100,000
            # trials): a larger history comes from a sweep with n / 1000 slots.
            count = n // 1000
        while len(history) < n:
            request = SuggestRequest(
                space=space, algorithm=spec, trials=history, count=min(count, n - len(history))
            )
            for a in registry.suggest(request).assignments:
                values = {**a.parameters, **fixed}
                trial = _completed(problem, len(history), values, None, a.tags)
                history.append(trial.model_copy(update={"parameters": dict(a.parameters)}))
    else:
        configs, _ = random_history(problem, n)
        history = [_completed(problem, i, c, None, {}) for i, c in enumerate(configs)]
    return space, spec, history


def _pbt_population(space: SearchSpace, n: int) -> tuple[SearchSpace, Algorithm]:
    """PBT's space and settings for a history of ``n`` of its own trials.

    A population trains a fixed number of intervals each, so ``n`` trials need about
    ``n`` / intervals members; past 1000 members (the setting's maximum) the fidelity
    gets more intervals of the same length, as a longer training would.
    """
    from kubesweep.suggestion.algorithms.pbt import interval_budgets

    assert space.fidelity is not None  # a multi-fidelity problem's space
    intervals = len(interval_budgets(space.fidelity))
    members = min(1000, max(8, math.ceil(n / intervals)))
    if members * intervals < n:
        longer = space.fidelity.min * math.ceil(n / members)
        space = space.model_copy(
            update={"fidelity": space.fidelity.model_copy(update={"max": longer})}
        )
    spec = Algorithm(name=AlgorithmName.PBT, seed=0, settings={"populationSize": members})
    return space, spec


def _child(
    target: Callable[..., None], args: tuple[Any, ...], out: multiprocessing.Queue[Any]
) -> None:
    from bench.suggest.peers import quiet_libraries

    quiet_libraries()
    try:
        target(*args, lambda kind, value: out.put((kind, value)))
        out.put(("done", 0.0))
    except Exception as error:
        out.put(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=3)}"))


def measure(method: str, n: int, fidelity_problem: str, timeout: float) -> dict[str, Any]:
    """One latency measurement of ``method`` at ``n`` trials, in a child process."""
    target: Callable[..., None]
    if method.startswith(PREFIX):
        repeats = 5 if n <= 1000 else 3
        target = kubesweep_latency
        args: tuple[Any, ...] = (method.removeprefix(PREFIX), n, fidelity_problem, repeats)
    else:
        target = peer_latency
        args = (method, problem_by_name("mixed"), n)
    context = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[Any] = context.Queue()
    process = context.Process(target=_child, args=(target, args, out), daemon=True)
    record: dict[str, Any] = {
        "kind": "latency",
        "method": method,
        "n": n,
        "setup": None,
        "calls": [],
        "parse": [],
        "bytes": None,
        "status": "ok",
        "message": "",
        "timeout": timeout,
    }
    record["load"] = os.getloadavg()[0]  # the machine is shared: say how busy it was
    deadline = time.monotonic() + timeout
    process.start()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                record["status"] = "timeout"
                break
            try:
                kind, value = out.get(timeout=min(left, 1.0))
            except queue.Empty:
                if not process.is_alive() and out.empty():
                    record["status"] = "error"
                    record["message"] = f"child exited with code {process.exitcode}"
                    break
                continue
            if kind == "done":
                break
            if kind == "error":
                record["status"] = "error"
                record["message"] = str(value)
                break
            if kind == "setup":
                record["setup"] = value
            elif kind == "bytes":
                record["bytes"] = value
            elif kind == "call":
                record["calls"].append(value)
            elif kind == "parse":
                record["parse"].append(value)
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
    return record
