"""The ``Experiment`` spec: what to search, how, with which budget, running what.

Every cross-field rule of the contract is a :class:`~kubesweep.api.base.Rule` on
the model it concerns, so the CRD and local validation can never disagree on
what a valid Experiment is. Limits on list and string sizes exist because the API
server bounds the cost of CEL rules by them, and because an Experiment must stay
far below etcd's object size limit.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from kubesweep.api.base import ApiModel, Rule, TransitionRule
from kubesweep.api.checkpoints import Checkpoints
from kubesweep.api.metric_kinds import Direction as Direction  # noqa: PLC0414 (re-exported)
from kubesweep.api.metric_kinds import Strategy as Strategy  # noqa: PLC0414 (re-exported)
from kubesweep.api.objectives import (
    MAX_CONSTRAINTS,
    MAX_OBJECTIVES,
    MIN_OBJECTIVES,
    Constraint,
    ObjectiveMetric,
)

#: A parameter's value: what an algorithm suggests and a trial receives.
ParameterValue = bool | int | float | str

MAX_PARAMETERS = 64
MAX_CATEGORIES = 256
MAX_NAME_LENGTH = 63
PARAMETER_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"

ShortName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
ParameterName = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=PARAMETER_NAME_PATTERN)
]


class AlgorithmName(StrEnum):
    """The search algorithms the suggestion service implements."""

    GRID = "grid"
    RANDOM = "random"
    SOBOL = "sobol"
    BAYESIAN = "bayesian"
    TPE = "tpe"
    HYPERBAND = "hyperband"
    ASHA = "asha"
    BOHB = "bohb"
    CMAES = "cmaes"
    PBT = "pbt"
    NSGA2 = "nsga2"


#: Algorithms that search several objectives (``spec.objectives``): those that compare
#: trials by Pareto dominance, and those that never compare trials at all.
MULTI_OBJECTIVE_ALGORITHMS = frozenset(
    {
        AlgorithmName.NSGA2,
        AlgorithmName.TPE,
        AlgorithmName.RANDOM,
        AlgorithmName.SOBOL,
        AlgorithmName.GRID,
    }
)

#: Algorithms that assign each trial a fidelity budget. Population Based Training is
#: one: its steps train a lineage interval by interval up to ``fidelity.max``.
MULTI_FIDELITY_NAMES = ("hyperband", "asha", "bohb", "pbt")
MULTI_FIDELITY_ALGORITHMS = frozenset(AlgorithmName(name) for name in MULTI_FIDELITY_NAMES)
#: The same names as a CEL list literal, for the CRD's rules.
_MULTI_FIDELITY_CEL = "[" + ", ".join(f"'{name}'" for name in MULTI_FIDELITY_NAMES) + "]"


def multi_fidelity_words(conjunction: str) -> str:
    """The multi-fidelity algorithms as words for a message: ``a, b, c and d``."""
    return f"{', '.join(MULTI_FIDELITY_NAMES[:-1])} {conjunction} {MULTI_FIDELITY_NAMES[-1]}"


class EarlyStoppingName(StrEnum):
    """Rules that stop unpromising running trials."""

    MEDIAN = "median"


class ParameterType(StrEnum):
    """The kinds of search-space dimension."""

    FLOAT = "float"
    INT = "int"
    CATEGORICAL = "categorical"


class MetricsSource(StrEnum):
    """Where the collector sidecar reads a trial's metrics from."""

    STDOUT = "stdout"
    FILE = "file"
    JSON = "json"
    TFEVENT = "tfevent"
    PROMETHEUS = "prometheus"
    PUSH = "push"


SettingValue = bool | int | float | str

_PATH_SOURCES = frozenset({MetricsSource.FILE, MetricsSource.JSON, MetricsSource.TFEVENT})


class Objective(ApiModel):
    """The metric a sweep optimises, and the ones it records beside it."""

    metric: ShortName
    direction: Direction
    target: float | None = Field(
        default=None, description="End the experiment once a trial's objective reaches this."
    )
    strategy: Strategy | None = Field(
        default=None,
        description="How the objective's series reduces to one value; defaults to the "
        "direction (min for minimize, max for maximize).",
    )
    additional_metrics: list[ShortName] = Field(default_factory=list, max_length=32)
    metric_strategies: dict[str, Strategy] = Field(
        default_factory=dict,
        max_length=32,
        description="Reduction per additional metric; latest unless named here.",
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.additionalMetrics) || !(self.metric in self.additionalMetrics)",
            message="objective.additionalMetrics must not repeat objective.metric; remove it",
            check=lambda o: o.metric not in o.additional_metrics,
            field_path=".additionalMetrics",
        ),
    )

    @property
    def objective_strategy(self) -> Strategy:
        """The reduction of the objective metric, with the direction as default."""
        if self.strategy is not None:
            return self.strategy
        return Strategy.MIN if self.direction is Direction.MINIMIZE else Strategy.MAX

    def strategy_for(self, metric: str) -> Strategy:
        """The reduction used for ``metric``."""
        if metric == self.metric:
            return self.objective_strategy
        return self.metric_strategies.get(metric, Strategy.LATEST)

    @property
    def metric_names(self) -> list[str]:
        """The objective first, then the additional metrics."""
        return [self.metric, *self.additional_metrics]


