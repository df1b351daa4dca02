"""The kopf edge: registration, wake-ups, flags."""

from __future__ import annotations

import pytest

from kubesweep.operator.config import OperatorConfig, config_from_args
from kubesweep.operator.handlers import Operator


def test_operator_registers_one_daemon_and_no_kopf_indexes() -> None:
    operator = Operator(OperatorConfig())
    # Children are followed by the operator's own streams: a kopf index would make
    # kopf hold every handler until each indexed object had been seen once.
    assert list(operator.registry._indexing.get_all_handlers()) == []
    watched = set()
    for handler in operator.registry._watching.get_all_handlers():
        assert handler.selector is not None  # only sub-handlers go without one
        watched.add(handler.selector.any_name)
    assert watched == {"experiments"}
    daemons = list(operator.registry._spawning.get_all_handlers())
    assert len(daemons) == 1
    # no on.create/on.update: nothing is written to the Experiment but status
    assert list(operator.registry._changing.get_all_handlers()) == []


def test_wake_sets_only_known_experiments() -> None:
    operator = Operator(OperatorConfig())
    operator.wake("ns", "unknown")  # no daemon yet: nothing happens
    import asyncio

    event = operator.wakeups.setdefault(("ns", "exp"), asyncio.Event())
    operator.wake("ns", "exp")
    assert event.is_set()


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBESWEEP_TOKEN_KEY", "k3y")
    monkeypatch.setenv("KUBESWEEP_SUGGESTION_TIMEOUT", "7")
    config, level = config_from_args(["--namespace=a", "--namespace=b", "--peering=ks"])
    assert config.namespaces == ("a", "b")
    assert not config.clusterwide
    assert config.token_key == b"k3y"
    assert config.suggestion_timeout == 7.0
    assert config.peering_name == "ks"
    assert level == "INFO"
    assert config_from_args([])[0].clusterwide


def test_a_namespace_pattern_is_refused_naming_the_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBESWEEP_NAMESPACES", raising=False)
    with pytest.raises(SystemExit):
        config_from_args(["--namespace=team-*"])
    assert "--namespace / KUBESWEEP_NAMESPACES: 'team-*' is not a namespace name" in (
        capsys.readouterr().err
    )
    monkeypatch.setenv("KUBESWEEP_NAMESPACES", "ok,Bad_Name")
    with pytest.raises(SystemExit):
        config_from_args([])
    assert "'Bad_Name'" in capsys.readouterr().err
