"""The quantum convolution layer as one coherent circuit (KLP19 §2, model §2 and §4).

Every patch, kernel and AE outcome is in superposition; the circuit is the algorithm itself,
not one sub-routine per (patch, kernel) pair. Registers, top to bottom (qubit order of the
circuit, the first qubit is the least significant bit of an index):

- ``p`` (``ceil log2 P`` qubits): the patch index, ``p = i W' + j`` (row-major);
- ``q`` (``ceil log2 O`` qubits): the kernel index;
- ``ctrl`` (1): the Hadamard-test control;
- ``data`` (``ceil log2 (C kh kw)`` qubits): the loaded vector;
- ``eval`` (m): the amplitude-estimation register;
- ``flag`` (1): the non-linearity's amplitude.

Steps (docs/circuits.md has the drawing and the gate counts):

1. ``H`` on ``p`` and ``q``. Indices past P or O hold the zero vector and a zero flag
   amplitude: they never reach ``flag = 1``.
2. ``U`` (the Hadamard-test preparation for every (p, q)): ``H`` on ``ctrl``, the loader, ``H``
   on ``ctrl``. The loader is the Mottonen RY tree of :mod:`qcnn.circuits.encoding`, one level
   per data qubit, each level ONE uniformly controlled RY (Qiskit ``UCGate``, Aer's native
   ``multiplexer``) on the level's data qubit, controlled by the data qubits above it, ``p``,
   ``q`` and ``ctrl``: branch ``(prefix, p, q, ctrl=0)`` holds the angle of patch p's tree,
   branch ``(prefix, p, q, ctrl=1)`` the angle of kernel q's tree. After ``U`` the ``ctrl``
   qubit reads 1 with probability ``a_pq = (1 - <A_p|F_q>) / 2``.
3. Canonical AE on ``(ctrl, data)`` for every (p, q) at once: ``H`` on ``eval``, evaluation
   qubit k runs ``Q^(2^k)`` with ``Q = U (2|0><0| - I) U^dagger (I - 2|1><1|_ctrl)``; only the two
   reflections are controlled (``cz`` and an Aer-native ``diagonal``), ``U`` and ``U^dagger``
   are not (they cancel when the reflections are off); then the inverse QFT. The
   ``eval`` register now holds y with the law of :func:`qcnn.quantum.ae_outcome_probabilities`
   for each (p, q).
4. The flag: one ``UCGate`` on ``flag`` controlled by ``(eval, p, q)`` with
   ``RY(2 arcsin sqrt(f(Ybar_pq(y)) / C))``, ``Ybar = ||A_p|| ||F_q|| (1 - 2 sin^2(pi y / M))``
   and ``f(Ybar + b_q)`` the capped ReLU (the theory order: noise, then the cap). The norms stay
   classical: the QRAM holds them (model §2.2), and they enter only these angles.
5. Measuring ``(p, q)`` given ``flag = 1`` draws pixel (q, p) with probability proportional to
   ``E_y[f(Ybar_pq(y))]``. :func:`coherent_law` reads the exact law with Aer's
   ``save_probabilities`` (post-selection); the algorithm pays amplitude amplification instead,
   ``~ (pi/4) sqrt(1 / P(flag = 1))`` rounds (:attr:`CoherentLaw.amplification_rounds`), which
   :func:`amplified_circuit` builds for real.

A median of k AE runs needs k evaluation registers and a coherent median: this builder has
k = 1 (and refuses any other ``ae_median``).

Two Aer traps, avoided here: a ``UCGate`` built with ``mux_simp=True`` drops controls whose
branches repeat and Aer then rejects it ("multiplexer qubits don't match parameters"); and
``UCGate.inverse()`` is a ``multiplexer_dg`` that Aer does not run natively, so inverses are new
multiplexers of the adjoint matrices. Multiplexers are built directly from a ``(K, 2, 2)``
array (:func:`multiplexer`): Qiskit's constructor checks each of up to 2^18 matrices in Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, QuantumRegister
from qiskit.circuit import CircuitInstruction, ControlledGate, Gate
from qiskit.circuit.library import DiagonalGate, UCGate
from qiskit.providers import BackendV2
from qiskit.synthesis import synth_qft_full

from qcnn.circuits.encoding import normalise_rows, num_qubits_for, ry_tree_level_angles

__all__ = [
    "CoherentLayout",
    "CoherentCircuit",
    "CoherentLaw",
    "MUTATIONS",
    "LOADERS",
    "check_coherent_config",
    "multiplexer",
    "build_coherent_circuit",
    "coherent_law",
    "coherent_output_distribution",
    "amplified_circuit",
    "inverse_circuit",
    "statevector_backend",
    "register_diagram",
]

# Deliberate errors the tests inject to show that the exact check catches them.
MUTATIONS = ("loader_angle", "swap_pq", "uncontrolled_power", "paper_order")


# ---------------------------------------------------------------------------------------------
# configuration and input checks


def check_coherent_config(config: Any) -> int:
    """m, the AE bits, of a configuration the coherent circuit implements; ValueError naming
    the field otherwise (the AE model, the theory noise order, ``ae_median = 1``)."""
    from qcnn.quantum import QuantumConfig

    if not isinstance(config, QuantumConfig):
        raise ValueError(f"config must be a QuantumConfig, got {type(config).__name__}")
    if config.ipe != "amplitude_estimation":
        raise ValueError(
            f"QuantumConfig.ipe={config.ipe!r}: the coherent circuit implements the "
            "'amplitude_estimation' model only"
        )
    if config.noise_order != "theory":
        raise ValueError(
            f"QuantumConfig.noise_order={config.noise_order!r}: the coherent circuit applies "
            "the cap after the estimate ('theory')"
        )
    if config.resolved_ae_median != 1:
        field_name = "failure_prob" if config.failure_prob is not None else "ae_median"
        raise ValueError(
            f"QuantumConfig.{field_name}: gives ae_median={config.resolved_ae_median}; the "
            "coherent circuit has one evaluation register (ae_median = 1)"
        )
    m = config.resolved_ae_bits
    if m is None:  # pragma: no cover - QuantumConfig refuses AE without bits or eps
        raise ValueError("QuantumConfig.ae_bits: the AE model needs ae_bits or eps > 0")
    return int(m)


def _check_inputs(x: Any, weight: Any, bias: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x must be one image (C, H, W), got shape {x.shape}")
    if weight.ndim != 4 or weight.shape[1] != x.shape[0]:
        raise ValueError(
            f"weight must be (O, C, kh, kw) with C = {x.shape[0]} channels, got {weight.shape}"
        )
    if weight.shape[2] > x.shape[1] or weight.shape[3] > x.shape[2]:
        raise ValueError(f"kernel {weight.shape[2:]} larger than the image {x.shape[1:]}")
    b = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64)
    if b.shape != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {b.shape}")
    for name, arr in (("x", x), ("weight", weight), ("bias", b)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinity")
    return x, weight, b


# ---------------------------------------------------------------------------------------------
# the layout


@dataclass(frozen=True)
class CoherentLayout:
    """Sizes and qubit positions of the coherent circuit.

    Attributes:
        patches: P = H'W'; kernels: O; out_hw: (H', W'); volume: C kh kw.
        registers: register name -> ``(first qubit, size)`` in the order p, q, ctrl, data,
            eval, flag.
        ae_bits: m; cap: C.
    """

    patches: int
    kernels: int
    out_hw: tuple[int, int]
    volume: int
    ae_bits: int
    cap: float
    registers: dict[str, tuple[int, int]] = field(default_factory=dict)

    @staticmethod
    def make(
        patches: int, kernels: int, out_hw: tuple[int, int], volume: int, m: int, cap: float
    ) -> CoherentLayout:
        sizes = {
            "p": max(1, math.ceil(math.log2(patches))) if patches > 1 else 1,
            "q": max(1, math.ceil(math.log2(kernels))) if kernels > 1 else 1,
            "ctrl": 1,
            "data": num_qubits_for(volume),
            "eval": m,
            "flag": 1,
        }
        regs: dict[str, tuple[int, int]] = {}
        start = 0
        for name, size in sizes.items():
            regs[name] = (start, size)
            start += size
        return CoherentLayout(patches, kernels, out_hw, volume, m, cap, regs)

    def qubits(self, name: str) -> list[int]:
        """The circuit's qubit indices of register ``name`` (least significant first)."""
        start, size = self.registers[name]
        return list(range(start, start + size))

    def size(self, name: str) -> int:
        return self.registers[name][1]

    @property
    def num_qubits(self) -> int:
        return sum(size for _, size in self.registers.values())

    def describe(self) -> str:
        """One line per register: name, qubits, what it holds."""
        what = {
            "p": f"patch index (P = {self.patches})",
            "q": f"kernel index (O = {self.kernels})",
            "ctrl": "Hadamard-test control",
            "data": f"loaded vector (C kh kw = {self.volume})",
            "eval": f"AE evaluation register (M = {1 << self.ae_bits})",
            "flag": f"non-linearity flag (P(1) = f / C, C = {self.cap:g})",
        }
        return "\n".join(
            f"{name:>5}: qubits {start}..{start + size - 1} ({size}) {what[name]}"
            for name, (start, size) in self.registers.items()
        )


