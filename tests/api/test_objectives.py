"""``spec.objectives`` and ``spec.constraints``: read, refused by name, and the one objective."""

from __future__ import annotations

from typing import Any

import pytest

from kubesweep.api import Direction, ManifestError, Strategy, parse_experiment
from kubesweep.api.experiment import MULTI_OBJECTIVE_ALGORITHMS, AlgorithmName
from kubesweep.api.objectives import Constraint


def _several(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    del spec["objective"]
    spec["algorithm"] = {"name": "random", "seed": 7}
    spec["objectives"] = [
        {"metric": "val_loss", "direction": "minimize", "target": 0.1},
        {"metric": "accuracy", "direction": "maximize", "strategy": "latest"},
    ]
    spec["constraints"] = [{"metric": "memory_mb", "max": 512}]
    return manifest


def _refusal(manifest: dict[str, Any]) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_experiment(manifest)
    return str(caught.value)


def test_several_objectives_stand_for_one_recording_every_metric(
    manifest: dict[str, Any],
) -> None:
    spec = parse_experiment(_several(manifest)).spec
    assert spec.is_multi_objective
    assert spec.objective.metric == "val_loss"
    assert spec.objective.direction is Direction.MINIMIZE
    assert spec.objective.additional_metrics == ["accuracy", "memory_mb"]
    assert spec.objective.strategy_for("val_loss") is Strategy.MIN
    assert spec.objective.strategy_for("accuracy") is Strategy.LATEST
    assert spec.objective.strategy_for("memory_mb") is Strategy.LATEST
    assert [o.metric for o in spec.objective_metrics] == ["val_loss", "accuracy"]


def test_several_objectives_round_trip_without_an_objective(manifest: dict[str, Any]) -> None:
    experiment = parse_experiment(_several(manifest))
    wire = experiment.to_wire()
    assert "objective" not in wire["spec"]
    assert wire["spec"]["objectives"][1] == {
        "metric": "accuracy",
        "direction": "maximize",
        "strategy": "latest",
    }
    assert parse_experiment(wire) == experiment


def test_one_objective_reads_as_before_and_records_constraint_metrics(
    manifest: dict[str, Any],
) -> None:
    plain = parse_experiment(manifest).spec
    assert not plain.is_multi_objective
    assert plain.objective.additional_metrics == []
    assert "objective" in parse_experiment(manifest).to_wire()["spec"]
    manifest["spec"]["constraints"] = [{"metric": "memory_mb", "max": 512, "strategy": "max"}]
    constrained = parse_experiment(manifest).spec
    assert constrained.objective.metric == "val_loss"
    assert constrained.objective.target == 0.05
    assert constrained.objective.additional_metrics == ["memory_mb"]
    assert constrained.objective.strategy_for("memory_mb") is Strategy.MAX
    assert [o.target for o in constrained.objective_metrics] == [0.05]


def test_both_objective_and_objectives_are_refused_naming_objectives(
    manifest: dict[str, Any],
) -> None:
    several = _several(manifest)
    several["spec"]["objective"] = {"metric": "val_loss", "direction": "minimize"}
    assert "spec.objectives: objectives and objective cannot both be set" in _refusal(several)


def test_neither_is_refused_naming_objective(manifest: dict[str, Any]) -> None:
    del manifest["spec"]["objective"]
    assert "spec.objective: objective is required" in _refusal(manifest)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: s["objectives"].pop(), "objectives"),
        (lambda s: s["objectives"].extend([s["objectives"][0]] * 3), "objectives"),
        (
            lambda s: s["objectives"].append({"metric": "val_loss", "direction": "maximize"}),
            "objectives[].metric must be unique",
        ),
        (
            lambda s: s["constraints"].append({"metric": "memory_mb", "min": 1}),
            "constraints[].metric must be unique",
        ),
        (lambda s: s["constraints"][0].pop("max"), "a constraint needs max, min or both"),
        (lambda s: s["constraints"][0].update(min=600), "constraints[].max must not be below min"),
        (
            lambda s: s.update(earlyStopping={"name": "median"}),
            "spec.earlyStopping: earlyStopping compares trials on one objective",
        ),
    ],
)
def test_mistakes_with_several_objectives_are_refused_by_name(
    manifest: dict[str, Any], change: Any, words: str
) -> None:
    several = _several(manifest)
    change(several["spec"])
    assert words in _refusal(several)


@pytest.mark.parametrize("name", sorted(set(AlgorithmName) - MULTI_OBJECTIVE_ALGORITHMS))
def test_single_objective_algorithms_refuse_objectives_naming_the_field(
    manifest: dict[str, Any], name: AlgorithmName
) -> None:
    several = _several(manifest)
    several["spec"]["algorithm"] = {"name": name.value}
    if name in (AlgorithmName.HYPERBAND, AlgorithmName.ASHA, AlgorithmName.BOHB):
        several["spec"]["fidelity"] = {"parameter": "epochs", "min": 1, "max": 9}
    text = _refusal(several)
    assert "spec.objectives: " in text
    assert name.value in text
    assert "search one objective only" in text


@pytest.mark.parametrize("name", sorted(MULTI_OBJECTIVE_ALGORITHMS))
def test_multi_objective_algorithms_accept_objectives(
    manifest: dict[str, Any], name: AlgorithmName
) -> None:
    several = _several(manifest)
    several["spec"]["algorithm"] = {"name": name.value}
    if name is AlgorithmName.GRID:
        several["spec"]["parameters"] = [{"name": "layers", "type": "int", "min": 1, "max": 8}]
    assert parse_experiment(several).spec.algorithm.name is name


@pytest.mark.parametrize(
    ("bounds", "value", "violation"),
    [
        ({"max": 10.0}, 4.0, 0.0),
        ({"max": 10.0}, 12.5, 2.5),
        ({"min": 1.0}, 0.25, 0.75),
        ({"min": 1.0, "max": 2.0}, 2.0, 0.0),
        ({"max": 10.0}, None, None),
        ({"max": 10.0}, float("nan"), None),
    ],
)
def test_constraint_violation_is_the_distance_outside_the_bounds(
    bounds: dict[str, float], value: float | None, violation: float | None
) -> None:
    assert Constraint(metric="m", **bounds).violation(value) == violation


def test_additional_metrics_and_constraints_fit_what_a_trial_records(
    manifest: dict[str, Any],
) -> None:
    manifest["spec"]["objective"]["additionalMetrics"] = [f"m{i}" for i in range(30)]
    manifest["spec"]["constraints"] = [{"metric": f"c{i}", "max": 1} for i in range(2)]
    assert len(parse_experiment(manifest).spec.objective.metric_names) == 33
    manifest["spec"]["constraints"].append({"metric": "c2", "max": 1})
    assert "spec.constraints: objective.additionalMetrics and constraints" in _refusal(manifest)
