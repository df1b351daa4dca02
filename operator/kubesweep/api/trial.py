"""The ``Trial`` resource: one configuration of an experiment, run as one Job."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from kubesweep.api.base import ApiModel
from kubesweep.api.experiment import ParameterValue
from kubesweep.api.status import TrialStatus

GROUP = "kubesweep.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class ObjectMeta(ApiModel):
    """The parts of Kubernetes object metadata kubesweep reads; others pass through."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_references: list[dict[str, Any]] = Field(default_factory=list)


class TrialSpec(ApiModel):
    """What the suggestion service chose for this trial."""

    experiment: str = Field(description="Name of the owning Experiment.")
    index: int = Field(ge=0, description="Position in the experiment; also the name suffix.")
    parameters: dict[str, ParameterValue] = Field(max_length=64)
    fidelity: float | None = Field(
        default=None, description="Budget of a multi-fidelity algorithm (epochs, trees, ...)."
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        max_length=16,
        description="Bookkeeping of the algorithm that suggested it (bracket, rung, parent).",
    )
    parent: str | None = Field(
        default=None,
        max_length=253,
        description="The trial whose training this one continues; with "
        "trialTemplate.checkpoints it resumes from that trial's checkpoint.",
    )
    perturbation: str | None = Field(
        default=None,
        max_length=1024,
        description="How the parameters differ from the parent's (pbt's explore step).",
    )


class Trial(ApiModel):
    """A trial as stored in the cluster."""

    api_version: Literal["kubesweep.io/v1alpha1"] = "kubesweep.io/v1alpha1"
    kind: Literal["Trial"] = "Trial"
    metadata: ObjectMeta
    spec: TrialSpec
    status: TrialStatus | None = None


def trial_name(experiment: str, index: int) -> str:
    """The deterministic name of an experiment's ``index``-th trial."""
    return f"{experiment}-{index}"
