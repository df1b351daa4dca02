"""What reader commands print: end lines, best results as YAML/env/ConfigMap, describe."""

from __future__ import annotations

from rich.console import Console

from kubesweep.api import Experiment, ExperimentStatus, TrialPhase
from kubesweep.cli import display as views
from tests.cli.conftest import T0, example, record


def with_status(experiment: Experiment, status: dict[str, object]) -> Experiment:
    return experiment.model_copy(update={"status": ExperimentStatus.model_validate(status)})


def test_end_line_names_the_final_condition() -> None:
    status = ExperimentStatus.model_validate(
        {
            "phase": "Failed",
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "MaxFailedTrialsReached",
                    "message": "3 trials failed",
                    "lastTransitionTime": T0,
                }
            ],
        }
    )
    line = views.end_line(status)
    assert line.plain == "Failed (MaxFailedTrialsReached): 3 trials failed"
    assert line.spans[0].style == "red"


def test_best_result_adds_the_fidelity_under_its_parameter_name() -> None:
    experiment = with_status(
        example("hyperband"),
        {
            "bestTrial": {
                "name": "digits-hyperband-4",
                "parameters": {"lr": 0.01, "alpha": 0.001, "hidden": 64},
                "objective": 0.2,
                "metrics": {"val_loss": 0.2, "accuracy": 0.95},
                "fidelity": 9.0,
            }
        },
    )
    result = views.best_result(experiment)
    assert result == {
        "experiment": "digits-hyperband",
        "trial": "digits-hyperband-4",
        "objective": {"metric": "val_loss", "value": 0.2},
        "parameters": {"lr": 0.01, "alpha": 0.001, "hidden": 64, "epochs": 9},
        "metrics": {"val_loss": 0.2, "accuracy": 0.95},
    }
    assert views.best_env(experiment, result) == (
        "KUBESWEEP_PARAM_LR=0.01\nKUBESWEEP_PARAM_ALPHA=0.001\n"
        "KUBESWEEP_PARAM_HIDDEN=64\nKUBESWEEP_PARAM_EPOCHS=9\n"
    )
    configmap = views.best_configmap(experiment, result, "winner", "team-a")
    assert configmap["data"]["hidden"] == "64"
    assert configmap["metadata"]["labels"]["kubesweep.io/experiment"] == "digits-hyperband"
    assert configmap["metadata"]["annotations"]["kubesweep.io/trial"] == "digits-hyperband-4"
    assert views.best_result(example("random")) is None


def test_env_values_are_quoted_for_the_shell() -> None:
    experiment = example("random")
    result = {"parameters": {"penalty": "l1 or l2", "quote": "it's"}}
    assert views.best_env(experiment, result) == (
        "KUBESWEEP_PARAM_PENALTY='l1 or l2'\nKUBESWEEP_PARAM_QUOTE='it'\"'\"'s'\n"
    )


def test_describe_shows_best_and_failure_logs() -> None:
    experiment = with_status(
        example("random"),
        {
            "phase": "Running",
            "bestTrial": {"name": "exp-1", "parameters": {"eta0": 0.1}, "objective": 0.3},
        },
    )
    records = [record(0, None, TrialPhase.FAILED), record(1, 0.3)]
    console = Console(width=200, record=True)
    console.print(views.describe(experiment, records, {"exp-0": "Traceback: boom"}))
    text = console.export_text()
    assert "Best trial exp-1" in text
    assert "Trial exp-0 Failed" in text
    assert "Traceback: boom" in text
    assert [r.name for r in views.failed(records)] == ["exp-0"]


def test_experiments_table_and_list_wire() -> None:
    experiment = with_status(example("random"), {"phase": "Running", "trials": {"completed": 3}})
    console = Console(width=200, record=True)
    console.print(views.experiments_table([experiment]))
    text = console.export_text()
    assert "digits-random" in text
    assert "3/8" in text
    assert views.list_wire([experiment])["kind"] == "Experiment"
    assert views.list_wire([experiment, experiment])["kind"] == "List"


def test_queued_trials_show_as_pending_and_queued_in_describe_and_watch() -> None:
    counts = {"created": 6, "running": 4, "pending": 2, "queued": 2}
    experiment = with_status(example("random"), {"phase": "Running", "trials": counts})
    console = Console(width=200, record=True)
    console.print(views.describe(experiment, [], {}))
    assert "4 running, 2 pending (2 queued)" in console.export_text()
    assert "4 running, 2 pending (2 queued)" in views.progress_line(experiment)
    no_queue = with_status(example("random"), {"phase": "Running", "trials": {"pending": 1}})
    assert "1 pending," in views.progress_line(no_queue)


def test_get_with_several_objectives_shows_every_objective_and_its_best_on_the_front() -> None:
    experiment = with_status(
        example("nsga2"),
        {
            "phase": "Running",
            "trials": {"completed": 3},
            "paretoFrontSize": 2,
            "paretoFront": [
                {"name": "a", "values": {"val_loss": 0.2, "weights": 910}, "parameters": {}},
                {"name": "b", "values": {"val_loss": 0.3, "weights": 95}, "parameters": {}},
            ],
        },
    )
    console = Console(width=200, record=True)
    console.print(views.experiments_table([experiment]))
    text = console.export_text()
    assert "val_loss (minimize), weights (minimize)" in text
    assert "val_loss 0.2, weights 95 (front of 2)" in text
    assert "best val_loss 0.2, weights 95 (front of 2)" in views.progress_line(experiment)