# ---------------------------------------------------------------------------------------------
# multiplexers


def _ry_matrices(angles: np.ndarray) -> np.ndarray:
    """``(K, 2, 2)`` complex RY matrices of ``angles`` ``(K,)``."""
    c, s = np.cos(angles / 2.0), np.sin(angles / 2.0)
    mats = np.empty((angles.size, 2, 2), dtype=np.complex128)
    mats[:, 0, 0] = c
    mats[:, 0, 1] = -s
    mats[:, 1, 0] = s
    mats[:, 1, 1] = c
    return mats


def multiplexer(mats: np.ndarray) -> UCGate:
    """A ``UCGate`` (Aer's native ``multiplexer``) applying ``mats[k]`` (``(K, 2, 2)``, unitary,
    K a power of two) to its first qubit when its other qubits read k (least significant first),
    without simplification (``mux_simp=False``). Built directly: Qiskit's constructor checks
    every matrix in Python, which takes seconds for 2^18 branches; here unitarity is checked
    once, vectorised."""
    mats = np.ascontiguousarray(mats, dtype=np.complex128)
    k = mats.shape[0]
    if mats.shape[1:] != (2, 2) or k < 1 or k & (k - 1):
        raise ValueError(f"need (2^c, 2, 2) matrices, got {mats.shape}")
    prod = np.einsum("kji,kjl->kil", mats.conj(), mats)
    if not np.allclose(prod, np.eye(2)[None], atol=1e-10):
        raise ValueError("a multiplexer branch is not unitary")
    gate = UCGate.__new__(UCGate)
    Gate.__init__(gate, "multiplexer", int(k).bit_length(), [])
    gate._params = list(mats)  # the (2, 2) views; UCGate would validate each in Python
    gate.up_to_diagonal = False
    gate.simp_contr = (False, set())
    return gate


