"""Algorithm names to factories, and the three pure entry points the service calls.

:func:`suggest`, :func:`stop` and :func:`validate` answer a request from its
content alone. Model-based algorithms (bayesian, tpe, bohb) and cmaes (which needs
the ``cmaes`` library) are registered by import path and loaded on first use, so
this module imports cleanly whatever optional modules exist, and a missing one
becomes a clear
:class:`AlgorithmUnavailableError` for that algorithm only.

Errors, for the HTTP layer to classify once:

- :class:`~kubesweep.suggestion.contract.SettingsError` and
  :class:`~kubesweep.suggestion.space.SpaceError` (both ``ValueError``): the
  request is wrong; the message names the field or setting (a 4xx).
- :class:`AlgorithmUnavailableError` (a ``LookupError``): this build lacks the
  algorithm's module (the server's fault, not the request's).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from kubesweep.api.experiment import (
    MULTI_FIDELITY_ALGORITHMS,
    MULTI_OBJECTIVE_ALGORITHMS,
    Algorithm,
    AlgorithmName,
    EarlyStopping,
    EarlyStoppingName,
    ParameterValue,
    multi_fidelity_words,
)
from kubesweep.api.suggestion_wire import (
    SearchSpace,
    StopDecision,
    StopReply,
    StopRequest,
    SuggestReply,
    SuggestRequest,
)
from kubesweep.suggestion.algorithms import asha, grid, hyperband, pbt, random_search, sobol
from kubesweep.suggestion.contract import (
    AlgorithmFactory,
    History,
    SearchAlgorithm,
    SettingsError,
    StoppingRule,
)
from kubesweep.suggestion.settings import Setting
from kubesweep.suggestion.space import SpaceError, problems
from kubesweep.suggestion.stopping import median

#: Builds a stopping rule from the space and its settings (SettingsError when bad).
StoppingFactory = Callable[[SearchSpace, Mapping[str, ParameterValue]], StoppingRule]


class AlgorithmUnavailableError(LookupError):
    """The algorithm's module cannot be imported in this build."""


