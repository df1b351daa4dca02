"""Several objectives and constraints: ``spec.objectives`` and ``spec.constraints``.

A sweep that weighs accuracy against latency, or loss under a memory limit, states
each metric once, with the direction it is better in (``objectives``) or the
bounds it must keep (``constraints``). These models are the shapes of those two
lists; the rules that tie them to the rest of the spec (one of ``objective`` and
``objectives``, which algorithms search several objectives) are on
:class:`~kubesweep.api.experiment.ExperimentSpec`.

Several objectives have no single best trial: the result is the Pareto front,
the finished feasible trials that no other such trial beats on every objective
(see :mod:`kubesweep.planning.pareto`). A constraint makes a trial *feasible*
when its metric was reported and lies within the bounds; an infeasible trial is
never the best trial nor on the front, whatever its objective.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field

from kubesweep.api.base import ApiModel, Rule
from kubesweep.api.metric_kinds import Direction, Strategy

#: How many objectives ``spec.objectives`` takes: two (fewer is ``spec.objective``) to four.
MIN_OBJECTIVES = 2
MAX_OBJECTIVES = 4
#: How many metrics ``spec.constraints`` may bound.
MAX_CONSTRAINTS = 8


class ObjectiveMetric(ApiModel):
    """One of several objectives: a metric and the direction it is better in."""

    metric: str = Field(min_length=1, max_length=63)
    direction: Direction
    strategy: Strategy | None = Field(
        default=None,
        description="How the metric's series reduces to one value; defaults to the "
        "direction (min for minimize, max for maximize).",
    )
    target: float | None = Field(
        default=None,
        description="The experiment ends with TargetReached once one feasible trial reaches "
        "every objective's target that is set.",
    )

    def reached(self, value: float) -> bool:
        """Whether ``value`` meets this objective's target (False without a target)."""
        if self.target is None:
            return False
        if self.direction is Direction.MINIMIZE:
            return value <= self.target
        return value >= self.target

    @property
    def reduction(self) -> Strategy:
        """The reduction of the metric, with the direction as default."""
        if self.strategy is not None:
            return self.strategy
        return Strategy.MIN if self.direction is Direction.MINIMIZE else Strategy.MAX


class Constraint(ApiModel):
    """A metric that must stay within bounds for a trial to count (to be *feasible*)."""

    metric: str = Field(min_length=1, max_length=63)
    max: float | None = Field(default=None, description="Feasible only if the metric is <= max.")
    min: float | None = Field(default=None, description="Feasible only if the metric is >= min.")
    strategy: Strategy | None = Field(
        default=None,
        description="How the metric's series reduces to one value; latest unless set.",
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.min) || has(self.max)",
            message="constraints[]: a constraint needs max, min or both",
            check=lambda c: c.min is not None or c.max is not None,
            field_path=".max",
        ),
        Rule(
            cel="!has(self.min) || !has(self.max) || self.min <= self.max",
            message="constraints[].max must not be below min; no value could be feasible",
            check=lambda c: c.min is None or c.max is None or c.min <= c.max,
            field_path=".max",
        ),
    )

    @property
    def reduction(self) -> Strategy:
        """The reduction of the metric: latest unless set."""
        return self.strategy if self.strategy is not None else Strategy.LATEST

    def violation(self, value: float | None) -> float | None:
        """How far ``value`` lies outside the bounds (0 inside); None when it is not known."""
        if value is None or math.isnan(value):
            return None
        excess = 0.0
        if self.max is not None and value > self.max:
            excess += value - self.max
        if self.min is not None and value < self.min:
            excess += self.min - value
        return excess
