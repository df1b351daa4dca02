"""The problems of the multi-objective benchmark: two textbook fronts, two training runs.

- ``zdt1-5d`` and ``dtlz2-6d``: ZDT1 (2 objectives, 5 variables) and DTLZ2
  (3 objectives, 6 variables), the standard test problems with known fronts.
- Two problems from real training runs, where a user trades a model's validation
  loss against what it costs to train or to serve. They are real fits of
  scikit-learn models to datasets that ship with it (nothing is downloaded),
  tabulated as the single-objective benchmark's real tasks are (see
  :mod:`bench.suggest.problems`): every vertex of a grid over the hyperparameters
  is fitted once, with fixed splits and seeds, and values between vertices are
  interpolated multilinearly. So a 100-trial search costs milliseconds per
  evaluation, every method sees the same deterministic function, and every value
  is a convex combination of real measurements.

  - ``mlp-digits-flops``: a one-hidden-layer MLP on digits, validation log loss
    after ``epochs`` epochs of ``partial_fit`` against the training cost in GFLOPs
    (``6 * training samples * weights * epochs``: a multiply-add is two FLOPs, and
    the backward pass costs about twice the forward one). The loss curves are the
    multi-fidelity task's table, so the two benchmarks share one cache.
  - ``gbm-breast-cancer-size``: gradient boosting on breast_cancer, validation log
    loss after ``n_estimators`` trees against the model's size, the number of
    nodes in those trees (thousands), counted in the fitted model.

Every problem minimises each objective and declares its space as kubesweep
:class:`~kubesweep.api.experiment.Parameter` objects, which the peers get
translated; its hypervolume reference point bounds the region that counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bench.suggest.problems import (
    GBM_AXES,
    MLP_AXES,
    MLP_EPOCHS,
    Table,
    Values,
    build_table,
    floats,
    gbm_fit,
    mlp_table,
)
from kubesweep.api.experiment import Parameter, ParameterType, ParameterValue

#: Digits has 1,797 images; a third is held out for validation (as the tables' fits do).
DIGITS_TRAIN = 1797 - 599
DIGITS_FEATURES = 64
DIGITS_CLASSES = 10

GBM_SIZE_TREES = 200


@dataclass(frozen=True)
class MoProblem:
    """Objectives (all minimised) over a search space, and the hypervolume's reference point."""

    name: str
    title: str
    parameters: tuple[Parameter, ...]
    objective_names: tuple[str, ...]
    reference: tuple[float, ...]
    function: Callable[[Values], list[float]]
    kind: str = "synthetic"

    def evaluate(self, values: Values) -> list[float]:
        """The objectives at ``values``."""
        return self.function(values)


# --- Textbook problems -------------------------------------------------------------------


def zdt1(x: Sequence[float]) -> list[float]:
    """ZDT1: the front is f2 = 1 - sqrt(f1) at x[1:] = 0."""
    g = 1.0 + 9.0 * sum(x[1:]) / (len(x) - 1)
    return [x[0], g * (1.0 - math.sqrt(x[0] / g))]


def dtlz2(x: Sequence[float], objectives: int = 3) -> list[float]:
    """DTLZ2: the front is the unit sphere's positive orthant at x[m-1:] = 0.5."""
    g = sum((v - 0.5) ** 2 for v in x[objectives - 1 :])
    out = []
    for i in range(objectives):
        f = 1.0 + g
        for v in x[: objectives - 1 - i]:
            f *= math.cos(v * math.pi / 2)
        if i > 0:
            f *= math.sin(x[objectives - 1 - i] * math.pi / 2)
        out.append(f)
    return out


def _unit_box_problem(
    name: str,
    title: str,
    dim: int,
    reference: tuple[float, ...],
    function: Callable[[Sequence[float]], list[float]],
) -> MoProblem:
    names = [f"x{i}" for i in range(dim)]
    return MoProblem(
        name=name,
        title=title,
        parameters=tuple(floats(names, 0.0, 1.0)),
        objective_names=tuple(f"f{i}" for i in range(len(reference))),
        reference=reference,
        function=lambda values: function([float(values[n]) for n in names]),
    )


# --- Training runs -----------------------------------------------------------------------


