"""The suggestion service's requests and replies, as typed models.

These bodies are the one wire between the operator (and ``kubesweep run``) and
the algorithms: the planner builds the requests, the service validates them, the
algorithms answer with the replies, and the operator's client parses them. They
live here, among the API models, so that every side shares one definition
without the algorithms' numeric dependencies (no numpy): the operator imports
them, and the OpenAPI document of the service is generated from them (see
:mod:`kubesweep.suggestion.openapi`), so the published contract, the server and
its callers cannot drift apart. Class docstrings and field descriptions are that
document's descriptions.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from kubesweep.api.base import ApiModel
from kubesweep.api.experiment import (
    Algorithm,
    Direction,
    EarlyStopping,
    Fidelity,
    Parameter,
    ParameterValue,
)
from kubesweep.api.status import Curve


class TrialState(StrEnum):
    """What the algorithm knows of a trial."""

    PENDING = "pending"  # suggested, not finished: its point is taken but has no value yet
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"  # stopped early; its last intermediate value is its value


class ObservedTrial(ApiModel):
    """One trial of the history, as the algorithm sees it."""

    name: str = Field(min_length=1, max_length=253)
    parameters: dict[str, ParameterValue] = Field(max_length=64)
    fidelity: float | None = None
    state: TrialState
    value: float | None = Field(default=None, description="Final objective, if any.")
    intermediate: Curve = Field(
        default_factory=list, description="Objective by step (epoch, fidelity unit)."
    )
    tags: dict[str, str] = Field(default_factory=dict, max_length=16)
    values: list[float] | None = Field(
        default=None,
        min_length=2,
        max_length=4,
        description="With several objectives: the trial's final value of each, in the order "
        "of the request's objectives (value is the first).",
    )
    feasible: bool | None = Field(
        default=None,
        description="With constraints: whether the trial reported every constrained metric "
        "within its bounds; absent without constraints or without a result.",
    )
    violation: float | None = Field(
        default=None,
        ge=0,
        description="With constraints: how far the constrained metrics lie outside their "
        "bounds, summed (0 when feasible); absent when a constrained metric is missing.",
    )


#: Field descriptions of the incremental history (docs/suggestion-service.md#incremental-history).
HISTORY_BASE = (
    "The `history` of an earlier reply for this experimentUid: `trials` then holds only the "
    "trials that are new, or that changed, since that history (a trial with a known name "
    "replaces it; new names follow in order). A replica that does not hold that history "
    "answers 409 (HistoryNeeded), and the client sends the whole history once. Absent: "
    "`trials` is the whole history."
)
HOLD_HISTORY = (
    "Ask the replica to hold this history (with an experimentUid) and answer its token as "
    "`history`, for the next request to build on; without it no `history` is answered, as "
    "for clients that predate it."
)
HISTORY = (
    "The token of the history this reply was computed from, held by the replica that "
    "answered (with an experimentUid only): send it as the next request's `historyBase` "
    "with only the trials new or changed since."
)


class SearchSpace(ApiModel):
    """The parameters to search, and the fidelity of multi-fidelity algorithms."""

    parameters: list[Parameter] = Field(min_length=1, max_length=64)
    fidelity: Fidelity | None = None


class SuggestRequest(ApiModel):
    """Ask for ``count`` new assignments given the history."""

    experiment_uid: str | None = Field(
        default=None, max_length=128, description="Key of the optional model cache."
    )
    space: SearchSpace
    direction: Direction = Direction.MINIMIZE
    objectives: list[Direction] | None = Field(
        default=None,
        min_length=2,
        max_length=4,
        description="With several objectives: the direction of each, in the order of each "
        "trial's values; only algorithms that search several objectives accept it.",
    )
    algorithm: Algorithm = Field(default_factory=Algorithm)
    trials: list[ObservedTrial] = Field(default_factory=list)
    count: int = Field(default=1, ge=1, le=1000)
    history_base: str | None = Field(default=None, max_length=128, description=HISTORY_BASE)
    hold_history: bool = Field(default=False, description=HOLD_HISTORY)


class Assignment(ApiModel):
    """One suggested configuration."""

    parameters: dict[str, ParameterValue]
    fidelity: float | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    parent: str | None = Field(
        default=None,
        max_length=253,
        description="The trial whose training this one continues (a promotion's lower-rung "
        "trial, a pbt step's source): with checkpoints, it resumes from that trial's checkpoint.",
    )
    perturbation: str | None = Field(
        default=None,
        max_length=1024,
        description="How the parameters differ from the parent's (pbt's explore step), "
        "e.g. 'lr x1.2; batch resampled'.",
    )


class SuggestReply(ApiModel):
    """New assignments; ``exhausted`` when the space can give no more, ever."""

    assignments: list[Assignment]
    exhausted: bool = False
    history: str | None = Field(default=None, max_length=128, description=HISTORY)


class StopRequest(ApiModel):
    """Ask which running trials should stop."""

    experiment_uid: str | None = Field(default=None, max_length=128)
    space: SearchSpace
    direction: Direction = Direction.MINIMIZE
    algorithm: Algorithm = Field(default_factory=Algorithm)
    early_stopping: EarlyStopping | None = None
    trials: list[ObservedTrial] = Field(default_factory=list)
    history_base: str | None = Field(default=None, max_length=128, description=HISTORY_BASE)
    hold_history: bool = Field(default=False, description=HOLD_HISTORY)


class StopDecision(ApiModel):
    """A running trial to stop, and why (shown to the user)."""

    name: str
    reason: str


class StopReply(ApiModel):
    """The running trials to stop."""

    stop: list[StopDecision] = Field(default_factory=list)
    history: str | None = Field(default=None, max_length=128, description=HISTORY)


class ValidateRequest(ApiModel):
    """A search space with the algorithm and stopping rule meant to search it."""

    space: SearchSpace
    algorithm: Algorithm = Field(default_factory=Algorithm)
    early_stopping: EarlyStopping | None = None


class ValidateReply(ApiModel):
    """Whether the algorithm accepts the space and its settings, and if not, why."""

    valid: bool
    problems: list[str] = Field(
        default_factory=list, description="One 'field.path: message' line per problem."
    )


class ErrorReply(ApiModel):
    """The body of every 4xx and 5xx reply."""

    error: str = Field(description="What went wrong, in one sentence.")
    problems: list[str] = Field(
        default_factory=list,
        description="One 'field.path: message' line per problem, naming the field at fault.",
    )


class HistoryNeededReply(ApiModel):
    """The body of a 409: the replica does not hold the history a request builds on."""

    error: str = Field(description="What is missing, in one sentence.")
    history_needed: Literal[True] = Field(
        default=True, description="Always true: send the request again with the whole history."
    )


class HealthReply(ApiModel):
    """The body of the health and readiness probes."""

    status: Literal["ok", "starting", "draining"]
