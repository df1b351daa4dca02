"""CMA-ES: the replay is the optimizer, generations wait for their results, restarts, refusals.

The contract suite covers what every algorithm owes; these tests cover what is
CMA-ES's own: a history replayed call by call gives exactly the points of one
optimizer asked and told in a loop, parallel slots take further members of the
waiting generation without changing what it is told, failed members are
replaced, converged runs restart with the population IPOP or BIPOP prescribes,
and categorical parameters are refused by name, at admission and by the service.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from kubesweep.api import ExperimentSpec
from kubesweep.api.experiment import Algorithm, AlgorithmName, Direction, ParameterValue
from kubesweep.api.suggestion_wire import ObservedTrial, SearchSpace, SuggestRequest, TrialState
from kubesweep.suggestion import registry
from kubesweep.suggestion.algorithms import cma_es
from kubesweep.suggestion.contract import History
from kubesweep.suggestion.space import SpaceError
from tests.suggestion.helpers import MIXED, observe, request

PLANE: dict[str, Any] = {
    "parameters": [
        {"name": "x", "type": "float", "min": -5.0, "max": 5.0},
        {"name": "y", "type": "float", "min": 1e-3, "max": 10.0, "log": True},
        {"name": "z", "type": "float", "min": 0.0, "max": 1.0},
    ]
}
INTEGERS: dict[str, Any] = {
    "parameters": [
        {"name": "x", "type": "float", "min": -5.0, "max": 5.0},
        {"name": "n", "type": "int", "min": 0, "max": 20},
        {"name": "s", "type": "float", "min": 0.0, "max": 1.0, "step": 0.25},
    ]
}

Objective = Callable[[Mapping[str, ParameterValue]], float]


def sphere(p: Mapping[str, ParameterValue]) -> float:
    """A bowl with its minimum 0 at x=1.3, y=0.1, z=0.7 (or n=12, s=0.75)."""
    total = (float(p["x"]) - 1.3) ** 2
    if "y" in p:
        total += (math.log10(float(p["y"])) + 1.0) ** 2 + (float(p["z"]) - 0.7) ** 2
    if "n" in p:
        total += ((float(p["n"]) - 12) / 4.0) ** 2 + (float(p["s"]) - 0.75) ** 2
    return total


def space(base: Mapping[str, Any]) -> SearchSpace:
    return SearchSpace.model_validate(base)


def generations(
    base: Mapping[str, Any], objective: Objective, rounds: int, seed: int = 3, **settings: Any
) -> list[ObservedTrial]:
    """The history of ``rounds`` calls, each for one generation (its mean and population),
    all completed between calls."""
    trials: list[ObservedTrial] = []
    algorithm = cma_es.create(space(base), settings, seed)
    population = algorithm.base_population
    for round_ in range(rounds):
        mean = 1 if algorithm.evaluate_mean and round_ > 0 else 0
        reply = algorithm.suggest(History(trials, Direction.MINIMIZE), population + mean)
        for assignment in reply.assignments:
            value = objective(assignment.parameters)
            trials.append(observe(assignment, len(trials), value=value))
    return trials


def reference(
    base: Mapping[str, Any], objective: Objective, rounds: int, seed: int = 3, **settings: Any
) -> list[dict[str, ParameterValue]]:
    """The points of one optimizer asked and told in a loop, as a stateful sampler would:
    each generation told its points as their trials record them, each drawn from its own
    stream, every odd member the reflection of the one before it through the mean when
    mirrored."""
    algorithm = cma_es.create(space(base), settings, seed)
    run = algorithm._runs([])[0]
    optimizer = algorithm._optimizer(run)
    points = []
    for generation in range(rounds):
        solutions = []
        previous = np.empty(0)
        for member in range(run.population):
            if algorithm.mirrored and member % 2 == 1:
                encoded = raw = np.clip(2 * optimizer.mean - previous, 0.0, 1.0)
            else:
                encoded, raw = algorithm._draw(optimizer, [])
            previous = encoded
            values = algorithm._values(encoded)
            points.append(values)
            tags = {}
            if algorithm.rounded.any():
                tags["raw"] = ",".join(repr(float(v)) for v in raw[algorithm.rounded])
            recorded = ObservedTrial(
                name=f"t{member}", parameters=values, state=TrialState.COMPLETED, tags=tags
            )
            vector = algorithm._vector(recorded)
            assert vector is not None
            np.testing.assert_allclose(vector, raw, atol=1e-12)
            solutions.append((vector, objective(values)))
        optimizer.tell(solutions)
        optimizer.reseed_rng(algorithm._generation_seed(run, generation + 1))
    return points


@pytest.mark.parametrize(
    ("base", "margin"),
    [(PLANE, False), (INTEGERS, False), (INTEGERS, True)],
    ids=["continuous", "integers", "integers-with-margin"],
)
def test_the_replayed_history_is_one_optimizer_asked_and_told(
    base: dict[str, Any], margin: bool
) -> None:
    settings = {"margin": margin, "evaluateMean": False}
    trials = generations(base, sphere, rounds=12, **settings)
    assert [t.parameters for t in trials] == reference(base, sphere, rounds=12, **settings)
    last = trials[-1].tags
    assert {k: last[k] for k in ("restart", "generation", "member")} == {
        "restart": "0",
        "generation": "11",
        "member": "6",
    }
    assert ("raw" in last) is (base is INTEGERS)  # the integers' coordinates before rounding


@pytest.mark.parametrize(
    ("base", "margin"),
    [(PLANE, False), (INTEGERS, False), (INTEGERS, True)],
    ids=["continuous", "integers", "integers-with-margin"],
)
def test_it_minimises_a_bowl(base: dict[str, Any], margin: bool) -> None:
    trials = generations(base, sphere, rounds=25, margin=margin)
    values = [t.value for t in trials if t.value is not None]
    assert min(values) < 0.01, min(values)
    first, last = values[:8], values[-8:]
    assert sorted(last)[4] < sorted(first)[4] / 10  # the population has moved in


def test_free_slots_take_further_members_of_the_waiting_generation() -> None:
    algorithm = cma_es.create(space(PLANE), {"evaluateMean": False}, 5)
    population = algorithm.base_population
    reply = algorithm.suggest(History([], Direction.MINIMIZE), population + 3)
    assert {a.tags["generation"] for a in reply.assignments} == {"0"}
    assert [a.tags["member"] for a in reply.assignments] == [str(m) for m in range(population + 3)]
    # The first population complete, the three extra members still pending.
    trials = [
        observe(a, i, state=TrialState.PENDING if i >= population else TrialState.COMPLETED)
        for i, a in enumerate(reply.assignments)
    ]
    following = algorithm.suggest(History(trials, Direction.MINIMIZE), 2)
    assert [a.tags["generation"] for a in following.assignments] == ["1", "1"]
    trials += [
        observe(a, len(trials) + i, state=TrialState.PENDING)
        for i, a in enumerate(following.assignments)
    ]
    # The extra members finish with better values: generation 0 was told already.
    late = [
        t.model_copy(update={"state": TrialState.COMPLETED, "value": -100.0})
        if population <= i < population + 3
        else t
        for i, t in enumerate(trials)
    ]
    before = algorithm.suggest(History(trials, Direction.MINIMIZE), 1)
    after = algorithm.suggest(History(late, Direction.MINIMIZE), 1)
    assert before == after
    assert before.assignments[0].tags == {"restart": "0", "generation": "1", "member": "2"}


def test_failed_members_are_replaced_by_later_ones() -> None:
    algorithm = cma_es.create(space(PLANE), {}, 5)
    population = algorithm.base_population
    reply = algorithm.suggest(History([], Direction.MINIMIZE), population)
    trials = [observe(a, i) for i, a in enumerate(reply.assignments)]
    trials[2] = trials[2].model_copy(update={"state": TrialState.FAILED, "value": None})
    trials[4] = trials[4].model_copy(update={"value": math.nan})
    waiting = algorithm.suggest(History(trials, Direction.MINIMIZE), 2)
    assert [a.tags["generation"] for a in waiting.assignments] == ["0", "0"]
    trials += [observe(a, len(trials) + i) for i, a in enumerate(waiting.assignments)]
    told = algorithm.suggest(History(trials, Direction.MINIMIZE), 1)
    assert told.assignments[0].tags["generation"] == "1"


def units(algorithm: cma_es.CmaEs, trials: list[ObservedTrial]) -> list[np.ndarray]:
    """Each trial's point in the unit cube the search runs in."""
    out = []
    for trial in trials:
        vector = algorithm._vector(trial)
        assert vector is not None
        out.append(vector)
    return out


