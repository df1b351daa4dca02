"""The collector's settings, read from its environment.

The Job renderer sets these variables on the sidecar (:func:`collector_env`
builds them), so the sidecar needs no API access and no config file. Everything
has a default that works inside a trial pod; only the intake URL, the token and
the trial identity come from the operator.

| Variable | Meaning | Default |
|---|---|---|
| ``KUBESWEEP_METRICS`` | ``trialTemplate.metrics`` as JSON | ``{"source":"stdout"}`` |
| ``KUBESWEEP_OBJECTIVE_METRIC`` | the objective metric (kept first, curve) | none |
| ``KUBESWEEP_OBJECTIVE_STRATEGY`` | ``min``/``max``/``latest`` (best curve point) | none |
| ``KUBESWEEP_METRIC_NAMES`` | comma-separated metrics to keep | all |
| ``KUBESWEEP_INTAKE_URL`` | where batches are POSTed | none: summary only |
| ``KUBESWEEP_TRIAL_TOKEN`` | the trial's token (bearer) | none |
| ``KUBESWEEP_TRIAL_NAME``/``_NAMESPACE``/``_UID`` | the trial's identity | empty |
| ``KUBESWEEP_STDOUT_LOG`` | the log the wrapper writes | ``/kubesweep/stdout.log`` |
| ``KUBESWEEP_PUSH_PORT`` | localhost push endpoint port; ``0`` disables | ``9477`` |
| ``KUBESWEEP_TERMINATION_LOG`` | termination message path | ``/dev/termination-log`` |
| ``KUBESWEEP_TERMINATION_LIMIT`` | bytes the message may take | ``4096`` |
| ``KUBESWEEP_FLUSH_SECONDS`` | interval between batches | ``2`` |
| ``KUBESWEEP_POLL_SECONDS`` | interval between source reads | ``0.5`` |
| ``KUBESWEEP_SHUTDOWN_SECONDS`` | time allowed for the last push | ``5`` |
| ``KUBESWEEP_STEP_METRIC`` | Prometheus gauge holding the step | ``step`` |
| ``KUBESWEEP_EXIT_ON_DONE`` | exit when the trainer exits (not as a native sidecar) | ``false`` |
| ``KUBESWEEP_LOG_LEVEL`` | the collector's own log level | ``INFO`` |
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SOURCES = ("stdout", "file", "json", "tfevent", "prometheus", "push")
DEFAULT_PUSH_PORT = 9477
PUSH_PATH = "/v1/report"
DEFAULT_LOG = "/kubesweep/stdout.log"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


class ConfigError(ValueError):
    """A setting the collector cannot work with."""


@dataclass(frozen=True)
class CollectorConfig:
    """Everything the collector needs to know, already validated."""

    source: str = "stdout"
    path: str | None = None
    filters: tuple[str, ...] = ()
    port: int | None = None
    scrape_path: str = "/metrics"
    interval_seconds: float = 10.0
    step_metric: str = "step"
    objective_metric: str | None = None
    objective_strategy: str | None = None
    metric_names: frozenset[str] | None = None
    intake_url: str | None = None
    token: str | None = None
    trial_name: str = ""
    trial_namespace: str = ""
    trial_uid: str = ""
    stdout_log: str = DEFAULT_LOG
    push_port: int = DEFAULT_PUSH_PORT
    termination_log: str = DEFAULT_TERMINATION_LOG
    termination_limit: int = 4096
    flush_seconds: float = 2.0
    poll_seconds: float = 0.5
    shutdown_seconds: float = 5.0
    exit_on_done: bool = False
    log_level: str = "INFO"

    @property
    def keep_names(self) -> frozenset[str] | None:
        """The metric names to keep (with the objective), or ``None`` for all."""
        if self.metric_names is None:
            return None
        if self.objective_metric is None:
            return self.metric_names
        return self.metric_names | {self.objective_metric}

    @staticmethod
    def from_env(env: Mapping[str, str]) -> CollectorConfig:
        """Read and validate the settings; raises :class:`ConfigError`."""
        metrics = _metrics(env.get("KUBESWEEP_METRICS", ""))
        source = str(metrics.get("source", "stdout"))
        if source not in SOURCES:
            raise ConfigError(f"KUBESWEEP_METRICS.source: {source!r} is not one of {SOURCES}")
        path = metrics.get("path")
        if source in ("file", "json", "tfevent") and not path:
            raise ConfigError(f"KUBESWEEP_METRICS.path is required for source {source}")
        port = metrics.get("port")
        if source == "prometheus" and not isinstance(port, int):
            raise ConfigError("KUBESWEEP_METRICS.port is required for source prometheus")
        filters = metrics.get("filters") or []
        if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
            raise ConfigError("KUBESWEEP_METRICS.filters must be a list of strings")
        strategy = env.get("KUBESWEEP_OBJECTIVE_STRATEGY") or None
        if strategy not in (None, "min", "max", "latest"):
            raise ConfigError("KUBESWEEP_OBJECTIVE_STRATEGY must be min, max or latest")
        names = env.get("KUBESWEEP_METRIC_NAMES", "")
        return CollectorConfig(
            source=source,
            path=str(path) if path else None,
            filters=tuple(filters),
            port=port if isinstance(port, int) else None,
            scrape_path=str(metrics.get("scrapePath", "/metrics")),
            interval_seconds=_number(metrics.get("intervalSeconds", 10.0), "intervalSeconds"),
            step_metric=env.get("KUBESWEEP_STEP_METRIC", "step"),
            objective_metric=env.get("KUBESWEEP_OBJECTIVE_METRIC") or None,
            objective_strategy=strategy,
            metric_names=(
                frozenset(n.strip() for n in names.split(",") if n.strip()) if names else None
            ),
            intake_url=env.get("KUBESWEEP_INTAKE_URL") or None,
            token=env.get("KUBESWEEP_TRIAL_TOKEN") or None,
            trial_name=env.get("KUBESWEEP_TRIAL_NAME", ""),
            trial_namespace=env.get("KUBESWEEP_TRIAL_NAMESPACE", ""),
            trial_uid=env.get("KUBESWEEP_TRIAL_UID", ""),
            stdout_log=env.get("KUBESWEEP_STDOUT_LOG", DEFAULT_LOG),
            push_port=int(_number(env.get("KUBESWEEP_PUSH_PORT", DEFAULT_PUSH_PORT), "port")),
            termination_log=env.get("KUBESWEEP_TERMINATION_LOG", DEFAULT_TERMINATION_LOG),
            termination_limit=int(
                _number(env.get("KUBESWEEP_TERMINATION_LIMIT", 4096), "TERMINATION_LIMIT")
            ),
            flush_seconds=_number(env.get("KUBESWEEP_FLUSH_SECONDS", 2.0), "FLUSH_SECONDS"),
            poll_seconds=_number(env.get("KUBESWEEP_POLL_SECONDS", 0.5), "POLL_SECONDS"),
            shutdown_seconds=_number(
                env.get("KUBESWEEP_SHUTDOWN_SECONDS", 5.0), "SHUTDOWN_SECONDS"
            ),
            exit_on_done=env.get("KUBESWEEP_EXIT_ON_DONE", "").lower() in ("1", "true", "yes"),
            log_level=env.get("KUBESWEEP_LOG_LEVEL", "INFO").upper(),
        )


def _metrics(text: str) -> dict[str, Any]:
    if not text.strip():
        return {"source": "stdout"}
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"KUBESWEEP_METRICS is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError("KUBESWEEP_METRICS must be a JSON object")
    return data


def _number(value: object, name: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not a number") from None
    if number < 0:
        raise ConfigError(f"{name}: must not be negative")
    return number


def collector_env(
    *,
    metrics: Mapping[str, Any],
    trial_name: str,
    trial_namespace: str,
    trial_uid: str,
    intake_url: str | None = None,
    objective_metric: str | None = None,
    objective_strategy: str | None = None,
    metric_names: Sequence[str] = (),
    stdout_log: str = DEFAULT_LOG,
    termination_limit: int = 4096,
) -> dict[str, str]:
    """The sidecar's environment, for the Job renderer (the token comes from a Secret).

    ``metrics`` is ``trialTemplate.metrics`` in its wire (camelCase) form. Pass
    ``termination_limit`` = ``min(4096, 12288 // containers)`` for pods with more
    than three containers, since Kubernetes shares 12 KiB of termination
    messages among all of a pod's containers.
    """
    env = {
        "KUBESWEEP_METRICS": json.dumps(dict(metrics), separators=(",", ":"), sort_keys=True),
        "KUBESWEEP_TRIAL_NAME": trial_name,
        "KUBESWEEP_TRIAL_NAMESPACE": trial_namespace,
        "KUBESWEEP_TRIAL_UID": trial_uid,
        "KUBESWEEP_STDOUT_LOG": stdout_log,
        "KUBESWEEP_TERMINATION_LIMIT": str(termination_limit),
    }
    if intake_url:
        env["KUBESWEEP_INTAKE_URL"] = intake_url
    if objective_metric:
        env["KUBESWEEP_OBJECTIVE_METRIC"] = objective_metric
    if objective_strategy:
        env["KUBESWEEP_OBJECTIVE_STRATEGY"] = objective_strategy
    if metric_names:
        env["KUBESWEEP_METRIC_NAMES"] = ",".join(metric_names)
    return env
