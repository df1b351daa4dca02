"""The Grafana dashboard shipped with the chart queries metrics that really exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from kubesweep.operator.monitoring import OperatorMetrics
from kubesweep.suggestion.telemetry import Telemetry

DASHBOARD = Path(__file__).resolve().parents[2] / "charts/kubesweep/dashboards/kubesweep.json"
_FUNCTIONS = {"sum", "rate", "by", "histogram_quantile", "le", "increase", "avg", "max"}


def _exported(registry: CollectorRegistry) -> set[str]:
    text = generate_latest(registry).decode()
    names = set(re.findall(r"^# TYPE (\S+) (\S+)", text, re.MULTILINE))
    exported = set()
    for name, kind in names:
        exported.add(name)
        if kind == "histogram":
            exported |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        if kind == "counter":
            exported.add(f"{name}_total" if not name.endswith("_total") else name)
    return exported


def test_every_queried_metric_is_exported() -> None:
    known = _exported(OperatorMetrics().registry) | _exported(Telemetry().registry)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert panels
    for panel in panels:
        for target in panel["targets"]:
            metrics = {
                word
                for word in re.findall(r"\b(kubesweep_[a-z_]+)\b", target["expr"])
                if word not in _FUNCTIONS
            }
            assert metrics, panel["title"]
            assert metrics <= known, f"{panel['title']}: {metrics - known}"