class Algorithm(ApiModel):
    """Which search algorithm suggests trials, and its settings."""

    name: AlgorithmName = AlgorithmName.RANDOM
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    settings: dict[str, SettingValue] = Field(
        default_factory=dict,
        max_length=32,
        description="Algorithm settings; each algorithm lists its own and refuses others.",
    )


class EarlyStopping(ApiModel):
    """A rule that stops running trials that are unlikely to win."""

    name: EarlyStoppingName = EarlyStoppingName.MEDIAN
    settings: dict[str, SettingValue] = Field(default_factory=dict, max_length=32)


class ActivationCondition(ApiModel):
    """Makes a parameter active only while another parameter takes one of some values."""

    parameter: ParameterName
    values: list[ParameterValue] = Field(min_length=1, max_length=MAX_CATEGORIES)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Parameter(ApiModel):
    """One dimension of the search space."""

    name: ParameterName
    type: ParameterType
    min: float | None = None
    max: float | None = None
    log: bool = False
    step: float | None = Field(default=None, gt=0)
    values: list[ParameterValue] | None = Field(
        default=None, min_length=1, max_length=MAX_CATEGORIES
    )
    when: ActivationCondition | None = None

    # CEL cannot read ``values`` (a list of any scalars has no CEL type), so the two
    # rules about it are schema alternatives: a categorical parameter with values,
    # or a number without them. The API server then names ``values`` or ``type``.
    structural_rules: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {"properties": {"type": {"enum": ["categorical"]}}, "required": ["values"]},
            {"properties": {"type": {"enum": ["float", "int"]}}, "not": {"required": ["values"]}},
        ]
    }

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=None,
            message="parameters[].values: a categorical parameter needs a non-empty values list",
            check=lambda p: p.type is not ParameterType.CATEGORICAL or bool(p.values),
            field_path=".values",
        ),
        Rule(
            cel="self.type == 'categorical' || (has(self.min) && has(self.max))",
            message="parameters[].min and max: a float or int parameter needs both bounds",
            check=lambda p: (
                p.type is ParameterType.CATEGORICAL or (p.min is not None and p.max is not None)
            ),
            field_path=".min",
        ),
        Rule(
            cel=None,
            message="parameters[].values: only a categorical parameter takes values; "
            "use min and max (and step) for numbers",
            check=lambda p: p.type is ParameterType.CATEGORICAL or p.values is None,
            field_path=".values",
        ),
        # min == max is allowed: a one-value range is a constant, which every
        # algorithm proposes (a sweep can pin a parameter without a new manifest shape).
        Rule(
            cel="!has(self.min) || !has(self.max) || self.min <= self.max",
            message="parameters[].max must be greater than min or equal to it (a constant); "
            "swap the bounds",
            check=lambda p: p.min is None or p.max is None or p.min <= p.max,
            field_path=".max",
        ),
        Rule(
            cel="!self.log || (has(self.min) && self.min > 0.0)",
            message="parameters[].min must be positive when log is true; raise min above 0 "
            "or set log: false",
            check=lambda p: not p.log or (p.min is not None and p.min > 0),
            field_path=".log",
        ),
        Rule(
            cel="self.type != 'categorical' || (!self.log && !has(self.step))",
            message="parameters[].log and step apply to numbers only; remove them from a "
            "categorical parameter",
            check=lambda p: (
                p.type is not ParameterType.CATEGORICAL or (not p.log and p.step is None)
            ),
            field_path=".type",
        ),
        Rule(
            cel="self.type != 'int' || ((!has(self.min) || self.min == double(int(self.min)))"
            " && (!has(self.max) || self.max == double(int(self.max))))",
            message="parameters[].min and max of an int parameter must be whole numbers",
            check=lambda p: (
                p.type is not ParameterType.INT
                or all(v is None or float(v).is_integer() for v in (p.min, p.max))
            ),
            field_path=".min",
        ),
    )

    @field_validator("values")
    @classmethod
    def _distinct_values(cls, values: list[ParameterValue] | None) -> list[ParameterValue] | None:
        if values is not None:
            keys = [(type(v).__name__, v) for v in values]
            if len(set(keys)) != len(keys):
                raise ValueError("values must be distinct")
        return values

    @property
    def is_numeric(self) -> bool:
        """Whether the dimension is a number range rather than a set of categories."""
        return self.type is not ParameterType.CATEGORICAL

    @property
    def low(self) -> float:
        """The lower bound of a numeric parameter."""
        if self.min is None:
            raise ValueError(f"parameter {self.name} has no min")
        return self.min

    @property
    def high(self) -> float:
        """The upper bound of a numeric parameter."""
        if self.max is None:
            raise ValueError(f"parameter {self.name} has no max")
        return self.max

    def contains(self, value: object) -> bool:
        """Whether ``value`` is a valid assignment of this parameter."""
        if self.type is ParameterType.CATEGORICAL:
            return any(type(value) is type(v) and value == v for v in self.values or ())
        if not _is_number(value):
            return False
        assert isinstance(value, int | float)
        if self.type is ParameterType.INT and not float(value).is_integer():
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is not None:
            offset = (value - self.low) / self.step
            return abs(offset - round(offset)) < 1e-6
        return True


