"""Physical estimates through Microsoft's resource estimator (the optional extra qcnn[estimate]).

The estimator's call is checked on one fixed small count set (skipped without the extra, with
the reason); without the extra, the module imports and refuses with a message naming it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from qcnn.quantum.costs import Counts
from qcnn.quantum.physical import (
    QUBIT_MODELS,
    EstimatorMissing,
    estimator_available,
    physical_estimates,
)

HAS_QDK = importlib.util.find_spec("qdk") is not None
needs_qdk = pytest.mark.skipif(
    not HAS_QDK, reason="the optional extra qcnn[estimate] (package qdk) is not installed"
)
SMALL = Counts(
    qubits=30, rotations=5000, rotation_depth=5000, toffoli=200, ands=10, measurements=50
)


@needs_qdk
def test_estimator_on_a_fixed_small_count_set():
    rows = physical_estimates(SMALL, units=10)
    assert [(r["qubit_model"], r["qec_scheme"]) for r in rows] == list(QUBIT_MODELS)
    for r in rows:
        assert r["physical_qubits"] > r["logical_qubits"] >= 30
        assert r["code_distance"] >= 3 and r["t_factories"] >= 1
        # the runtime is logical depth x logical cycle time, and units multiply it
        assert r["runtime_unit_s"] == pytest.approx(
            r["logical_depth"] * r["logical_cycle_ns"] * 1e-9
        )
        assert r["runtime_s"] == pytest.approx(10 * r["runtime_unit_s"])
        # the algorithm's T states: rotations x T per rotation + 4 per CCZ + 4 per AND
        assert r["t_states"] >= 5000 + 4 * 200
    e3, e4 = rows[0], rows[1]  # a better physical error rate needs a smaller code
    assert e4["code_distance"] < e3["code_distance"]
    # more rotations, more time: the estimator reads the counts it is given
    big = physical_estimates(Counts(**{**SMALL.to_dict(), "rotations": 5e6, "rotation_depth": 5e6}))
    assert big[0]["runtime_unit_s"] > 100 * e3["runtime_unit_s"]


@needs_qdk
def test_estimator_telemetry_is_off_in_a_fresh_interpreter():
    code = textwrap.dedent(
        """
        import os
        from qcnn.quantum.costs import Counts
        from qcnn.quantum.physical import physical_estimates
        physical_estimates(Counts(qubits=5, rotations=10, rotation_depth=10))
        from qdk import telemetry
        assert os.environ["QDK_PYTHON_TELEMETRY"] == "none"
        assert not telemetry.TELEMETRY_ENABLED
        """
    )
    env = {k: v for k, v in os.environ.items() if "TELEMETRY" not in k}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_without_the_extra_a_clear_refusal(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_qdk(name, *args, **kwargs):
        if name == "qdk" or name.startswith("qdk."):
            raise ImportError("No module named 'qdk'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_qdk)
    with pytest.raises(EstimatorMissing, match=r"qcnn\[estimate\]"):
        physical_estimates(SMALL)
    assert isinstance(estimator_available(), bool)
