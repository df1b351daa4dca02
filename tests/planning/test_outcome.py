"""Status with several objectives and constraints: the front, feasibility, target and ends."""

from __future__ import annotations

import json

from kubesweep.api import EndReason, ExperimentPhase, TrialPhase
from kubesweep.api.status import MAX_FRONT_POINTS
from kubesweep.planning import plan_experiment
from tests.planning.builders import NOW, make_spec, reported, several_spec, trial

S, R = TrialPhase.SUCCEEDED, TrialPhase.RUNNING


def test_status_holds_the_named_front_instead_of_a_best_trial() -> None:
    spec = several_spec(constraints=[{"metric": "mem", "max": 100}])
    trials = [
        reported(0, f0=1.0, f1=1.0, mem=50),
        reported(1, f0=0.5, f1=2.0, mem=150),
        reported(2, f0=2.0, f1=3.0, mem=10),
        reported(3, R),
    ]
    status = plan_experiment("exp", spec, trials, NOW).status
    assert status.best_trial is None
    assert status.pareto_front_size == 2
    assert status.infeasible_trials == 1
    front = status.to_wire()["paretoFront"]
    assert front == [
        {"name": "exp-0", "values": {"f0": 1.0, "f1": 1.0}, "parameters": {"x": 0.0}},
        {"name": "exp-2", "values": {"f0": 2.0, "f1": 3.0}, "parameters": {"x": 0.2}},
    ]


def test_one_objective_keeps_its_status_shape() -> None:
    status = plan_experiment("exp", make_spec(), [trial(0, S, 0.3)], NOW).status
    wire = status.to_wire()
    assert wire["bestTrial"]["name"] == "exp-0"
    assert "paretoFront" not in wire
    assert "paretoFrontSize" not in wire
    assert "infeasibleTrials" not in wire


def test_with_one_objective_and_a_constraint_the_best_trial_is_feasible() -> None:
    spec = make_spec(extra={"constraints": [{"metric": "mem", "max": 100}]})
    trials = [
        reported(0, loss=0.1, mem=500),  # the lowest loss, but infeasible
        reported(1, loss=0.4, mem=90),
        reported(2, loss=0.3),  # did not report mem
    ]
    status = plan_experiment("exp", spec, trials, NOW).status
    assert status.best_trial is not None
    assert status.best_trial.name == "exp-1"
    assert status.best_trial.metrics["mem"] == 90
    assert status.infeasible_trials == 2


def test_a_budget_end_with_only_infeasible_trials_fails_saying_so() -> None:
    spec = make_spec(
        maxTrials=1, parallelTrials=1, extra={"constraints": [{"metric": "mem", "max": 1}]}
    )
    plan = plan_experiment("exp", spec, [reported(0, loss=0.1, mem=5)], NOW)
    assert plan.end is not None
    assert plan.end.reason is EndReason.MAX_TRIALS_REACHED
    assert not plan.end.succeeded
    assert "no feasible trial reported the objective (1 infeasible)" in plan.end.message


def test_a_budget_end_with_a_front_succeeds_naming_its_size() -> None:
    spec = several_spec(maxTrials=2, parallelTrials=1)
    trials = [reported(0, f0=1.0, f1=1.0), reported(1, f0=0.0, f1=0.0)]
    plan = plan_experiment("exp", spec, trials, NOW)
    assert plan.end is not None
    assert plan.end.succeeded
    assert plan.status.phase is ExperimentPhase.SUCCEEDED
    assert plan.end.message.endswith("Pareto front of 2 trials")


def test_the_target_needs_one_feasible_trial_reaching_every_set_target() -> None:
    spec = several_spec(
        ("minimize", "maximize", "minimize"),
        constraints=[{"metric": "mem", "max": 100}],
        targets={0: 0.2, 1: 0.9},
        maxTrials=10,
    )
    apart = [reported(0, f0=0.1, f1=0.5, f2=9, mem=1), reported(1, f0=0.5, f1=0.95, f2=9, mem=1)]
    assert plan_experiment("exp", spec, apart, NOW).end is None
    infeasible = [*apart, reported(2, f0=0.1, f1=0.95, f2=9, mem=101)]
    assert plan_experiment("exp", spec, infeasible, NOW).end is None
    reached = [*infeasible, reported(3, f0=0.2, f1=0.9, f2=50, mem=100)]
    end = plan_experiment("exp", spec, reached, NOW).end
    assert end is not None
    assert end.reason is EndReason.TARGET_REACHED
    assert end.message == "trial exp-3 reached f0=0.2 (target 0.2), f1=0.9 (target 0.9)"


def test_without_targets_several_objectives_never_end_on_a_target() -> None:
    spec = several_spec(maxTrials=10)
    plan = plan_experiment("exp", spec, [reported(0, f0=-1e9, f1=1e9)], NOW)
    assert plan.end is None


def test_the_front_in_status_is_capped_and_stays_small() -> None:
    spec = several_spec(("minimize", "minimize"), maxTrials=500)
    trials = [reported(i, f0=float(i), f1=float(400 - i)) for i in range(400)]
    status = plan_experiment("exp", spec, trials, NOW).status
    assert status.pareto_front is not None
    assert len(status.pareto_front) == MAX_FRONT_POINTS
    assert status.pareto_front_size == 400
    assert len(json.dumps(status.to_wire())) < 8_000


def test_the_best_column_summarises_each_objectives_best_on_the_front() -> None:
    spec = several_spec(constraints=[{"metric": "mem", "max": 100}])
    trials = [
        reported(0, f0=1.0, f1=1.0, mem=50),
        reported(1, f0=0.5, f1=9.0, mem=150),  # best on both, but infeasible
        reported(2, f0=2.0, f1=3.0, mem=10),
        reported(3, f0=3.0, f1=2.0, mem=10),  # dominated by exp-2
    ]
    status = plan_experiment("exp", spec, trials, NOW).status
    # f0 is minimised, f1 maximised: the best of each comes from a different trial.
    assert status.best_summary == "f0 1, f1 3 (front of 2)"
    assert status.to_wire()["bestSummary"] == status.best_summary


def test_the_best_column_with_one_objective_is_the_best_trials_objective() -> None:
    status = plan_experiment("exp", make_spec(), [trial(0, S, 0.3), trial(1, S, 0.125)], NOW).status
    assert status.best_summary == "0.125"
    assert plan_experiment("exp", make_spec(), [trial(0, R)], NOW).status.best_summary is None