class Fidelity(ApiModel):
    """The resource a multi-fidelity algorithm hands out: epochs, trees, data fraction."""

    parameter: ParameterName
    min: float = Field(gt=0)
    max: float
    eta: float = Field(default=3.0, ge=2)
    type: Literal["int", "float"] = "int"

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.min < self.max",
            message="fidelity.max must be greater than fidelity.min",
            check=lambda f: f.min < f.max,
            field_path=".max",
        ),
    )


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration such as ``6h``, ``1h30m`` or ``90s``."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}; use forms like 30m, 6h or 1h30m")
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    seconds = sum(
        float(number) * units[unit]
        for number, _, unit in re.findall(r"([0-9]+(\.[0-9]+)?)(ms|s|m|h)", text)
    )
    return timedelta(seconds=seconds)


class Budget(ApiModel):
    """When the sweep ends and how wide it runs. Editable after creation."""

    max_trials: int = Field(default=10, ge=1, le=1_000_000)
    parallel_trials: int = Field(default=1, ge=1, le=10_000)
    max_failed_trials: int | None = Field(
        default=None, ge=0, description="End the experiment as Failed after this many failures."
    )
    max_duration: str | None = Field(
        default=None, pattern=DURATION_PATTERN, max_length=32, description="e.g. 30m, 6h, 1h30m"
    )
    max_gpu_hours: float | None = Field(
        default=None,
        alias="maxGPUHours",
        gt=0,
        description="End the experiment once its trials have used this many GPU-hours: every "
        "pod's GPUs times its running time, over every trial.",
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.parallelTrials <= self.maxTrials",
            message="budget.parallelTrials must not exceed budget.maxTrials; lower "
            "parallelTrials or raise maxTrials",
            check=lambda b: b.parallel_trials <= b.max_trials,
            field_path=".parallelTrials",
        ),
    )

    @property
    def duration(self) -> timedelta | None:
        """``max_duration`` as a timedelta."""
        return None if self.max_duration is None else parse_duration(self.max_duration)


class MetricsCollection(ApiModel):
    """How the collector sidecar finds the primary container's metrics."""

    source: MetricsSource = MetricsSource.STDOUT
    path: str | None = Field(
        default=None,
        max_length=1024,
        description="File (file, json) or directory (tfevent) the trainer writes.",
    )
    filters: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Regular expressions with groups 'name' and 'value' (or two groups) "
        "that pick metrics out of text lines; the default reads name=value pairs.",
    )
    port: int | None = Field(default=None, ge=1, le=65535)
    scrape_path: str = Field(default="/metrics", max_length=256)
    interval_seconds: float = Field(default=10.0, gt=0, le=3600)

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!(self.source in ['file', 'json', 'tfevent']) || has(self.path)",
            message="trialTemplate.metrics.path is required for the file, json and tfevent "
            "sources; name the file or directory the trainer writes",
            check=lambda m: m.source not in _PATH_SOURCES or m.path is not None,
            field_path=".path",
        ),
        Rule(
            cel="self.source != 'prometheus' || has(self.port)",
            message="trialTemplate.metrics.port is required for the prometheus source",
            check=lambda m: m.source is not MetricsSource.PROMETHEUS or m.port is not None,
            field_path=".port",
        ),
    )

    @field_validator("filters")
    @classmethod
    def _filters_compile(cls, filters: list[str]) -> list[str]:
        for pattern in filters:
            try:
                compiled = re.compile(pattern)
            except re.error as error:
                raise ValueError(
                    f"filter {pattern!r} is not a regular expression: {error}"
                ) from None
            if compiled.groups < 2:
                raise ValueError(f"filter {pattern!r} needs two groups: the name and the value")
        return filters


