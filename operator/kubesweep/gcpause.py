"""The cyclic garbage collector paused while a great many acyclic objects are made.

Why: parsing or scanning 100,000 trials makes millions of small objects (models,
dicts, tuples), none of which refer back to each other. The cyclic collector
still walks the growing heap each time its young generations fill, and the
objects that outlive one pass push it into full collections over everything the
process holds. It was half of the CLI's first read of a 100,000-trial state file
(9.9 s of CPU against 4.6 s paused), and most of one pass of the suggestion
service over a held history of 100,000 trials (0.24 s against 0.05 s).
Reference counting still frees whatever such work drops; the collector resumes
when the work ends.

The switch is the process's, and the pauses are counted: in a process whose
threads each pause it (the suggestion service's thread executor), the collector
resumes when the last pause ends, and only if it was on when the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Pauses:
    """How many blocks of this process hold the collector paused, and whether to resume it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.resume = False


_PAUSES = _Pauses()


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the block; back on after the last such block, if it was on."""
    with _PAUSES.lock:
        if _PAUSES.count == 0:
            _PAUSES.resume = gc.isenabled()
            gc.disable()
        _PAUSES.count += 1
    try:
        yield
    finally:
        with _PAUSES.lock:
            _PAUSES.count -= 1
            if _PAUSES.count == 0 and _PAUSES.resume:
                gc.enable()


__all__ = ["collector_paused"]
