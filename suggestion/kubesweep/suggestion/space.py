"""The search space as algorithms see it: a unit hypercube with a map back to values.

Every algorithm works in the same coordinates so that none re-implements the
awkward parts of a search space: log scales, integer rounding, step snapping,
categories and conditional parameters. :class:`Space` compiles a
:class:`~kubesweep.suggestion.contract.SearchSpace` once per request and offers:

- ``to_unit`` / ``from_unit``: one coordinate per parameter in ``[0, 1]``.
  Numbers map through their (log) range; integers and stepped numbers own equal
  slices of the interval so uniform sampling is uniform over their values;
  a categorical of ``k`` values maps value ``i`` to the centre of slice ``i``;
  a one-value range (``min == max``) is a constant at coordinate 0.5.
  Inactive conditional parameters encode as NaN and are omitted when decoding.
- ``to_features``: a model-friendly encoding (numbers in ``[0, 1]``, categoricals
  one-hot, inactive dimensions filled) for Gaussian processes and the like.
- ``sample`` / ``sample_unique``: uniform points, optionally avoiding a set of
  canonical keys (the history, pending trials included).
- ``key``: a canonical, hashable form of an assignment for deduplication; equal
  configurations give equal keys whatever their provenance (``3`` vs ``3.0``,
  inactive leftovers).
- ``contains`` and ``problems``: validity of an assignment and of the space.
- ``grid``: ordered enumeration of a finite (or discretised) space, conditional-aware.
- ``rung_budgets``: the fidelity ladder ``min * eta**i`` shared by the
  multi-fidelity algorithms.

Everything is pure and cheap: compiling is O(parameters), and the per-assignment
operations are O(parameters), so algorithms can afford them over 10,000 trials.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from functools import cached_property

import numpy as np

from kubesweep.api.experiment import Fidelity, Parameter, ParameterType, ParameterValue
from kubesweep.api.suggestion_wire import SearchSpace

#: A canonical, hashable form of an assignment: one part per parameter in
#: declaration order (None where inactive or missing). Opaque: compare, hash, store.
Key = tuple[Hashable, ...]

#: An assignment of values to (active) parameters.
Values = dict[str, ParameterValue]

_STEP_TOLERANCE = 1e-9
_MAX_ENUMERATION = 1_000_000
#: Float resolutions (at the bounds) a grid step must span: its points stay distinct.
_STEP_RESOLUTION = 4
#: Most rungs of a fidelity ladder. Hyperband's brackets grow as ``eta**rungs``,
#: and no real ladder needs more than a dozen (1 to 27 epochs by 3 is four).
MAX_RUNGS = 64


class SpaceError(ValueError):
    """The search space itself is unusable (names the parameter at fault)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def finite_number(value: object) -> float | None:
    """``value`` as a finite float, or None: not a number, a bool, NaN, infinite, or an
    int too large for a float (``10**400``).

    Observed trials may carry any of these (a warm start from elsewhere, a broken
    client); they are values outside the space, never an error.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _same(a: object, b: object) -> bool:
    """Equality that keeps ``True`` and ``1`` apart, as categories must."""
    return type(a) is type(b) and a == b


class Dimension:
    """One parameter compiled for fast encoding, decoding and keys.

    Everything derived from the parameter is computed once here, because keys and
    codes are computed for every trial of histories of 10,000 trials.
    ``size`` is the number of distinct values (None for a continuous float);
    ``choices`` are a categorical's values; ``step`` the spacing of a discrete
    number (1 for a plain int, None for a continuous float). A number whose
    ``min`` equals its ``max`` is a ``constant``: one value, size 1, coordinate 0.5.
    """

    def __init__(self, parameter: Parameter, index: int) -> None:
        self.parameter = parameter
        self.index = index
        self.name: str = parameter.name
        self.is_categorical = parameter.type is ParameterType.CATEGORICAL
        self.is_int = parameter.type is ParameterType.INT
        self.choices: list[ParameterValue] = list(parameter.values or [])
        self._lookup = {(type(v), v): i for i, v in enumerate(self.choices)}
        self.step: float | None = None
        if self.is_int:
            self.step = float(max(1, round(parameter.step))) if parameter.step is not None else 1.0
        elif not self.is_categorical:
            self.step = parameter.step
        self._count = 0
        self.size: int | None = len(self.choices) if self.is_categorical else None
        self.constant = not self.is_categorical and parameter.low == parameter.high
        if self.step is not None:
            self._count = grid_count(parameter.low, parameter.high, self.step)
            self.size = self._count + 1
        elif self.constant:
            self.size = 1
        self._bounds = (0.0, 1.0) if self.is_categorical else self._warped_bounds()
        self.limits = (-math.inf, math.inf) if self.is_categorical else _limits(parameter)

    def __repr__(self) -> str:
        return f"Dimension({self.name!r}, index={self.index})"

    @property
    def count(self) -> int:
        """Index of the last grid point of a discrete number (points are ``0..count``)."""
        if self.step is None and not self.constant:
            raise ValueError(f"parameter {self.name} is continuous")
        return self._count

    def _warped_bounds(self) -> tuple[float, float]:
        """The warped interval that ``[0, 1]`` maps onto (log or linear)."""
        p = self.parameter
        step = self.step
        low, high = p.low, p.high
        if self.size == 1:  # a constant, or a grid of one point: the middle of [0, 1]
            middle = math.log(low) if p.log else low
            return middle - 0.5, middle + 0.5
        if step is not None:
            high = low + self._count * step
            if p.log:
                lower = low - step / 2
                low = low if lower <= 0 else lower
                high = high + step / 2
            else:
                low, high = low - step / 2, high + step / 2
        if p.log:
            return math.log(low), math.log(high)
        return low, high

    def to_unit(self, value: ParameterValue) -> float:
        """The coordinate in ``[0, 1]`` of ``value``; NaN if it is not a number within
        the bounds (see :attr:`limits`), never the coordinate of a bound."""
        if self.is_categorical:
            i = self._lookup.get((type(value), value))
            return math.nan if i is None else (i + 0.5) / len(self.choices)
        v = finite_number(value)
        if v is None or not self.limits[0] <= v <= self.limits[1]:
            return math.nan
        if self.parameter.log:
            if v <= 0:
                return math.nan
            v = math.log(v)
        low, high = self._bounds
        return min(1.0, max(0.0, (v - low) / (high - low)))

    def from_unit(self, u: float) -> ParameterValue:
        """The value at coordinate ``u`` (clipped into ``[0, 1]``): snapped, rounded, typed."""
        u = min(1.0, max(0.0, float(u))) if math.isfinite(u) else 0.5
        if self.is_categorical:
            choices = self.choices
            return choices[min(len(choices) - 1, int(u * len(choices)))]
        low, high = self._bounds
        v = low + u * (high - low)
        if self.parameter.log:
            v = math.exp(v)
        return self.snap(v)

    def snap(self, v: float) -> ParameterValue:
        """The valid value nearest to the number ``v``."""
        p = self.parameter
        step = self.step
        if step is None:
            return min(p.high, max(p.low, v))
        k = min(self.count, max(0, round((v - p.low) / step)))
        return self.value_at(k)

    def value_at(self, k: int) -> ParameterValue:
        """Grid point ``k`` of a discrete dimension (a category for categoricals)."""
        if self.is_categorical:
            return self.choices[k]
        p = self.parameter
        step = self.step
        if step is None and self.constant:
            return p.low
        assert step is not None
        v = min(p.high, p.low + k * step)
        if p.type is ParameterType.INT:
            return round(v)
        decimals = max(0, -math.floor(math.log10(step))) + 9
        return round(v, decimals)

    def values(self, default_points: int = 10) -> list[ParameterValue]:
        """All values of a discrete dimension; ``default_points`` evenly spaced for a
        continuous float (log-spaced when ``log``)."""
        return list(self.iter_values(default_points))

    def iter_values(self, default_points: int = 10) -> Iterator[ParameterValue]:
        """:meth:`values` lazily, so a grid over a huge int range never lists it."""
        if self.is_categorical:
            yield from self.choices
        elif self.step is not None or self.constant:
            yield from (self.value_at(k) for k in range(self._count + 1))
        else:
            n = max(2, default_points)
            yield from dict.fromkeys(self.from_unit(i / (n - 1)) for i in range(n))

    def key_part(self, value: ParameterValue) -> Hashable:
        """The canonical form of ``value`` in keys: a category's index, a stepped
        number's grid index, an int as int, a float as itself; anything invalid
        as a tagged tuple that equals nothing valid."""
        if self.is_categorical:
            i = self._lookup.get((type(value), value))
            return ("?", type(value).__name__, value) if i is None else i
        if isinstance(value, bool) or not isinstance(value, int | float):
            return ("?", type(value).__name__, value)
        if self.is_int:
            # An int of any size is its own key; a float only when it is whole.
            return int(value) if isinstance(value, int) or value.is_integer() else ("?", value)
        number = finite_number(value)
        if number is None:
            return ("?", value)
        if self.step is not None:
            offset = (number - self.parameter.low) / self.step
            if not math.isfinite(offset):  # 1e308 - (-1): far off the grid
                return ("off", number)
            k = round(offset)
            return k if abs(offset - k) < 1e-6 else ("off", number)
        return number

    def contains(self, value: object) -> bool:
        """Whether ``value`` is a valid value of this parameter, of the right type."""
        p = self.parameter
        if p.type is not ParameterType.CATEGORICAL and finite_number(value) is None:
            return False
        if p.type is ParameterType.INT and not isinstance(value, int):
            return False
        if p.type is ParameterType.FLOAT and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            return False
        if p.type is ParameterType.INT and isinstance(value, bool):
            return False
        return p.contains(value)


class Space:
    """A compiled search space: encoding, sampling, keys and conditions.

    Raises :class:`SpaceError` when the space is inconsistent (see :func:`problems`).
    """

    def __init__(self, space: SearchSpace) -> None:
        found = problems(space)
        if found:
            raise SpaceError(found)
        self.space = space
        self.fidelity: Fidelity | None = space.fidelity
        self.dimensions: tuple[Dimension, ...] = tuple(
            Dimension(p, i) for i, p in enumerate(space.parameters)
        )
        self.names: tuple[str, ...] = tuple(d.name for d in self.dimensions)
        self._by_name = {d.name: d for d in self.dimensions}
        self._order = _topological(space.parameters)
        self.conditional = any(p.when is not None for p in space.parameters)
        self._key_plan = tuple(
            (d.name, d if _needs_normalising(d) else None) for d in self.dimensions
        )
        self._unconditional = frozenset(p.name for p in space.parameters if p.when is None)
        # (name, parent, allowed parent values) in dependency order, parents first.
        self._conditions = tuple(
            (d.name, d.parameter.when.parameter, {(type(v), v) for v in d.parameter.when.values})
            for d in self._order
            if d.parameter.when is not None
        )
        feature_slices = []
        start = 0
        for d in self.dimensions:
            width = len(d.choices) if d.is_categorical else 1
            feature_slices.append(slice(start, start + width))
            start += width
        self._feature_slices = tuple(feature_slices)
        self.feature_count = start

    # --- shape -----------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Number of unit coordinates: one per parameter, in declaration order."""
        return len(self.dimensions)

    def dimension(self, name: str) -> Dimension:
        """The compiled parameter called ``name``."""
        return self._by_name[name]

    def cardinality(self) -> int | None:
        """Number of distinct active assignments, None if any dimension is continuous.

        Conditional parameters count only under the parent values that activate them.
        Computed once, by branching only on the categoricals that other parameters
        depend on.
        """
        return self._cardinality

    @cached_property
    def _cardinality(self) -> int | None:
        if any(d.size is None for d in self.dimensions):
            return None
        if not self.conditional:
            return math.prod(d.size or 1 for d in self.dimensions)
        parents = {d.parameter.when.parameter for d in self.dimensions if d.parameter.when}
        return self._count(list(self._order), {}, parents)

    def _count(self, todo: list[Dimension], current: Values, parents: set[str]) -> int:
        total = 1
        for depth, d in enumerate(todo):
            if not self._active_under(d, current):
                continue
            if d.name in parents:
                rest = todo[depth + 1 :]
                branches = 0
                for value in d.choices:
                    current[d.name] = value
                    branches += self._count(rest, current, parents)
                del current[d.name]
                return total * branches
            total *= d.size or 1
        return total

    @staticmethod
    def _active_under(d: Dimension, current: Mapping[str, ParameterValue]) -> bool:
        when = d.parameter.when
        return when is None or (
            when.parameter in current
            and any(_same(current[when.parameter], v) for v in when.values)
        )

    # --- conditions --------------------------------------------------------------

    def active(self, values: Mapping[str, ParameterValue]) -> list[str]:
        """Names of the parameters active under ``values``, in declaration order.

        A parameter with ``when`` is active when its parent is active and takes one
        of the listed values; a parent missing from ``values`` makes it inactive.
        """
        if not self.conditional:
            return list(self.names)
        active = self._active_set(values)
        return [n for n in self.names if n in active]

    def _active_set(self, values: Mapping[str, ParameterValue]) -> set[str]:
        active = set(self._unconditional)
        for name, parent, allowed in self._conditions:
            if parent in active and parent in values:
                value = values[parent]
                if (type(value), value) in allowed:
                    active.add(name)
        return active

    def is_active(self, name: str, values: Mapping[str, ParameterValue]) -> bool:
        """Whether parameter ``name`` is active under ``values``."""
        return name in self.active(values)

    def prune(self, values: Mapping[str, ParameterValue]) -> Values:
        """``values`` restricted to the active parameters, in declaration order."""
        active = self._active_set(values) if self.conditional else self._unconditional
        return {n: values[n] for n in self.names if n in active and n in values}

    # --- encoding -----------------------------------------------------------------

    def to_unit(self, values: Mapping[str, ParameterValue]) -> np.ndarray:
        """The unit coordinates of an assignment; NaN for inactive, missing or invalid values."""
        out = np.full(self.dim, np.nan)
        active = set(self.active(values)) if self.conditional else None
        for i, d in enumerate(self.dimensions):
            if active is not None and d.name not in active:
                continue
            value = values.get(d.name)
            if value is not None:
                out[i] = d.to_unit(value)
        return out

    def to_unit_many(self, assignments: Sequence[Mapping[str, ParameterValue]]) -> np.ndarray:
        """``to_unit`` of several assignments as an ``(n, dim)`` array."""
        out = np.full((len(assignments), self.dim), np.nan)
        for row, values in enumerate(assignments):
            out[row] = self.to_unit(values)
        return out

    def from_unit(self, x: Sequence[float] | np.ndarray) -> Values:
        """The assignment at unit point ``x``: snapped, typed, inactive parameters omitted.

        NaN coordinates of *active* parameters decode to the middle of the range.
        """
        if len(x) != self.dim:
            raise ValueError(f"expected {self.dim} coordinates, got {len(x)}")
        full: Values = {d.name: d.from_unit(float(x[d.index])) for d in self.dimensions}
        return self.prune(full) if self.conditional else full

    def to_features(
        self, values: Mapping[str, ParameterValue], inactive: float = 0.0
    ) -> np.ndarray:
        """A model-friendly vector of length :attr:`feature_count`.

        Numbers are their unit coordinate; a categorical is one-hot over its values;
        inactive (or invalid) numbers take ``inactive`` and inactive categoricals are
        all zeros, so a kernel sees every inactive value as one same point.
        """
        out = np.zeros(self.feature_count)
        unit = self.to_unit(values)
        for d, part in zip(self.dimensions, self._feature_slices, strict=True):
            u = unit[d.index]
            if d.is_categorical:
                if not np.isnan(u):
                    out[part.start + min(len(d.choices) - 1, int(u * len(d.choices)))] = 1.0
            else:
                out[part.start] = inactive if np.isnan(u) else u
        return out

    def feature_slice(self, name: str) -> slice:
        """The columns of ``to_features`` that encode parameter ``name``."""
        return self._feature_slices[self._by_name[name].index]

    # --- sampling -----------------------------------------------------------------

    def sample_unit(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniform points of the unit cube, shape ``(n, dim)``."""
        return rng.random((n, self.dim))

    def sample(self, rng: np.random.Generator, n: int) -> list[Values]:
        """``n`` uniform assignments (duplicates possible)."""
        return [self.from_unit(row) for row in self.sample_unit(rng, n)]

    def sample_unique(
        self,
        rng: np.random.Generator,
        n: int,
        avoid: set[Key] | None = None,
        tries: int = 32,
    ) -> list[Values]:
        """Up to ``n`` uniform assignments whose keys are not in ``avoid`` nor repeated.

        Fewer than ``n`` come back only when the space has (nearly) no unused points
        left: small finite spaces are enumerated, so the answer is then exact. The
        keys of the returned points are added to ``avoid``.
        """
        avoid = set() if avoid is None else avoid
        out: list[Values] = []
        attempts = 0
        while len(out) < n and attempts < tries:
            attempts += 1
            for values in self.sample(rng, n - len(out)):
                key = self.key(values)
                if key not in avoid:
                    avoid.add(key)
                    out.append(values)
        size = self.cardinality()
        if len(out) < n and size is not None and size <= _MAX_ENUMERATION:
            # Rejection sampling struggles in a nearly used-up finite space: list
            # what is left and pick from it, which also makes exhaustion exact.
            free = [v for v in self.grid() if self.key(v) not in avoid]
            for i in rng.permutation(len(free))[: n - len(out)]:
                out.append(free[int(i)])
                avoid.add(self.key(free[int(i)]))
        return out

    # --- identity and validity ------------------------------------------------------

    def key(self, values: Mapping[str, ParameterValue]) -> Key:
        """The canonical key of an assignment: inactive and unknown parameters ignored.

        Values that Python already compares correctly (``3 == 3.0``, distinct
        strings) are used as they are; categoricals whose values Python would
        confuse (``True == 1``) use the value's index, and stepped floats their grid
        index, so ``0.30000000000000004`` and ``0.3`` are one point.
        """
        get = values.get
        active = self._active_set(values) if self.conditional else self._unconditional
        parts: list[Hashable] = []
        for name, dimension in self._key_plan:
            value = get(name)
            if value is None or name not in active:
                parts.append(None)
            elif dimension is None:
                parts.append(value)
            else:
                parts.append(dimension.key_part(value))
        return tuple(parts)

    def contains(self, values: Mapping[str, ParameterValue]) -> bool:
        """Whether ``values`` assigns exactly the active parameters, each validly.

        Extra keys (unknown or inactive parameters) and missing active ones fail.
        """
        active = self.active(values)
        if set(values) != set(active):
            return False
        return all(self._by_name[n].contains(values[n]) for n in active)

    def grid(self, default_points: int = 10) -> Iterator[Values]:
        """Every assignment of the discretised space, in lexicographic order.

        Continuous floats contribute ``default_points`` values. Conditional
        parameters vary only where active, so no assignment repeats.
        """
        yield from self._grid(list(self._order), {}, default_points)

    def _grid(self, todo: list[Dimension], current: Values, points: int) -> Iterator[Values]:
        # Depth-first over the dependency order; parameters inactive under the
        # current partial assignment are skipped rather than varied.
        for depth, d in enumerate(todo):
            if not self._active_under(d, current):
                continue
            rest = todo[depth + 1 :]
            for value in d.iter_values(points):
                current[d.name] = value
                yield from self._grid(rest, current, points)
            del current[d.name]
            return
        yield {n: current[n] for n in self.names if n in current}


def _limits(parameter: Parameter) -> tuple[float, float]:
    """The values a number's history may hold: its bounds, widened by float noise.

    A value beyond them (a warm start from wider bounds) is outside the space and
    encodes as unknown; one within them but off the grid snaps to the nearest
    grid value. The slack is 1e-9 of the range plus a few float resolutions, so
    ``0.1 + 0.2`` for a bound of ``0.3`` is still inside.
    """
    low, high = parameter.low, parameter.high
    slack = 1e-9 * (high - low) + 4.0 * math.ulp(max(abs(low), abs(high)))
    return low - slack, high + slack


def _needs_normalising(d: Dimension) -> bool:
    """Whether raw values of ``d`` could compare wrongly as key parts."""
    if d.is_categorical:
        return len(set(d.choices)) != len(d.choices)  # e.g. True and 1 both listed
    return d.step is not None and not d.is_int


def _topological(parameters: Sequence[Parameter]) -> tuple[Dimension, ...]:
    """Dimensions ordered so each parent precedes the parameters conditioned on it."""
    dims = {p.name: Dimension(p, i) for i, p in enumerate(parameters)}
    placed: dict[str, Dimension] = {}

    def place(name: str, seen: tuple[str, ...]) -> None:
        if name in placed:
            return
        when = dims[name].parameter.when
        if when is not None and when.parameter in dims and when.parameter not in seen:
            place(when.parameter, (*seen, name))
        placed[name] = dims[name]

    for p in parameters:
        place(p.name, ())
    return tuple(placed.values())


def problems(space: SearchSpace) -> list[str]:
    """What makes ``space`` unusable, each naming the field at fault (empty if fine).

    Duplicate names first, then each parameter's own problems in order, then
    cycles of conditions, then the fidelity's.
    """
    by_name = {p.name: p for p in space.parameters}
    out = _duplicate_names(space.parameters)
    for i, p in enumerate(space.parameters):
        out += _parameter_problems(f"parameters[{i}]", p, by_name)
    out += _condition_cycles(space.parameters, by_name)
    if space.fidelity is not None:
        out += _fidelity_problems(space.fidelity, by_name)
    return out


def _duplicate_names(parameters: Sequence[Parameter]) -> list[str]:
    names = [p.name for p in parameters]
    return [
        f"parameters[{i}].name: duplicate parameter name {name!r}"
        for i, name in enumerate(names)
        if name in names[:i]
    ]


def _parameter_problems(where: str, p: Parameter, by_name: Mapping[str, Parameter]) -> list[str]:
    """A whole-number step for ints, a usable grid, a condition on a categorical parent."""
    out: list[str] = []
    if p.type is ParameterType.INT and p.step is not None and not float(p.step).is_integer():
        out.append(f"{where}.step: an int parameter needs a whole-number step")
    if p.type is not ParameterType.CATEGORICAL and p.min is not None and p.max is not None:
        step = p.step if p.step is not None else (1.0 if p.type is ParameterType.INT else None)
        grid = None if step is None else _grid_problem(p.min, p.max, step)
        if grid:
            out.append(f"{where}.{grid}")
    if p.when is None:
        return out
    parent = by_name.get(p.when.parameter)
    if parent is None or parent.name == p.name:
        out.append(f"{where}.when.parameter: must name another parameter")
    elif parent.type is not ParameterType.CATEGORICAL:
        out.append(f"{where}.when.parameter: {parent.name!r} must be categorical")
    else:
        out += [
            f"{where}.when.values: {value!r} is not a value of {parent.name!r}"
            for value in p.when.values
            if not any(_same(value, v) for v in parent.values or ())
        ]
    return out


def _condition_cycles(
    parameters: Sequence[Parameter], by_name: Mapping[str, Parameter]
) -> list[str]:
    """Each parameter whose chain of parents comes back to a parameter already on it."""
    out = []
    for i, p in enumerate(parameters):
        seen = {p.name}
        current = p
        while current.when is not None and current.when.parameter in by_name:
            current = by_name[current.when.parameter]
            if current.name in seen:
                out.append(f"parameters[{i}].when: conditions form a cycle through {p.name!r}")
                break
            seen.add(current.name)
    return out


def _fidelity_problems(fidelity: Fidelity, by_name: Mapping[str, Parameter]) -> list[str]:
    out = []
    if fidelity.parameter in by_name:
        out.append("fidelity.parameter: must not also be a search parameter")
    if fidelity.type == "int" and not (
        float(fidelity.min).is_integer() and float(fidelity.max).is_integer()
    ):
        out.append("fidelity.min: an int fidelity needs whole-number min and max")
    if fidelity.min > 0 and fidelity.eta > 1 and fidelity.min < fidelity.max:
        rungs = _rung_count(fidelity) + 1
        if rungs > MAX_RUNGS:
            out.append(
                f"fidelity.max: min to max spans {rungs} rungs of eta; at most {MAX_RUNGS} "
                "(raise eta or narrow min..max)"
            )
    return out


def _rung_count(fidelity: Fidelity) -> int:
    """Rungs below the top: ``log_eta(max / min)``, by logs, since ``max / min`` may overflow."""
    spread = math.log(fidelity.max) - math.log(fidelity.min)
    return math.floor(spread / math.log(fidelity.eta) + 1e-9)


def grid_count(low: float, high: float, step: float) -> int:
    """Index of the last point of the grid ``low + k * step`` that lies within ``high``.

    ``high - low`` carries the float rounding of both bounds, which grows with
    their magnitude, not with the step: ``-86.499999 - -86.5`` is ``0.9999999975``
    steps of ``1e-6``. So the slack that decides whether ``high`` is on the grid is
    relative: two float resolutions at the bounds (in steps), besides ``1e-9``
    steps. A usable grid's step spans at least four resolutions (see
    :func:`_grid_problem`), so the slack stays below half a step.
    """
    slack = _STEP_TOLERANCE + 2.0 * math.ulp(max(abs(low), abs(high))) / step
    return math.floor((high - low) / step + slack)


def _grid_problem(low: float, high: float, step: float) -> str | None:
    """Why a stepped range has no usable grid, if it has not.

    The count of grid points is an int: an infinite one (a step of ``5e-324``)
    would overflow. And grid points must be distinct floats: a step of 1 at
    ``1e20`` gives the same float for every point, and a grid walk over them
    would never find a new one. A step of a few float resolutions at the
    bounds keeps them apart.
    """
    width = high - low
    if not math.isfinite(width):
        return "max: max - min must be a finite number; narrow the bounds"
    if not math.isfinite(width / step):
        return "step: too small for the bounds; raise it"
    needed = _STEP_RESOLUTION * math.ulp(max(abs(low), abs(high)))
    if step < needed:
        return (
            f"step: {step:g} is too fine for floats at {max(abs(low), abs(high)):g} (at least "
            f"{needed:.3g} there); raise it, or bring min and max nearer zero"
        )
    return None


def rung_budgets(fidelity: Fidelity) -> list[float]:
    """The fidelity ladder ``r_i = min * eta**i``, with the last rung raised to ``max``.

    Every rung below the top is ``min * eta**i`` (rounded to whole numbers for an
    int fidelity); the top rung is ``max`` itself, so the best configurations
    always train with the full budget, and every ratio between rungs is at least
    ``eta``. For min 1, max 27, eta 3: ``[1, 3, 9, 27]``; for max 20: ``[1, 3, 20]``.
    """
    levels = _rung_count(fidelity)
    budgets = [fidelity.min * fidelity.eta**i for i in range(levels)] + [fidelity.max]
    if fidelity.type == "int":
        budgets = [float(max(1, round(b))) for b in budgets]
    return sorted(set(budgets))


def rung_of(budgets: Sequence[float], fidelity: float) -> int:
    """The highest rung whose budget ``fidelity`` reaches (0 when below the first)."""
    rung = 0
    for i, budget in enumerate(budgets):
        if fidelity + 1e-9 * max(1.0, budget) >= budget:
            rung = i
    return rung


__all__ = [
    "Dimension",
    "Key",
    "Space",
    "SpaceError",
    "Values",
    "finite_number",
    "grid_count",
    "problems",
    "rung_budgets",
    "rung_of",
]