LabelValue = Annotated[str, Field(max_length=253)]


class ReportingPod(ApiModel):
    """Which pod of a multi-pod trial reports the metrics: the one whose labels match.

    Every pod of a trial has a collector, but only this pod's series is the
    trial's. Entries are added to the workload kind's own rule and win a clash:
    a Job's pod of completion index 0 (``batch.kubernetes.io/job-completion-index``).
    """

    match_labels: dict[str, LabelValue] = Field(
        default_factory=dict, max_length=8, description="Pod labels and their values."
    )
    match_annotations: dict[str, LabelValue] = Field(
        default_factory=dict, max_length=8, description="Pod annotations and their values."
    )


def _int_field(spec: dict[str, Any], name: str) -> int:
    value = spec.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def runs_several_pods(job: dict[str, Any]) -> bool:
    """Whether a JobSpec runs more than one pod (parallelism or completions above 1)."""
    return _int_field(job, "parallelism") > 1 or _int_field(job, "completions") > 1


def _pod_container_names(pod_template: Any) -> list[str]:
    if not isinstance(pod_template, dict):
        return []
    containers = (pod_template.get("spec") or {}).get("containers") or []
    return [str(c.get("name")) for c in containers if isinstance(c, dict)]


def _check_pod_template(pod_template: Any, field: str) -> None:
    """A pod template needs named containers and a restartPolicy a Job accepts."""
    spec = pod_template.get("spec") if isinstance(pod_template, dict) else None
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers:
        raise ValueError(f"{field}.spec.containers must list at least one container")
    for index, container in enumerate(containers):
        if not isinstance(container, dict) or not isinstance(container.get("name"), str):
            raise ValueError(f"{field}.spec.containers[{index}].name is required")
    assert isinstance(spec, dict)
    if spec.get("restartPolicy", "Never") not in ("Never", "OnFailure"):
        raise ValueError(f"{field}.spec.restartPolicy must be Never or OnFailure")


#: A field of a workload's status, e.g. ``status.phase``.
STATUS_FIELD_PATTERN = r"^status(\.[A-Za-z0-9_-]+){1,3}$"
#: Where a pod template is in a custom resource's spec, e.g. ``replicaSpecs.Worker.template``.
SPEC_PATH_PATTERN = r"^[A-Za-z0-9_-]+(\[[0-9]+\])*(\.[A-Za-z0-9_-]+(\[[0-9]+\])*)*$"
API_VERSION_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]+$"
KIND_PATTERN = r"^[A-Z][A-Za-z0-9]*$"


class StatusMatch(ApiModel):
    """How a custom resource's status says it ended one way: a condition, or a field's value."""

    condition: ShortName | None = Field(
        default=None,
        description="A condition type, e.g. Succeeded, that ends it when it has the status below.",
    )
    status: Literal["True", "False"] = Field(
        default="True",
        description="The condition's status that counts (Tekton fails with Succeeded=False).",
    )
    field: str | None = Field(
        default=None,
        pattern=STATUS_FIELD_PATTERN,
        max_length=256,
        description="A status field, e.g. status.phase, that ends it when it takes one of values.",
    )
    values: list[Annotated[str, Field(max_length=63)]] = Field(default_factory=list, max_length=16)

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.condition) != has(self.field)",
            message="trialTemplate.resource success and failure each need either condition or "
            "field (with values), not both",
            check=lambda m: (m.condition is None) != (m.field is None),
        ),
        Rule(
            cel="!has(self.field) || size(self.values) > 0",
            message="trialTemplate.resource: a status field needs values, the ones that match",
            check=lambda m: m.field is None or bool(m.values),
            field_path=".values",
        ),
    )


