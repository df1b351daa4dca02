"""Which trials a report's per-trial plots draw, and which its importance is fitted on.

The parallel coordinates, slices, intermediate values and Pareto fronts draw one
element per trial: ten thousand of them take seconds to draw and a hundred
thousand make a page of 80 MB, and they say no more than a thousand. The
history (a canvas of two numbers per trial) and the counts keep every trial.
The static report and the dashboard draw the same sample, so the two pages agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubesweep.api import Direction
from kubesweep.cli.ranking import TrialRecord, rank

#: Trials the per-trial plots (parallel coordinates, slices, intermediate values, Pareto
#: fronts) draw at most; the history shows every one.
DRAWN = 1000
#: Trials the parameter importance is fitted on at most: an even sample of them.
FITTED = 2000


def drawn_records(
    records: Sequence[TrialRecord],
    direction: Direction,
    limit: int = DRAWN,
    ranked: Sequence[TrialRecord] | None = None,
) -> list[TrialRecord]:
    """The trials the per-trial plots draw: all of them up to ``limit``, else a fifth of
    ``limit`` best ones, the worst, and an even sample of the others, by index.

    Ten thousand SVG lines take seconds to draw and say no more than a thousand:
    the best trials are the ones looked at, the sample keeps the shape of the rest.
    The sample is every ``stride``-th trial by index, ``stride`` a power of two, so
    a new trial leaves it as it was until the count doubles: the page's deltas
    then carry the one new trial, not a sample shifted by one. ``ranked`` is
    ``records`` ranked, when the caller has it already (a sort of 100,000 trials).
    """
    if len(records) <= limit:
        return list(records)
    if ranked is None:
        ranked = rank(records, direction)
    best = ranked[: limit // 5]
    room = limit - len(best) - 1
    stride = 1
    while len(records) > stride * room:
        stride *= 2
    picked = [r for r in ranked[limit // 5 :] if r.index % stride == 0]
    return sorted({r.name: r for r in [*best, *picked, ranked[-1]]}.values(), key=lambda r: r.index)


def fitted_records(records: Sequence[TrialRecord], limit: int = FITTED) -> list[TrialRecord]:
    """An even sample of at most ``limit`` trials, by index: what importance is fitted on."""
    if len(records) <= limit:
        return list(records)
    return [records[i * (len(records) - 1) // (limit - 1)] for i in range(limit)]


def thin_pareto(front: dict[str, Any] | None, limit: int = DRAWN) -> dict[str, Any] | None:
    """Every point of the front, and an even sample of the dominated ones up to ``limit``."""
    if front is None or len(front["points"]) <= limit:
        return front
    on = [p for p in front["points"] if p["front"]]
    off = [p for p in front["points"] if not p["front"]]
    room = max(limit - len(on), 2)
    sample = [off[i * (len(off) - 1) // (room - 1)] for i in range(min(room, len(off)))]
    return {**front, "points": [*on, *sample]}
