"""The formats the collector and the operator exchange, defined once for both.

Two messages cross the pod boundary:

* A **batch** POSTed to the operator's intake (``Content-Type:
  application/json``, ``Authorization: Bearer <trial token>``)::

      {"v": 1, "trial": "mnist-lr-3", "namespace": "team-a", "uid": "…",
       "boot": "5f0c…", "seq": 7, "final": false, "dropped": 0,
       "observations": [{"name": "loss", "value": 0.2, "step": 3,
                         "timestamp": 1795000000.5}],
       "summary": null}

  ``boot`` (required) is random per collector start and ``seq`` counts its
  batches, so the intake can drop a batch it already applied when a retry
  repeats it. Steps are at most ``2**63 - 1``, the range Trial status stores. The last
  batch has ``final: true`` and carries the collector's ``summary``.

* A **summary** written to the collector's termination message, so metrics
  survive an intake that was never reachable. Kubernetes keeps at most 4096
  bytes of it (less when a pod has more than three containers: 12 KiB are
  shared among all of them), so :func:`encode_summary` shrinks the curve, then
  drops metrics after the first (the objective), until the text fits::

      {"v": 1, "kind": "kubesweep.io/summary", "observed": 120, "dropped": 0,
       "truncated": false, "metrics": [{"name": "loss", "latest": 0.2, "min": 0.19,
       "max": 1.3, "step": 9, "count": 10}], "curveMetric": "loss",
       "curve": [[0, 1.3], [9, 0.2]], "curveBest": "min"}

Decoding validates everything and raises :class:`WireError` (a ``ValueError``)
with a message fit for a 400 reply.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kubesweep.metrics.observation import MAX_STEP, Observation, is_metric_name
from kubesweep.metrics.reduce import (
    MAX_CURVE_POINTS,
    MAX_TRIAL_METRICS,
    Best,
    MetricStats,
    Point,
    SeriesReducer,
    downsample,
)

WIRE_VERSION = 1
SUMMARY_KIND = "kubesweep.io/summary"
#: Most observations in one batch; the collector splits larger backlogs.
MAX_BATCH_OBSERVATIONS = 1000
#: Largest request body the intake needs to read.
MAX_BATCH_BYTES = 1 << 20
#: Kubernetes' cap on one container's termination message.
TERMINATION_MESSAGE_LIMIT = 4096
#: Points of the curve in a termination message before any shrinking.
SUMMARY_CURVE_POINTS = 24
#: Most curve points a summary may carry (the collector sends SUMMARY_CURVE_POINTS).
MAX_SUMMARY_CURVE = 2 * MAX_CURVE_POINTS
_MAX_IDENTITY = 253


class WireError(ValueError):
    """A message that does not follow the wire format."""


@dataclass(frozen=True)
class Summary:
    """A trial's metrics as the collector reduced them: stats and the objective's curve."""

    metrics: tuple[MetricStats, ...] = ()
    curve_metric: str | None = None
    curve: tuple[Point, ...] = ()
    curve_best: Best = None
    observed: int = 0
    dropped: int = 0
    truncated: bool = False

    @staticmethod
    def of(
        reducer: SeriesReducer,
        curve_metric: str | None,
        *,
        dropped: int = 0,
        curve_points: int = SUMMARY_CURVE_POINTS,
    ) -> Summary:
        """The summary of what ``reducer`` has seen."""
        stats = list(reducer.stats.values())[:MAX_TRIAL_METRICS]
        points = reducer.curve(curve_metric, curve_points) if curve_metric else []
        return Summary(
            tuple(stats),
            curve_metric if points else None,
            tuple(points),
            reducer.best(curve_metric) if curve_metric else None,
            reducer.observed,
            dropped + reducer.ignored,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "v": WIRE_VERSION,
            "kind": SUMMARY_KIND,
            "observed": self.observed,
            "dropped": self.dropped,
            "truncated": self.truncated,
            "metrics": [stats.to_dict() for stats in self.metrics],
            "curveMetric": self.curve_metric,
            "curve": [[step, value] for step, value in self.curve],
            "curveBest": self.curve_best,
        }

    @staticmethod
    def from_dict(data: object) -> Summary:
        """Validate and decode the JSON form."""
        obj = _object(data, "summary")
        if obj.get("kind") != SUMMARY_KIND:
            raise WireError(f"summary: kind must be {SUMMARY_KIND!r}")
        items = _list(obj.get("metrics", []), "metrics")
        if len(items) > MAX_TRIAL_METRICS:
            raise WireError(f"metrics: more than {MAX_TRIAL_METRICS} in one summary")
        metrics = tuple(_stats(item) for item in items)
        curve_metric = _optional_name(obj.get("curveMetric"), "curveMetric")
        points = _list(obj.get("curve", []), "curve")
        if len(points) > MAX_SUMMARY_CURVE:
            raise WireError(f"curve: more than {MAX_SUMMARY_CURVE} points in one summary")
        curve: list[Point] = []
        for item in points:
            pair = _list(item, "curve[]")
            if len(pair) != 2:
                raise WireError("curve[]: expected [step, value]")
            curve.append((_step(pair[0], "curve[].step"), _finite(pair[1], "curve[].value")))
        curve_best = obj.get("curveBest")
        if curve_best not in ("min", "max", None):
            raise WireError("curveBest: expected min, max or null")
        return Summary(
            metrics,
            curve_metric,
            tuple(curve),
            curve_best,
            _count(obj.get("observed", 0), "observed"),
            _count(obj.get("dropped", 0), "dropped"),
            bool(obj.get("truncated", False)),
        )


def _dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def encode_summary(summary: Summary, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """The summary as compact ASCII JSON of at most ``limit`` bytes.

    Shrinks in order of least harm: curve points (halved, keeping first, last
    and best), then metrics from the last one back (the first, normally the
    objective, stays). ``truncated`` tells the reader something was cut.
    """
    current = summary
    while True:
        text = _dumps(current.to_dict())
        if len(text) <= limit:
            return text
        if len(current.curve) > 3:
            size = max(3, len(current.curve) // 2)
            kept = downsample(current.curve, size, current.curve_best)
            current = replace(current, curve=tuple(kept), truncated=True)
        elif current.curve:
            current = replace(current, curve=(), curve_metric=None, truncated=True)
        elif len(current.metrics) > 1:
            current = replace(current, metrics=current.metrics[:-1], truncated=True)
        elif current.metrics:
            current = replace(current, metrics=(), truncated=True)
        else:
            minimal = _dumps({"v": WIRE_VERSION, "kind": SUMMARY_KIND, "truncated": True})
            return minimal if len(minimal) <= limit else ""


def decode_summary(text: str | bytes) -> Summary:
    """Read a summary back, e.g. from a container's termination message."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise WireError(f"summary is not JSON: {error}") from None
    return Summary.from_dict(data)


