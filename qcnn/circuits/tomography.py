"""l-infinity tomography of a circuit-prepared real state, with the Kerenidis-Prakash sign step.

Given a circuit ``U`` with ``U|0> = |x> = sum_i x_i |i>`` (real amplitudes, unit norm):

1. *Magnitudes*: measure N copies in the computational basis; ``p_i = n_i / N`` and
   ``|x_i| ~ sqrt(p_i)``.
2. *Signs* (KP): prepare ``(|0>|x> + |1>|sqrt p>) / sqrt2`` (``U`` controlled on control = 0, the
   preparation of ``sqrt p`` on control = 1), apply H to the control and measure N more copies.
   Outcome ``(0, i)`` has probability ``(x_i + sqrt p_i)^2 / 4``: about ``p_i`` when
   ``x_i > 0`` and about 0 when ``x_i < 0``. Sign ``+1`` if ``n(0, i) > 0.4 p_i N``, else ``-1``.

With ``N = ceil(36 ln d / eta^2)`` (:func:`qcnn.quantum.sampling.tomography_shots`) the estimate
``x~_i = sign_i sqrt(p_i)`` satisfies ``||x~ - x||_inf <= eta`` with high probability.

The sign step is a Hadamard test between ``|x>`` and ``|sqrt p>`` read out on every basis state,
so for a vector input it reuses the Hadamard-test template of
:mod:`qcnn.circuits.inner_product` (one transpiled circuit for all repeats). Outcome index of
that circuit: ``control + 2 * i`` (qubit 0 = control).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit.library import StatePreparation
from qiskit.providers import BackendV2

from qcnn.circuits.backend import (
    CircuitRunner,
    CircuitStats,
    SeedLike,
    as_seed_sequence,
    circuit_stats,
)
from qcnn.circuits.encoding import RyTreeLoader, amplitude_encode
from qcnn.circuits.inner_product import HadamardTestTemplate
from qcnn.quantum.sampling import tomography_shots
from qcnn.quantum.tomography import SIGN_THRESHOLD, kp_signs

__all__ = ["SIGN_THRESHOLD", "TomographyResult", "linf_tomography"]


@dataclass
class TomographyResult:
    """Estimates of the unit vector ``|x>`` (the first ``dim`` amplitudes).

    Arrays have shape ``(dim,)``, or ``(repeats, dim)`` when ``repeats > 1`` was asked for.

    Attributes:
        estimate: ``sign * sqrt(p)`` (``sqrt(p)`` when signs were not estimated).
        probabilities: ``p = n / N`` from the magnitude step.
        signs: +1/-1 per entry (all +1 without the sign step).
        counts: magnitude-step counts ``n_i``.
        sign_counts: sign-step counts ``n(0, i)`` (zeros without the sign step).
        shots: N per step and repeat.
        eta: the precision N was derived from (None when ``shots`` was given).
        resources: ``{'magnitudes': stats, 'signs': stats}`` of the circuits as run.
    """

    estimate: np.ndarray
    probabilities: np.ndarray
    signs: np.ndarray
    counts: np.ndarray
    sign_counts: np.ndarray
    shots: int
    eta: float | None
    resources: dict[str, CircuitStats] = field(default_factory=dict)


def _sign_circuit_from_unitary(prep: QuantumCircuit, sqrt_p: np.ndarray) -> QuantumCircuit:
    n = prep.num_qubits
    qc = QuantumCircuit(QuantumRegister(1, "ctrl"), QuantumRegister(n, "data"), name="kp_sign")
    qc.h(0)
    qc.append(prep.to_gate(label="U").control(1, ctrl_state=0), range(n + 1))
    qc.append(StatePreparation(sqrt_p).control(1, ctrl_state=1), range(n + 1))
    qc.h(0)
    qc.add_register(ClassicalRegister(n + 1, "c"))
    qc.measure(range(n + 1), range(n + 1))
    return qc


def linf_tomography(
    state: np.ndarray | QuantumCircuit,
    *,
    eta: float | None = None,
    shots: int | None = None,
    signs: bool = True,
    repeats: int = 1,
    backend: BackendV2 | None = None,
    runner: CircuitRunner | None = None,
    seed: SeedLike = None,
) -> TomographyResult:
    """l-infinity tomography of ``|x>`` with N copies per step.

    Args:
        state: a real vector ``(d,)`` (normalised and loaded by the RY tree; the estimate is of
            ``x / ||x||``) or a circuit ``U`` on n qubits with real amplitudes (d = 2^n).
        eta: precision; N = ``tomography_shots(d, eta)``. Exactly one of ``eta`` and ``shots``.
        shots: N directly.
        signs: run the KP sign step (otherwise only magnitudes are estimated).
        repeats: independent repetitions (each N + N shots), run in the same backend calls.
        backend / runner: where to run (default ``AerSimulator()``).
        seed: int, ``SeedSequence`` or ``Generator``.
    """
    if (eta is None) == (shots is None):
        raise ValueError("pass exactly one of eta (N from tomography_shots) and shots")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    runner = runner if runner is not None else CircuitRunner(backend)
    root = as_seed_sequence(seed)
    seed_mag, seed_sign = root.spawn(2)

    if isinstance(state, QuantumCircuit):
        if state.num_clbits:
            raise ValueError("the state preparation must not contain measurements")
        prep = state
        n = prep.num_qubits
        dim = 1 << n
        x_state = None
    else:
        enc = amplitude_encode(state)
        n, dim = enc.num_qubits, enc.dim
        x_state = enc.state
        prep, _ = RyTreeLoader(n).bound(enc.state)
    if eta is not None:
        big_n = tomography_shots(dim, eta)
    else:
        assert shots is not None  # exactly one of eta and shots (checked above)
        big_n = int(shots)
    if big_n < 1:
        raise ValueError(f"shots must be >= 1, got {shots!r}")

    # 1. magnitudes: measure N copies, `repeats` independent experiments in one call
    mag = prep.copy()
    mag.add_register(ClassicalRegister(n, "c"))
    mag.measure(range(n), range(n))
    mag_t = runner.transpile(mag)
    counts = runner.run_circuits([mag_t] * repeats, n, big_n, seed_mag)  # (R, 2^n)
    probs = counts / big_n
    resources = {"magnitudes": circuit_stats(mag_t)}

    sign = np.ones_like(probs)
    sign_counts = np.zeros_like(counts)
    if signs:
        sqrt_p = np.sqrt(probs)
        if x_state is not None:
            # 2. KP sign step as a Hadamard test between |x> (control 0) and |sqrt p> (control 1)
            tmpl = HadamardTestTemplate(n)
            circ = tmpl.preparation.copy()
            circ.add_register(ClassicalRegister(n + 1, "c"))
            circ.measure(range(n + 1), range(n + 1))
            circ_t = runner.transpile(circ)
            values = tmpl.parameters(np.repeat(x_state[None, :], repeats, axis=0), sqrt_p)
            raw = runner.run(circ_t, n + 1, big_n, seed_sign, tmpl.params, values)
            resources["signs"] = circuit_stats(circ_t)
        else:
            circs = [runner.transpile(_sign_circuit_from_unitary(prep, sp)) for sp in sqrt_p]
            raw = runner.run_circuits(circs, n + 1, big_n, seed_sign)
            resources["signs"] = circuit_stats(circs[0])
        sign_counts = raw[:, 0::2]  # outcomes with control = 0, indexed by i
        sign = kp_signs(sign_counts, counts)  # the emulator's rule (qcnn.quantum.tomography)
    estimate = sign * np.sqrt(probs)

    def cut(a: np.ndarray) -> np.ndarray:
        a = a[:, :dim]
        return a[0] if repeats == 1 else a

    return TomographyResult(
        estimate=cut(estimate),
        probabilities=cut(probs),
        signs=cut(sign),
        counts=cut(counts),
        sign_counts=cut(sign_counts),
        shots=big_n,
        eta=eta,
        resources=resources,
    )
