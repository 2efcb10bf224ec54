"""The gradient models of quantum backpropagation (model §3), as one function.

:func:`noisy_gradient` returns the quantum estimate of a gradient tensor under
``QuantumConfig.gradient_model``:

- ``'gaussian'`` [paper-sim]: ``g + delta ||g||_2 N(0, 1)`` elementwise (delta a standard
  deviation, the error unbounded);
- ``'linf_tomography'`` [theory]: the emulated l-infinity tomography estimate
  (:func:`qcnn.quantum.tomography.tomography_estimate`; delta a bound holding with high
  probability, small entries returned as 0).

Used by the optimizer hook :class:`qcnn.quantum.gradient_noise.QuantumGradientNoise` (parameter
gradients) and by ``QuantumConv2D.backward`` (the gradient passed back, one vector per image).
"""

from __future__ import annotations

import numpy as np

from qcnn.quantum.config import GRADIENT_MODELS
from qcnn.quantum.noise import standard_normal
from qcnn.quantum.tomography import tomography_estimate

__all__ = ["GRADIENT_MODELS", "noisy_gradient"]


def noisy_gradient(
    grad: np.ndarray,
    delta: float,
    rng: np.random.Generator,
    model: str = "gaussian",
    *,
    signs: str = "kp",
    batch_dims: int = 0,
    norm_ae: tuple[int, int] | None = None,
) -> np.ndarray:
    """The quantum estimate of ``grad`` under the gradient ``model`` (same shape and dtype).

    ``batch_dims`` leading axes index independent vectors (each with its own norm, e.g. one per
    image); otherwise the whole tensor is one vector. ``delta = 0`` returns ``grad`` itself.
    ``norm_ae = (m, k)``: the tomography's norm estimated by amplitude estimation
    (:func:`~qcnn.quantum.tomography.tomography_estimate`); only with ``'linf_tomography'``.
    """
    if model not in GRADIENT_MODELS:
        raise ValueError(f"model must be one of {GRADIENT_MODELS}, got {model!r}")
    if delta == 0 or grad.size == 0:
        return grad
    if model == "linf_tomography":
        return tomography_estimate(
            grad, delta, rng, signs=signs, batch_dims=batch_dims, norm_ae=norm_ae
        )
    if norm_ae is not None:
        raise ValueError("norm_ae is a setting of the 'linf_tomography' gradient model")
    dtype = grad.dtype if grad.dtype in (np.float32, np.float64) else np.float64
    if batch_dims == 0:  # (the notebook's computation, kept bit for bit)
        norm = float(np.linalg.norm(grad.ravel()))
        if norm == 0:
            return grad
        noise = standard_normal(rng, grad.shape, dtype=dtype)
        noise *= delta * norm
        noise += grad
        return noise
    rows = grad.reshape(int(np.prod(grad.shape[:batch_dims], dtype=np.int64)), -1)
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
    if not norms.any():
        return grad
    noise = standard_normal(rng, grad.shape, dtype=dtype)
    noise.reshape(rows.shape)[...] *= (delta * norms)[:, None].astype(dtype)
    noise += grad
    return noise
