"""Property-based tests of the live service against its own OpenAPI document.

Schemathesis generates requests from the document (valid ones, and invalid ones
that break it in every way the schema allows it to find) and sends them to a real
server on loopback running the real algorithms. Every response must be a non-5xx
that the document describes: a documented status, the documented content type,
a body matching the documented schema, and 4xx for schema-invalid input.

One check is off: *positive data acceptance* (schema-valid input must succeed)
cannot hold, because the cross-field rules (``min <= max``, ``log`` needs
``min > 0``, the settings each algorithm accepts) are not expressible in JSON
Schema; the document lists them as ``x-kubernetes-validations`` and they answer
422 with the field named, which the other checks do verify.

Some repaired bodies carry settings far over the cost limits (refused with
422 naming the setting) or histories of extreme numbers (``1e308``, steps of
``2**63``: used as the one policy says, never a 5xx). The server runs in a
child process with a hard memory cap, so a regression that lets a costly
request compute fails the run instead of exhausting the machine.

The run is derandomized (the same examples every time) and bounded in examples,
so it stays well under a minute on two cores.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from kubesweep.api.experiment import MULTI_FIDELITY_ALGORITHMS, AlgorithmName
from kubesweep.suggestion.openapi import OPERATOR_TOKEN, build_document
from tests.suggestion.capped import capped_service

pytest.importorskip("kubesweep.suggestion.registry")

#: The token the service under test admits, as it admits the operator's.
CALLER_TOKEN = "the-operators-projected-token"
#: Examples per operation and phase; enough to reach every field, bounded in time.
MAX_EXAMPLES = 25

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
        },
        "checks": {"positive_data_acceptance": {"enabled": False}},
        "phases": {"stateful": {"enabled": False}},
        # The service admits the operator's token only; schemathesis also checks that
        # requests without it, or with another, are refused.
        "auth": {"openapi": {OPERATOR_TOKEN: {"bearer": CALLER_TOKEN}}},
    }
)
schema = schemathesis.openapi.from_dict(build_document(), config=CONFIG)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The service on an ephemeral loopback port, in a child process with a hard memory
    cap: the inputs below include costly settings, which must be refused, and a
    regression must fail here rather than exhaust the machine."""
    with capped_service(token=CALLER_TOKEN) as url:
        yield url


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_responses_match_the_document(
    case: schemathesis.Case[Any], base_url: str
) -> None:
    if case.meta is not None and case.meta.generation.mode is schemathesis.GenerationMode.POSITIVE:
        case.body = repaired(case.body)
    response = case.call_and_validate(base_url=base_url, timeout=30)
    assert response.status_code < 500, response.text


#: Settings far over the cost limits, given to some repaired bodies: refused with 422.
COSTLY: dict[str, dict[str, int]] = {
    "bayesian": {
        "maxFitPoints": 5000,
        "kernelFitPoints": 5000,
        "kernelFitIterations": 1000,
        "candidates": 100_000,
    },
    "tpe": {"nCandidates": 10_000, "gammaCap": 10_000, "maxObservations": 1_000_000},
    "bohb": {"nCandidates": 10_000, "maxObservations": 1_000_000},
}
#: Numbers that overflow naive arithmetic, given to some repaired histories.
EXTREME = (1e308, -1e308, 1.7976931348623157e308, 5e-324)


def _extreme_history(body: dict[str, Any], numeric: list[str]) -> None:
    """Objective values, curve values and steps, and numeric parameter values at extremes."""
    for index, trial in enumerate(body.get("trials") or []):
        if not isinstance(trial, dict):
            continue
        number = EXTREME[index % len(EXTREME)]
        trial["value"] = number
        trial["intermediate"] = [{"step": 2**63 + index, "value": number}]
        parameters = trial.get("parameters")
        if isinstance(parameters, dict) and numeric:
            parameters[numeric[index % len(numeric)]] = number


def _repair_categorical(parameter: dict[str, Any]) -> None:
    """Only categorical keys, and distinct values (``["a", "b"]`` when none)."""
    for key in ("min", "max", "step", "log"):
        parameter.pop(key, None)
    values, seen = [], set()
    for value in parameter.get("values") or ["a", "b"]:
        if (type(value), value) not in seen:
            seen.add((type(value), value))
            values.append(value)
    parameter["values"] = values


def _repair_numeric(parameter: dict[str, Any], index: int) -> None:
    """Bounds in order (whole for ints, positive on a log scale), a whole step for ints."""
    parameter.pop("values", None)
    low, high = parameter.get("min"), parameter.get("max")
    if parameter["type"] == "int":
        low = round(low) if isinstance(low, int | float) else None
        high = round(high) if isinstance(high, int | float) else None
    if low is None or high is None or not low <= high:
        low, high = index, index + 10
    if parameter.get("log") and low <= 0:
        low, high = 1, max(high, 2)
    if parameter["type"] == "int" and parameter.get("step") is not None:
        parameter["step"] = max(1, round(parameter["step"]))
    parameter["min"], parameter["max"] = low, high


def repaired(body: Any) -> Any:
    """A schema-valid body made to pass the cross-field rules too, keeping what it can.

    Left alone, nearly every generated space breaks a rule JSON Schema cannot
    state (``min <= max``, distinct categories) and is refused before any algorithm
    runs. Repaired, the generated bounds, steps, counts, seeds and histories
    (including trials from outside the space: a warm start) reach the algorithms.
    """
    if not isinstance(body, dict) or not isinstance(body.get("space"), dict):
        return body
    body = dict(body)
    space = dict(body["space"])
    parameters = []
    categorical: dict[str, Any] | None = None
    for index, generated in enumerate(space["parameters"]):
        parameter = dict(generated, name=f"p{index}")
        parameter.pop("when", None)
        if parameter["type"] == "categorical":
            _repair_categorical(parameter)
            if categorical is None:
                categorical = parameter
            elif index % 2:
                condition = categorical["values"][:1]
                parameter["when"] = {"parameter": categorical["name"], "values": condition}
        else:
            _repair_numeric(parameter, index)
        parameters.append(parameter)
    space["parameters"] = parameters
    # Minimal examples mostly omit the algorithm (random); spread them over all.
    algorithm = dict(body.get("algorithm") or {})
    names = sorted(name.value for name in AlgorithmName)
    digest = zlib.crc32(json.dumps(body, sort_keys=True).encode())
    algorithm["name"] = names[digest % len(names)]
    algorithm["settings"] = COSTLY.get(algorithm["name"], {}) if digest % 5 == 0 else {}
    body["algorithm"] = algorithm
    if digest % 5 == 1:
        numeric = [p["name"] for p in parameters if p["type"] != "categorical"]
        _extreme_history(body, numeric)
    if isinstance(body.get("earlyStopping"), dict):
        body["earlyStopping"] = {**body["earlyStopping"], "settings": {}}
    if algorithm.get("name") in {name.value for name in MULTI_FIDELITY_ALGORITHMS}:
        space["fidelity"] = {"parameter": "budget", "min": 1, "max": 27, "eta": 3}
        body.pop("earlyStopping", None)
    else:
        space.pop("fidelity", None)
    body["space"] = space
    return body
