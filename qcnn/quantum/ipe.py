"""Inner-product estimation (IPE) error models (model §2.2).

The quantum layer estimates every output ``Y[p, q] = <A_p, F_q>`` with a Hadamard test on the
normalised vectors (the control reads 1 with probability ``a = (1 - <A_p|F_q>) / 2``) followed
by amplitude estimation, and restores the norms: ``Ybar = ||A_p|| ||F_q|| (1 - 2 a_hat)``.

Models, all vectorised over every pixel of a batch:

- :func:`gaussian_ipe` [paper-sim]: ``Ybar = Y + 2 eps ||A_p|| ||F_q|| N(0, 1)``.
- :func:`amplitude_estimation_ipe` [theory]: ``a_hat = sin^2(pi y / 2^m)`` with ``y`` drawn from
  the exact canonical AE outcome distribution (:func:`ae_outcome_probabilities`), median of k.
- ``exact``: ``Ybar = Y``.

These functions are the *definitions* that circuit implementations of the sub-routines are
tested against.
"""

from __future__ import annotations

import numpy as np

from qcnn.quantum.config import QuantumConfig
from qcnn.quantum.noise import standard_normal

__all__ = [
    "gaussian_ipe",
    "ae_outcome_probabilities",
    "sample_ae_outcomes",
    "ae_estimate",
    "amplitude_estimation_ipe",
    "amplitude_estimation_median_ipe",
    "estimate_inner_products",
    "hadamard_test_probability",
]

# Outcomes within this many grid points of the peak are drawn from an explicit table; the rare
# rest (about 2 / (pi^2 * _WINDOW) of the mass) from the full distribution, so sampling is exact.
_WINDOW = 8


def hadamard_test_probability(cos_sim: np.ndarray) -> np.ndarray:
    """P(control = 1) of the Hadamard test for normalised inner products: ``(1 - c) / 2``."""
    return (1.0 - np.clip(cos_sim, -1.0, 1.0)) / 2.0


