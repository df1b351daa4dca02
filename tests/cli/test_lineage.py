"""A trial's lineage in the CLI: the parent column, the best trial's chain, the report."""

from __future__ import annotations

import io
from dataclasses import replace

from rich.console import Console

from kubesweep.api import BestTrial, Experiment, ExperimentStatus
from kubesweep.cli import display
from kubesweep.cli.ranking import TrialRecord, lineage
from kubesweep.cli.report.data import report_data
from kubesweep.cli.report.html import render_html
from tests.cli.conftest import example, record


def _family() -> list[TrialRecord]:
    """exp-0 and exp-1 start; exp-2 continues exp-0; exp-3 copies exp-2 and perturbs."""
    return [
        record(0, 0.5, eta0=0.1),
        record(1, 0.9, eta0=0.5),
        replace(record(2, 0.4, eta0=0.1), parent="exp-0"),
        replace(record(3, 0.2, eta0=0.12), parent="exp-2", perturbation="copied exp-2; eta0 x1.2"),
    ]


def _with_best(name: str, objective: float) -> Experiment:
    experiment = example("random")
    status = ExperimentStatus(
        best_trial=BestTrial(name=name, objective=objective, parameters={"eta0": 0.12})
    )
    return experiment.model_copy(update={"status": status})


def _text(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()


def test_the_lineage_runs_from_the_first_trial_to_the_named_one() -> None:
    family = _family()
    assert [r.name for r in lineage(family, "exp-3")] == ["exp-0", "exp-2", "exp-3"]
    assert [r.name for r in lineage(family, "exp-1")] == ["exp-1"]
    assert lineage(family, "exp-9") == []


def test_records_carry_their_parent_into_json_rows() -> None:
    rows = [r.to_dict() for r in _family()]
    assert "parent" not in rows[0]
    assert rows[3]["parent"] == "exp-2"
    assert rows[3]["perturbation"] == "copied exp-2; eta0 x1.2"


def test_the_trials_table_shows_parents_only_when_some_trial_has_one() -> None:
    experiment = example("random")
    with_parents = _text(display.experiment_trials_table(experiment, _family()))
    assert "PARENT" in with_parents
    without = _text(display.experiment_trials_table(experiment, _family()[:2]))
    assert "PARENT" not in without


def test_describe_shows_the_best_trials_lineage_with_its_perturbations() -> None:
    experiment = _with_best("exp-3", 0.2)
    text = _text(display.describe(experiment, _family(), {}))
    assert "Lineage: exp-0 -> exp-2 -> exp-3 (copied exp-2; eta0 x1.2)" in text


def test_the_report_names_the_best_trials_lineage() -> None:
    data = report_data(_with_best("exp-3", 0.2), _family())
    assert [s["name"] for s in data["summary"]["best"]["lineage"]] == ["exp-0", "exp-2", "exp-3"]
    page = render_html(data)
    assert "<b>Lineage</b> exp-0 &rarr; exp-2 &rarr; exp-3 (copied exp-2; eta0 x1.2)" in page
