"""The suggestion service's requests, built from observed trials.

The requests are the typed models of :mod:`kubesweep.api.suggestion_wire`, the
same the service validates and its OpenAPI document is generated from, so a
request the operator builds is one the service accepts by construction; the
models need neither the algorithms nor their numeric dependencies.

Only here is a trial's phase translated into what the algorithms know of it
(:class:`~kubesweep.api.suggestion_wire.TrialState`), and only here is its
objective offered as a value: a trial that has not finished, or that failed,
has none to offer, whatever its status says. With several objectives a valued
trial also offers the value of each (``values``), and with constraints whether it
was feasible and by how far it missed (``feasible``, ``violation``), read by the
same rules as the Experiment's status (:mod:`kubesweep.planning.pareto`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from kubesweep.api import Algorithm, Direction, ExperimentSpec, TrialPhase
from kubesweep.api.suggestion_wire import (
    ObservedTrial,
    SearchSpace,
    StopRequest,
    SuggestRequest,
    TrialState,
)
from kubesweep.planning.pareto import is_feasible, metric_value, objective_values
from kubesweep.planning.views import TrialView

_STATES = {
    TrialPhase.PENDING: TrialState.PENDING,
    TrialPhase.RUNNING: TrialState.PENDING,
    TrialPhase.SUCCEEDED: TrialState.COMPLETED,
    TrialPhase.FAILED: TrialState.FAILED,
    TrialPhase.METRICS_UNAVAILABLE: TrialState.FAILED,
    TrialPhase.EARLY_STOPPED: TrialState.STOPPED,
}

#: Phases whose recorded objective is the trial's value to the algorithms.
_VALUED = frozenset({TrialPhase.SUCCEEDED, TrialPhase.EARLY_STOPPED})


def observed_trial(trial: TrialView, spec: ExperimentSpec | None = None) -> ObservedTrial:
    """One trial as the algorithms see it; with ``spec``, its objectives and constraints too."""
    valued = trial.phase in _VALUED
    observed = ObservedTrial(
        name=trial.name,
        parameters=dict(trial.parameters),
        fidelity=trial.fidelity,
        state=_STATES[trial.phase],
        value=trial.status.objective if valued else None,
        intermediate=trial.status.curve,  # a finished trial's packed curve is kept packed
        tags=dict(trial.tags),
    )
    if spec is None or not valued:
        return observed
    extra: dict[str, object] = {}
    if spec.is_multi_objective:
        values = objective_values(spec, trial)
        extra["values"] = None if values is None else list(values)
    if spec.constraints:
        extra["feasible"] = is_feasible(spec, trial)
        extra["violation"] = _violation(spec, trial)
    return observed.model_copy(update=extra) if extra else observed


def _violation(spec: ExperimentSpec, trial: TrialView) -> float | None:
    total = 0.0
    for constraint in spec.constraints or ():
        missed = constraint.violation(metric_value(spec, trial, constraint.metric))
        if missed is None:
            return None
        total += missed
    return total if math.isfinite(total) else None


def objective_directions(spec: ExperimentSpec) -> list[Direction] | None:
    """The direction of each objective with several, for the request; None with one."""
    if not spec.is_multi_objective:
        return None
    return [o.direction for o in spec.objective_metrics]


def search_space(spec: ExperimentSpec) -> SearchSpace:
    """The experiment's parameters and fidelity, as the algorithms search them."""
    return SearchSpace(parameters=list(spec.parameters), fidelity=spec.fidelity)


def seeded_algorithm(spec: ExperimentSpec, seed: int | None) -> Algorithm:
    """The experiment's algorithm with the effective ``seed`` (the spec's own when it has one)."""
    if spec.algorithm.seed is not None or seed is None:
        return spec.algorithm
    return spec.algorithm.model_copy(update={"seed": seed})


def _observed(spec: ExperimentSpec, trials: Iterable[TrialView]) -> list[ObservedTrial]:
    return [observed_trial(t, spec) for t in sorted(trials, key=lambda t: t.index)]


def suggest_request(
    spec: ExperimentSpec,
    uid: str | None,
    trials: Iterable[TrialView],
    count: int,
    seed: int | None = None,
) -> SuggestRequest:
    """A request for ``count`` assignments at once, given every trial so far."""
    return SuggestRequest(
        experiment_uid=uid,
        space=search_space(spec),
        direction=spec.objective.direction,
        objectives=objective_directions(spec),
        algorithm=seeded_algorithm(spec, seed),
        trials=_observed(spec, trials),
        count=count,
    )


def stop_request(
    spec: ExperimentSpec,
    uid: str | None,
    trials: Iterable[TrialView],
    seed: int | None = None,
) -> StopRequest:
    """A request for stop decisions over every trial (finished ones are the reference)."""
    return StopRequest(
        experiment_uid=uid,
        space=search_space(spec),
        direction=spec.objective.direction,
        algorithm=seeded_algorithm(spec, seed),
        early_stopping=spec.early_stopping,
        trials=_observed(spec, trials),
    )
