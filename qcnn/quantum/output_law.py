"""The exact law of one shot of the AE model's output state (model §2.2-2.5, §6, theory mode).

With noise per shot (``QuantumConfig.noise_per_shot``) a tomography shot of the layer measures
the pixel register and the AE estimate together from the state proportional to
``sum_p sum_J sqrt(P(J | p)) sqrt(f(Ybar_p(J))) |p, J>`` (:mod:`qcnn.quantum.per_shot`). Its law:

- ``P(J | p)``: the law of ``J = min(y, M - y)`` (the median of k runs of it), y the canonical AE
  outcome of ``a = (1 - <A_p|F_q>) / 2`` (:func:`qcnn.quantum.ae_law.full_cdf`);
- the value a shot carries: ``f(Ybar_p(J) + shift_p)`` with ``Ybar_p(J) = s_p cos(2 pi J / M)``
  (the estimate ``s_p (1 - 2 sin^2(pi J / M))``, ``s_p = ||A_p|| ||F_q||``) and ``shift_p`` = the
  bias in the theory order (bias + ``clip(Y) - Y`` in the paper order);
- ``P(p, J) = P(J | p) f(...) / sum_p E[f(Ybar_p)]``: the pixel comes out with probability
  proportional to ``E[f(Ybar_p)]`` and its value follows the f-tilted law.

:func:`ae_output_law` computes all of it exactly (no window, every J); the per-shot sampler
draws from it by exact rejection and takes its estimate map from here
(:func:`ae_phase_of_products`, :func:`estimate_cosines`), and the coherent circuit
(the circuits package's coherent module) is checked against it to 1e-9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qcnn.quantum.ae_law import ae_phase, full_cdf, median_cdf_map

__all__ = [
    "AEOutputLaw",
    "ae_output_law",
    "ae_phase_of_products",
    "estimate_cosines",
    "conv_products",
]


def ae_phase_of_products(y_nb: np.ndarray, scale: np.ndarray, m: int) -> np.ndarray:
    """``x = M theta`` of each pixel's Hadamard test, ``a = (1 - Y / s) / 2``: ``(n,)`` float64.

    ``y_nb`` and ``scale`` are flat ``(n,)`` float64 arrays; a pixel with ``s = 0`` (a zero patch
    or kernel) gets ``Y / s = 0`` (its estimate is ``0 * cos = 0`` whatever J is)."""
    n = y_nb.size
    cos_sim = np.divide(y_nb, scale, out=np.zeros(n), where=scale > 0)
    return ae_phase((1.0 - np.clip(cos_sim, -1.0, 1.0)) / 2.0, m)


def estimate_cosines(m: int, size: int) -> np.ndarray:
    """``cos(2 pi J / M)`` for ``J = 0 .. size - 1`` (float64): ``Ybar(J) / s``, one table that
    every user of the estimate reads so that they see the very same float64 numbers."""
    big_m = 1 << int(m)
    return np.cos(2 * math.pi * np.arange(size) / big_m)


@dataclass(frozen=True)
class AEOutputLaw:
    """The exact per-shot law of n pixels (arrays over pixels, float64).

    Attributes:
        j_law: ``(n, M/2 + 1)``: ``P(J = j | pixel)`` (of the median of k runs).
        values: ``(n, M/2 + 1)``: ``f(Ybar(j) + shift)``, the value a shot of the pixel carries.
        mean_f: ``(n,)``: ``E[f(Ybar)] = sum_j P(j) f(j)``.
    """

    j_law: np.ndarray
    values: np.ndarray
    mean_f: np.ndarray

    def pixel_law(self) -> np.ndarray:
        """``(n,)``: P(a shot returns pixel p) = ``E[f_p] / sum E[f]`` (zeros if all are 0)."""
        total = self.mean_f.sum()
        return self.mean_f / total if total > 0 else np.zeros_like(self.mean_f)

    def joint(self) -> np.ndarray:
        """``(n, M/2 + 1)``: P(a shot returns pixel p with estimate J = j) (the f-tilted law)."""
        total = self.mean_f.sum()
        w = self.j_law * self.values
        return w / total if total > 0 else np.zeros_like(w)


def ae_output_law(
    y_nb: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    cap: float,
    m: int,
    k: int = 1,
) -> AEOutputLaw:
    """The exact law of a shot for pixels with products ``y_nb``, norm products ``scale`` and
    value shifts ``shift`` (all ``(n,)``), cap C, m AE bits and the median of k runs."""
    y_nb = np.asarray(y_nb, dtype=np.float64).ravel()
    scale = np.asarray(scale, dtype=np.float64).ravel()
    shift = np.asarray(shift, dtype=np.float64).ravel()
    x = ae_phase_of_products(y_nb, scale, m)
    cdf = median_cdf_map(full_cdf(x, m), k)
    j_law = np.diff(cdf, axis=1, prepend=0.0)
    half = (1 << int(m)) // 2
    z = scale[:, None] * estimate_cosines(m, half + 1)[None, :] + shift[:, None]
    values = np.clip(z, 0.0, float(cap))
    return AEOutputLaw(j_law, values, np.einsum("nj,nj->n", j_law, values))


def conv_products(
    x: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The inner products and norm products of one image's convolution (stride 1, no padding),
    in float64: ``(y_nb (O, P), scale (O, P), (H', W'))`` with ``P = H'W'`` patches in row-major
    order, ``y_nb[q, p] = <A_p, F_q>`` and ``scale[q, p] = ||A_p|| ||F_q||``.

    Args:
        x: ``(C, H, W)`` image.
        weight: ``(O, C, kh, kw)`` kernels.
    """
    from qcnn.nn import functional as F

    x4 = np.asarray(x, dtype=np.float64)[None]
    w = np.asarray(weight, dtype=np.float64)
    o, _, kh, kw = w.shape
    geom = F.conv_geometry(x4.shape[2:], (kh, kw), 1, 0)
    cols = F.im2col(x4, geom).T  # (P, C kh kw): one row per patch
    w2d = w.reshape(o, -1)
    y_nb = w2d @ cols.T
    scale = np.linalg.norm(w2d, axis=1)[:, None] * np.linalg.norm(cols, axis=1)[None, :]
    return y_nb, scale, tuple(geom.out)  # type: ignore[return-value]