def _adjoint(gate: UCGate) -> UCGate:
    """The inverse multiplexer as a new ``UCGate`` of the adjoint matrices (Aer-native)."""
    mats = np.asarray(gate.params)
    return multiplexer(np.conj(np.swapaxes(mats, 1, 2)))


# ---------------------------------------------------------------------------------------------
# the builder


@dataclass
class CoherentCircuit:
    """The circuit, its layout, and the classical numbers its angles come from.

    Attributes:
        circuit: the unitary circuit (no measurement, no save instruction).
        layout: :class:`CoherentLayout`.
        values: ``(O, P, M)``: ``f(Ybar_pq(y) + b_q)``, the flag's target ``C P(flag=1|p,q,y)``.
        loader: the ``U`` sub-circuit on ``(p, q, ctrl, data)`` (for the drawing and counts).
    """

    circuit: QuantumCircuit
    layout: CoherentLayout
    values: np.ndarray
    loader: QuantumCircuit

    def stats(self) -> dict[str, Any]:
        """Qubits, depth and gate counts as built (multiplexers counted as one gate each),
        and the number of multiplexer branches in total."""
        qc = self.circuit
        ops = {k: int(v) for k, v in qc.count_ops().items()}
        branches = sum(
            len(inst.operation.params) for inst in qc.data if inst.operation.name == "multiplexer"
        )
        return {
            "qubits": qc.num_qubits,
            "depth": int(qc.depth()),
            "gates": int(sum(ops.values())),
            "ops": ops,
            "multiplexer_branches": int(branches),
        }

    def cx_count(self) -> int:
        """CNOTs of the circuit decomposed into single-qubit gates and CNOTs, counted from the
        construction (:data:`_CX_PER_GATE`: Mottonen multiplexers, Bullock-Markov diagonals)."""
        return int(sum(_cx_of(inst.operation.name, len(inst.qubits)) for inst in self.circuit.data))


