"""Inner-product estimation (IPE) as circuits: the Hadamard test and amplitude estimation.

The Hadamard test (model §2.2) on a control qubit and an n-qubit data register::

    control: |0> -H- o(load A_p) - @(load F_q) -H- (measure)
    data:    |0> ----[ |A_p> ]------[ |F_q> ]-----

leaves the control in ``|1>`` with probability ``a = (1 - <A_p|F_q>) / 2`` (normalised real
vectors). Amplitude estimation (AE) estimates ``a`` from the Grover operator
``Q = -A S_0 A^dagger S_chi`` of the state preparation ``A`` (the Hadamard-test circuit without
measurement) and the good state "control = 1", by phase estimation with m evaluation qubits:
outcome ``y`` -> ``a_hat = sin^2(pi y / 2^m)``, median of k runs. The emulator's
:func:`qcnn.quantum.ae_law.ae_outcome_probabilities` is the exact distribution of ``y``; the tests
compare the two.

Circuit layout (qubit 0 is the least significant bit of an outcome):

- Hadamard test ``A``: qubit 0 = control, qubits ``1..n`` = data (data qubit k = qubit 1 + k).
- AE: qubits ``0..m-1`` = evaluation register (its value is y), then ``A``'s qubits.

Two loaders implement "load ``A_p`` when control = 0, ``F_q`` when control = 1":

- ``'ry_tree'`` (default): the joint RY tree of :mod:`qcnn.circuits.encoding` with the control
  as the top node; its first level is the H on the control, and every lower level is a
  multiplexed RY that the control selects between the two vectors. Only ``ry``/``cx`` gates
  (``2^(n+1) - 2`` CNOTs), and its angles are parameters: one transpiled template runs every
  (patch, kernel) pair.
- ``'state_preparation'``: Qiskit's ``StatePreparation`` gates, controlled on the control qubit
  (``ctrl_state=0`` and ``1``); literal, but several times more two-qubit gates.

Controlled powers of Q: only the two reflections of ``Q`` need the control (if they are skipped,
``A A^dagger = I``), so the controlled Grover operator is itself built with
:func:`qiskit.circuit.library.grover_operator`, from a controlled oracle and a controlled zero
reflection on the (evaluation qubit + ``A``) register; the tests check it equals
``grover_operator(...).control(1)`` as an operator. ``Q^(2^j)`` is ``2^j`` repetitions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile
from qiskit.circuit import ParameterVector
from qiskit.circuit.library import MCXGate, QFTGate, grover_operator
from qiskit.providers import BackendV2

from qcnn.checks import check_int
from qcnn.circuits.backend import (
    CircuitRunner,
    CircuitStats,
    SeedLike,
    circuit_stats,
)
from qcnn.circuits.encoding import (
    amplitude_encode,
    append_ry_tree,
    num_qubits_for,
    ry_tree_parameters,
    state_preparation_gate,
)
from qcnn.quantum.ipe import hadamard_test_probability

__all__ = [
    "Method",
    "DEFAULT_AE_BITS",
    "DEFAULT_SHOTS",
    "HadamardTestTemplate",
    "hadamard_test_circuit",
    "plain_grover_operator",
    "controlled_grover_operator",
    "amplitude_estimation_circuit",
    "ae_grid",
    "ae_estimates_from_counts",
    "decomposed_stats",
    "InnerProductEstimator",
    "InnerProductResult",
    "estimate_inner_product",
]

Method = Literal["hadamard", "amplitude_estimation"]
METHODS = ("hadamard", "amplitude_estimation")
LOADERS = ("ry_tree", "state_preparation")
MAX_AE_BITS = 16  # 2^16 grid points and 2^16 - 1 Grover operators: beyond that no simulator
DEFAULT_AE_BITS = 4
DEFAULT_SHOTS = 1024
# Basis used to report hardware-like resources (every gate as CNOT + single-qubit rotations).
RESOURCE_BASIS = ("cx", "u")


# ---------------------------------------------------------------------------------------------
# The Hadamard test


class HadamardTestTemplate:
    """The Hadamard-test state preparation ``A`` with the RY-tree loader, as a template.

    ``preparation`` acts on ``1 + n`` qubits (qubit 0 = control) and has parameters
    ``params`` (``2^(n+1) - 2`` angles); :meth:`parameters` gives their values for pairs of
    normalised, padded vectors.
    """

    def __init__(self, num_data_qubits: int) -> None:
        if num_data_qubits < 1:
            raise ValueError(f"num_data_qubits must be >= 1, got {num_data_qubits}")
        n = num_data_qubits
        self.num_data_qubits = n
        self.params = ParameterVector("phi", (1 << (n + 1)) - 2)
        qc = QuantumCircuit(QuantumRegister(1, "ctrl"), QuantumRegister(n, "data"), name="A")
        qc.h(0)  # control in |+>: the root of the tree, both halves weigh 1/2
        # Tree order (most significant first): control, then data qubits from the top.
        append_ry_tree(qc, self.params, [0, *range(n, 0, -1)], skip_levels=1)
        qc.h(0)
        self.preparation = qc

    def parameters(self, a_states: np.ndarray, b_states: np.ndarray) -> np.ndarray:
        """``(B, 2^n)`` normalised rows of each side -> ``(B, 2^(n+1) - 2)`` angle values.

        The joint state ``(|0>|a> + |1>|b>) / sqrt2`` has, in tree order (control most
        significant), the amplitudes ``concat(a, b) / sqrt2``.
        """
        a_states, b_states = np.atleast_2d(a_states), np.atleast_2d(b_states)
        size = 1 << self.num_data_qubits
        if a_states.shape != b_states.shape or a_states.shape[1] != size:
            raise ValueError(
                f"both sides must be (B, {size}), got {a_states.shape} and {b_states.shape}"
            )
        joint = np.concatenate([a_states, b_states], axis=1) / math.sqrt(2.0)
        return ry_tree_parameters(joint, skip_levels=1)

    def bound(self, a_state: np.ndarray, b_state: np.ndarray) -> QuantumCircuit:
        values = self.parameters(a_state[None, :], b_state[None, :])[0]
        return self.preparation.assign_parameters(dict(zip(self.params, values, strict=True)))


def _check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _check_ae_bits(ae_bits: Any) -> int:
    return check_int(ae_bits, "ae_bits", min=1, max=MAX_AE_BITS)


def _check_median_of(median_of: Any) -> int:
    # the median of an even number of runs is not one of the outcomes: refused, not rounded
    return check_int(median_of, "median_of", min=1, odd=True)


def _pair_states(
    a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]
) -> tuple[np.ndarray, np.ndarray, float, float, int]:
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(
            f"a and b must be 1-D vectors of equal length, got {a_arr.shape} and {b_arr.shape}"
        )
    n = num_qubits_for(a_arr.size)
    ea, eb = amplitude_encode(a_arr, n), amplitude_encode(b_arr, n)
    return ea.state, eb.state, ea.norm, eb.norm, n


def hadamard_test_circuit(
    a: np.ndarray | Sequence[float],
    b: np.ndarray | Sequence[float],
    *,
    loader: Literal["ry_tree", "state_preparation"] = "ry_tree",
    measure: bool = True,
) -> tuple[QuantumCircuit, float, float]:
    """The Hadamard test of ``<a|b>``: ``(circuit, ||a||, ||b||)``.

    ``P(control = 1) = (1 - <a, b> / (||a|| ||b||)) / 2``. With ``measure=True`` the control is
    measured into classical bit 0; without, the circuit is the state preparation ``A`` of AE.

    Raises:
        ValueError: different lengths, or a zero vector (see :func:`amplitude_encode`).
    """
    _check_choice(loader, "loader", LOADERS)
    a_state, b_state, na, nb, n = _pair_states(a, b)
    if loader == "ry_tree":
        qc = HadamardTestTemplate(n).bound(a_state, b_state)
    elif loader == "state_preparation":
        qc = QuantumCircuit(QuantumRegister(1, "ctrl"), QuantumRegister(n, "data"), name="A")
        qc.h(0)
        qc.append(state_preparation_gate(a_state, n)[0].control(1, ctrl_state=0), range(n + 1))
        qc.append(state_preparation_gate(b_state, n)[0].control(1, ctrl_state=1), range(n + 1))
        qc.h(0)
    else:
        raise ValueError(f"loader must be 'ry_tree' or 'state_preparation', got {loader!r}")
    if measure:
        qc.add_register(ClassicalRegister(1, "c"))
        qc.measure(0, 0)
    return qc, na, nb


# ---------------------------------------------------------------------------------------------
# Amplitude estimation


def plain_grover_operator(preparation: QuantumCircuit, good_qubit: int = 0) -> QuantumCircuit:
    """``Q = -A S_0 A^dagger S_chi`` with the good states "``good_qubit`` = 1" (Qiskit's
    :func:`~qiskit.circuit.library.grover_operator` with a Z oracle)."""
    oracle = QuantumCircuit(preparation.num_qubits)
    oracle.z(good_qubit)
    return grover_operator(oracle, state_preparation=preparation)


def controlled_grover_operator(preparation: QuantumCircuit, good_qubit: int = 0) -> QuantumCircuit:
    """``|0><0| (x) I + |1><1| (x) Q`` on ``1 + k`` qubits (qubit 0 = the control).

    Built with :func:`~qiskit.circuit.library.grover_operator` on the extended register:
    oracle = ``CZ(control, good)`` followed by ``-1`` on control = 0 (``X Z X``), zero reflection
    about ``|0...0>`` of ``A``'s qubits controlled by the control qubit, state preparation = ``A``
    on ``A``'s qubits (uncontrolled: with the reflections off, ``A A^dagger = I``). The control
    = 0 branch then is ``-(A A^dagger)(-I) = I``, the control = 1 branch is ``Q`` with its
    global phase -1.
    """
    k = preparation.num_qubits
    targets = list(range(1, k + 1))
    oracle = QuantumCircuit(k + 1)
    oracle.cz(0, 1 + good_qubit)
    oracle.x(0)
    oracle.z(0)
    oracle.x(0)
    zero_reflection = QuantumCircuit(k + 1)
    zero_reflection.x(targets)
    zero_reflection.h(targets[-1])
    zero_reflection.append(MCXGate(k), [0, *targets])  # k controls: the control + k - 1 of A's
    zero_reflection.h(targets[-1])
    zero_reflection.x(targets)
    prep = QuantumCircuit(k + 1)
    prep.compose(preparation, targets, inplace=True)
    return grover_operator(
        oracle,
        state_preparation=prep,
        zero_reflection=zero_reflection,
        reflection_qubits=targets,
        name="cQ",
    )


def amplitude_estimation_circuit(
    preparation: QuantumCircuit, ae_bits: int, good_qubit: int = 0, *, measure: bool = True
) -> QuantumCircuit:
    """Canonical AE of ``a = P(good_qubit = 1)`` after ``preparation``.

    Qubits ``0..m-1``: evaluation register; then ``preparation``'s qubits. H on the evaluation
    qubits, evaluation qubit j controls ``Q^(2^j)``, inverse QFT (without the final swap
    network: Qiskit's ``QFTGate`` ordering already leaves y with bit j on qubit j). With
    ``measure=True`` the register is measured into ``'y'`` (bit j = qubit j).
    """
    m = _check_ae_bits(ae_bits)
    ev = QuantumRegister(m, "eval")
    st = QuantumRegister(preparation.num_qubits, "state")
    qc = QuantumCircuit(ev, st, name=f"AE{m}")
    qc.compose(preparation, st, inplace=True)
    qc.h(ev)
    cq = controlled_grover_operator(preparation, good_qubit)
    for j in range(m):
        for _ in range(1 << j):
            qc.compose(cq, [ev[j], *st], inplace=True)
    qc.append(QFTGate(m).inverse(), ev)
    if measure:
        cr = ClassicalRegister(m, "y")
        qc.add_register(cr)
        qc.measure(ev, cr)
    return qc


def ae_grid(ae_bits: int) -> np.ndarray:
    """``a_hat(y) = sin^2(pi y / 2^m)`` for ``y = 0..2^m - 1``."""
    big_m = 1 << ae_bits
    return np.sin(np.pi * np.arange(big_m) / big_m) ** 2


def ae_estimates_from_counts(counts: np.ndarray, ae_bits: int) -> np.ndarray:
    """Median of ``a_hat`` over each row's outcomes: counts ``(B, 2^m)`` -> ``(B,)``.

    Rows hold k outcomes each (k = the row sum, the same for all rows); for even k the lower
    median is taken (the layer uses odd k).
    """
    grid = ae_grid(ae_bits)
    order = np.argsort(grid, kind="stable")
    cum = np.cumsum(counts[:, order], axis=1)
    k = cum[:, -1]
    # first sorted outcome whose cumulative count passes half of the runs
    idx = (cum <= ((k - 1) // 2)[:, None]).sum(axis=1)
    return grid[order][idx]


# ---------------------------------------------------------------------------------------------
# Batched estimation on one backend (used by the layer)


@lru_cache(maxsize=64)
def _logical_ipe_circuits(
    n: int, method: str, ae_bits: int | None
) -> tuple[HadamardTestTemplate, QuantumCircuit, QuantumCircuit, int]:
    """``(template, measured circuit, unmeasured circuit, measured bits)``, cached per shape."""
    tmpl = HadamardTestTemplate(n)
    if method == "hadamard":
        unmeasured = tmpl.preparation
        measured = unmeasured.copy()
        measured.add_register(ClassicalRegister(1, "c"))
        measured.measure(0, 0)
        return tmpl, measured, unmeasured, 1
    assert ae_bits is not None  # amplitude estimation always has its m
    unmeasured = amplitude_estimation_circuit(tmpl.preparation, ae_bits, 0, measure=False)
    measured = amplitude_estimation_circuit(tmpl.preparation, ae_bits, 0, measure=True)
    return tmpl, measured, unmeasured, ae_bits


class InnerProductEstimator:
    """Estimates many inner products with one transpiled IPE template on one backend.

    Args:
        dim: length d of the vectors (patch size), padded to ``n = ceil(log2 d)`` qubits.
        method: ``'amplitude_estimation'`` or ``'hadamard'``.
        ae_bits: m for AE (default :data:`DEFAULT_AE_BITS`).
        runner: a :class:`CircuitRunner` (or pass ``backend``).
        backend: a ``BackendV2`` for a new runner (default ``AerSimulator()``).
    """

    def __init__(
        self,
        dim: int,
        method: Method = "amplitude_estimation",
        ae_bits: int | None = None,
        *,
        runner: CircuitRunner | None = None,
        backend: BackendV2 | None = None,
    ) -> None:
        _check_choice(method, "method", METHODS)
        self.dim = check_int(dim, "dim", min=1)
        self.num_data_qubits = num_qubits_for(self.dim)
        self.method = method
        self.ae_bits: int | None = None
        if method == "amplitude_estimation":
            self.ae_bits = _check_ae_bits(DEFAULT_AE_BITS if ae_bits is None else ae_bits)
        self.runner = runner if runner is not None else CircuitRunner(backend)
        self.template, self.logical, self.unmeasured, self.measured_bits = _logical_ipe_circuits(
            self.num_data_qubits, method, self.ae_bits
        )
        self._transpiled: QuantumCircuit | None = None
        self._decomposed: CircuitStats | None = None

    @property
    def transpiled(self) -> QuantumCircuit:
        """The template transpiled for the runner's backend (built on first use)."""
        if self._transpiled is None:
            self._transpiled = self.runner.transpile(self.logical)
        return self._transpiled

    def outcome_counts(
        self,
        a_states: np.ndarray,
        b_states: np.ndarray,
        shots: int | None,
        seed: SeedLike = None,
    ) -> np.ndarray:
        """Outcome counts ``(B, 2^bits)`` (AE: y; Hadamard: control bit) of each pair of
        normalised, padded rows ``(B, 2^n)``; float probabilities for ``shots=None``."""
        values = self.template.parameters(a_states, b_states)
        circuit = self.unmeasured if shots is None else self.transpiled
        return self.runner.run(
            circuit, self.measured_bits, shots, seed, self.template.params, values
        )

    def estimate_probability(
        self,
        a_states: np.ndarray,
        b_states: np.ndarray,
        *,
        shots: int | None = DEFAULT_SHOTS,
        median_of: int = 1,
        seed: SeedLike = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(a_hat (B,), counts)``: the estimate of ``P(control = 1)`` for each pair.

        Hadamard: ``n_1 / shots`` (exact probability for ``shots=None``). AE: ``median_of``
        runs (shots) per pair, median of ``sin^2(pi y / 2^m)``; ``shots`` is ignored.
        """
        if self.method == "hadamard":
            if shots is not None:
                shots = check_int(shots, "shots", min=1)
            counts = self.outcome_counts(a_states, b_states, shots, seed)
            total = counts.sum(axis=1)
            return counts[:, 1] / total, counts
        median_of = _check_median_of(median_of)
        counts = self.outcome_counts(a_states, b_states, median_of, seed)
        assert self.ae_bits is not None  # set for amplitude estimation
        return ae_estimates_from_counts(counts, self.ae_bits), counts

    def resources(self) -> dict[str, CircuitStats]:
        """``{'native': stats as run (transpiled for the backend), 'cx_u': stats decomposed
        into CNOT + single-qubit gates}`` of one IPE circuit."""
        if self._decomposed is None:
            self._decomposed = decomposed_stats(self.logical)
        return {"native": circuit_stats(self.transpiled), "cx_u": self._decomposed}


def decomposed_stats(qc: QuantumCircuit) -> CircuitStats:
    """Resources of ``qc`` with every gate decomposed into CNOT + ``u`` (hardware-like counts;
    Aer runs multi-controlled gates natively, which hides their cost)."""
    return circuit_stats(transpile(qc, basis_gates=list(RESOURCE_BASIS), optimization_level=0))


# ---------------------------------------------------------------------------------------------
# Single inner product: the public entry point


@dataclass
class InnerProductResult:
    """The estimate of ``<a, b>`` and how it was obtained.

    Attributes:
        estimate: ``||a|| ||b|| (1 - 2 a_hat)``.
        exact: ``<a, b>`` computed classically (for reference).
        a_hat: the estimate of ``a = P(control = 1)``.
        probability: the exact ``a`` (for reference).
        norm_a, norm_b: the norms restored after the normalised estimate.
        method, shots, ae_bits, median_of, loader: settings used (``shots`` = shots per run).
        qubits, depth, two_qubit_gates: size of the circuit as run (transpiled for the backend).
        decomposed: the same circuit's size in CNOT + single-qubit gates.
        counts: outcome counts (``{outcome value: count}``; AE: y, Hadamard: control bit).
    """

    estimate: float
    exact: float
    a_hat: float
    probability: float
    norm_a: float
    norm_b: float
    method: str
    shots: int | None
    ae_bits: int | None
    median_of: int
    loader: str
    qubits: int
    depth: int
    two_qubit_gates: int
    decomposed: CircuitStats | None
    counts: dict[int, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["decomposed"] = None if self.decomposed is None else self.decomposed.__dict__
        return d


def estimate_inner_product(
    a: np.ndarray | Sequence[float],
    b: np.ndarray | Sequence[float],
    *,
    method: Method = "hadamard",
    shots: int | None = None,
    ae_bits: int | None = None,
    median_of: int = 1,
    backend: BackendV2 | None = None,
    seed: SeedLike = None,
    loader: Literal["ry_tree", "state_preparation"] = "ry_tree",
    decompose: bool = True,
) -> InnerProductResult:
    """Estimate ``<a, b>`` of two real vectors with a circuit.

    Args:
        a, b: real vectors ``(d,)`` of equal length, not zero.
        method: ``'hadamard'`` (``a_hat = n_1 / shots``) or ``'amplitude_estimation'``
            (``a_hat = sin^2(pi y / 2^m)``, median of ``median_of`` runs).
        shots: Hadamard test: shots (default 1024). AE: must be None or ``median_of`` (each
            run of AE is one shot).
        ae_bits: m, evaluation qubits of AE, 1..16 (default 4); only for AE.
        median_of: k, AE runs whose median is taken (odd); only for AE.
        backend: a ``BackendV2`` (default ``AerSimulator()``).
        seed: int, ``SeedSequence`` or ``Generator`` for the simulator seed.
        loader: ``'ry_tree'`` (default) or ``'state_preparation'`` (controlled StatePreparation).
        decompose: also report the CNOT + ``u`` decomposition's size (``decomposed``).

    Returns:
        :class:`InnerProductResult` with ``estimate = ||a|| ||b|| (1 - 2 a_hat)``; its
        ``method``, ``shots``, ``ae_bits``, ``median_of`` and ``loader`` are the settings that
        ran (defaults resolved).

    Raises:
        ValueError: an unknown method or loader, ``ae_bits`` outside 1..16, an even or
            non-positive ``median_of``, non-positive ``shots``, an option that the method does
            not use (``ae_bits`` / ``median_of`` with the Hadamard test), or bad vectors.
    """
    _check_choice(method, "method", METHODS)
    _check_choice(loader, "loader", LOADERS)
    median_of = _check_median_of(median_of)
    if method == "hadamard":
        if ae_bits is not None or median_of != 1:
            raise ValueError(
                "ae_bits and median_of are settings of amplitude estimation; the Hadamard test "
                f"uses shots (got ae_bits={ae_bits!r}, median_of={median_of!r})"
            )
        m = None
        shots = DEFAULT_SHOTS if shots is None else check_int(shots, "shots", min=1)
        bits = 1
    else:
        m = _check_ae_bits(DEFAULT_AE_BITS if ae_bits is None else ae_bits)
        if shots is not None and shots != median_of:
            raise ValueError(
                "amplitude estimation runs once per shot: pass median_of (k runs) instead of "
                f"shots (got shots={shots}, median_of={median_of})"
            )
        shots = median_of
        bits = m
    a_state, b_state, na, nb, n = _pair_states(a, b)
    exact = float(np.dot(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)))
    # The cosine from the unit states, not exact / (na nb): that product underflows for tiny
    # vectors and overflows for huge ones.
    prob = float(hadamard_test_probability(np.asarray(np.dot(a_state, b_state))))
    runner = CircuitRunner(backend)

    if loader == "ry_tree":
        est = InnerProductEstimator(a_state.size, method, m, runner=runner)
        a_hat, counts = est.estimate_probability(
            a_state[None, :], b_state[None, :], shots=shots, median_of=median_of, seed=seed
        )
        run_circuit, logical = est.transpiled, est.logical
    else:
        prep, _, _ = hadamard_test_circuit(a, b, loader="state_preparation", measure=False)
        if method == "hadamard":
            logical = prep.copy()
            logical.add_register(ClassicalRegister(1, "c"))
            logical.measure(0, 0)
        else:
            assert m is not None  # amplitude estimation
            logical = amplitude_estimation_circuit(prep, m, 0, measure=True)
        run_circuit = runner.transpile(logical)
        counts = runner.run_circuits([run_circuit], bits, shots, seed)
        if method == "hadamard":
            a_hat = counts[:, 1] / shots
        else:
            assert m is not None  # amplitude estimation
            a_hat = ae_estimates_from_counts(counts, m)
    native = circuit_stats(run_circuit)
    a_hat_f = float(a_hat[0])
    return InnerProductResult(
        estimate=na * nb * (1.0 - 2.0 * a_hat_f),
        exact=exact,
        a_hat=a_hat_f,
        probability=prob,
        norm_a=na,
        norm_b=nb,
        method=method,
        shots=shots,
        ae_bits=m,
        median_of=median_of,
        loader=loader,
        qubits=native.qubits,
        depth=native.depth,
        two_qubit_gates=native.two_qubit_gates,
        decomposed=decomposed_stats(logical) if decompose else None,
        counts={int(i): int(c) for i, c in enumerate(counts[0]) if c},
    )
