"""The arithmetic the bit-identity pins were recorded in, set before numpy is imported.

tests/test_regression_notebook.py and tests/quantum/test_theory_bit_identical.py compare float
results exactly. Two things below qcnn choose the order of floating-point operations by CPU:

- OpenBLAS picks its GEMM kernels (and so the summation order of every matrix product) by CPU
  model unless ``OPENBLAS_CORETYPE`` names one;
- numpy dispatches its ufunc loops (float32 add-reductions among them) to AVX-512 code on CPUs
  that have it, and those loops sum in another order than the AVX2 ones.

The pins were recorded on AVX2 machines with OpenBLAS's Haswell kernels. Measured on an AMD EPYC
(Zen 4, AVX-512): with neither pinned, every notebook-mode pin differs in the last bits (the first
loss 2.311499312520027 against 2.3114993199706078); with only ``OPENBLAS_CORETYPE=Haswell`` the
classical CNN matches and the QCNN still differs; with both it matches bit for bit.

So, on x86-64, the test session asks numpy for its AVX2 loops and OpenBLAS for Haswell kernels,
unless the machine already says otherwise (a machine's own ``OPENBLAS_CORETYPE`` or
``NPY_DISABLE_CPU_FEATURES`` is never changed: ``setdefault``). Subprocesses the tests start inherit
the same environment. This module must not import numpy; it is called first thing in conftest.py.
"""

from __future__ import annotations

import os
import platform
import sys

# numpy >= 2.4 groups its x86 dispatch targets as X86_V3 (AVX2), X86_V4 (AVX-512 F/CD/VL/BW/DQ),
# AVX512_ICL and AVX512_SPR; naming a group the build does not dispatch is an ImportError, so the
# names are only used where they exist (x86-64).
AVX512_GROUPS = "X86_V4 AVX512_ICL AVX512_SPR"
OPENBLAS_REFERENCE_CORE = "Haswell"


def pin_reference_arithmetic() -> None:
    """Set the reference arithmetic's environment (see the module docstring). Call it before the
    first ``import numpy``; raises RuntimeError if numpy is already imported (too late to pin)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return
    if "numpy" in sys.modules:
        raise RuntimeError(
            "tests/reference_arithmetic.py: numpy was imported before the reference arithmetic "
            "was pinned; the bit-identity tests would compare another arithmetic"
        )
    os.environ.setdefault("NPY_DISABLE_CPU_FEATURES", AVX512_GROUPS)
    os.environ.setdefault("OPENBLAS_CORETYPE", OPENBLAS_REFERENCE_CORE)