@dataclass(frozen=True)
class Batch:
    """Observations of one trial on their way to the intake."""

    trial: str
    namespace: str
    uid: str
    observations: tuple[Observation, ...] = ()
    final: bool = False
    seq: int = 0
    boot: str = ""
    dropped: int = 0
    summary: Summary | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "v": WIRE_VERSION,
            "trial": self.trial,
            "namespace": self.namespace,
            "uid": self.uid,
            "boot": self.boot,
            "seq": self.seq,
            "final": self.final,
            "dropped": self.dropped,
            "observations": [
                {"name": o.name, "value": o.value, "step": o.step, "timestamp": o.timestamp}
                for o in self.observations
            ],
            "summary": None if self.summary is None else self.summary.to_dict(),
        }

    def to_json(self) -> bytes:
        """The request body."""
        return _dumps(self.to_dict()).encode("ascii")


def encode_batch(batch: Batch) -> bytes:
    """The request body of ``batch``."""
    return batch.to_json()


def decode_batch(body: bytes | str) -> Batch:
    """Validate and decode a request body; raises :class:`WireError`."""
    if len(body) > MAX_BATCH_BYTES:
        raise WireError(f"batch larger than {MAX_BATCH_BYTES} bytes")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise WireError(f"batch is not JSON: {error}") from None
    obj = _object(data, "batch")
    if obj.get("v", WIRE_VERSION) != WIRE_VERSION:
        raise WireError(f"v: unsupported version {obj.get('v')!r}; expected {WIRE_VERSION}")
    items = _list(obj.get("observations", []), "observations")
    if len(items) > MAX_BATCH_OBSERVATIONS:
        raise WireError(f"observations: more than {MAX_BATCH_OBSERVATIONS} in one batch")
    summary = obj.get("summary")
    return Batch(
        trial=_identity(obj.get("trial"), "trial"),
        namespace=_identity(obj.get("namespace"), "namespace"),
        uid=_identity(obj.get("uid"), "uid"),
        observations=tuple(_observation(item) for item in items),
        final=_bool(obj.get("final", False), "final"),
        seq=_count(obj.get("seq", 0), "seq"),
        boot=_identity(obj.get("boot"), "boot", 64),
        dropped=_count(obj.get("dropped", 0), "dropped"),
        summary=None if summary is None else Summary.from_dict(summary),
    )


