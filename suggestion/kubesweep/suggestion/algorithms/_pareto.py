"""Pareto ranks, crowding and hypervolume of loss vectors, for multi-objective search.

Losses are minimised on every axis (the history flips maximised objectives).
Non-dominated ranks and the hypervolume come from ``moocore``, a maintained
library of exact multi-objective indicators, rather than hand-written sweeps;
crowding distance is the few lines NSGA-II defines it by.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def pareto_ranks(losses: FloatArray) -> npt.NDArray[np.int_]:
    """Each row's non-dominated rank: 0 for the front, 1 for the front once it is removed…"""
    if len(losses) == 0:
        return np.zeros(0, dtype=int)
    return np.asarray(moocore.pareto_rank(losses), dtype=int)


def crowding(losses: FloatArray) -> FloatArray:
    """Crowding distance of each row within its set; each axis's extremes get infinity."""
    count, axes = losses.shape
    distance = np.zeros(count)
    if count <= 2:
        return np.full(count, np.inf)
    for axis in range(axes):
        order = np.argsort(losses[:, axis], kind="stable")
        column = losses[order, axis]
        span = column[-1] - column[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[2:] - column[:-2]) / span
    return distance


def hypervolume(
    losses: FloatArray | Sequence[Sequence[float]], reference: Sequence[float]
) -> float:
    """The volume dominated by ``losses`` and bounded by ``reference`` (worse on every axis).

    Points not better than the reference on every axis add nothing.
    """
    points = np.asarray(losses, dtype=float).reshape(-1, len(reference))
    ref = np.asarray(reference, dtype=float)
    inside = points[np.all(points < ref, axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(moocore.hypervolume(inside, ref=ref))
