"""Status of Experiments and Trials, following Kubernetes and kstatus conventions.

Status is always derived from children and observations, never the source of
truth for what exists; it is bounded so that an experiment of 100,000 trials
keeps every object far below etcd's size limit: counts instead of lists on the
Experiment, a summary and a downsampled curve on each Trial.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal, overload

from pydantic import (
    ConfigDict,
    Field,
    PlainSerializer,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.dataclasses import dataclass

from kubesweep.api.base import ApiModel
from kubesweep.api.experiment import ParameterValue

#: Points kept in a trial's objective curve; older points are downsampled.
MAX_CURVE_POINTS = 100
#: Metrics kept per trial.
MAX_TRIAL_METRICS = 33
#: A pending trial's reason while its workload waits for a queue to admit it (Kueue
#: suspends a workload until its ClusterQueue has quota for all of it).
QUEUED_REASON = "Queued"


class ConditionType(StrEnum):
    """Condition types; ``Ready``, ``Reconciling`` and ``Stalled`` are kstatus's."""

    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class EndReason(StrEnum):
    """Why an experiment ended; the reason of its ``Succeeded`` or ``Failed`` condition."""

    TARGET_REACHED = "TargetReached"
    MAX_TRIALS_REACHED = "MaxTrialsReached"
    SEARCH_SPACE_EXHAUSTED = "SearchSpaceExhausted"
    MAX_FAILED_TRIALS_REACHED = "MaxFailedTrialsReached"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    MAX_GPU_HOURS_REACHED = "MaxGPUHoursReached"


class Condition(ApiModel):
    """A Kubernetes condition (metav1.Condition)."""

    type: str = Field(max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = Field(default=None, ge=0)


class ExperimentPhase(StrEnum):
    """Coarse lifecycle of an experiment, for printer columns and humans."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class TrialPhase(StrEnum):
    """Lifecycle of one trial."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    EARLY_STOPPED = "EarlyStopped"
    METRICS_UNAVAILABLE = "MetricsUnavailable"

    @property
    def is_finished(self) -> bool:
        """Whether the trial will not run again."""
        return self not in (TrialPhase.PENDING, TrialPhase.RUNNING)


class TrialCounts(ApiModel):
    """How many trials are in each phase; ``created`` is their sum."""

    created: int = 0
    pending: int = Field(default=0, description="Trials not running yet, queued ones included.")
    queued: int = Field(
        default=0,
        description="Of the pending trials, those whose workload waits for a queue to admit "
        "it (Kueue); they hold no GPUs and count toward no deadline of their own.",
    )
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    early_stopped: int = 0
    metrics_unavailable: int = 0
    completed: int = Field(default=0, description="Trials that finished, in any way.")


class BestTrial(ApiModel):
    """The trial with the best objective so far."""

    name: str
    parameters: dict[str, ParameterValue]
    objective: float
    metrics: dict[str, float] = Field(default_factory=dict)
    fidelity: float | None = None


#: Points of the Pareto front kept in an Experiment's status (a well-spread subset past it).
MAX_FRONT_POINTS = 32


class ParetoPoint(ApiModel):
    """One trial of the Pareto front: its name, its value of each objective, its parameters."""

    name: str
    values: dict[str, float] = Field(description="Each objective metric's value.")
    parameters: dict[str, ParameterValue]
    fidelity: float | None = None


class ExperimentStatus(ApiModel):
    """Observed state of an Experiment."""

    observed_generation: int | None = None
    phase: ExperimentPhase = ExperimentPhase.PENDING
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    start_time: datetime | None = None
    completion_time: datetime | None = None
    trials: TrialCounts = Field(default_factory=TrialCounts)
    best_trial: BestTrial | None = None
    gpu_seconds: float = 0.0
    gpu_hours: float = Field(
        default=0.0,
        alias="gpuHours",
        description="GPU-hours of every trial so far (gpuSeconds / 3600), what "
        "spec.budget.maxGPUHours is judged on.",
    )
    pareto_front: list[ParetoPoint] | None = Field(
        default=None,
        max_length=MAX_FRONT_POINTS,
        description="With spec.objectives: the succeeded feasible trials no other beats on "
        f"every objective; past {MAX_FRONT_POINTS} points, a well-spread subset of them.",
    )
    pareto_front_size: int | None = Field(
        default=None, ge=0, description="How many trials the whole Pareto front has."
    )
    best_summary: str | None = Field(
        default=None,
        max_length=512,
        description="The result in a few words, for listings (the Best printer column): "
        "the best trial's objective; with spec.objectives, each objective's best value on "
        "the Pareto front and the front's size.",
    )
    infeasible_trials: int | None = Field(
        default=None,
        ge=0,
        description="With spec.constraints: finished trials that broke a constraint or did "
        "not report a constrained metric; they are never the best trial nor on the front.",
    )
    message: str | None = Field(default=None, max_length=4096)
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="The seed every suggestion request carries: spec.algorithm.seed, or one "
        "drawn when the experiment started and kept from then on. Set it as "
        "spec.algorithm.seed of a new Experiment to repeat this one's search.",
    )

    def condition(self, type_: str) -> Condition | None:
        """The condition of the given type, if present."""
        return next((c for c in self.conditions if c.type == type_), None)


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class MetricSummary:
    """One metric of a trial reduced to the figures that matter."""

    # A slotted dataclass rather than a model, as CurvePoint: every finished Trial
    # of an experiment of 100,000 keeps its summaries in the operator's index,
    # and a model instance (its own dict and fields-set) costs about three times
    # the memory of the values.

    name: str
    latest: float
    min: float
    max: float
    step: int | None = Field(default=None, description="Step of the latest observation.")
    count: int = Field(default=1, ge=1)

    def to_wire(self) -> dict[str, Any]:
        """The summary as Kubernetes stores it (no unset step)."""
        wire: dict[str, Any] = {
            "name": self.name,
            "latest": self.latest,
            "min": self.min,
            "max": self.max,
        }
        if self.step is not None:
            wire["step"] = self.step
        wire["count"] = self.count
        return wire


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class CurvePoint:
    """One point of a trial's objective curve."""

    # A slotted dataclass rather than a model: the operator holds up to
    # MAX_CURVE_POINTS of these for each of thousands of trials, and a model
    # instance costs about five times the memory.

    step: int
    value: float

    def to_wire(self) -> dict[str, Any]:
        """The point as Kubernetes stores it."""
        return {"step": self.step, "value": self.value}


