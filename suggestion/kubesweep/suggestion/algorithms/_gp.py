"""Gaussian-process pieces of the ``bayesian`` algorithm, on plain arrays.

The model is scikit-learn's :class:`GaussianProcessRegressor` with the kernel
``ConstantKernel * Matern(nu=2.5, ARD) + WhiteKernel`` over the unit cube. Only
the *hyperparameter fit* is done here rather than by scikit-learn: its
optimiser builds an ``n x n x dim`` gradient tensor on every step, which takes
seconds at a few hundred points, while the same marginal-likelihood gradient is
one ``n x n`` by ``n x dim`` product (see :func:`_lml_and_gradient`). The
fitted hyperparameters are then handed to scikit-learn with ``optimizer=None``,
so prediction and conditioning are scikit-learn's own.

The fit is a MAP estimate. Each length scale ``λ`` of a numeric column (in units of the unit cube)
carries a Gamma(3, 6) prior, density ``∝ λ² e^{-6λ}``: most of its mass lies
between 0.1 and 1.2 and it charges about 6 nats per unit of length, so a
dimension is treated as irrelevant (a length scale of several cube widths) only
when the data say so clearly. This prior was the default of BoTorch's GP models
until 2024 (Balandat et al. 2020, "BoTorch"). It replaced the dimension-scaled
log-normal prior of Hvarfner et al. 2024 ("Vanilla Bayesian Optimization
Performs Great in High Dimensions"), whose median length scale is about 10 cube
widths at six dimensions: there, after some 40 trials concentrated in one basin,
the fit gave the two dimensions along which those trials varied least length
scales of 12 to 31 at almost no cost, the model stopped distinguishing points
along them, and expected improvement never searched the other basins (half of
the seeds of Hartmann-6 ended in its second-best minimum). One-hot columns keep
that log-normal prior (see :func:`one_hot_length_prior`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg.lapack import dpotrf, dpotri, dpotrs
from scipy.optimize import minimize
from scipy.special import log_ndtr
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

Array = NDArray[np.float64]

_SQRT5 = math.sqrt(5.0)
_LOG_LENGTH_BOUNDS = (math.log(5e-3), math.log(1e2))
_LOG_SIGNAL_BOUNDS = (math.log(5e-2), math.log(2e1))
_LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(1.0))
_LOG_SIGNAL_PRIOR = (0.0, 1.0)  # mean, sd of log signal variance (targets are standardised)
_LOG_NOISE_PRIOR = (math.log(1e-3), 2.0)


@dataclass(frozen=True)
class Hyperparameters:
    """Kernel hyperparameters in log space."""

    log_lengths: Array
    log_signal: float
    log_noise: float

    def to_vector(self) -> Array:
        return np.concatenate([self.log_lengths, [self.log_signal, self.log_noise]])

    @classmethod
    def from_vector(cls, theta: Array) -> Hyperparameters:
        return cls(np.array(theta[:-2], dtype=float), float(theta[-2]), float(theta[-1]))


#: Shape and rate of the Gamma prior on each numeric length scale (see the module docstring).
LENGTH_PRIOR = (3.0, 6.0)


def one_hot_length_prior(dim: int) -> tuple[float, float]:
    """Mean and standard deviation of the log length scale of a one-hot column.

    The dimension-scaled log-normal of Hvarfner et al. 2024, which lets a
    column grow a long length scale cheaply: two values of a categorical are
    one unit apart in every one-hot column they differ in, so a short length
    scale there would make the categories unrelated, and the search would
    settle on the first good one (the Gamma prior of the numeric columns did
    that on the benchmark's mixed problem).
    """
    return math.sqrt(2.0) + 0.5 * math.log(dim), math.sqrt(3.0)


def _mask(one_hot: Array | None, dim: int) -> Array:
    return np.zeros(dim, dtype=bool) if one_hot is None else np.asarray(one_hot, dtype=bool)


def prior_mode(dim: int, one_hot: Array | None = None) -> Hyperparameters:
    """The optimiser's start: the prior's mode (in log space) for numeric columns.

    For ``s = log λ`` the Gamma(a, b) prior has density ``∝ e^{a s - b e^s}``,
    whose mode is ``λ = a / b``. One-hot columns start shorter than their
    prior's mean, where the first steps are not flat.
    """
    shape, rate = LENGTH_PRIOR
    mean, _ = one_hot_length_prior(dim)
    categorical = min(mean, math.log(0.5 * math.sqrt(dim)))
    start = np.where(_mask(one_hot, dim), categorical, math.log(shape / rate))
    return Hyperparameters(start, _LOG_SIGNAL_PRIOR[0], _LOG_NOISE_PRIOR[0])


def log_prior(hp: Hyperparameters, one_hot: Array | None = None) -> tuple[float, Array]:
    """Log prior density of ``hp`` (up to a constant) and its gradient in log space.

    Numeric length scales: Gamma(a, b) on ``λ``, ``a s - b e^s`` in ``s = log λ``
    (the Jacobian included). One-hot columns, signal and noise variances:
    log-normal.
    """
    dim = len(hp.log_lengths)
    categorical = _mask(one_hot, dim)
    shape, rate = LENGTH_PRIOR
    s = hp.log_lengths
    mean, sd = one_hot_length_prior(dim)
    values = np.where(categorical, -0.5 * ((s - mean) / sd) ** 2, shape * s - rate * np.exp(s))
    gradient = np.empty(dim + 2)
    gradient[:dim] = np.where(categorical, -(s - mean) / sd**2, shape - rate * np.exp(s))
    value = float(values.sum())
    for index, (x, (mu, spread)) in enumerate(
        ((hp.log_signal, _LOG_SIGNAL_PRIOR), (hp.log_noise, _LOG_NOISE_PRIOR))
    ):
        value -= 0.5 * ((x - mu) / spread) ** 2
        gradient[dim + index] = -(x - mu) / spread**2
    return value, gradient


def _distance(z1: Array, z2: Array) -> Array:
    sq = (z1 * z1).sum(1)[:, None] + (z2 * z2).sum(1)[None, :] - 2.0 * (z1 @ z2.T)
    distance: Array = np.sqrt(np.maximum(sq, 0.0))
    return distance


def _lml_and_gradient(
    theta: Array, x: Array, y: Array, one_hot: Array | None = None
) -> tuple[float, Array]:
    """Negative log posterior of the hyperparameters, and its gradient.

    ``d/dθ log p(y) = ½ tr((ααᵀ - K⁻¹) dK/dθ)``; for a log length scale ``l`` the
    Matérn 5/2 derivative is ``σ² 5/3 (1 + √5 r) e^{-√5 r} (Δ_l/λ_l)²``, and the
    trace against a weight matrix ``M`` reduces to ``2 Σ_i z_il² (M1)_i - 2 z_lᵀ M z_l``
    with ``z = x/λ`` (``λ`` the length scales): one matrix product.
    """
    n, dim = x.shape
    hp = Hyperparameters.from_vector(theta)
    signal, noise = math.exp(hp.log_signal), math.exp(hp.log_noise)
    z = x * np.exp(-hp.log_lengths)
    r = _distance(z, z)
    decay = np.exp(-_SQRT5 * r)
    poly = 1.0 + _SQRT5 * r
    k_f = signal * (poly + (5.0 / 3.0) * r * r) * decay
    k = k_f + (noise + 1e-9) * np.eye(n)
    # Raw LAPACK: scipy.linalg's checking wrappers cost more than the
    # factorisation itself at these sizes, and this runs ~50 times per call.
    chol, info = dpotrf(k, lower=1, clean=0, overwrite_a=1)
    if info != 0:
        return 1e10, np.zeros_like(theta)
    alpha, _ = dpotrs(chol, y, lower=1)
    lml = (
        -0.5 * float(y @ alpha)
        - float(np.log(np.diag(chol)).sum())
        - 0.5 * n * math.log(2 * math.pi)
    )
    k_inv, _ = dpotri(chol, lower=1)
    k_inv = np.tril(k_inv) + np.tril(k_inv, -1).T
    w = np.outer(alpha, alpha) - k_inv
    m = w * poly * decay
    mz = m @ z
    trace_l = 2.0 * ((z * z) * m.sum(1)[:, None]).sum(0) - 2.0 * (z * mz).sum(0)
    grad = np.empty(dim + 2)
    grad[:dim] = 0.5 * signal * (5.0 / 3.0) * trace_l
    grad[dim] = 0.5 * float((w * k_f).sum())
    grad[dim + 1] = 0.5 * noise * float(np.trace(w))
    lp, lp_grad = log_prior(hp, one_hot)
    grad += lp_grad
    return -(lml + lp), -grad


def log_marginal_likelihood(hp: Hyperparameters, x: Array, y: Array) -> float:
    """The log marginal likelihood of ``y`` (no prior); for tests against scikit-learn."""
    value, _ = _lml_and_gradient(hp.to_vector(), x, y)
    return -value - log_prior(hp)[0]


def fit_hyperparameters(
    x: Array, y: Array, max_iterations: int, one_hot: Array | None = None
) -> Hyperparameters:
    """MAP hyperparameters by L-BFGS-B from the prior mode, bounded in iterations.

    ``one_hot`` marks the columns that encode categoricals (see :func:`log_prior`).
    """
    dim = x.shape[1]
    start = prior_mode(dim, one_hot).to_vector()
    bounds = [_LOG_LENGTH_BOUNDS] * dim + [_LOG_SIGNAL_BOUNDS, _LOG_NOISE_BOUNDS]
    result = minimize(
        _lml_and_gradient,
        start,
        args=(x, y, one_hot),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max_iterations},
    )
    theta = np.asarray(result.x, dtype=float)
    if not np.all(np.isfinite(theta)):
        theta = start
    return Hyperparameters.from_vector(theta)


def build_regressor(x: Array, y: Array, hp: Hyperparameters) -> GaussianProcessRegressor:
    """A scikit-learn GP conditioned on ``(x, y)`` with fixed hyperparameters."""
    kernel = ConstantKernel(math.exp(hp.log_signal), "fixed") * Matern(
        np.exp(hp.log_lengths), "fixed", nu=2.5
    ) + WhiteKernel(math.exp(hp.log_noise), "fixed")
    gpr = GaussianProcessRegressor(kernel, alpha=1e-9, optimizer=None, normalize_y=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gpr.fit(x, y)
    return gpr


class Posterior:
    """Fast predictions from a regressor of :func:`build_regressor`.

    Scoring candidates is the hot loop of a call: scikit-learn's ``predict``
    builds the composite kernel term by term and solves a triangular system
    per call, while here the Matérn matrix is one expression and the variance
    one matrix product with ``K⁻¹``, computed once from the regressor's own
    Cholesky factor. Equal to ``predict(return_std=True)`` without the noise
    term (the latent function's uncertainty), which :mod:`tests` checks.
    """

    def __init__(self, gpr: GaussianProcessRegressor, hp: Hyperparameters) -> None:
        self.scale = np.exp(-hp.log_lengths)
        self.signal = math.exp(hp.log_signal)
        self.train = np.asarray(gpr.X_train_, dtype=float) * self.scale
        self.alpha = np.asarray(gpr.alpha_, dtype=float)
        k_inv, _ = dpotri(np.asarray(gpr.L_, dtype=float), lower=1)
        self.k_inv = np.tril(k_inv) + np.tril(k_inv, -1).T

    def _cross(self, x: Array) -> Array:
        r = _distance(x * self.scale, self.train)
        k: Array = self.signal * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * np.exp(-_SQRT5 * r)
        return k

    def mean(self, x: Array) -> Array:
        """Posterior mean."""
        mean: Array = self._cross(x) @ self.alpha
        return mean

    def predict(self, x: Array) -> tuple[Array, Array]:
        """Posterior mean and standard deviation of the latent (noise-free) function."""
        k = self._cross(x)
        var = self.signal - np.einsum("ij,ij->i", k @ self.k_inv, k)
        return k @ self.alpha, np.sqrt(np.maximum(var, 1e-12))

    def log_ei_with_gradient(self, x: Array, best: float) -> tuple[Array, Array]:
        """log EI at each row of ``x`` and its gradient with respect to the row.

        The Matérn 5/2 cross-covariance has ``∂k/∂x = -5/3 c (1 + √5 r) e^{-√5 r}
        (x - xᵢ)/λ²`` (``c`` the signal variance), so the gradients of the mean and
        of the variance are two matrix products each; log EI follows by the chain
        rule through the log of the posterior deviation and ``log h(u)``, with
        ``d log h/du = Φ(u)/h(u)``.
        """
        z = x * self.scale
        r = _distance(z, self.train)
        decay = np.exp(-_SQRT5 * r)
        k = self.signal * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * decay
        g = -(5.0 / 3.0) * self.signal * (1.0 + _SQRT5 * r) * decay  # ∂k/∂r divided by r
        v = k @ self.k_inv
        var = self.signal - np.einsum("ij,ij->i", v, k)
        sd = np.sqrt(np.maximum(var, 1e-12))
        mean = k @ self.alpha
        ga = g * self.alpha[None, :]
        gv = g * v
        d_mean = self.scale * (ga.sum(1)[:, None] * z - ga @ self.train)
        d_var = -2.0 * self.scale * (gv.sum(1)[:, None] * z - gv @ self.train)
        d_sd = np.where((var > 1e-12)[:, None], d_var / (2.0 * sd[:, None]), 0.0)
        u = (best - mean) / sd
        log_h = _log_h(u)
        ratio = np.exp(log_ndtr(u) - log_h)  # d log h / du
        d_u = -d_mean / sd[:, None] - u[:, None] * d_sd / sd[:, None]
        value = np.log(sd) + log_h
        gradient: Array = d_sd / sd[:, None] + ratio[:, None] * d_u
        return value, gradient


def sklearn_theta(hp: Hyperparameters) -> Array:
    """``hp`` in the order of scikit-learn's ``kernel.theta`` for the kernel above."""
    return np.concatenate([[hp.log_signal], hp.log_lengths, [hp.log_noise]])


def warp_targets(losses: Array) -> Array:
    """Standardised, outlier-compressed, Yeo-Johnson-warped losses: a monotone map.

    Heavy-tailed objectives (Rosenbrock-like valleys, diverged trainings) would
    otherwise set the GP's scale and flatten the region that matters. Values
    beyond ``_CLIP`` robust deviations from the median are compressed
    logarithmically (so one loss of 1e300 cannot flatten the rest), then a
    Yeo-Johnson transform removes the remaining skew (HEBO, Cowen-Rivers et al.
    2022, warps outputs the same way).
    """
    z = _robust_scores(losses)
    if z is None:
        return np.zeros_like(losses)
    warped = _yeo_johnson(z)
    if not np.all(np.isfinite(warped)) or warped.std() <= 0:
        warped = z
    standard: Array = (warped - warped.mean()) / warped.std()
    return standard


_CLIP = 4.0


def _robust_scores(losses: Array) -> Array | None:
    """``(loss - median) / scale``, soft-clipped beyond ``_CLIP``; None if all equal."""
    if len(losses) == 0:
        return None
    median = float(np.median(losses))
    q1, q3 = np.percentile(losses, [25.0, 75.0])
    scale = float(q3 - q1) / 1.349
    if not scale > 0 or not np.isfinite(scale):
        deviation = np.abs(losses - median)
        scale = float(deviation.max()) / _CLIP if np.isfinite(deviation.max()) else 0.0
    if not scale > 0:
        return None
    distance = np.abs(losses - median)
    inner = distance <= _CLIP * scale
    with np.errstate(all="ignore"):
        # log1p((d - c s) / s) written as log(d - c s + s) - log(s): no overflow.
        outer = _CLIP + np.log(np.maximum(distance - _CLIP * scale + scale, scale)) - np.log(scale)
        magnitude = np.where(inner, distance / scale, outer)
    scores: Array = np.sign(losses - median) * magnitude
    return scores


_LAMBDAS = np.linspace(-2.0, 4.0, 61)


def _yeo_johnson(x: Array) -> Array:
    """Yeo-Johnson transform with the maximum-likelihood exponent over a fixed grid.

    Computed here for all candidate exponents at once: scipy's bounded search
    costs tens of milliseconds per call through its generic wrappers.
    """
    lam = _LAMBDAS[:, None]
    pos = x >= 0
    with np.errstate(all="ignore"):
        a = np.log1p(np.abs(x))[None, :]
        lam_p = np.where(np.abs(lam) < 1e-8, 1e-8, lam)
        lam_n = np.where(np.abs(2.0 - lam) < 1e-8, 1e-8, 2.0 - lam)
        out = np.where(
            pos[None, :],
            np.expm1(lam_p * a) / lam_p,
            -np.expm1(lam_n * a) / lam_n,
        )
        var = out.var(axis=1)
        llf = -0.5 * len(x) * np.log(var) + (_LAMBDAS - 1.0) * float(
            (np.sign(x) * np.log1p(np.abs(x))).sum()
        )
    llf = np.where(np.isfinite(llf) & (var > 0), llf, -np.inf)
    best = int(np.argmax(llf))
    result: Array = out[best]
    return result


def log_expected_improvement(mean: Array, sd: Array, best: float) -> Array:
    """log EI for minimisation, stable far into the tail (Ament et al. 2023, "LogEI")."""
    sd = np.maximum(sd, 1e-12)
    u = (best - mean) / sd
    return np.log(sd) + _log_h(u)


def _log_h(u: Array) -> Array:
    """``log(φ(u) + u Φ(u))``, computed without cancellation for very negative ``u``."""
    out = np.empty_like(u)
    log_phi = -0.5 * u * u - 0.5 * math.log(2 * math.pi)
    upper = u > -5.0
    uu = u[upper]
    out[upper] = np.log(np.maximum(np.exp(log_phi[upper]) + uu * np.exp(log_ndtr(uu)), 1e-300))
    lower = ~upper
    ul = u[lower]
    # φ(u) + uΦ(u) = φ(u) (1 - |u| Φ(u)/φ(u)) and Φ(u)/φ(u) = Mills ratio of |u|,
    # whose asymptotic series gives 1 - |u| R(|u|) ≈ 1/u² - 3/u⁴ + 15/u⁶.
    inv = 1.0 / (ul * ul)
    out[lower] = log_phi[lower] + np.log(inv * (1.0 - 3.0 * inv + 15.0 * inv * inv))
    return out
