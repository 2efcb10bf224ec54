"""Physical resources of logical counts, from Microsoft's resource estimator (optional extra).

``pip install "qcnn[estimate]"`` installs the Quantum Development Kit (package ``qdk``), whose
resource estimator runs locally and offline: ``qdk.estimator.LogicalCounts({...}).estimate(p)``
turns logical counts (qubits, rotations and their depth, CCZ, CCiX, measurements) into physical
qubits, code distance, T factories and runtime for its predefined qubit models and QEC codes.
qcnn imports and runs without it; :func:`estimator_available` says whether it is there and
:func:`physical_estimates` raises :class:`EstimatorMissing` (naming the extra) when it is not.

**Telemetry off**: the QDK's Python package sends usage telemetry unless the environment variable
``QDK_PYTHON_TELEMETRY`` (or ``QSHARP_PYTHON_TELEMETRY``) is ``none``, read once when ``qdk`` is
imported; :func:`_import_estimator` sets both to ``none`` before the first import (the user's
explicit setting is overridden: qcnn never sends telemetry).

What is estimated is **one unit** (a shot of the forward tomography, a state of the backward
quantum matrix multiplication, one coherent run) with an error budget per unit, and the runtime
is multiplied by the number of units in Python: the estimator reports runtimes as 64-bit
integers of nanoseconds, which overflow past ~1.8e19 ns (about 585 years), a size the circuit
reading of QRAM reaches. The runtime is recomputed as ``logicalDepth * logicalCycleTime`` in
floating point, which equals the estimator's runtime whenever that one did not overflow.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from qcnn.quantum.costs import Counts

__all__ = [
    "EXTRA",
    "QUBIT_MODELS",
    "ERROR_BUDGET",
    "EstimatorMissing",
    "estimator_available",
    "physical_estimates",
]

EXTRA = "estimate"
# The estimator's predefined qubit models, each with the QEC scheme it supports: gate-based
# (superconducting-like, ns gate times, error rates 1e-3 and 1e-4) under the surface code,
# Majorana-based (1e-4, 1e-6) under the Floquet code.
QUBIT_MODELS: tuple[tuple[str, str], ...] = (
    ("qubit_gate_ns_e3", "surface_code"),
    ("qubit_gate_ns_e4", "surface_code"),
    ("qubit_maj_ns_e4", "floquet_code"),
    ("qubit_maj_ns_e6", "floquet_code"),
)
# Total failure probability allowed for one unit (one shot): a failed shot returns a wrong
# pixel index, and 1 % of such shots is below the l-infinity tomography's own error at eta 0.1.
ERROR_BUDGET = 0.01


class EstimatorMissing(ImportError):
    """The optional extra ``qcnn[estimate]`` (package ``qdk``) is not installed."""


def _import_estimator() -> Any:
    os.environ["QDK_PYTHON_TELEMETRY"] = "none"
    os.environ["QSHARP_PYTHON_TELEMETRY"] = "none"
    try:
        with warnings.catch_warnings():  # qdk 1.2x announces a successor API (qdk.qre) on use
            warnings.simplefilter("ignore", DeprecationWarning)
            from qdk import estimator
    except ImportError as exc:
        raise EstimatorMissing(
            f"physical estimates need the optional extra: pip install 'qcnn[{EXTRA}]' "
            f"(Microsoft's resource estimator, package qdk; {exc})"
        ) from exc
    return estimator


def estimator_available() -> bool:
    """Whether ``qdk.estimator`` imports (without importing it: no side effects)."""
    import importlib.util

    try:
        return importlib.util.find_spec("qdk") is not None
    except ValueError:
        return False


def physical_estimates(
    counts: Counts,
    *,
    units: float = 1.0,
    models: tuple[tuple[str, str], ...] = QUBIT_MODELS,
    error_budget: float = ERROR_BUDGET,
) -> list[dict[str, Any]]:
    """Physical resources of ``units`` sequential runs of the circuit whose logical ``counts``
    are given, one row per (qubit model, QEC scheme): physical qubits, code distance, T
    factories, logical cycle time, runtime of one unit and of all ``units`` (seconds).

    Raises:
        EstimatorMissing: the extra is not installed.
        ValueError: the estimator refused the counts (its message).
    """
    est = _import_estimator()
    logical = est.LogicalCounts(counts.estimator_counts())
    params = [
        {"qubitParams": {"name": q}, "qecScheme": {"name": s}, "errorBudget": error_budget}
        for q, s in models
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            result = logical.estimate(params)
        except Exception as exc:  # the estimator raises its own error types
            raise ValueError(f"the resource estimator refused the counts: {exc}") from exc
    rows = []
    for i, (qubit, scheme) in enumerate(models):
        r = result[i] if len(models) > 1 else result
        if r.get("status") != "success":
            raise ValueError(f"the resource estimator failed for {qubit}/{scheme}: {r}")
        pc, lq = r["physicalCounts"], r["logicalQubit"]
        b = pc["breakdown"]
        runtime_ns = float(b["logicalDepth"]) * float(lq["logicalCycleTime"])
        rows.append(
            {
                "qubit_model": qubit,
                "qec_scheme": scheme,
                "error_budget": error_budget,
                "physical_qubits": int(pc["physicalQubits"]),
                "code_distance": int(lq["codeDistance"]),
                "t_factories": int(b["numTfactories"]),
                "t_states": float(b["numTstates"]),
                "logical_qubits": int(b["algorithmicLogicalQubits"]),
                "logical_depth": float(b["logicalDepth"]),
                "logical_cycle_ns": float(lq["logicalCycleTime"]),
                "runtime_unit_s": runtime_ns * 1e-9,
                "units": float(units),
                "runtime_s": runtime_ns * 1e-9 * float(units),
            }
        )
    return rows
