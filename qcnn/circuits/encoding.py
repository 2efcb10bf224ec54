"""Amplitude encoding: a real vector as the state of ``ceil(log2 d)`` qubits (model §2.1).

The algorithm's QRAM stores a vector ``x`` together with its norm and loads the normalised state
``|x> = sum_i x_i / ||x|| |i>``. Three ways to prepare it, for three uses:

- :func:`state_preparation_gate`: Qiskit's ``StatePreparation``, a unitary *gate* that can be
  controlled (``.control()``), inverted and put inside Grover operators;
- :func:`initialize_circuit`: Qiskit's ``Initialize`` (reset + preparation), which Aer executes
  natively in one step; the cheapest choice where no control is needed (the sampling circuit);
- the *RY tree* (:class:`RyTreeLoader`): the Mottonen construction specialised to real
  amplitudes, a binary tree of uniformly controlled RY rotations built only from ``ry`` and
  ``cx`` gates. Its rotation angles are circuit *parameters*, so one transpiled template serves
  every vector of a given size (bind the angles of :func:`ry_tree_parameters`); that is what
  makes hundreds of inner-product circuits per layer cheap.

Qubit order: Qiskit is little-endian, so amplitude ``i`` of a state on qubits ``q_0..q_{n-1}``
belongs to the basis state with ``q_k = bit k of i``. The RY tree splits on the most significant
qubit first.

Vectors are zero-padded to the next power of two; a vector of length 1 uses one qubit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector, Qubit
from qiskit.circuit.library import StatePreparation

__all__ = [
    "EncodedVector",
    "num_qubits_for",
    "amplitude_encode",
    "normalise_rows",
    "state_preparation_gate",
    "initialize_circuit",
    "ry_tree_level_angles",
    "ry_tree_parameters",
    "append_uniformly_controlled_ry",
    "append_ry_tree",
    "RyTreeLoader",
]


def num_qubits_for(d: int) -> int:
    """Qubits that hold a d-dimensional vector: ``max(1, ceil(log2 d))``."""
    if not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"dimension must be a positive integer, got {d!r}")
    return max(1, math.ceil(math.log2(d)))


@dataclass(frozen=True)
class EncodedVector:
    """A vector as the QRAM holds it: the normalised, zero-padded state and the norm.

    Attributes:
        state: ``(2^num_qubits,)`` float64, unit l2 norm; entries ``dim..`` are 0.
        norm: ``||x||_2`` of the original vector (> 0).
        dim: d, the original length.
        num_qubits: ``max(1, ceil(log2 d))``.
    """

    state: np.ndarray
    norm: float
    dim: int
    num_qubits: int


def _as_real_vector(x: np.ndarray | Sequence[float], name: str = "x") -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real (the QCNN loads real patches and kernels)")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def amplitude_encode(
    x: np.ndarray | Sequence[float], num_qubits: int | None = None
) -> EncodedVector:
    """Normalise and zero-pad ``x`` (length d) to a state of ``num_qubits`` qubits.

    Args:
        x: real vector ``(d,)``.
        num_qubits: register size; default :func:`num_qubits_for` ``(d)``. Larger registers pad
            with more zeros (used to load two vectors of different length on one register).

    Raises:
        ValueError: ``x`` is the zero vector (it has no quantum state; the algorithm gives 0 for
            its inner products without running a circuit), not 1-D, empty, complex or not finite,
            or does not fit in ``num_qubits`` qubits.
    """
    arr = _as_real_vector(x)
    d = arr.size
    n = num_qubits_for(d) if num_qubits is None else int(num_qubits)
    if n < 1 or (1 << n) < d:
        raise ValueError(f"a vector of length {d} does not fit in {num_qubits} qubits")
    unit, norm = _unit_and_norm(arr[None, :])
    if norm[0] == 0.0:
        raise ValueError(
            "cannot amplitude-encode the zero vector: it has no normalised state "
            "(its inner products are exactly 0 and need no circuit)"
        )
    state = np.zeros(1 << n)
    state[:d] = unit[0]
    return EncodedVector(state=state, norm=float(norm[0]), dim=d, num_qubits=n)


def _unit_and_norm(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` ``(B, d)`` scaled to unit norm, and their norms ``(B,)``, by scale.

    Each row is first divided by its largest magnitude, so that ``sum x^2`` neither underflows
    (a row of 1e-200 would otherwise have norm 0 and be taken for the zero vector) nor
    overflows; only a row that is exactly zero gets norm 0 (and a zero "state").
    """
    scale = np.max(np.abs(x), axis=1)
    live = scale > 0
    unit = np.zeros_like(x)
    np.divide(x, scale[:, None], out=unit, where=live[:, None])
    rel = np.linalg.norm(unit, axis=1)
    np.divide(unit, rel[:, None], out=unit, where=live[:, None])
    return unit, scale * rel


