"""The registry: names to factories, lazy model modules, settings and space validation."""

from __future__ import annotations

import importlib
import re

import pytest

from kubesweep.api.experiment import Algorithm, AlgorithmName, EarlyStopping, EarlyStoppingName
from kubesweep.api.suggestion_wire import SearchSpace
from kubesweep.suggestion import registry
from kubesweep.suggestion.contract import SettingsError
from kubesweep.suggestion.registry import AlgorithmUnavailableError, LazyFactory
from kubesweep.suggestion.settings import Setting, parse
from tests.suggestion.helpers import FIDELITY, MIXED

PLAIN = SearchSpace.model_validate(MIXED)
WITH_FIDELITY = SearchSpace.model_validate({**MIXED, "fidelity": FIDELITY})


def test_every_algorithm_name_is_registered() -> None:
    assert set(registry.ALGORITHMS) == set(AlgorithmName)


def test_a_missing_module_is_a_clear_error_not_an_import_crash() -> None:
    factory = LazyFactory("kubesweep.suggestion.algorithms.nonexistent:create")
    assert not factory.available()
    with pytest.raises(AlgorithmUnavailableError, match="nonexistent"):
        factory(PLAIN, {}, 1)


def test_validate_accepts_a_good_request() -> None:
    assert registry.validate(PLAIN, Algorithm(name=AlgorithmName.RANDOM)) == []
    assert registry.validate(WITH_FIDELITY, Algorithm(name=AlgorithmName.ASHA)) == []
    assert registry.validate(PLAIN, Algorithm(), EarlyStopping(settings={"minTrials": 3})) == []


def test_validate_names_fidelity_problems() -> None:
    assert any(
        p.startswith("fidelity")
        for p in registry.validate(PLAIN, Algorithm(name=AlgorithmName.HYPERBAND))
    )
    assert any(p.startswith("fidelity") for p in registry.validate(WITH_FIDELITY, Algorithm()))
    found = registry.validate(WITH_FIDELITY, Algorithm(name=AlgorithmName.ASHA), EarlyStopping())
    assert any(p.startswith("earlyStopping") for p in found)


def test_validate_names_bad_settings() -> None:
    found = registry.validate(
        WITH_FIDELITY, Algorithm(name=AlgorithmName.ASHA, settings={"mode": "eager"})
    )
    assert found == ["algorithm.settings.mode: must be one of promotion, stopping, not 'eager'"]
    found = registry.validate(PLAIN, Algorithm(), EarlyStopping(settings={"minTrials": 0}))
    assert found == ["earlyStopping.settings.minTrials: must be at least 1, not 0"]
    found = registry.validate(PLAIN, Algorithm(settings={"speed": 1}))
    assert found
    assert found[0].startswith("algorithm.settings.speed: unknown setting")


def test_settings_parse_types_and_bounds() -> None:
    declared = (
        Setting("n", 3, "a count", minimum=1),
        Setting("rate", 0.5, "a rate", minimum=0, maximum=1),
        Setting("flag", False, "a flag"),
    )
    parsed = parse(declared, {"n": 4.0, "rate": 1})
    assert parsed.integer("n") == 4
    assert parsed.real("rate") == 1.0
    assert parsed.flag("flag") is False
    for bad in (
        {"n": 0},
        {"n": 2.5},
        {"rate": 2},
        {"flag": 1},
        {"n": True},
        {"rate": float("nan")},
    ):
        with pytest.raises(SettingsError) as caught:
            parse(declared, bad)
        assert caught.value.setting == next(iter(bad))


def test_declared_settings_list_names_and_defaults() -> None:
    asha = {s.name: s.default for s in registry.declared_settings(AlgorithmName.ASHA)}
    assert asha == {"mode": "promotion", "earlyStoppingRate": 0}
    median = {s.name: s.default for s in registry.declared_settings(EarlyStoppingName.MEDIAN)}
    assert median == {"minTrials": 5, "startStep": 1}
    assert registry.declared_settings(AlgorithmName.RANDOM) == ()


@pytest.mark.parametrize("name", [*AlgorithmName, *EarlyStoppingName], ids=str)
def test_each_module_cites_its_paper_and_lists_its_settings(
    name: AlgorithmName | EarlyStoppingName,
) -> None:
    factory = (
        registry.ALGORITHMS[name]
        if isinstance(name, AlgorithmName)
        else registry.STOPPING_RULES[name]
    )
    if isinstance(factory, LazyFactory):
        if not factory.available():
            pytest.skip(f"algorithm module for {name.value!r} is not importable yet")
        factory = factory.load()
    doc = importlib.import_module(factory.__module__).__doc__ or ""
    assert "Settings" in doc
    for setting in registry.declared_settings(name):
        assert f"``{setting.name}`` (default" in doc, setting.name
    if name is not AlgorithmName.GRID:
        assert re.search(r"\b(19|20)\d\d\b", doc), "cites a paper with its year"
