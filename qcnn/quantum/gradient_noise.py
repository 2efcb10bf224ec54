"""Quantum backpropagation as an error model on the gradients (model §3).

The gradients ``dL/dF = A^T dL/dY`` and ``dL/dA = dL/dY F^T`` come from quantum matrix
multiplication read out with l-infinity tomography, so each entry carries an error bounded by
``delta * ||g||_2`` (the l2 norm of that whole gradient tensor). The model:

    g_noisy = g + delta * ||g||_2 * N(0, 1)      (elementwise, per parameter tensor)

applied to every parameter [paper-sim] or only to the kernels of quantum layers [theory].
It plugs into any optimizer as a gradient hook: ``SGD(..., grad_hooks=[QuantumGradientNoise(...)])``.
"""

from __future__ import annotations

import numpy as np

from qcnn.nn.layers import Parameter
from qcnn.quantum.layer import QUANTUM_TAG
from qcnn.quantum.noise import standard_normal

__all__ = ["QuantumGradientNoise"]


class QuantumGradientNoise:
    """Gradient hook ``(param, grad) -> grad + delta ||grad||_2 N(0, 1)``.

    Args:
        delta: gradient precision, >= 0 (0 returns the exact gradient).
        rng: generator of the noise (its state is checkpointed by :func:`qcnn.train.fit`).
        on: ``'all'`` parameters [paper-sim] or ``'quantum'``: only parameters tagged
            ``"quantum"`` (:data:`~qcnn.quantum.layer.QUANTUM_TAG`: the kernels of quantum layers).
    """

    def __init__(
        self, delta: float, rng: np.random.Generator | int | None = None, on: str = "all"
    ) -> None:
        if not np.isfinite(delta) or delta < 0:
            raise ValueError(f"delta must be a finite number >= 0, got {delta!r}")
        if on not in ("all", "quantum"):
            raise ValueError(f"on must be 'all' or 'quantum', got {on!r}")
        self.delta, self.on = float(delta), on
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def applies_to(self, param: Parameter) -> bool:
        return self.on == "all" or QUANTUM_TAG in param.tags

    def __call__(self, param: Parameter, grad: np.ndarray) -> np.ndarray:
        if self.delta == 0 or not self.applies_to(param):
            return grad
        norm = float(np.linalg.norm(grad.ravel()))
        if norm == 0:
            return grad
        dtype = grad.dtype if grad.dtype in (np.float32, np.float64) else np.float64
        noise = standard_normal(self.rng, grad.shape, dtype=dtype)
        noise *= self.delta * norm
        noise += grad
        return noise

    def __repr__(self) -> str:
        return f"QuantumGradientNoise(delta={self.delta:g}, on={self.on!r})"
