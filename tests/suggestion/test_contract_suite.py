"""The one contract every search algorithm passes, run against every registered name.

What a sweep relies on whatever algorithm the user picks: values inside the
space with the right types, exactly ``count`` (fewer only with ``exhausted``),
the same reply for the same seed and history, any history accepted (trials the
algorithm did not suggest, failures, NaN and missing values), pending trials
respected so that parallel slots get distinct points, and fidelity budgets
within bounds for the multi-fidelity algorithms. Numbers no algorithm can compute
with (NaN, infinities, ``1e308``, ints beyond a float's range) are handled by one
policy for all: in an objective they are as unusable as NaN, in a parameter they
are a value outside the space; neither is ever an error. Algorithms whose module is not
importable yet are skipped with the reason; everything else must pass.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesweep.api.experiment import AlgorithmName, EarlyStopping, ParameterValue
from kubesweep.api.status import CurvePoint
from kubesweep.api.suggestion_wire import (
    Assignment,
    ObservedTrial,
    StopRequest,
    SuggestReply,
    SuggestRequest,
    TrialState,
)
from kubesweep.suggestion import registry
from kubesweep.suggestion.contract import MAX_OBSERVED_MAGNITUDE, SettingsError
from kubesweep.suggestion.space import Space
from tests.suggestion.helpers import (
    ALL_NAMES,
    FIDELITY,
    SMALL,
    is_multi_fidelity,
    observe,
    request,
    run,
    space_for,
)


def _param(name: AlgorithmName) -> object:
    if registry.available(name):
        return pytest.param(name, id=name.value)
    reason = f"algorithm module for {name.value!r} is not importable yet"
    return pytest.param(name, id=name.value, marks=pytest.mark.skip(reason=reason))


ALGORITHMS = [_param(name) for name in ALL_NAMES]

pytestmark = pytest.mark.parametrize("name", ALGORITHMS)


def check_reply(name: AlgorithmName, reply: SuggestReply, count: int) -> None:
    """Every assignment valid; exactly ``count`` unless exhausted."""
    space = Space(space_for(name))
    if not reply.exhausted:
        assert len(reply.assignments) == count
    assert len(reply.assignments) <= count
    for assignment in reply.assignments:
        assert space.contains(assignment.parameters), assignment.parameters
        if is_multi_fidelity(name):
            fidelity = assignment.fidelity
            assert fidelity is not None
            assert FIDELITY["min"] <= fidelity <= FIDELITY["max"]
            assert float(fidelity).is_integer()  # an int fidelity
        else:
            assert assignment.fidelity is None


def identity(name: AlgorithmName, assignment: Assignment) -> tuple[object, ...]:
    """What must differ between parallel suggestions: the point (and its budget)."""
    key = Space(space_for(name)).key(assignment.parameters)
    return (key, assignment.fidelity) if is_multi_fidelity(name) else (key,)


def test_values_are_inside_the_space_with_the_right_types(name: AlgorithmName) -> None:
    reply = registry.suggest(request(name, count=12))
    check_reply(name, reply, 12)
    assert not reply.exhausted


def test_values_stay_valid_as_the_history_grows(name: AlgorithmName) -> None:
    trials, reply = run(name, rounds=6, count=4)
    assert len(trials) == 24
    check_reply(name, reply, 4)
    check_reply(name, registry.suggest(request(name, trials, count=5)), 5)


def test_same_seed_and_history_give_the_same_reply(name: AlgorithmName) -> None:
    trials, _ = run(name, rounds=3, count=3)
    first = registry.suggest(request(name, trials, count=4))
    second = registry.suggest(request(name, trials, count=4))
    assert first == second


def test_different_seeds_explore_differently(name: AlgorithmName) -> None:
    if name is AlgorithmName.GRID:
        pytest.skip("grid walks a fixed order; it has no seed")
    one = registry.suggest(request(name, count=4, seed=1))
    two = registry.suggest(request(name, count=4, seed=2))
    assert one.assignments != two.assignments


def test_parallel_suggestions_are_distinct_and_avoid_pending_trials(name: AlgorithmName) -> None:
    trials, _ = run(name, rounds=2, count=3)
    first = registry.suggest(request(name, trials, count=6))
    pending = [
        observe(a, len(trials) + i, state=TrialState.PENDING)
        for i, a in enumerate(first.assignments)
    ]
    second = registry.suggest(request(name, trials + pending, count=6))
    check_reply(name, second, 6)
    seen = [identity(name, a) for a in first.assignments + second.assignments]
    assert len(set(seen)) == len(seen)


def test_one_slot_at_a_time_never_repeats_a_pending_point(name: AlgorithmName) -> None:
    trials: list[ObservedTrial] = []
    for _ in range(8):
        reply = registry.suggest(request(name, trials, count=1))
        check_reply(name, reply, 1)
        trials.append(observe(reply.assignments[0], len(trials), state=TrialState.PENDING))
    ids = [identity(name, Assignment(parameters=t.parameters, fidelity=t.fidelity)) for t in trials]
    assert len(set(ids)) == len(ids)


def test_failed_and_valueless_trials_are_tolerated(name: AlgorithmName) -> None:
    trials, _ = run(name, rounds=2, count=4)
    broken = []
    for i, trial in enumerate(trials):
        kind = i % 4
        if kind == 0:
            broken.append(trial.model_copy(update={"state": TrialState.FAILED, "value": None}))
        elif kind == 1:
            broken.append(trial.model_copy(update={"value": math.nan}))
        elif kind == 2:
            broken.append(trial.model_copy(update={"value": None, "intermediate": []}))
        else:
            curve = [CurvePoint(step=1, value=math.inf)]
            broken.append(
                trial.model_copy(
                    update={"state": TrialState.STOPPED, "value": None, "intermediate": curve}
                )
            )
    reply = registry.suggest(request(name, broken, count=5))
    check_reply(name, reply, 5)
    assert not reply.exhausted


def test_maximised_objectives_are_handled(name: AlgorithmName) -> None:
    trials, _ = run(name, rounds=3, count=3)
    reply = registry.suggest(request(name, trials, count=3, direction="maximize"))
    check_reply(name, reply, 3)


#: Values a foreign trial may carry for a parameter the space no longer has.
STALE_VALUES: list[ParameterValue] = [1, "x", 0.5, True]
#: Values outside the space (wrong range or type) a foreign trial may carry.
STRAY_VALUES: list[ParameterValue] = [-1.0, 1e9, "junk", False, 2.5]


def _foreign_trials(draw: st.DrawFn, name: AlgorithmName) -> list[ObservedTrial]:
    """Trials from elsewhere: any valid or leftover parameters, states and values."""
    space = Space(space_for(name))
    count = draw(st.integers(min_value=0, max_value=12))
    out = []
    for i in range(count):
        units = draw(st.lists(st.floats(0, 1), min_size=space.dim, max_size=space.dim))
        parameters = dict(space.from_unit(units))
        if draw(st.booleans()):
            parameters["stale"] = draw(st.sampled_from(STALE_VALUES))
        if draw(st.integers(0, 3)) == 0:  # a value outside the space
            parameters[draw(st.sampled_from(space.names))] = draw(st.sampled_from(STRAY_VALUES))
        state = draw(st.sampled_from(list(TrialState)))
        value = draw(st.none() | st.floats(allow_nan=True, allow_infinity=True))
        fidelity = draw(st.none() | st.floats(0.5, 40))
        tags = draw(
            st.sampled_from(
                [{}, {"rung": "0"}, {"rung": "1"}, {"bracket": "0", "rung": "0"}, {"bracket": "x"}]
            )
        )
        steps = draw(st.lists(st.floats(allow_nan=True), max_size=3))
        curve = [CurvePoint(step=s + 1, value=v) for s, v in enumerate(steps)]
        out.append(
            ObservedTrial(
                name=f"foreign-{i}",
                parameters=parameters,
                state=state,
                value=value,
                fidelity=fidelity,
                tags=tags,
                intermediate=curve,
            )
        )
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_history_is_a_warm_start(name: AlgorithmName, data: st.DataObject) -> None:
    trials = data.draw(st.composite(_foreign_trials)(name))
    reply = registry.suggest(request(name, trials, count=3))
    check_reply(name, reply, 3)
    assert not reply.exhausted
    assert reply == registry.suggest(request(name, trials, count=3))


def test_a_finite_space_is_exhausted_without_repeats(name: AlgorithmName) -> None:
    trials, reply = run(name, rounds=200, count=2, base=SMALL)
    assert reply.exhausted, "a six-point space must end"
    space = Space(space_for(name, SMALL))
    if not is_multi_fidelity(name):
        keys = [space.key(t.parameters) for t in trials]
        assert len(keys) == len(set(keys)) == 6
    assert all(space.contains(t.parameters) for t in trials)
    after = registry.suggest(request(name, trials, count=2, base=SMALL))
    assert after.exhausted
    assert after.assignments == []


def test_unknown_settings_are_refused_by_name(name: AlgorithmName) -> None:
    with pytest.raises(SettingsError) as caught:
        registry.suggest(request(name, settings={"noSuchSetting": 1}))
    assert caught.value.setting == "noSuchSetting"
    assert "noSuchSetting" in str(caught.value)


def test_the_space_validates_with_the_algorithm(name: AlgorithmName) -> None:
    space = space_for(name)
    assert registry.validate(space, request(name).algorithm) == []


def test_stop_names_only_running_trials(name: AlgorithmName) -> None:
    trials, _ = run(name, rounds=3, count=4)
    curves = []
    for i, trial in enumerate(trials):
        points = [CurvePoint(step=s + 1, value=(i % 5) + 1.0 / (s + 1)) for s in range(9)]
        state = TrialState.PENDING if i % 3 == 0 else trial.state
        curves.append(trial.model_copy(update={"intermediate": points, "state": state}))
    early = None if is_multi_fidelity(name) else EarlyStopping(settings={"minTrials": 2})
    reply = registry.stop(
        StopRequest(
            space=space_for(name),
            algorithm=request(name).algorithm,
            early_stopping=early,
            trials=curves,
        )
    )
    running = {t.name for t in curves if t.state is TrialState.PENDING}
    assert {d.name for d in reply.stop} <= running
    if early is not None:
        assert reply.stop, "the median rule stops the worst running curves"


#: Numbers JSON can carry that overflow or poison arithmetic; ints only where a
#: parameter value may be an int (objective values are floats).
EXTREME_FLOATS = [
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    -1e308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    MAX_OBSERVED_MAGNITUDE * 2,
]
EXTREME_NUMBERS: list[float | int] = [*EXTREME_FLOATS, 5e-324, 2**63, 10**400, -(10**400)]


def _over_the_wire(name: AlgorithmName, wire: dict[str, Any]) -> SuggestReply:
    """The reply to ``wire`` parsed as the service parses it (JSON, strict)."""
    parsed = SuggestRequest.model_validate_json(json.dumps(wire), strict=True)
    reply = registry.suggest(parsed)
    check_reply(name, reply, parsed.count)
    return reply


@pytest.mark.parametrize("number", EXTREME_NUMBERS, ids=repr)
def test_extreme_parameter_values_in_the_history_are_values_outside_the_space(
    name: AlgorithmName, number: float
) -> None:
    trials, _ = run(name, rounds=3, count=3)
    wire = request(name, trials, count=3).to_wire()
    numeric = [p["name"] for p in wire["space"]["parameters"] if p["type"] != "categorical"]
    for index, trial in enumerate(wire["trials"]):
        trial["parameters"][numeric[index % len(numeric)]] = number
    _over_the_wire(name, wire)


@pytest.mark.parametrize("number", EXTREME_FLOATS, ids=repr)
def test_extreme_objective_values_are_as_unusable_as_nan(
    name: AlgorithmName, number: float
) -> None:
    trials, _ = run(name, rounds=3, count=3)
    wire = request(name, trials, count=3).to_wire()
    as_nan = json.loads(json.dumps(wire))
    for index, (trial, same) in enumerate(zip(wire["trials"], as_nan["trials"], strict=True)):
        if index % 2:
            value = number if index % 4 == 1 else -number
            trial["value"] = value
            trial["intermediate"] = [{"step": 1, "value": value}, {"step": 2**70, "value": value}]
            same["value"] = math.nan
            same["intermediate"] = [
                {"step": 1, "value": math.nan},
                {"step": 2**70, "value": math.nan},
            ]
    assert _over_the_wire(name, wire) == _over_the_wire(name, as_nan)


def test_a_history_of_only_extreme_objectives_is_a_history_of_failures(name: AlgorithmName) -> None:
    trials, _ = run(name, rounds=3, count=3)
    extreme = [
        t.model_copy(update={"value": 1e308 * (-1) ** i, "intermediate": []})
        for i, t in enumerate(trials)
    ]
    failed = [
        t.model_copy(update={"value": None, "state": TrialState.FAILED, "intermediate": []})
        for t in trials
    ]
    assert registry.suggest(request(name, extreme, count=3)) == registry.suggest(
        request(name, failed, count=3)
    )


@pytest.mark.parametrize("number", EXTREME_FLOATS, ids=repr)
def test_stop_skips_extreme_curve_values_and_takes_any_step(
    name: AlgorithmName, number: float
) -> None:
    trials, _ = run(name, rounds=3, count=4)
    curves = []
    for i, trial in enumerate(trials):
        points = [
            CurvePoint(step=2**64 * (s + 1), value=number if s % 3 == 0 else float(i % 5 + s))
            for s in range(6)
        ]
        state = TrialState.PENDING if i % 3 == 0 else TrialState.COMPLETED
        curves.append(trial.model_copy(update={"intermediate": points, "state": state}))
    early = None if is_multi_fidelity(name) else EarlyStopping(settings={"minTrials": 2})
    wire = StopRequest(
        space=space_for(name),
        algorithm=request(name).algorithm,
        early_stopping=early,
        trials=curves,
    ).to_wire()
    reply = registry.stop(StopRequest.model_validate_json(json.dumps(wire), strict=True))
    running = {t.name for t in curves if t.state is TrialState.PENDING}
    assert {d.name for d in reply.stop} <= running


#: One-value ranges of every numeric kind beside one free parameter.
CONSTANTS: dict[str, Any] = {
    "parameters": [
        {"name": "x", "type": "float", "min": 0.0, "max": 1.0},
        {"name": "c", "type": "float", "min": 0.25, "max": 0.25},
        {"name": "lr", "type": "float", "min": 1e-3, "max": 1e-3, "log": True},
        {"name": "k", "type": "int", "min": 3, "max": 3},
        {"name": "s", "type": "float", "min": -2.0, "max": -2.0, "step": 0.5},
    ]
}


def test_one_value_ranges_are_constants(name: AlgorithmName) -> None:
    trials, _ = run(name, rounds=6, count=3, base=CONSTANTS)
    assert len(trials) >= 10
    space = Space(space_for(name, CONSTANTS))
    for trial in trials:
        assert space.contains(trial.parameters), trial.parameters
        constants = {k: trial.parameters[k] for k in ("c", "lr", "k", "s")}
        assert constants == {"c": 0.25, "lr": 1e-3, "k": 3, "s": -2.0}
    assert len({t.parameters["x"] for t in trials}) > 1


def test_history_outside_the_bounds_is_no_evidence_at_a_bound(name: AlgorithmName) -> None:
    # A warm start from a sweep over [0, 10], now searched over [20, 30]: its
    # excellent values say nothing about x = 20, so nothing may crowd at that bound.
    narrowed: dict[str, Any] = {
        "parameters": [
            {"name": "x", "type": "float", "min": 20.0, "max": 30.0},
            {"name": "n", "type": "int", "min": 20, "max": 30},
        ]
    }
    fidelity = float(FIDELITY["max"]) if is_multi_fidelity(name) else None
    trials = [
        ObservedTrial(
            name=f"old-{i}",
            parameters={"x": 10.0 * i / 11, "n": i % 11},
            fidelity=fidelity,
            state=TrialState.COMPLETED,
            value=-1.0 - i / 11,  # better than anything inside the bounds
        )
        for i in range(12)
    ]
    for _ in range(5):
        reply = registry.suggest(request(name, trials, count=2, base=narrowed))
        trials += [observe(a, len(trials)) for a in reply.assignments]
    new = [t.parameters for t in trials[12:]]
    assert len(new) == 10
    at_bound = [p for p in new if float(p["x"]) < 20.5 and p["n"] == 20]
    assert len(at_bound) <= 1, new


def test_trials_lacking_parameters_are_a_usable_history(name: AlgorithmName) -> None:
    # Trials that set only some parameters (a program that reads units_i only for
    # i < n_layers, a warm start from a smaller space), a parent category
    # included: what they have is evidence, and the replies stay valid.
    trials, _ = run(name, rounds=5, count=3)
    space = Space(space_for(name))
    lacking = []
    for i, trial in enumerate(trials):
        names = [n for n in space.names if n in trial.parameters]
        dropped = {names[i % len(names)], names[(3 * i + 1) % len(names)]}
        kept = {k: v for k, v in trial.parameters.items() if k not in dropped}
        lacking.append(trial.model_copy(update={"parameters": kept}))
    for count in (1, 4):
        reply = registry.suggest(request(name, lacking, count=count))
        check_reply(name, reply, count)
        assert not reply.exhausted
        assert reply == registry.suggest(request(name, lacking, count=count))
