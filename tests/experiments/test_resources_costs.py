"""``python -m qcnn.experiments.resources``: the counts of the construction in the report, both
QRAM readings, and ``--physical`` (one ``error:`` line and exit 2 without the extra; the
physical table with it, skipped otherwise)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from qcnn.experiments import resources
from qcnn.quantum import QuantumConfig
from qcnn.quantum.costs import READINGS, LayerShape, forward_costs

HAS_QDK = importlib.util.find_spec("qdk") is not None
ARGV = ["--images", "16", "--backward-images", "4", "--no-synthetic", "--quiet"]


@pytest.mark.filterwarnings("ignore::qcnn.data.MNISTSubsetWarning")
def test_report_holds_the_counts_of_both_readings(tmp_path, mnist_source):
    out = tmp_path / "res"
    assert resources.main([*ARGV, "--preset", "theory", "--out", str(out)]) == 0
    data = json.loads((out / "resources.json").read_text())
    cfg = QuantumConfig.from_dict(data["config"])
    for layer in data["layers"]:
        costs = layer["costs"]
        assert set(costs["forward"]) == set(READINGS) == set(costs["backward"])
        # the recorded counts follow from the recorded shape and E[f] (no other input)
        sh = costs["shape"]
        shape = LayerShape(sh["patches"], sh["kernels"], sh["volume"], sh["input_size"], sh["bias"])
        again = forward_costs(shape, cfg, layer["resources"]["mean_f"], "paper", batch=64)
        assert again["per_image"] == costs["forward"]["paper"]["per_image"]
        assert costs["forward"]["paper"]["factors"]["ae_median_k"] == 11  # theory mode's k
        assert costs["forward"]["paper"]["normaliser"]["qram_queries"] > 0
        assert set(layer["backward_matrices_batch"]) >= {"A", "dY", "dF"}
    # the first layer passes no gradient back; the second does, once per image
    first, second = (la["costs"]["backward"]["paper"]["factors"] for la in data["layers"])
    assert first["input_gradient_shots_per_image"] == 0
    assert second["input_gradient_shots_per_image"] > 0
    assert "crossovers" in data["layers"][-1]
    md = (out / "resources.md").read_text()
    assert "paper" in md and "circuit" in md and "Crossover kernel volume" in md


def test_physical_without_the_extra_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(resources, "estimator_available", lambda: False)
    assert resources.main([*ARGV, "--physical", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "qcnn[estimate]" in err[0]


@pytest.mark.skipif(
    not HAS_QDK, reason="the optional extra qcnn[estimate] (package qdk) is not installed"
)
@pytest.mark.filterwarnings("ignore::qcnn.data.MNISTSubsetWarning")
def test_physical_table_with_the_extra(tmp_path, mnist_source):
    out = tmp_path / "phys"
    assert resources.main([*ARGV, "--physical", "--out", str(out)]) == 0
    data = json.loads((out / "resources.json").read_text())
    assert data["costs_meta"]["throughput"]["flop_per_s"] > 0
    for layer in data["layers"]:
        rows = layer["physical"]
        assert {r["reading"] for r in rows} == set(READINGS)
        assert all(r["physical_qubits"] > 0 and r["forward_per_image_s"] > 0 for r in rows)
    assert "physical" in data["layers"][-1]["crossover_costs"][0]
    assert "Physical estimates" in (out / "resources.md").read_text()
