"""Builders for specs and trial views: each test states only what it bends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubesweep.api import ExperimentSpec, TrialPhase, TrialStatus
from kubesweep.planning import TrialView

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def make_spec(**budget: Any) -> ExperimentSpec:
    """A small spec; keyword arguments override the budget, ``target``/``direction`` too."""
    target = budget.pop("target", None)
    direction = budget.pop("direction", "minimize")
    extra = budget.pop("extra", {})
    raw: dict[str, Any] = {
        "objective": {"metric": "loss", "direction": direction, "additionalMetrics": ["acc"]},
        "algorithm": {"name": "random", "seed": 1},
        "parameters": [{"name": "lr", "type": "float", "min": 0.001, "max": 0.1}],
        "budget": {"maxTrials": 4, "parallelTrials": 2, **budget},
        "trialTemplate": {
            "primaryContainer": "main",
            "job": {"template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}},
        },
        **extra,
    }
    if target is not None:
        raw["objective"]["target"] = target
    return ExperimentSpec.model_validate(raw)


def trial(
    index: int,
    phase: TrialPhase = TrialPhase.RUNNING,
    objective: float | None = None,
    *,
    has_job: bool = True,
    gpu: float = 0.0,
) -> TrialView:
    """Trial ``index`` of experiment ``exp`` in ``phase``."""
    return TrialView(
        name=f"exp-{index}",
        index=index,
        parameters={"lr": 0.01 * (index + 1)},
        status=TrialStatus(phase=phase, objective=objective, gpu_seconds=gpu),
        has_job=has_job,
    )
