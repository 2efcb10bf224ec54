"""The dependency rule: the emulator never imports Qiskit or ``qcnn.circuits``, and the engine
(``qcnn.nn``) names nothing of the quantum packages; executors are found through a registry.

The import checks run in a fresh interpreter (this test session has imported Qiskit already).
Needs no Qiskit.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from qcnn.quantum import QuantumConfig, QuantumConv2D, executor

PACKAGE = Path(__file__).resolve().parents[2] / "qcnn"

CODE = """
import sys
import numpy as np
import qcnn.quantum
from qcnn.quantum import QuantumConfig, QuantumConv2D, make_executor
from qcnn.quantum.executor import executor_names
layer = QuantumConv2D(1, 2, 3, config=QuantumConfig(), rng=0)
layer.forward(np.zeros((1, 1, 5, 5), np.float32))
make_executor("emulator")
executor_names()  # reads entry-point declarations without importing them
bad = sorted(m for m in sys.modules
             if m.split(".")[0] in ("qiskit", "qiskit_aer") or m.startswith("qcnn.circuits"))
assert not bad, bad[:10]
"""


def test_emulator_does_not_import_qiskit():
    subprocess.run([sys.executable, "-c", CODE], check=True, timeout=120)


@pytest.mark.parametrize(
    ("folder", "pattern"),
    [("quantum", r"qcnn.circuits"), ("nn", r"qcnn.circuits|EmulatorExecutor|quantum")],
)
def test_lower_layers_name_nothing_above_them(folder, pattern):
    hits = [
        f"{path.relative_to(PACKAGE)}:{i}: {line.strip()}"
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(pattern, line, flags=re.IGNORECASE)
    ]
    assert not hits, "\n".join(hits)


class FixedExecutor:
    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def inner_products(self, problem, config, rng):
        return np.full_like(problem.y, self.value)

    def sample(self, values, shots, config, rng):
        return np.ones(values.shape, dtype=np.int64)

    def sample_per_shot(self, problem, shots, config, rng):
        raise NotImplementedError("FixedExecutor has no per-shot sampler")

    def normaliser(self, mean_f, d, config, rng):
        raise NotImplementedError("FixedExecutor has no normaliser")


def test_registered_executor_is_found_by_name_with_its_options(monkeypatch):
    monkeypatch.setattr(executor, "_REGISTRY", dict(executor._REGISTRY))
    executor.register_executor("fixed", FixedExecutor)
    assert "fixed" in executor.executor_names() and "emulator" in executor.executor_names()
    layer = QuantumConv2D(
        1,
        2,
        3,
        config=QuantumConfig(),
        executor=executor.make_executor("fixed", value=0.5),
        bias=False,
    )
    assert isinstance(layer.executor, FixedExecutor) and layer.executor.value == 0.5
    out = layer.eval().forward(np.zeros((1, 1, 5, 5), np.float32))
    np.testing.assert_array_equal(out, 0.5)  # every estimate is 0.5, every pixel drawn once
    with pytest.raises(ValueError, match="unknown executor 'nope'.*emulator.*fixed"):
        executor.make_executor("nope")
    with pytest.raises(TypeError, match="no options"):
        executor.make_executor("emulator", backend=None)
    with pytest.raises(TypeError, match="options"):
        executor.make_executor(FixedExecutor(), value=1.0)
    executor.register_executor("broken", lambda: object())
    with pytest.raises(TypeError, match="not an Executor"):
        executor.make_executor("broken")
    with pytest.raises(ValueError, match="non-empty"):
        executor.register_executor("", FixedExecutor)


def test_entry_point_executor_is_found_before_its_package_is_imported(tmp_path):
    """A distribution declaring ``[qcnn.executors]`` is found by name; nothing imports its
    package before the name is asked for."""
    (tmp_path / "fake_plugin").mkdir()
    (tmp_path / "fake_plugin" / "__init__.py").write_text(
        textwrap.dedent("""
        import numpy as np

        class Zero:
            def inner_products(self, problem, config, rng):
                return np.zeros_like(problem.y)

            def sample(self, values, shots, config, rng):
                return np.ones(values.shape, dtype=np.int64)

            def sample_per_shot(self, problem, shots, config, rng):
                raise NotImplementedError("Zero: no per-shot sampler")

            def normaliser(self, mean_f, d, config, rng):
                raise NotImplementedError("Zero: no normaliser")
        """)
    )
    dist = tmp_path / "fake_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[qcnn.executors]\nzero = fake_plugin:Zero\n")
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from qcnn.quantum import QuantumConfig, QuantumConv2D
        from qcnn.quantum.executor import executor_names
        assert "zero" in executor_names() and "fake_plugin" not in sys.modules
        config = QuantumConfig(noise_order="theory")  # f(Ybar): every estimate 0 -> output 0
        layer = QuantumConv2D(1, 2, 3, config=config, executor="zero", bias=False, rng=0)
        assert type(layer.executor).__name__ == "Zero" and "fake_plugin" in sys.modules
        out = layer.eval().forward(np.ones((1, 1, 5, 5), np.float32))
        assert not out.any()
    """)
    path = os.pathsep.join([str(tmp_path), str(PACKAGE.parent)])
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": path},
    )
