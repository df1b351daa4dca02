"""Settings whose combined cost exceeds the documented limits are refused, naming the setting.

The refusal comes when the algorithm is built, before any computation, so the
unit tests here build algorithms only. The end-to-end case (the attack that
once took a worker to 13.8 GB) sends the request through the service's handler
in a child process with a hard memory cap, so a regression fails the test
instead of exhausting the machine.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubesweep.api.experiment import AlgorithmName
from kubesweep.api.suggestion_wire import SearchSpace
from kubesweep.suggestion import registry
from kubesweep.suggestion.contract import SettingsError
from kubesweep.suggestion.cost import MAX_BYTES, MAX_OPERATIONS, Term, check
from tests.suggestion.capped import run_capped
from tests.suggestion.helpers import MIXED, request, space_for

#: A space of wide categoricals: hundreds of one-hot model features.
WIDE: dict[str, Any] = {
    "parameters": [
        {"name": f"c{i}", "type": "categorical", "values": [f"v{j}" for j in range(256)]}
        for i in range(64)
    ]
}


def refused_setting(name: AlgorithmName, settings: dict[str, Any], base: Any = MIXED) -> str:
    """The setting named by the refusal of ``settings``."""
    with pytest.raises(SettingsError) as caught:
        registry.build(space_for(name, base), request(name, settings=settings).algorithm)
    assert "too costly" in str(caught.value)
    assert str(caught.value).startswith(f"algorithm.settings.{caught.value.setting}: ")
    return caught.value.setting


@pytest.mark.parametrize("name", list(AlgorithmName), ids=str)
def test_defaults_are_well_within_the_limits(name: AlgorithmName) -> None:
    registry.build(space_for(name), request(name).algorithm)


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"maxFitPoints": 5000}, "maxFitPoints"),
        ({"candidates": 100_000}, "candidates"),
        ({"kernelFitPoints": 5000, "maxFitPoints": 700, "kernelFitIterations": 1000}, None),
        (
            {
                "maxFitPoints": 5000,
                "kernelFitPoints": 5000,
                "kernelFitIterations": 1000,
                "candidates": 100_000,
            },
            None,
        ),
    ],
)
def test_bayesian_refuses_costly_settings_by_name(
    settings: dict[str, Any], setting: str | None
) -> None:
    named = refused_setting(AlgorithmName.BAYESIAN, settings)
    assert named == setting if setting is not None else named in settings


def test_bayesian_counts_model_features_one_per_category() -> None:
    assert refused_setting(AlgorithmName.BAYESIAN, {}, WIDE) == "candidates"
    registry.build(
        space_for(AlgorithmName.BAYESIAN, WIDE),
        request(AlgorithmName.BAYESIAN, settings={"candidates": 16, "maxFitPoints": 50}).algorithm,
    )


def test_tpe_refuses_costly_settings_by_name() -> None:
    big = {"nCandidates": 10_000, "maxObservations": 1_000_000}
    assert refused_setting(AlgorithmName.TPE, big) == "maxObservations"
    assert refused_setting(AlgorithmName.TPE, {"nCandidates": 10_000, "gammaCap": 10_000}) in {
        "gammaCap",
        "nCandidates",
    }


def test_bohb_refuses_costly_settings_by_name() -> None:
    big = {"nCandidates": 10_000, "maxObservations": 1_000_000}
    assert refused_setting(AlgorithmName.BOHB, big) == "maxObservations"


def test_validate_reports_the_cost_like_any_setting() -> None:
    algorithm = request(AlgorithmName.BAYESIAN, settings={"candidates": 100_000}).algorithm
    problems = registry.validate(space_for(AlgorithmName.BAYESIAN), algorithm)
    assert len(problems) == 1
    assert problems[0].startswith("algorithm.settings.candidates: too costly")


def test_check_names_the_term_furthest_over_a_limit() -> None:
    check([Term("a", MAX_OPERATIONS / 2, MAX_BYTES / 2)], "a test")
    with pytest.raises(SettingsError) as caught:
        check(
            [Term("a", MAX_OPERATIONS * 0.9, 0), Term("b", 0, MAX_BYTES * 3)],
            "a test",
        )
    assert caught.value.setting == "b"
    assert "with a test" in str(caught.value)


_ATTACK = """
import json, sys
from kubesweep.suggestion.service import default_engine, handle_suggest
body = sys.stdin.read().encode()
outcome = handle_suggest(default_engine(), body)
print(json.dumps({"status": outcome.status, "problems": outcome.problems}))
"""


def test_the_costly_request_of_the_attack_is_refused_in_a_capped_process() -> None:
    """The request that grew a worker to 13.8 GB: 422 at once, under a 3 GiB cap."""
    trials = [
        {
            "name": f"t{i}",
            "parameters": {"lr": 10 ** (-5 + 4 * (i % 97) / 97), "layers": 1 + i % 8},
            "state": "completed",
            "value": float(i % 13),
        }
        for i in range(3000)
    ]
    space = SearchSpace.model_validate(
        {
            "parameters": [
                {"name": "lr", "type": "float", "min": 1e-5, "max": 0.1, "log": True},
                {"name": "layers", "type": "int", "min": 1, "max": 8},
            ]
        }
    )
    body = {
        "space": space.to_wire(),
        "algorithm": {
            "name": "bayesian",
            "seed": 1,
            "settings": {
                "maxFitPoints": 5000,
                "kernelFitPoints": 5000,
                "kernelFitIterations": 1000,
                "candidates": 100_000,
            },
        },
        "trials": trials,
        "count": 32,
    }
    finished = run_capped(_ATTACK, stdin=json.dumps(body), timeout=60)
    assert finished.returncode == 0, finished.stderr[-2000:]
    outcome = json.loads(finished.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 422
    assert outcome["problems"][0].startswith("algorithm.settings.")
    assert "too costly" in outcome["problems"][0]
