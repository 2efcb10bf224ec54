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
    c = hadamard_test(LayerShape(1, 1, 2**n), "circuit", Assumptions())
    assert (names["ry"], names["cx"], names["h"]) == (c.rotations, c.cx, c.h)
    assert c.qubits == HadamardTestTemplate(n).preparation.num_qubits


@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 2])
def test_amplitude_estimation_circuit_equals_the_ae_run_count(n, m):
    prep = HadamardTestTemplate(n).preparation
    names, controls = flatten(amplitude_estimation_circuit(prep, m, measure=False))
    one = hadamard_test(LayerShape(1, 1, 2**n), "circuit", Assumptions())
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
    out = backward_costs(shape, QuantumConfig.paper(delta=0.5),
                         batch_params={"A": p, "dY": p, "dF": p},
                         image_params={"A": p, "dY": p, "F": p, "dF": p, "dX": p},
                         batch=1, reading="paper")  # fmt: skip
    assert out["factors"]["kernel_gradient_shots_per_batch"] == 2 * n
    assert out["factors"]["input_gradient_shots_per_image"] == 2 * n