def normalise_rows(x: np.ndarray, num_qubits: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise :func:`amplitude_encode` that tolerates zero rows (for batches).

    ``x`` ``(B, d)`` -> ``(states (B, 2^n), norms (B,))``; a zero row gets norm 0 and a zero
    "state" (callers must skip it: it is not a quantum state). Tiny and huge rows are normalised
    by scale, so only exactly-zero rows are zero.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"expected a (B, d) matrix with d >= 1, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("input contains NaN or infinity")
    b, d = x.shape
    n = num_qubits_for(d) if num_qubits is None else int(num_qubits)
    if (1 << n) < d:
        raise ValueError(f"vectors of length {d} do not fit in {n} qubits")
    states = np.zeros((b, 1 << n))
    states[:, :d], norms = _unit_and_norm(x)
    return states, norms


def state_preparation_gate(
    x: np.ndarray | Sequence[float], num_qubits: int | None = None
) -> tuple[StatePreparation, float]:
    """``(gate, ||x||)``: a controllable ``StatePreparation`` gate with ``gate|0> = |x>``."""
    enc = amplitude_encode(x, num_qubits)
    return StatePreparation(enc.state, label="load"), enc.norm


def initialize_circuit(
    x: np.ndarray | Sequence[float], num_qubits: int | None = None, *, measure: bool = False
) -> tuple[QuantumCircuit, float]:
    """``(circuit, ||x||)``: ``Initialize`` (Aer-native, not controllable) of ``|x>``.

    With ``measure=True`` every qubit is measured into a classical register ``'c'`` (bit k =
    qubit k, so the counts' bitstrings read as the basis index).
    """
    enc = amplitude_encode(x, num_qubits)
    qc = QuantumCircuit(enc.num_qubits, enc.num_qubits if measure else 0, name="init")
    qc.initialize(enc.state, range(enc.num_qubits))
    if measure:
        qc.measure(range(enc.num_qubits), range(enc.num_qubits))
    return qc, enc.norm


# ---------------------------------------------------------------------------------------------
# RY tree (real amplitudes): level l rotates tree qubit l conditioned on the l qubits above it.


def ry_tree_level_angles(states: np.ndarray) -> list[np.ndarray]:
    """RY angles of the binary tree that prepares each row of ``states``.

    Args:
        states: ``(B, 2^L)`` real rows of unit norm (zero rows give zero angles).

    Returns:
        ``L`` arrays; level l has shape ``(B, 2^l)``, indexed by the prefix (the values of the l
        most significant bits, most significant first). At a node with children of weights
        ``w0`` (bit 0) and ``w1`` (bit 1) the angle is ``2 atan2(w1, w0)``: the norms of the two
        halves on the inner levels, the *signed* amplitudes on the last level, so that
        ``RY(theta)|0> = cos(theta/2)|0> + sin(theta/2)|1>`` reproduces negative amplitudes too.
    """
    states = np.asarray(states, dtype=np.float64)
    b, size = states.shape
    levels = size.bit_length() - 1
    if size != 1 << levels or levels < 1:
        raise ValueError(f"state length must be a power of two >= 2, got {size}")
    out = []
    for level in range(levels):
        blocks = states.reshape(b, 1 << level, 2, size >> (level + 1))  # (row, prefix, bit, rest)
        if level < levels - 1:
            w0 = np.linalg.norm(blocks[:, :, 0, :], axis=-1)
            w1 = np.linalg.norm(blocks[:, :, 1, :], axis=-1)
        else:
            w0, w1 = blocks[:, :, 0, 0], blocks[:, :, 1, 0]
        out.append(2.0 * np.arctan2(w1, w0))
    return out


def _gray(i: int) -> int:
    return i ^ (i >> 1)


@lru_cache(maxsize=32)
def _multiplexor_matrix(k: int) -> np.ndarray:
    """``(2^k, 2^k)``: angle of the i-th RY of a k-control multiplexor from the node angles.

    Mottonen et al. (2004): ``theta'_i = 2^-k sum_j (-1)^(j . g_i) alpha_j`` with ``g_i`` the
    i-th Gray code word; the CNOT after rotation i is controlled by the bit where ``g_i`` and
    ``g_{i+1}`` differ.
    """
    n = 1 << k
    j = np.arange(n)
    g = np.array([_gray(i) for i in range(n)])
    parity = np.array([[bin(x).count("1") & 1 for x in row] for row in (g[:, None] & j[None, :])])
    return (1.0 - 2.0 * parity) / n


def append_uniformly_controlled_ry(
    qc: QuantumCircuit,
    angles: Sequence[float | Parameter],
    controls: Sequence[Qubit | int],
    target: Qubit | int,
) -> None:
    """Append a multiplexed RY: ``RY(alpha_j)`` on ``target`` when ``controls`` read j.

    ``controls[b]`` is bit b of j (little-endian). ``angles`` are the *already transformed*
    rotation angles (``_multiplexor_matrix(k) @ alpha``); with k controls this is ``2^k`` RY and
    ``2^k`` CNOT gates (none for k = 0).
    """
    k = len(controls)
    n = 1 << k
    if len(angles) != n:
        raise ValueError(f"{k} controls need {n} angles, got {len(angles)}")
    for i in range(n):
        qc.ry(angles[i], target)
        if k:
            changed = _gray(i) ^ _gray((i + 1) % n)
            qc.cx(controls[changed.bit_length() - 1], target)


def ry_tree_parameters(states: np.ndarray, skip_levels: int = 0) -> np.ndarray:
    """Bound values for :class:`RyTreeLoader` parameters: ``(B, 2^L) -> (B, 2^L - 2^skip)``.

    ``skip_levels`` leaves out the top levels (the Hadamard test replaces the root by H).
    """
    levels = ry_tree_level_angles(states)
    parts = [levels[lv] @ _multiplexor_matrix(lv).T for lv in range(skip_levels, len(levels))]
    return np.concatenate(parts, axis=1)


def append_ry_tree(
    qc: QuantumCircuit,
    angles: Sequence[float | Parameter],
    tree_qubits: Sequence[Qubit | int],
    skip_levels: int = 0,
) -> None:
    """Append the RY tree on ``tree_qubits`` (most significant first) with transformed angles
    ``angles`` (the output of :func:`ry_tree_parameters` with the same ``skip_levels``).

    Level l rotates ``tree_qubits[l]`` with a multiplexor controlled by ``tree_qubits[:l]``;
    levels ``< skip_levels`` are left to the caller (their qubits must already be prepared).
    """
    offset = 0
    for level in range(skip_levels, len(tree_qubits)):
        width = 1 << level
        # prefix bit b (little-endian) is the tree qubit processed b levels above this one
        controls = list(reversed(tree_qubits[:level]))
        append_uniformly_controlled_ry(
            qc, angles[offset : offset + width], controls, tree_qubits[level]
        )
        offset += width
    if offset != len(angles):
        raise ValueError(f"the tree takes {offset} angles, got {len(angles)}")


class RyTreeLoader:
    """Parameterised RY-tree preparation of a real state on ``num_qubits`` qubits.

    ``circuit`` (``ry`` + ``cx`` only, ``2^n - 1`` RY and ``2^n - 2`` CNOT) maps ``|0>`` to the
    state whose angles are bound; ``parameters(states)`` gives the values, ``(B, 2^n)`` ->
    ``(B, 2^n - 1)`` in the order of ``circuit.parameters``' vector ``self.params``.
    """

    def __init__(self, num_qubits: int, name: str = "ry_tree") -> None:
        if num_qubits < 1:
            raise ValueError(f"num_qubits must be >= 1, got {num_qubits}")
        self.num_qubits = num_qubits
        self.params = ParameterVector("theta", (1 << num_qubits) - 1)
        qc = QuantumCircuit(num_qubits, name=name)
        append_ry_tree(qc, self.params, list(range(num_qubits - 1, -1, -1)))
        self.circuit = qc

    def parameters(self, states: np.ndarray) -> np.ndarray:
        states = np.atleast_2d(np.asarray(states, dtype=np.float64))
        if states.shape[1] != 1 << self.num_qubits:
            raise ValueError(
                f"states must have 2^{self.num_qubits} = {1 << self.num_qubits} entries, "
                f"got {states.shape[1]}"
            )
        return ry_tree_parameters(states)

    def bound(self, x: np.ndarray | Sequence[float]) -> tuple[QuantumCircuit, float]:
        """``(circuit with the angles of x bound, ||x||)``."""
        enc = amplitude_encode(x, self.num_qubits)
        values = self.parameters(enc.state[None, :])[0]
        return self.circuit.assign_parameters(dict(zip(self.params, values, strict=True))), enc.norm
