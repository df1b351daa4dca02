"""Vectorised helpers over :class:`~kubesweep.suggestion.space.Space` unit points.

:class:`Space` encodes and decodes one assignment at a time, which is right for
the history but too slow for the thousands of candidate points a model-based
algorithm scores on every call. The functions here do the same arithmetic on
whole ``(n, dim)`` arrays of unit coordinates: snapping to valid values
(integers, steps, categories), the mask of active conditional parameters, the
model features (numbers as-is, categoricals one-hot, inactive dimensions filled,
matching :meth:`Space.to_features`), and cheap row keys for deduplication.
Only the points finally chosen are decoded through :meth:`Space.from_unit`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from numpy.typing import NDArray

from kubesweep.api.experiment import ParameterValue
from kubesweep.suggestion.space import Dimension, Space, finite_number

Array = NDArray[np.float64]
Mask = NDArray[np.bool_]


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class _Condition:
    parent: int
    allowed: NDArray[np.bool_]  # by category index of the parent: activates the child


class UnitCube:
    """Array operations on the unit coordinates of one compiled space."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.dim = space.dim
        dims = space.dimensions
        index = {d.name: d.index for d in dims}
        self.conditions: dict[int, _Condition] = {}
        for d in dims:
            when = d.parameter.when
            if when is None:
                continue
            parent = dims[index[when.parameter]]
            allowed = np.array(
                [any(_same(c, v) for v in when.values) for c in parent.choices], dtype=bool
            )
            self.conditions[d.index] = _Condition(parent.index, allowed)
        self.order = _parents_first(len(dims), self.conditions)
        self.sizes = [d.size for d in dims]
        self.categorical = np.array([d.is_categorical for d in dims], dtype=bool)
        self.feature_count = space.feature_count
        self.affine = [None if d.is_categorical else _Affine.of(d) for d in dims]

    # --- activity ---------------------------------------------------------------

    def active(self, unit: Array) -> Mask:
        """Which coordinates of each row are active (all True without conditions)."""
        mask = np.ones(unit.shape, dtype=bool)
        if not self.conditions:
            return mask
        for i in self.order:
            condition = self.conditions.get(i)
            if condition is None:
                continue
            p = condition.parent
            size = self.sizes[p] or 1
            column = unit[:, p]
            known = ~np.isnan(column)
            category = np.clip(np.floor(np.where(known, column, 0.0) * size), 0, size - 1)
            allowed = condition.allowed[category.astype(int)]
            mask[:, i] = mask[:, p] & allowed & known
        return mask

    def valid_rows(self, unit: Array) -> Mask:
        """Rows whose active coordinates are all known: complete points of the space."""
        result: Mask = ~np.any(self.missing(unit), axis=1)
        return result

    def missing(self, unit: Array) -> Mask:
        """Active coordinates without a known value (absent or invalid in the history).

        Unlike an inactive coordinate, a missing one has a value that is not known;
        the children of a missing categorical count as inactive.
        """
        result: Mask = self.active(unit) & np.isnan(unit)
        return result

    def impute(self, unit: Array, rng: np.random.Generator) -> Array:
        """Snapped rows with each missing coordinate drawn uniformly (rows unchanged
        where nothing is missing, and no draw made then).

        For models that need every active value. A drawn parent category may
        activate children whose values are missing too; they are drawn in turn.
        """
        for _ in range(self.dim):
            missing = self.missing(unit)
            if not missing.any():
                break
            unit = self.snap(np.where(missing, rng.random(unit.shape), unit))
        return unit

    @staticmethod
    def known_rows(unit: Array) -> Mask:
        """Rows with at least one known coordinate: the ones that are evidence."""
        result: Mask = ~np.all(np.isnan(unit), axis=1)
        return result

    # --- snapping -----------------------------------------------------------------

    def snap(self, unit: Array) -> Array:
        """Rows moved to the coordinates of valid values; inactive coordinates set to NaN."""
        out = np.clip(unit, 0.0, 1.0)
        for d in self.space.dimensions:
            out[:, d.index] = _snap_column(d, self.affine[d.index], out[:, d.index])
        if self.conditions:
            out[~self.active(out)] = np.nan
        return out

    # --- features -------------------------------------------------------------------

    def features(self, unit: Array, inactive: float = 0.0) -> Array:
        """Model features of snapped rows, as :meth:`Space.to_features` computes them."""
        n = unit.shape[0]
        out = np.zeros((n, self.feature_count))
        for d in self.space.dimensions:
            column = unit[:, d.index]
            part = self.space.feature_slice(d.name)
            known = ~np.isnan(column)
            if d.is_categorical:
                k = len(d.choices)
                idx = np.clip(np.floor(np.where(known, column, 0.0) * k), 0, k - 1).astype(int)
                rows = np.nonzero(known)[0]
                out[rows, part.start + idx[known]] = 1.0
            else:
                out[:, part.start] = np.where(known, column, inactive)
        return out

    # --- identity ---------------------------------------------------------------------

    @staticmethod
    def row_keys(unit: Array) -> list[bytes]:
        """Hashable keys of snapped rows: equal configurations give equal keys."""
        rounded = np.round(np.where(np.isnan(unit), -1.0, unit), 9) + 0.0  # + 0.0 folds -0.0
        return [row.tobytes() for row in rounded]

    def decode(self, row: Array) -> dict[str, ParameterValue]:
        """The assignment of one unit row (inactive parameters omitted)."""
        filled = np.where(np.isnan(row), 0.5, row)
        return self.space.from_unit(filled)

    def encode(self, assignments: Sequence[Mapping[str, ParameterValue]]) -> Array:
        """Unit rows of assignments (NaN where inactive or invalid), column by column.

        Equal to :meth:`Space.to_unit_many` but vectorised per parameter, which
        matters at 10,000 observed trials.
        """
        out = np.full((len(assignments), self.dim), np.nan)
        if not len(assignments):
            return out
        for d in self.space.dimensions:
            name = d.name
            values = [a.get(name) for a in assignments]
            out[:, d.index] = _encode_column(d, self.affine[d.index], values)
        if self.conditions:
            out[~self.active(out)] = np.nan
        return out


