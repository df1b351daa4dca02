"""Katib-compatible text metrics: ``name=value`` pairs in log lines.

Katib's StdOut/File collectors read lines such as ``epoch 3: loss=0.2`` with a
default filter or user regexes of two groups, and take an RFC 3339 time at the
start of a line as the observation time. kubesweep reads the same lines the same
way so trainers move over unchanged, and adds two things: several pairs per line
(``epoch=3 loss=0.2 accuracy=0.93``) and ``step``/``global_step``/``epoch`` keys
that set the step of the other pairs on their line instead of being metrics.

The default filter refuses to cut a number out of a longer token (``v=1.2.3`` or
``lr=1e-3x`` give nothing), so a value is never invented from half of something.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kubesweep.metrics.observation import (
    STEP_KEYS,
    ParseBuilder,
    Parsed,
    as_step,
    leading_timestamp,
    parse_number,
)

#: Lines are cut to this many characters before matching (bounded regex work).
MAX_LINE_LENGTH = 65536

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NON_FINITE = r"[+-]?(?i:nan|inf(?:inity)?)"

#: The default filter: ``name=value`` with a name that starts with a letter or ``_``.
DEFAULT_FILTER = (
    r"(?<![\w.\-/|])(?P<name>[A-Za-z_][\w.\-/|]*)\s*=\s*"
    rf"(?P<value>{_NUMBER}|{_NON_FINITE})(?!\w)(?!\.\d)"
)


@dataclass(frozen=True)
class TextFormat:
    """Compiled filters; build once with :func:`text_format` and reuse for every line."""

    patterns: tuple[re.Pattern[str], ...]


def text_format(filters: Sequence[str] = ()) -> TextFormat:
    """Compile ``filters`` (regexes with groups ``name`` and ``value``, or two groups).

    No filters means :data:`DEFAULT_FILTER`. Raises ``ValueError`` for a regex that
    does not compile or has fewer than two groups; that is a spec error, refused
    at admission already.
    """
    sources = list(filters) or [DEFAULT_FILTER]
    patterns = []
    for source in sources:
        try:
            pattern = re.compile(source)
        except re.error as error:
            raise ValueError(f"metrics filter {source!r} does not compile: {error}") from None
        if pattern.groups < 2:
            raise ValueError(f"metrics filter {source!r} needs two groups: name and value")
        patterns.append(pattern)
    return TextFormat(tuple(patterns))


_DEFAULT_FORMAT = text_format()


def _groups(match: re.Match[str]) -> tuple[str | None, str | None]:
    names = match.re.groupindex
    if "name" in names and "value" in names:
        return match.group("name"), match.group("value")
    return match.group(1), match.group(2)


def parse_text_line(line: str, fmt: TextFormat = _DEFAULT_FORMAT) -> Parsed:
    """The observations of one text line; never raises."""
    timestamp, rest = leading_timestamp(line[:MAX_LINE_LENGTH])
    pairs: list[tuple[str, str]] = []
    for pattern in fmt.patterns:
        for match in pattern.finditer(rest):
            name, value = _groups(match)
            if name is not None and value is not None:
                pairs.append((name.strip(), value.strip()))
    step = None
    for key in STEP_KEYS:
        values = [value for name, value in pairs if name.lower() == key]
        if values:
            step = as_step(values[-1])
            break
    builder = ParseBuilder()
    for name, text in pairs:
        if name.lower() in STEP_KEYS:
            continue
        number = parse_number(text)
        if number is None:
            builder.dropped += 1
        else:
            builder.add(name, number, step, timestamp)
    return builder.build()


def parse_text(lines: Iterable[str], fmt: TextFormat = _DEFAULT_FORMAT) -> Parsed:
    """The observations of many lines, in order; never raises."""
    return Parsed.concat(parse_text_line(line, fmt) for line in lines)
