"""What one call of an algorithm may cost, and the refusal of settings that would cost more.

An algorithm's settings choose how much work a call does: a Gaussian process on
5,000 points, 100,000 candidate points, a million observations in a density.
Unchecked, one request could pin a worker for hours or grow it past the memory
of its pod (and take a neighbour down with it). So each model-based algorithm
estimates, from its settings and the space, the arithmetic of one call and the
bytes of its largest arrays, as a few :class:`Term` values, and :func:`check`
refuses settings over either limit with a
:class:`~kubesweep.suggestion.contract.SettingsError` (a 422) that names the
setting contributing most.

The estimate never depends on the history: a setting that passes when an
experiment starts must not be refused when its history has grown. Algorithms
keep that true by bounding what they take from the history (the
``maxFitPoints``-like settings, and at most :data:`MAX_PENDING_IN_MODEL`
pending trials and :data:`MODEL_PICKS` model-based picks per call).

The estimate is deliberately coarse (worst case, constant factors rounded up);
the service's deadline catches whatever it misses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubesweep.suggestion.contract import SettingsError

#: Arithmetic operations one call may take: about ten seconds of one core.
MAX_OPERATIONS = 5e10
#: Bytes of the arrays one call may hold at once.
MAX_BYTES = 1 << 30
#: Model-based picks in one call; the rest of a larger batch is drawn uniformly.
MODEL_PICKS = 32
#: Pending trials (the most recent) that enter a model as lies or bad points. Every
#: pending point is still excluded from the reply; only the model forgets the oldest.
MAX_PENDING_IN_MODEL = 128
#: Operations to evaluate one Parzen kernel at one point in one dimension.
KERNEL_OPERATIONS = 20


@dataclass(frozen=True)
class Term:
    """One part of a call's cost, and the setting a user would lower to shrink it."""

    setting: str
    operations: float
    bytes: float


def check(terms: Sequence[Term], context: str) -> None:
    """Refuse, naming the costliest term's setting, when the terms exceed a limit.

    ``context`` says which values the estimate used (settings, features), so the
    message explains itself.
    """
    operations = sum(t.operations for t in terms)
    memory = sum(t.bytes for t in terms)
    if operations <= MAX_OPERATIONS and memory <= MAX_BYTES:
        return
    culprit = max(terms, key=lambda t: max(t.operations / MAX_OPERATIONS, t.bytes / MAX_BYTES))
    raise SettingsError(
        culprit.setting,
        f"too costly: with {context}, one call would take about {operations:.2g} operations "
        f"and {memory / 2**20:,.0f} MiB; the limits are {MAX_OPERATIONS:.0e} operations and "
        f"{MAX_BYTES // 2**20:,} MiB (see docs/suggestion-service.md); lower {culprit.setting}",
    )


__all__ = [
    "KERNEL_OPERATIONS",
    "MAX_BYTES",
    "MAX_OPERATIONS",
    "MAX_PENDING_IN_MODEL",
    "MODEL_PICKS",
    "Term",
    "check",
]