def test_mirrored_members_are_pairs_through_the_mean() -> None:
    algorithm = cma_es.create(space(PLANE), {}, 5)
    population = algorithm.base_population
    reply = algorithm.suggest(History([], Direction.MINIMIZE), population)
    trials = [observe(a, i, value=sphere(a.parameters)) for i, a in enumerate(reply.assignments)]
    points = units(algorithm, trials)
    # The first mean is the centre of the cube.
    for even, odd in ((0, 1), (2, 3), (4, 5)):
        np.testing.assert_allclose(points[even] + points[odd], 1.0, atol=1e-9)
    assert not np.allclose(points[0] + points[2], 1.0)  # pairs are independent draws
    plain = cma_es.create(space(PLANE), {"mirrored": False}, 5)
    unmirrored = plain.suggest(History([], Direction.MINIMIZE), 2).assignments
    first, second = units(plain, [observe(a, i) for i, a in enumerate(unmirrored)])
    assert not np.allclose(first + second, 1.0)
    # Rounded coordinates are drawn afresh: mirroring would freeze them sooner.
    assert not cma_es.create(space(INTEGERS), {}, 5).mirrored


def test_each_generation_after_the_first_begins_at_its_mean() -> None:
    algorithm = cma_es.create(space(PLANE), {}, 5)
    population = algorithm.base_population
    first = algorithm.suggest(History([], Direction.MINIMIZE), population)
    assert all("member" in a.tags and "mean" not in a.tags for a in first.assignments)
    trials = [observe(a, i, value=sphere(a.parameters)) for i, a in enumerate(first.assignments)]
    reply = algorithm.suggest(History(trials, Direction.MINIMIZE), 3)
    mean, *members = reply.assignments
    assert mean.tags == {"restart": "0", "generation": "1", "mean": "1"}
    assert [a.tags["member"] for a in members] == ["0", "1"]
    # The mean is the updated distribution's, and the mirrored pair is centred on it.
    run = algorithm._runs([])[0]
    optimizer = algorithm._optimizer(run)
    optimizer.tell([(v, t.value) for v, t in zip(units(algorithm, trials), trials, strict=True)])
    centre, *pair = units(algorithm, [observe(a, i) for i, a in enumerate(reply.assignments)])
    np.testing.assert_allclose(centre, optimizer.mean, atol=1e-9)
    np.testing.assert_allclose(pair[0] + pair[1], 2 * centre, atol=1e-9)
    # Proposed once: pending or finished, however good, it never moves the distribution.
    pending = [*trials, observe(mean, len(trials), state=TrialState.PENDING)]
    done = [*trials, observe(mean, len(trials), value=-100.0)]
    after_pending = algorithm.suggest(History(pending, Direction.MINIMIZE), 2)
    after_done = algorithm.suggest(History(done, Direction.MINIMIZE), 2)
    assert after_pending == after_done
    assert [a.tags.get("member") for a in after_done.assignments] == ["0", "1"]
    without = cma_es.create(space(PLANE), {"evaluateMean": False}, 5)
    plain = without.suggest(History(trials, Direction.MINIMIZE), 2).assignments
    assert [a.tags.get("member") for a in plain] == ["0", "1"]


