"""Which way a metric is better, and how its series reduces to one value.

These two enumerations are shared by the single ``spec.objective`` and by
``spec.objectives`` and ``spec.constraints``, so they live apart from both.
"""

from __future__ import annotations

from enum import StrEnum


class Direction(StrEnum):
    """Whether the objective metric is better when smaller or larger."""

    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class Strategy(StrEnum):
    """How a metric's series of observations reduces to one value."""

    MIN = "min"
    MAX = "max"
    LATEST = "latest"
