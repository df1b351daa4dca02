"""Reads that build a great many objects at once keep what was made from what did not
change (and pause the cyclic collector, :mod:`kubesweep.gcpause`).

A reader that reads the same thing at every change (the dashboard: a state file's
rows, then their table rows) makes each value only for the sources that differ
from the last read (:class:`KeptByName`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

S = TypeVar("S")
V = TypeVar("V")


class KeptByName(Generic[S, V]):
    """Values made from named sources, each kept while its source stays the same.

    A source that is the same object as the last read's, or equal to it, gets the
    value made from it then (the same object, so what is derived from the value
    can be kept by identity too); a change of ``context`` (what every value
    depends on besides its source) makes them all again. Only the last read's
    sources and values are kept.
    """

    def __init__(self) -> None:
        self._context: object = None
        self._kept: dict[str, tuple[S, V]] = {}

    def values(
        self, sources: Iterable[tuple[str, S]], context: object, make: Callable[[S], V]
    ) -> list[V]:
        """The value of each named source, in order: kept when unchanged, else made."""
        if context != self._context:
            self._context, self._kept = context, {}
        known = self._kept
        kept: dict[str, tuple[S, V]] = {}
        out = []
        for name, source in sources:
            seen = known.get(name)
            same = seen is not None and (seen[0] is source or seen[0] == source)
            value = seen[1] if seen is not None and same else make(source)
            kept[name] = (source, value)
            out.append(value)
        self._kept = kept
        return out
