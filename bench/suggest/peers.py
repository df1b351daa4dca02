"""The peers, driven the way their users drive them, on the same spaces and seeds.

Each peer runs with its library defaults; only the seed is set. A benchmark
that tuned the peers (or crippled them to save time) would say nothing about
kubesweep, so where a peer is too slow for the machine the run uses fewer seeds
for it and the report says so, rather than changing its settings.

- Optuna: ``TPESampler`` and ``GPSampler`` through ask/tell with the
  distributions given up front (the sampler works inside ``ask``).
- scikit-optimize: ``gp_minimize`` as documented (its defaults: 10 random
  initial points, ``gp_hedge``, L-BFGS acquisition optimisation).
- hyperopt: ``fmin`` with ``tpe.suggest``.
- SMAC3: ``HyperparameterOptimizationFacade`` (its random forest, log EI and
  interleaved random configurations) through ask/tell, deterministic objective,
  its default initial design; the run's files go to a temporary directory.
- Optuna's ``CmaEsSampler`` on the problems without categorical parameters (the
  peer of kubesweep's ``cmaes``, which refuses them).

Spaces are translated one-to-one: log scales stay log scales, integers stay
integers, categoricals stay categorical.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.suggest.problems import Problem
from kubesweep.api.experiment import Parameter, ParameterType, ParameterValue

#: The quality peers, by the name the report uses.
QUALITY_PEERS = ("optuna-tpe", "optuna-gp", "skopt-gp", "hyperopt-tpe", "smac", "optuna-cmaes")

#: The peers whose one-suggestion latency :func:`peer_latency` measures.
LATENCY_PEERS = ("optuna-tpe", "optuna-gp", "skopt-gp", "hyperopt-tpe")

#: Peers that search numbers only, as kubesweep's ``cmaes`` does: run on problems
#: without categorical parameters.
NUMBERS_ONLY_PEERS = frozenset({"optuna-cmaes"})


def quiet_libraries() -> None:
    """Silence the peers' per-trial logging and pin the math libraries to one thread.

    Each benchmark process is one of ``--processes`` on a 2-core machine: a
    library that spawned its own thread pool would steal the other's core and
    make every timing depend on the neighbour.
    """
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("hyperopt").setLevel(logging.ERROR)
    try:
        import optuna  # type: ignore[import-not-found, import-untyped, unused-ignore]

        optuna.logging.set_verbosity(optuna.logging.ERROR)
    except ImportError:
        pass
    torch = sys.modules.get("torch")  # only if a peer already loaded it: it is slow to import
    if torch is not None:
        torch.set_num_threads(1)


# --- Space translation ---------------------------------------------------------------


def optuna_distributions(parameters: Sequence[Parameter]) -> dict[str, Any]:
    """Optuna distributions equal to the kubesweep parameters."""
    from optuna.distributions import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for p in parameters:
        if p.type is ParameterType.CATEGORICAL:
            out[p.name] = CategoricalDistribution(list(p.values or []))
        elif p.type is ParameterType.INT:
            assert p.min is not None
            assert p.max is not None
            step = 1 if p.log or p.step is None else round(p.step)
            out[p.name] = IntDistribution(round(p.min), round(p.max), log=p.log, step=step)
        else:
            out[p.name] = FloatDistribution(p.min, p.max, log=p.log, step=p.step)  # type: ignore[arg-type, unused-ignore]
    return out


def skopt_dimensions(parameters: Sequence[Parameter]) -> list[Any]:
    """scikit-optimize dimensions equal to the kubesweep parameters (steps not expressible)."""
    from skopt.space import Categorical, Integer, Real  # type: ignore[import-not-found, import-untyped, unused-ignore]

    out: list[Any] = []
    for p in parameters:
        prior = "log-uniform" if p.log else "uniform"
        if p.type is ParameterType.CATEGORICAL:
            out.append(Categorical(list(p.values or []), name=p.name))
        elif p.type is ParameterType.INT:
            out.append(Integer(round(p.min or 0), round(p.max or 0), prior=prior, name=p.name))
        else:
            out.append(Real(p.min, p.max, prior=prior, name=p.name))
    return out


def smac_space(parameters: Sequence[Parameter], seed: int) -> Any:
    """A ConfigSpace equal to the kubesweep parameters (steps not expressible)."""
    from ConfigSpace import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
        Categorical,
        ConfigurationSpace,
        Float,
        Integer,
    )

    space = ConfigurationSpace(seed=seed)
    for p in parameters:
        if p.type is ParameterType.CATEGORICAL:
            space.add(Categorical(p.name, list(p.values or [])))
        elif p.type is ParameterType.INT:
            space.add(Integer(p.name, (round(p.min or 0), round(p.max or 0)), log=p.log))
        else:
            space.add(Float(p.name, (p.min or 0.0, p.max or 0.0), log=p.log))
    return space


def hyperopt_space(parameters: Sequence[Parameter]) -> dict[str, Any]:
    """hyperopt expressions equal to the kubesweep parameters."""
    from hyperopt import hp  # type: ignore[import-not-found, import-untyped, unused-ignore]

    out: dict[str, Any] = {}
    for p in parameters:
        name = p.name
        if p.type is ParameterType.CATEGORICAL:
            out[name] = hp.choice(name, list(p.values or []))
            continue
        assert p.min is not None
        assert p.max is not None
        if p.type is ParameterType.INT:
            if p.log:
                out[name] = hp.qloguniform(name, math.log(p.min), math.log(p.max), 1)
            else:
                out[name] = hp.uniformint(name, p.min, p.max)
        elif p.log:
            out[name] = hp.loguniform(name, math.log(p.min), math.log(p.max))
        elif p.step is not None:
            out[name] = hp.quniform(name, p.min, p.max, p.step)
        else:
            out[name] = hp.uniform(name, p.min, p.max)
    return out


def plain(values: Mapping[str, Any], parameters: Sequence[Parameter]) -> dict[str, ParameterValue]:
    """Numpy scalars to Python values of the declared types (ints clipped into range)."""
    out: dict[str, ParameterValue] = {}
    for p in parameters:
        v = values[p.name]
        if isinstance(v, np.generic):
            v = v.item()
        if p.type is ParameterType.INT:
            v = int(min(p.max or v, max(p.min or v, round(float(v)))))
        elif p.type is ParameterType.FLOAT:
            v = float(v)
        out[p.name] = v
    return out


# --- Quality runs ----------------------------------------------------------------------


class Timed:
    """Wraps an objective, adding up the time spent inside it.

    The optimiser's own time is the run's wall time minus this, which is what the
    report's overhead column shows.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.seconds = 0.0
        self.values: list[float] = []

    def __call__(self, values: Mapping[str, Any]) -> float:
        start = time.perf_counter()
        value = self.problem.evaluate(plain(values, self.problem.parameters))
        self.seconds += time.perf_counter() - start
        self.values.append(value)
        return value


