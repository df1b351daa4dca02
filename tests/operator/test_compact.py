"""Indexed Trials: every decision reads from one what it read from the validated Trial."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from kubesweep.api import Trial
from kubesweep.operator.children import slim_trial
from kubesweep.operator.compact import IndexedTrial
from kubesweep.operator.directory import trial_entry
from kubesweep.planning import trial_view
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


def pair(index: int, phase: str = "Succeeded") -> tuple[Trial, IndexedTrial]:
    raw = body(index, phase)
    return Trial.model_validate(raw), indexed(raw)


def indexed(raw: dict[str, Any]) -> IndexedTrial:
    trial = slim_trial(raw)
    assert trial is not None
    return trial


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "EarlyStopped", "Running", "Pending"])
def test_an_indexed_trial_holds_the_values_of_the_validated_one(phase: str) -> None:
    full, kept = pair(7, phase)
    assert (kept.name, kept.namespace, kept.uid) == ("exp-7", "ns", "uid-7")
    assert kept.experiment == full.spec.experiment
    assert kept.index == full.spec.index
    assert kept.parameters == full.spec.parameters
    assert kept.fidelity == full.spec.fidelity
    assert kept.tags == full.spec.tags
    assert full.status is not None
    assert kept.status is not None
    assert kept.status == full.status
    assert kept.status.to_wire() == full.status.to_wire()
    assert kept.status.model_fields_set == full.status.model_fields_set


@pytest.mark.parametrize("phase", ["Running", "Pending"])
def test_a_trial_that_may_still_run_keeps_the_trial_its_workload_is_rendered_from(
    phase: str,
) -> None:
    full, kept = pair(2, phase)
    assert not kept.finished
    assert kept.source is not None
    assert kept.source.spec == full.spec
    assert (kept.source.metadata.name, kept.source.metadata.uid) == ("exp-2", "uid-2")


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "EarlyStopped", "MetricsUnavailable"])
def test_a_finished_trial_keeps_no_trial_model(phase: str) -> None:
    _, kept = pair(2, phase)
    assert kept.finished
    assert kept.source is None


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Running"])
def test_decisions_read_the_same_from_an_indexed_trial(phase: str) -> None:
    full, kept = pair(3, phase)
    assert full.status is not None
    assert kept.status is not None
    for has_job in (False, True):
        view = trial_view(kept, kept.status, has_job)
        assert view.name == full.metadata.name
        assert (view.index, view.parameters, view.tags) == (
            full.spec.index,
            full.spec.parameters,
            full.spec.tags,
        )
        assert view.status == full.status
        # the suggestion request's history and the early-stopping curve
        observed = observed_trial(view)
        reference = observed_trial(replace(view, status=full.status))
        assert observed == reference
        assert observed.to_wire() == reference.to_wire()
    assert trial_entry(kept, "uid-3").experiment == "exp"


def test_an_indexed_trial_without_status_stays_without() -> None:
    raw = body(1)
    del raw["status"]
    kept = indexed(raw)
    assert kept.status is None
    assert not kept.finished
    assert kept.source is not None


def test_indexed_trials_share_what_is_equal_and_nothing_else() -> None:
    (_, one), (_, two) = pair(1), pair(2)
    assert one.status is not None
    assert two.status is not None
    # what makes them lean: one fields-set per shape, equal tags once, names interned
    assert one.status.model_fields_set is two.status.model_fields_set
    assert one.experiment is two.experiment
    assert one.status.metrics[0].name is two.status.metrics[0].name
    same_rung = indexed(body(3))
    assert one.tags is same_rung.tags
    assert one.tags is not two.tags  # the rung differs
    assert one.parameters is not two.parameters
    # a copy with a change leaves the shared fields-set (and the other trial) alone
    assert "observed_generation" not in one.status.model_fields_set
    changed = one.status.model_copy(update={"observed_generation": 3})
    assert "observed_generation" in changed.model_fields_set
    assert "observed_generation" not in two.status.model_fields_set


def test_finished_trials_directory_entries_keep_no_metrics() -> None:
    (_, done_trial), (_, running_trial) = pair(4), pair(5, "Running")
    done = trial_entry(done_trial, "uid-4")
    assert done.finished
    assert done.metrics == ()
    assert done.curve == ()
    running = trial_entry(running_trial, "uid-5")
    assert running.curve
    assert running.metrics
    assert not running.finished
