"""The KLP19 sub-routines as Qiskit circuits (requires qiskit and qiskit-aer).

The emulator (:mod:`qcnn.quantum`) never imports this package. :class:`CircuitExecutor` is
registered under the name ``"circuits"`` (on import, and as an entry point of the ``qcnn``
distribution), so ``QuantumConv2D(executor="circuits")`` finds it.

- :mod:`~qcnn.circuits.encoding`: amplitude encoding (StatePreparation, Initialize, RY tree);
- :mod:`~qcnn.circuits.inner_product`: Hadamard test, amplitude estimation,
  :func:`estimate_inner_product`;
- :mod:`~qcnn.circuits.tomography`: l-infinity tomography with the KP sign step;
- :mod:`~qcnn.circuits.sampling`: the output state and pixel sampling;
- :mod:`~qcnn.circuits.backend`: backends, seeds, batched runs, noise models;
- :mod:`~qcnn.circuits.layer`: :class:`CircuitExecutor` for ``QuantumConv2D``;
- :mod:`~qcnn.circuits.coherent`: the whole layer as ONE circuit (patches, kernels and AE
  outcomes in superposition), :func:`coherent_output_distribution`.
"""

from qcnn.circuits.backend import (
    CircuitRunner,
    aer_backend,
    circuit_stats,
    default_backend,
    depolarizing_noise_model,
)
from qcnn.circuits.coherent import (
    CoherentCircuit,
    CoherentLaw,
    build_coherent_circuit,
    coherent_law,
    coherent_output_distribution,
)
from qcnn.circuits.encoding import (
    EncodedVector,
    RyTreeLoader,
    amplitude_encode,
    initialize_circuit,
    state_preparation_gate,
)
from qcnn.circuits.inner_product import (
    HadamardTestTemplate,
    InnerProductEstimator,
    InnerProductResult,
    amplitude_estimation_circuit,
    controlled_grover_operator,
    estimate_inner_product,
    hadamard_test_circuit,
)
from qcnn.circuits.layer import CircuitExecutor
from qcnn.circuits.sampling import output_state_circuit, sample_pixels_circuit
from qcnn.circuits.tomography import TomographyResult, linf_tomography

__all__ = [
    "CircuitExecutor",
    "CircuitRunner",
    "CoherentCircuit",
    "CoherentLaw",
    "build_coherent_circuit",
    "coherent_law",
    "coherent_output_distribution",
    "EncodedVector",
    "HadamardTestTemplate",
    "InnerProductEstimator",
    "InnerProductResult",
    "RyTreeLoader",
    "TomographyResult",
    "aer_backend",
    "amplitude_encode",
    "amplitude_estimation_circuit",
    "circuit_stats",
    "controlled_grover_operator",
    "default_backend",
    "depolarizing_noise_model",
    "estimate_inner_product",
    "hadamard_test_circuit",
    "initialize_circuit",
    "linf_tomography",
    "output_state_circuit",
    "sample_pixels_circuit",
    "state_preparation_gate",
]
