"""The problems of the suggestion benchmark: known optima, so regret is exact.

Synthetic functions (Branin, Hartmann-6, Rosenbrock-4, Ackley-5, Levy-10 and a
mixed float/log/int/categorical function) are the usual test functions of the
Bayesian-optimisation literature, with their published optima. Real model
tuning uses datasets that ship with scikit-learn, so nothing is downloaded:

- ``gbm-breast-cancer``: gradient boosting on breast_cancer, validation log loss.
- ``mlp-digits`` (multi-fidelity): a one-hidden-layer MLP trained epoch by epoch
  (``partial_fit``) on digits, validation log loss after each epoch.

Fitting a model thousands of times would cost more than this 2-core machine
gives a benchmark, so the real tasks are *tabular with interpolation*, as in
HPOBench: the model is trained once on every vertex of a grid over the
continuous hyperparameters (learning rates, regularisation, subsample), on
every value of the discrete ones, and the objective between vertices is the
multilinear interpolation (in log space for log-scaled parameters) of the
measured values. The function is continuous, every value is a convex
combination of real measurements, and so its minimum is exactly the smallest
measured value: regret is exact for the real tasks too. Tables are built on
first use and cached under ``artifacts/`` (deterministic: fixed splits and seeds).

Every problem exposes its search space as kubesweep
:class:`~kubesweep.api.experiment.Parameter` objects; peers get the same space
translated (see :mod:`bench.suggest.peers`). ``evaluate`` accepts any value of
the declared space (clipping and rounding defensively), so every method is
scored by the same function.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from kubesweep.api.experiment import Fidelity, Parameter, ParameterType, ParameterValue

Values = Mapping[str, ParameterValue]

#: Where generated tables are cached (ignored by git).
CACHE_DIR = Path(os.environ.get("KUBESWEEP_BENCH_CACHE", "artifacts/bench-suggest/cache"))


def floats(names: Sequence[str], low: float, high: float) -> list[Parameter]:
    """Continuous parameters sharing one box."""
    return [Parameter(name=n, type=ParameterType.FLOAT, min=low, max=high) for n in names]


@dataclass(frozen=True)
class Problem:
    """One objective to minimise over a search space, with its known minimum.

    ``fidelity`` is set for multi-fidelity problems: ``evaluate_curve`` then
    returns the objective after each fidelity unit (epoch) up to the requested one.
    """

    name: str
    title: str
    parameters: tuple[Parameter, ...]
    function: Callable[[Values], float]
    optimum: float
    minimisers: tuple[dict[str, ParameterValue], ...] = ()
    kind: str = "synthetic"
    fidelity: Fidelity | None = None
    curve: Callable[[Values, int], list[float]] | None = None

    def evaluate(self, values: Values) -> float:
        """The objective at ``values`` (at full fidelity for multi-fidelity problems)."""
        return float(self.function(values))

    def evaluate_curve(self, values: Values, epochs: int) -> list[float]:
        """The objective after each of the first ``epochs`` fidelity units."""
        if self.curve is None:
            raise ValueError(f"{self.name} has no fidelity")
        return self.curve(values, epochs)

    def regret(self, value: float) -> float:
        """Simple regret of a best-so-far value (never negative beyond rounding)."""
        return max(0.0, value - self.optimum)


def _vector(values: Values, parameters: Sequence[Parameter]) -> np.ndarray:
    out = np.empty(len(parameters))
    for i, p in enumerate(parameters):
        v = float(values[p.name])
        assert p.min is not None
        assert p.max is not None
        out[i] = min(p.max, max(p.min, v))
    return out


# --- Synthetic functions (formulas and optima as in Surjanovic & Bingham's library) ---


def branin(x1: float, x2: float) -> float:
    """Branin-Hoo; minimum 0.397887 at (-pi, 12.275), (pi, 2.275), (9.42478, 2.475)."""
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


BRANIN_MIN = 0.397887357729738

_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
#: The centres of Hartmann-6's four Gaussian wells.
HARTMANN6_WELLS = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
HARTMANN6_MIN = -3.32236801141551
HARTMANN6_ARGMIN = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)


def hartmann6(x: np.ndarray) -> float:
    """Hartmann-6 on ``[0, 1]^6``; minimum -3.32237."""
    inner = np.sum(_H6_A * (x[None, :] - HARTMANN6_WELLS) ** 2, axis=1)
    return float(-np.sum(_H6_ALPHA * np.exp(-inner)))


def rosenbrock(x: np.ndarray) -> float:
    """Rosenbrock; minimum 0 at (1, ..., 1)."""
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (x[:-1] - 1) ** 2))


def ackley(x: np.ndarray) -> float:
    """Ackley (a=20, b=0.2, c=2 pi); minimum 0 at the origin."""
    d = len(x)
    return float(
        -20.0 * math.exp(-0.2 * math.sqrt(float(np.sum(x**2)) / d))
        - math.exp(float(np.sum(np.cos(2 * math.pi * x))) / d)
        + 20.0
        + math.e
    )


def levy(x: np.ndarray) -> float:
    """Levy; minimum 0 at (1, ..., 1)."""
    w = 1 + (x - 1) / 4
    head = math.sin(math.pi * w[0]) ** 2
    body = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2))
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return float(head + body + tail)


def _vector_problem(
    name: str,
    *,
    title: str,
    function: Callable[[np.ndarray], float],
    dims: int,
    low: float,
    high: float,
    optimum: float,
    argmin: Sequence[float],
) -> Problem:
    parameters = tuple(floats([f"x{i}" for i in range(dims)], low, high))
    return Problem(
        name=name,
        title=title,
        parameters=parameters,
        function=lambda v: function(_vector(v, parameters)),
        optimum=optimum,
        minimisers=({f"x{i}": float(a) for i, a in enumerate(argmin)},),
    )


def _branin_problem() -> Problem:
    parameters = (
        Parameter(name="x1", type=ParameterType.FLOAT, min=-5.0, max=10.0),
        Parameter(name="x2", type=ParameterType.FLOAT, min=0.0, max=15.0),
    )
    return Problem(
        name="branin",
        title="Branin (2-d)",
        parameters=parameters,
        function=lambda v: branin(*_vector(v, parameters)),
        optimum=BRANIN_MIN,
        minimisers=(
            {"x1": -math.pi, "x2": 12.275},
            {"x1": math.pi, "x2": 2.275},
            {"x1": 9.42478, "x2": 2.475},
        ),
    )


# The mixed problem: Branin in two floats, plus a log-scaled float, an integer and
# a categorical whose effects add up; minimum 0 when each term is at its minimum.
MIXED_OFFSETS: dict[str, float] = {"adam": 0.0, "sgd": 0.6, "rmsprop": 0.3, "adagrad": 1.2}


def mixed(values: Values) -> float:
    """Branin (shifted to minimum 0) + (log10 lr + 2.5)^2 + 0.2 (layers - 3)^2 + offset[opt]."""
    x1 = min(10.0, max(-5.0, float(values["x1"])))
    x2 = min(15.0, max(0.0, float(values["x2"])))
    lr = min(1.0, max(1e-5, float(values["lr"])))
    layers = round(float(values["layers"]))
    optimizer = str(values["optimizer"])
    return (
        branin(x1, x2)
        - BRANIN_MIN
        + (math.log10(lr) + 2.5) ** 2
        + 0.2 * (layers - 3) ** 2
        + MIXED_OFFSETS[optimizer]
    )


def _mixed_problem() -> Problem:
    parameters = (
        Parameter(name="x1", type=ParameterType.FLOAT, min=-5.0, max=10.0),
        Parameter(name="x2", type=ParameterType.FLOAT, min=0.0, max=15.0),
        Parameter(name="lr", type=ParameterType.FLOAT, min=1e-5, max=1.0, log=True),
        Parameter(name="layers", type=ParameterType.INT, min=1, max=8),
        Parameter(name="optimizer", type=ParameterType.CATEGORICAL, values=list(MIXED_OFFSETS)),
    )
    return Problem(
        name="mixed",
        title="Mixed: Branin + log float + int + categorical (5-d)",
        parameters=parameters,
        function=mixed,
        optimum=0.0,
        minimisers=(
            {"x1": math.pi, "x2": 2.275, "lr": 10**-2.5, "layers": 3, "optimizer": "adam"},
        ),
    )


# --- Tabular real tasks -------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One axis of a table: interpolated (continuous) or exact (discrete)."""

    parameter: Parameter
    grid: tuple[ParameterValue, ...]

    @property
    def continuous(self) -> bool:
        """Whether values between grid points are interpolated."""
        return self.parameter.type is ParameterType.FLOAT or (
            self.parameter.type is ParameterType.INT and self.parameter.log
        )

    def coordinate(self, value: float) -> float:
        """Value in the interpolation coordinate (log for log-scaled parameters)."""
        return math.log(value) if self.parameter.log else value

    def weights(self, value: ParameterValue) -> list[tuple[int, float]]:
        """Grid indices and interpolation weights for ``value``."""
        if not self.continuous:
            if self.parameter.type is ParameterType.CATEGORICAL:
                return [(self.grid.index(value), 1.0)]
            v = round(float(value))
            ints = [int(g) for g in self.grid]
            v = min(ints[-1], max(ints[0], v))
            return [(ints.index(v), 1.0)]
        points = [self.coordinate(float(g)) for g in self.grid]
        x = self.coordinate(float(value))
        x = min(points[-1], max(points[0], x))
        j = int(np.searchsorted(points, x, side="right")) - 1
        j = min(len(points) - 2, max(0, j))
        t = (x - points[j]) / (points[j + 1] - points[j])
        return [(j, 1.0 - t), (j + 1, t)]


