"""The one contract every search algorithm and early-stopping rule implements.

Algorithms are pure: a request carries the search space, the objective's
direction, the algorithm's settings and seed, and every observed trial; the
reply is computed from that alone. No hidden state survives between calls, so
any replica of the service can answer, a restart loses nothing, and history the
algorithm did not produce itself (a warm start) is just more history.

The requests and replies themselves are API models
(:mod:`kubesweep.api.suggestion_wire`), shared with the operator, which must not
need numpy to speak to the service; this module holds the algorithm side of the
contract: the protocols, the history as losses, and the seeded randomness.

Algorithms see objective values as *losses* (smaller is better):
:func:`loss_of` flips maximised objectives, so no algorithm handles direction.
Observed numbers that no algorithm can compute with are one case, handled once
here: an objective or intermediate value that is NaN, infinite, or larger in
magnitude than :data:`MAX_OBSERVED_MAGNITUDE` is *unusable*, exactly as if the
trial had reported nothing (a completed trial with such a value counts as
failed; its point stays taken). Every algorithm and stopping rule reads values
through :func:`usable`, so ``1e308`` cannot overflow a sum inside a model fit,
and no request of any shape is refused for it: a diverged trial is an ordinary
event, not a client error.

Randomness comes from :func:`rng_for`, seeded by the experiment seed and the
history length, which makes replies reproducible and still different call by call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from kubesweep.api.experiment import Direction, ParameterValue
from kubesweep.api.status import CurvePoint
from kubesweep.api.suggestion_wire import (
    ObservedTrial,
    SearchSpace,
    StopDecision,
    SuggestReply,
    TrialState,
)

#: Largest magnitude of an objective or intermediate value that algorithms use:
#: squares and sums of a million such values still fit in a float. Beyond it a
#: value is unusable (see :func:`usable`); no real objective comes near it.
MAX_OBSERVED_MAGNITUDE = 1e150


def usable(value: float | None) -> bool:
    """Whether an observed objective value is a number algorithms may compute with."""
    return value is not None and abs(value) <= MAX_OBSERVED_MAGNITUDE


class SettingsError(ValueError):
    """An unknown or invalid algorithm setting; names the setting."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"algorithm.settings.{setting}: {message}")
        self.setting = setting


class History:
    """The observed trials of one request, with losses precomputed (smaller is better)."""

    def __init__(self, trials: Sequence[ObservedTrial], direction: Direction) -> None:
        self.trials = list(trials)
        self.direction = direction

    def loss(self, trial: ObservedTrial) -> float | None:
        """The trial's loss, or None when it has no usable value."""
        return loss_of(trial, self.direction)

    def finished(self) -> list[tuple[ObservedTrial, float]]:
        """Trials with a usable final loss (completed, or stopped with a last value)."""
        out = []
        for trial in self.trials:
            value = self.loss(trial)
            if value is not None:
                out.append((trial, value))
        return out

    def pending(self) -> list[ObservedTrial]:
        """Trials that hold a point but have no result yet."""
        return [t for t in self.trials if t.state is TrialState.PENDING]


def loss_of(trial: ObservedTrial, direction: Direction) -> float | None:
    """A trial's final value as a loss (negated when maximising), or None if unusable."""
    if trial.state is TrialState.COMPLETED:
        value = trial.value
    elif trial.state is TrialState.STOPPED:
        value = trial.value if trial.value is not None else _last(trial.intermediate)
    else:
        return None
    if value is None or not usable(value):
        return None
    return float(value) if direction is Direction.MINIMIZE else -float(value)


def _last(curve: Sequence[CurvePoint]) -> float | None:
    return curve[-1].value if curve else None


def rng_for(seed: int | None, history_length: int, salt: str = "") -> np.random.Generator:
    """A generator fixed by the seed and the history length (and an optional salt)."""
    material = f"{seed}:{history_length}:{salt}".encode()
    digest = hashlib.sha256(material).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class SearchAlgorithm(Protocol):
    """Suggests configurations. Constructed per request from validated settings."""

    def suggest(self, history: History, count: int) -> SuggestReply:
        """Return up to ``count`` assignments; fewer only together with ``exhausted``,
        or, for a multi-fidelity algorithm, while it waits for pending results: results
        that may earn promotions in a used-up finite space, or for pbt the members that
        every other member must wait for (then ``exhausted`` stays false)."""
        ...


class StoppingRule(Protocol):
    """Decides which running trials to stop."""

    def decide(self, history: History) -> list[StopDecision]:
        """The pending/running trials that should stop now."""
        ...


class AlgorithmFactory(Protocol):
    """Builds an algorithm for one request, refusing bad settings with :class:`SettingsError`."""

    def __call__(
        self,
        space: SearchSpace,
        settings: Mapping[str, ParameterValue],
        seed: int | None,
    ) -> SearchAlgorithm: ...