@dataclass(frozen=True)
class _Affine:
    """A numeric dimension's map ``u = intercept + slope * w(v)``, ``w`` log or identity.

    Derived from :meth:`Dimension.to_unit` at the bounds, so it agrees with the
    space's own encoding without reaching into its internals; values beyond the
    dimension's :attr:`~Dimension.limits` map to NaN (unknown), as there.
    """

    slope: float
    intercept: float
    log: bool
    limits: tuple[float, float]

    @classmethod
    def of(cls, d: Dimension) -> _Affine:
        p = d.parameter
        # The top grid point of a stepped dimension lies inside the unit range;
        # ``max`` itself may lie beyond it and be clipped.
        low, high = p.low, p.high if d.step is None else float(d.value_at(d.count))
        w_low, w_high = (math.log(low), math.log(high)) if p.log else (low, high)
        u_low, u_high = d.to_unit(low), d.to_unit(high)
        if w_high == w_low:  # a single grid point: every coordinate snaps to it
            return cls(0.0, u_low, p.log, d.limits)
        slope = (u_high - u_low) / (w_high - w_low)
        return cls(slope, u_low - slope * w_low, p.log, d.limits)

    def forward(self, v: Array) -> Array:
        """Unit coordinates of values: NaN beyond the limits, never a bound's coordinate."""
        with np.errstate(all="ignore"):
            inside = (v >= self.limits[0]) & (v <= self.limits[1])
            w = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan) if self.log else v
            return np.where(inside, np.clip(self.intercept + self.slope * w, 0.0, 1.0), np.nan)

    def backward(self, u: Array) -> Array:
        w = (u - self.intercept) / self.slope
        return np.exp(w) if self.log else w


def _snap_column(d: Dimension, affine: _Affine | None, u: Array) -> Array:
    """``to_unit(from_unit(u))`` for one dimension, on an array (NaN stays NaN)."""
    size = d.size
    if size is None:
        return u
    if d.is_categorical:
        return (np.clip(np.floor(u * size), 0, size - 1) + 0.5) / size
    assert affine is not None
    p = d.parameter
    if size == 1:  # a constant, or a grid of one point
        return affine.forward(np.full_like(u, p.low))
    step = d.step
    assert step is not None
    k = np.clip(np.round((affine.backward(u) - p.low) / step), 0, d.count)
    return affine.forward(np.minimum(p.high, p.low + k * step))


def _encode_column(d: Dimension, affine: _Affine | None, values: Sequence[object]) -> Array:
    """Unit coordinates of one parameter's values (NaN where missing or invalid)."""
    kinds = set(map(type, values))
    if d.is_categorical:
        k = len(d.choices)
        if kinds <= {str} and all(type(c) is str for c in d.choices):
            by_text: dict[object, int] = {c: i for i, c in enumerate(d.choices)}
            codes = list(map(by_text.get, values, repeat(-1)))
        else:  # keep True, 1 and "1" apart, as the space does
            index: dict[object, int] = {(type(c), c): i for i, c in enumerate(d.choices)}
            codes = list(map(index.get, zip(map(type, values), values, strict=True), repeat(-1)))
        column = (np.asarray(codes, dtype=float) + 0.5) / k
        column[np.asarray(codes) < 0] = np.nan
        return column
    assert affine is not None
    numbers: Array | None = None
    if kinds <= {int, float}:  # the common case, without a Python loop
        with contextlib.suppress(OverflowError):  # an int beyond float's range
            numbers = np.asarray(values, dtype=float)
    if numbers is None:
        found = (finite_number(v) for v in values)
        numbers = np.array([np.nan if v is None else v for v in found], dtype=float)
    # NaN and infinities are values outside the space, like any invalid value.
    numbers[~np.isfinite(numbers)] = np.nan
    return affine.forward(numbers)


def _parents_first(count: int, conditions: dict[int, _Condition]) -> list[int]:
    order: list[int] = []
    placed: set[int] = set()

    def place(i: int, depth: int) -> None:
        if i in placed or depth > count:
            return
        condition = conditions.get(i)
        if condition is not None:
            place(condition.parent, depth + 1)
        placed.add(i)
        order.append(i)

    for i in range(count):
        place(i, 0)
    return order


def sobol_points(seed: int | None, salt: str, start: int, n: int, dim: int) -> Array:
    """Points ``start .. start+n`` of one scrambled Sobol sequence fixed by the seed.

    The sequence depends on the seed only, so successive calls continue it and
    an initial design spread over several calls stays space-filling.
    """
    from scipy.stats import qmc

    from kubesweep.suggestion.contract import rng_for

    engine = qmc.Sobol(d=dim, scramble=True, seed=rng_for(seed, 0, salt))
    if start:
        engine.fast_forward(start)
    with warnings.catch_warnings():
        # Sobol balance holds for powers of two; a short slice is still well spread.
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(engine.random(n), dtype=float)
