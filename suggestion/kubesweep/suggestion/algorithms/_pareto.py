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

from kubesweep.api.experiment import Direction
from kubesweep.api.suggestion_wire import ObservedTrial
from kubesweep.suggestion.contract import History

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


def scalarised(history: History) -> History:
    """A one-objective history ordering trials as multi-objective TPE splits them.

    Each trial with a usable loss vector gets the value ``rank + 0.5 * (1 - c /
    c_max)``: its non-dominated rank first (the front is 0), then, within a rank,
    its share of that rank's hypervolume (``c``, its exclusive contribution, from
    ``moocore``; the reference point lies a tenth of each axis's span beyond the
    worst value), so of two trials of one rank the one adding more to the front
    sorts first (Ozaki et al., "Multiobjective Tree-Structured Parzen Estimator for
    Computationally Expensive Optimization Problems", GECCO 2020, split the same
    way). Only the order matters to the algorithms that read it. Feasibility and
    violations stay, so infeasible trials still rank after feasible ones. A
    history with one objective is returned as it is.
    """
    if history.objectives is None:
        return history
    scores: dict[int, float] = {}
    for feasible in (True, False):  # infeasible trials must not push feasible ones down a rank
        group = [t for t in history.trials if (t.feasible is not False) is feasible]
        scores.update(_rank_scores(history, group))
    trials = [
        t.model_copy(update={"value": scores.get(id(t)), "values": None}) for t in history.trials
    ]
    return History(trials, Direction.MINIMIZE)


def _rank_scores(history: History, trials: Sequence[ObservedTrial]) -> dict[int, float]:
    vectors = {id(t): v for t in trials if (v := history.losses(t)) is not None}
    scores: dict[int, float] = {}
    if vectors:
        keys = list(vectors)
        losses = np.array([vectors[k] for k in keys], dtype=float)
        ranks = pareto_ranks(losses)
        span = np.ptp(losses, axis=0)
        reference = losses.max(axis=0) + 0.1 * np.where(span > 0, span, 1.0)
        for rank in np.unique(ranks):
            members = np.flatnonzero(ranks == rank)
            contribution = np.asarray(
                moocore.hv_contributions(losses[members], ref=reference), dtype=float
            )
            top = contribution.max()
            share = contribution / top if top > 0 else np.ones(len(members))
            for member, part in zip(members, share, strict=True):
                scores[keys[member]] = float(rank) + 0.5 * (1.0 - float(part))
    return scores
