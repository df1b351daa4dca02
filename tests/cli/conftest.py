"""Shared helpers for the CLI tests: example manifests and hand-made trial records."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubesweep.api import Experiment, TrialPhase, load_experiments
from kubesweep.cli.ranking import TrialRecord

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def example(name: str) -> Experiment:
    """An example manifest's Experiment."""
    return load_experiments((EXAMPLES / f"{name}.yaml").read_text())[0]


def record(
    index: int,
    objective: float | None,
    phase: TrialPhase = TrialPhase.SUCCEEDED,
    **parameters: object,
) -> TrialRecord:
    """A trial record with a start and completion time ``index`` minutes apart."""
    return TrialRecord(
        name=f"exp-{index}",
        index=index,
        phase=phase,
        parameters=dict(parameters),  # type: ignore[arg-type]
        objective=objective,
        metrics={} if objective is None else {"val_loss": objective},
        start_time=T0,
        completion_time=T0 + timedelta(seconds=10 * (index + 1)),
    )


@pytest.fixture
def random_experiment() -> Experiment:
    return example("random")


@pytest.fixture(autouse=True, scope="session")
def _interruptible_commands() -> None:
    """Commands the tests start hear SIGINT as a terminal's foreground command does.

    pytest-xdist's workers ignore SIGINT, and an ignored signal stays ignored across
    exec: the Ctrl-C tests would send it to a command that cannot hear it. A handler
    (unlike an ignored signal) is reset to the default in the child.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
