"""``plan_experiment``: from an Experiment's spec and its Trials to the next actions.

The planner answers, for one pass: how many new trials to ask suggestions for
(and under which names), which Trials still need their Job, which trials to
stop and why, whether to ask the early-stopping rule, whether the experiment
has ended (and how), and the Experiment status that follows from the children.

Decisions made here, deliberately:

* **Slots.** A trial occupies a slot of ``parallelTrials`` from creation until
  it finishes, whether its pod runs or waits for admission (Kueue, GPUs), so a
  sweep never floods a queue; status tells ``pending`` from ``running``.
  Lowering ``parallelTrials`` only stops new trials from starting; nothing
  running or finished is touched.
* **Names.** New trials take the lowest free indexes in ``[0, maxTrials)``.
  Names are deterministic, so the name space itself bounds the sweep: planning
  from a stale or partial view can at worst try to create a trial that exists
  (the API answers 409 and nothing is duplicated), never an extra one.
* **Ends.** ``TargetReached``, ``MaxFailedTrialsReached`` and
  ``SearchSpaceExhausted`` are final once recorded in status. ``MaxTrialsReached``,
  ``DeadlineExceeded`` and ``MaxGPUHoursReached`` are budgets, re-evaluated every
  pass, so raising ``maxTrials``, ``maxDuration`` or ``maxGPUHours`` resumes a
  finished experiment. GPU-hours count every pod of every trial (see
  :mod:`kubesweep.planning.gpu`); running trials count up to this pass, so the
  budget is judged at every pass, at least once per resync interval.
  ``MaxFailedTrialsReached`` ends as Failed; budget ends succeed when some trial
  produced the objective and fail otherwise (a sweep without a result failed).
  Failed and MetricsUnavailable trials both count against ``maxFailedTrials``,
  which is the number of failures tolerated (one more ends the experiment).
* **Stops.** When an experiment ends early (target, failures, deadline, GPU-hours) its
  unfinished trials are stopped with the reason ``ExperimentEnded``.
* **Finished workloads go.** With a retention set, the workload (Job, JobSet, custom
  resource, and so every pod) of a finished trial is removed once the retention has
  passed since it finished: its Trial already holds everything status needs, and
  at tens of thousands of trials the pods and Jobs would otherwise be most of what
  the API server stores. Nothing is ever removed from an unfinished trial.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kubesweep.api import (
    QUEUED_REASON,
    BestTrial,
    ConditionType,
    Direction,
    EndReason,
    ExperimentPhase,
    ExperimentSpec,
    ExperimentStatus,
    Strategy,
    TrialCounts,
    TrialPhase,
    trial_name,
)
from kubesweep.planning.conditions import Desired, merge_conditions
from kubesweep.planning.outcome import Outcome, front_outcome, targets_reached
from kubesweep.planning.pareto import is_feasible
from kubesweep.planning.views import SuggestionHealth, TrialView

#: Ends that stay when the budget changes afterwards.
FINAL_REASONS = frozenset(
    {
        EndReason.TARGET_REACHED,
        EndReason.MAX_FAILED_TRIALS_REACHED,
        EndReason.SEARCH_SPACE_EXHAUSTED,
    }
)

#: Reason on trials stopped because their experiment ended.
EXPERIMENT_ENDED = "ExperimentEnded"
#: A suggestion outage longer than this turns Reconciling into Stalled.
DEFAULT_STALL_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class NewTrial:
    """A trial to create once the suggestion service assigned it a configuration."""

    index: int
    name: str


@dataclass(frozen=True)
class StopOrder:
    """A running trial to stop: its Job is deleted and the trial marked EarlyStopped."""

    name: str
    reason: str
    message: str = ""


@dataclass(frozen=True)
class End:
    """How an experiment ended."""

    reason: EndReason
    succeeded: bool
    message: str


@dataclass(frozen=True)
class Plan:
    """Everything one reconciliation pass should do, as a value."""

    new_trials: tuple[NewTrial, ...] = ()
    create_jobs: tuple[str, ...] = ()
    stop: tuple[StopOrder, ...] = ()
    #: Finished trials whose workload is past its retention: remove it.
    remove_workloads: tuple[str, ...] = ()
    ask_early_stop: bool = False
    end: End | None = None
    status: ExperimentStatus = field(default_factory=ExperimentStatus)
    status_changed: bool = True
    requeue_after: timedelta | None = None

    @property
    def suggestion_count(self) -> int:
        """How many assignments to ask for, in one batched call."""
        return len(self.new_trials)


def plan_experiment(
    name: str,
    spec: ExperimentSpec,
    trials: Sequence[TrialView],
    now: datetime,
    *,
    generation: int | None = None,
    previous: ExperimentStatus | None = None,
    suggestion: SuggestionHealth | None = None,
    stall_after: timedelta = DEFAULT_STALL_AFTER,
    seed: int | None = None,
    workload_retention: timedelta | None = None,
) -> Plan:
    """Decide the next actions for the experiment ``name`` from its spec and trials.

    ``seed`` is the search's effective seed, recorded in status; without it the
    recorded one stays. ``workload_retention``: how long a finished trial's workload
    stays (``None``: for good).
    """
    suggestion = suggestion or SuggestionHealth()
    start_time = previous.start_time if previous and previous.start_time else now
    counts = count_trials(trials)
    best = best_trial(spec, trials)
    outcome = front_outcome(spec, trials, best)
    unfinished = [t for t in trials if not t.finished]

    end = _decide_end(
        spec=spec,
        trials=trials,
        counts=counts,
        outcome=outcome,
        previous=previous,
        suggestion=suggestion,
        start_time=start_time,
        now=now,
    )

    new_trials: tuple[NewTrial, ...] = ()
    stops: tuple[StopOrder, ...] = ()
    if end is None:
        if not suggestion.exhausted:
            new_trials = _new_trials(name, spec, trials, len(unfinished))
    else:
        stops = tuple(
            StopOrder(t.name, EXPERIMENT_ENDED, f"the experiment ended: {end.reason.value}")
            for t in unfinished
        )
    create_jobs = tuple(t.name for t in unfinished if not t.has_job) if end is None else ()
    ask_early_stop = (
        end is None
        and (spec.early_stopping is not None or spec.is_multi_fidelity)
        and any(t.phase is TrialPhase.RUNNING for t in trials)
    )

    status = _status(
        spec=spec,
        counts=counts,
        outcome=outcome,
        end=end,
        previous=previous,
        suggestion=suggestion,
        stall_after=stall_after,
        generation=generation,
        start_time=start_time,
        gpu_seconds=sum(t.status.gpu_seconds for t in trials),
        now=now,
        seed=seed if seed is not None else (previous.seed if previous is not None else None),
    )
    changed = previous is None or previous.to_wire() != status.to_wire()

    requeue_after = None
    deadline = spec.budget.duration
    if end is None and deadline is not None:
        requeue_after = max(timedelta(0), start_time + deadline - now)
    remove, next_removal = _expired_workloads(trials, workload_retention, now)
    if next_removal is not None:
        requeue_after = next_removal if requeue_after is None else min(requeue_after, next_removal)
    return Plan(
        new_trials=new_trials,
        create_jobs=create_jobs,
        stop=stops,
        remove_workloads=remove,
        ask_early_stop=ask_early_stop,
        end=end,
        status=status,
        status_changed=changed,
        requeue_after=requeue_after,
    )


def _expired_workloads(
    trials: Sequence[TrialView], retention: timedelta | None, now: datetime
) -> tuple[tuple[str, ...], timedelta | None]:
    """Finished trials whose workload has outlived ``retention``, and when the next one will.

    A trial is finished from its ``completionTime``; one without it (a record older
    than that field) is taken as finished long ago.
    """
    if retention is None:
        return (), None
    expired: list[str] = []
    waits: list[timedelta] = []
    for trial in trials:
        if not (trial.finished and trial.has_job):
            continue
        finished_at = trial.status.completion_time
        left = timedelta(0) if finished_at is None else finished_at + retention - now
        if left <= timedelta(0):
            expired.append(trial.name)
        else:
            waits.append(left)
    return tuple(expired), min(waits, default=None)


def count_trials(trials: Iterable[TrialView]) -> TrialCounts:
    """Trials by phase."""
    by_phase = dict.fromkeys(TrialPhase, 0)
    total = queued = 0
    for trial in trials:
        by_phase[trial.phase] += 1
        total += 1
        queued += trial.phase is TrialPhase.PENDING and trial.status.reason == QUEUED_REASON
    return TrialCounts(
        created=total,
        pending=by_phase[TrialPhase.PENDING],
        queued=queued,
        running=by_phase[TrialPhase.RUNNING],
        succeeded=by_phase[TrialPhase.SUCCEEDED],
        failed=by_phase[TrialPhase.FAILED],
        early_stopped=by_phase[TrialPhase.EARLY_STOPPED],
        metrics_unavailable=by_phase[TrialPhase.METRICS_UNAVAILABLE],
        completed=total - by_phase[TrialPhase.PENDING] - by_phase[TrialPhase.RUNNING],
    )


def best_trial(spec: ExperimentSpec, trials: Iterable[TrialView]) -> BestTrial | None:
    """The succeeded feasible trial with the best objective; ties go to the earliest index.

    With several objectives there is none: the result is the Pareto front.
    """
    if spec.is_multi_objective:
        return None
    minimize = spec.objective.direction is Direction.MINIMIZE
    best: TrialView | None = None
    for trial in sorted(trials, key=lambda t: t.index):
        value = trial.status.objective
        if trial.phase is not TrialPhase.SUCCEEDED or value is None or math.isnan(value):
            continue
        if spec.constraints and not is_feasible(spec, trial):
            continue
        current = best.status.objective if best is not None else None
        if current is None or (value < current if minimize else value > current):
            best = trial
    if best is None or best.status.objective is None:
        return None
    metrics = {}
    for summary in best.status.metrics:
        strategy = spec.objective.strategy_for(summary.name)
        metrics[summary.name] = (
            summary.min
            if strategy is Strategy.MIN
            else summary.max
            if strategy is Strategy.MAX
            else summary.latest
        )
    return BestTrial(
        name=best.name,
        parameters=dict(best.parameters),
        objective=best.status.objective,
        metrics=metrics,
        fidelity=best.fidelity,
    )


def stop_orders(
    decisions: Iterable[tuple[str, str]], trials: Iterable[TrialView]
) -> list[StopOrder]:
    """Early-stopping decisions ``(name, reason)`` narrowed to trials that still run."""
    running = {t.name for t in trials if not t.finished}
    orders = []
    for name, reason in decisions:
        if name in running:
            orders.append(StopOrder(name, "EarlyStopped", reason))
            running.discard(name)
    return orders


def _reached(spec: ExperimentSpec, value: float) -> bool:
    target = spec.objective.target
    if target is None:
        return False
    if spec.objective.direction is Direction.MINIMIZE:
        return value <= target
    return value >= target


def _previous_end(previous: ExperimentStatus | None) -> End | None:
    if previous is None:
        return None
    for type_, succeeded in ((ConditionType.SUCCEEDED, True), (ConditionType.FAILED, False)):
        condition = previous.condition(type_)
        if condition is not None and condition.status == "True":
            try:
                reason = EndReason(condition.reason)
            except ValueError:
                continue
            return End(reason, succeeded, condition.message)
    return None


def _decide_end(
    *,
    spec: ExperimentSpec,
    trials: Sequence[TrialView],
    counts: TrialCounts,
    outcome: Outcome,
    previous: ExperimentStatus | None,
    suggestion: SuggestionHealth,
    start_time: datetime,
    now: datetime,
) -> End | None:
    recorded = _previous_end(previous)
    if recorded is not None and recorded.reason in FINAL_REASONS:
        return recorded
    budget = spec.budget
    running = counts.pending + counts.running
    best = outcome.best
    several_reached = targets_reached(spec, trials)
    if several_reached is not None:
        return End(EndReason.TARGET_REACHED, True, several_reached)
    if best is not None and _reached(spec, best.objective):
        return End(
            EndReason.TARGET_REACHED,
            True,
            f"trial {best.name} reached {spec.objective.metric}={best.objective:g} "
            f"(target {spec.objective.target:g})",
        )
    failures = counts.failed + counts.metrics_unavailable
    if budget.max_failed_trials is not None and failures > budget.max_failed_trials:
        message = f"{failures} trials failed, more than maxFailedTrials={budget.max_failed_trials}"
        last = max(
            (t for t in trials if t.phase in (TrialPhase.FAILED, TrialPhase.METRICS_UNAVAILABLE)),
            key=lambda t: t.index,
        )
        if last.status.message:
            message += f"; the last, {last.name}: {last.status.message}"
        return End(EndReason.MAX_FAILED_TRIALS_REACHED, False, message[:1000])
    duration = budget.duration
    if duration is not None and now >= start_time + duration:
        return _budget_end(
            EndReason.DEADLINE_EXCEEDED, outcome, f"maxDuration {budget.max_duration} elapsed"
        )
    gpu_hours = gpu_hours_used(trials)
    if budget.max_gpu_hours is not None and gpu_hours >= budget.max_gpu_hours:
        return _budget_end(
            EndReason.MAX_GPU_HOURS_REACHED,
            outcome,
            f"{gpu_hours:.4g} GPU-hours used, maxGPUHours {budget.max_gpu_hours:g}",
        )
    if counts.created >= budget.max_trials and running == 0:
        return _budget_end(
            EndReason.MAX_TRIALS_REACHED, outcome, f"all {counts.created} trials finished"
        )
    if suggestion.exhausted and running == 0:
        return _budget_end(
            EndReason.SEARCH_SPACE_EXHAUSTED,
            outcome,
            f"the search space has no more configurations after {len(trials)} trials",
        )
    return None


def gpu_hours_used(trials: Iterable[TrialView]) -> float:
    """GPU-hours of every trial so far: every pod's GPUs over its running time."""
    return sum(t.status.gpu_seconds for t in trials) / 3600.0


