"""Grid search: every combination of the discretised space, in order, exactly once.

Grid search needs no paper, but its contract matters: it is the one algorithm
whose space ends, so it must say so (``exhausted``) rather than repeat itself,
and it must skip every point already in the history, pending, failed or
suggested by someone else, so that a restart or a warm start neither
duplicates nor loses a point. Conditional parameters vary only where active.

The history is reduced to a set of canonical keys (O(n)); the grid is then
walked lazily in lexicographic order until ``count`` unused points are found.

Settings:

- ``defaultPoints`` (default ``10``): values per float parameter without a
  ``step`` (evenly spaced, log-spaced when ``log``). The Experiment CRD requires
  a step for grid, so this only serves direct callers of the service.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubesweep.api.experiment import ParameterValue
from kubesweep.api.suggestion_wire import Assignment, SearchSpace, SuggestReply
from kubesweep.suggestion.contract import History
from kubesweep.suggestion.settings import Setting, parse
from kubesweep.suggestion.space import Space

SETTINGS = (
    Setting(
        "defaultPoints",
        10,
        "values per float parameter without a step",
        minimum=2,
        maximum=1000,
    ),
)


class GridSearch:
    """Walks the grid, skipping points the history holds."""

    def __init__(self, space: Space, points: int) -> None:
        self.space = space
        self.points = points

    def suggest(self, history: History, count: int) -> SuggestReply:
        """The next ``count`` unused grid points; ``exhausted`` once none remain after them."""
        used = {self.space.key(t.parameters) for t in history.trials}
        out: list[Assignment] = []
        more = False
        for values in self.space.grid(self.points):
            key = self.space.key(values)
            if key in used:
                continue
            if len(out) == count:
                more = True
                break
            used.add(key)
            out.append(Assignment(parameters=values))
        return SuggestReply(assignments=out, exhausted=not more)


def create(
    space: SearchSpace,
    settings: Mapping[str, ParameterValue],
    seed: int | None,  # noqa: ARG001
) -> GridSearch:
    """Build grid search (the seed is unused: the order is fixed)."""
    parsed = parse(SETTINGS, settings)
    return GridSearch(Space(space), parsed.integer("defaultPoints"))
