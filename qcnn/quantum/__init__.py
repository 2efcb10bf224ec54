"""Emulator of the KLP19 quantum CNN at dataset scale (numpy only; never imports Qiskit).

- :class:`QuantumConfig`: every knob of model §2-3, validated.
- :class:`QuantumConv2D`: the quantum convolution layer (IPE error model, capped ReLU,
  l-infinity tomography sampling, pooling on write), a drop-in for :class:`qcnn.nn.Conv2D`.
- :class:`QuantumGradientNoise`: quantum backprop as an optimizer gradient hook (Gaussian noise
  or l-infinity tomography, :func:`tomography_estimate`).
- :func:`quantize`: any classical network made quantum (conv + ReLU [+ pooling] -> quantum layer).
- sub-routines: :mod:`qcnn.quantum.ae_law` (the AE outcome law), :mod:`qcnn.quantum.ipe`,
  :mod:`qcnn.quantum.sampling`, :mod:`qcnn.quantum.nonlinearity`; the exact per-shot law of
  the AE model's output state: :func:`ae_output_law`; running-time model:
  :mod:`qcnn.quantum.resources`.
"""

from qcnn.quantum.ae_law import (
    AEEstimate,
    ae_estimate,
    ae_outcome_probabilities,
    median_ae_estimate,
    sample_ae_outcomes,
)
from qcnn.quantum.config import QuantumConfig
from qcnn.quantum.executor import ConvProblem, EmulatorExecutor, Executor, make_executor
from qcnn.quantum.gradient_models import noisy_gradient
from qcnn.quantum.gradient_noise import QuantumGradientNoise
from qcnn.quantum.ipe import (
    amplitude_estimation_ipe,
    amplitude_estimation_median_ipe,
    estimate_inner_products,
    gaussian_ipe,
)
from qcnn.quantum.layer import QUANTUM_TAG, PoolOnWrite, QuantumConv2D, layer_shots
from qcnn.quantum.layer_stats import LayerStatistics, watch_statistics
from qcnn.quantum.nonlinearity import noisy_cap_relu
from qcnn.quantum.output_law import AEOutputLaw, ae_output_law
from qcnn.quantum.quantize import QuantizeNote, quantization_plan, quantize
from qcnn.quantum.sampling import (
    expected_distinct_fraction,
    implied_eta,
    sample_pixels,
    sampled_values,
    shots_from_sigma,
    tomography_shots,
)
from qcnn.quantum.tomography import tomography_estimate

__all__ = [
    "quantize",
    "quantization_plan",
    "QuantizeNote",
    "QuantumConfig",
    "QuantumConv2D",
    "QuantumGradientNoise",
    "noisy_gradient",
    "tomography_estimate",
    "ConvProblem",
    "Executor",
    "EmulatorExecutor",
    "make_executor",
    "layer_shots",
    "PoolOnWrite",
    "LayerStatistics",
    "watch_statistics",
    "QUANTUM_TAG",
    "gaussian_ipe",
    "ae_outcome_probabilities",
    "sample_ae_outcomes",
    "ae_estimate",
    "AEEstimate",
    "median_ae_estimate",
    "amplitude_estimation_ipe",
    "amplitude_estimation_median_ipe",
    "estimate_inner_products",
    "noisy_cap_relu",
    "AEOutputLaw",
    "ae_output_law",
    "sample_pixels",
    "sampled_values",
    "expected_distinct_fraction",
    "tomography_shots",
    "shots_from_sigma",
    "implied_eta",
]
