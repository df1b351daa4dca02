"""The latency benchmark's histories: each algorithm's own, as long as asked."""

from __future__ import annotations

from bench.suggest.latency import build_history


def test_pbt_gets_a_history_of_its_own_trials_as_long_as_asked() -> None:
    # A population of 8 ends after 8 x intervals trials; the history sizes the population.
    space, spec, history = build_history("pbt", 300, "branin-fidelity")
    assert len(history) == 300
    members = {t.tags["member"] for t in history}
    population = spec.settings["populationSize"]
    assert isinstance(population, int)
    assert len(members) == population > 8
    assert space.fidelity is not None
    # A trial resumes its parent's checkpoint: its curve holds the interval it trained.
    interval = space.fidelity.min
    for trial in history:
        assert trial.fidelity is not None
        assert [p.step for p in trial.intermediate] == list(
            range(round(trial.fidelity - interval) + 1, round(trial.fidelity) + 1)
        )


def test_past_the_largest_population_pbt_trains_more_intervals() -> None:
    from bench.suggest.latency import _pbt_population
    from bench.suggest.ours import space_of
    from bench.suggest.problems import problem_by_name

    from kubesweep.suggestion.algorithms.pbt import interval_budgets

    space = space_of(problem_by_name("branin-fidelity"), with_fidelity=True)
    assert space.fidelity is not None
    assert len(interval_budgets(space.fidelity)) == 9
    longer, spec = _pbt_population(space, 100_000)
    assert spec.settings["populationSize"] == 1000
    assert longer.fidelity is not None
    assert longer.fidelity.min == space.fidelity.min
    assert 1000 * len(interval_budgets(longer.fidelity)) >= 100_000
    same, spec = _pbt_population(space, 300)
    assert same == space
    assert spec.settings["populationSize"] == 34
