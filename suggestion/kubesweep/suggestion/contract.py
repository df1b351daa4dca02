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

Constraints reach the algorithms as each trial's ``feasible`` and ``violation``.
An infeasible trial's loss is ranked after every feasible trial's, and among
infeasible trials by how far they missed (see :func:`penalised_losses`), so
every algorithm that compares losses prefers the feasible region without
knowing of constraints: a rank-based model (tpe) splits good from bad as with a
feasible-first ordering, and a regression model (bayesian) sees the infeasible
region as worse than any feasible point. Several objectives reach them as each
trial's ``values``, read as a loss vector by :meth:`History.losses`.

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

    def __init__(
        self,
        trials: Sequence[ObservedTrial],
        direction: Direction,
        objectives: Sequence[Direction] | None = None,
    ) -> None:
        self.trials = list(trials)
        self.direction = direction
        #: The direction of each objective, with several; None with one.
        self.objectives = list(objectives) if objectives else None
        # Only infeasible trials change a loss; without any (the common case) each loss
        # is the plain one, computed when asked rather than held per trial (100,000
        # trials made this table a third of a random search's answer).
        constrained = any(t.feasible is False for t in self.trials)
        self._losses = penalised_losses(self.trials, direction) if constrained else {}

    def loss(self, trial: ObservedTrial) -> float | None:
        """The trial's loss (ranked after the feasible ones if infeasible), None if unusable."""
        losses = self._losses
        if losses:
            key = id(trial)
            if key in losses:
                return losses[key]
        return loss_of(trial, self.direction)

    def losses(self, trial: ObservedTrial) -> tuple[float, ...] | None:
        """The trial's loss on each objective (one with one objective), None if unusable."""
        if self.objectives is None:
            loss = loss_of(trial, self.direction)
            return None if loss is None else (loss,)
        if trial.state not in (TrialState.COMPLETED, TrialState.STOPPED) or trial.values is None:
            return None
        if len(trial.values) != len(self.objectives) or not all(map(usable, trial.values)):
            return None
        return tuple(
            float(v) if d is Direction.MINIMIZE else -float(v)
            for v, d in zip(trial.values, self.objectives, strict=True)
        )

    def finished(self) -> list[tuple[ObservedTrial, float]]:
        """Trials with a usable final loss (completed, or stopped with a last value)."""
        # Once per trial of the whole history on every ask: kept to the plain loss
        # when no trial is infeasible.
        if self._losses:
            scored = [(trial, self.loss(trial)) for trial in self.trials]
        else:
            direction = self.direction
            scored = [(trial, _loss(trial, direction)) for trial in self.trials]
        return [(trial, value) for trial, value in scored if value is not None]

    def pending(self) -> list[ObservedTrial]:
        """Trials that hold a point but have no result yet."""
        return [t for t in self.trials if t.state is TrialState.PENDING]


def loss_of(trial: ObservedTrial, direction: Direction) -> float | None:
    """A trial's final value as a loss (negated when maximising), or None if unusable."""
    return _loss(trial, direction)


_COMPLETED = TrialState.COMPLETED
_STOPPED = TrialState.STOPPED
_MINIMIZE = Direction.MINIMIZE


def _loss(trial: ObservedTrial, direction: Direction) -> float | None:
    # :func:`loss_of`, with the lookups a history of 100,000 trials repeats hoisted.
    state = trial.state
    if state is _COMPLETED:
        value = trial.value
    elif state is _STOPPED:
        value = trial.value if trial.value is not None else _last(trial.intermediate)
    else:
        return None
    # usable(): NaN fails both comparisons, as it fails abs(value) <= bound.
    if value is None or not -MAX_OBSERVED_MAGNITUDE <= value <= MAX_OBSERVED_MAGNITUDE:
        return None
    return float(value) if direction is _MINIMIZE else -float(value)


def penalised_losses(
    trials: Sequence[ObservedTrial], direction: Direction
) -> dict[int, float | None]:
    """Each trial's loss by ``id``, infeasible ones ranked after every feasible one.

    An infeasible trial's loss becomes ``worst + span * (1 + v / (1 + v))``, where
    ``worst`` is the largest feasible loss (0 without any), ``span`` the range of
    all usable losses (1 if none) and ``v`` its violation (infinite when not known):
    worse than any feasible trial, better the less it missed, and bounded, so no
    model sees a scale it did not observe. Without infeasible trials the losses
    are the plain ones.
    """
    raw = {id(t): loss_of(t, direction) for t in trials}
    infeasible = [t for t in trials if t.feasible is False and raw[id(t)] is not None]
    if not infeasible:
        return raw
    usable_losses = [v for v in raw.values() if v is not None]
    feasible = [raw[id(t)] for t in trials if t.feasible is not False]
    known = [v for v in feasible if v is not None]
    worst = max(known) if known else 0.0
    span = (max(usable_losses) - min(usable_losses)) or 1.0
    out = dict(raw)
    for trial in infeasible:
        v = trial.violation
        share = 1.0 if v is None or not usable(v) else v / (1.0 + v)
        out[id(trial)] = worst + span * (1.0 + share)
    return out


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
