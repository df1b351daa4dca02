"""The pure reducers agree with the API's status models and limits."""

from __future__ import annotations

import subprocess
import sys

from kubesweep.api import Strategy, status
from kubesweep.metrics import (
    MAX_CURVE_POINTS,
    MAX_TRIAL_METRICS,
    MetricStats,
    best_for,
    objective_value,
)
from kubesweep.metrics.models import curve_points, metric_stats, metric_summaries


def test_limits_match_the_api() -> None:
    assert MAX_CURVE_POINTS == status.MAX_CURVE_POINTS
    assert MAX_TRIAL_METRICS == status.MAX_TRIAL_METRICS


def test_conversion_round_trip() -> None:
    stats = MetricStats("loss", 0.2, 0.1, 0.9, 4, 5)
    (summary,) = metric_summaries({"loss": stats})
    assert summary.to_wire() == stats.to_dict()
    assert metric_stats(summary) == stats
    assert [p.to_wire() for p in curve_points([(1, 0.5)])] == [{"step": 1, "value": 0.5}]


def test_metrics_and_collector_import_no_third_party_packages() -> None:
    code = (
        "import sys, kubesweep.metrics, kubesweep.collector.main, kubesweep.collector.client\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'pydantic', 'numpy', 'yaml', 'aiohttp', 'kopf'})\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_api_strategy_enum_drives_the_reduction() -> None:
    stats = {"loss": MetricStats("loss", 0.2, 0.1, 0.9, 4, 5)}
    assert objective_value(stats, "loss", Strategy.MIN) == 0.1
    assert objective_value(stats, "loss", Strategy.MAX) == 0.9
    assert objective_value(stats, "loss", Strategy.LATEST) == 0.2
    assert best_for(Strategy.MIN) == "min"
    assert best_for(Strategy.LATEST) is None
