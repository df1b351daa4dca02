"""Parzen estimators over the unit cube: the density model of ``tpe`` and ``bohb``.

A :class:`Parzen` is a weighted mixture with one component per observation plus
a broad prior component (Bergstra et al. 2011; Watanabe 2023 for the choices
below). Each component is a product over dimensions of

- a Gaussian truncated to ``[0, 1]`` for numbers; a discrete number (integer,
  stepped) uses the Gaussian's mass over its value's slice of the interval, so a
  narrow kernel cannot make one integer infinitely likely;
- a smoothed one-hot distribution for categoricals (``1 + prior/(n+1)`` on
  the observed category, ``prior/(n+1)`` elsewhere, normalised, as in Optuna);
- the uniform distribution where the observation's parameter was inactive;
- where the parameter was active but its value is unknown (a trial that lacks
  it, or holds a value outside the space): the dimension's own estimator over
  the observations that have a value (and the prior), as a univariate TPE
  would fit it. The rest of such an observation's kernel is used as usual, so
  a history whose trials set different parameters (``units_i`` for ``i <
  n_layers``, a warm start from a smaller space) is modelled, not dropped.

The prior component is uniform in every dimension.

Candidates are scored over their *active* coordinates only, so both densities of
a ratio ``l(x)/g(x)`` always integrate over the same sub-space, which is how
conditional parameters stay comparable.

Bandwidths, per dimension: each kernel's distance to its farther neighbour
(Bergstra et al.), clipped below by the "magic clip" ``1/min(100, kernels+1)``
so a cluster of good points never collapses the search onto a point; this is
also what Optuna 4+ uses for its (default) multivariate TPE. Multivariate mode
draws one component per point for all dimensions (a joint kernel, which keeps
interactions); univariate mode is a product of independent per-dimension
estimators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

from kubesweep.suggestion.algorithms._unitcube import Array, UnitCube

_PRIOR_SIGMA = 1.0
_LOG_TINY = -700.0


@dataclass(frozen=True)
class ParzenOptions:
    """Shape of the estimator (defaults: Watanabe 2023's recommendations)."""

    prior_weight: float = 1.0
    multivariate: bool = True
    magic_clip: bool = True
    bandwidth_factor: float = 1.0  # widens the kernels when *sampling* (BOHB uses 3)


class Parzen:
    """A mixture density fitted to some unit rows (NaN where inactive or unknown)."""

    def __init__(self, cube: UnitCube, rows: Array, weights: Array, options: ParzenOptions) -> None:
        self.cube = cube
        self.options = options
        n, dim = rows.shape
        # Component 0 is the prior: uniform in every dimension (an all-inactive row).
        self.mu = np.vstack([np.full((1, dim), np.nan), rows])
        self.weights = np.concatenate([[options.prior_weight], weights])
        self.weights = self.weights / self.weights.sum()
        self.log_weights = np.log(np.maximum(self.weights, 1e-300))
        self.sigma = np.full((n + 1, dim), _PRIOR_SIGMA)
        self.sigma[1:] = self._bandwidths(rows)
        self.unknown = np.isnan(self.mu)
        self.missing = np.zeros_like(self.unknown)
        self.missing[1:] = cube.missing(rows)

    def _bandwidths(self, rows: Array) -> Array:
        """Per dimension, each kernel's distance to its farther neighbour, magic-clipped."""
        n, dim = rows.shape
        sigma = np.empty((n, dim))
        for d in range(dim):
            column = rows[:, d]
            sigma[:, d] = _neighbour_bandwidths(column)
            if self.options.magic_clip:
                kernels = int((~np.isnan(column)).sum()) + 1  # the prior counts
                sigma[:, d] = np.maximum(sigma[:, d], 1.0 / min(100.0, 1.0 + kernels))
        result: Array = np.clip(sigma, 1e-3, 1.0)
        return result

    def _dim_weights(self, d: int) -> Array:
        """The mixture weights of dimension ``d``'s own estimator.

        Only observations with a value of the parameter take part (and the prior).
        Univariate mode uses it for every dimension, multivariate mode for the
        observations whose value of ``d`` is missing.
        """
        weights = np.where(self.unknown[:, d], 0.0, self.weights)
        weights[0] = self.weights[0]
        result: Array = weights / weights.sum()
        return result

    # --- sampling ----------------------------------------------------------------------

    def sample(self, rng: np.random.Generator, count: int) -> Array:
        """``count`` unit rows drawn from the estimator (not yet snapped).

        Multivariate: one component per row, shared by all dimensions (a joint
        kernel), except where its value is missing: that dimension is drawn from
        the dimension's own estimator. Univariate: a component per row and dimension.
        """
        dim = self.cube.dim
        size = len(self.weights)
        out = np.empty((count, dim))
        joint = rng.choice(size, size=count, p=self.weights)
        for d in range(dim):
            if not self.options.multivariate:
                pick = rng.choice(size, size=count, p=self._dim_weights(d))
            else:
                pick = joint
                missing = self.missing[joint, d]
                if missing.any():
                    pick = joint.copy()
                    own = self._dim_weights(d)
                    pick[missing] = rng.choice(size, size=int(missing.sum()), p=own)
            mu = self.mu[pick, d]
            sigma = self.sigma[pick, d] * self.options.bandwidth_factor
            out[:, d] = self._sample_column(d, mu, sigma, rng)
        return out

    def _sample_column(self, d: int, mu: Array, sigma: Array, rng: np.random.Generator) -> Array:
        uniform = rng.random(len(mu))
        free = np.isnan(mu)
        if self.cube.categorical[d]:
            k = self.cube.sizes[d] or 1
            probs = self._category_probs(mu, k)
            cumulative = np.cumsum(probs, axis=1)
            index = (uniform[:, None] > cumulative).sum(axis=1)
            result: Array = (np.minimum(index, k - 1) + 0.5) / k
            return result
        m = np.where(free, 0.5, mu)
        s = np.where(free, 1.0, sigma)
        lo, hi = ndtr(-m / s), ndtr((1.0 - m) / s)
        q = lo + uniform * (hi - lo)
        x = m + s * ndtri(np.clip(q, 1e-300, 1 - 1e-16))
        return np.where(free, uniform, np.clip(x, 0.0, 1.0))

    def _category_probs(self, mu: Array, k: int) -> Array:
        """Per-component category probabilities for component centres ``mu``."""
        # As in Optuna: the prior's weight spread over the kernels, so the
        # smoothing fades as observations accumulate.
        smoothing = self.options.prior_weight / len(self.weights)
        probs = np.full((len(mu), k), smoothing)
        known = ~np.isnan(mu)
        index = np.clip(np.floor(np.where(known, mu, 0.0) * k), 0, k - 1).astype(int)
        probs[np.nonzero(known)[0], index[known]] += 1.0
        probs[~known] = 1.0
        result: Array = probs / probs.sum(axis=1, keepdims=True)
        return result

    # --- density -------------------------------------------------------------------------

    def log_density(self, rows: Array) -> Array:
        """log density at snapped ``rows``, over their active coordinates."""
        if not self.options.multivariate:
            return self._log_density_univariate(rows)
        total = np.zeros((len(rows), len(self.weights))) + self.log_weights[None, :]
        for d in range(self.cube.dim):
            x = rows[:, d]
            active = ~np.isnan(x)
            if not active.any():
                continue
            part = np.zeros_like(total)
            part[active] = self._log_kernel(d, x[active])
            total += part
        result: Array = logsumexp(total, axis=1)
        return result

    def _log_density_univariate(self, rows: Array) -> Array:
        total = np.zeros(len(rows))
        for d in range(self.cube.dim):
            x = rows[:, d]
            active = ~np.isnan(x)
            if not active.any():
                continue
            total[active] += self._log_own_density(d, x[active])
        return total

    def _log_own_density(self, d: int, x: Array) -> Array:
        """log density at ``x`` of dimension ``d``'s own estimator (:meth:`_dim_weights`)."""
        with np.errstate(divide="ignore"):
            log_w = np.log(self._dim_weights(d))
        result: Array = logsumexp(self._log_own_kernel(d, x) + log_w[None, :], axis=1)
        return result

    def _log_kernel(self, d: int, x: Array) -> Array:
        """``(len(x), components)`` log kernel values of dimension ``d``.

        Inactive components are uniform; a component whose value is missing is
        the dimension's own estimator (see :meth:`_dim_weights`).
        """
        out = self._log_own_kernel(d, x)
        missing = self.missing[:, d]
        if missing.any():
            out[:, missing] = self._log_own_density(d, x)[:, None]
        return out

    def _log_own_kernel(self, d: int, x: Array) -> Array:
        """:meth:`_log_kernel` with every unknown component uniform."""
        mu, sigma, free = self.mu[:, d], self.sigma[:, d], self.unknown[:, d]
        size = self.cube.sizes[d]
        if self.cube.categorical[d]:
            k = size or 1
            probs = self._category_probs(np.where(free, np.nan, mu), k)
            index = np.clip(np.floor(x * k), 0, k - 1).astype(int)
            categorical: Array = np.log(probs[:, index].T)
            return categorical
        m = np.where(free, 0.5, mu)[None, :]
        s = np.where(free, 1.0, sigma)[None, :]
        log_norm = np.log(np.maximum(ndtr((1.0 - m) / s) - ndtr(-m / s), 1e-300))
        xx = x[:, None]
        if size is None:
            log_pdf = -0.5 * ((xx - m) / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)
            out = log_pdf - log_norm
            out[:, free] = 0.0  # uniform density on [0, 1]
            continuous: Array = out
            return continuous
        half = 0.5 / size
        mass = _log_interval_mass((xx - half - m) / s, (xx + half - m) / s)
        out = mass - log_norm
        out[:, free] = -math.log(size)
        result: Array = np.maximum(out, _LOG_TINY)
        return result


def _log_interval_mass(a: Array, b: Array) -> Array:
    """``log(Φ(b) - Φ(a))`` for ``a < b``, floored far in the tails.

    The interval is mirrored to the side where the CDFs are small, which avoids
    cancellation; far in a tail the floor is harmless, because the uniform prior
    component of every mixture dominates there.
    """
    flip = a > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    result: Array = np.log(np.maximum(ndtr(hi) - ndtr(lo), 1e-300))
    return result


def _neighbour_bandwidths(column: Array) -> Array:
    """Each point's distance to its farther neighbour (Bergstra et al. 2011).

    The interval's ends count as neighbours except for the outermost points,
    whose bandwidth is the gap to their inner neighbour (Optuna's default of
    not considering the endpoints), so a point near a bound is not blurred
    across the whole interval. NaN (inactive) entries get the full width.
    """
    sigma = np.full(len(column), 1.0)
    known = ~np.isnan(column)
    values = column[known]
    if not len(values):
        return sigma
    order = np.argsort(values, kind="stable")
    ends = np.concatenate([[0.0], values[order], [1.0]])
    widths = np.maximum(ends[1:-1] - ends[:-2], ends[2:] - ends[1:-1])
    if len(values) >= 2:
        widths[0] = ends[2] - ends[1]
        widths[-1] = ends[-2] - ends[-3]
    result = np.empty(len(values))
    result[order] = widths
    sigma[known] = result
    return sigma


def ranked_by_ratio(
    cube: UnitCube, good: Parzen, bad: Parzen, rng: np.random.Generator, candidates: int
) -> Array:
    """``candidates`` snapped rows drawn from ``good``, best ``good/bad`` density ratio first."""
    rows = cube.snap(good.sample(rng, candidates))
    score = good.log_density(rows) - bad.log_density(rows)
    ranked: Array = rows[np.argsort(-score, kind="stable")]
    return ranked


def split_count(n: int, gamma: float, cap: int) -> int:
    """How many of ``n`` observations form the good group: ``min(ceil(gamma n), cap)``, >= 1."""
    return max(1, min(math.ceil(gamma * n), cap, n))
