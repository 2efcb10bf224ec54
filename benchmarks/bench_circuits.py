"""Benchmark: one quantum convolution layer forward pass executed as circuits.

The target problem: one 8x8 image, 4 kernels 3x3 (36 patches x 4 kernels = 144 inner products,
each its own circuit), amplitude estimation with m = 4 evaluation qubits (9 qubits per
circuit), capped ReLU, sampling of the output state (sigma = 0.5). The first pass also builds
and transpiles the circuit template; the table reports it separately from the warm passes.

Run: ``python benchmarks/bench_circuits.py [--ae-bits 3 4 5] [--repeats 5] [--backend automatic]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from qcnn.circuits import CircuitExecutor, aer_backend
from qcnn.circuits.backend import AER_METHODS
from qcnn.quantum import QuantumConfig, QuantumConv2D


def bench(method: str, ae_bits: int, backend_method: str, repeats: int, shots: int) -> dict:
    """Time ``repeats`` warm forward passes (after one cold pass) of the 8x8/4-kernel layer."""
    cfg = QuantumConfig(ipe="amplitude_estimation", ae_bits=ae_bits, sigma=0.5, cap=10.0)
    executor = CircuitExecutor(
        backend=aer_backend(backend_method), method=method, ae_bits=ae_bits, shots=shots
    )
    layer = QuantumConv2D(1, 4, 3, config=cfg, executor=executor, rng=0, dtype=np.float64)
    layer.eval()  # inference passes, as measured before (no cache kept)
    x = np.random.default_rng(1).normal(size=(1, 1, 8, 8))  # dense: all 144 pairs run
    t0 = time.perf_counter()
    layer.forward(x)
    cold = time.perf_counter() - t0
    walls, ipe_s = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        layer.forward(x)
        walls.append(time.perf_counter() - t0)
        ipe_s.append(executor.report["ipe"]["seconds"])
    rep = executor.report["ipe"]
    wall = statistics.median(walls)
    return {
        "method": method if method == "hadamard" else f"AE m={ae_bits}",
        "qubits": rep["native"].qubits,
        "cx (cx+u)": rep["cx_u"].two_qubit_gates,
        "circuits": rep["circuits"],
        "calls": rep["backend_calls"],
        "cold s": cold,
        "forward s": wall,
        "IPE s": statistics.median(ipe_s),
        "circuits/s": rep["circuits"] / wall,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ae-bits", type=int, nargs="+", default=[4], help="m values to time")
    p.add_argument("--repeats", type=int, default=5, help="warm forward passes per row")
    p.add_argument("--backend", choices=AER_METHODS, default="automatic", help="Aer method")
    p.add_argument(
        "--hadamard-shots",
        type=int,
        default=1024,
        help="shots per circuit of the Hadamard-only row (0: skip the row)",
    )
    args = p.parse_args(argv)
    rows = [bench("amplitude_estimation", m, args.backend, args.repeats, 1) for m in args.ae_bits]
    if args.hadamard_shots:
        rows.append(bench("hadamard", 1, args.backend, args.repeats, args.hadamard_shots))
    cols = list(rows[0])
    print(f"8x8 image, 4 kernels 3x3, backend Aer {args.backend}; median of {args.repeats}")
    print(" | ".join(f"{c:>10}" for c in cols))
    for r in rows:
        print(
            " | ".join(
                f"{r[c]:>10.3f}" if isinstance(r[c], float) else f"{r[c]!s:>10}" for c in cols
            )
        )


if __name__ == "__main__":
    main()
