"""Placeholder checks that run before any trial exists, and value formatting."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubesweep.api import ParameterType, ParameterValue
from kubesweep.rendering import (
    check_placeholders,
    check_template,
    format_value,
    known_placeholders,
    render_trial,
)

from .conftest import TOKEN, env, experiment, trial
from .conftest import settings as render_settings


def _args(*args: str) -> Callable[[dict[str, Any]], None]:
    def bend(document: dict[str, Any]) -> None:
        container = document["spec"]["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
        container["args"] = list(args)
        container["env"] = [{"name": "RUN", "value": "${trial.nme}"}]

    return bend


def test_check_placeholders_reports_every_unknown_one_with_its_field() -> None:
    spec = experiment(_args("--lr=${params.lrr}", "${HOME} $${params.x} ${params.lr}")).spec
    problems = check_placeholders(spec)
    assert len(problems) == 2
    assert problems[0].startswith(
        "trialTemplate.job.template.spec.containers[0].args[0]: unknown placeholder "
        "${params.lrr}; known placeholders are ${params.lr}, ${params.layers}"
    )
    assert problems[1].startswith(
        "trialTemplate.job.template.spec.containers[0].env[0].value: unknown placeholder "
        "${trial.nme}"
    )


def test_a_valid_template_has_no_problems() -> None:
    assert check_placeholders(experiment().spec) == []
    assert check_template(experiment().spec) == []


def test_known_placeholders_include_the_fidelity_parameter() -> None:
    def bend(document: dict[str, Any]) -> None:
        document["spec"]["algorithm"] = {"name": "asha"}
        document["spec"]["fidelity"] = {"parameter": "epochs", "min": 1, "max": 9}

    known = known_placeholders(experiment(bend).spec)
    assert "params.epochs" in known
    assert "trial.fidelity" in known
    assert "trial.fidelity" not in known_placeholders(experiment().spec)


def test_check_template_lists_all_problems_at_once() -> None:
    def bend(document: dict[str, Any]) -> None:
        pod = document["spec"]["trialTemplate"]["job"]["template"]["spec"]
        pod["containers"][0].pop("command")
        pod["containers"][0]["args"] = ["${params.nope}"]
        pod["volumes"] = [{"name": "kubesweep-metrics", "emptyDir": {}}]

    problems = check_template(experiment(bend).spec)
    assert len(problems) == 3
    assert any("unknown placeholder ${params.nope}" in p for p in problems)
    assert any("needs an explicit command" in p for p in problems)
    assert any("kubesweep-metrics is reserved" in p for p in problems)


@pytest.mark.parametrize(
    ("value", "kind", "text"),
    [
        (0.001, ParameterType.FLOAT, "0.001"),
        (1e-05, ParameterType.FLOAT, "1e-05"),
        (0.1 + 0.2, ParameterType.FLOAT, "0.30000000000000004"),
        (3, ParameterType.INT, "3"),
        (3.0, ParameterType.INT, "3"),
        (3.0, "int", "3"),
        (2, ParameterType.FLOAT, "2"),
        (True, ParameterType.CATEGORICAL, "true"),
        (False, None, "false"),
        ("adam", ParameterType.CATEGORICAL, "adam"),
        (7, ParameterType.CATEGORICAL, "7"),
    ],
)
def test_format_value(value: ParameterValue, kind: ParameterType | str | None, text: str) -> None:
    assert format_value(value, kind) == text


def test_a_fractional_int_is_refused() -> None:
    with pytest.raises(ValueError, match=r"non-integer value 2\.5"):
        format_value(2.5, ParameterType.INT)


@settings(max_examples=60, deadline=None)
@given(
    lr=st.floats(min_value=1e-5, max_value=0.1),
    layers=st.integers(min_value=1, max_value=8),
    optimizer=st.sampled_from(["adam", "sgd"]),
    momentum=st.floats(min_value=0.0, max_value=0.99),
)
def test_any_assignment_round_trips_through_the_job(
    lr: float, layers: int, optimizer: str, momentum: float
) -> None:
    parameters: dict[str, Any] = {"lr": lr, "layers": layers, "optimizer": optimizer}
    if optimizer == "sgd":
        parameters["momentum"] = momentum
    job = render_trial(experiment(), trial(parameters), render_settings(), TOKEN)
    trainer = job["spec"]["template"]["spec"]["containers"][0]
    assert json.loads(env(trainer)["KUBESWEEP_PARAMS"]) == parameters
    assert float(env(trainer)["KUBESWEEP_PARAM_LR"]) == lr
    assert f"--lr={lr!r}" in trainer["args"]
