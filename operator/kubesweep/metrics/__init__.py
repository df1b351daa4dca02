"""Metric parsing and reduction: the pure core shared by the collector and the operator.

Nothing here does I/O, and nothing here imports more than the standard library
(except :mod:`kubesweep.metrics.models`, which converts to the pydantic API
models and is not imported by this package), so the collector sidecar can use
it without pulling in the operator's dependencies.

Parsers turn one input unit (a text line, a JSON line, an event record, a
Prometheus scrape) into a :class:`Parsed`; they never raise on bad input and
never produce a value that is not in the input. Reducers turn observations into
what Trial status keeps.
"""

from kubesweep.metrics.jsonl import parse_json_line, parse_json_lines, parse_json_object
from kubesweep.metrics.observation import (
    STEP_KEYS,
    Observation,
    Parsed,
    is_metric_value,
    parse_timestamp,
)
from kubesweep.metrics.prometheus import parse_prometheus
from kubesweep.metrics.reduce import (
    MAX_CURVE_POINTS,
    MAX_TRIAL_METRICS,
    Best,
    MetricStats,
    Point,
    SeriesReducer,
    best_for,
    curve,
    downsample,
    objective_value,
    summarize,
)
from kubesweep.metrics.text import (
    DEFAULT_FILTER,
    TextFormat,
    parse_text,
    parse_text_line,
    text_format,
)
from kubesweep.metrics.tfevent import (
    RecordScan,
    frame_record,
    parse_event,
    parse_event_file,
    scan_records,
)
from kubesweep.metrics.tokens import trial_token, verify_token, verify_token_any
from kubesweep.metrics.wire import (
    Batch,
    Summary,
    WireError,
    decode_batch,
    decode_summary,
    encode_batch,
    encode_summary,
)

__all__ = [
    "DEFAULT_FILTER",
    "MAX_CURVE_POINTS",
    "MAX_TRIAL_METRICS",
    "STEP_KEYS",
    "Batch",
    "Best",
    "MetricStats",
    "Observation",
    "Parsed",
    "Point",
    "RecordScan",
    "SeriesReducer",
    "Summary",
    "TextFormat",
    "WireError",
    "best_for",
    "curve",
    "decode_batch",
    "decode_summary",
    "downsample",
    "encode_batch",
    "encode_summary",
    "frame_record",
    "is_metric_value",
    "objective_value",
    "parse_event",
    "parse_event_file",
    "parse_json_line",
    "parse_json_lines",
    "parse_json_object",
    "parse_prometheus",
    "parse_text",
    "parse_text_line",
    "parse_timestamp",
    "scan_records",
    "summarize",
    "text_format",
    "trial_token",
    "verify_token",
    "verify_token_any",
]
