"""Prometheus metrics of the operator, in one registry the operator owns.

A private registry (not the client's global one) keeps tests independent and
lets two operators run in one process (the e2e restart tests do).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class OperatorMetrics:
    """The operator's metrics; ``registry`` is what ``/metrics`` serves."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.reconcile_seconds = Histogram(
            "kubesweep_reconcile_seconds",
            "Duration of one experiment reconciliation pass",
            registry=r,
        )
        self.reconcile_errors = Counter(
            "kubesweep_reconcile_errors_total", "Reconciliation passes that raised", registry=r
        )
        self.trials = Gauge(
            "kubesweep_trials", "Trials by phase", ["namespace", "experiment", "phase"], registry=r
        )
        self.trials_created = Counter(
            "kubesweep_trials_created_total", "Trials created", registry=r
        )
        self.suggestion_seconds = Histogram(
            "kubesweep_suggestion_request_seconds",
            "Suggestion service call latency",
            ["endpoint"],
            registry=r,
        )
        self.suggestion_errors = Counter(
            "kubesweep_suggestion_errors_total",
            "Failed suggestion service calls",
            ["endpoint"],
            registry=r,
        )
        self.intake_batches = Counter(
            "kubesweep_intake_batches_total",
            "Metric batches received by the intake",
            ["outcome"],
            registry=r,
        )
        self.intake_points = Counter(
            "kubesweep_intake_points_total",
            "Metric observations accepted by the intake",
            registry=r,
        )
        self.api_writes = Counter(
            "kubesweep_api_writes_total",
            "Writes to the API server",
            ["resource", "verb"],
            registry=r,
        )
        self.gpu_seconds = Gauge(
            "kubesweep_experiment_gpu_seconds",
            "GPU-seconds consumed by an experiment's trials",
            ["namespace", "experiment"],
            registry=r,
        )