class LazyFactory:
    """A factory named by ``"module:function"``, imported on first call."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._factory: AlgorithmFactory | None = None

    def load(self) -> AlgorithmFactory:
        """Import and return the real factory, or raise :class:`AlgorithmUnavailableError`."""
        if self._factory is None:
            module_name, _, attribute = self.target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as error:
                raise AlgorithmUnavailableError(
                    f"algorithm module {module_name} is not available: {error}"
                ) from error
            factory = getattr(module, attribute, None)
            if factory is None:
                raise AlgorithmUnavailableError(f"{self.target} does not exist")
            self._factory = factory
        return self._factory

    def available(self) -> bool:
        """Whether the module imports."""
        try:
            self.load()
        except AlgorithmUnavailableError:
            return False
        return True

    def __call__(
        self, space: SearchSpace, settings: Mapping[str, ParameterValue], seed: int | None
    ) -> SearchAlgorithm:
        return self.load()(space, settings, seed)


_MODELS = "kubesweep.suggestion.algorithms"

#: Every search algorithm, by name.
ALGORITHMS: dict[AlgorithmName, AlgorithmFactory] = {
    AlgorithmName.GRID: grid.create,
    AlgorithmName.RANDOM: random_search.create,
    AlgorithmName.SOBOL: sobol.create,
    AlgorithmName.BAYESIAN: LazyFactory(f"{_MODELS}.bayesian:create"),
    AlgorithmName.TPE: LazyFactory(f"{_MODELS}.tpe:create"),
    AlgorithmName.HYPERBAND: hyperband.create,
    AlgorithmName.ASHA: asha.create,
    AlgorithmName.BOHB: LazyFactory(f"{_MODELS}.bohb:create"),
    AlgorithmName.CMAES: LazyFactory(f"{_MODELS}.cma_es:create"),
    AlgorithmName.PBT: pbt.create,
    AlgorithmName.NSGA2: LazyFactory(f"{_MODELS}.nsga2:create"),
}

#: Every early-stopping rule, by name.
STOPPING_RULES: dict[EarlyStoppingName, StoppingFactory] = {
    EarlyStoppingName.MEDIAN: median.create,
}


def available(name: AlgorithmName) -> bool:
    """Whether the algorithm can be built in this installation."""
    factory = ALGORITHMS[name]
    return not isinstance(factory, LazyFactory) or factory.available()


def declared_settings(name: AlgorithmName | EarlyStoppingName) -> tuple[Setting, ...]:
    """The settings an algorithm or stopping rule accepts, with defaults (for docs and
    the OpenAPI document); empty when its module is unavailable."""
    if isinstance(name, EarlyStoppingName):
        factory: object = STOPPING_RULES[name]
    else:
        factory = ALGORITHMS[name]
        if isinstance(factory, LazyFactory):
            try:
                factory = factory.load()
            except AlgorithmUnavailableError:
                return ()
    module = importlib.import_module(getattr(factory, "__module__", ""))
    declared = getattr(module, "SETTINGS", ())
    return tuple(s for s in declared if isinstance(s, Setting))


def build(space: SearchSpace, algorithm: Algorithm) -> SearchAlgorithm:
    """The algorithm of a request, with settings checked."""
    return ALGORITHMS[algorithm.name](space, algorithm.settings, algorithm.seed)


def suggest(request: SuggestRequest) -> SuggestReply:
    """New assignments for ``request`` (see :class:`SearchAlgorithm`)."""
    if request.objectives is not None and request.algorithm.name not in MULTI_OBJECTIVE_ALGORITHMS:
        raise SpaceError(
            [
                f"objectives: algorithm {request.algorithm.name.value} searches one objective "
                f"only; with several use {', '.join(sorted(MULTI_OBJECTIVE_ALGORITHMS))}"
            ]
        )
    algorithm = build(request.space, request.algorithm)
    history = History(request.trials, request.direction, request.objectives)
    reply = algorithm.suggest(history, request.count)
    if len(reply.assignments) > request.count:
        reply = SuggestReply(
            assignments=reply.assignments[: request.count], exhausted=reply.exhausted
        )
    return reply


def stop(request: StopRequest) -> StopReply:
    """Running trials to stop: by the early-stopping rule, and by a stop-based algorithm.

    Algorithms that stop trials themselves (asha in ``stopping`` mode) expose a
    ``decide`` method and are asked too; decisions are merged by trial name.
    """
    history = History(request.trials, request.direction)
    decisions: dict[str, StopDecision] = {}
    if request.early_stopping is not None:
        rule = STOPPING_RULES[request.early_stopping.name](
            request.space, request.early_stopping.settings
        )
        for decision in rule.decide(history):
            decisions.setdefault(decision.name, decision)
    try:
        algorithm = build(request.space, request.algorithm)
    except AlgorithmUnavailableError:
        # Only the rule is needed then; a missing model module must not block stopping.
        return StopReply(stop=list(decisions.values()))
    decide = getattr(algorithm, "decide", None)
    if callable(decide):
        for decision in decide(history):
            decisions.setdefault(decision.name, decision)
    return StopReply(stop=list(decisions.values()))


def validate(
    space: SearchSpace, algorithm: Algorithm, early_stopping: EarlyStopping | None = None
) -> list[str]:
    """Every problem of a space with its algorithm and stopping rule, each naming its field."""
    found = problems(space)
    multi = algorithm.name in MULTI_FIDELITY_ALGORITHMS
    if multi and space.fidelity is None:
        found.append(f"fidelity: required by algorithm {algorithm.name.value}")
    if not multi and space.fidelity is not None:
        found.append(
            f"fidelity: used only by {multi_fidelity_words('and')}; remove it or change "
            "algorithm.name"
        )
    if early_stopping is not None and multi:
        found.append(
            f"earlyStopping: {algorithm.name.value} stops trials itself; remove earlyStopping"
        )
    if found:
        return found
    try:
        build(space, algorithm)
    except SettingsError as error:
        found.append(str(error))
    except SpaceError as error:
        found.extend(error.problems)
    except AlgorithmUnavailableError as error:
        found.append(f"algorithm.name: {error}")
    if early_stopping is not None:
        try:
            STOPPING_RULES[early_stopping.name](space, early_stopping.settings)
        except SettingsError as error:
            detail = str(error).partition(": ")[2]
            found.append(f"earlyStopping.settings.{error.setting}: {detail}")
    return found


__all__ = [
    "ALGORITHMS",
    "STOPPING_RULES",
    "AlgorithmUnavailableError",
    "LazyFactory",
    "StoppingFactory",
    "available",
    "build",
    "declared_settings",
    "stop",
    "suggest",
    "validate",
]
