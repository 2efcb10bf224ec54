"""torch is optional: ``import qcnn`` and the emulator never import it, and ``qcnn.torch``
without it fails with one message saying what to install. Runs with or without torch."""

from __future__ import annotations

import subprocess
import sys

NO_TORCH = """
import sys
import qcnn, qcnn.quantum, qcnn.nn, qcnn.models, qcnn.train
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
assert not bad, bad[:5]
"""

BLOCKED = """
import sys
sys.modules["torch"] = None  # as if torch were not installed
try:
    import qcnn.torch
except ImportError as exc:
    assert "pip install 'qcnn[torch]'" in str(exc), exc
else:
    raise AssertionError("qcnn.torch imported without torch")
"""


def test_qcnn_imports_no_torch():
    subprocess.run([sys.executable, "-c", NO_TORCH], check=True, timeout=120)


def test_qcnn_torch_without_torch_says_what_to_install():
    subprocess.run([sys.executable, "-c", BLOCKED], check=True, timeout=120)
