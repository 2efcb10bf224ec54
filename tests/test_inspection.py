"""qcnn.inspection (activation maximisation, 2-D projections) and the visualize command.

Activation maximisation must increase the target filter's activation on a fixed seed, stay in
its L2 ball, be deterministic, and (quantum network, exact configuration) retrace the classical
ascent; PCA is checked against the eigen-decomposition of the covariance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qcnn.experiments import visualize
from qcnn.inspection import conv_targets, maximise_activation, project_2d
from qcnn.models import build_model, lenet5
from qcnn.quantum import QuantumConfig, quantize

PNG = b"\x89PNG\r\n\x1a\n"


def test_conv_targets_paths_and_prefixes_are_copies():
    model = build_model("inception-small", input_shape=(1, 8, 8))
    targets = conv_targets(model)
    assert [t.path for t in targets][:4] == ["0", "3.0.0", "3.1.0", "3.1.2"]
    t = targets[3]  # the 3x3 conv of the second branch: stem, relu, pool, 1x1, relu, 3x3
    assert [type(layer).__name__ for layer in t.prefix] == [
        "Conv2D",
        "ReLU",
        "MaxPool2D",
        "Conv2D",
        "ReLU",
        "Conv2D",
    ]
    t.conv.weight.data[:] = 0  # a copy: the model keeps its weights
    assert np.abs(model[3].branches[1][2].weight.data).max() > 0


@pytest.mark.parametrize("config", [None, QuantumConfig.paper()], ids=["classical", "quantum"])
def test_activation_maximisation_increases_the_activation(config):
    target = conv_targets(lenet5(seed=2))[1]  # second conv (after conv, relu, pool)
    res = maximise_activation(target, 3, (1, 28, 28), config=config, steps=12, radius=20.0, seed=3)
    assert res.final > res.start + 0.1 and res.final > 0.2
    assert np.linalg.norm(res.x) <= 20.0 * (1 + 1e-6)
    again = maximise_activation(
        target, 3, (1, 28, 28), config=config, steps=12, radius=20.0, seed=3
    )
    np.testing.assert_array_equal(again.x, res.x)  # deterministic for a seed


def test_exact_quantum_ascent_retraces_the_classical_one():
    target = conv_targets(lenet5(seed=4, dtype=np.float64))[1]
    kw = dict(steps=8, radius=15.0, seed=5)
    classical = maximise_activation(target, 1, (1, 28, 28), **kw)
    quantum = maximise_activation(target, 1, (1, 28, 28), config=QuantumConfig.exact(), **kw)
    np.testing.assert_allclose(quantum.x, classical.x, atol=1e-9)
    np.testing.assert_allclose(quantum.history, classical.history, atol=1e-9)
    with pytest.raises(ValueError, match="out of range"):
        maximise_activation(target, 99, (1, 28, 28))


def test_pca_projection_matches_the_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    data = rng.standard_normal((500, 6)) * np.array([5.0, 2.0, 0.5, 0.1, 0.1, 0.1]) @ basis.T
    xy = project_2d(data)
    evals, evecs = np.linalg.eigh(np.cov(data.T, bias=True))
    np.testing.assert_allclose(np.var(xy, axis=0), evals[::-1][:2], rtol=1e-10)
    ref = (data - data.mean(axis=0)) @ evecs[:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(xy), np.abs(ref), atol=1e-9)  # up to each axis' sign
    assert abs(np.corrcoef(xy.T)[0, 1]) < 1e-10
    with pytest.raises(ValueError, match="pca"):
        project_2d(data, "umap")


@pytest.mark.slow
def test_tsne_projection_shape():
    xy = project_2d(np.random.default_rng(1).standard_normal((60, 5)), "tsne", seed=1)
    assert xy.shape == (60, 2)


def _fake_run(tmp_path, model, name, arch="inception-small"):
    run = tmp_path / name
    run.mkdir()
    model.save(run / "model.npz")
    (run / "run.json").write_text(json.dumps({"arch": arch, "dataset": {"name": "digits"}}))
    return run / "model.npz"


def test_visualize_command_on_a_tiny_model(tmp_path):
    cnn = build_model("inception-small", input_shape=(1, 8, 8), seed=3)
    qcnn = quantize(cnn, QuantumConfig.paper())
    # the weights of either network load into both (the quantized twin's names differ)
    for name, model in (("cnn", cnn), ("qcnn", qcnn)):
        path = _fake_run(tmp_path, model, name)
        a, b = visualize.load_networks(
            path, "inception-small", (1, 8, 8), 10, QuantumConfig.paper()
        )
        for p, ref in zip(a.parameters() + b.parameters(), cnn.parameters() * 2, strict=True):
            np.testing.assert_array_equal(p.data, ref.data)
    out = tmp_path / "vis"
    argv = [
        "--weights",
        str(path),
        "--filters",
        "2",
        "--steps",
        "3",
        "--layers",
        "0",
        "5.1.2",
        "--images",
        "60",
        "--out",
        str(out),
        "--quiet",
    ]
    assert visualize.main(argv) == 0
    for png in ("kernels.png", "activation_maximisation.png", "features.png"):
        assert (out / png).read_bytes()[:8] == PNG, png
    summary = json.loads((out / "visualize.json").read_text())
    assert summary["arch"] == "inception-small" and summary["dataset"]["name"] == "digits"
    ascents = summary["activation_maximisation"]["ascents"]
    assert len(ascents) == 2 * 2 * 2  # layers x networks x filters
    assert {a["network"] for a in ascents} == {"classical", "quantum"}
    assert "error models off" in summary["note"]


def test_visualize_rejects_weights_of_another_network_and_unknown_layers(tmp_path, capsys):
    path = _fake_run(tmp_path, build_model("paper"), "paper", arch="inception-small")
    assert visualize.main(["--weights", str(path), "--out", str(tmp_path / "v"), "--quiet"]) == 2
    assert "fit neither" in capsys.readouterr().err
    path = _fake_run(tmp_path, build_model("inception-small", input_shape=(1, 8, 8)), "inc")
    argv = ["--weights", str(path), "--layers", "9.9", "--out", str(tmp_path / "v"), "--quiet"]
    assert visualize.main(argv) == 2
    assert "the convolutions are at" in capsys.readouterr().err
    text = visualize.build_parser().format_help()
    for flag in ("--weights", "--arch", "--filters", "--projection", "--out"):
        assert flag in text
