"""The resume benchmark: its accounting on the simulated clock and its figures, where known."""

from __future__ import annotations

from typing import Any

import pytest
from bench.suggest import fidelity, problems, resume
from bench.suggest.ours import PREFIX

from kubesweep.api.suggestion_wire import TrialState


def test_the_ladder_bounds_what_asha_saves_by_resuming() -> None:
    # 1 + 3/3 + 9/9 + 27/27 retrained; 1 + 2/3 + 6/9 + 18/27 resumed
    assert resume.ladder_cost([1, 3, 9, 27], 3) == pytest.approx((4.0, 3.0))
    assert resume.ladder_cost([1, 2, 4, 8, 27], 2) == pytest.approx((4 + 27 / 16, 2.5 + 19 / 16))


def test_eta_changes_every_multi_fidelity_method_alike() -> None:
    problem = resume.problem_with_eta("mlp-digits", 2)
    assert problem.fidelity is not None
    assert problem.fidelity.eta == 2
    assert problems.fidelity_problem("mlp-digits").fidelity == problem.fidelity.model_copy(
        update={"eta": 3.0}
    )


def test_a_resumed_trial_pays_only_its_own_epochs_and_ends_as_a_retrained_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    problem = problems.fidelity_problem("branin-fidelity")
    made: dict[str, Any] = {}
    make = fidelity.make_method

    def keep(name: str, problem: problems.Problem, seed: int) -> fidelity.Method:
        method = make(name, problem, seed)
        made[name] = method
        return method

    monkeypatch.setattr(fidelity, "make_method", keep)
    name = PREFIX + "asha" + fidelity.RESUME
    run = fidelity.simulate(name, problem, seed=0, budget=120, workers=3)
    method = made[name]
    by_name = {t.name: t for t in method.done}
    trained = 0
    resumed = 0
    for trial in method.done:
        parent = trial.tags.get("parent")
        start = len(by_name[parent].intermediate) if parent in by_name else 0
        resumed += start > 0
        trained += len(trial.intermediate) - start
        if trial.state is TrialState.COMPLETED:
            curve = problem.evaluate_curve(trial.parameters, round(trial.fidelity or 0))
            assert trial.value == curve[-1]
    for running in method.running.values():  # cut off by the budget
        parent = running.tags.get("parent")
        trained += len(running.curve) - (len(by_name[parent].intermediate) if parent else 0)
    assert resumed > 0
    assert run.epochs == trained == 120


def _record(method: str, seed: int, at: list[int], best: list[float]) -> dict[str, Any]:
    return {
        "kind": "fidelity",
        "status": "ok",
        "method": method,
        "seed": seed,
        "problem": "mlp-digits",
        "budget": 100,
        "at": at,
        "best": best,
        "started": 10,
        "full_trials": 2,
    }


def test_the_paired_figures_compare_each_seed_with_itself() -> None:
    records = []
    for seed in range(6):
        records.append(_record(PREFIX + "random-full", seed, [100], [1.0]))
        for algorithm in resume.ALGORITHMS:
            # without resume: the target at 80 epochs; with: at 40 (seed 0: never), ending
            # better on seeds 0-3 and worse on 4-5
            records.append(_record(PREFIX + algorithm, seed, [20, 80], [2.0, 0.9]))
            late = [20] if seed == 0 else [20, 40]
            end = 0.8 if seed < 4 else 0.95
            best = [2.0] if seed == 0 else [2.0, end]
            records.append(_record(PREFIX + algorithm + fidelity.RESUME, seed, late, best))
    assert resume.seed_reach(records[1], 1.0) == 80
    assert resume.seed_reach(records[2], 1.0) == float("inf")
    rows = resume.paired(records)
    asha = next(r for r in rows if r.startswith("| asha |"))
    assert "50% [50%, 50%] (of 5 seeds that reach on both sides)" in asha
    assert "| 3/6 |" in asha  # seed 0 never reached (inf), seeds 4 and 5 worse
    table = resume.table(records)
    assert any(r.startswith("| ks-asha+resume |") and "| 5/6 |" in r for r in table)
