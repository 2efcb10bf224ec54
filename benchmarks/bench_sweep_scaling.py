"""Wall time of the quick sweep on 1 and 2 workers, local pool and Dask LocalCluster.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_sweep_scaling.py \\
        [--train-size 10000] [--test-size 2000] [--json out.json]

Runs ``python -m qcnn.experiments.sweep --grid quick`` (the CNN and two QCNN runs, sigma 0.1 and
0.5, 2 epochs, no quantum-forward evaluations) four times, each in a fresh output folder and a
fresh process: ``--workers 1`` (in process), ``--workers 2`` (local pool), ``--scheduler
local:1`` and ``--scheduler local:2`` (Dask LocalCluster). Reports each wall time (process start
to exit: imports, data, cluster start-up, training, summary) and the per-run cost recorded in
the runs (training + evaluation seconds), then projects the paper grid (41 runs: the CNN and 40
QCNN configurations) with 3 seeds (123 runs) on full MNIST onto k workers: per-run costs scaled
from ``--train-size`` to 60,000 training and 10,000 test images (both linear in the images), the
work spread over k workers (longest run first), plus the measured fixed overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "in-process, 1 worker": ["--workers", "1"],
    "local pool, 2 workers": ["--workers", "2"],
    "LocalCluster, 1 worker": ["--scheduler", "local:1"],
    "LocalCluster, 2 workers": ["--scheduler", "local:2"],
}
PAPER_QCNN_RUNS, SEEDS = 40, 3
FULL_TRAIN, FULL_TEST = 60_000, 10_000


def run_sweep(flags: list[str], train: int, test: int, out: Path) -> dict:
    argv = [
        sys.executable,
        "-m",
        "qcnn.experiments.sweep",
        "--grid",
        "quick",
        "--epochs",
        "2",
        "--train-size",
        str(train),
        "--test-size",
        str(test),
        "--no-quantum-forward",
        "--quiet",
        "--out",
        str(out),
        *flags,
    ]
    t0 = time.perf_counter()
    subprocess.run(
        argv, check=True, capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    wall = time.perf_counter() - t0
    runs = {}
    for run_json in sorted((out / "runs").glob("*/run.json")):
        r = json.loads(run_json.read_text())
        runs[run_json.parent.name] = {"train_s": r["train_seconds"], "eval_s": r["eval_seconds"]}
    return {"wall_s": wall, "runs": runs}


def makespan(costs: list[float], k: int) -> float:
    """Longest-processing-time-first schedule of ``costs`` on ``k`` workers: the finish time."""
    loads = [0.0] * k
    for c in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += c
    return max(loads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-size", type=int, default=10_000)
    p.add_argument("--test-size", type=int, default=2_000)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in CONFIGS.items():
            results[name] = run_sweep(flags, args.train_size, args.test_size, Path(tmp) / name)
            print(f"{name:28s} wall {results[name]['wall_s']:7.1f} s", flush=True)
    # per-run cost from the single-worker in-process sweep (one BLAS thread, no contention)
    runs = results["in-process, 1 worker"]["runs"]
    scale_train, scale_test = FULL_TRAIN / args.train_size, FULL_TEST / args.test_size
    full = {k: v["train_s"] * scale_train + v["eval_s"] * scale_test for k, v in runs.items()}
    cnn = next(v for k, v in full.items() if k.startswith("cnn"))
    qcnn = [v for k, v in full.items() if k.startswith("qcnn")]
    qcnn_mean = sum(qcnn) / len(qcnn)
    costs = ([cnn] + [qcnn_mean] * PAPER_QCNN_RUNS) * SEEDS
    work = sum(runs[k]["train_s"] + runs[k]["eval_s"] for k in runs)
    overhead = {
        n: r["wall_s"]
        - (
            work
            if "1 worker" in n
            else makespan([v["train_s"] + v["eval_s"] for v in runs.values()], 2)
        )
        for n, r in results.items()
    }
    projection = {k: makespan(costs, k) for k in (1, 2, 4, 8, 16, 32, 64, 123)}
    summary = {
        "train_size": args.train_size,
        "test_size": args.test_size,
        "results": results,
        "full_mnist_run_s": full,
        "qcnn_mean_full_run_s": qcnn_mean,
        "cnn_full_run_s": cnn,
        "overhead_s": overhead,
        "paper_grid_3_seeds_runs": len(costs),
        "paper_grid_3_seeds_work_s": sum(costs),
        "projection_makespan_s": projection,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
