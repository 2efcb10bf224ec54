"""The project's networks in torch: the same network and initial weights as the numpy engine's,
and the bench_torch command."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="qcnn.torch needs PyTorch (pip install 'qcnn[torch]')")

from qcnn.models import paper_cnn as engine_paper_cnn  # noqa: E402
from qcnn.models import paper_qcnn  # noqa: E402
from qcnn.quantum import QuantumConfig  # noqa: E402
from qcnn.torch import QuantumConv2d  # noqa: E402
from qcnn.torch.models import from_engine, paper_cnn  # noqa: E402
from qcnn.torch.models import paper_qcnn as torch_paper_qcnn  # noqa: E402


def test_paper_cnn_is_the_engines_network_and_weights():
    x = np.random.default_rng(0).normal(size=(3, 1, 28, 28)).astype(np.float32)
    ref = engine_paper_cnn(4).eval().forward(x)
    with torch.no_grad():
        out = paper_cnn(4)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_exact_paper_qcnn_equals_the_emulators():
    config = QuantumConfig.exact(cap=10.0)
    x = np.random.default_rng(1).normal(size=(2, 1, 28, 28)).astype(np.float32)
    ref = paper_qcnn(config, 2).eval().forward(x)
    model = torch_paper_qcnn(config, 2)
    assert sum(isinstance(m, QuantumConv2d) for m in model.modules()) == 2
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_layers_convert_with_their_weights_and_unknown_layers_are_refused():
    from qcnn.nn import (
        AvgPool2D,
        Conv2D,
        Dense,
        Dropout,
        Flatten,
        LocalResponseNorm,
        MaxPool2D,
        ReLU,
        Sequential,
        Sigmoid,
        Tanh,
    )

    rng = np.random.default_rng(0)
    engine = Sequential(
        Conv2D(2, 4, 3, stride=1, padding=1, rng=rng),
        ReLU(),
        MaxPool2D(2),
        Conv2D(4, 4, 3, rng=rng, bias=False),
        Tanh(),
        AvgPool2D(2, stride=1),
        Flatten(),
        Dropout(0.5),
        Dense(4, 5, rng=rng),
        Sigmoid(),
    )
    x = rng.normal(size=(3, 2, 8, 8)).astype(np.float32)
    model = from_engine(engine).eval()
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, engine.eval().forward(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="LocalResponseNorm"):
        from_engine(Sequential(LocalResponseNorm(3)))


@pytest.mark.slow  # several training steps of 7 networks: ~10 s idle, a minute on a busy machine
def test_bench_torch_runs_and_writes_json(tmp_path):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_torch.py"
    spec = importlib.util.spec_from_file_location("bench_torch", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "torch.json"
    assert bench.main(["--steps", "1", "--presets", "paper", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    whats = [(r["impl"], r["what"]) for r in res["rows"]]
    assert ("torch", "+ gradient model (full step)") in whats and (
        "numpy",
        "emulator, 1 shard",
    ) in whats
    assert all(r["s_per_step"] > 0 for r in res["rows"]) and res["paper_torch_over_numpy"] > 0
    assert bench.main(["--presets", "nope"]) == 2