def test_the_initial_step_size_spans_the_range_in_three_deviations() -> None:
    algorithm = cma_es.create(space(PLANE), {}, 5)
    assert algorithm._runs([])[0].sigma == pytest.approx(1 / 6)


def restarts(strategy: str) -> list[ObservedTrial]:
    """A flat objective until the second restart begins: CMA-ES sees no progress.

    Seven points a call, the population of the first run (4 + floor(3 ln 3)).
    """
    trials: list[ObservedTrial] = []
    algorithm = cma_es.create(space(PLANE), {"restarts": strategy}, 9)
    for _ in range(400):
        reply = algorithm.suggest(History(trials, Direction.MINIMIZE), 7)
        trials += [observe(a, len(trials) + i, value=1.0) for i, a in enumerate(reply.assignments)]
        if any(t.tags["restart"] == "2" for t in trials):
            return trials
    raise AssertionError("no restart on a flat objective")


def populations(trials: list[ObservedTrial]) -> dict[int, int]:
    """The population of each restart: the members of its generation 0 that were told."""
    out: dict[int, int] = {}
    for restart in sorted({int(t.tags["restart"]) for t in trials}):
        members = [t for t in trials if t.tags["restart"] == str(restart)]
        if any(t.tags["generation"] == "1" for t in members):
            out[restart] = sum(1 for t in members if t.tags["generation"] == "0")
    return out


