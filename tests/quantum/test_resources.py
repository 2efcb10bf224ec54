"""The running-time model (model §4) and the resource-report command."""

import json
import math

import numpy as np
import pytest

from qcnn.experiments import resources as resources_cmd
from qcnn.models import paper_qcnn
from qcnn.nn import Sequential
from qcnn.quantum import QuantumConfig
from qcnn.quantum.resources import crossover_table, layer_resources


def test_layer_resources_formulas_by_hand():
    # D'=10, H'=W'=16 -> 2560 outputs; kernel 5x7x7 = 245; M=4, C=9, E[f]=0.25, eps=0.01
    r = layer_resources((10, 16, 16), (5, 7, 7), sigma=0.5, eps=0.01, cap=9.0, M=4.0, mean_f=0.25)
    q = 4.0 * 3.0 / (0.01 * 0.5)  # M sqrt(C) / (eps sqrt(E[f])) = 2400
    assert r.Q == pytest.approx(q)
    assert r.classical_ops == 2560 * 245
    assert r.quantum_ops == pytest.approx(0.5 * 2560 * q)
    assert r.speedup == pytest.approx(245 / (0.5 * q))
    assert r.crossover_kernel_volume == pytest.approx(0.5 * q)
    # Q is in the thousands at MNIST scale: no advantage for 7x7x5 kernels (model §4)
    assert r.speedup < 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps": 0.0}, "eps > 0"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": 1.5}, "sigma"),
        ({"mean_f": 0.0}, "E\\[f\\]"),
    ],
)
def test_layer_resources_rejects_undefined_inputs(kwargs, match):
    args = {"sigma": 0.5, "eps": 0.01, "cap": 10.0, "M": 1.0, "mean_f": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        layer_resources((1, 2, 2), (1, 3, 3), **args)


def test_crossover_table_scales_with_kernel_volume():
    r = layer_resources((10, 16, 16), (5, 7, 7), sigma=0.5, eps=0.01, cap=10.0, M=4.0, mean_f=0.5)
    rows = crossover_table(r, kernel_sizes=(3, 7), depths=(1, 64))
    assert [(t["kernel"], t["depth"]) for t in rows] == [(3, 1), (3, 64), (7, 1), (7, 64)]
    for t in rows:
        assert t["speedup"] == pytest.approx(
            t["kernel"] ** 2 * t["depth"] / r.crossover_kernel_volume
        )


def test_report_uses_the_measured_layer_statistics():
    cfg = QuantumConfig.paper()
    model = paper_qcnn(cfg, seed=3)
    x = np.random.default_rng(0).normal(size=(16, 1, 28, 28)).astype(np.float32)
    rows = resources_cmd.report(model, cfg, x, np.zeros(16, dtype=np.int64))
    assert len(rows) == 2
    first = rows[0]["resources"]
    assert first["out_pixels"] == 5 * 22 * 22 and first["kernel_volume"] == 49
    stats = model[0].stats_mean()
    assert first["M"] == pytest.approx(stats["M"]) and first["mean_f"] == pytest.approx(
        stats["mean_f"]
    )
    assert first["Q"] == pytest.approx(
        stats["M"] * math.sqrt(10.0) / (0.01 * math.sqrt(stats["mean_f"]))
    )
    assert rows[1]["resources"]["kernel_volume"] == 245
    assert 0 < first["mu_A"] and 0 < first["mu_F"]  # detailed statistics were switched on
    # the same network with its layers nested: the same layers found, the same measurements
    layers = paper_qcnn(cfg, seed=3).layers
    nested = Sequential(Sequential(layers[0], Sequential(layers[1])), *layers[2:])
    assert resources_cmd.report(nested, cfg, x, np.zeros(16, dtype=np.int64)) == rows


@pytest.mark.filterwarnings("ignore::qcnn.data.MNISTSubsetWarning")
def test_resources_command_writes_json_and_markdown(tmp_path, mnist_source):
    out = tmp_path / "res"
    assert resources_cmd.main(["--images", "32", "--out", str(out)]) == 0
    data = json.loads((out / "resources.json").read_text())
    assert data["config"]["sigma"] == 0.5 and len(data["layers"]) == 2
    assert data["dataset"]["name"] == mnist_source.name
    assert (
        "crossover" in (out / "resources.md").read_text()
        or "speed-up" in (out / "resources.md").read_text()
    )


def test_resources_command_rejects_no_sampling(tmp_path):
    with pytest.raises(SystemExit) as exc:
        resources_cmd.main(["--no-sampling", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
