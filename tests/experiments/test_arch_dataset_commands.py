"""``--arch`` and ``--dataset`` on the commands: results record the architecture (parameter count,
per-layer kernel volumes), the data set and its shape; an architecture that does not fit the data
is a clear error before any training; the layer table and the quantization plan are printed.
Runs on scikit-learn's 8x8 digits (offline) and on small npz files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qcnn.experiments import mnist, resources, sweep
from qcnn.models import build_model
from tests.conftest import assert_png

TINY = ["--train-size", "96", "--test-size", "40", "--epochs", "1", "--batch-size", "32"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "run"
    argv = [*TINY, "--arch", "inception-small", "--dataset", "digits", "--out", str(out)]
    assert mnist.main(argv) == 0
    return out, json.loads((out / "results.json").read_text())


def test_results_record_the_architecture_and_the_data_set(digits_run, capsys):
    out, res = digits_run
    assert res["dataset"]["name"] == "digits" and res["dataset"]["shape"] == [1, 8, 8]
    assert res["dataset"]["classes"] == 10 and res["dataset"]["train_size"] == 96
    expect = build_model("inception-small", input_shape=(1, 8, 8)).num_parameters()
    runs = {r["model"]: r for r in res["runs"]}
    assert set(runs) == {"cnn", "qcnn", "cnn-weights-quantum-forward"}
    for r in runs.values():
        arch = r["architecture"]
        assert r["arch"] == "inception-small" and arch["parameters"] == expect
        assert len(arch["conv_layers"]) == 13
        assert arch["conv_layers"][0]["kernel_volume"] == 9  # stem: 3x3 on one channel
    assert not any(c["quantum"] for c in runs["cnn"]["architecture"]["conv_layers"])
    assert all(c["quantum"] for c in runs["qcnn"]["architecture"]["conv_layers"])
    assert_png(out / "feature_maps.png")
    assert (
        out / "qcnn-inception-small-eps0.01-C10-sigma0.5-delta0.01-seed1" / "model.npz"
    ).is_file()


def test_summary_and_quantization_plan_are_printed(tmp_path, capsys):
    argv = [
        "--train-size",
        "32",
        "--test-size",
        "16",
        "--epochs",
        "1",  # zero epochs is refused (issue 9): one epoch on 32 images
        "--arch",
        "inception-small",
        "--dataset",
        "digits",
        "--out",
        str(tmp_path / "o"),
        "--model",
        "both",
        "--no-quantum-forward",
    ]
    assert mnist.main(argv) == 0
    text = capsys.readouterr().out
    assert "total parameters" in text and "output shape" in text
    assert "quantized: 13 quantum layer(s)" in text and "3.3.0 MaxPool2D" in text


def test_architecture_that_does_not_fit_the_data_is_an_error(tmp_path, capsys):
    rc = mnist.main(
        [*TINY, "--quiet", "--arch", "paper", "--dataset", "digits", "--out", str(tmp_path / "o")]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "'paper' does not fit" in err and "13x13" in err
    assert not (tmp_path / "o" / "results.json").exists()


def test_unknown_and_missing_data_sets(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        mnist.main(["--dataset", "cifar10", "--out", str(tmp_path / "o"), "--quiet"])
    assert info.value.code == 2 and "unknown data set 'cifar10'" in capsys.readouterr().err
    rc = mnist.main(
        ["--dataset", f"npz:{tmp_path / 'none.npz'}", "--out", str(tmp_path / "o"), "--quiet"]
    )
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_npz_data_set_with_three_classes_and_a_model_without_quantum_layers(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "set.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (48, 28, 28), dtype=np.uint8),
        y_train=np.arange(48) % 3,
        x_test=rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        y_test=np.arange(12) % 3,
    )
    out = tmp_path / "run"
    argv = [
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--arch",
        "lenet5-1998",
        "--dataset",
        f"npz:{path}",
        "--out",
        str(out),
        "--quiet",
        "--no-quantum-forward",
    ]
    assert mnist.main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    # the record names the file and its checksum, not the machine's path (issue 17)
    assert res["dataset"]["classes"] == 3 and res["dataset"]["source"] == f"npz:{path.name}"
    assert res["dataset"]["checksum"].startswith("sha256:") and str(tmp_path) not in json.dumps(res)
    assert all(r["test_accuracy"] >= 0 for r in res["runs"])
    qrun = [r for r in res["runs"] if r["model"] == "qcnn"][0]
    assert not any(c["quantum"] for c in qrun["architecture"]["conv_layers"])  # tanh: classical
    assert not (out / "feature_maps.png").exists()  # no quantum layer to picture


def test_sweep_and_resources_take_arch_and_dataset(tmp_path):
    out = tmp_path / "sweep"
    argv = [
        "--grid",
        "quick",
        "--train-size",
        "32",
        "--test-size",
        "16",
        "--epochs",
        "1",
        "--arch",
        "inception-small",
        "--dataset",
        "digits",
        "--no-quantum-forward",
        "--quiet",
        "--out",
        str(out),
    ]
    assert sweep.main(argv) == 0
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs[0] == "cnn-inception-small-seed1" and len(runs) == 3
    rec = json.loads((out / "runs" / runs[0] / "run.json").read_text())
    assert rec["dataset"]["name"] == "digits" and rec["architecture"]["parameters"] > 0
    rout = tmp_path / "res"
    assert (
        resources.main(
            [
                "--arch",
                "inception-small",
                "--dataset",
                "digits",
                "--images",
                "16",
                "--out",
                str(rout),
                "--quiet",
            ]
        )
        == 0
    )
    rows = json.loads((rout / "resources.json").read_text())["layers"]
    assert len(rows) == 13
    # no quantum layer once quantized (a fresh --out: a non-empty one is refused first)
    assert resources.main(["--arch", "lenet5-1998", "--out", str(tmp_path / "r2"), "--quiet"]) == 2


def test_activation_and_augment_flags(tmp_path, capsys):
    """--activation sigmoid trains LeNet-5 (1998) as the primer does; --augment shifts the
    training images; both are recorded in the spec and the run id. Misuse: one error line."""
    out = tmp_path / "sig"
    argv = [*TINY, "--arch", "lenet5-1998", "--activation", "sigmoid", "--augment", "2"]
    argv += ["--model", "cnn", "--quiet", "--out", str(out)]  # MNIST: LeNet-5 needs 28x28
    assert mnist.main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    (run,) = res["runs"]
    assert run["spec"]["activation"] == "sigmoid" and run["spec"]["augment"] == 2
    assert (out / "cnn-lenet5-1998-sigmoid-aug2-seed1" / "model.npz").is_file()
    capsys.readouterr()
    bad = [*TINY, "--arch", "paper", "--activation", "sigmoid", "--out", str(tmp_path / "b")]
    with pytest.raises(SystemExit) as exc:
        mnist.main(bad)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "error:" in err[-1]
    assert "--activation applies to --arch lenet5-1998" in err[-1]
    for flag in (["--augment", "9"], ["--activation", "softsign"]):
        with pytest.raises(SystemExit) as exc:
            mnist.main([*TINY, *flag, "--out", str(tmp_path / "c")])
        assert exc.value.code == 2
    # the sweep takes --augment too
    sout = tmp_path / "sweep"
    sargv = ["--grid", "quick", "--train-size", "32", "--test-size", "16", "--epochs", "1"]
    sargv += ["--arch", "paper", "--augment", "1", "--max-runs", "1"]
    sargv += ["--no-quantum-forward", "--quiet", "--out", str(sout)]
    assert sweep.main(sargv) == 0
    assert [p.name for p in (sout / "runs").iterdir()] == ["cnn-paper-aug1-seed1"]
