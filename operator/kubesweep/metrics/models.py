"""Conversion of the reducers' plain values into the API's status models.

Kept apart from :mod:`kubesweep.metrics.reduce` because it imports the pydantic
API models, which the collector sidecar must not load; the operator uses it to
write Trial status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kubesweep.api.status import MAX_TRIAL_METRICS, CurvePoint, MetricSummary
from kubesweep.metrics.reduce import MetricStats, Point


def metric_summary(stats: MetricStats) -> MetricSummary:
    """``stats`` as the API's ``MetricSummary``."""
    return MetricSummary(
        name=stats.name,
        latest=stats.latest,
        min=stats.min,
        max=stats.max,
        step=stats.step,
        count=stats.count,
    )


def metric_summaries(
    stats: Mapping[str, MetricStats] | Iterable[MetricStats],
) -> list[MetricSummary]:
    """Summaries for Trial status, at most ``MAX_TRIAL_METRICS`` of them, in order."""
    values = stats.values() if isinstance(stats, Mapping) else stats
    return [metric_summary(item) for item in values][:MAX_TRIAL_METRICS]


def curve_points(points: Iterable[Point]) -> list[CurvePoint]:
    """Curve points for Trial status."""
    return [CurvePoint(step=step, value=value) for step, value in points]


def metric_stats(summary: MetricSummary) -> MetricStats:
    """A status ``MetricSummary`` back as stats, to merge new observations into it."""
    return MetricStats(
        summary.name, summary.latest, summary.min, summary.max, summary.step, summary.count
    )
