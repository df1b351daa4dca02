"""One reported metric value, and the result type every parser returns.

Parsers are total: they never raise on bad input. What they cannot use is either
ignored (text that is not a metric at all) or counted in :attr:`Parsed.dropped`
(something that looked like a metric but had no usable value: NaN, infinity, an
unreadable number), so the collector can report how much it threw away.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

#: Longest metric name kept; longer names are dropped (they would not fit in status).
MAX_NAME_LENGTH = 128

#: The largest step: Trial status stores steps as the CRD's int64; larger ones are dropped.
MAX_STEP = 2**63 - 1
#: Keys that carry the step (the x axis of a curve) rather than a metric, by priority.
STEP_KEYS = ("step", "global_step", "epoch")

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?"
)


@dataclass(frozen=True, slots=True)
class Observation:
    """A metric value at a step (``None`` when the trainer gave none) and a time.

    ``timestamp`` is seconds since the epoch; ``None`` means the source gave no
    time and the receiver may stamp it.
    """

    name: str
    value: float
    step: int | None = None
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """Observations read from some input, and how many candidates were unusable."""

    observations: tuple[Observation, ...] = ()
    dropped: int = 0

    def __add__(self, other: Parsed) -> Parsed:
        return Parsed(self.observations + other.observations, self.dropped + other.dropped)

    @staticmethod
    def concat(parts: Iterable[Parsed]) -> Parsed:
        """Join many results in order."""
        observations: list[Observation] = []
        dropped = 0
        for part in parts:
            observations.extend(part.observations)
            dropped += part.dropped
        return Parsed(tuple(observations), dropped)


@dataclass
class ParseBuilder:
    """Accumulates a :class:`Parsed` while a parser walks its input."""

    observations: list[Observation] = field(default_factory=list)
    dropped: int = 0

    def add(self, name: str, value: float, step: int | None, timestamp: float | None) -> None:
        if is_metric_value(value) and is_metric_name(name) and (step is None or step <= MAX_STEP):
            self.observations.append(Observation(name, float(value), step, timestamp))
        else:
            self.dropped += 1

    def build(self) -> Parsed:
        return Parsed(tuple(self.observations), self.dropped)


def is_metric_value(value: float) -> bool:
    """Whether ``value`` can be a metric: a finite number (NaN and infinities are not)."""
    return math.isfinite(value)


def is_metric_name(name: str) -> bool:
    """Whether ``name`` can name a metric: non-empty, printable, of bounded length."""
    return 0 < len(name) <= MAX_NAME_LENGTH and name.isprintable()


def parse_number(text: str) -> float | None:
    """A float from ``text``, or ``None`` if it is not a number (NaN/inf are numbers here).

    Python's ``float`` also takes ``1_000``; no metric format does, so neither do we.
    """
    if "_" in text:
        return None
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def as_step(value: object) -> int | None:
    """A step from a JSON-ish value: a non-negative whole number, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str):
        number = parse_number(value)
        return as_step(number) if number is not None else None
    return None


def parse_timestamp(text: str) -> float | None:
    """Seconds since the epoch from an RFC 3339 time, or ``None``.

    Nanosecond fractions (as Go and Kubernetes write them) are cut to microseconds;
    a time without an offset is taken as UTC.
    """
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        return None
    date, clock, fraction, offset = match.groups()
    iso = f"{date}T{clock}{(fraction or '')[:7]}"
    if offset is None or offset in "Zz":
        iso += "+00:00"
    elif ":" not in offset:
        iso += f"{offset[:3]}:{offset[3:]}"
    else:
        iso += offset
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (ValueError, OverflowError):
        return None


def leading_timestamp(line: str) -> tuple[float | None, str]:
    """Split an RFC 3339 timestamp off the start of ``line``, Katib style."""
    match = _RFC3339.match(line.lstrip())
    if match is None:
        return None, line
    timestamp = parse_timestamp(match.group(0))
    if timestamp is None:
        return None, line
    rest = line.lstrip()[match.end() :]
    if rest and not rest[0].isspace():
        return None, line
    return timestamp, rest