@dataclass
class Table:
    """Measured objective curves on a grid, interpolated multilinearly between vertices.

    ``data`` has one axis per :class:`Axis` and a last axis of curve points
    (trees or epochs, starting at 1).
    """

    axes: tuple[Axis, ...]
    data: np.ndarray
    _lookup: dict[tuple[tuple[int, float], ...], np.ndarray] = field(default_factory=dict)

    def curve(self, values: Values) -> np.ndarray:
        """The interpolated curve at ``values``."""
        per_axis = [a.weights(values[a.parameter.name]) for a in self.axes]
        out = np.zeros(self.data.shape[-1])
        for combo in product(*per_axis):
            weight = math.prod(w for _, w in combo)
            if weight == 0.0:
                continue
            out += weight * self.data[tuple(i for i, _ in combo)]
        return out

    @property
    def minimum(self) -> float:
        """The smallest measured value, hence the minimum of the interpolant."""
        return float(np.min(self.data))

    def argmin(self) -> tuple[dict[str, ParameterValue], int]:
        """The vertex and curve index (0-based) of the minimum."""
        index = np.unravel_index(int(np.argmin(self.data)), self.data.shape)
        vertex = {a.parameter.name: a.grid[i] for a, i in zip(self.axes, index[:-1], strict=True)}
        return vertex, int(index[-1])


