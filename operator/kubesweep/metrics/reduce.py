"""Reduce a series of observations to what Trial status keeps.

Status must stay bounded however long a trial runs, so a metric becomes five
numbers (latest, min, max, step of the latest, count) and the objective's curve
is downsampled to at most :data:`MAX_CURVE_POINTS` points. The same code runs in
the collector (to write the termination message) and in the operator (to merge
pushed batches), so both sides agree on every figure.

"Latest" means the last observation *received*, not the one with the highest
step: a trainer that restarts from scratch reports step 0 again, and its newest
value is the one that counts. A point without a step is placed at its index in
its metric's series.

The reducers use plain dataclasses rather than the pydantic API models so that
the collector sidecar imports nothing beyond the standard library;
:mod:`kubesweep.metrics.models` converts to ``MetricSummary``/``CurvePoint``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from kubesweep.metrics.observation import Observation

#: Points kept in a curve (the same figure as ``kubesweep.api.status``).
MAX_CURVE_POINTS = 100
#: Metrics kept per trial (the same figure as ``kubesweep.api.status``).
MAX_TRIAL_METRICS = 33

#: Which point of a curve is best and must survive downsampling; ``None``: none.
Best = Literal["min", "max"] | None
#: A curve point: (step, value).
Point = tuple[int, float]


@dataclass(frozen=True, slots=True)
class MetricStats:
    """One metric reduced to the figures Trial status keeps (``MetricSummary``)."""

    name: str
    latest: float
    min: float
    max: float
    step: int | None
    count: int

    def add(self, observation: Observation) -> MetricStats:
        """These stats with one more observation of the same metric."""
        return MetricStats(
            self.name,
            observation.value,
            min(self.min, observation.value),
            max(self.max, observation.value),
            observation.step,
            self.count + 1,
        )

    def merge(self, later: MetricStats) -> MetricStats:
        """These stats followed by ``later`` (e.g. stats of the next batch)."""
        return MetricStats(
            self.name,
            later.latest,
            min(self.min, later.min),
            max(self.max, later.max),
            later.step,
            self.count + later.count,
        )

    def value(self, strategy: str) -> float:
        """The metric reduced by ``strategy``: ``min``, ``max`` or ``latest``."""
        if strategy == "min":
            return self.min
        if strategy == "max":
            return self.max
        if strategy == "latest":
            return self.latest
        raise ValueError(f"unknown strategy {strategy!r}; use min, max or latest")

    def to_dict(self) -> dict[str, object]:
        """The wire form, field for field that of ``MetricSummary``."""
        return {
            "name": self.name,
            "latest": self.latest,
            "min": self.min,
            "max": self.max,
            "step": self.step,
            "count": self.count,
        }

    @staticmethod
    def first(observation: Observation) -> MetricStats:
        """Stats of a single observation."""
        value = observation.value
        return MetricStats(observation.name, value, value, value, observation.step, 1)


def summarize(observations: Iterable[Observation]) -> dict[str, MetricStats]:
    """Stats per metric, in order of first appearance."""
    stats: dict[str, MetricStats] = {}
    for observation in observations:
        current = stats.get(observation.name)
        stats[observation.name] = (
            MetricStats.first(observation) if current is None else current.add(observation)
        )
    return stats


def objective_value(stats: Mapping[str, MetricStats], metric: str, strategy: str) -> float | None:
    """The objective: ``metric`` reduced by ``strategy``, or ``None`` if never observed."""
    found = stats.get(metric)
    return None if found is None else found.value(strategy)


def best_for(strategy: str) -> Best:
    """The point a curve of a metric reduced by ``strategy`` must keep."""
    if strategy == "min":
        return "min"
    if strategy == "max":
        return "max"
    return None


def _best_index(points: Sequence[Point], best: Best) -> int | None:
    if best is None or not points:
        return None
    values = [value for _, value in points]
    target = min(values) if best == "min" else max(values)
    return values.index(target)


def downsample(
    points: Sequence[Point], max_points: int = MAX_CURVE_POINTS, best: Best = None
) -> list[Point]:
    """At most ``max_points`` of ``points``, in order, shaped like the original.

    Largest-triangle-three-buckets: the first and last points always stay, every
    bucket in between keeps the point that spans the largest triangle with its
    neighbours, and the bucket holding the best point (by ``best``) keeps that
    one instead, so a curve never loses its first, last or best value.
    """
    if max_points < 3:
        raise ValueError("max_points must be at least 3")
    size = len(points)
    if size <= max_points:
        return list(points)
    forced = _best_index(points, best)
    chosen = [0]
    width = (size - 2) / (max_points - 2)
    previous = 0
    for bucket in range(max_points - 2):
        start = int(bucket * width) + 1
        end = int((bucket + 1) * width) + 1
        if forced is not None and start <= forced < end:
            pick = forced
        else:
            next_end = min(int((bucket + 2) * width) + 1, size)
            following = points[end:next_end] or [points[-1]]
            avg_x = sum(float(x) for x, _ in following) / len(following)
            avg_y = sum(y for _, y in following) / len(following)
            ax, ay = float(points[previous][0]), points[previous][1]
            pick = start
            largest = -1.0
            for index in range(start, end):
                x, y = points[index]
                area = abs((ax - avg_x) * (y - ay) - (ax - x) * (avg_y - ay))
                if area > largest:
                    largest, pick = area, index
        chosen.append(pick)
        previous = pick
    chosen.append(size - 1)
    return [points[index] for index in chosen]


def curve(
    observations: Iterable[Observation],
    metric: str,
    max_points: int = MAX_CURVE_POINTS,
    best: Best = None,
) -> list[Point]:
    """The downsampled curve of ``metric`` (steps missing: the index in the series)."""
    points: list[Point] = []
    for observation in observations:
        if observation.name == metric:
            step = len(points) if observation.step is None else observation.step
            points.append((step, observation.value))
    return downsample(points, max_points, best)


class _StreamCurve:
    """A curve kept in bounded memory with uniform coverage of its whole history.

    Points are thinned by a stride that doubles whenever the buffer passes twice
    the target size (so old and new parts stay equally dense); the first, the
    latest and the best point are always at hand. The final shape comes from
    :func:`downsample` over what is kept.
    """

    def __init__(self, max_points: int, best: Best) -> None:
        self._max_points = max_points
        self._best_kind = best
        self._stride = 1
        self._count = 0
        self._kept: list[tuple[int, Point]] = []
        self._best: tuple[int, Point] | None = None
        self._last: tuple[int, Point] | None = None

    def add(self, point: Point) -> None:
        index = self._count
        self._count += 1
        entry = (index, point)
        self._last = entry
        if self._best_kind is not None and (
            self._best is None
            or (self._best_kind == "min" and point[1] < self._best[1][1])
            or (self._best_kind == "max" and point[1] > self._best[1][1])
        ):
            self._best = entry
        if index % self._stride:
            return
        self._kept.append(entry)
        if len(self._kept) > 2 * self._max_points:
            self._stride *= 2
            self._kept = [e for e in self._kept if e[0] % self._stride == 0]

    def points(self, max_points: int) -> list[Point]:
        entries = dict(self._kept)
        for extra in (self._best, self._last):
            if extra is not None:
                entries[extra[0]] = extra[1]
        ordered = [entries[index] for index in sorted(entries)]
        return downsample(ordered, max_points, self._best_kind)


class SeriesReducer:
    """Streaming reduction of a trial's observations in bounded memory.

    Keeps stats for at most ``max_metrics`` metrics (the ``priority`` ones, such
    as the objective, always have room) and a bounded curve per metric; ``best``
    names the point each metric's curve must keep. Observations of metrics
    beyond the cap are counted in :attr:`ignored`.
    """

    def __init__(
        self,
        *,
        priority: Sequence[str] = (),
        best: Mapping[str, Best] | None = None,
        max_metrics: int = MAX_TRIAL_METRICS,
        max_curve_points: int = MAX_CURVE_POINTS,
    ) -> None:
        self._priority = list(dict.fromkeys(priority))
        self._best = dict(best or {})
        self._max_metrics = max_metrics
        self._max_points = max_curve_points
        self._stats: dict[str, MetricStats] = {}
        self._curves: dict[str, _StreamCurve] = {}
        self._others = 0
        self.ignored = 0
        self.observed = 0

    def add(self, observation: Observation) -> bool:
        """Take one observation; ``False`` if its metric is beyond the cap."""
        name = observation.name
        current = self._stats.get(name)
        if current is None:
            if name not in self._priority:
                if len(self._priority) + self._others >= self._max_metrics:
                    self.ignored += 1
                    return False
                self._others += 1
            stats = MetricStats.first(observation)
            self._curves[name] = _StreamCurve(self._max_points, self._best.get(name))
        else:
            stats = current.add(observation)
        self._stats[name] = stats
        step = stats.count - 1 if observation.step is None else observation.step
        self._curves[name].add((step, observation.value))
        self.observed += 1
        return True

    def extend(self, observations: Iterable[Observation]) -> None:
        """Take many observations in order."""
        for observation in observations:
            self.add(observation)

    @property
    def stats(self) -> dict[str, MetricStats]:
        """Stats per metric: the priority metrics first, then by first appearance."""
        ordered = {name: self._stats[name] for name in self._priority if name in self._stats}
        ordered.update(self._stats)
        return ordered

    def best(self, metric: str) -> Best:
        """Which point of ``metric``'s curve is kept as the best."""
        return self._best.get(metric)

    def curve(self, metric: str, max_points: int | None = None) -> list[Point]:
        """The downsampled curve of ``metric`` (empty if never observed)."""
        stream = self._curves.get(metric)
        if stream is None:
            return []
        return stream.points(max_points or self._max_points)
