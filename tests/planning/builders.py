"""Builders for specs and trial views: each test states only what it bends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubesweep.api import ExperimentSpec, MetricSummary, TrialPhase, TrialStatus
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


def several_spec(
    directions: tuple[str, ...] = ("minimize", "maximize"),
    constraints: list[dict[str, Any]] | None = None,
    **budget: Any,
) -> ExperimentSpec:
    """A spec optimising ``f0``, ``f1``… in the given directions; ``targets`` sets theirs."""
    targets = budget.pop("targets", {})
    raw: dict[str, Any] = {
        "objectives": [
            {"metric": f"f{i}", "direction": d, **({"target": targets[i]} if i in targets else {})}
            for i, d in enumerate(directions)
        ],
        "algorithm": {"name": "random", "seed": 1},
        "parameters": [{"name": "x", "type": "float", "min": 0, "max": 1}],
        "budget": {"maxTrials": 4, "parallelTrials": 2, **budget},
        "trialTemplate": {
            "primaryContainer": "main",
            "job": {"template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}},
        },
    }
    if constraints is not None:
        raw["constraints"] = constraints
    return ExperimentSpec.model_validate(raw)


def reported(index: int, phase: TrialPhase = TrialPhase.SUCCEEDED, **metrics: float) -> TrialView:
    """Trial ``index`` that reported each metric once (latest = min = max)."""
    summaries = [MetricSummary(name=n, latest=v, min=v, max=v) for n, v in metrics.items()]
    return TrialView(
        name=f"exp-{index}",
        index=index,
        parameters={"x": index / 10},
        status=TrialStatus(
            phase=phase, objective=metrics.get("f0", metrics.get("loss")), metrics=summaries
        ),
    )