def _log_grid(low: float, high: float, points: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.logspace(math.log10(low), math.log10(high), points))


def _lin_grid(low: float, high: float, points: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.linspace(low, high, points))


GBM_TREES = 200
GBM_AXES = (
    Axis(
        Parameter(name="learning_rate", type=ParameterType.FLOAT, min=0.01, max=1.0, log=True),
        _log_grid(0.01, 1.0, 7),
    ),
    Axis(Parameter(name="max_depth", type=ParameterType.INT, min=1, max=4), (1, 2, 3, 4)),
    Axis(
        Parameter(name="subsample", type=ParameterType.FLOAT, min=0.5, max=1.0),
        _lin_grid(0.5, 1.0, 3),
    ),
    Axis(
        Parameter(
            name="max_features", type=ParameterType.CATEGORICAL, values=["sqrt", "log2", "all"]
        ),
        ("sqrt", "log2", "all"),
    ),
)
GBM_TREES_PARAMETER = Parameter(name="n_estimators", type=ParameterType.INT, min=10, max=GBM_TREES)


def gbm_fit(vertex: tuple[ParameterValue, ...], trees: int) -> tuple[Any, list[float]]:
    """One gradient-boosting fit of ``trees`` trees at ``vertex``; its validation log loss per tree.

    Fixed split and seed, so a vertex always gives the same numbers; the fitted model
    is returned too, for tables that also read its size.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    lr, depth, subsample, features = vertex
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=1 / 3, random_state=0, stratify=y
    )
    model = GradientBoostingClassifier(
        n_estimators=trees,
        learning_rate=float(lr),
        max_depth=int(depth),
        subsample=float(subsample),
        max_features=None if features == "all" else features,
        random_state=0,
    )
    model.fit(x_train, y_train)
    losses = []
    for proba in model.staged_predict_proba(x_val):
        p = np.clip(proba[np.arange(len(y_val)), y_val], 1e-15, 1.0)
        losses.append(float(-np.mean(np.log(p))))
    return model, losses


def _gbm_vertex(vertex: tuple[ParameterValue, ...]) -> list[float]:
    """Validation log loss after each tree of one gradient-boosting fit."""
    return gbm_fit(vertex, GBM_TREES)[1]


MLP_EPOCHS = 27
MLP_LOSS_CAP = 3.0  # diverged runs (NaN or huge) count as this loss: worse than chance (2.30)
MLP_AXES = (
    Axis(
        Parameter(name="learning_rate_init", type=ParameterType.FLOAT, min=1e-4, max=1.0, log=True),
        _log_grid(1e-4, 1.0, 7),
    ),
    Axis(
        Parameter(name="alpha", type=ParameterType.FLOAT, min=1e-6, max=1e-1, log=True),
        _log_grid(1e-6, 1e-1, 4),
    ),
    Axis(
        Parameter(name="hidden", type=ParameterType.INT, min=16, max=128, log=True),
        (16, 32, 64, 128),
    ),
    Axis(
        Parameter(name="batch_size", type=ParameterType.CATEGORICAL, values=[64, 256]),
        (64, 256),
    ),
)


def _mlp_vertex(vertex: tuple[ParameterValue, ...]) -> list[float]:
    """Validation log loss after each epoch of one MLP trained with ``partial_fit``."""
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    lr, alpha, hidden, batch = vertex
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x / 16.0, y, test_size=1 / 3, random_state=0, stratify=y
    )
    model = MLPClassifier(
        hidden_layer_sizes=(int(hidden),),
        learning_rate_init=float(lr),
        alpha=float(alpha),
        batch_size=int(batch),
        random_state=0,
    )
    classes = np.arange(10)
    losses = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for _ in range(MLP_EPOCHS):
            model.partial_fit(x_train, y_train, classes=classes)
            proba = model.predict_proba(x_val)
            p = np.clip(proba[np.arange(len(y_val)), y_val], 1e-15, 1.0)
            loss = float(-np.mean(np.log(p)))
            losses.append(loss if math.isfinite(loss) else MLP_LOSS_CAP)
    return [min(MLP_LOSS_CAP, v) for v in losses]


_TABLES: dict[str, Table] = {}


def build_table(
    name: str,
    axes: tuple[Axis, ...],
    vertex: Callable[[tuple[ParameterValue, ...]], list[float]],
    processes: int = 1,
) -> Table:
    """Measure every vertex (in ``processes`` processes), or load the cached table."""
    if name in _TABLES:
        return _TABLES[name]
    path = CACHE_DIR / f"{name}.json"
    grid = list(product(*(a.grid for a in axes)))
    if path.exists():
        stored = json.loads(path.read_text())
        data = np.array(stored["data"], dtype=float)
    else:
        if processes > 1:
            with ProcessPoolExecutor(processes) as pool:
                rows = list(pool.map(vertex, grid, chunksize=4))
        else:
            rows = [vertex(v) for v in grid]
        data = np.array(rows, dtype=float)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"grid": grid, "data": data.round(6).tolist()}))
        tmp.replace(path)
        data = data.round(6)
    shape = tuple(len(a.grid) for a in axes)
    table = Table(axes=axes, data=data.reshape(*shape, -1))
    _TABLES[name] = table
    return table


def gbm_table(processes: int = 1) -> Table:
    """The gradient-boosting table (built on first use; about 250 fits)."""
    return build_table("gbm-breast-cancer", GBM_AXES, _gbm_vertex, processes)


def mlp_table(processes: int = 1) -> Table:
    """The MLP learning-curve table (built on first use; about 220 curves of 27 epochs)."""
    return build_table("mlp-digits", MLP_AXES, _mlp_vertex, processes)


def _gbm_problem() -> Problem:
    parameters = (
        GBM_AXES[0].parameter,
        GBM_TREES_PARAMETER,
        *(a.parameter for a in GBM_AXES[1:]),
    )

    def function(values: Values) -> float:
        trees = min(GBM_TREES, max(10, round(float(values["n_estimators"]))))
        return float(gbm_table().curve(values)[trees - 1])

    def optimum() -> float:
        return float(np.min(gbm_table().data[..., 9:]))

    return _LazyOptimum(
        name="gbm-breast-cancer",
        title="Gradient boosting on breast_cancer: validation log loss (5-d)",
        parameters=parameters,
        function=function,
        optimum=math.nan,
        kind="model",
        lazy_optimum=optimum,
    )


def _mlp_problem() -> Problem:
    def curve(values: Values, epochs: int) -> list[float]:
        return [float(v) for v in mlp_table().curve(values)[:epochs]]

    def optimum() -> float:
        return float(np.min(mlp_table().data[..., MLP_EPOCHS - 1]))

    return _LazyOptimum(
        name="mlp-digits",
        title=f"MLP on digits, epochs 1-{MLP_EPOCHS}: validation log loss (4-d + fidelity)",
        parameters=tuple(a.parameter for a in MLP_AXES),
        function=lambda v: curve(v, MLP_EPOCHS)[-1],
        optimum=math.nan,
        kind="model",
        fidelity=Fidelity(parameter="epochs", min=1, max=MLP_EPOCHS, eta=3),
        curve=curve,
        lazy_optimum=optimum,
    )


@dataclass(frozen=True)
class _LazyOptimum(Problem):
    """A problem whose optimum comes from its table, computed only when first asked for."""

    lazy_optimum: Callable[[], float] | None = None

    def regret(self, value: float) -> float:
        """Regret against the table's minimum."""
        assert self.lazy_optimum is not None
        return max(0.0, value - self.lazy_optimum())

    @property
    def known_optimum(self) -> float:
        """The minimum of the table (builds it when needed)."""
        assert self.lazy_optimum is not None
        return self.lazy_optimum()