def split_observations(
    observations: Sequence[Observation], size: int = MAX_BATCH_OBSERVATIONS
) -> list[tuple[Observation, ...]]:
    """``observations`` in chunks that each fit one batch."""
    return [tuple(observations[i : i + size]) for i in range(0, len(observations), size)]


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WireError(f"{where}: expected an object")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise WireError(f"{where}: expected a list")
    return value


def _string(value: object, where: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise WireError(f"{where}: expected a string of at most {limit} characters")
    return value


def _identity(value: object, where: str, limit: int = _MAX_IDENTITY) -> str:
    text = _string(value, where, limit)
    if not text:
        raise WireError(f"{where}: must not be empty")
    return text


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise WireError(f"{where}: expected true or false")
    return value


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(f"{where}: expected a non-negative integer")
    return value


def _step(value: object, where: str) -> int:
    step = _count(value, where)
    if step > MAX_STEP:
        raise WireError(f"{where}: at most {MAX_STEP} (a 64-bit integer)")
    return step


def _finite(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"{where}: expected a number")
    try:
        number = float(value)
    except OverflowError:
        raise WireError(f"{where}: number out of range") from None
    if not math.isfinite(number):
        raise WireError(f"{where}: expected a finite number")
    return number


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not is_metric_name(value):
        raise WireError(f"{where}: expected a metric name")
    return value


def _optional_name(value: object, where: str) -> str | None:
    return None if value is None else _name(value, where)


def _observation(value: object) -> Observation:
    obj = _object(value, "observations[]")
    step = obj.get("step")
    timestamp = obj.get("timestamp")
    return Observation(
        _name(obj.get("name"), "observations[].name"),
        _finite(obj.get("value"), "observations[].value"),
        None if step is None else _step(step, "observations[].step"),
        None if timestamp is None else _finite(timestamp, "observations[].timestamp"),
    )


def _stats(value: object) -> MetricStats:
    obj = _object(value, "metrics[]")
    step = obj.get("step")
    count = _count(obj.get("count", 1), "metrics[].count")
    if count < 1:
        raise WireError("metrics[].count: must be at least 1")
    return MetricStats(
        _name(obj.get("name"), "metrics[].name"),
        _finite(obj.get("latest"), "metrics[].latest"),
        _finite(obj.get("min"), "metrics[].min"),
        _finite(obj.get("max"), "metrics[].max"),
        None if step is None else _step(step, "metrics[].step"),
        count,
    )
