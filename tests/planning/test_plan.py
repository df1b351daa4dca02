"""Table-driven tests of ``plan_experiment``: slots, names, every end, budget edits."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from kubesweep.api import (
    QUEUED_REASON,
    ConditionType,
    EndReason,
    ExperimentPhase,
    ExperimentSpec,
    ExperimentStatus,
    TrialPhase,
)
from kubesweep.planning import Plan, SuggestionHealth, TrialView, plan_experiment, stop_orders
from tests.planning.builders import NOW, make_spec, trial

P, R, S, F, E, M = (
    TrialPhase.PENDING,
    TrialPhase.RUNNING,
    TrialPhase.SUCCEEDED,
    TrialPhase.FAILED,
    TrialPhase.EARLY_STOPPED,
    TrialPhase.METRICS_UNAVAILABLE,
)


def replan(
    spec: ExperimentSpec, trials: Sequence[TrialView], previous: ExperimentStatus | None, **kw: Any
) -> Plan:
    return plan_experiment("exp", spec, trials, NOW, generation=1, previous=previous, **kw)


@pytest.mark.parametrize(
    ("budget", "phases", "expected_indexes"),
    [
        ({}, [], [0, 1]),
        ({}, [R], [1]),
        ({}, [R, P], []),  # a Pending trial occupies its slot
        ({}, [S, S], [2, 3]),
        ({}, [S, S, S], [3]),  # only maxTrials in all
        ({}, [S, S, S, R], []),
        ({"parallelTrials": 4}, [S], [1, 2, 3]),
        ({"parallelTrials": 1}, [R, R], []),  # lowered below running: nothing killed
    ],
)
def test_slots_and_names(
    budget: dict[str, Any], phases: list[TrialPhase], expected_indexes: list[int]
) -> None:
    trials = [trial(i, ph, 1.0 if ph is S else None) for i, ph in enumerate(phases)]
    plan = plan_experiment("exp", make_spec(**budget), trials, NOW)
    assert [n.index for n in plan.new_trials] == expected_indexes
    assert [n.name for n in plan.new_trials] == [f"exp-{i}" for i in expected_indexes]
    assert plan.end is None
    assert plan.stop == ()


def test_names_fill_gaps_below_max_trials() -> None:
    trials = [trial(0, S, 1.0), trial(2, R)]
    plan = plan_experiment("exp", make_spec(maxTrials=4, parallelTrials=3), trials, NOW)
    assert [n.index for n in plan.new_trials] == [1, 3]


@pytest.mark.parametrize("subset_size", range(5))
def test_restart_from_any_subset_never_recreates_a_seen_index(subset_size: int) -> None:
    spec = make_spec(maxTrials=6, parallelTrials=6)
    everything = [trial(i, S, 1.0) for i in range(5)]
    for subset in itertools.combinations(everything, subset_size):
        plan = plan_experiment("exp", spec, list(subset), NOW)
        seen = {t.index for t in subset}
        created = {n.index for n in plan.new_trials}
        assert not created & seen
        assert all(i < spec.budget.max_trials for i in created)  # never more than maxTrials names
        assert len(created) + len(subset) <= spec.budget.max_trials


def test_jobs_created_for_trials_without_one() -> None:
    trials = [trial(0, P, has_job=False), trial(1, S, 1.0, has_job=False)]
    plan = plan_experiment("exp", make_spec(), trials, NOW)
    assert plan.create_jobs == ("exp-0",)


@pytest.mark.parametrize(
    ("budget", "phases", "objectives", "reason", "succeeded"),
    [
        ({}, [S, S, S, S], [1, 2, 3, 4], EndReason.MAX_TRIALS_REACHED, True),
        ({}, [F, F, M, E], [None] * 4, EndReason.MAX_TRIALS_REACHED, False),
        ({"target": 0.5}, [S, R], [0.4, None], EndReason.TARGET_REACHED, True),
        ({"target": 0.5, "direction": "maximize"}, [S], [0.7], EndReason.TARGET_REACHED, True),
        ({"maxFailedTrials": 1}, [F, M, R], [None] * 3, EndReason.MAX_FAILED_TRIALS_REACHED, False),
        ({"maxFailedTrials": 0}, [F], [None], EndReason.MAX_FAILED_TRIALS_REACHED, False),
    ],
)
def test_every_end(
    budget: dict[str, Any],
    phases: list[TrialPhase],
    objectives: list[float | None],
    reason: EndReason,
    succeeded: bool,
) -> None:
    trials = [trial(i, ph, o) for i, (ph, o) in enumerate(zip(phases, objectives, strict=True))]
    plan = plan_experiment("exp", make_spec(**budget), trials, NOW, generation=3)
    assert plan.end is not None
    assert plan.end.reason is reason
    assert plan.end.succeeded is succeeded
    assert plan.new_trials == ()
    # unfinished trials are stopped with the experiment
    assert {o.name for o in plan.stop} == {t.name for t in trials if not t.finished}
    final = ConditionType.SUCCEEDED if succeeded else ConditionType.FAILED
    condition = plan.status.condition(final)
    assert condition is not None
    assert (condition.status, condition.reason, condition.observed_generation) == (
        "True",
        reason.value,
        3,
    )
    assert plan.status.phase is (ExperimentPhase.SUCCEEDED if succeeded else ExperimentPhase.FAILED)
    assert plan.status.completion_time == NOW
    assert plan.status.condition(ConditionType.RECONCILING) is None


def test_target_not_reached_keeps_running() -> None:
    plan = plan_experiment("exp", make_spec(target=0.1), [trial(0, S, 0.4)], NOW)
    assert plan.end is None


def test_failures_within_tolerance_keep_running() -> None:
    plan = plan_experiment("exp", make_spec(maxFailedTrials=1), [trial(0, F)], NOW)
    assert plan.end is None
    assert [n.index for n in plan.new_trials] == [1, 2]


def test_deadline_ends_and_stops_running_trials() -> None:
    spec = make_spec(maxDuration="1h")
    previous = ExperimentStatus(start_time=NOW - timedelta(minutes=30))
    running = plan_experiment("exp", spec, [trial(0, R)], NOW, previous=previous)
    assert running.end is None
    assert running.requeue_after == timedelta(minutes=30)
    previous = ExperimentStatus(start_time=NOW - timedelta(hours=2))
    plan = plan_experiment("exp", spec, [trial(0, S, 1.0), trial(1, R)], NOW, previous=previous)
    assert plan.end is not None
    assert plan.end.reason is EndReason.DEADLINE_EXCEEDED
    assert plan.end.succeeded
    assert [o.name for o in plan.stop] == ["exp-1"]


def test_gpu_hours_budget_ends_and_stops_running_trials() -> None:
    spec = make_spec(maxGPUHours=2)
    within = [trial(0, S, 1.0, gpu=3600), trial(1, R, gpu=3599)]
    assert plan_experiment("exp", spec, within, NOW).end is None
    used = [trial(0, S, 1.0, gpu=3600), trial(1, R, gpu=3600)]
    plan = plan_experiment("exp", spec, used, NOW)
    assert plan.end is not None
    assert plan.end.reason is EndReason.MAX_GPU_HOURS_REACHED
    assert plan.end.succeeded  # a trial produced the objective
    assert "2 GPU-hours used, maxGPUHours 2" in plan.end.message
    assert [o.name for o in plan.stop] == ["exp-1"]
    assert plan.new_trials == ()
    assert plan.status.gpu_hours == 2
    condition = plan.status.condition(ConditionType.SUCCEEDED)
    assert condition is not None
    assert condition.reason == "MaxGPUHoursReached"


def test_gpu_hours_budget_without_a_result_fails() -> None:
    plan = plan_experiment("exp", make_spec(maxGPUHours=0.5), [trial(0, R, gpu=1800)], NOW)
    assert plan.end is not None
    assert (plan.end.reason, plan.end.succeeded) == (EndReason.MAX_GPU_HOURS_REACHED, False)


def test_raising_max_gpu_hours_resumes_the_experiment() -> None:
    trials = [trial(0, S, 1.0, gpu=3600)]
    ended = replan(make_spec(maxGPUHours=1), trials, None)
    assert ended.end is not None
    resumed = replan(make_spec(maxGPUHours=4), trials, ended.status)
    assert resumed.end is None
    assert [n.index for n in resumed.new_trials] == [1, 2]


def test_exhaustion_waits_for_running_trials_then_ends() -> None:
    exhausted = SuggestionHealth(exhausted=True)
    spec = make_spec(maxTrials=10)
    plan = plan_experiment("exp", spec, [trial(0, S, 1.0), trial(1, R)], NOW, suggestion=exhausted)
    assert plan.end is None
    assert plan.new_trials == ()
    plan = plan_experiment(
        "exp", spec, [trial(0, S, 1.0), trial(1, S, 2.0)], NOW, suggestion=exhausted
    )
    assert plan.end is not None
    assert plan.end.reason is EndReason.SEARCH_SPACE_EXHAUSTED


def test_raising_max_trials_resumes_an_experiment_finished_by_budget() -> None:
    trials = [trial(i, S, float(i)) for i in range(4)]
    ended = replan(make_spec(maxTrials=4), trials, None)
    assert ended.end is not None
    assert ended.end.reason is EndReason.MAX_TRIALS_REACHED
    resumed = replan(make_spec(maxTrials=6), trials, ended.status)
    assert resumed.end is None
    assert [n.index for n in resumed.new_trials] == [4, 5]
    assert resumed.status.phase is ExperimentPhase.RUNNING
    assert resumed.status.completion_time is None
    assert resumed.status.condition(ConditionType.SUCCEEDED) is None


def test_raising_parallel_trials_adds_slots() -> None:
    trials = [trial(0, R), trial(1, R)]
    assert replan(make_spec(maxTrials=6), trials, None).new_trials == ()
    wider = replan(make_spec(maxTrials=6, parallelTrials=4), trials, None)
    assert [n.index for n in wider.new_trials] == [2, 3]


@pytest.mark.parametrize(
    ("budget", "phases", "objectives"),
    [
        ({"target": 0.5}, [S], [0.4]),
        ({"maxFailedTrials": 0}, [F], [None]),
    ],
)
def test_final_ends_stay_when_the_budget_grows(
    budget: dict[str, Any], phases: list[TrialPhase], objectives: list[float | None]
) -> None:
    trials = [trial(i, ph, o) for i, (ph, o) in enumerate(zip(phases, objectives, strict=True))]
    ended = replan(make_spec(maxTrials=2, **budget), trials, None)
    assert ended.end is not None
    grown = {k: v for k, v in budget.items() if k != "maxFailedTrials"}
    later = replan(make_spec(maxTrials=20, parallelTrials=10, **grown), trials, ended.status)
    assert later.end == ended.end
    assert later.new_trials == ()


def test_exhaustion_is_final_once_recorded() -> None:
    trials = [trial(0, S, 1.0)]
    ended = replan(
        make_spec(maxTrials=5), trials, None, suggestion=SuggestionHealth(exhausted=True)
    )
    assert ended.end is not None
    again = replan(make_spec(maxTrials=50), trials, ended.status)  # operator restarted: no memo
    assert again.end is not None
    assert again.end.reason is EndReason.SEARCH_SPACE_EXHAUSTED


def test_status_counts_best_and_gpu_seconds() -> None:
    trials = [
        trial(0, S, 0.3, gpu=10),
        trial(1, S, 0.2, gpu=5),
        trial(2, R, 0.01, gpu=1),  # running objectives do not compete
        trial(3, P),
    ]
    plan = plan_experiment("exp", make_spec(maxTrials=8, parallelTrials=4), trials, NOW)
    counts = plan.status.trials
    assert (counts.created, counts.pending, counts.running, counts.succeeded) == (4, 1, 1, 2)
    assert counts.completed == 2
    assert plan.status.best_trial is not None
    assert plan.status.best_trial.name == "exp-1"
    assert plan.status.best_trial.objective == 0.2
    assert plan.status.gpu_seconds == 16
    assert plan.status.gpu_hours == round(16 / 3600, 4)
    assert plan.status.phase is ExperimentPhase.RUNNING


def test_best_trial_maximize_and_ties_go_to_earliest() -> None:
    spec = make_spec(direction="maximize")
    trials = [trial(0, S, 0.5), trial(1, S, 0.9), trial(2, S, 0.9)]
    best = plan_experiment("exp", spec, trials, NOW).status.best_trial
    assert best is not None
    assert best.name == "exp-1"


def test_pending_only_is_waiting_for_admission() -> None:
    plan = plan_experiment("exp", make_spec(), [trial(0, P), trial(1, P)], NOW)
    assert plan.status.phase is ExperimentPhase.PENDING
    reconciling = plan.status.condition(ConditionType.RECONCILING)
    assert reconciling is not None
    assert reconciling.reason == "WaitingForAdmission"


def queued(index: int) -> TrialView:
    """Trial ``index`` waiting for a queue to admit its workload."""
    view = trial(index, P)
    status = view.status.model_copy(update={"reason": QUEUED_REASON})
    return replace(view, status=status)


def test_queued_trials_are_pending_not_running_and_never_stall() -> None:
    spec = make_spec(maxTrials=6, parallelTrials=6)
    trials = [trial(0, R), trial(1, R), queued(2), queued(3), trial(4, P)]
    plan = plan_experiment("exp", spec, trials, NOW)
    counts = plan.status.trials
    assert (counts.running, counts.pending, counts.queued, counts.failed) == (2, 3, 2, 0)
    assert plan.status.message is not None
    assert "2 running, 3 pending (2 queued for admission)" in plan.status.message
    # Hours in the queue with nothing admitted: still Reconciling, never Stalled.
    only_queued = [queued(i) for i in range(6)]
    previous = ExperimentStatus(start_time=NOW - timedelta(hours=5))
    waiting = plan_experiment("exp", spec, only_queued, NOW, previous=previous)
    assert waiting.status.phase is ExperimentPhase.PENDING
    assert waiting.status.trials.queued == 6
    reconciling = waiting.status.condition(ConditionType.RECONCILING)
    assert reconciling is not None
    assert (reconciling.status, reconciling.reason) == ("True", "WaitingForAdmission")
    assert waiting.status.condition(ConditionType.STALLED) is None
    assert waiting.end is None


def test_deadline_stops_queued_trials_without_failing_them() -> None:
    spec = make_spec(maxDuration="1h", maxTrials=4, parallelTrials=4)
    previous = ExperimentStatus(start_time=NOW - timedelta(hours=2))
    trials = [trial(0, S, 1.0), trial(1, R), queued(2), queued(3)]
    plan = plan_experiment("exp", spec, trials, NOW, previous=previous)
    assert plan.end is not None
    assert (plan.end.reason, plan.end.succeeded) == (EndReason.DEADLINE_EXCEEDED, True)
    assert sorted(o.name for o in plan.stop) == ["exp-1", "exp-2", "exp-3"]
    assert plan.status.message is not None
    assert "(2 queued for admission)" in plan.status.message


def test_status_unchanged_is_not_patched() -> None:
    trials = [trial(0, R), trial(1, S, 1.0)]
    first = replan(make_spec(), trials, None)
    assert first.status_changed
    later = plan_experiment(
        "exp", make_spec(), trials, NOW + timedelta(minutes=5), generation=1, previous=first.status
    )
    assert not later.status_changed
    assert later.status == first.status


def test_suggestion_outage_reconciles_then_stalls_never_fails() -> None:
    failing = SuggestionHealth(error="connection refused", failing_since=NOW - timedelta(seconds=5))
    plan = plan_experiment("exp", make_spec(), [], NOW, suggestion=failing)
    assert plan.end is None
    assert [n.index for n in plan.new_trials] == [0, 1]  # keep asking
    assert plan.status.condition(ConditionType.STALLED) is None
    reconciling = plan.status.condition(ConditionType.RECONCILING)
    assert reconciling is not None
    assert reconciling.reason == "SuggestionServiceUnavailable"
    assert "connection refused" in reconciling.message
    long = SuggestionHealth(error="timeout", failing_since=NOW - timedelta(minutes=5))
    stalled = plan_experiment("exp", make_spec(), [], NOW, suggestion=long)
    condition = stalled.status.condition(ConditionType.STALLED)
    assert condition is not None
    assert condition.status == "True"
    assert condition.reason == "SuggestionServiceUnavailable"
    assert stalled.status.condition(ConditionType.RECONCILING) is None  # kstatus: never both
    assert stalled.end is None


def test_early_stop_is_asked_only_with_a_rule_and_running_trials() -> None:
    median = make_spec(extra={"earlyStopping": {"name": "median"}})
    assert plan_experiment("exp", median, [trial(0, R)], NOW).ask_early_stop
    assert not plan_experiment("exp", median, [trial(0, P)], NOW).ask_early_stop
    assert not plan_experiment("exp", make_spec(), [trial(0, R)], NOW).ask_early_stop


def test_stop_orders_only_for_unfinished_trials() -> None:
    trials = [trial(0, R), trial(1, S, 1.0)]
    orders = stop_orders([("exp-0", "below median"), ("exp-1", "x"), ("nope", "y")], trials)
    assert [(o.name, o.reason, o.message) for o in orders] == [
        ("exp-0", "EarlyStopped", "below median")
    ]


def finished_at(index: int, minutes_ago: float, *, has_job: bool = True) -> TrialView:
    """A succeeded trial that finished ``minutes_ago`` before NOW."""
    view = trial(index, S, 0.1, has_job=has_job)
    done = NOW - timedelta(minutes=minutes_ago)
    return replace(view, status=view.status.model_copy(update={"completion_time": done}))


def test_finished_workloads_go_after_their_retention_and_never_before() -> None:
    spec = make_spec(maxTrials=6, parallelTrials=2)
    trials = [
        finished_at(0, 30),
        finished_at(1, 4),
        finished_at(2, 60, has_job=False),  # already removed
        trial(3, R),
        queued(4),
    ]
    keep = plan_experiment("exp", spec, trials, NOW)
    assert keep.remove_workloads == ()
    plan = plan_experiment("exp", spec, trials, NOW, workload_retention=timedelta(minutes=10))
    assert plan.remove_workloads == ("exp-0",)
    # The next pass comes when exp-1's retention ends.
    assert plan.requeue_after == timedelta(minutes=6)
    at_once = plan_experiment("exp", spec, trials, NOW, workload_retention=timedelta(0))
    assert at_once.remove_workloads == ("exp-0", "exp-1")
    assert at_once.requeue_after is None


def test_a_finished_trial_without_a_completion_time_is_removed_at_once() -> None:
    spec = make_spec(maxTrials=2)
    plan = plan_experiment(
        "exp", spec, [trial(0, S, 0.2)], NOW, workload_retention=timedelta(hours=1)
    )
    assert plan.remove_workloads == ("exp-0",)