def mlp_weights(hidden: int) -> int:
    """Weights and biases of the digits MLP with one hidden layer of ``hidden`` units."""
    return (DIGITS_FEATURES + 1) * hidden + (hidden + 1) * DIGITS_CLASSES


def mlp_training_gflops(hidden: int, epochs: int) -> float:
    """Training cost: forward and backward passes over the training set, ``epochs`` times."""
    return 6.0 * DIGITS_TRAIN * mlp_weights(hidden) * epochs / 1e9


def _clamp_int(value: ParameterValue, low: int, high: int) -> int:
    return min(high, max(low, round(float(value))))


def _mlp_flops_problem() -> MoProblem:
    epochs_parameter = Parameter(name="epochs", type=ParameterType.INT, min=1, max=MLP_EPOCHS)

    def function(values: Values) -> list[float]:
        hidden = _clamp_int(values["hidden"], 16, 128)
        epochs = _clamp_int(values["epochs"], 1, MLP_EPOCHS)
        loss = float(mlp_table().curve(values)[epochs - 1])
        return [loss, mlp_training_gflops(hidden, epochs)]

    return MoProblem(
        name="mlp-digits-flops",
        title="MLP on digits: validation log loss against training GFLOPs (5-d)",
        parameters=(*(a.parameter for a in MLP_AXES), epochs_parameter),
        objective_names=("val_loss", "train_gflops"),
        # Chance is a log loss of 2.30; the largest run costs 1.87 GFLOPs.
        reference=(2.5, 2.0),
        function=function,
        kind="model",
    )


def _gbm_size_vertex(vertex: tuple[ParameterValue, ...]) -> list[float]:
    """Validation log loss after each tree, then the nodes in the first k trees, k = 1..200."""
    model, losses = gbm_fit(vertex, GBM_SIZE_TREES)
    nodes = np.cumsum([tree[0].tree_.node_count for tree in model.estimators_])
    return losses + [float(n) for n in nodes]


def gbm_size_table(processes: int = 1) -> Table:
    """Loss and size curves of gradient boosting (built on first use; 252 fits)."""
    return build_table("gbm-breast-cancer-size", GBM_AXES, _gbm_size_vertex, processes)


def _gbm_size_problem() -> MoProblem:
    trees_parameter = Parameter(
        name="n_estimators", type=ParameterType.INT, min=1, max=GBM_SIZE_TREES
    )

    def function(values: Values) -> list[float]:
        trees = _clamp_int(values["n_estimators"], 1, GBM_SIZE_TREES)
        curves = gbm_size_table().curve(values)
        return [float(curves[trees - 1]), float(curves[GBM_SIZE_TREES + trees - 1]) / 1000.0]

    return MoProblem(
        name="gbm-breast-cancer-size",
        title="Gradient boosting on breast_cancer: validation log loss against "
        "thousands of nodes (5-d)",
        parameters=(GBM_AXES[0].parameter, trees_parameter, *(a.parameter for a in GBM_AXES[1:])),
        objective_names=("val_loss", "knodes"),
        # The prior alone has a log loss of 0.66; 200 trees of depth 4 hold at most 6.2 k nodes.
        reference=(0.7, 6.5),
        function=function,
        kind="model",
    )


PROBLEMS: Mapping[str, Callable[[], MoProblem]] = {
    "zdt1-5d": lambda: _unit_box_problem(
        "zdt1-5d", "ZDT1, 5 variables, 2 objectives", 5, (1.1, 11.0), zdt1
    ),
    "dtlz2-6d": lambda: _unit_box_problem(
        "dtlz2-6d", "DTLZ2, 6 variables, 3 objectives", 6, (2.5, 2.5, 2.5), dtlz2
    ),
    "mlp-digits-flops": _mlp_flops_problem,
    "gbm-breast-cancer-size": _gbm_size_problem,
}


def build_tables(processes: int) -> None:
    """Build (or load) the training runs' tables, e.g. once before a benchmark run."""
    mlp_table(processes)
    gbm_size_table(processes)


def mo_problems(names: Sequence[str] | None = None) -> list[MoProblem]:
    """The problems by name, in report order (all when ``names`` is None)."""
    return [PROBLEMS[n]() for n in (names or list(PROBLEMS))]


if __name__ == "__main__":
    import sys

    build_tables(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
