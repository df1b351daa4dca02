"""Random search: independent uniform draws over the space.

Bergstra & Bengio, "Random Search for Hyper-Parameter Optimization", JMLR 13
(2012): with few effective dimensions, random points cover each of them far
better than a grid of the same size, which makes random search the baseline
every model-based method must beat.

Draws are uniform in the unit cube of :class:`~kubesweep.suggestion.space.Space`
(so log parameters are log-uniform and each integer or step equally likely).
The generator is fixed by the seed and the history length, so a reply is
reproducible and successive calls differ. Points whose canonical key is already
in the history (pending included) or in the same reply are redrawn, and a
finite space reports ``exhausted`` once every point is used.

Settings: none.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubesweep.api.experiment import ParameterValue
from kubesweep.api.suggestion_wire import Assignment, SearchSpace, SuggestReply
from kubesweep.suggestion.contract import History, rng_for
from kubesweep.suggestion.settings import Setting, parse
from kubesweep.suggestion.space import Space

SETTINGS: tuple[Setting, ...] = ()


class RandomSearch:
    """Uniform, deduplicated sampling."""

    def __init__(self, space: Space, seed: int | None) -> None:
        self.space = space
        self.seed = seed

    def suggest(self, history: History, count: int) -> SuggestReply:
        """``count`` new uniform points, or fewer with ``exhausted`` in a used-up finite space."""
        rng = rng_for(self.seed, len(history.trials), "random")
        avoid = {self.space.key(t.parameters) for t in history.trials}
        points = self.space.sample_unique(rng, count, avoid)
        return SuggestReply(
            assignments=[Assignment(parameters=p) for p in points],
            exhausted=len(points) < count,
        )


def create(
    space: SearchSpace, settings: Mapping[str, ParameterValue], seed: int | None
) -> RandomSearch:
    """Build random search."""
    parse(SETTINGS, settings)
    return RandomSearch(Space(space), seed)