def optimum_of(problem: Problem) -> float:
    """The problem's minimum (for tabular problems, the table's)."""
    if isinstance(problem, _LazyOptimum):
        return problem.known_optimum
    return problem.optimum


def quality_problems() -> list[Problem]:
    """The seven problems of the quality benchmark, in report order."""
    return [
        _branin_problem(),
        _vector_problem(
            "hartmann6",
            title="Hartmann-6",
            function=hartmann6,
            dims=6,
            low=0.0,
            high=1.0,
            optimum=HARTMANN6_MIN,
            argmin=HARTMANN6_ARGMIN,
        ),
        _vector_problem(
            "rosenbrock4",
            title="Rosenbrock-4",
            function=rosenbrock,
            dims=4,
            low=-5.0,
            high=10.0,
            optimum=0.0,
            argmin=[1.0] * 4,
        ),
        # Ackley's box is shifted off-centre ([-22.768, 42.768] instead of +-32.768):
        # on the symmetric box the optimum is the box's centre, which any sampler that
        # starts at the centre (Sobol's first point, a grid) hits by construction.
        _vector_problem(
            "ackley5",
            title="Ackley-5",
            function=ackley,
            dims=5,
            low=-22.768,
            high=42.768,
            optimum=0.0,
            argmin=[0.0] * 5,
        ),
        _vector_problem(
            "levy10",
            title="Levy-10",
            function=levy,
            dims=10,
            low=-10.0,
            high=10.0,
            optimum=0.0,
            argmin=[1.0] * 10,
        ),
        _mixed_problem(),
        _gbm_problem(),
    ]


