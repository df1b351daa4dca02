"""The report's Pareto plot: the spec's objectives and directions, the status's front."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kubesweep.api import Experiment, TrialPhase, parse_experiment
from kubesweep.cli.ranking import TrialRecord
from kubesweep.cli.report.data import pareto
from kubesweep.cli.report.html import plot_ids, write_report
from tests.cli.conftest import T0
from tests.cli.test_report import chromium, run_chromium


def experiment() -> Experiment:
    return parse_experiment(
        {
            "apiVersion": "kubesweep.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "tradeoff"},
            "spec": {
                "objectives": [
                    {"metric": "latency_ms", "direction": "maximize"},
                    {"metric": "accuracy", "direction": "minimize"},
                ],
                "constraints": [{"metric": "memory", "max": 10}],
                "algorithm": {"name": "nsga2"},
                "parameters": [{"name": "x", "type": "float", "min": 0, "max": 1}],
                "trialTemplate": {
                    "primaryContainer": "main",
                    "job": {"template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}},
                },
            },
        }
    )


def scored(index: int, latency: float, accuracy: float, memory: float, **extra: Any) -> TrialRecord:
    return TrialRecord(
        name=f"tradeoff-{index}",
        index=index,
        phase=extra.get("phase", TrialPhase.SUCCEEDED),
        parameters={"x": index / 10},
        objective=latency,
        metrics={"latency_ms": latency, "accuracy": accuracy, "memory": memory},
        start_time=T0,
        completion_time=T0,
    )


RECORDS = [
    scored(0, 10.0, 0.5, 1),  # front: highest latency (maximised, as the spec says)
    scored(1, 5.0, 0.1, 1),  # front: lowest accuracy (minimised, as the spec says)
    scored(2, 5.0, 0.6, 1),  # dominated by both
    scored(3, 20.0, 0.0, 50),  # would dominate all, but breaks memory <= 10
    scored(4, 30.0, 0.0, 1, phase=TrialPhase.FAILED),
]


def test_the_plot_uses_the_spec_directions_and_marks_the_feasible_front() -> None:
    data = pareto(RECORDS, experiment())
    assert data is not None
    assert data["metrics"] == ["latency_ms", "accuracy"]
    assert data["directions"] == ["maximize", "minimize"]
    marks = {p["name"]: (p["front"], p["feasible"]) for p in data["points"]}
    assert marks == {
        "tradeoff-0": (True, True),
        "tradeoff-1": (True, True),
        "tradeoff-2": (False, True),
        "tradeoff-3": (False, False),
    }


def test_the_pareto_plot_renders_in_headless_chromium(tmp_path: Path) -> None:
    binary = chromium()
    if binary is None:
        pytest.skip("chromium not found (apt-get install -y chromium)")
    path = tmp_path / "report.html"
    data = write_report(experiment(), RECORDS, path, now=T0)
    assert "plot-pareto-1" in plot_ids(data)
    dom = run_chromium(binary, path.as_uri(), "--dump-dom", "--virtual-time-budget=5000")
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'<div class="plot" id="plot-pareto-1"([^>]*)>', dom.stdout)
    assert match, "the Pareto plot is missing"
    assert 'data-rendered="true"' in match.group(1), match.group(1)
    assert 'data-marks="4"' in match.group(1)
    assert "latency_ms (maximize)" in dom.stdout


def test_the_headline_gives_the_objectives_and_each_ones_best_on_the_status_front(
    tmp_path: Path,
) -> None:
    from kubesweep.api import ExperimentStatus

    front = [
        {"name": "tradeoff-0", "values": {"latency_ms": 10.0, "accuracy": 0.5}, "parameters": {}},
        {"name": "tradeoff-1", "values": {"latency_ms": 5.0, "accuracy": 0.1}, "parameters": {}},
    ]
    status = ExperimentStatus.model_validate({"paretoFront": front, "paretoFrontSize": 2})
    done = experiment().model_copy(update={"status": status})
    path = tmp_path / "report.html"
    data = write_report(done, RECORDS, path, now=T0)
    assert data["summary"]["front"] == "latency_ms 10, accuracy 0.1 (front of 2)"
    page = path.read_text()
    assert "<b>Pareto front</b> latency_ms 10, accuracy 0.1 (front of 2)" in page
    assert "maximize latency_ms, minimize accuracy subject to memory &lt;= 10" in page
    assert "No best trial yet" not in page
