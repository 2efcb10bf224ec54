"""The layer's output state and the measurement of pixels, as circuits (model §2.4-2.5).

After the capped ReLU the layer holds ``f`` (one row of ``d = D'H'W'`` values per image) and
prepares ``sum_i sqrt(f_i / sum f) |i>``; each measurement of the index register returns pixel i
with probability ``f_i / sum f``. Here that state is loaded with Aer's native ``initialize``
(the amplitude-amplified conditional rotation of the algorithm produces the same state; its
cost is the algorithm's, not this simulation's) and measured ``shots`` times.

:func:`sample_pixels_circuit` has exactly the contract of the emulator's
:func:`qcnn.quantum.sampling.sample_pixels`: counts ``(B, d)``, each row with a positive sum
adds up to ``shots``, all-zero rows (and ``shots = 0``) give zeros without running a circuit.
"""

from __future__ import annotations

import numpy as np
from qiskit import QuantumCircuit
from qiskit.providers import BackendV2

from qcnn.circuits.backend import CircuitRunner, SeedLike
from qcnn.circuits.encoding import initialize_circuit, num_qubits_for
from qcnn.quantum.sampling import check_sampling_args

__all__ = ["output_state_circuit", "sample_pixels_circuit"]


def output_state_circuit(
    values: np.ndarray, power: int = 1, *, measure: bool = True
) -> tuple[QuantumCircuit, float]:
    """``(circuit, sum f^power)``: the state with amplitudes ``sqrt(f^power / sum f^power)``.

    ``values`` ``(d,)`` non-negative, not all 0; the index register has ``ceil(log2 d)`` qubits
    (bit k of the pixel index on qubit k) and, with ``measure=True``, is measured into ``'c'``.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    if power not in (1, 2):
        raise ValueError(f"power must be 1 or 2, got {power!r}")
    if v.size and np.min(v) < 0:
        raise ValueError("values must be non-negative (they are outputs of a capped ReLU)")
    if not np.all(np.isfinite(v)):
        raise ValueError("values contain NaN or infinity")
    peak = float(v.max(initial=0.0))
    if peak <= 0:
        raise ValueError("an all-zero output has no state (it yields zero counts)")
    # By scale: (v / peak)^power neither underflows for tiny outputs nor overflows for huge ones.
    w = (v / peak) ** power
    rel = float(w.sum())
    total = peak**power * rel
    qc, _ = initialize_circuit(np.sqrt(w / rel), measure=measure)
    qc.name = "output_state"
    return qc, total


def sample_pixels_circuit(
    values: np.ndarray,
    shots: int,
    *,
    power: int = 1,
    backend: BackendV2 | None = None,
    runner: CircuitRunner | None = None,
    seed: SeedLike = None,
) -> np.ndarray:
    """Measure ``shots`` copies of each row's output state: counts ``(B, d)`` int64.

    Args:
        values: ``(B, d)`` non-negative pixel values, one row per image.
        shots: N >= 0 measurements per image.
        power: 1 (amplitudes ``sqrt(f)``, the algorithm) or 2 (amplitudes ``f``, ablation).
        backend / runner: where to run (default ``AerSimulator()``); one call for all rows.
        seed: int, ``SeedSequence`` or ``Generator`` for the simulator seeds.

    Returns:
        counts with the contract of :func:`qcnn.quantum.sampling.sample_pixels` (on a noisy
        backend, shots that land on a padding index are dropped).
    """
    values = check_sampling_args(values, shots, power)
    b, d = values.shape
    counts = np.zeros((b, d), dtype=np.int64)
    # Non-negative values: a row is live when its largest value is > 0 (not its sum of powers,
    # which underflows for tiny outputs).
    live = np.flatnonzero(values.max(axis=1) > 0) if d else np.zeros(0, dtype=np.int64)
    if shots == 0 or live.size == 0:
        return counts
    runner = runner if runner is not None else CircuitRunner(backend)
    circuits = [runner.transpile(output_state_circuit(values[r], power)[0]) for r in live]
    n = num_qubits_for(d)
    raw = runner.run_circuits(circuits, n, int(shots), seed)  # (live, 2^n)
    # Padding indices (>= d) have amplitude 0; only gate noise can produce them. Such shots
    # carry no pixel and are dropped (rows then sum to less than ``shots``).
    counts[live] = raw[:, :d]
    return counts
