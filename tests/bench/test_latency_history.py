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
