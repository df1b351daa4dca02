"""Shared builders for the suggestion tests: spaces, trials, requests, a toy objective."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from kubesweep.api.experiment import (
    MULTI_FIDELITY_ALGORITHMS,
    AlgorithmName,
    Direction,
    ParameterValue,
)
from kubesweep.api.status import CurvePoint
from kubesweep.api.suggestion_wire import (
    Assignment,
    ObservedTrial,
    SearchSpace,
    SuggestReply,
    SuggestRequest,
    TrialState,
)
from kubesweep.suggestion import registry
from kubesweep.suggestion.contract import History
from kubesweep.suggestion.space import Space

#: Every kind of dimension: log float, plain int, stepped float, log int with a
#: step, a categorical of mixed value types, and a chain of conditionals.
MIXED: dict[str, Any] = {
    "parameters": [
        {"name": "lr", "type": "float", "min": 1e-5, "max": 0.1, "log": True},
        {"name": "layers", "type": "int", "min": 1, "max": 8},
        {"name": "dropout", "type": "float", "min": 0.0, "max": 0.5, "step": 0.1},
        {"name": "batch", "type": "int", "min": 16, "max": 256, "log": True, "step": 16},
        {"name": "optimizer", "type": "categorical", "values": ["adam", "sgd", 3, True]},
        {
            "name": "momentum",
            "type": "float",
            "min": 0.5,
            "max": 0.99,
            "when": {"parameter": "optimizer", "values": ["sgd"]},
        },
        {
            "name": "nesterov",
            "type": "categorical",
            "values": [True, False],
            "when": {"parameter": "optimizer", "values": ["sgd"]},
        },
        {
            "name": "dampening",
            "type": "float",
            "min": 0.0,
            "max": 1.0,
            "when": {"parameter": "nesterov", "values": [False]},
        },
    ]
}

#: Six points in all: what exhaustion is tested on.
SMALL: dict[str, Any] = {
    "parameters": [
        {"name": "kind", "type": "categorical", "values": ["a", "b", "c"]},
        {"name": "n", "type": "int", "min": 1, "max": 2},
    ]
}

#: MIXED's numeric kinds, for algorithms that search numbers only.
NUMERIC: dict[str, Any] = {
    "parameters": [p for p in MIXED["parameters"] if p["type"] != "categorical" and "when" not in p]
    + [{"name": "momentum", "type": "float", "min": 0.5, "max": 0.99}]
}

#: Six points in all, of numbers only.
SMALL_NUMERIC: dict[str, Any] = {
    "parameters": [
        {"name": "kind", "type": "int", "min": 1, "max": 3},
        {"name": "n", "type": "int", "min": 1, "max": 2},
    ]
}

FIDELITY: dict[str, Any] = {"parameter": "epochs", "min": 1, "max": 27, "eta": 3, "type": "int"}

ALL_NAMES = list(AlgorithmName)

#: Settings the shared suites give an algorithm when a test names none. pbt never runs
#: more trials at once than its population has members, and the suites ask for up to 12.
SUITE_SETTINGS: dict[AlgorithmName, dict[str, ParameterValue]] = {
    AlgorithmName.PBT: {"populationSize": 16},
}

#: Algorithms that refuse categorical (and so conditional) parameters.
NUMBERS_ONLY = frozenset({AlgorithmName.CMAES})


def is_multi_fidelity(name: AlgorithmName) -> bool:
    """Whether the algorithm hands out fidelity budgets."""
    return name in MULTI_FIDELITY_ALGORITHMS


def space_for(name: AlgorithmName, base: Mapping[str, Any] = MIXED) -> SearchSpace:
    """``base`` with a fidelity where the algorithm needs one; for an algorithm that
    searches numbers only, MIXED and SMALL are their numeric counterparts."""
    if name in NUMBERS_ONLY:
        base = NUMERIC if base == MIXED else SMALL_NUMERIC if base == SMALL else base
    raw = dict(base)
    if is_multi_fidelity(name):
        raw["fidelity"] = FIDELITY
    return SearchSpace.model_validate(raw)


def request(
    name: AlgorithmName,
    trials: Sequence[ObservedTrial] = (),
    *,
    count: int = 1,
    seed: int | None = 7,
    base: Mapping[str, Any] = MIXED,
    settings: Mapping[str, ParameterValue] | None = None,
    direction: str = "minimize",
) -> SuggestRequest:
    """A suggest request for ``name`` over ``base``."""
    return SuggestRequest.model_validate(
        {
            "space": space_for(name, base).to_wire(),
            "direction": direction,
            "algorithm": {
                "name": name.value,
                "seed": seed,
                "settings": dict(SUITE_SETTINGS.get(name, {}) if settings is None else settings),
            },
            "trials": [t.to_wire() for t in trials],
            "count": count,
        }
    )


def objective(parameters: Mapping[str, ParameterValue], fidelity: float | None) -> float:
    """A deterministic toy loss that improves with fidelity and depends on every kind."""
    total = 0.0
    for name, value in sorted(parameters.items()):
        if isinstance(value, bool):
            total += 0.3 if value else 0.1
        elif isinstance(value, int | float):
            total += math.sin(3.0 * float(value) + len(name)) ** 2
        else:
            total += 0.05 * len(str(value))
    budget = fidelity if fidelity is not None else 27.0
    return total + 1.0 / budget


def observe(
    assignment: Assignment,
    index: int,
    state: TrialState = TrialState.COMPLETED,
    value: float | None = None,
) -> ObservedTrial:
    """The trial that ran ``assignment``; completed with the toy objective by default."""
    if state is TrialState.COMPLETED and value is None:
        value = objective(assignment.parameters, assignment.fidelity)
    return ObservedTrial(
        name=f"t-{index}",
        parameters=assignment.parameters,
        fidelity=assignment.fidelity,
        state=state,
        value=value,
        tags=assignment.tags,
        intermediate=[] if value is None else [CurvePoint(step=1, value=value)],
    )


def run(
    name: AlgorithmName,
    rounds: int,
    *,
    count: int = 1,
    base: Mapping[str, Any] = MIXED,
    seed: int | None = 7,
    settings: Mapping[str, ParameterValue] | None = None,
) -> tuple[list[ObservedTrial], SuggestReply]:
    """Suggest and complete trials for ``rounds`` calls; the history and the last reply."""
    trials: list[ObservedTrial] = []
    reply = SuggestReply(assignments=[])
    for _ in range(rounds):
        reply = registry.suggest(
            request(name, trials, count=count, base=base, seed=seed, settings=settings)
        )
        for assignment in reply.assignments:
            trials.append(observe(assignment, len(trials)))
        if reply.exhausted:
            break
    return trials, reply


# --- a bowl to minimise, for the model-based algorithms' search tests -------------------

BOWL: dict[str, Any] = {
    "parameters": [
        {"name": "x", "type": "float", "min": -5.0, "max": 5.0},
        {"name": "y", "type": "float", "min": 1e-3, "max": 10.0, "log": True},
        {"name": "n", "type": "int", "min": 0, "max": 20},
        {"name": "kind", "type": "categorical", "values": ["a", "b", "c"]},
    ]
}


def bowl(p: Mapping[str, ParameterValue]) -> float:
    """A smooth bowl with its minimum 0 at x=1.3, y=0.1, n=12, kind=b."""
    x, y, n = float(p["x"]), float(p["y"]), float(p["n"])
    offset = {"a": 1.0, "b": 0.0, "c": 2.0}[str(p["kind"])]
    return (x - 1.3) ** 2 + (math.log10(y) + 1.0) ** 2 + ((n - 12) / 4.0) ** 2 + offset


def trial(index: int, parameters: Mapping[str, ParameterValue], **fields: Any) -> ObservedTrial:
    """Trial ``t{index}`` with these parameters and any other fields."""
    return ObservedTrial(name=f"t{index}", parameters=dict(parameters), **fields)


def bowl_trials(space: Space, count: int, seed: int) -> list[ObservedTrial]:
    """``count`` completed trials at uniform points of ``space``, valued by :func:`bowl`."""
    rng = np.random.default_rng(seed)
    return [
        trial(i, v, state=TrialState.COMPLETED, value=bowl(v))
        for i, v in enumerate(space.sample(rng, count))
    ]


def minimise(
    create: Callable[..., Any],
    space: SearchSpace,
    objective: Callable[[Mapping[str, ParameterValue]], float],
    budget: int,
    seed: int,
) -> list[ObservedTrial]:
    """The history of ``budget`` sequential suggestions of algorithm ``create``."""
    algorithm = create(space, {}, seed)
    trials: list[ObservedTrial] = []
    for _ in range(budget):
        reply = algorithm.suggest(History(trials, Direction.MINIMIZE), 1)
        values = reply.assignments[0].parameters
        trials.append(
            trial(len(trials), values, state=TrialState.COMPLETED, value=objective(values))
        )
    return trials


def best(trials: list[ObservedTrial]) -> float:
    """The lowest value of the history."""
    return min(t.value for t in trials if t.value is not None)
