"""JSON-lines metrics: one JSON object per line, numeric fields are metrics.

The same object shape serves the push endpoint, so a trainer in any language
either appends ``{"step": 3, "loss": 0.2}`` to a file or POSTs it. Numbers at
the top level, and in an optional ``metrics`` object, are metrics; ``step`` (or
``global_step``/``epoch``) and ``timestamp`` (seconds since the epoch, or RFC
3339 text) describe them; strings, booleans, lists and other objects are
ignored rather than guessed at.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from kubesweep.metrics.observation import (
    STEP_KEYS,
    ParseBuilder,
    Parsed,
    as_step,
    parse_timestamp,
)

#: Longest line decoded; longer lines are counted as dropped, unread.
MAX_JSON_LINE_LENGTH = 1 << 20
TIMESTAMP_KEY = "timestamp"
METRICS_KEY = "metrics"
_RESERVED = frozenset((*STEP_KEYS, TIMESTAMP_KEY, METRICS_KEY))


def _timestamp(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            return None
        return seconds if math.isfinite(seconds) else None
    if isinstance(value, str):
        return parse_timestamp(value)
    return None


def _add_numbers(
    builder: ParseBuilder,
    fields: Mapping[str, Any],
    step: int | None,
    timestamp: float | None,
    skip: frozenset[str],
) -> None:
    for name, value in fields.items():
        if name in skip or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        try:
            number = float(value)
        except OverflowError:
            builder.dropped += 1
            continue
        builder.add(name, number, step, timestamp)


def parse_json_object(obj: object) -> Parsed:
    """The observations of one decoded object (a list of objects is read in order)."""
    if isinstance(obj, list):
        return Parsed.concat(parse_json_object(item) for item in obj if isinstance(item, dict))
    if not isinstance(obj, dict):
        return Parsed()
    step = next((as_step(obj[key]) for key in STEP_KEYS if key in obj), None)
    timestamp = _timestamp(obj.get(TIMESTAMP_KEY))
    builder = ParseBuilder()
    _add_numbers(builder, obj, step, timestamp, _RESERVED)
    nested = obj.get(METRICS_KEY)
    if isinstance(nested, dict):
        _add_numbers(builder, nested, step, timestamp, frozenset())
    return builder.build()


def parse_json_line(line: str | bytes) -> Parsed:
    """The observations of one JSON line; a line that is not JSON gives nothing."""
    text = line.strip()
    if not text:
        return Parsed()
    if len(text) > MAX_JSON_LINE_LENGTH:
        return Parsed(dropped=1)
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return Parsed()
    return parse_json_object(obj)


def parse_json_lines(lines: Iterable[str | bytes]) -> Parsed:
    """The observations of many JSON lines, in order; never raises."""
    return Parsed.concat(parse_json_line(line) for line in lines)