# CNOTs of each gate when decomposed, as the construction gives them: a uniformly controlled RY
# with k controls is Mottonen's 2^k RY + 2^k CNOT (k >= 1; the RY tree of
# qcnn.circuits.encoding); a diagonal on n qubits 2^n - 2 CNOTs (Bullock-Markov, what Qiskit's
# DiagonalGate synthesis gives); cz 1, controlled phase 2, swap 3.
_CX_PER_GATE = {"cz": 1, "cp": 2, "swap": 3}


def _cx_of(name: str, num_qubits: int) -> int:
    if name == "multiplexer":
        return 1 << (num_qubits - 1) if num_qubits > 1 else 0
    if name == "diagonal":
        return (1 << num_qubits) - 2 if num_qubits > 1 else 0
    return _CX_PER_GATE.get(name, 0)


def _patches(x: np.ndarray, kh: int, kw: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``(P, C kh kw)`` patches in row-major output order (flattened as ``weight[q]``)."""
    c, h, w = x.shape
    ho, wo = h - kh + 1, w - kw + 1
    out = np.empty((ho, wo, c, kh, kw))
    for i in range(kh):
        for j in range(kw):
            out[:, :, :, i, j] = x[:, i : i + ho, j : j + wo].transpose(1, 2, 0)
    return out.reshape(ho * wo, c * kh * kw), (ho, wo)


LOADERS = ("joint", "split")


def _loader_levels(
    a_states: np.ndarray,
    f_states: np.ndarray,
    layout: CoherentLayout,
    loader: str,
    mutation: str | None,
) -> list[tuple[int, str, np.ndarray]]:
    """The loader's multiplexers in order: ``(level l, index register(s), RY angles)``.

    ``'joint'``: one multiplexer per level over ``(prefix, p, q, ctrl)``, angles
    ``(2^(l + np + nq + 1),)`` at index ``prefix + 2^l (p + 2^np (q + 2^nq ctrl))``.
    ``'split'``: two per level, the patch tree over ``(prefix, p, ctrl)`` (identity when
    ctrl = 1) and the kernel tree over ``(prefix, q, ctrl)`` (identity when ctrl = 0): twice
    the gates, ``2^nq`` (resp. ``2^np``) times fewer branches each."""
    a_levels = ry_tree_level_angles(a_states)  # level l: (2^np, 2^l)
    f_levels = ry_tree_level_angles(f_states)  # level l: (2^nq, 2^l)
    n_p, n_q = 1 << layout.size("p"), 1 << layout.size("q")
    wrong = min(1, len(a_levels) - 1)  # the level the 'loader_angle' mutation spoils
    out: list[tuple[int, str, np.ndarray]] = []
    for lv, (a_ang, f_ang) in enumerate(zip(a_levels, f_levels, strict=True)):
        width = 1 << lv
        a_ang = a_ang + (0.1 if mutation == "loader_angle" and lv == wrong else 0.0)
        if loader == "joint":
            ang = np.empty((2, n_q, n_p, width))
            ang[0] = a_ang[None, :, :]
            ang[1] = f_ang[:, None, :]
            out.append((lv, "pq", ang.ravel()))
        else:
            ang_a = np.zeros((2, n_p, width))
            ang_a[0] = a_ang
            ang_f = np.zeros((2, n_q, width))
            ang_f[1] = f_ang
            out += [(lv, "p", ang_a.ravel()), (lv, "q", ang_f.ravel())]
    return out


def _loader(layout: CoherentLayout, levels: list[tuple[int, str, np.ndarray]]):
    """``(U, U^dagger)`` as circuits on all the layout's qubits."""
    n = layout.num_qubits
    data, ctrl = layout.qubits("data"), layout.qubits("ctrl")
    nd = len(data)
    u = QuantumCircuit(n, name="U")
    u_dg = QuantumCircuit(n, name="U_dg")
    u.h(ctrl)
    placed = []
    for lv, regs, ang in levels:
        index = [q for r in regs for q in layout.qubits(r)]
        target = data[nd - 1 - lv]
        prefix = data[nd - lv :]  # the data qubits above, least significant first
        placed.append((multiplexer(_ry_matrices(ang)), [target, *prefix, *index, *ctrl]))
        u.append(*placed[-1])
    u.h(ctrl)
    u_dg.h(ctrl)
    for gate, wires in reversed(placed):
        u_dg.append(_adjoint(gate), wires)
    u_dg.h(ctrl)
    return u, u_dg


def _extend(qc: QuantumCircuit, sub: QuantumCircuit) -> None:
    """Append ``sub``'s instructions (on the same qubit indices) without copying them:
    ``compose`` deep-copies every multiplexer's matrices, seconds for a large layer."""
    qubits = qc.qubits
    for inst in sub.data:
        qc._append(
            CircuitInstruction(inst.operation, [qubits[sub.find_bit(q).index] for q in inst.qubits])
        )


def _zero_reflection_diag(width: int) -> np.ndarray:
    """Diagonal of "if the control (bit 0) is 1: ``2|0><0| - I`` on the other ``width - 1``
    qubits", on ``width`` qubits."""
    d = np.ones(1 << width, dtype=np.complex128)
    idx = np.arange(1 << width)
    d[(idx & 1 == 1) & (idx >> 1 != 0)] = -1.0
    return d


def _flag_values(
    patches: np.ndarray,
    weight2d: np.ndarray,
    bias: np.ndarray,
    m: int,
    cap: float,
    mutation: str | None,
) -> np.ndarray:
    """``(O, P, M)``: ``f(Ybar_pq(y) + b_q)``, ``Ybar = ||A_p|| ||F_q|| (1 - 2 sin^2(pi y/M))``."""
    big_m = 1 << m
    scale = np.linalg.norm(weight2d, axis=1)[:, None] * np.linalg.norm(patches, axis=1)[None, :]
    a_hat = np.sin(np.pi * np.arange(big_m) / big_m) ** 2
    z = scale[:, :, None] * (1.0 - 2.0 * a_hat)[None, None, :] + bias[:, None, None]
    if mutation == "paper_order":  # clamp(f(Y) + e, 0, C): the estimate shifted by clip(Y) - Y
        y = weight2d @ patches.T + bias[:, None]
        z = z + (np.clip(y, 0.0, cap) - y)[:, :, None]
    return np.clip(z, 0.0, cap)


def build_coherent_circuit(
    x: Any,
    weight: Any,
    bias: Any,
    config: Any,
    *,
    loader: str = "split",
    mutation: str | None = None,
) -> CoherentCircuit:
    """The coherent circuit of one image's convolution layer (stride 1, no padding).

    Args:
        x: ``(C, H, W)`` image; weight: ``(O, C, kh, kw)``; bias: ``(O,)`` or None.
        config: a ``QuantumConfig`` of the AE model, theory order, ``ae_median = 1``
            (:func:`check_coherent_config`); its ``cap`` is C.
        loader: ``'split'`` (default: per tree level, the patch tree's multiplexer over
            ``(prefix, p, ctrl)`` and the kernel tree's over ``(prefix, q, ctrl)``) or ``'joint'``
            (one multiplexer per level over ``(prefix, p, q, ctrl)``: half the gates, ``2^nq``
            times the branches; 3.6x the CNOTs at 8x8, 7.6x at 28x28, 5x the memory there).
        mutation: a deliberate error from :data:`MUTATIONS` (for the tests only).
    """
    m = check_coherent_config(config)
    if loader not in LOADERS:
        raise ValueError(f"loader must be one of {LOADERS}, got {loader!r}")
    if mutation is not None and mutation not in MUTATIONS:
        raise ValueError(f"mutation must be one of {MUTATIONS}, got {mutation!r}")
    x, weight, b = _check_inputs(x, weight, bias)
    cap = float(config.cap)
    o, _, kh, kw = weight.shape
    patches, out_hw = _patches(x, kh, kw)
    n_patch = patches.shape[0]
    layout = CoherentLayout.make(n_patch, o, out_hw, patches.shape[1], m, cap)
    nd = layout.size("data")
    weight2d = weight.reshape(o, -1)

    a_states = np.zeros((1 << layout.size("p"), 1 << nd))
    a_states[:n_patch] = normalise_rows(patches, nd)[0]  # zero patches: zero angles, |0>
    f_states = np.zeros((1 << layout.size("q"), 1 << nd))
    f_states[:o] = normalise_rows(weight2d, nd)[0]
    u, u_dg = _loader(layout, _loader_levels(a_states, f_states, layout, loader, mutation))

    regs = {name: QuantumRegister(size, name) for name, (_, size) in layout.registers.items()}
    qc = QuantumCircuit(*regs.values(), name="coherent_qconv")
    ctrl = layout.qubits("ctrl")[0]
    ev = layout.qubits("eval")
    refl_wires = layout.qubits("ctrl") + layout.qubits("data")
    # 1. index registers
    qc.h(layout.qubits("p") + layout.qubits("q"))
    # 2. the Hadamard-test state for every (p, q)
    _extend(qc, u)
    # 3. amplitude estimation in superposition
    qc.h(ev)
    refl = DiagonalGate(list(_zero_reflection_diag(1 + len(refl_wires))))
    free = -np.ones(1 << len(refl_wires), dtype=np.complex128)
    free[0] = 1.0
    refl_free = DiagonalGate(list(free))  # the same reflection without its control
    for k, e in enumerate(ev):
        controlled = not (mutation == "uncontrolled_power" and k == min(1, m - 1))
        for _ in range(1 << k):
            if controlled:
                qc.cz(e, ctrl)
            else:
                qc.z(ctrl)
            _extend(qc, u_dg)
            if controlled:
                qc.append(refl, [e, *refl_wires])
            else:
                qc.append(refl_free, refl_wires)
            _extend(qc, u)
    qc.compose(synth_qft_full(m, do_swaps=True, inverse=True), ev, inplace=True)
    # 4. the non-linearity as the flag's amplitude
    values = _flag_values(patches, weight2d, b, m, cap, mutation)
    n_p, n_q = 1 << layout.size("p"), 1 << layout.size("q")
    padded = np.zeros((n_q, n_p, 1 << m))
    padded[:o, :n_patch] = values
    angles = 2.0 * np.arcsin(np.sqrt(np.clip(padded / cap, 0.0, 1.0)))
    index = layout.qubits("p") + layout.qubits("q")
    if mutation == "swap_pq":  # the index registers swapped in the read-out's controls
        index = layout.qubits("q") + layout.qubits("p")
    qc.append(
        multiplexer(_ry_matrices(angles.ravel())),
        [*layout.qubits("flag"), *ev, *index],
    )
    return CoherentCircuit(qc, layout, values, u)


# ---------------------------------------------------------------------------------------------
# the runner


@dataclass(frozen=True)
class CoherentLaw:
    """The exact law of the circuit's ``(eval, p, q, flag)`` registers.

    Attributes:
        probs: ``(2, 2^nq, 2^np, M)``: ``P(flag, q, p, y)`` (padding indices included).
        layout: the circuit's layout.
    """

    probs: np.ndarray
    layout: CoherentLayout

    @property
    def flag_probability(self) -> float:
        """``P(flag = 1)``, the success probability of one run without amplification."""
        return float(self.probs[1].sum())

    @property
    def amplification_rounds(self) -> int:
        """Amplitude-amplification rounds to reach ``flag = 1`` with probability near 1:
        ``floor(pi / (4 theta))``, ``sin^2 theta = P(flag = 1)`` (``~ (pi/4) sqrt(C / E[f])``)."""
        p1 = self.flag_probability
        if p1 <= 0:
            return 0
        return int(math.floor(math.pi / (4.0 * math.asin(math.sqrt(min(p1, 1.0))))))

    def ae_law(self) -> np.ndarray:
        """``(O, P, M)``: ``P(y | p, q)`` of the evaluation register."""
        lay = self.layout
        n_idx = 1 << (lay.size("p") + lay.size("q"))
        joint = self.probs.sum(axis=0) * n_idx
        return joint[: lay.kernels, : lay.patches]

    def joint_given_flag(self) -> np.ndarray:
        """``(O, P, M)``: ``P(q, p, y | flag = 1)``."""
        lay = self.layout
        p1 = self.probs[1][: lay.kernels, : lay.patches]
        total = p1.sum()
        return p1 / total if total > 0 else np.zeros_like(p1)

    def folded_joint_given_flag(self) -> np.ndarray:
        """``(O, P, M/2 + 1)``: ``P(q, p, J | flag = 1)``, ``J = min(y, M - y)`` (the estimate
        depends on y only through J, as the emulator counts it)."""
        joint = self.joint_given_flag()
        big_m = joint.shape[-1]
        half = big_m // 2
        out = joint[..., : half + 1].copy()
        out[..., 1:half] += joint[..., big_m - 1 : half : -1]
        return out

    def output_distribution(self) -> np.ndarray:
        """``(O, H', W')``: ``P(pixel (q, i, j) | flag = 1)``, summing to 1."""
        lay = self.layout
        return self.joint_given_flag().sum(axis=-1).reshape(lay.kernels, *lay.out_hw)


def statevector_backend(device: str | None = None, **options: Any) -> BackendV2:
    """The default simulator of the coherent circuit: Aer's statevector method on ``device``
    (``'CPU'``, ``'GPU'``), one thread unless ``options`` say otherwise. One circuit of at most
    ~24 qubits: on a shared 2-core machine Aer's OpenMP threads made an 16-qubit layer 7x slower
    (5.2 s vs 0.7 s, measured under load); pass ``max_parallel_threads=0`` to use every core."""
    from qiskit_aer import AerSimulator

    opts: dict[str, Any] = {"method": "statevector", "max_parallel_threads": 1, **options}
    if device is not None:
        opts["device"] = device
    return AerSimulator(**opts)


def coherent_law(
    cc: CoherentCircuit, backend: BackendV2 | None = None, *, device: str | None = None
) -> CoherentLaw:
    """Run ``cc`` on an Aer statevector simulator (``backend``, or a new one on ``device``)
    and read the exact law of ``(eval, p, q, flag)`` with ``save_probabilities``."""
    from qiskit_aer.library import SaveProbabilities

    lay = cc.layout
    wires = lay.qubits("eval") + lay.qubits("p") + lay.qubits("q") + lay.qubits("flag")
    qc = QuantumCircuit(*cc.circuit.qregs)
    _extend(qc, cc.circuit)  # no copy of the matrices
    qc.append(SaveProbabilities(len(wires), label="probs"), wires)
    be = backend if backend is not None else statevector_backend(device)
    result = be.run(qc, shots=1).result()
    if not result.success:  # pragma: no cover - Aer reports its own errors
        raise RuntimeError(f"Aer failed: {result.status}")
    probs = np.asarray(result.data(0)["probs"], dtype=np.float64)
    shape = (2, 1 << lay.size("q"), 1 << lay.size("p"), 1 << lay.ae_bits)
    return CoherentLaw(probs.reshape(shape), lay)


def coherent_output_distribution(
    x: Any, weight: Any, bias: Any, config: Any, *, backend: BackendV2 | None = None
) -> np.ndarray:
    """``P(pixel (q, i, j) | flag = 1)`` of the coherent layer, ``(O, H', W')``, summing to 1,
    read exactly from the statevector (see the module docstring).

    Args:
        x: ``(C, H, W)`` image; weight: ``(O, C, kh, kw)``; bias: ``(O,)`` or None.
        config: ``QuantumConfig`` with ``ipe='amplitude_estimation'``, ``noise_order='theory'``
            and ``ae_median=1`` (m from ``ae_bits`` or from eps); anything else is refused with
            a ValueError naming the field.
        backend: an Aer statevector simulator (default: a new ``AerSimulator``).
    """
    return coherent_law(
        build_coherent_circuit(x, weight, bias, config), backend
    ).output_distribution()


# ---------------------------------------------------------------------------------------------
# amplitude amplification


def inverse_circuit(qc: QuantumCircuit) -> QuantumCircuit:
    """The inverse of a circuit of this module's gates, kept Aer-native: multiplexers and
    diagonals are inverted as new multiplexers / diagonals of the adjoint matrices."""
    inv = QuantumCircuit(*qc.qregs, name=f"{qc.name}_dg")
    for inst in reversed(qc.data):
        op = inst.operation
        if op.name == "multiplexer":
            new: Any = _adjoint(op)
        elif op.name == "diagonal":
            new = DiagonalGate(list(np.conj(np.asarray(op.params, dtype=np.complex128))))
        else:
            new = op.inverse()
        inv.append(new, inst.qubits)
    return inv


def amplified_circuit(cc: CoherentCircuit, rounds: int) -> QuantumCircuit:
    """``W`` followed by ``rounds`` amplitude-amplification rounds
    ``W (2|0><0| - I) W^dagger (I - 2|1><1|_flag)`` (W = ``cc.circuit``): ``P(flag = 1)`` becomes
    ``sin^2((2r + 1) theta)`` and the law of the other registers given ``flag = 1`` is unchanged.
    The reflection about ``|0...0>`` is one diagonal on every qubit: small instances only."""
    qc = QuantumCircuit(*cc.circuit.qregs)
    _extend(qc, cc.circuit)
    n = qc.num_qubits
    w_dg = inverse_circuit(cc.circuit)
    diag = -np.ones(1 << n, dtype=np.complex128)
    diag[0] = 1.0
    zero_refl = DiagonalGate(list(diag))
    flag = cc.layout.qubits("flag")[0]
    for _ in range(int(rounds)):
        qc.z(flag)
        _extend(qc, w_dg)
        qc.append(zero_refl, range(n))
        _extend(qc, cc.circuit)
    return qc


# ---------------------------------------------------------------------------------------------
# the register-level drawing


def register_diagram(layout: CoherentLayout) -> QuantumCircuit:
    """The circuit at the register level, for drawing: boxes for the loader ``U``, each
    controlled Grover power ``Q^(2^k)`` (one box per evaluation qubit), the inverse QFT and the
    flag's multiplexed rotation (not a runnable circuit: the boxes are opaque gates)."""
    regs = [QuantumRegister(size, name) for name, (_, size) in layout.registers.items()]
    qc = QuantumCircuit(*regs, name="coherent_qconv (register level)")
    p, q, ctrl, data, ev, flag = (layout.qubits(n) for n in layout.registers)
    work = p + q + ctrl + data
    qc.h(p + q)
    qc.append(Gate("U: H, RY tree, H", len(work), []), work)
    qc.h(ev)
    for k, e in enumerate(ev):
        label = "Q" if k == 0 else f"Q^{1 << k}"
        base = Gate(label, len(work), [])
        qc.append(
            ControlledGate(label, len(work) + 1, [], num_ctrl_qubits=1, base_gate=base), [e, *work]
        )
    qc.append(Gate("QFT^-1", len(ev), []), ev)
    wires = flag + ev + p + q
    qc.append(Gate("RY(2 asin sqrt(f/C)) | y,p,q", len(wires), []), wires)
    return qc