def _point(step: int, value: float) -> CurvePoint:
    """A point read back from a packed curve: its values were validated when it was packed.

    Validating them again would make reading (and writing whole histories) several
    times slower than reading a list.
    """
    point = object.__new__(CurvePoint)
    object.__setattr__(point, "step", step)
    object.__setattr__(point, "value", value)
    return point


class PackedCurve(Sequence[CurvePoint]):
    """A curve that will not change, as two arrays: a finished trial's, in the operator's index.

    Every finished trial of an experiment of 100,000 keeps its curve in the
    operator's index; as a list, each point costs about 80 bytes (the slotted
    point and its float), here 16. It reads as the sequence of its points (each
    made when read), equals any sequence of equal points, and is serialized as
    the list it stands for. Models that hold a curve take one as it is (see
    :data:`Curve`): it is only ever built from points that were validated.
    """

    __slots__ = ("_steps", "_values")

    def __init__(self, points: Iterable[CurvePoint]) -> None:
        """Raises ``OverflowError`` for a step beyond 64 bits (keep such a curve as a list)."""
        steps, values = array("q"), array("d")
        for point in points:
            steps.append(point.step)
            values.append(point.value)
        self._steps = steps
        self._values = values

    def __len__(self) -> int:
        return len(self._steps)

    @overload
    def __getitem__(self, position: int) -> CurvePoint: ...

    @overload
    def __getitem__(self, position: slice) -> list[CurvePoint]: ...

    def __getitem__(self, position: int | slice) -> CurvePoint | list[CurvePoint]:
        if isinstance(position, slice):
            return list(map(_point, self._steps[position], self._values[position]))
        return _point(self._steps[position], self._values[position])

    def __iter__(self) -> Iterator[CurvePoint]:
        return map(_point, self._steps, self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedCurve):
            return self._steps == other._steps and self._values == other._values
        if isinstance(other, list | tuple):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which have none

    def __repr__(self) -> str:
        return f"PackedCurve({list(self)!r})"


def _curve_as_is(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    return value if isinstance(value, PackedCurve) else handler(value)


def _curve_points(value: Sequence[CurvePoint]) -> list[CurvePoint]:
    # Serialized as the list of its points is (so a NaN stays a float in JSON mode).
    return value if isinstance(value, list) else list(value)


if TYPE_CHECKING:
    #: A curve field, read as a sequence of points: a list or a :class:`PackedCurve`.
    Curve = Sequence[CurvePoint]
else:
    # At run time a list from the wire (validated as one: pydantic validates a
    # list in its core, a Sequence point by point in Python, several times slower
    # on a 100,000-trial history), or a PackedCurve kept as it is.
    Curve = Annotated[
        list[CurvePoint],
        WrapValidator(_curve_as_is),
        PlainSerializer(_curve_points, return_type=list[CurvePoint]),
    ]


class TrialStatus(ApiModel):
    """Observed state of a Trial."""

    observed_generation: int | None = None
    phase: TrialPhase = TrialPhase.PENDING
    reason: str | None = Field(default=None, max_length=1024)
    message: str | None = Field(default=None, max_length=4096)
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    start_time: datetime | None = None
    completion_time: datetime | None = None
    objective: float | None = None
    metrics: list[MetricSummary] = Field(default_factory=list, max_length=MAX_TRIAL_METRICS)
    curve: Curve = Field(default_factory=list, max_length=MAX_CURVE_POINTS)
    gpu_seconds: float = 0.0
