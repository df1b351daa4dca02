"""Parameter importance, fANOVA-style, from a random forest (scikit-learn).

fANOVA measures how much of the objective's variance each parameter explains
through its main effect. Here a random forest models objective = f(parameters)
and a parameter's main effect is its partial dependence: the forest's mean
prediction with that parameter fixed to each value of a grid, averaged over the
observed trials. The variance of that curve, over the summed variances of all
curves, is the parameter's share. It is the first-order term of fANOVA's
decomposition, computed on the observed data rather than the whole box, which is
what optuna-dashboard's default evaluator shows too.

Encoding: log-scaled parameters in log space, categoricals as their position in
``values``, inactive conditional parameters as a value just below the range, so
"inactive" is a region the trees can split off.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from kubesweep.api import Parameter, ParameterType, ParameterValue

#: Fewer trials with an objective than this give no importance (a forest of noise).
MIN_TRIALS = 4
#: Trials the forest is fitted on at most; beyond it, a seeded sample of them.
MAX_ROWS = 2000
GRID_POINTS = 16


def encode(parameter: Parameter, value: ParameterValue | None) -> float:
    """One parameter value as a number for the forest."""
    if parameter.type is ParameterType.CATEGORICAL:
        values = parameter.values or []
        for position, candidate in enumerate(values):
            if type(candidate) is type(value) and candidate == value:
                return float(position)
        return -1.0
    low, high = parameter.low, parameter.high
    if parameter.log:
        low, high = math.log(low), math.log(high)
    if value is None or isinstance(value, bool | str):
        return low - 0.1 * (high - low) - 1e-9
    number = float(value)
    if parameter.log:
        number = math.log(max(number, 1e-300))
    return number


def importance(
    parameters: Sequence[Parameter],
    rows: Sequence[Mapping[str, ParameterValue]],
    objectives: Sequence[float],
    *,
    seed: int = 0,
) -> dict[str, float]:
    """Each parameter's share of the explained variance (summing to 1), or ``{}``.

    Empty when there are fewer than :data:`MIN_TRIALS` trials or the objective
    does not vary.
    """
    if len(rows) < MIN_TRIALS or len(rows) != len(objectives) or not parameters:
        return {}
    if max(objectives) - min(objectives) <= 0:
        return {}
    if len(rows) > MAX_ROWS:
        # A forest on every trial of a 100,000-trial experiment takes minutes and says
        # no more than one on a few thousand of them, drawn the same way every time.
        chosen = sorted(random.Random(seed).sample(range(len(rows)), MAX_ROWS))
        rows = [rows[i] for i in chosen]
        objectives = [objectives[i] for i in chosen]
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    x = np.array([[encode(p, row.get(p.name)) for p in parameters] for row in rows], dtype=float)
    y = np.array(objectives, dtype=float)
    forest = RandomForestRegressor(n_estimators=64, min_samples_leaf=1, random_state=seed)
    forest.fit(x, y)
    variances = []
    for column in range(x.shape[1]):
        observed = np.unique(x[:, column])
        if observed.size <= 1:
            variances.append(0.0)
            continue
        grid = (
            observed
            if observed.size <= GRID_POINTS
            else np.linspace(observed.min(), observed.max(), GRID_POINTS)
        )
        means = []
        for value in grid:
            fixed = x.copy()
            fixed[:, column] = value
            means.append(float(forest.predict(fixed).mean()))
        variances.append(float(np.var(means)))
    total = sum(variances)
    if total <= 0:
        return {p.name: 0.0 for p in parameters}
    return {p.name: v / total for p, v in zip(parameters, variances, strict=True)}
