"""The piped progress of ``kubesweep run``: one summary line per finished trial, no stale budget."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console

from kubesweep.api import ExperimentStatus
from kubesweep.cli.local.progress import Progress, summary_line
from kubesweep.cli.local.runner import Snapshot
from tests.cli.conftest import example


def snapshot(phase: str, **counts: int) -> Snapshot:
    status = ExperimentStatus.model_validate({"phase": phase, "trials": counts})
    return Snapshot(example("random"), status, (), timedelta(seconds=3), timedelta(minutes=5))


def test_piped_progress_prints_one_line_per_finished_trial() -> None:
    console = Console(width=300, record=True)
    progress = Progress(console, live=False)
    for step in [
        snapshot("Pending", created=2, pending=2),
        snapshot("Running", created=2, running=2),
        snapshot("Running", created=3, running=1, pending=1, succeeded=1, completed=1),
        snapshot("Running", created=3, running=2, succeeded=1, completed=1),
        snapshot("Running", created=3, running=2, succeeded=1, completed=1),
        snapshot("Succeeded", created=3, succeeded=3, completed=3),
    ]:
        progress.progress(step)
    lines = console.export_text().splitlines()
    assert [line.split(" · ")[0] for line in lines] == ["1/8 done", "3/8 done"]


def test_the_summary_of_an_ended_sweep_has_no_budget_left() -> None:
    ended = summary_line(snapshot("Succeeded", created=3, succeeded=3, completed=3))
    assert "left" not in ended
    running = summary_line(snapshot("Running", created=7, running=1, succeeded=6, completed=6))
    assert "1 trial left" in running
    assert "5m0s of maxDuration" in running
