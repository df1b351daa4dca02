"""The resume and schedule benchmarks: what they count, and that they run end to end."""

from __future__ import annotations

import pytest
from bench.suggest import fidelity, problems, resume, schedule

from kubesweep.api.suggestion_wire import Assignment


def test_a_resumed_promotion_starts_from_its_parents_curve() -> None:
    problem = problems.fidelity_problem("branin-fidelity")
    with_resume = fidelity.Kubesweep("asha", problem, seed=1, resume=True)
    parent = with_resume.start(1)[0]
    parent.curve = problem.evaluate_curve(parent.parameters, parent.target)
    with_resume.finish(parent, stopped=False)
    promoted = Assignment(parameters=parent.parameters, fidelity=3.0, parent=parent.name)
    child = with_resume.begin(promoted)
    assert child.curve == parent.curve
    again = fidelity.Kubesweep("asha", problem, seed=1)
    again.curves[parent.name] = parent.curve
    assert again.begin(promoted).curve == []


def test_resuming_trains_fewer_epochs_for_the_same_trials() -> None:
    problem = problems.fidelity_problem("branin-fidelity")
    budget = 10 * 9
    plain = fidelity.simulate("kubesweep-hyperband", problem, seed=0, budget=budget, workers=1)
    resumed = fidelity.simulate(
        "kubesweep-hyperband+resume", problem, seed=0, budget=budget, workers=1
    )
    assert plain.epochs == resumed.epochs == budget
    assert resumed.started > plain.started  # the epochs saved paid for more trials


def test_the_resume_table_puts_each_algorithm_beside_its_resuming_twin(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--problem", "branin-fidelity", "--seeds", "1", "--random-trials", "4"]
    assert resume.main([*argv, "--processes", "1"]) == 0
    out = capsys.readouterr().out
    for name in ("hyperband", "asha", "bohb"):
        assert f"| ks-{name} |" in out
        assert f"| ks-{name}+resume |" in out
    assert "| ks-random-full |" in out


def test_a_schedule_beats_every_fixed_rate_of_the_simulated_sgd() -> None:
    setup = schedule.Setup(epochs=30, interval=3, population=8, workers=4)
    fixed, _ = schedule.best_fixed(setup)
    loss = schedule.START_LOSS
    for epoch in range(setup.epochs):
        loss = schedule.train_epoch(loss, {"lr": 0.3 if epoch < 10 else 0.05, "batch": 256})
    assert loss < fixed


def test_pbt_spends_exactly_its_budget_in_population_times_intervals_trials() -> None:
    setup = schedule.Setup(epochs=12, interval=3, population=4, workers=2)
    run = schedule.simulate("pbt", setup, seed=0)
    assert run.epochs == setup.budget
    assert run.trials == 4 * 4
    assert run.best
