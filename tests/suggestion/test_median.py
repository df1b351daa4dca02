"""The median stopping rule (Vizier): worse than the median running average at its step."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubesweep.api.experiment import EarlyStopping, ParameterValue
from kubesweep.api.status import CurvePoint
from kubesweep.api.suggestion_wire import ObservedTrial, StopRequest, TrialState
from kubesweep.suggestion import registry

SPACE: dict[str, Any] = {"parameters": [{"name": "x", "type": "float", "min": 0, "max": 1}]}


def trial(
    name: str, state: TrialState, values: list[float], first_step: int = 1, scale: int = 1
) -> ObservedTrial:
    return ObservedTrial(
        name=name,
        parameters={"x": 0.5},
        state=state,
        value=values[-1] if state is TrialState.COMPLETED and values else None,
        intermediate=[
            CurvePoint(step=(first_step + i) * scale, value=v) for i, v in enumerate(values)
        ],
    )


def stopped(
    trials: list[ObservedTrial], direction: str = "minimize", **settings: ParameterValue
) -> list[str]:
    request = StopRequest.model_validate(
        {
            "space": SPACE,
            "direction": direction,
            "earlyStopping": EarlyStopping(settings=settings).to_wire(),
            "trials": [t.to_wire() for t in trials],
        }
    )
    return [d.name for d in registry.stop(request).stop]


COMPLETED = [trial(f"c{i}", TrialState.COMPLETED, [float(i + 1)] * 10) for i in range(5)]


def test_stops_a_trial_worse_than_the_median_and_keeps_a_better_one() -> None:
    bad = trial("bad", TrialState.PENDING, [9.0, 8.0, 4.0])
    good = trial("good", TrialState.PENDING, [9.0, 2.0, 5.0])
    assert stopped([*COMPLETED, bad, good]) == ["bad"]


def test_waits_for_min_trials_and_start_step() -> None:
    bad = trial("bad", TrialState.PENDING, [9.0, 9.0, 9.0])
    assert stopped([*COMPLETED[:4], bad]) == []
    assert stopped([*COMPLETED[:4], bad], minTrials=4) == ["bad"]
    assert stopped([*COMPLETED, bad], startStep=4) == []


def test_compares_with_running_averages_not_final_values() -> None:
    # Each completed curve falls from 10 to 0: the running average at step 2 is 5.
    falling = [trial(f"c{i}", TrialState.COMPLETED, [10.0, 0.0]) for i in range(5)]
    assert stopped([*falling, trial("r", TrialState.PENDING, [6.0, 6.0])]) == ["r"]
    assert stopped([*falling, trial("r", TrialState.PENDING, [4.0, 6.0])]) == []


def test_completed_trials_count_only_from_their_first_step() -> None:
    late = [trial(f"c{i}", TrialState.COMPLETED, [1.0], first_step=50) for i in range(5)]
    assert stopped([*late, trial("r", TrialState.PENDING, [9.0, 9.0])]) == []


def test_maximising_flips_the_comparison() -> None:
    low = trial("low", TrialState.PENDING, [1.5, 1.5])
    high = trial("high", TrialState.PENDING, [4.5, 4.5])
    assert stopped([*COMPLETED, low, high], direction="maximize") == ["low"]


def test_failed_and_nan_curves_are_ignored() -> None:
    broken = [trial(f"f{i}", TrialState.FAILED, [0.0]) for i in range(5)]
    nan = trial("nan", TrialState.PENDING, [float("nan")])
    assert stopped([*broken, *COMPLETED[:4], nan]) == []


def test_steps_beyond_int64_are_exact() -> None:
    scale = 2**64
    completed = [
        trial(f"c{i}", TrialState.COMPLETED, [float(i + 1)] * 10, scale=scale) for i in range(5)
    ]
    bad = trial("bad", TrialState.PENDING, [9.0, 8.0, 4.0], scale=scale)
    good = trial("good", TrialState.PENDING, [9.0, 2.0, 5.0], scale=scale)
    assert stopped([*completed, bad, good], startStep=scale) == ["bad"]
    assert stopped([*completed, bad, good], startStep=4 * scale) == []


def test_extreme_values_are_skipped_like_nan() -> None:
    extreme = [
        trial(f"e{i}", TrialState.COMPLETED, [1e308, -1e308, float("inf")]) for i in range(5)
    ]
    bad = trial("bad", TrialState.PENDING, [9.0, 1.7976931348623157e308])
    assert stopped([*extreme, *COMPLETED[:4], bad]) == []
    assert stopped([*extreme, *COMPLETED, bad]) == ["bad"]


curve_values = st.lists(st.floats(-10, 10), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    completed=st.lists(st.tuples(st.integers(0, 4), curve_values), min_size=5, max_size=9),
    running=st.lists(st.tuples(st.integers(0, 4), curve_values), min_size=1, max_size=4),
    start_step=st.integers(0, 6),
    scale_bits=st.sampled_from([58, 63, 64, 100]),
)
def test_scaling_every_step_never_changes_a_decision(
    completed: list[tuple[int, list[float]]],
    running: list[tuple[int, list[float]]],
    start_step: int,
    scale_bits: int,
) -> None:
    def history(scale: int) -> list[ObservedTrial]:
        done = [
            trial(f"c{i}", TrialState.COMPLETED, values, first, scale)
            for i, (first, values) in enumerate(completed)
        ]
        going = [
            trial(f"r{i}", TrialState.PENDING, values, first, scale)
            for i, (first, values) in enumerate(running)
        ]
        return [*done, *going]

    scale = 2**scale_bits
    assert stopped(history(1), minTrials=3, startStep=start_step) == stopped(
        history(scale), minTrials=3, startStep=start_step * scale
    )
