"""Smoke tests of the circuit demo (``python -m qcnn.experiments.circuits``) and benchmark."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")

from qcnn.experiments import circuits as demo  # noqa: E402
from tests.conftest import assert_png  # noqa: E402

pytestmark = pytest.mark.circuits

ROOT = Path(__file__).resolve().parents[2]


def test_downsample_is_crop_then_block_mean():
    img = np.zeros((28, 28), dtype=np.uint8)
    img[2:5, 2:5] = 255  # exactly the first 3x3 block after the crop
    img[0, 0] = 255  # in the cropped border: ignored
    small = demo.downsample(img)
    assert small.shape == (8, 8)
    assert small[0, 0] == pytest.approx(1.0) and small.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        demo.downsample(np.zeros((8, 8)))


def test_help_documents_every_flag():
    text = demo.build_parser().format_help()
    for flag in ("--backend", "--ae-bits", "--shots", "--kernels", "--seed", "--out", "--data-dir"):
        assert flag in text


def test_demo_runs_on_one_image(tmp_path):
    """Runs on a synthetic 28x28 digit (no dataset needed) and writes every output."""
    rng = np.random.default_rng(0)
    img = np.zeros((28, 28), dtype=np.uint8)
    img[6:22, 9:19] = rng.integers(100, 256, size=(16, 10))
    args = demo.build_parser().parse_args(
        ["--out", str(tmp_path), "--kernels", "2", "--ae-bits", "3", "--shots", "30"]
    )
    summary = demo.run_demo(args, img, "synthetic", 7)
    for name in (
        "circuits_demo.png",
        "circuit_resources.csv",
        "circuit_resources.md",
        "circuits_demo.json",
    ):
        assert (tmp_path / name).stat().st_size > 0
    assert_png(tmp_path / "circuits_demo.png")
    rows = list(csv.DictReader((tmp_path / "circuit_resources.csv").open()))
    names = [r["subroutine"] for r in rows]
    assert any(n.startswith("IPE") for n in names) and any("tomography" in n for n in names)
    ipe = next(r for r in rows if r["subroutine"].startswith("IPE"))
    assert int(ipe["circuits"]) == 36 * 2 and int(ipe["qubits"]) == 3 + 1 + 4
    saved = json.loads((tmp_path / "circuits_demo.json").read_text())
    assert saved["sampling_shots"] == 30 == summary["sampling_shots"]
    assert saved["kept_pixels"] <= 30


def test_compute_step_alone_gives_consistent_maps():
    """``run_layer`` (compute, no files): the sampled map keeps drawn pixels at their value."""
    img = np.zeros((28, 28), dtype=np.uint8)
    img[8:20, 10:18] = 200
    settings = demo.DemoSettings(kernels=2, ae_bits=2, shots=20)
    run = demo.run_layer(settings, img, demo.make_backend(settings))
    assert run.exact.shape == run.estimated.shape == run.sampled.shape == (2, 6, 6)
    drawn = run.sampled > 0
    assert drawn.sum() <= 20 and run.shots == 20
    np.testing.assert_array_equal(run.sampled[drawn], run.estimated[drawn])
    cap = settings.cap
    assert np.all(run.estimated <= cap) and np.all(run.exact == np.clip(run.y, 0, cap))


def test_settings_are_the_flags_and_the_former_median_flag_still_works(capsys):
    """The compute functions take :class:`DemoSettings`, made from the flags; the AE median is
    ``--ae-median`` as in the other commands, ``--median-of`` (its former name) still works."""
    args = demo.build_parser().parse_args(["--kernels", "2", "--noise", "0.1", "0.2"])
    assert demo.DemoSettings.from_args(args) == demo.DemoSettings(kernels=2, noise=(0.1, 0.2))
    assert demo.build_parser().parse_args(["--ae-median", "3"]).ae_median == 3
    assert capsys.readouterr().err == ""
    assert demo.build_parser().parse_args(["--median-of", "5"]).ae_median == 5
    assert "--median-of is deprecated; use --ae-median" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_cli_and_benchmark_run(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "qcnn.experiments.circuits",
            "--out",
            str(tmp_path / "out"),
            "--kernels",
            "1",
            "--ae-bits",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "circuits/s" in out.stdout
    bench = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_circuits.py"),
            "--ae-bits",
            "2",
            "--repeats",
            "1",
            "--hadamard-shots",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert bench.returncode == 0, bench.stderr
    assert "circuits/s" in bench.stdout


def test_common_flags_keep_the_demo_defaults():
    args = demo.build_parser().parse_args([])
    # --out defaults to a fresh runs/circuits-<timestamp> folder, chosen when the command runs
    assert (args.out, args.seed, args.data_dir, args.quiet) == (None, 0, None, False)


def test_digits_run_through_the_circuit_layer_without_downsampling(tmp_path):
    """``--dataset digits``: scikit-learn's 8x8 digits, the circuits' natural size, as they are."""
    from qcnn.data import load_dataset

    ds = load_dataset("digits", dtype=np.float64)
    np.testing.assert_array_equal(demo.layer_input(ds.x_test[3, 0]), ds.x_test[3:4])
    argv = [
        "--dataset",
        "digits",
        "--index",
        "3",
        "--kernels",
        "2",
        "--ae-bits",
        "3",
        "--shots",
        "30",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    assert demo.main(argv) == 0
    saved = json.loads((tmp_path / "circuits_demo.json").read_text())
    assert "digits" in saved["data_source"] and saved["label"] == int(ds.y_test[3])
    assert saved["ipe_circuits"] == 36 * 2  # 6x6 positions of a 3x3 kernel on the 8x8 image
    with pytest.raises(ValueError, match="normalised float"):
        demo.layer_input(np.zeros((8, 8), np.uint8))


# -- --coherent ----------------------------------------------------------------------------------


def test_coherent_runs_on_one_image_and_matches_the_emulator(tmp_path, capsys):
    """``--coherent`` on a synthetic 28x28 digit (downsampled to 8x8): registers and sizes
    printed, figure and JSON written, the circuit's law equal to the emulator's."""
    from qcnn.experiments.coherent_layer import run_coherent

    rng = np.random.default_rng(1)
    img = np.zeros((28, 28), dtype=np.uint8)
    img[6:22, 9:19] = rng.integers(100, 256, size=(16, 10))
    args = demo.build_parser().parse_args(
        ["--coherent", "--out", str(tmp_path), "--kernels", "2", "--ae-bits", "3", "--cap", "2"]
    )
    summary = run_coherent(args, img, "synthetic", 7)
    out = capsys.readouterr().out
    for word in ("patch index", "kernel index", "qubits 16", "depth", "multiplexer", "P(flag=1)"):
        assert word in out
    assert_png(tmp_path / "coherent_demo.png")
    saved = json.loads((tmp_path / "coherent_demo.json").read_text())
    assert saved["stats"]["qubits"] == summary["stats"]["qubits"] == 16
    assert saved["tv_circuit_vs_emulator"] < 1e-9
    assert saved["amplification_rounds"] >= 1 and 0 < saved["flag_probability"] < 1
    assert "QFT^-1" in (tmp_path / "coherent_circuit.txt").read_text()


def _exit_code(argv: list[str]) -> int:
    """``main``'s exit status: returned, or raised as SystemExit by a usage error."""
    try:
        return demo.main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--coherent", "--ae-median", "3"], "--ae-median"),
        (["--coherent", "--method", "hadamard"], "hadamard"),
        (["--coherent", "--noise", "0.01", "0.01"], "--noise"),
        (["--coherent", "--backend", "matrix_product_state"], "--backend"),
        (["--full-size"], "--full-size needs --coherent"),
        (["--coherent", "--full-size", "--dataset", "digits"], "28x28"),
    ],
)
def test_coherent_refuses_what_it_cannot_run(tmp_path, capsys, extra, message):
    code = _exit_code(["--out", str(tmp_path / "o"), "--dataset", "digits", *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err


def _has_gpu() -> bool:
    from qiskit_aer import AerSimulator

    return "GPU" in AerSimulator().available_devices()


def test_aer_device_gpu_is_refused_without_a_gpu(tmp_path, capsys):
    if _has_gpu():
        pytest.skip("this machine has an Aer GPU device: the refusal does not apply")
    code = _exit_code(["--coherent", "--aer-device", "GPU", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "GPU" in capsys.readouterr().err


def test_coherent_on_gpu_equals_cpu():
    """Aer's GPU build runs the same circuit to the same law (only where a GPU exists)."""
    if not _has_gpu():
        pytest.skip("no Aer GPU device here (needs qiskit-aer-gpu and a CUDA GPU)")
    from qcnn.circuits.coherent import build_coherent_circuit, coherent_law, statevector_backend
    from qcnn.quantum import QuantumConfig

    rng = np.random.default_rng(2)
    x, w = rng.random((1, 6, 6)), rng.normal(size=(2, 1, 3, 3))
    cfg = QuantumConfig(ipe="amplitude_estimation", noise_order="theory", ae_bits=3, cap=2.0)
    cc = build_coherent_circuit(x, w, None, cfg)
    cpu = coherent_law(cc, statevector_backend("CPU")).output_distribution()
    gpu = coherent_law(cc, statevector_backend("GPU")).output_distribution()
    assert np.abs(cpu - gpu).max() < 1e-9


def test_coherent_benchmark_runs_one_row():
    """``benchmarks/bench_coherent.py``: one row of the small problem (m = 3), its law equal to
    the emulator's."""
    import importlib.util

    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location(
        "bench_coherent", ROOT / "benchmarks" / "bench_coherent.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    row = bench.bench("small", 3, "double", 1, "split")
    assert row["qubits"] == 17 and row["tv"] < 1e-9
    assert row["cpu_s"] > 0 and row["peak_rss_mb"] > 0
