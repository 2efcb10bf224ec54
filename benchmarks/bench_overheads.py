"""Benchmark: the small fixed costs the code's design relies on (figures in docs/benchmarks.md).

- entering and leaving the one-BLAS-thread limit of a data-parallel step (threadpoolctl);
- the statistics an observer records per forward pass of a quantum layer (BLAS dot products,
  a spectral norm), for the paper network's first layer at batch 64;
- building Qiskit's level-0 pass manager (why ``CircuitRunner`` builds it once);
- Aer's experiment-level parallelism (``AER_DEFAULT_OPTIONS``) against Aer's defaults, on 100
  output-state circuits of 7,500 shots each (the sampling step's shape).

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_overheads.py``
(``--no-circuits`` skips the two Qiskit measurements).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from qcnn.nn.parallel import one_blas_thread
from qcnn.quantum import LayerStatistics, QuantumConfig, QuantumConv2D
from qcnn.quantum.stages import ForwardRecord


def median_seconds(fn: Callable[[], object], repeats: int, inner: int = 1) -> float:
    """Median over ``repeats`` of the mean time of ``inner`` calls of ``fn`` (after one call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def blas_limit() -> None:
    with one_blas_thread():
        pass


def layer_stats_call(repeats: int) -> float:
    """Seconds per forward pass that a :class:`LayerStatistics` observer adds (its ``measure``)
    on the paper's first quantum layer with 64 images; nothing without an observer."""
    layer = QuantumConv2D(1, 5, 7, config=QuantumConfig.paper(), rng=0)
    captured: list[ForwardRecord] = []

    class Capture:
        def __call__(self, layer: QuantumConv2D, record: ForwardRecord) -> None:
            captured.append(record)

        def reset(self) -> None:
            pass

    layer.observe(Capture())
    layer.forward(np.random.default_rng(0).normal(size=(64, 1, 28, 28)).astype(np.float32))
    (record,) = captured
    stats = LayerStatistics()
    return median_seconds(lambda: stats.measure(layer, record), repeats, inner=20)


def pass_manager_build(repeats: int) -> float:
    from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager

    from qcnn.circuits import aer_backend

    backend = aer_backend()
    return median_seconds(
        lambda: generate_preset_pass_manager(optimization_level=0, backend=backend), repeats
    )


def aer_options(repeats: int) -> tuple[float, float]:
    """Seconds for 100 output-state circuits x 7,500 shots: (Aer defaults, our options)."""
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    from qcnn.circuits import aer_backend
    from qcnn.circuits.sampling import output_state_circuit

    rng = np.random.default_rng(0)
    circuits = [output_state_circuit(rng.random(64))[0] for _ in range(100)]
    out = []
    for backend in (AerSimulator(), aer_backend()):
        compiled = transpile(circuits, backend, optimization_level=0)
        out.append(
            median_seconds(lambda b=backend, c=compiled: b.run(c, shots=7500).result(), repeats)
        )
    return out[0], out[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-circuits", action="store_true", help="skip the Qiskit measurements")
    args = p.parse_args(argv)
    print(
        f"one-BLAS-thread limit, enter + leave: {1e6 * median_seconds(blas_limit, args.repeats, 1000):.1f} us"
    )
    print(
        f"quantum layer statistics per forward (5x22x22, batch 64): {1e3 * layer_stats_call(args.repeats):.2f} ms"
    )
    if not args.no_circuits:
        print(f"level-0 pass manager build: {1e3 * pass_manager_build(args.repeats):.0f} ms")
        default, ours = aer_options(args.repeats)
        print(
            f"100 x 7,500-shot circuits: Aer defaults {default:.2f} s, AER_DEFAULT_OPTIONS {ours:.2f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
