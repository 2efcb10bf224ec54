"""Smoke test of the training benchmark (the numbers themselves live in docs/benchmarks.md)."""

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_training.py"


def test_bench_training_runs_and_writes_json(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_training", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--batches", "2", "--no-torch", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    for key in ("qcnn_engine_cnn_s_per_image", "qcnn_emulator_qcnn_s_per_image"):
        assert res[key] > 0
    assert "torch_cnn_s_per_image" not in res  # --no-torch really skips the reference


def test_seconds_per_image_counts_only_timed_steps():
    spec = importlib.util.spec_from_file_location("bench_training", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    calls = []
    spi = bench.seconds_per_image(calls.append, batches=5, batch_size=4)
    assert calls == [0, 1, 2, 0, 1, 2, 3, 4] and spi >= 0  # 3 warm-up steps, then 5 timed


def test_bench_architectures_runs_and_writes_json(tmp_path):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_architectures.py"
    spec = importlib.util.spec_from_file_location("bench_architectures", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "arch.json"
    assert bench.main(["--batches", "1", "--arch", "lenet5", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [(r["arch"], r["shards"]) for r in res["runs"]] == [("lenet5", 1), ("lenet5", 2)]
    assert all(r["s_per_step"] > 0 and r["two_epochs_s"] > 0 for r in res["runs"])


def test_bench_overheads_runs(capsys):
    spec = importlib.util.spec_from_file_location(
        "bench_overheads", BENCH.parent / "bench_overheads.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--repeats", "1", "--no-circuits"]) == 0
    out = capsys.readouterr().out
    assert "one-BLAS-thread limit" in out and "statistics per forward" in out


def test_bench_theory_runs_and_writes_json(tmp_path):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_theory.py"
    spec = importlib.util.spec_from_file_location("bench_theory", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "theory.json"
    assert bench.main(["--steps", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["ratio"] > 0 and res["steps"] == 1
    assert set(res["results"]) == {"paper", "theory"}
    assert res["results"]["theory"]["hook_seconds"] > 0
