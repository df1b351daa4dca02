"""Lean Trials: what every decision reads from one equals what it read from the validated Trial."""

from __future__ import annotations

from typing import Any

import pytest

from kubesweep.api import Trial, TrialStatus
from kubesweep.operator.compact import lean_trial
from kubesweep.operator.directory import trial_entry
from kubesweep.operator.reconciler import _view
from kubesweep.planning.requests import observed_trial
from kubesweep.rendering import LABEL_EXPERIMENT


def body(index: int, phase: str = "Succeeded", **status: Any) -> dict[str, Any]:
    """A Trial as the API server returns it, finished by default, with a curve and metrics."""
    loss = 0.5 + index / 100
    return {
        "metadata": {
            "name": f"exp-{index}",
            "namespace": "ns",
            "uid": f"uid-{index}",
            "labels": {LABEL_EXPERIMENT: "exp"},
            "annotations": {"note": "kept"},
            "generateName": "exp-",  # an extra field, kept
        },
        "spec": {
            "experiment": "exp",
            "index": index,
            "parameters": {"lr": 0.1 * index, "opt": "adam", "layers": index},
            "fidelity": 3.0,
            "tags": {"bracket": "0", "rung": str(index % 2)},
        },
        "status": {
            "phase": phase,
            "reason": "Completed",
            "message": "done",
            "startTime": "2026-01-01T00:00:00Z",
            "completionTime": "2026-01-01T00:10:00Z",
            "objective": loss,
            "gpuSeconds": 12.5,
            "metrics": [
                {"name": "loss", "latest": loss, "min": loss, "max": 1.0, "step": 9, "count": 10},
                {"name": "acc", "latest": 0.9, "min": 0.1, "max": 0.9},
            ],
            "curve": [{"step": s, "value": 1.0 - s * loss / 10} for s in range(10)],
            **status,
        },
    }


def pair(index: int, phase: str = "Succeeded") -> tuple[Trial, Trial]:
    full = Trial.model_validate(body(index, phase))
    return full, lean_trial(full)


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "EarlyStopped", "Running", "Pending"])
def test_a_lean_trial_equals_the_validated_one(phase: str) -> None:
    full, lean = pair(7, phase)
    assert lean == full
    assert lean.to_wire() == full.to_wire()
    assert lean.model_fields_set == full.model_fields_set
    assert lean.metadata.model_fields_set == full.metadata.model_fields_set
    assert full.status is not None
    assert lean.status is not None
    assert lean.status.model_fields_set == full.status.model_fields_set


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Running"])
def test_decisions_read_the_same_from_a_lean_trial(phase: str) -> None:
    full, lean = pair(3, phase)
    assert full.status is not None
    assert lean.status is not None
    for has_job in (False, True):
        view, lean_view = _view(full, full.status, has_job), _view(lean, lean.status, has_job)
        assert lean_view == view
        assert lean_view.finished == view.finished
        # the suggestion request's history and the early-stopping curve
        assert observed_trial(lean_view) == observed_trial(view)
    assert trial_entry(lean, "uid-3") == trial_entry(full, "uid-3")


def test_a_lean_trial_without_status_stays_without() -> None:
    raw = body(1)
    del raw["status"]
    full = Trial.model_validate(raw)
    lean = lean_trial(full)
    assert lean == full
    assert lean.status is None
    assert _view(lean, TrialStatus(), False) == _view(full, TrialStatus(), False)


def test_lean_trials_share_what_is_equal_and_nothing_else() -> None:
    (_, one), (_, two) = pair(1), pair(2)
    assert one.status is not None
    assert two.status is not None
    # what makes them lean: one fields-set per shape, equal labels once
    assert one.status.model_fields_set is two.status.model_fields_set
    assert one.metadata.labels is two.metadata.labels
    assert one.spec.tags is not two.spec.tags  # the rung differs
    assert one.spec.parameters is not two.spec.parameters
    # a copy with a change leaves the shared fields-set (and the other trial) alone
    assert "observed_generation" not in one.status.model_fields_set
    changed = one.status.model_copy(update={"observed_generation": 3})
    assert "observed_generation" in changed.model_fields_set
    assert "observed_generation" not in two.status.model_fields_set


def test_finished_trials_directory_entries_keep_no_metrics() -> None:
    (full_done, _), (full_running, _) = pair(4), pair(5, "Running")
    done = trial_entry(full_done, "uid-4")
    assert done.finished
    assert done.metrics == ()
    assert done.curve == ()
    running = trial_entry(full_running, "uid-5")
    assert running.curve
    assert running.metrics
    assert not running.finished
