"""The API models accept the contract's manifest and refuse each kind of mistake by name."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kubesweep.api import (
    AlgorithmName,
    Direction,
    ManifestError,
    ParameterType,
    Strategy,
    load_experiments,
    parse_experiment,
)
from kubesweep.api.experiment import parse_duration


def test_valid_manifest_round_trips(manifest: dict[str, Any]) -> None:
    experiment = parse_experiment(manifest)
    assert experiment.spec.algorithm.name is AlgorithmName.BAYESIAN
    assert experiment.spec.parameter("layers").type is ParameterType.INT
    again = parse_experiment(experiment.to_wire())
    assert again == experiment


def test_defaults_fill_in(manifest: dict[str, Any]) -> None:
    del manifest["spec"]["budget"]
    del manifest["spec"]["algorithm"]
    spec = parse_experiment(manifest).spec
    assert spec.budget.max_trials == 10
    assert spec.budget.parallel_trials == 1
    assert spec.algorithm.name is AlgorithmName.RANDOM
    assert spec.trial_template.metrics.source == "stdout"


def test_objective_strategy_defaults_to_direction(manifest: dict[str, Any]) -> None:
    objective = parse_experiment(manifest).spec.objective
    assert objective.objective_strategy is Strategy.MIN
    assert objective.strategy_for("accuracy") is Strategy.LATEST
    manifest["spec"]["objective"]["direction"] = "maximize"
    assert parse_experiment(manifest).spec.objective.direction is Direction.MAXIMIZE
    assert parse_experiment(manifest).spec.objective.objective_strategy is Strategy.MAX


def _problems(manifest: dict[str, Any]) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_experiment(manifest)
    return str(caught.value)


#: (path under spec, new value or None to delete, words the refusal must contain)
MISTAKES: list[tuple[tuple[str | int, ...], Any, str]] = [
    (("parameters", 0, "max"), 1.0e-6, "parameters[].max must be greater than min"),
    (("parameters", 0, "min"), 0.0, "min must be positive when log is true"),
    (("parameters", 2, "values"), None, "categorical parameter needs a non-empty values"),
    (("parameters", 1, "name"), "lr", "parameters[].name must be unique"),
    (("parameters", 1, "min"), 1.5, "must be whole numbers"),
    (("parameters", 0, "name"), "learning-rate", "spec.parameters[0].name"),
    (("budget", "parallelTrials"), 61, "budget.parallelTrials must not exceed"),
    (("budget", "maxDuration"), "six hours", "spec.budget.maxDuration"),
    (("budget", "maxGPUHours"), 0, "spec.budget.maxGPUHours"),
    (("algorithm", "name"), "annealing", "spec.algorithm.name"),
    (("objective", "direction"), "up", "spec.objective.direction"),
    (("trialTemplate", "primaryContainer"), "main", "primaryContainer must name a container"),
    (("fidelity",), {"parameter": "epochs", "min": 1, "max": 27}, "fidelity is used only by"),
    (("parameters", 3, "when", "parameter"), "layers", "when.parameter must name another"),
    (("objective", "additionalMetrics"), ["val_loss"], "must not repeat objective.metric"),
    (("trialTemplate", "metrics"), {"source": "file"}, "metrics.path is required"),
    (("trialTemplate", "metrics"), {"source": "prometheus"}, "metrics.port is required"),
    (("trialTemplate", "metrics"), {"filters": ["(x"]}, "is not a regular expression"),
    (("earlyStopping",), {"name": "hunch"}, "spec.earlyStopping.name"),
    (
        ("trialTemplate", "checkpoints"),
        {"volumeClaim": "sweeps", "uri": "s3://bucket/sweeps"},
        "checkpoints needs exactly one of volumeClaim",
    ),
    (("trialTemplate", "checkpoints"), {"mountPath": "/c"}, "needs exactly one of volumeClaim"),
    (
        ("trialTemplate", "checkpoints"),
        {"volumeClaim": "sweeps", "mountPath": "/data/../etc"},
        "checkpoints.mountPath must not contain . or .. components",
    ),
    (("trialTemplate", "checkpoints"), {"volumeClaim": "Sweeps_1"}, "checkpoints.volumeClaim"),
    (("trialTemplate", "checkpoints"), {"uri": "bucket/sweeps"}, "checkpoints.uri"),
]


def set_path(manifest: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """Set (or delete, for None) the field at ``path`` under ``spec``."""
    node: Any = manifest["spec"]
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return manifest


@pytest.mark.parametrize(("path", "value", "expected"), MISTAKES)
def test_mistakes_are_refused_naming_the_field(
    manifest: dict[str, Any], path: tuple[str | int, ...], value: Any, expected: str
) -> None:
    assert expected in _problems(set_path(manifest, path, value))


def test_a_one_value_range_is_a_constant(manifest: dict[str, Any]) -> None:
    manifest["spec"]["parameters"][0].update({"min": 1e-3, "max": 1e-3})
    manifest["spec"]["parameters"][1].update({"min": 4, "max": 4})
    spec = parse_experiment(manifest).spec
    assert (spec.parameter("lr").min, spec.parameter("lr").max) == (1e-3, 1e-3)
    assert spec.parameter("layers").contains(4)
    assert not spec.parameter("layers").contains(5)


def test_unknown_field_is_refused(manifest: dict[str, Any]) -> None:
    manifest["spec"]["budget"]["maxTrail"] = 5
    assert "spec.budget.maxTrail" in _problems(manifest)


def test_multi_fidelity_needs_fidelity(manifest: dict[str, Any]) -> None:
    manifest["spec"]["algorithm"] = {"name": "hyperband"}
    assert "fidelity is required by hyperband" in _problems(manifest)
    manifest["spec"]["fidelity"] = {"parameter": "epochs", "min": 1, "max": 27, "eta": 3}
    assert parse_experiment(manifest).spec.is_multi_fidelity


def test_fidelity_parameter_is_not_a_search_parameter(manifest: dict[str, Any]) -> None:
    manifest["spec"]["algorithm"] = {"name": "asha"}
    manifest["spec"]["fidelity"] = {"parameter": "layers", "min": 1, "max": 9}
    assert "must not also be a search parameter" in _problems(manifest)


def test_grid_needs_steps_for_floats(manifest: dict[str, Any]) -> None:
    manifest["spec"]["algorithm"] = {"name": "grid"}
    assert "step is required for float parameters with the grid" in _problems(manifest)
    for parameter in manifest["spec"]["parameters"]:
        if parameter["type"] == "float":
            parameter["step"] = 0.01
            parameter.pop("log", None)
    manifest["spec"]["parameters"][0]["min"] = 0.01
    assert parse_experiment(manifest).spec.algorithm.name is AlgorithmName.GRID


def test_job_needs_a_pod_template(manifest: dict[str, Any]) -> None:
    manifest["spec"]["trialTemplate"]["job"] = {"template": {"spec": {}}}
    assert "job.template.spec.containers must list" in _problems(manifest)
    manifest["spec"]["trialTemplate"]["job"] = {
        "template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "trainer"}]}}
    }
    assert "restartPolicy must be Never or OnFailure" in _problems(manifest)


def test_parameter_contains() -> None:
    spec = parse_experiment(_stepped()).spec
    batch = spec.parameter("batch")
    assert batch.contains(32)
    assert not batch.contains(33)
    assert not batch.contains(True)
    optimizer = spec.parameter("optimizer")
    assert optimizer.contains("adam")
    assert not optimizer.contains("rmsprop")


def _stepped() -> dict[str, Any]:
    from tests.api.conftest import VALID

    manifest: dict[str, Any] = {**VALID, "spec": dict(VALID["spec"])}
    manifest["spec"]["parameters"] = [
        {"name": "batch", "type": "int", "min": 16, "max": 128, "step": 16},
        {"name": "optimizer", "type": "categorical", "values": ["adam", "sgd"]},
    ]
    return manifest


@pytest.mark.parametrize(
    ("text", "seconds"), [("6h", 21600), ("1h30m", 5400), ("90s", 90), ("250ms", 0.25)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_yaml_with_several_documents_and_bad_yaml() -> None:
    import yaml

    from tests.api.conftest import VALID

    text = yaml.safe_dump(VALID) + "---\n" + yaml.safe_dump(VALID)
    assert len(load_experiments(text)) == 2
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_experiments("spec: [unclosed")
    with pytest.raises(ManifestError, match="must be a mapping"):
        load_experiments("- a list")


def test_yaml_exponent_without_dot_is_a_number() -> None:
    """PyYAML reads ``1e-5`` as a string; the bound must still be a number."""
    import yaml

    from tests.api.conftest import VALID

    text = yaml.safe_dump(VALID).replace("1.0e-05", "1e-5")
    assert "1e-5" in text
    experiment = load_experiments(text)[0]
    assert experiment.spec.parameter("lr").min == pytest.approx(1e-5)


def test_gpu_hours_budget_is_read_and_written_as_max_gpu_hours(manifest: dict[str, Any]) -> None:
    manifest["spec"]["budget"]["maxGPUHours"] = 12.5
    budget = parse_experiment(manifest).spec.budget
    assert budget.max_gpu_hours == 12.5
    assert budget.to_wire()["maxGPUHours"] == 12.5
