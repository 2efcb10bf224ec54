"""Inner-product estimation (IPE) error models (model §2.2).

The quantum layer estimates every output ``Y[p, q] = <A_p, F_q>`` with a Hadamard test on the
normalised vectors (the control reads 1 with probability ``a = (1 - <A_p|F_q>) / 2``) followed
by amplitude estimation, and restores the norms: ``Ybar = ||A_p|| ||F_q|| (1 - 2 a_hat)``.

Models, all vectorised over every pixel of a batch:

- :func:`gaussian_ipe` [paper-sim]: ``Ybar = Y + 2 eps ||A_p|| ||F_q|| N(0, 1)``.
- :func:`amplitude_estimation_median_ipe` [theory]: ``a_hat = sin^2(pi y / 2^m)`` with ``y`` the
  median of k canonical AE runs, drawn from its exact law (:mod:`qcnn.quantum.ae_law`);
  :func:`amplitude_estimation_ipe` draws the k runs one by one (the reference).
- ``exact``: ``Ybar = Y``.

These functions are the *definitions* that circuit implementations of the sub-routines are
tested against.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qcnn.quantum.ae_law import ae_estimate, median_ae_estimate
from qcnn.quantum.config import QuantumConfig
from qcnn.quantum.noise import standard_normal

__all__ = [
    "gaussian_ipe",
    "amplitude_estimation_ipe",
    "amplitude_estimation_median_ipe",
    "estimate_inner_products",
    "hadamard_test_probability",
]


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


def _from_hadamard_test(
    y: np.ndarray, scale: np.ndarray, cosine: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """``Ybar = scale cosine(a)`` with ``a = (1 - y / scale) / 2`` the Hadamard test's
    probability and ``cosine(a)`` an estimate of ``1 - 2 a``; 0 where ``scale`` is 0 (the
    product is exactly 0 and stays 0). The result has y's dtype."""
    scale_b = np.broadcast_to(np.asarray(scale, dtype=np.float64), y.shape)
    nz = scale_b > 0
    cos_sim = np.divide(y, scale_b, out=np.zeros(y.shape), where=nz)
    out = np.where(nz, scale_b * cosine(hadamard_test_probability(cos_sim)), 0.0)
    return out.astype(y.dtype, copy=False)


def amplitude_estimation_ipe(
    y: np.ndarray,
    scale: np.ndarray,
    m: int,
    rng: np.random.Generator,
    median_of: int = 1,
) -> np.ndarray:
    """``Ybar = scale (1 - 2 a_hat)`` with ``a = (1 - y / scale) / 2`` estimated by canonical AE,
    the median of ``median_of`` runs drawn run by run (:func:`~qcnn.quantum.ae_law.ae_estimate`).

    ``scale = ||A_p|| ||F_q||``; where it is 0 the product is exactly 0 and stays 0.
    """
    return _from_hadamard_test(y, scale, lambda a: 1.0 - 2.0 * ae_estimate(a, m, rng, median_of))


def amplitude_estimation_median_ipe(
    y: np.ndarray,
    scale: np.ndarray,
    m: int,
    k: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """As :func:`amplitude_estimation_ipe`, the median of k runs drawn in one step
    (:func:`~qcnn.quantum.ae_law.median_ae_estimate`: for k > 1 the median's outcome is
    ``F^-1(V)``, ``V ~ Beta((k+1)/2, (k+1)/2)``, on a window of the outcome law; exact,
    undecided draws are redone on the full law). Same law as :func:`amplitude_estimation_ipe`
    with ``median_of=k``, about k times cheaper."""
    return _from_hadamard_test(y, scale, lambda a: median_ae_estimate(a, m, k, rng).cosine)


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
    return amplitude_estimation_median_ipe(y, scale, bits, config.resolved_ae_median, rng)
