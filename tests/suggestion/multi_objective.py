"""A small sequential sweep through the registry with several objectives and constraints.

Shared by the tests of NSGA-II and of constrained search: it asks the registry
for one point at a time, scores it with the given function, and hands back the
history as the planner would send it (values, feasibility, violation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kubesweep.api.experiment import Algorithm, AlgorithmName, Direction, ParameterValue
from kubesweep.api.suggestion_wire import ObservedTrial, SearchSpace, SuggestRequest, TrialState
from kubesweep.suggestion import registry

#: Scores a point: the objective values, and the constraint violation (0 when feasible).
Scorer = Callable[[dict[str, ParameterValue]], tuple[Sequence[float], float]]


def two_numbers() -> SearchSpace:
    """x0, x1 in [0, 1]."""
    return SearchSpace.model_validate(
        {"parameters": [{"name": f"x{i}", "type": "float", "min": 0, "max": 1} for i in range(2)]}
    )


def sweep(
    name: AlgorithmName,
    score: Scorer,
    directions: Sequence[Direction],
    trials: int,
    seed: int,
    *,
    constrained: bool = False,
    space: SearchSpace | None = None,
    settings: dict[str, Any] | None = None,
) -> list[ObservedTrial]:
    """``trials`` trials suggested one at a time and scored."""
    several = len(directions) > 1
    history: list[ObservedTrial] = []
    for index in range(trials):
        reply = registry.suggest(
            SuggestRequest(
                space=space or two_numbers(),
                direction=directions[0],
                objectives=list(directions) if several else None,
                algorithm=Algorithm(name=name, seed=seed, settings=settings or {}),
                trials=history,
            )
        )
        parameters = reply.assignments[0].parameters
        values, violation = score(parameters)
        history.append(
            ObservedTrial(
                name=f"t{index}",
                parameters=parameters,
                state=TrialState.COMPLETED,
                value=values[0],
                values=list(values) if several else None,
                feasible=(violation == 0) if constrained else None,
                violation=violation if constrained else None,
            )
        )
    return history
