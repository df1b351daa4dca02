"""Multi-fidelity sweeps show each trial's fidelity wherever its parameters are shown."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from kubesweep.api import Experiment, ExperimentStatus, TrialPhase
from kubesweep.cli import display
from kubesweep.cli.local.progress import Progress
from kubesweep.cli.local.store import LocalTrial, Store
from kubesweep.cli.ranking import TrialRecord
from kubesweep.cli.report.data import report_data
from kubesweep.cli.report.html import render_html
from tests.cli.conftest import T0, example

PARAMETERS = {"alpha": 0.001, "hidden": 64, "lr": 0.0123456789}


def hyperband() -> Experiment:
    status = ExperimentStatus.model_validate(
        {
            "phase": "Running",
            "bestTrial": {
                "name": "digits-hyperband-1",
                "parameters": PARAMETERS,
                "objective": 0.2,
                "fidelity": 9.0,
            },
        }
    )
    return example("hyperband").model_copy(update={"status": status})


def records() -> list[TrialRecord]:
    """Two trials with the same parameters and different epochs, hence different results."""
    return [
        TrialRecord(
            name=f"digits-hyperband-{index}",
            index=index,
            phase=TrialPhase.SUCCEEDED,
            parameters=PARAMETERS,
            objective=objective,
            fidelity=epochs,
            start_time=T0,
            completion_time=T0,
        )
        for index, (epochs, objective) in enumerate([(1.0, 0.9), (9.0, 0.2)])
    ]


def printed(renderable: object) -> str:
    console = Console(width=250, record=True)
    console.print(renderable)
    return console.export_text()


def test_the_trials_table_has_the_fidelity_column() -> None:
    text = printed(display.experiment_trials_table(hyperband(), records()))
    header = next(line for line in text.splitlines() if "TRIAL" in line)
    assert "epochs" in header
    rows = [line for line in text.splitlines() if "digits-hyperband-" in line]
    assert " 1 " in rows[0]
    assert " 9 " in rows[1]


def test_describe_shows_the_fidelity_of_the_top_trials() -> None:
    text = printed(display.describe(hyperband(), records(), {}))
    top = text.split("Top trials")[1]
    assert "epochs" in next(line for line in top.splitlines() if "TRIAL" in line)


def test_the_watch_panel_shows_the_fidelity() -> None:
    running = [TrialRecord(**{**records()[0].__dict__, "phase": TrialPhase.RUNNING})]
    assert "epochs=1" in printed(display.watch_panel(hyperband(), running))


def test_the_report_shows_the_fidelity_and_short_numbers() -> None:
    data = report_data(hyperband(), records(), now=T0)
    assert data["summary"]["top"][0]["parameters"]["epochs"] == "9"
    assert data["summary"]["best"]["parameters"]["epochs"] == "9"
    page = render_html(data)
    table = page.split("<h2>Top trials</h2>")[1]
    assert "epochs=9" in table
    assert "epochs=1" in table
    assert "0.0123456789" not in page.split('<script type="application/json"')[0]
    assert "lr=0.01235" in page


def test_started_lines_show_the_fidelity(tmp_path: Path) -> None:
    state = tmp_path / "hb.db"
    store = Store(state)
    store.set_meta(experiment="digits-hyperband", manifest=hyperband().model_dump_json())
    trial = LocalTrial(index=0, name="digits-hyperband-0", parameters=PARAMETERS, fidelity=3.0)
    store.add_trial(trial)
    stored = store.trial("digits-hyperband-0")
    store.close()
    assert stored is not None
    console = Console(width=250, record=True)
    progress = Progress(console, live=False, state=state, experiment=hyperband())
    progress.trial_event("digits-hyperband-0", "Started", f"{dict(stored.parameters)} on GPU 1")
    line = console.export_text().strip()
    assert "epochs=3" in line
    assert line.endswith("on GPU 1")
    assert "0.0123456789" not in line