class ResourceTemplate(ApiModel):
    """Any namespaced custom resource as a trial's workload, and how to read its outcome."""

    api_version: str = Field(pattern=API_VERSION_PATTERN, max_length=253)
    kind: str = Field(pattern=KIND_PATTERN, max_length=63)
    spec: dict[str, Any] = Field(
        description="The resource's spec; placeholders are substituted in every string of it."
    )
    pod_templates: list[Annotated[str, Field(pattern=SPEC_PATH_PATTERN, max_length=256)]] = Field(
        min_length=1,
        max_length=16,
        description="Where the resource's pod templates (PodTemplateSpecs) are in spec, e.g. "
        "pytorchReplicaSpecs.Worker.template; each gets the collector and the assignment.",
    )
    success: StatusMatch
    failure: StatusMatch

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!self.apiVersion.startsWith('batch/') && "
            "!self.apiVersion.startsWith('jobset.x-k8s.io/')",
            message="trialTemplate.resource: use trialTemplate.job for a Job and "
            "trialTemplate.jobSet for a JobSet",
            check=lambda r: not r.api_version.startswith(("batch/", "jobset.x-k8s.io/")),
            field_path=".apiVersion",
        ),
    )


#: The replicated Jobs of a JobSetSpec, in CEL.
_REPLICATED_JOBS = "self.jobSet.replicatedJobs"


class TrialTemplate(ApiModel):
    """What each trial runs: one workload (a Job, a JobSet, a custom resource) and its metrics."""

    primary_container: ShortName
    metrics: MetricsCollection = Field(default_factory=MetricsCollection)
    job: dict[str, Any] | None = Field(
        default=None, description="A batch/v1 JobSpec; placeholders are substituted."
    )
    job_set: dict[str, Any] | None = Field(
        default=None,
        alias="jobSet",
        description="A jobset.x-k8s.io/v1alpha2 JobSetSpec, for a trial of several pods "
        "(e.g. workers x GPUs); placeholders are substituted in every pod template.",
    )
    queue_name: str | None = Field(
        default=None, max_length=253, description="Kueue LocalQueue the trial Jobs are sent to."
    )
    retries: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Retries within a trial: a Job's backoffLimit, a JobSet's "
        "failurePolicy.maxRestarts.",
    )
    resource: ResourceTemplate | None = Field(
        default=None,
        description="Any namespaced custom resource as the workload, for kinds other than Job "
        "and JobSet; a platform team enables its kind.",
    )
    checkpoints: Checkpoints | None = Field(
        default=None,
        description="Where trials write checkpoints and find their parent's (a promotion, a "
        "pbt step): a PersistentVolumeClaim mounted at a path, or an object-store prefix.",
    )
    reporting_pod: ReportingPod | None = Field(
        default=None,
        description="Which pod of a multi-pod trial reports the metrics; default: the pod of "
        "completion index 0 (of the first replicated Job's Job 0, for a JobSet). Required "
        "with resource.",
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="(has(self.job) ? 1 : 0) + (has(self.jobSet) ? 1 : 0) + "
            "(has(self.resource) ? 1 : 0) == 1",
            message="trialTemplate needs exactly one workload: job, jobSet or resource",
            check=lambda t: sum(w is not None for w in (t.job, t.job_set, t.resource)) == 1,
        ),
        Rule(
            cel="!has(self.resource) || has(self.reportingPod)",
            message="trialTemplate.reportingPod is required with trialTemplate.resource: name "
            "the labels of the pod whose metrics are the trial's ({} for a single-pod resource)",
            check=lambda t: t.resource is None or t.reporting_pod is not None,
            field_path=".resource",
        ),
        Rule(
            cel="!has(self.job) || "
            "self.job.template.spec.containers.exists(c, c.name == self.primaryContainer)",
            message="trialTemplate.primaryContainer must name a container of "
            "trialTemplate.job.template.spec.containers",
            check=lambda t: t.job is None or t.primary_container in t.container_names,
            field_path=".primaryContainer",
        ),
        Rule(
            cel=f"!has(self.jobSet) || {_REPLICATED_JOBS}.exists(r, "
            "r.template.spec.template.spec.containers.exists(c, c.name == self.primaryContainer))",
            message="trialTemplate.primaryContainer must name a container of a pod template "
            "of trialTemplate.jobSet.replicatedJobs",
            check=lambda t: t.job_set is None or t.primary_container in t.container_names,
            field_path=".primaryContainer",
        ),
        Rule(
            cel=f"!has(self.jobSet) || {_REPLICATED_JOBS}.all(r, "
            f"{_REPLICATED_JOBS}.exists_one(q, q.name == r.name))",
            message="trialTemplate.jobSet.replicatedJobs[].name must be unique",
            check=lambda t: t.job_set is None or _unique(t.replicated_job_names),
            field_path=".jobSet.replicatedJobs",
        ),
        Rule(
            cel=f"!has(self.jobSet) || {_REPLICATED_JOBS}.all(r, "
            "!has(r.template.spec.completionMode) || "
            "r.template.spec.completionMode == 'Indexed' || "
            "!((has(r.template.spec.parallelism) && r.template.spec.parallelism > 1) || "
            "(has(r.template.spec.completions) && r.template.spec.completions > 1)))",
            message="trialTemplate.jobSet.replicatedJobs[].template.spec.completionMode must be "
            "Indexed (or left out) for a Job of several pods, so that one pod can report the "
            "objective",
            check=lambda t: all(
                spec.get("completionMode") in (None, "Indexed") or not runs_several_pods(spec)
                for spec in t.replicated_job_specs
            ),
            field_path=".jobSet.replicatedJobs",
        ),
    )

    @field_validator("job")
    @classmethod
    def _job_has_containers(cls, job: dict[str, Any] | None) -> dict[str, Any] | None:
        if job is not None:
            _check_pod_template(job.get("template"), "job.template")
        return job

    @field_validator("job_set")
    @classmethod
    def _jobset_has_pod_templates(cls, job_set: dict[str, Any] | None) -> dict[str, Any] | None:
        if job_set is None:
            return None
        replicated = job_set.get("replicatedJobs")
        if not isinstance(replicated, list) or not replicated:
            raise ValueError("jobSet.replicatedJobs must list at least one replicated Job")
        for index, job in enumerate(replicated):
            field = f"jobSet.replicatedJobs[{index}]"
            if not isinstance(job, dict) or not isinstance(job.get("name"), str):
                raise ValueError(f"{field}.name is required")
            job_spec = (job.get("template") or {}).get("spec")
            if not isinstance(job_spec, dict):
                raise ValueError(f"{field}.template.spec is required (a JobSpec)")
            _check_pod_template(job_spec.get("template"), f"{field}.template.spec.template")
        return job_set

    @property
    def replicated_job_specs(self) -> list[dict[str, Any]]:
        """The JobSpec of each replicated Job of a JobSet template (none for a Job)."""
        if self.job_set is None:
            return []
        return [r["template"]["spec"] for r in self.job_set["replicatedJobs"]]

    @property
    def replicated_job_names(self) -> list[str]:
        """The names of a JobSet template's replicated Jobs."""
        if self.job_set is None:
            return []
        return [str(r["name"]) for r in self.job_set["replicatedJobs"]]

    @property
    def container_names(self) -> list[str]:
        """Names of the containers of every pod template."""
        if self.job is not None:
            return _pod_container_names(self.job.get("template"))
        return [
            name
            for spec in self.replicated_job_specs
            for name in _pod_container_names(spec.get("template"))
        ]