def _branin_fidelity_problem() -> Problem:
    """Branin plus a gap that closes as 1/epoch: a cheap stand-in for smoke runs."""
    base = _branin_problem()

    def curve(values: Values, epochs: int) -> list[float]:
        value = base.evaluate(values)
        return [value + 20.0 / e for e in range(1, epochs + 1)]

    return Problem(
        name="branin-fidelity",
        title="Branin with a 20/epoch gap, epochs 1-9 (smoke runs only)",
        parameters=base.parameters,
        function=lambda v: curve(v, 9)[-1],
        optimum=BRANIN_MIN + 20.0 / 9,
        fidelity=Fidelity(parameter="epochs", min=1, max=9, eta=3),
        curve=curve,
    )


FIDELITY_PROBLEMS: dict[str, Callable[[], Problem]] = {
    "mlp-digits": _mlp_problem,
    "branin-fidelity": _branin_fidelity_problem,
}


def fidelity_problem(name: str = "mlp-digits") -> Problem:
    """The multi-fidelity task (``branin-fidelity`` is a cheap one for smoke runs)."""
    return FIDELITY_PROBLEMS[name]()


def problem_by_name(name: str) -> Problem:
    """Any benchmark problem by its name."""
    if name in FIDELITY_PROBLEMS:
        return fidelity_problem(name)
    for problem in quality_problems():
        if problem.name == name:
            return problem
    raise KeyError(name)
