"""What the model-based algorithms (``bayesian``, ``tpe``, ``bohb``) share.

- :func:`observe` turns a history into arrays: unit rows and losses of finished
  trials, unit rows of pending trials, and the keys of every point already
  taken, failed ones included, so no configuration is suggested twice. A value
  the space cannot place (a parameter a trial lacks, one beyond the current
  bounds, of the wrong type, an unknown category) is *unknown*: NaN in its row,
  as :meth:`UnitCube.missing` tells from an inactive one, never guessed or
  clipped to a bound, where it would count as evidence. The rest of the row is
  still evidence; a trial with no known value is left out. Each model handles
  unknown values (:mod:`._parzen`: the density of the rows that have the value;
  ``bayesian``: :meth:`UnitCube.impute`).
- :class:`Batch` collects one reply: it refuses duplicates, falls back to
  uniform sampling when a model has nothing new to offer, and reports
  exhaustion exactly (via :meth:`Space.sample_unique`) once a finite space is
  used up. :meth:`Batch.model_turns` paces the model-based picks.
- :func:`suggest_after_design`: the Sobol design first, then the model.
- :func:`bounded_subset` keeps model fitting cost flat as histories grow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from kubesweep.api.suggestion_wire import Assignment, ObservedTrial, SuggestReply
from kubesweep.suggestion.algorithms._unitcube import Array, UnitCube, sobol_points
from kubesweep.suggestion.contract import History, rng_for
from kubesweep.suggestion.cost import MODEL_PICKS
from kubesweep.suggestion.space import Key

#: Most model-based picks in one reply; the rest of a larger batch is uniform, so
#: a request for hundreds of parallel slots stays fast.
MAX_MODEL_PICKS = MODEL_PICKS


@dataclass
class Observations:
    """A history as arrays over the unit cube."""

    unit: Array  # (n, dim) finished trials with usable losses, NaN where inactive or unknown
    losses: Array  # (n,) smaller is better
    pending: Array  # (m, dim) trials that hold a point but have no value yet (NaN likewise)
    used: set[bytes]  # row keys of every trial's point
    trials: list[ObservedTrial] = field(repr=False)

    @property
    def started(self) -> int:
        """Trials suggested so far (finished, pending and failed)."""
        return len(self.trials)


def observe(cube: UnitCube, history: History) -> Observations:
    """The arrays of ``history``: values outside the space are unknown (NaN), and
    trials with no known value are left out."""
    finished = history.finished()
    unit = cube.encode([t.parameters for t, _ in finished])
    losses = np.array([loss for _, loss in finished], dtype=float)
    keep = cube.known_rows(unit)
    unit, losses = cube.snap(unit[keep]), losses[keep]
    pending = cube.encode([t.parameters for t in history.pending()])
    pending = cube.snap(pending[cube.known_rows(pending)])
    counted = {id(t) for t, _ in finished}
    others = [t.parameters for t in history.trials if id(t) not in counted]
    other_unit = cube.encode(others)
    other_unit = cube.snap(other_unit[cube.valid_rows(other_unit)])
    # Only complete rows name a point; a partial one cannot repeat a suggestion.
    used = set(cube.row_keys(unit[cube.valid_rows(unit)])) | set(cube.row_keys(other_unit))
    return Observations(unit, losses, pending, used, history.trials)


def bounded_subset(
    losses: Array, limit: int, rng: np.random.Generator, best_share: float = 0.5
) -> np.ndarray:
    """Indices of at most ``limit`` observations: the best ones plus a uniform spread.

    The best points shape the model where it matters (near the optimum); the
    random remainder keeps its global picture. The cost of fitting then depends
    on ``limit``, not on the history length.
    """
    n = len(losses)
    if n <= limit:
        return np.arange(n)
    order = np.argsort(losses, kind="stable")
    best = int(limit * best_share)
    rest = rng.choice(order[best:], size=limit - best, replace=False)
    return np.concatenate([order[:best], np.sort(rest)])


class Batch:
    """The assignments of one reply, distinct from the history and from each other."""

    def __init__(self, cube: UnitCube, observations: Observations, count: int) -> None:
        self.cube = cube
        self.count = count
        self.used = set(observations.used)
        self.rows: list[Array] = []
        self.assignments: list[Assignment] = []
        self.exhausted = False
        self._trials = observations.trials
        self._space_keys: set[Key] | None = None
        self._pending_keys = cube.row_keys(observations.pending)

    @property
    def full(self) -> bool:
        """Whether the reply is complete (or the space has run out)."""
        return self.exhausted or len(self.assignments) >= self.count

    def is_new(self, row: Array) -> bool:
        """Whether the snapped ``row`` is neither in the history nor in this batch."""
        key = self.cube.row_keys(row[None, :])[0]
        return key not in self.used and key not in self._pending_keys

    def take(self, row: Array, fidelity: float | None = None) -> bool:
        """Add the snapped ``row`` unless it repeats a taken point; True if added."""
        key = self.cube.row_keys(row[None, :])[0]
        if key in self.used or key in self._pending_keys:
            return False
        self.used.add(key)
        self.rows.append(row)
        parameters = self.cube.decode(row)
        self.assignments.append(Assignment(parameters=parameters, fidelity=fidelity))
        if self._space_keys is not None:
            self._space_keys.add(self.cube.space.key(parameters))
        return True

    def take_first_new(self, rows: Array, fidelity: float | None = None) -> bool:
        """Take the first row of ``rows`` that is new; False if none is."""
        return any(self.take(row, fidelity) for row in rows)

    def take_random(self, rng: np.random.Generator, fidelity: float | None = None) -> bool:
        """Take one uniform new point, or mark the space exhausted if none is left."""
        for row in self.cube.snap(rng.random((16, self.cube.dim))):
            if self.take(row, fidelity):
                return True
        # The space may be nearly used up: ask the exact, key-based sampler.
        space = self.cube.space
        if self._space_keys is None:
            self._space_keys = {space.key(t.parameters) for t in self._trials}
            self._space_keys |= {space.key(a.parameters) for a in self.assignments}
        found = space.sample_unique(rng, 1, self._space_keys)
        if not found:
            self.exhausted = True
            return False
        row = self.cube.snap(self.cube.encode(found))[0]
        self.used.add(self.cube.row_keys(row[None, :])[0])
        self.rows.append(row)
        self.assignments.append(Assignment(parameters=found[0], fidelity=fidelity))
        return True

    def model_turns(self, rng: np.random.Generator) -> Iterator[int]:
        """Yield once per model-based pick until the reply is full.

        After :data:`MAX_MODEL_PICKS` turns the rest of the reply is drawn uniformly.
        """
        picks = 0
        while not self.full:
            picks += 1
            if picks > MAX_MODEL_PICKS:
                self.take_random(rng)
                continue
            yield picks

    def batch_rows(self) -> Array:
        """The unit rows taken so far, ``(k, dim)``."""
        if not self.rows:
            return np.zeros((0, self.cube.dim))
        return np.vstack(self.rows)

    def reply(self) -> SuggestReply:
        """The reply; ``exhausted`` only when fewer than ``count`` could be found."""
        return SuggestReply(
            assignments=self.assignments[: self.count],
            exhausted=self.exhausted and len(self.assignments) < self.count,
        )


def suggest_after_design(
    cube: UnitCube,
    history: History,
    count: int,
    *,
    seed: int | None,
    salt: str,
    design_trials: int,
    min_finished: int,
    model_picks: Callable[[Observations, Batch, np.random.Generator], None],
) -> SuggestReply:
    """A reply whose first picks follow the seed's Sobol design and the rest ``model_picks``.

    The first ``design_trials`` trials (pending and failed ones count) are design
    points, continuing one sequence across calls; so is the whole reply while fewer
    than ``min_finished`` trials have a loss. A design point that repeats a taken
    one is replaced by a uniform new point.
    """
    observations = observe(cube, history)
    batch = Batch(cube, observations, count)
    rng = rng_for(seed, len(history.trials), salt)
    initial = max(0, design_trials - observations.started)
    if len(observations.losses) < min_finished:
        initial = count
    if initial:
        design = sobol_points(seed, salt, observations.started, min(initial, count), cube.dim)
        for row in cube.snap(design):
            if batch.full:
                break
            if not batch.take(row):
                batch.take_random(rng)
    if not batch.full:
        model_picks(observations, batch, rng)
    return batch.reply()
