"""kubesweep's side: the registry driven exactly as the operator drives the service.

Every call carries the full history (all observed trials with their tags), as
the operator sends it; the request is validated by the same pydantic models the
HTTP service parses into, and no experiment UID is sent, so no call benefits
from the optional model cache (every number here is a cold, stateless call).
Algorithms are discovered from the registry: whatever is registered and imports
in this checkout is benchmarked, and the rest are reported as unavailable.
"""

from __future__ import annotations

import time

from bench.suggest.peers import Timed
from bench.suggest.problems import Problem
from kubesweep.api.experiment import (
    MULTI_FIDELITY_ALGORITHMS,
    Algorithm,
    AlgorithmName,
    ParameterType,
)
from kubesweep.api.suggestion_wire import ObservedTrial, SearchSpace, SuggestRequest, TrialState

PREFIX = "kubesweep-"
#: Algorithms that search numbers only (they refuse categorical parameters).
NUMBERS_ONLY = frozenset({AlgorithmName.CMAES})


def searchable(method: str, problem: Problem) -> bool:
    """Whether ``method`` (ours or a peer) takes the problem's space."""
    from bench.suggest.peers import NUMBERS_ONLY_PEERS

    name = method.removeprefix(PREFIX)
    numbers_only = (
        name in {a.value for a in NUMBERS_ONLY}
        if method.startswith(PREFIX)
        else method in NUMBERS_ONLY_PEERS
    )
    if not numbers_only:
        return True
    return all(p.type is not ParameterType.CATEGORICAL for p in problem.parameters)


def registry_status() -> dict[str, str | None]:
    """Every algorithm name, with None when it runs here or the reason it does not."""
    try:
        from kubesweep.suggestion import registry
    except Exception as error:  # the registry itself may be mid-development
        return {a.value: f"registry does not import: {error}" for a in AlgorithmName}
    out: dict[str, str | None] = {}
    for name in AlgorithmName:
        try:
            ok = registry.available(name)
        except Exception as error:
            out[name.value] = f"{type(error).__name__}: {error}"
            continue
        out[name.value] = None if ok else "module not available in this checkout"
    return out


def available_algorithms(multi_fidelity: bool) -> list[str]:
    """Registered, importable algorithms of one kind (multi-fidelity or not)."""
    status = registry_status()
    return [
        name
        for name, problem in status.items()
        if problem is None and (AlgorithmName(name) in MULTI_FIDELITY_ALGORITHMS) == multi_fidelity
    ]


def space_of(problem: Problem, with_fidelity: bool) -> SearchSpace:
    """The problem's search space as the service receives it."""
    return SearchSpace(
        parameters=list(problem.parameters),
        fidelity=problem.fidelity if with_fidelity else None,
    )


def run_kubesweep(
    algorithm: str, problem: Problem, seed: int, trials: int, timed: Timed
) -> list[float]:
    """A sequential ask/tell loop of ``trials`` through ``registry.suggest``.

    Returns the seconds of each suggest call (request validation included).
    """
    from kubesweep.suggestion import registry

    space = space_of(problem, with_fidelity=False)
    spec = Algorithm(name=AlgorithmName(algorithm), seed=seed)
    history: list[ObservedTrial] = []
    calls: list[float] = []
    for i in range(trials):
        start = time.perf_counter()
        request = SuggestRequest(space=space, algorithm=spec, trials=history, count=1)
        reply = registry.suggest(request)
        calls.append(time.perf_counter() - start)
        if not reply.assignments:
            break  # exhausted (grid on a small space)
        assignment = reply.assignments[0]
        value = timed(assignment.parameters)
        history.append(
            ObservedTrial(
                name=f"trial-{i}",
                parameters=assignment.parameters,
                state=TrialState.COMPLETED,
                value=value,
                tags=assignment.tags,
            )
        )
    return calls
