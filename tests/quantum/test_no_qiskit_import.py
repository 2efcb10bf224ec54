"""The dependency rule: the emulator never imports Qiskit or ``qcnn.circuits``.

Runs in a fresh interpreter (this test session has imported Qiskit already). Needs no Qiskit.
"""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import numpy as np
import qcnn.quantum
from qcnn.quantum import QuantumConfig, QuantumConv2D, make_executor
layer = QuantumConv2D(1, 2, 3, config=QuantumConfig(), rng=0)
layer.forward(np.zeros((1, 1, 5, 5), np.float32))
make_executor("emulator")
bad = sorted(m for m in sys.modules
             if m.split(".")[0] in ("qiskit", "qiskit_aer") or m.startswith("qcnn.circuits"))
assert not bad, bad[:10]
"""


def test_emulator_does_not_import_qiskit():
    subprocess.run([sys.executable, "-c", CODE], check=True, timeout=120)
