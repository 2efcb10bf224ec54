"""The logical counts of qcnn.quantum.costs against the circuits of qcnn.circuits.

Stated basis: every circuit is flattened (its instructions' definitions expanded recursively)
down to ``ry``, ``cx``, ``h``, ``x``, ``z``, ``cz``, ``swap``, ``cp``, ``mcx`` (``ccx`` for two
controls) and ``measure``;
the counts compared are the rotations (``ry``, and 3 per ``cp`` of the inverse QFT), the CNOTs of
the loaders, and the multi-controlled X gates with their control counts (``c - 1`` ANDs each).
The documented factors: ``cp`` is counted as 3 rotations and 2 CNOTs (its decomposition), the
Cliffords ``x``, ``z``, ``cz``, ``swap`` are not counted. A construction that changes (one more
loader level, a controlled preparation instead of controlled reflections, a different Grover
power schedule) changes these numbers and fails the tests.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytest.importorskip("qiskit")
pytest.importorskip("qiskit_aer")

from qcnn.circuits import linf_tomography  # noqa: E402
from qcnn.circuits.inner_product import (  # noqa: E402
    HadamardTestTemplate,
    amplitude_estimation_circuit,
)
from qcnn.quantum.config import QuantumConfig  # noqa: E402
from qcnn.quantum.costs import (  # noqa: E402
    Assumptions,
    LayerShape,
    ae_run,
    backward_costs,
    data_qubits,
    hadamard_test,
)
from qcnn.quantum.sampling import tomography_shots  # noqa: E402

pytestmark = pytest.mark.circuits
JOINT = Assumptions(circuit_loader="joint")  # the per-pair template: one multiplexer per level

STOP = {"ry", "cx", "h", "x", "z", "cz", "swap", "cp", "mcx", "ccx", "measure", "barrier"}


def flatten(circuit) -> tuple[Counter, Counter]:
    """Gate names in the stated basis, and the multi-controlled X gates by control count."""
    names: Counter = Counter()
    controls: Counter = Counter()

    def walk(c):
        for inst in c.data:
            op = inst.operation
            if op.name in STOP:
                names[op.name] += 1
                if op.name in ("mcx", "ccx"):  # Qiskit names a 2-control MCX ccx
                    controls[op.num_ctrl_qubits] += 1
            else:
                assert op.definition is not None, op.name
                walk(op.definition)

    walk(circuit)
    return names, controls


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_hadamard_test_template_equals_the_one_pair_count(n):
    names, _ = flatten(HadamardTestTemplate(n).preparation)
    c = hadamard_test(LayerShape(1, 1, 2**n), "circuit", JOINT)
    assert (names["ry"], names["cx"], names["h"]) == (c.rotations, c.cx, c.h)
    assert c.qubits == HadamardTestTemplate(n).preparation.num_qubits


@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 2])
def test_amplitude_estimation_circuit_equals_the_ae_run_count(n, m):
    prep = HadamardTestTemplate(n).preparation
    names, controls = flatten(amplitude_estimation_circuit(prep, m, measure=False))
    one = hadamard_test(LayerShape(1, 1, 2**n), "circuit", JOINT)
    run = ae_run(one, m, data_qubits(2**n))
    assert names["ry"] + 3 * names["cp"] == run.rotations
    # 2^m - 1 controlled Grover iterates, each one MCX over the evaluation qubit and n of the
    # (control, data) qubits; the Grover power schedule gives 2^(m+1) - 1 preparations
    assert sum(controls.values()) == 2**m - 1 and set(controls) == {1 + n}
    assert sum((c - 1) * k for c, k in controls.items()) == run.ands
    assert names["ry"] == (2 ** (m + 1) - 1) * one.rotations
    assert run.qubits == prep.num_qubits + m


def test_circuit_tomography_takes_the_counted_shots():
    """The circuit tomography takes N = 36 ln d / eta^2 shots per step, and a second N for the
    sign step: the 2 N per gradient tensor that backward_costs counts."""
    x = np.array([0.5, -0.5, 0.5, 0.5])
    res = linf_tomography(x, eta=0.5, seed=3)
    n = tomography_shots(4, 0.5)
    assert res.shots == n and res.counts.sum() == n
    shape = LayerShape(patches=1, kernels=1, volume=4, input_size=4, bias=False)
    p = {"mu": 1.0, "kappa": 1.0}
    out = backward_costs(
        shape,
        QuantumConfig.paper(delta=0.5),
        batch_params={"A": p, "dY": p, "dF": p},
        image_params={"A": p, "dY": p, "F": p, "dF": p, "dX": p},
        batch=1,
        reading="paper",
    )
    assert out["factors"]["kernel_gradient_shots_per_batch"] == 2 * n
    assert out["factors"]["input_gradient_shots_per_image"] == 2 * n


def _coherent_counts(qc):
    """Multiplexer branches (``2^c`` RY for c controls), controlled phases, reflections."""
    names = Counter(inst.operation.name for inst in qc.data)
    branches = sum(
        2 ** (inst.operation.num_qubits - 1)
        for inst in qc.data
        if inst.operation.name == "multiplexer"
    )
    reflections = [
        inst.operation.num_qubits for inst in qc.data if inst.operation.name == "diagonal"
    ]
    return names, branches, reflections


@pytest.mark.parametrize("loader", ["split", "joint"])
@pytest.mark.parametrize(
    ("channels", "size", "kernels", "k", "m"),
    [(1, 5, 2, 3, 2), (2, 6, 3, 3, 3), (1, 8, 4, 3, 2)],
)
def test_coherent_circuit_equals_the_counted_construction(channels, size, kernels, k, m, loader):
    """The coherent circuit of issue 15 (qcnn.circuits.coherent) as built: its loader
    multiplexers, AE reflections, inverse QFT and flag multiplexer against coherent_run.

    Basis: a ``multiplexer`` (Aer-native ``UCGate``) with c controls counts as 2^c RY (the
    Mottonen form of the per-pair template, 2^c RY + 2^c CNOT); a reflection ``diagonal`` on
    ``2 + n`` qubits as the MCX with ``1 + n`` controls; ``cp`` as 3 rotations. Index registers
    of one value have one qubit in the circuit and none in the count, so P, O > 1 here."""
    from qcnn.circuits.coherent import build_coherent_circuit
    from qcnn.quantum.costs import coherent_run, mcx

    rng = np.random.default_rng(channels * 100 + size)
    x = rng.random((channels, size, size))
    w = rng.standard_normal((kernels, channels, k, k))
    cfg = QuantumConfig(eps=0.1, ipe="amplitude_estimation", ae_bits=m, noise_order="theory")
    cc = build_coherent_circuit(x, w, rng.standard_normal(kernels), cfg, loader=loader)
    p = (size - k + 1) ** 2
    shape = LayerShape(patches=p, kernels=kernels, volume=channels * k * k)
    a0 = Assumptions(circuit_loader=loader)
    prep = hadamard_test(shape, "circuit", a0)
    loader_names, loader_branches, _ = _coherent_counts(cc.loader)
    assert loader_branches == prep.rotations
    assert loader_names["h"] == prep.h
    names, branches, reflections = _coherent_counts(cc.circuit)
    run = coherent_run(shape, m, 1, "circuit", a0)
    n = data_qubits(shape.volume)
    assert branches + 3 * names["cp"] == run.rotations
    assert len(reflections) == 2**m - 1 and set(reflections) == {2 + n}
    assert len(reflections) * mcx(1 + n).ands == run.ands
    assert cc.circuit.num_qubits == run.qubits - mcx(1 + n).qubits  # the MCX's ancillas


def test_amplification_rounds_equal_the_coherent_circuits():
    """The counted rounds (E[f] from the emulator's exact law, diluted by the padding indices of
    the circuit's registers) equal the rounds the coherent circuit's exact law calls for."""
    from qcnn.circuits.coherent import build_coherent_circuit, coherent_law
    from qcnn.quantum.costs import forward_costs
    from qcnn.quantum.output_law import ae_output_law, conv_products

    rng = np.random.default_rng(7)
    x, w, b = rng.random((1, 6, 6)), rng.standard_normal((3, 1, 3, 3)), 0.5 * np.ones(3)
    cfg = QuantumConfig(
        eps=0.1, cap=2.0, ipe="amplitude_estimation", ae_bits=3, noise_order="theory", sigma=0.5
    )
    law = coherent_law(build_coherent_circuit(x, w, b, cfg))
    y_nb, scale, _ = conv_products(x[0][None], w)
    shift = np.repeat(b[:, None], y_nb.shape[1], axis=1)
    mean_f = float(ae_output_law(y_nb.ravel(), scale.ravel(), shift.ravel(), 2.0, 3).mean_f.mean())
    shape = LayerShape(patches=16, kernels=3, volume=9)
    out = forward_costs(shape, cfg, mean_f, "circuit")
    fill = out["factors"]["index_fill"]
    assert fill == 48 / 64
    assert law.flag_probability == pytest.approx(fill * mean_f / 2.0, rel=1e-9)
    assert out["factors"]["aa_rounds"] == law.amplification_rounds
