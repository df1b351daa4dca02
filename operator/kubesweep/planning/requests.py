"""The suggestion service's requests, built from observed trials.

The requests are the typed models of :mod:`kubesweep.api.suggestion_wire`, the
same the service validates and its OpenAPI document is generated from, so a
request the operator builds is one the service accepts by construction; the
models need neither the algorithms nor their numeric dependencies.

Only here is a trial's phase translated into what the algorithms know of it
(:class:`~kubesweep.api.suggestion_wire.TrialState`), and only here is its
objective offered as a value: a trial that has not finished, or that failed,
has none to offer, whatever its status says.
"""

from __future__ import annotations

from collections.abc import Iterable

from kubesweep.api import Algorithm, ExperimentSpec, TrialPhase
from kubesweep.api.suggestion_wire import (
    ObservedTrial,
    SearchSpace,
    StopRequest,
    SuggestRequest,
    TrialState,
)
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


def observed_trial(trial: TrialView) -> ObservedTrial:
    """One trial as the algorithms see it."""
    return ObservedTrial(
        name=trial.name,
        parameters=dict(trial.parameters),
        fidelity=trial.fidelity,
        state=_STATES[trial.phase],
        value=trial.status.objective if trial.phase in _VALUED else None,
        intermediate=list(trial.status.curve),
        tags=dict(trial.tags),
    )


def search_space(spec: ExperimentSpec) -> SearchSpace:
    """The experiment's parameters and fidelity, as the algorithms search them."""
    return SearchSpace(parameters=list(spec.parameters), fidelity=spec.fidelity)


def seeded_algorithm(spec: ExperimentSpec, seed: int | None) -> Algorithm:
    """The experiment's algorithm with the effective ``seed`` (the spec's own when it has one)."""
    if spec.algorithm.seed is not None or seed is None:
        return spec.algorithm
    return spec.algorithm.model_copy(update={"seed": seed})


def _observed(trials: Iterable[TrialView]) -> list[ObservedTrial]:
    return [observed_trial(t) for t in sorted(trials, key=lambda t: t.index)]


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
        algorithm=seeded_algorithm(spec, seed),
        trials=_observed(trials),
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
        trials=_observed(trials),
    )
