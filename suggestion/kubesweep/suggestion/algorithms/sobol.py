"""Quasi-random search along a scrambled Sobol' sequence.

Sobol', "On the distribution of points in a cube and the approximate evaluation
of integrals" (1967), with Owen's scrambling (Owen, "Scrambling Sobol' and
Niederreiter-Xing points", J. Complexity 1998); implemented by
``scipy.stats.qmc.Sobol``. Low-discrepancy points fill the space more evenly
than random ones, so small budgets leave fewer holes (Bergstra & Bengio 2012, §5).

The sequence is fixed by the seed alone and each call skips ahead by the length
of the history, so successive calls continue the sequence without any hidden
state. Points that collide with the history (possible in discrete spaces, or
with trials from elsewhere) are skipped by drawing further; in a nearly
used-up finite space the remainder comes from deduplicated random sampling.

Settings: none.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from scipy.stats import qmc

from kubesweep.api.experiment import ParameterValue
from kubesweep.api.suggestion_wire import Assignment, SearchSpace, SuggestReply
from kubesweep.suggestion.contract import History, rng_for
from kubesweep.suggestion.settings import Setting, parse
from kubesweep.suggestion.space import Space, Values

SETTINGS: tuple[Setting, ...] = ()
_ROUNDS = 8


class SobolSearch:
    """Scrambled Sobol' points, continued call after call."""

    def __init__(self, space: Space, seed: int | None) -> None:
        self.space = space
        self.seed = seed

    def suggest(self, history: History, count: int) -> SuggestReply:
        """The next ``count`` points of the sequence not already in the history."""
        avoid = {self.space.key(t.parameters) for t in history.trials}
        sampler = qmc.Sobol(d=self.space.dim, scramble=True, seed=rng_for(self.seed, 0, "sobol"))
        out: list[Values] = []
        with warnings.catch_warnings():
            # Sobol' balance properties want powers of two; any count is still fine.
            warnings.simplefilter("ignore", UserWarning)
            if history.trials:
                sampler.fast_forward(len(history.trials))
            for _ in range(_ROUNDS):
                if len(out) >= count:
                    break
                for row in sampler.random(count - len(out)):
                    values = self.space.from_unit(row)
                    key = self.space.key(values)
                    if key not in avoid:
                        avoid.add(key)
                        out.append(values)
        if len(out) < count:
            rng = rng_for(self.seed, len(history.trials), "sobol-rest")
            out.extend(self.space.sample_unique(rng, count - len(out), avoid))
        return SuggestReply(
            assignments=[Assignment(parameters=p) for p in out],
            exhausted=len(out) < count,
        )


def create(
    space: SearchSpace, settings: Mapping[str, ParameterValue], seed: int | None
) -> SobolSearch:
    """Build Sobol' search."""
    parse(SETTINGS, settings)
    return SobolSearch(Space(space), seed)