def _budget_end(reason: EndReason, outcome: Outcome, message: str) -> End:
    return End(reason, outcome.found, f"{message}; {outcome.summary()}")


def _new_trials(
    name: str, spec: ExperimentSpec, trials: Sequence[TrialView], occupied: int
) -> tuple[NewTrial, ...]:
    budget = spec.budget
    wanted = min(budget.parallel_trials - occupied, budget.max_trials - len(trials))
    if wanted <= 0:
        return ()
    taken = {t.index for t in trials}
    out: list[NewTrial] = []
    for index in range(budget.max_trials):
        if len(out) == wanted:
            break
        if index not in taken:
            out.append(NewTrial(index, trial_name(name, index)))
    return tuple(out)


def _status(
    *,
    spec: ExperimentSpec,
    counts: TrialCounts,
    outcome: Outcome,
    end: End | None,
    previous: ExperimentStatus | None,
    suggestion: SuggestionHealth,
    stall_after: timedelta,
    generation: int | None,
    start_time: datetime,
    gpu_seconds: float,
    now: datetime,
    seed: int | None,
) -> ExperimentStatus:
    progress = (
        f"{counts.completed}/{spec.budget.max_trials} trials completed, "
        f"{counts.running} running, {counts.pending} pending"
        + (f" ({counts.queued} queued for admission)" if counts.queued else "")
    )
    desired: list[Desired] = []
    if end is not None:
        phase = ExperimentPhase.SUCCEEDED if end.succeeded else ExperimentPhase.FAILED
        final = ConditionType.SUCCEEDED if end.succeeded else ConditionType.FAILED
        desired.append(Desired(final, "True", end.reason.value, end.message))
        desired.append(
            Desired(
                ConditionType.READY,
                "True" if end.succeeded else "False",
                end.reason.value,
                end.message,
            )
        )
        if not end.succeeded:
            desired.append(Desired(ConditionType.STALLED, "True", end.reason.value, end.message))
        message = f"{end.message} ({progress})"
    else:
        phase = (
            ExperimentPhase.RUNNING if counts.created > counts.pending else ExperimentPhase.PENDING
        )
        stalled = (
            suggestion.error is not None
            and suggestion.failing_since is not None
            and now - suggestion.failing_since >= stall_after
        )
        if suggestion.error is not None:
            reason, detail = "SuggestionServiceUnavailable", suggestion.error
        elif counts.running == 0 and counts.pending > 0:
            reason, detail = "WaitingForAdmission", f"trials wait to be admitted; {progress}"
        else:
            reason, detail = "TrialsRunning", progress
        # kstatus: Stalled and Reconciling are never both True.
        progressing = ConditionType.STALLED if stalled else ConditionType.RECONCILING
        desired.append(Desired(progressing, "True", reason, detail))
        desired.append(Desired(ConditionType.READY, "False", reason, detail))
        message = detail if suggestion.error is not None else progress

    previous_conditions = previous.conditions if previous is not None else []
    completion = None
    if end is not None:
        recorded = previous.completion_time if previous is not None else None
        same = _previous_end(previous)
        completion = recorded if recorded is not None and same == end else now
    return ExperimentStatus(
        observed_generation=generation,
        phase=phase,
        conditions=merge_conditions(previous_conditions, desired, generation=generation, now=now),
        start_time=start_time,
        completion_time=completion,
        trials=counts,
        best_trial=outcome.best,
        pareto_front=None if outcome.front is None else list(outcome.front),
        pareto_front_size=outcome.front_size,
        best_summary=outcome.best_summary,
        infeasible_trials=outcome.infeasible,
        gpu_seconds=round(gpu_seconds, 3),
        gpu_hours=round(gpu_seconds / 3600.0, 4),
        message=message[:4096],
        seed=seed,
    )
