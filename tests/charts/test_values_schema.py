"""The chart's values are all documented, and its schema is generated from them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import jsonschema  # type: ignore[import-untyped]  # the dev extra has no jsonschema stubs
import pytest
import yaml

CHARTS = Path(__file__).resolve().parents[2] / "charts"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("values_schema", CHARTS / "values_schema.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schema_is_up_to_date() -> None:
    committed = (CHARTS / "kubesweep/values.schema.json").read_text()
    assert committed == _generator().render(), "run `python charts/values_schema.py`"


def test_every_value_is_documented() -> None:
    assert _generator().undocumented() == []


def _schema() -> dict[str, object]:
    schema: dict[str, object] = json.loads((CHARTS / "kubesweep/values.schema.json").read_text())
    return schema


@pytest.mark.parametrize("values", sorted((CHARTS / "kubesweep/ci").glob("*.yaml")), ids=str)
def test_scenario_values_are_valid(values: Path) -> None:
    defaults = yaml.safe_load((CHARTS / "kubesweep/values.yaml").read_text())
    jsonschema.validate(defaults, _schema())
    jsonschema.validate(yaml.safe_load(values.read_text()) or {}, _schema())


@pytest.mark.parametrize(
    "typo",
    [
        {"operater": {}},
        {"operator": {"replica": 2}},
        {"scope": "global"},
        {"crds": {"keep": "yes"}},
        {"operator": {"extraArgs": [{"--concurrency": 16}]}},
        {"operator": {"image": {"digest": "latest"}}},
        {"collector": {"image": {"pullPolicy": "Sometimes"}}},
        {"operator": {"livenessProbe": {"periodSecond": 5}}},
    ],
)
def test_typos_are_refused(typo: dict[str, object]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, _schema())


def test_pass_through_objects_stay_open() -> None:
    jsonschema.validate(
        {"operator": {"resources": {"limits": {"cpu": "2"}}, "nodeSelector": {"gpu": "a100"}}},
        _schema(),
    )


def test_what_platform_teams_set_is_accepted() -> None:
    jsonschema.validate(
        {
            "global": {"imageRegistry": "mirror.example/kubesweep"},
            "commonLabels": {"team": "ml"},
            "namespaceOverride": "sweeps",
            "operator": {
                "extraArgs": ["--concurrency=16", "--stall-after-seconds=300"],
                "extraEnv": [{"name": "TZ", "value": "UTC"}],
                "image": {"digest": "sha256:" + "a" * 64},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone"}],
            },
            "suggestion": {"extraArgs": ["--max-queue=8"], "extraVolumes": [{"name": "x"}]},
            "collector": {"image": {"pullPolicy": ""}, "resources": {"limits": {"cpu": "1"}}},
        },
        _schema(),
    )