def run_optuna(sampler_name: str, problem: Problem, seed: int, trials: int, timed: Timed) -> None:
    """Optuna's ask/tell loop with the chosen sampler."""
    import optuna

    sampler: optuna.samplers.BaseSampler
    if sampler_name == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed)
    elif sampler_name == "cmaes":
        sampler = optuna.samplers.CmaEsSampler(seed=seed)
    else:
        sampler = optuna.samplers.GPSampler(seed=seed)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    distributions = optuna_distributions(problem.parameters)
    for _ in range(trials):
        trial = study.ask(distributions)
        study.tell(trial, timed(trial.params))


def run_skopt(problem: Problem, seed: int, trials: int, timed: Timed) -> None:
    """``gp_minimize`` with its defaults."""
    from skopt import gp_minimize  # type: ignore[import-not-found, import-untyped, unused-ignore]

    names = [p.name for p in problem.parameters]
    gp_minimize(
        lambda x: timed(dict(zip(names, x, strict=True))),
        skopt_dimensions(problem.parameters),
        n_calls=trials,
        random_state=seed,
    )


def run_hyperopt(problem: Problem, seed: int, trials: int, timed: Timed) -> None:
    """``fmin`` with ``tpe.suggest``."""
    from hyperopt import Trials, fmin, tpe

    fmin(
        timed,
        hyperopt_space(problem.parameters),
        algo=tpe.suggest,
        max_evals=trials,
        trials=Trials(),
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
    )


def run_smac(problem: Problem, seed: int, trials: int, timed: Timed) -> None:
    """SMAC3's hyperparameter-optimisation facade through ask/tell."""
    import tempfile

    from smac import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
        HyperparameterOptimizationFacade,
        Scenario,
    )
    from smac.runhistory.dataclasses import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
        TrialValue,
    )

    with tempfile.TemporaryDirectory(prefix="bench-smac-") as output:
        scenario = Scenario(
            smac_space(problem.parameters, seed),
            deterministic=True,
            n_trials=trials,
            seed=seed,
            output_directory=Path(output),
        )
        facade = HyperparameterOptimizationFacade(
            scenario, _unused_target, overwrite=True, logging_level=40
        )
        for _ in range(trials):
            info = facade.ask()
            facade.tell(info, TrialValue(cost=timed(dict(info.config))))


def _unused_target(config: Any, seed: int = 0) -> float:  # noqa: ARG001
    """SMAC's facade wants a target function; ask/tell never calls it."""
    raise AssertionError("the benchmark evaluates through ask/tell")


PEER_RUNNERS: dict[str, Callable[[Problem, int, int, Timed], None]] = {
    "optuna-tpe": lambda p, s, n, t: run_optuna("tpe", p, s, n, t),
    "optuna-gp": lambda p, s, n, t: run_optuna("gp", p, s, n, t),
    "skopt-gp": run_skopt,
    "hyperopt-tpe": run_hyperopt,
    "smac": run_smac,
    "optuna-cmaes": lambda p, s, n, t: run_optuna("cmaes", p, s, n, t),
}