def _unique(names: list[str]) -> bool:
    return len(set(names)) == len(names)


def _names(names: set[AlgorithmName] | frozenset[AlgorithmName], last: str = "and") -> str:
    ordered = [n.value for n in sorted(names)]
    return f"{', '.join(ordered[:-1])} {last} {ordered[-1]}" if len(ordered) > 1 else ordered[0]


def _cel_list(names: frozenset[AlgorithmName]) -> str:
    return "[" + ", ".join(f"'{n.value}'" for n in sorted(names)) + "]"


class ExperimentSpec(ApiModel):
    """Everything a user states about a sweep."""

    # Stored as ``objective``; read it through :attr:`objective`, which also stands for
    # ``objectives`` so that code about one objective metric needs no second path.
    declared_objective: Objective | None = Field(
        default=None,
        alias="objective",
        description="The metric the sweep optimises; use objectives for several.",
    )
    objectives: list[ObjectiveMetric] | None = Field(
        default=None,
        min_length=MIN_OBJECTIVES,
        max_length=MAX_OBJECTIVES,
        description="Two to four metrics optimised together; the result is their Pareto "
        "front. Not with objective.",
    )
    constraints: list[Constraint] | None = Field(
        default=None,
        max_length=MAX_CONSTRAINTS,
        description="Metrics a trial must keep within bounds to count (to be feasible).",
    )
    algorithm: Algorithm = Field(default_factory=Algorithm)
    early_stopping: EarlyStopping | None = None
    parameters: list[Parameter] = Field(min_length=1, max_length=MAX_PARAMETERS)
    fidelity: Fidelity | None = None
    budget: Budget = Field(default_factory=Budget)
    trial_template: TrialTemplate

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!(has(self.objective) && has(self.objectives))",
            message="objectives and objective cannot both be set; keep objectives for several "
            "metrics, or objective for one",
            check=lambda s: s.declared_objective is None or s.objectives is None,
            field_path=".objectives",
        ),
        Rule(
            cel="has(self.objective) || has(self.objectives)",
            message="objective is required (or objectives, for two to four metrics)",
            check=lambda s: s.declared_objective is not None or s.objectives is not None,
            field_path=".objective",
        ),
        Rule(
            cel="!has(self.objectives) || "
            "self.objectives.all(o, self.objectives.exists_one(q, q.metric == o.metric))",
            message="objectives[].metric must be unique; remove the repeated metric",
            check=lambda s: s.objectives is None or _unique([o.metric for o in s.objectives]),
            field_path=".objectives",
        ),
        Rule(
            cel="!has(self.objectives) || self.algorithm.name in "
            f"{_cel_list(MULTI_OBJECTIVE_ALGORITHMS)}",
            message=f"{_names(set(AlgorithmName) - MULTI_OBJECTIVE_ALGORITHMS)} "
            "search one objective only; with several objectives set algorithm.name to "
            f"{_names(MULTI_OBJECTIVE_ALGORITHMS, 'or')}, or use objective",
            check=lambda s: s.objectives is None or s.algorithm.name in MULTI_OBJECTIVE_ALGORITHMS,
            field_path=".objectives",
        ),
        Rule(
            cel="!has(self.objectives) || !has(self.earlyStopping)",
            message="earlyStopping compares trials on one objective; remove it with objectives",
            check=lambda s: s.objectives is None or s.early_stopping is None,
            field_path=".earlyStopping",
        ),
        Rule(
            cel="!has(self.constraints) || !has(self.objective) || "
            "(has(self.objective.additionalMetrics) ? size(self.objective.additionalMetrics) : 0)"
            " + size(self.constraints) <= 32",
            message="objective.additionalMetrics and constraints together name at "
            "most 32 metrics (a trial records 33 with the objective); drop some additional metrics",
            check=lambda s: (
                s.constraints is None
                or s.declared_objective is None
                or len(s.declared_objective.additional_metrics) + len(s.constraints) <= 32
            ),
            field_path=".constraints",
        ),
        Rule(
            cel="!has(self.constraints) || "
            "self.constraints.all(c, self.constraints.exists_one(q, q.metric == c.metric))",
            message="constraints[].metric must be unique; merge the bounds of one metric into "
            "one constraint",
            check=lambda s: s.constraints is None or _unique([c.metric for c in s.constraints]),
            field_path=".constraints",
        ),
        Rule(
            cel="self.parameters.all(p, self.parameters.exists_one(q, q.name == p.name))",
            message="parameters[].name must be unique; rename or remove the duplicate",
            check=lambda s: len({p.name for p in s.parameters}) == len(s.parameters),
            field_path=".parameters",
        ),
        Rule(
            cel=f"!has(self.fidelity) || self.algorithm.name in {_MULTI_FIDELITY_CEL}",
            message=f"fidelity is used only by {multi_fidelity_words('and')}; remove it or change "
            "algorithm.name",
            check=lambda s: s.fidelity is None or s.algorithm.name in MULTI_FIDELITY_ALGORITHMS,
            field_path=".fidelity",
        ),
        Rule(
            cel=f"!(self.algorithm.name in {_MULTI_FIDELITY_CEL}) || has(self.fidelity)",
            message=f"fidelity is required by {multi_fidelity_words('and')}; add fidelity with "
            "parameter, min and max",
            check=lambda s: (
                s.algorithm.name not in MULTI_FIDELITY_ALGORITHMS or s.fidelity is not None
            ),
            field_path=".algorithm.name",
        ),
        Rule(
            cel="!has(self.fidelity) || self.parameters.all(p, p.name != self.fidelity.parameter)",
            message="fidelity.parameter must not also be a search parameter; the algorithm sets it",
            check=lambda s: (
                s.fidelity is None or all(p.name != s.fidelity.parameter for p in s.parameters)
            ),
            field_path=".fidelity.parameter",
        ),
        Rule(
            cel="self.algorithm.name != 'grid' || self.parameters.all(p, p.type != 'float' "
            "|| has(p.step))",
            message="parameters[].step is required for float parameters with the grid "
            "algorithm; give each float parameter a step",
            check=lambda s: (
                s.algorithm.name is not AlgorithmName.GRID
                or all(
                    p.type is not ParameterType.FLOAT or p.step is not None for p in s.parameters
                )
            ),
            field_path=".parameters",
        ),
        Rule(
            cel="self.algorithm.name != 'cmaes' || self.parameters.all(p, p.type != 'categorical')",
            message="parameters[].type: cmaes searches float and int parameters only; make "
            "each categorical parameter a number, or use tpe or bayesian",
            check=lambda s: (
                s.algorithm.name is not AlgorithmName.CMAES
                or all(p.type is not ParameterType.CATEGORICAL for p in s.parameters)
            ),
            field_path=".parameters",
        ),
        Rule(
            cel="self.parameters.all(p, !has(p.when) || self.parameters.exists(q, "
            "q.name == p.when.parameter && q.name != p.name && q.type == 'categorical'))",
            message="parameters[].when.parameter must name another, categorical parameter",
            check=lambda s: all(
                p.when is None
                or any(
                    q.name == p.when.parameter
                    and q.name != p.name
                    and q.type is ParameterType.CATEGORICAL
                    for q in s.parameters
                )
                for p in s.parameters
            ),
            field_path=".parameters",
        ),
        Rule(
            cel=f"!has(self.earlyStopping) || !(self.algorithm.name in {_MULTI_FIDELITY_CEL})",
            message=f"earlyStopping does not combine with {multi_fidelity_words('or')}, which stop "
            "trials themselves; remove earlyStopping",
            check=lambda s: (
                s.early_stopping is None or s.algorithm.name not in MULTI_FIDELITY_ALGORITHMS
            ),
            field_path=".earlyStopping",
        ),
        Rule(
            cel="self.algorithm.name != 'pbt' || has(self.trialTemplate.checkpoints)",
            message="trialTemplate.checkpoints is required by pbt, whose every step resumes "
            "from a checkpoint; add checkpoints with volumeClaim or uri",
            check=lambda s: (
                s.algorithm.name is not AlgorithmName.PBT
                or s.trial_template.checkpoints is not None
            ),
            field_path=".trialTemplate.checkpoints",
        ),
    )

    #: Fields that may not change after creation (checked by the API server).
    immutable_fields: ClassVar[tuple[str, ...]] = (
        "objective",
        "algorithm",
        "parameters",
        "objectives",
        "constraints",
    )

    @cached_property
    def objective(self) -> Objective:
        """The objective every single-metric path reads, recording every metric the spec names.

        With ``objectives`` it is the first of them, and the others are its additional
        metrics; constraint metrics are additional metrics too, so every trial
        records each metric its feasibility and its place on the front depend on.
        """
        if self.declared_objective is not None:
            base = self.declared_objective
        else:
            assert self.objectives is not None  # one of the two is set (a rule above)
            first, *others = self.objectives
            base = Objective.model_construct(
                metric=first.metric,
                direction=first.direction,
                target=None,
                strategy=first.reduction,
                additional_metrics=[o.metric for o in others],
                metric_strategies={o.metric: o.reduction for o in others},
            )
        additional = list(base.additional_metrics)
        strategies = dict(base.metric_strategies)
        for constraint in self.constraints or ():
            if constraint.metric == base.metric or constraint.metric in additional:
                continue
            additional.append(constraint.metric)
            if constraint.strategy is not None:
                strategies[constraint.metric] = constraint.strategy
        if additional == base.additional_metrics and strategies == base.metric_strategies:
            return base
        return base.model_copy(
            update={"additional_metrics": additional, "metric_strategies": strategies}
        )

    @property
    def is_multi_objective(self) -> bool:
        """Whether the sweep optimises several objectives (its result is a Pareto front)."""
        return self.objectives is not None

    @property
    def objective_metrics(self) -> list[ObjectiveMetric]:
        """Every objective as an :class:`ObjectiveMetric`: one, or those of ``objectives``."""
        if self.objectives is not None:
            return list(self.objectives)
        single = self.objective
        return [
            ObjectiveMetric(
                metric=single.metric,
                direction=single.direction,
                strategy=single.objective_strategy,
                target=single.target,
            )
        ]

    @property
    def is_multi_fidelity(self) -> bool:
        """Whether trials receive a fidelity budget from the algorithm."""
        return self.algorithm.name in MULTI_FIDELITY_ALGORITHMS

    def parameter(self, name: str) -> Parameter:
        """The parameter called ``name``."""
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise KeyError(name)


def immutability_rules() -> dict[str, TransitionRule]:
    """Transition rules, per immutable spec field, for the CRD."""
    return {
        field: TransitionRule(
            cel="self == oldSelf",
            message=f"spec.{field} is immutable after creation; create a new Experiment "
            "(budget may change)",
        )
        for field in ExperimentSpec.immutable_fields
    }
