"""Reads that build a great many objects at once, run without the cyclic collector's passes.

Parsing the trials of a 100,000-trial state file allocates millions of small
objects (models, dicts, tuples), none of which refer back to each other. The
cyclic garbage collector still walks the growing heap of them each time its
young generations fill: it was half of the first read's time (9.9 s of CPU
against 4.6 s with it paused). Reference counting frees whatever such a read
drops; the collector resumes when the read ends, and walks the new objects once.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the block, and back on after it if it was on.

    The switch is the process's: two such reads at once in two threads may end the
    pause of the longer one early, which costs time only, never memory for good.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