def peer_available(name: str) -> str | None:
    """None when the peer can run here, else why not (import error text)."""
    modules = {
        "optuna-tpe": ["optuna"],
        "optuna-gp": ["optuna", "torch", "scipy"],
        "optuna-hyperband": ["optuna"],
        "skopt-gp": ["skopt"],
        "hyperopt-tpe": ["hyperopt"],
        "smac": ["smac", "ConfigSpace"],
        "optuna-cmaes": ["optuna", "cmaes"],
    }[name]
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:  # a broken install raises more than ImportError
            return f"{module} does not import: {type(error).__name__}: {error}"
    return None


# --- Latency: one suggestion after N observations ------------------------------------


def _random_history(
    problem: Problem, n: int, seed: int
) -> tuple[list[dict[str, ParameterValue]], list[float]]:
    """``n`` uniformly random configurations and their values (the same for every method)."""
    rng = np.random.default_rng(seed)
    configs: list[dict[str, ParameterValue]] = []
    for _ in range(n):
        config: dict[str, ParameterValue] = {}
        for p in problem.parameters:
            if p.type is ParameterType.CATEGORICAL:
                values = list(p.values or [])
                config[p.name] = values[int(rng.integers(len(values)))]
                continue
            assert p.min is not None
            assert p.max is not None
            if p.log:
                v = math.exp(rng.uniform(math.log(p.min), math.log(p.max)))
            else:
                v = rng.uniform(p.min, p.max)
            if p.type is ParameterType.INT:
                config[p.name] = int(min(p.max, max(p.min, round(v))))
            else:
                config[p.name] = float(v)
        configs.append(config)
    return configs, [problem.evaluate(c) for c in configs]


def random_history(
    problem: Problem, n: int, seed: int = 12345
) -> tuple[list[dict[str, ParameterValue]], list[float]]:
    """The shared latency history (public for the kubesweep side)."""
    return _random_history(problem, n, seed)


def peer_latency(name: str, problem: Problem, n: int, report: Callable[[str, float], None]) -> None:
    """Tell ``n`` trials to the peer (reported as ``setup``), then time one suggestion.

    What is timed, per peer (the work a sequential loop pays per new point):
    Optuna, one ``ask`` with the distributions (sampling happens there);
    hyperopt, one ``tpe.suggest`` call on the trials; scikit-optimize, the
    ``tell`` of the N-th point (it refits the GP there) plus one ``ask``.
    """
    quiet_libraries()
    configs, values = random_history(problem, n)
    start = time.perf_counter()
    if name.startswith("optuna"):
        import optuna

        sampler = (
            optuna.samplers.TPESampler(seed=0)
            if name == "optuna-tpe"
            else optuna.samplers.GPSampler(seed=0)
        )
        study = optuna.create_study(sampler=sampler)
        distributions = optuna_distributions(problem.parameters)
        study.add_trials(
            [
                optuna.trial.create_trial(params=c, distributions=distributions, value=v)
                for c, v in zip(configs, values, strict=True)
            ]
        )
        report("setup", time.perf_counter() - start)
        for _ in range(3):
            start = time.perf_counter()
            trial = study.ask(distributions)
            report("call", time.perf_counter() - start)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    elif name == "hyperopt-tpe":
        from hyperopt import JOB_STATE_DONE, STATUS_OK, tpe
        from hyperopt.base import Domain  # type: ignore[import-not-found, import-untyped, unused-ignore]
        from hyperopt.fmin import generate_trials_to_calculate  # type: ignore[import-not-found, import-untyped, unused-ignore]

        # Finished trial documents are inserted directly (running fmin 10,000 times
        # just to fill the history would measure fmin, not one suggestion).
        choices = {p.name: list(p.values or []) for p in problem.parameters if p.values}
        points = [
            {k: (choices[k].index(v) if k in choices else v) for k, v in c.items()} for c in configs
        ]
        trials = generate_trials_to_calculate(points)
        for doc, value in zip(trials._dynamic_trials, values, strict=True):
            doc["state"] = JOB_STATE_DONE
            doc["result"] = {"loss": value, "status": STATUS_OK}
        trials.refresh()
        domain = Domain(lambda _: 0.0, hyperopt_space(problem.parameters))
        report("setup", time.perf_counter() - start)
        for i in range(3):
            start = time.perf_counter()
            tpe.suggest(trials.new_trial_ids(1), domain, trials, i)
            report("call", time.perf_counter() - start)
    elif name == "skopt-gp":
        from skopt import Optimizer

        names = [p.name for p in problem.parameters]
        optimizer = Optimizer(skopt_dimensions(problem.parameters), random_state=0)
        rows = [[c[k] for k in names] for c in configs]
        optimizer.tell(rows[:-1], values[:-1], fit=False)
        report("setup", time.perf_counter() - start)
        start = time.perf_counter()
        optimizer.tell(rows[-1], values[-1])
        optimizer.ask()
        report("call", time.perf_counter() - start)
    else:
        raise KeyError(name)
