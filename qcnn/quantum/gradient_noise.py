"""Quantum backpropagation as an error model on the gradients (model §3).

The gradients ``dL/dF = A^T dL/dY`` and ``dL/dA = dL/dY F^T`` come from quantum matrix
multiplication read out with l-infinity tomography, so each entry carries an error bounded by
``delta * ||g||_2`` (the l2 norm of that whole gradient tensor). Two models
(``QuantumConfig.gradient_model``):

- ``'gaussian'`` [paper-sim]: ``g_noisy = g + delta * ||g||_2 * N(0, 1)`` elementwise: delta is a
  standard deviation, the error is unbounded;
- ``'linf_tomography'`` [theory]: ``g`` replaced by its emulated l-infinity tomography estimate
  (:func:`qcnn.quantum.tomography.tomography_estimate`): ``N = ceil(36 ln d / delta^2)`` shots from
  ``g_i^2 / ||g||^2``, magnitudes ``sqrt(n_i / N) ||g||``, Kerenidis-Prakash signs; delta is a bound
  holding with high probability, small entries come back as 0.

:class:`QuantumGradientNoise` applies the model to parameter gradients as an optimizer hook, on
every parameter [paper-sim] or on the quantum layers' kernels only; the model itself is
:func:`qcnn.quantum.gradient_models.noisy_gradient`, also used by ``QuantumConv2D`` for the
gradient it passes back (``QuantumConfig.input_gradient_noise``), one vector per image.
"""

from __future__ import annotations

import numpy as np

from qcnn.nn.layers import Parameter
from qcnn.quantum.gradient_models import GRADIENT_MODELS, noisy_gradient
from qcnn.quantum.layer import QUANTUM_TAG

__all__ = ["QuantumGradientNoise"]


class QuantumGradientNoise:
    """Gradient hook ``(param, grad) -> quantum estimate of grad`` (model §3).

    Args:
        delta: gradient precision, >= 0 (0 returns the exact gradient).
        rng: generator of the noise (its state is checkpointed by :func:`qcnn.train.fit`).
        on: ``'all'`` parameters [paper-sim] or ``'quantum'``: only parameters tagged
            ``"quantum"`` (:data:`~qcnn.quantum.layer.QUANTUM_TAG`: the kernels of quantum layers).
        model: ``'gaussian'`` [paper-sim] or ``'linf_tomography'`` [theory].
        signs: signs of the tomography model: ``'kp'`` or ``'exact'``.
        norm_ae: ``(m, k)``: the tomography model's norm ``||g||_2`` estimated by the median of
            k amplitude-estimation runs with m bits (``QuantumConfig.gradient_norm``); None:
            exact.
    """

    def __init__(
        self,
        delta: float,
        rng: np.random.Generator | int | None = None,
        on: str = "all",
        model: str = "gaussian",
        signs: str = "kp",
        norm_ae: tuple[int, int] | None = None,
    ) -> None:
        if not np.isfinite(delta) or delta < 0:
            raise ValueError(f"delta must be a finite number >= 0, got {delta!r}")
        if on not in ("all", "quantum"):
            raise ValueError(f"on must be 'all' or 'quantum', got {on!r}")
        if model not in GRADIENT_MODELS:
            raise ValueError(f"model must be one of {GRADIENT_MODELS}, got {model!r}")
        if signs not in ("kp", "exact"):
            raise ValueError(f"signs must be 'kp' or 'exact', got {signs!r}")
        if norm_ae is not None and model != "linf_tomography":
            raise ValueError("norm_ae is a setting of the 'linf_tomography' gradient model")
        self.delta, self.on, self.model, self.signs = float(delta), on, model, signs
        self.norm_ae = norm_ae
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def applies_to(self, param: Parameter) -> bool:
        return self.on == "all" or QUANTUM_TAG in param.tags

    def __call__(self, param: Parameter, grad: np.ndarray) -> np.ndarray:
        if self.delta == 0 or not self.applies_to(param):
            return grad
        return noisy_gradient(
            grad, self.delta, self.rng, self.model, signs=self.signs, norm_ae=self.norm_ae
        )

    def __repr__(self) -> str:
        extra = f", model={self.model!r}" if self.model != "gaussian" else ""
        return f"QuantumGradientNoise(delta={self.delta:g}, on={self.on!r}{extra})"