def test_ipop_doubles_the_population_at_each_restart() -> None:
    sizes = populations(restarts("ipop"))
    assert sizes[0] == 7  # 4 + floor(3 ln 3)
    assert sizes[1] == 14


def test_bipop_follows_a_large_run_with_a_small_local_one() -> None:
    trials = restarts("bipop")
    sizes = populations(trials)
    assert sizes[0] == 7
    assert sizes[1] < 14  # the small regime, below the next large population


def test_no_restarts_keeps_one_run() -> None:
    trials: list[ObservedTrial] = []
    algorithm = cma_es.create(space(PLANE), {"restarts": "none"}, 9)
    for _ in range(40):  # past the generation where ipop restarts (see above)
        reply = algorithm.suggest(History(trials, Direction.MINIMIZE), 7)
        trials += [observe(a, len(trials) + i, value=1.0) for i, a in enumerate(reply.assignments)]
    assert {t.tags["restart"] for t in trials} == {"0"}


def test_categorical_parameters_are_refused_by_name() -> None:
    algorithm = Algorithm(name=AlgorithmName.CMAES, seed=1)
    with pytest.raises(SpaceError) as caught:
        registry.suggest(SuggestRequest(space=space(MIXED), algorithm=algorithm))
    assert "parameters[4].type" in str(caught.value)
    assert "'optimizer'" in str(caught.value)
    problems = registry.validate(space(MIXED), algorithm)
    assert any(p.startswith("parameters[4].type: cmaes") for p in problems), problems


def test_admission_refuses_categorical_parameters_with_cmaes() -> None:
    spec: dict[str, Any] = {
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": {"name": "cmaes"},
        "parameters": [
            {"name": "lr", "type": "float", "min": 0.001, "max": 0.1},
            {"name": "kind", "type": "categorical", "values": ["a", "b"]},
        ],
        "trialTemplate": {
            "primaryContainer": "main",
            "job": {"template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}},
        },
    }
    with pytest.raises(ValidationError) as caught:
        ExperimentSpec.model_validate(spec)
    assert "cmaes searches float and int parameters only" in str(caught.value)
    spec["parameters"].pop()
    assert ExperimentSpec.model_validate(spec).algorithm.name is AlgorithmName.CMAES


def test_a_forged_member_number_costs_nothing() -> None:
    trials = generations(PLANE, sphere, rounds=2)
    forged = trials[-1].model_copy(update={"tags": {**trials[-1].tags, "member": "999999999"}})
    start = time.perf_counter()
    reply = registry.suggest(request(AlgorithmName.CMAES, [*trials, forged], count=2, base=PLANE))
    assert time.perf_counter() - start < 2.0
    assert len(reply.assignments) == 2


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"restarts": "sometimes"}, "restarts"),
        ({"sigma0": 0.0}, "sigma0"),
        ({"populationSize": -1}, "populationSize"),
        ({"populationSize": 1}, "populationSize"),
        ({"populationSize": 3}, "populationSize"),
        ({"incPopsize": 0}, "incPopsize"),
    ],
)
def test_settings_are_checked(settings: dict[str, ParameterValue], named: str) -> None:
    algorithm = Algorithm(name=AlgorithmName.CMAES, settings=settings)
    problems = registry.validate(space(PLANE), algorithm)
    assert len(problems) == 1
    assert problems[0].startswith(f"algorithm.settings.{named}:")


def test_the_smallest_population_allowed_adapts_without_dividing_by_zero() -> None:
    algorithm = Algorithm(name=AlgorithmName.CMAES, seed=0, settings={"populationSize": 4})
    assert registry.validate(space(PLANE), algorithm) == []
    trials: list[ObservedTrial] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a division by zero fails the test
        for i in range(24):
            reply = registry.suggest(
                SuggestRequest(space=space(PLANE), algorithm=algorithm, trials=trials, count=1)
            )
            (assignment,) = reply.assignments
            values = assignment.parameters
            loss = sum((float(v) - 0.3) ** 2 for v in values.values())
            trials.append(
                ObservedTrial(
                    name=f"t{i}",
                    parameters=values,
                    state=TrialState.COMPLETED,
                    value=loss,
                    tags=assignment.tags,
                )
            )
