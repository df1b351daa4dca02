"""Formatting helpers and -o yaml/json."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml
from rich.console import Console

from kubesweep.cli.output import (
    fmt_duration,
    fmt_number,
    fmt_params,
    fmt_value,
    render_data,
    trials_table,
)
from tests.cli.conftest import T0, record


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (float("nan"), "-"), (0.123456789, "0.123457"), (1234567.0, "1.23457e+06")],
)
def test_fmt_number(value: float | None, text: str) -> None:
    assert fmt_number(value) == text


def test_fmt_value_and_params() -> None:
    assert fmt_value(True) == "true"
    assert fmt_value(0.000123456) == "0.0001235"
    assert fmt_value("adam") == "adam"
    assert fmt_params({"lr": 0.1, "opt": "sgd"}) == "lr=0.1 opt=sgd"
    assert fmt_params({"x": "y" * 100}, limit=10).endswith("…")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (65, "1m5s"), (3700, "1h1m"), (90000, "1d1h"), (-3, "0s")],
)
def test_fmt_duration(seconds: float, text: str) -> None:
    assert fmt_duration(timedelta(seconds=seconds)) == text
    assert fmt_duration(seconds) == text


def test_render_data_json_and_yaml_turn_datetimes_into_rfc3339() -> None:
    data = {"when": T0, "items": (1, 2)}
    assert json.loads(render_data(data, "json")) == {
        "when": "2026-11-22T10:00:00Z",
        "items": [1, 2],
    }
    assert yaml.safe_load(render_data(data, "yaml"))["items"] == [1, 2]
    with pytest.raises(ValueError, match="unknown output format"):
        render_data(data, "xml")


def test_trials_table_has_a_column_per_metric_and_parameter() -> None:
    table = trials_table(
        [record(0, 0.5, lr=0.1)],
        objective="val_loss",
        metrics=["accuracy"],
        parameters=["lr"],
        ranked=True,
    )
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    for heading in ("#", "TRIAL", "VAL_LOSS", "ACCURACY", "lr", "DURATION"):
        assert heading in text
    assert "exp-0" in text
    assert "10s" in text
