"""Prometheus text exposition format, for trainers that already export metrics.

A trainer that serves ``/metrics`` (``prometheus_client`` and friends) is
scraped on localhost by the collector. Each scrape is one point in time, so the
step comes from a gauge the trainer sets (``step`` by default) or, failing that,
from the number of the scrape. A sample with labels is named as Prometheus
prints it, labels sorted (``accuracy{split="val"}``), so an objective can name
exactly one series. Histogram and summary series are plain samples here; pass
``names`` to keep only the metrics the experiment asks for.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from kubesweep.metrics.observation import ParseBuilder, Parsed, as_step, parse_number

DEFAULT_STEP_METRIC = "step"

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}


class _MalformedError(Exception):
    """A sample line that does not follow the format."""


def _labels(line: str, position: int) -> tuple[list[tuple[str, str]], int]:
    """Parse ``{a="x",b="y"}`` starting at the ``{``; returns labels and the position after."""
    labels: list[tuple[str, str]] = []
    position += 1
    while True:
        while position < len(line) and line[position] in " \t":
            position += 1
        if position < len(line) and line[position] == "}":
            return labels, position + 1
        match = _LABEL_NAME.match(line, position)
        if match is None:
            raise _MalformedError
        position = match.end()
        while position < len(line) and line[position] in " \t":
            position += 1
        if line[position : position + 2] != '="':
            raise _MalformedError
        position += 2
        value: list[str] = []
        while True:
            if position >= len(line):
                raise _MalformedError
            char = line[position]
            if char == "\\" and position + 1 < len(line):
                value.append(_UNESCAPE.get(line[position + 1], "\\" + line[position + 1]))
                position += 2
            elif char == '"':
                position += 1
                break
            else:
                value.append(char)
                position += 1
        labels.append((match.group(0), "".join(value)))
        while position < len(line) and line[position] in " \t":
            position += 1
        if position < len(line) and line[position] == ",":
            position += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_name(name: str, labels: list[tuple[str, str]]) -> str:
    """The canonical name of a sample: ``name`` or ``name{a="x",b="y"}``, labels sorted."""
    if not labels:
        return name
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(labels))
    return f"{name}{{{inner}}}"


def _sample(line: str) -> tuple[str, str, str | None]:
    """(series name, value text, timestamp text) of a sample line."""
    match = _NAME.match(line)
    if match is None:
        raise _MalformedError
    position = match.end()
    labels: list[tuple[str, str]] = []
    if position < len(line) and line[position] == "{":
        labels, position = _labels(line, position)
    rest = line[position:].split()
    if not rest or len(rest) > 2 or (position < len(line) and not line[position].isspace()):
        raise _MalformedError
    return series_name(match.group(0), labels), rest[0], rest[1] if len(rest) == 2 else None


def parse_prometheus(
    text: str,
    *,
    scrape_index: int | None = None,
    timestamp: float | None = None,
    step_metric: str = DEFAULT_STEP_METRIC,
    names: Collection[str] | None = None,
) -> Parsed:
    """The observations of one scrape; never raises.

    ``scrape_index`` is the step when the scrape has no ``step_metric`` sample;
    ``timestamp`` (seconds) stamps samples that carry no timestamp of their own.
    Malformed lines are skipped; NaN and infinite samples count as dropped.
    """
    samples: list[tuple[str, str, str | None]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            samples.append(_sample(line))
        except (_MalformedError, IndexError):
            continue
    step = scrape_index
    for name, value, _ in samples:
        if name == step_metric:
            step = as_step(value)
    builder = ParseBuilder()
    for name, value, stamp in samples:
        if name == step_metric or (names is not None and name not in names):
            continue
        number = parse_number(value)
        if number is None:
            builder.dropped += 1
            continue
        when = timestamp
        if stamp is not None:
            millis = parse_number(stamp)
            when = millis / 1000.0 if millis is not None and 0 <= millis < 1e14 else timestamp
        builder.add(name, number, step, when)
    return builder.build()