def gaussian_ipe(
    y: np.ndarray, scale: np.ndarray, eps: float, rng: np.random.Generator
) -> np.ndarray:
    """``y + 2 eps scale N(0, 1)``, independent per element; ``scale = ||A_p|| ||F_q||``.

    ``y`` and ``scale`` broadcast together; the result has y's dtype (float32 noise for float32).
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    if eps == 0:
        return y.copy()
    dtype = y.dtype if np.issubdtype(y.dtype, np.floating) else np.float64
    noise = standard_normal(rng, np.broadcast_shapes(y.shape, np.shape(scale)), dtype=dtype)
    noise *= (2.0 * eps) * scale
    noise += y
    return noise


def _fejer(delta: np.ndarray, big_m: int) -> np.ndarray:
    """``|sin(M pi d) / (M sin(pi d))|^2`` with the limit 1 where ``sin(pi d) = 0``."""
    den = big_m * np.sin(np.pi * delta)
    num = np.sin(big_m * np.pi * delta)
    small = np.abs(den) < 1e-12
    return np.where(small, 1.0, (num / np.where(small, 1.0, den)) ** 2)


def ae_outcome_probabilities(theta: np.ndarray | float, m: int) -> np.ndarray:
    """Exact distribution of canonical amplitude estimation's outcome ``y in {0..2^m - 1}``.

    ``P(y) = 1/2 [F(y/2^m - theta) + F(y/2^m + theta)]`` with ``a = sin^2(pi theta)``.
    ``theta`` of any shape -> probabilities of shape ``theta.shape + (2^m,)``.
    """
    big_m = 1 << int(m)
    theta = np.asarray(theta, dtype=np.float64)[..., None]
    grid = np.arange(big_m) / big_m
    p = 0.5 * (_fejer(grid - theta, big_m) + _fejer(grid + theta, big_m))
    return p / p.sum(axis=-1, keepdims=True)  # exact up to rounding; renormalise the rounding


def _sample_fejer_offsets(frac: np.ndarray, u: np.ndarray, big_m: int) -> np.ndarray:
    """Draw ``j`` with ``P(j) = sin^2(pi f) / (M^2 sin^2(pi (j - f) / M))`` (j mod M), by inverse CDF.

    ``frac`` = f in [0, 1) and ``u`` uniforms, both 1-D. Outcomes are ordered as the window
    ``-W+1..W`` around the peak first, then the remaining residues; that order makes the common
    case cheap without approximating anything.
    """
    out = np.zeros(frac.shape, dtype=np.int64)
    on_grid = frac == 0.0  # phase exactly on the grid: the outcome is certain
    todo = ~on_grid
    if not todo.any():
        return out
    f, uu = frac[todo], u[todo]
    s2 = np.sin(np.pi * f) ** 2

    def probs(offsets: np.ndarray, ff: np.ndarray, ss: np.ndarray) -> np.ndarray:
        return ss[:, None] / (
            big_m**2 * np.sin(np.pi * (offsets[None, :] - ff[:, None]) / big_m) ** 2
        )

    half = min(_WINDOW, big_m // 2)
    window = np.arange(-half + 1, half + 1) if big_m > 1 else np.zeros(1, dtype=np.int64)
    pw = probs(window, f, s2)
    cdf = np.cumsum(pw, axis=1)
    pick = (cdf <= uu[:, None]).sum(axis=1)  # index of the first cdf entry above u
    res = np.empty(f.shape, dtype=np.int64)
    inside = pick < window.size
    res[inside] = window[pick[inside]]
    outside = np.flatnonzero(~inside)
    if outside.size:
        rest = np.arange(half + 1, big_m - half + 1)  # the other residues mod M
        # Chunks keep the (pixels x 2^m) table at a few million entries whatever m is.
        step = max(1, (1 << 22) // max(rest.size, 1))
        for start in range(0, outside.size, step):
            sel = outside[start : start + step]
            cdf_rest = cdf[sel, -1:] + np.cumsum(probs(rest, f[sel], s2[sel]), axis=1)
            k = np.minimum((cdf_rest <= uu[sel, None]).sum(axis=1), rest.size - 1)  # rounding guard
            res[sel] = rest[k]
    out[todo] = res
    return out


def sample_ae_outcomes(theta: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """One canonical-AE outcome ``y in {0..2^m - 1}`` per element of ``theta`` (exact sampling).

    The distribution is an even mixture of two Fejer kernels centred at ``+theta`` and
    ``-theta``: pick the branch, then draw the offset from the nearest grid point.
    """
    big_m = 1 << int(m)
    theta = np.asarray(theta, dtype=np.float64)
    flat = theta.reshape(-1)
    sign = np.where(rng.random(flat.size) < 0.5, 1.0, -1.0)
    x = np.mod(sign * flat * big_m, big_m)
    k0 = np.floor(x)
    frac = x - k0
    j = _sample_fejer_offsets(frac, rng.random(flat.size), big_m)
    return (np.mod(k0.astype(np.int64) + j, big_m)).reshape(theta.shape)


def ae_estimate(a: np.ndarray, m: int, rng: np.random.Generator, median_of: int = 1) -> np.ndarray:
    """Canonical AE estimate ``a_hat = sin^2(pi y / 2^m)`` of ``a in [0, 1]``; median of ``median_of`` runs."""
    a = np.clip(np.asarray(a, dtype=np.float64), 0.0, 1.0)
    theta = np.arcsin(np.sqrt(a)) / np.pi
    big_m = 1 << int(m)
    runs = [
        np.sin(np.pi * sample_ae_outcomes(theta, m, rng) / big_m) ** 2 for _ in range(median_of)
    ]
    return runs[0] if median_of == 1 else np.median(np.stack(runs), axis=0)


def amplitude_estimation_ipe(
    y: np.ndarray,
    scale: np.ndarray,
    m: int,
    rng: np.random.Generator,
    median_of: int = 1,
) -> np.ndarray:
    """``Ybar = scale (1 - 2 a_hat)`` with ``a = (1 - y / scale) / 2`` estimated by canonical AE.

    ``scale = ||A_p|| ||F_q||``; where it is 0 the product is exactly 0 and stays 0.
    """
    scale_b = np.broadcast_to(np.asarray(scale, dtype=np.float64), y.shape)
    nz = scale_b > 0
    cos_sim = np.divide(y, scale_b, out=np.zeros(y.shape), where=nz)
    a_hat = ae_estimate(hadamard_test_probability(cos_sim), m, rng, median_of)
    out = np.where(nz, scale_b * (1.0 - 2.0 * a_hat), 0.0)
    return out.astype(y.dtype, copy=False)


def amplitude_estimation_median_ipe(
    y: np.ndarray,
    scale: np.ndarray,
    m: int,
    k: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """As :func:`amplitude_estimation_ipe` with the median of k runs, drawn in one step: the
    median's outcome is ``F^-1(V)``, ``V ~ Beta((k+1)/2, (k+1)/2)``, on a window of the outcome
    law (:mod:`qcnn.quantum.ae_law`; exact, undecided draws are redone on the full law). Same
    law as the median of k draws of :func:`ae_estimate`, about k times cheaper."""
    from qcnn.quantum.ae_law import ae_phase, sample_median_j, window

    scale_b = np.broadcast_to(np.asarray(scale, dtype=np.float64), y.shape)
    nz = scale_b > 0
    cos_sim = np.divide(y, scale_b, out=np.zeros(y.shape), where=nz)
    x = ae_phase(hadamard_test_probability(cos_sim).ravel(), m)
    j = sample_median_j(window(x, m), k, rng, x=x).reshape(y.shape)
    # Ybar = scale (1 - 2 a~) with a~ = sin^2(pi J / M): scale cos(2 pi J / M)
    out = np.where(nz, scale_b * np.cos(2.0 * np.pi * j / (1 << int(m))), 0.0)
    return out.astype(y.dtype, copy=False)


def estimate_inner_products(
    y: np.ndarray, scale: np.ndarray, config: QuantumConfig, rng: np.random.Generator
) -> np.ndarray:
    """Apply the IPE model of ``config`` to the exact products ``y``; ``scale = ||A_p|| ||F_q||``."""
    if config.ipe == "exact":
        return y.copy()
    if config.ipe == "gaussian":
        return gaussian_ipe(y, scale, config.eps, rng)
    bits = config.resolved_ae_bits
    assert bits is not None  # set whenever ipe is "amplitude_estimation"
    k = config.resolved_ae_median
    if k > 1:
        return amplitude_estimation_median_ipe(y, scale, bits, k, rng)
    return amplitude_estimation_ipe(y, scale, bits, rng)
