"""The collector's settings, read from its environment.

The Job renderer (:func:`kubesweep.rendering.collector_config`) sets these on
the sidecar, so the sidecar needs no API access and no config file. Everything
has a default that works inside a trial pod; only the intake URL, the token and
the trial identity come from the operator.

``KUBESWEEP_COLLECTOR_CONFIG`` is the Experiment's ``trialTemplate.metrics``
as JSON (camelCase: ``source``, ``path``, ``filters``, ``port``,
``scrapePath``, ``intervalSeconds``) plus ``metrics``, the metric names to keep
with the objective first, and optionally ``objectiveStrategy`` (``min``,
``max`` or ``latest``; it picks the curve point that survives downsampling).
For ``stdout``, ``path`` is the log the wrapper writes; for ``push``, ``port``
is the push endpoint's port; for ``prometheus``, the port scraped.

| Variable | Meaning | Default |
|---|---|---|
| ``KUBESWEEP_COLLECTOR_CONFIG`` | source settings, above | ``{"source":"stdout"}`` |
| ``KUBESWEEP_INTAKE_URL`` | where batches are POSTed | none: summary only |
| ``KUBESWEEP_TRIAL_TOKEN`` | the trial's token (bearer) | none |
| ``KUBESWEEP_TRIAL_NAME``/``_NAMESPACE``/``_UID`` | the trial's identity | empty |
| ``KUBESWEEP_STDOUT_LOG`` | the wrapper's log (``.state`` beside it) | ``/kubesweep/stdout.log`` |
| ``KUBESWEEP_PUSH_PORT`` | push endpoint port if not the source; ``0``: off | ``9477`` |
| ``KUBESWEEP_TERMINATION_LOG`` | termination message path | ``/dev/termination-log`` |
| ``KUBESWEEP_TERMINATION_LIMIT`` | bytes the message may take | ``4096`` |
| ``KUBESWEEP_FLUSH_SECONDS`` | interval between batches | ``2`` |
| ``KUBESWEEP_POLL_SECONDS`` | interval between source reads | ``0.5`` |
| ``KUBESWEEP_SHUTDOWN_SECONDS`` | time allowed for the last push | ``5`` |
| ``KUBESWEEP_STEP_METRIC`` | Prometheus gauge holding the step | ``step`` |
| ``KUBESWEEP_EXIT_ON_DONE`` | exit when the trainer exits (plain container) | ``false`` |
| ``KUBESWEEP_LOG_LEVEL`` | the collector's own log level | ``INFO`` |
| ``KUBESWEEP_REPORTING_POD`` | which pod of a multi-pod trial reports (JSON) | none: this one |

In a multi-pod trial (an Indexed Job, a JobSet) the renderer sets
``KUBESWEEP_REPORTING_POD`` and, through the downward API, the pod labels and
annotations it reads (:func:`kubesweep.podcontract.not_reporting_because`). A
collector in any other pod reads its sources as usual (so a trainer's push finds
an endpoint) but sends nothing and leaves no summary: only the reporting pod's
series is the trial's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubesweep.podcontract import (
    DEFAULT_PUSH_PORT,
    DEFAULT_TERMINATION_LOG,
    ENV_COLLECTOR_CONFIG,
    ENV_INTAKE_URL,
    ENV_PUSH_PORT,
    ENV_STDOUT_LOG,
    ENV_TRIAL_NAME,
    ENV_TRIAL_NAMESPACE,
    ENV_TRIAL_TOKEN,
    ENV_TRIAL_UID,
    PUSH_PATH,
    STDOUT_LOG,
    not_reporting_because,
)

#: The variable holding the source settings as JSON.
CONFIG_ENV = ENV_COLLECTOR_CONFIG
SOURCES = ("stdout", "file", "json", "tfevent", "prometheus", "push")
DEFAULT_LOG = STDOUT_LOG
__all__ = [
    "CONFIG_ENV",
    "DEFAULT_LOG",
    "DEFAULT_PUSH_PORT",
    "DEFAULT_TERMINATION_LOG",
    "PUSH_PATH",
    "CollectorConfig",
    "ConfigError",
]


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
    #: Why this pod does not report the trial's metrics; ``None``: it does.
    not_reporting: str | None = None

    @property
    def reporting(self) -> bool:
        """Whether this collector's series is the trial's."""
        return self.not_reporting is None

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
        metrics = _metrics(env.get(CONFIG_ENV, ""))
        source = str(metrics.get("source", "stdout"))
        if source not in SOURCES:
            raise ConfigError(f"{CONFIG_ENV}.source: {source!r} is not one of {SOURCES}")
        path = metrics.get("path")
        if source in ("file", "json", "tfevent") and not path:
            raise ConfigError(f"{CONFIG_ENV}.path is required for source {source}")
        port = metrics.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise ConfigError(f"{CONFIG_ENV}.port must be an integer")
        if source == "prometheus" and port is None:
            raise ConfigError(f"{CONFIG_ENV}.port is required for source prometheus")
        filters = metrics.get("filters") or []
        if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
            raise ConfigError(f"{CONFIG_ENV}.filters must be a list of strings")
        names = metrics.get("metrics")
        if names is not None and (
            not isinstance(names, list) or not all(isinstance(n, str) for n in names)
        ):
            raise ConfigError(f"{CONFIG_ENV}.metrics must be a list of metric names")
        strategy = metrics.get("objectiveStrategy")
        if strategy not in (None, "min", "max", "latest"):
            raise ConfigError(f"{CONFIG_ENV}.objectiveStrategy must be min, max or latest")
        stdout_log = env.get(ENV_STDOUT_LOG, DEFAULT_LOG)
        if source == "stdout" and path:
            stdout_log = str(path)
        push_port = int(_number(env.get(ENV_PUSH_PORT, DEFAULT_PUSH_PORT), "PUSH_PORT"))
        if source == "push" and port is not None:
            push_port = port
        return CollectorConfig(
            source=source,
            path=str(path) if path else None,
            filters=tuple(filters),
            port=port,
            scrape_path=str(metrics.get("scrapePath", "/metrics")),
            interval_seconds=_number(metrics.get("intervalSeconds", 10.0), "intervalSeconds"),
            step_metric=env.get("KUBESWEEP_STEP_METRIC", "step"),
            objective_metric=names[0] if names else None,
            objective_strategy=strategy,
            metric_names=frozenset(names) if names else None,
            intake_url=env.get(ENV_INTAKE_URL) or None,
            token=env.get(ENV_TRIAL_TOKEN) or None,
            trial_name=env.get(ENV_TRIAL_NAME, ""),
            trial_namespace=env.get(ENV_TRIAL_NAMESPACE, ""),
            trial_uid=env.get(ENV_TRIAL_UID, ""),
            stdout_log=stdout_log,
            push_port=push_port,
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
            not_reporting=not_reporting_because(env),
        )


def _metrics(text: str) -> dict[str, Any]:
    if not text.strip():
        return {"source": "stdout"}
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{CONFIG_ENV} is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{CONFIG_ENV} must be a JSON object")
    return data


def _number(value: object, name: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not a number") from None
    if number < 0:
        raise ConfigError(f"{name}: must not be negative")
    return number
