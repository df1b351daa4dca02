"""A local run written trial by trial, as ``kubesweep run`` writes its state file.

The dashboard tests read what this writes while it writes it.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

from kubesweep.api import (
    CurvePoint,
    Experiment,
    ExperimentStatus,
    MetricSummary,
    TrialPhase,
    TrialStatus,
    trial_name,
)
from kubesweep.cli.local.store import LocalTrial, Store
from tests.cli.conftest import T0


def loss_of(index: int) -> float:
    """The objective trial ``index`` reports: varied, never twice the same."""
    return round(0.2 + abs(math.sin(index * 1.7)) / 2 + index * 1e-4, 6)


def parameters_of(index: int) -> dict[str, float | str]:
    """The random example's parameters for trial ``index``."""
    return {
        "alpha": 10 ** (-6 + (index * 0.37) % 4),
        "eta0": 10 ** (-3 + (index * 0.61) % 3),
        "penalty": ("l2", "l1", "elasticnet")[index % 3],
    }


class LiveRun:
    """A state file of ``experiment`` that trials are added to and finished in."""

    def __init__(self, path: Path, experiment: Experiment) -> None:
        self.experiment = experiment
        self.name = experiment.metadata.name
        self.store = Store(path)
        self.store.set_meta(
            experiment=self.name,
            manifest=experiment.model_dump_json(by_alias=True, exclude_none=True),
        )
        self.finished: list[int] = []
        self.started: list[int] = []
        self.save_status("Running")

    def save_status(self, phase: str) -> None:
        """The experiment's status, with the counts of what was written."""
        self.store.save_status(
            ExperimentStatus.model_validate(
                {
                    "phase": phase,
                    "startTime": T0.isoformat(),
                    "trials": {
                        "created": len(self.started),
                        "succeeded": len(self.finished),
                        "completed": len(self.finished),
                        "running": len(self.started) - len(self.finished),
                    },
                }
            )
        )

    def start(self, index: int) -> None:
        """Trial ``index`` begins running."""
        status = TrialStatus(phase=TrialPhase.RUNNING, start_time=T0)
        trial = LocalTrial(
            index=index,
            name=trial_name(self.name, index),
            parameters=parameters_of(index),
            status=status,
            attempts=1,
        )
        self.store.add_trial(trial)
        self.started.append(index)
        self.save_status("Running")

    def finish(self, index: int, steps: int = 3) -> float:
        """Trial ``index`` succeeds with :func:`loss_of`; returns that objective."""
        loss = loss_of(index)
        curve = [CurvePoint(step=s, value=loss + (steps - s) / 10) for s in range(1, steps + 1)]
        status = TrialStatus(
            phase=TrialPhase.SUCCEEDED,
            reason="Completed",
            start_time=T0,
            completion_time=T0 + timedelta(seconds=30),
            objective=loss,
            metrics=[
                MetricSummary(name="val_loss", latest=loss, min=loss, max=curve[0].value),
                MetricSummary(name="accuracy", latest=1 - loss, min=1 - loss, max=1 - loss),
            ],
            curve=curve,
        )
        trial = LocalTrial(
            index=index,
            name=trial_name(self.name, index),
            parameters=parameters_of(index),
            status=status,
            attempts=1,
        )
        self.store.update_trial(trial)
        self.finished.append(index)
        self.save_status("Running")
        return loss

    def unreported(self, index: int, message: str) -> None:
        """Trial ``index`` ended without its objective, with ``message``."""
        status = TrialStatus(
            phase=TrialPhase.METRICS_UNAVAILABLE,
            reason="ObjectiveNotReported",
            message=message,
            start_time=T0,
            completion_time=T0 + timedelta(seconds=30),
        )
        trial = LocalTrial(
            index=index,
            name=trial_name(self.name, index),
            parameters=parameters_of(index),
            status=status,
            attempts=1,
        )
        self.store.add_trial(trial)
        self.started.append(index)
        self.finished.append(index)
        self.save_status("Running")

    def run(self, index: int) -> float:
        """Start and finish trial ``index``."""
        self.start(index)
        return self.finish(index)

    def close(self) -> None:
        """Close the state file."""
        self.store.close()
