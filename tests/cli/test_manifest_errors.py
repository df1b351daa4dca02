"""A bad manifest is refused naming the file, the parameter at fault, and the field meant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from kubesweep.api import ManifestError, parse_experiment
from kubesweep.cli.main import main
from tests.cli.conftest import EXAMPLES


def manifest() -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / "random.yaml").read_text()))


def problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_experiment(document)
    return caught.value.problems


def validate(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    return result.output


def test_min_above_max_names_the_parameter_and_the_field() -> None:
    document = manifest()
    eta0 = next(p for p in document["spec"]["parameters"] if p["name"] == "eta0")
    eta0["min"], eta0["max"] = eta0["max"], eta0["min"]
    index = document["spec"]["parameters"].index(eta0)
    [problem] = problems(document)
    assert problem.startswith(f"spec.parameters[{index}].max (parameter eta0): ")
    assert "parameters[].max must be greater than min" in problem


def test_a_duplicate_name_points_at_the_second_one_by_name() -> None:
    document = manifest()
    document["spec"]["parameters"][2]["name"] = document["spec"]["parameters"][0]["name"]
    name = document["spec"]["parameters"][0]["name"]
    [problem] = problems(document)
    assert problem.startswith(f"spec.parameters[2] (parameter {name}): ")
    assert "must be unique" in problem
    assert f"{name} is also parameters[0]" in problem


def test_an_unknown_field_gets_a_did_you_mean() -> None:
    document = manifest()
    document["spec"]["budget"]["maxTrail"] = 5
    document["spec"]["parameters"][0]["mn"] = 1
    found = problems(document)
    assert any(
        p.startswith("spec.budget.maxTrail:") and "did you mean maxTrials?" in p for p in found
    )
    assert any("spec.parameters[0].mn" in p and "did you mean min?" in p for p in found)
    document = manifest()
    document["spec"]["algorithm"]["name"] = "bayesain"
    assert "did you mean bayesian?" in " ".join(problems(document))


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    out = validate(tmp_path, "spec:\n  budget: [unclosed\n")
    # The console folds long lines (a temporary path may be longer than its width)
    # anywhere, so the words are looked for with every blank taken out.
    unfolded = "".join(out.split())
    assert "sweep.yaml" in unfolded.split("notvalidYAML")[1]
    assert "<unicodestring>" not in unfolded


def test_validate_names_the_parameter(tmp_path: Path) -> None:
    document = manifest()
    document["spec"]["parameters"][0]["max"] = document["spec"]["parameters"][0]["min"] / 10
    out = validate(tmp_path, yaml.safe_dump(document))
    name = document["spec"]["parameters"][0]["name"]
    assert f"(parameter {name})" in out


def test_the_operator_s_spec_errors_name_the_parameter_too() -> None:
    from pydantic import ValidationError

    from kubesweep.api import ExperimentSpec
    from kubesweep.api.resources import describe_validation_error

    spec = manifest()["spec"]
    spec["parameters"][1]["min"] = spec["parameters"][1]["max"] * 10
    name = spec["parameters"][1]["name"]
    with pytest.raises(ValidationError) as caught:
        ExperimentSpec.model_validate(spec)
    [problem] = describe_validation_error(caught.value)  # no document: from the error alone
    assert problem.startswith(f"parameters[1].max (parameter {name}): ")
