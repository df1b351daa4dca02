"""Why a trial failed, as a user reads it: in the run's events, its summary and ``describe``."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from kubesweep.api import Experiment, ExperimentStatus, TrialPhase, TrialStatus
from kubesweep.cli import display
from kubesweep.cli.failures import metric_hint
from kubesweep.cli.local.processes import failure_text
from kubesweep.cli.local.progress import Progress
from kubesweep.cli.local.runner import trials_dir
from kubesweep.cli.local.store import LocalTrial, Store
from kubesweep.cli.ranking import TrialRecord
from tests.cli.conftest import example, record

TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "train.py", line 3, in <module>',
    "    import examples",
    "ModuleNotFoundError: No module named 'examples'",
]


def failed(index: int, message: str) -> TrialRecord:
    base = record(index, None, TrialPhase.FAILED)
    return TrialRecord(**{**base.__dict__, "reason": "Error", "message": message})


def printed(renderable: object) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_the_first_line_of_a_failure_carries_its_cause() -> None:
    text = failure_text(1, TRACEBACK)
    first, *rest = text.splitlines()
    assert "No module named 'examples'" in first
    assert first.startswith("the trial process ended with exit code 1")
    assert rest[-4:] == TRACEBACK
    assert failure_text(-9, []) == "the trial process ended with killed by signal 9"


def test_a_long_output_keeps_the_headline() -> None:
    text = failure_text(2, [f"line {i} " + "x" * 200 for i in range(40)])
    assert text.startswith("the trial process ended with exit code 2: line 39")
    assert len(text) <= 4000


def test_events_show_the_cause_and_the_retry() -> None:
    console = Console(width=300, record=True, force_terminal=False)
    progress = Progress(console, live=False)
    progress.trial_event("exp-0", "Retrying", failure_text(1, TRACEBACK[-2:]) + " (retry 1)")
    progress.trial_event("exp-0", "Failed", failure_text(1, TRACEBACK))
    lines = console.export_text().splitlines()
    assert "No module named 'examples'" in lines[0]
    assert lines[0].endswith("(retry 1)")
    assert "No module named 'examples'" in lines[1]


def test_the_summary_shows_each_distinct_failure_whole_and_once() -> None:
    message = failure_text(1, TRACEBACK)
    records = [failed(0, message), failed(1, message), failed(2, failure_text(3, ["boom"]))]
    text = printed(display.failure_summary(example("random"), records))
    assert text.count("Traceback (most recent call last):") == 1
    assert text.count("import examples") == 1
    assert "exp-0, exp-1" in text or "exp-1, exp-0" in text
    assert "exit code 3: boom" in text
    assert display.failure_summary(example("random"), [record(0, 0.2)]) is None


def with_status(experiment: Experiment, status: dict[str, object]) -> Experiment:
    return experiment.model_copy(update={"status": ExperimentStatus.model_validate(status)})


def test_describe_prints_a_traceback_once() -> None:
    experiment = with_status(example("random"), {"phase": "Running"})
    records = [failed(0, failure_text(1, TRACEBACK))]
    text = printed(display.describe(experiment, records, {"exp-0": "\n".join(TRACEBACK)}))
    assert text.count("ModuleNotFoundError") == 2  # the headline, and the log's last line
    assert text.count("import examples") == 1
    text = printed(display.describe(experiment, records, {}))
    assert text.count("import examples") == 1  # without a log, the message's own output


def test_a_one_line_output_is_not_repeated() -> None:
    assert failure_text(1, ["boom"]) == "the trial process ended with exit code 1: boom"


def unreported(index: int) -> TrialRecord:
    base = record(index, None, TrialPhase.METRICS_UNAVAILABLE)
    return TrialRecord(
        **{
            **base.__dict__,
            "reason": "ObjectiveNotReported",
            "message": "the Job completed but never reported val_loss",
        }
    )


def test_a_metric_printed_in_another_form_gets_the_form_that_is_read() -> None:
    spec = example("random").spec
    hint = metric_hint(spec, ["epoch 1", "val_loss: 0.25 accuracy: 0.9"])
    assert hint is not None
    assert "val_loss: 0.25" in hint
    assert "val_loss=0.25" in hint
    assert "never mentions val_loss" in (metric_hint(spec, ["training done"]) or "")
    assert metric_hint(spec, ["val_loss=0.25"]) is None  # read: something else went wrong


def test_a_local_trial_without_its_objective_is_a_process_and_gets_a_hint() -> None:
    experiment = example("random")
    output = {"exp-0": ["val_loss: 0.25"]}
    text = printed(display.failure_summary(experiment, [unreported(0)], output, local=True))
    assert "the trial process exited 0 but never reported val_loss" in text
    assert "Job" not in text
    assert "val_loss=0.25" in text
    text = printed(display.failure_summary(experiment, [unreported(0)], output))
    assert "the Job completed but never reported val_loss" in text


def test_the_event_of_a_trial_without_its_objective_has_the_hint(tmp_path: Path) -> None:
    experiment = example("random")
    state = tmp_path / "r.db"
    store = Store(state)
    store.set_meta(experiment="digits-random", manifest=experiment.model_dump_json())
    status = TrialStatus(
        phase=TrialPhase.METRICS_UNAVAILABLE,
        reason="ObjectiveNotReported",
        message="the Job completed but never reported val_loss",
    )
    store.add_trial(LocalTrial(index=0, name="digits-random-0", parameters={}, status=status))
    store.close()
    log = trials_dir(state) / "digits-random-0" / "stdout.log"
    log.parent.mkdir(parents=True)
    log.write_text("val_loss: 0.25\n")
    console = Console(width=300, record=True)
    with Progress(console, live=False, state=state, experiment=experiment) as progress:
        progress.trial_event("digits-random-0", "MetricsUnavailable", status.message or "")
    line = console.export_text()
    assert "trial process exited 0 but never reported val_loss" in line
    assert "val_loss=0.25" in line
