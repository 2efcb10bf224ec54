"""Training speed of every architecture of qcnn.models, classical and quantized, on 2 cores.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_architectures.py \
        [--arch alexnet-small ...] [--batches N] [--json out.json]

For each architecture: ``N`` SGD steps (batch 64, float32, lr 0.01, as the paper trains) after 3
warm-up steps, classical (unsharded, as the ``mnist`` command trains a CNN) and quantized at the
paper preset (eps 0.01, C 10, sigma 0.5, delta 0.01; 2 shards, the command's default for a
QCNN), on MNIST images. Reports seconds per step, the implied training time of 2 epochs of
60,000 images (1,875 steps; evaluation excluded) and the ratio to KLP19's CNN measured in the
same command (the machine's speed drifts between runs; ratios do not). Sizing target of issue 8:
alexnet-small and inception-small train 2 epochs in about 10 minutes or less on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np

from qcnn.models import MODELS, build_model, make_optimizer
from qcnn.nn import softmax_cross_entropy
from qcnn.nn.parallel import DataParallel
from qcnn.quantum import QuantumConfig

STEPS_2_EPOCHS = 2 * 60_000 // 64 + 1  # 1,875 (the last batch of each epoch is short: 938 x 2)


def load_images(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        from qcnn.experiments.runner import load_data

        data = load_data(train_size=n, test_size=1)
        return data.x_train, data.y_train, data.info["source"]
    except Exception as exc:  # the timing does not depend on the pixel values
        print(f"(no MNIST: {exc}; random images)", file=sys.stderr)
        rng = np.random.default_rng(0)
        return (
            rng.standard_normal((n, 1, 28, 28), dtype=np.float32),
            rng.integers(0, 10, n),
            "random",
        )


def seconds_per_step(arch: str, config, x, y, batches: int, batch_size: int, shards: int) -> float:
    model = build_model(arch, config, seed=1)
    optimizer = make_optimizer(model, 0.01, 0.0, config, seed=1)
    parallel = DataParallel(model, shards)
    n = len(x)

    def step(i: int) -> None:
        s = (i * batch_size) % (n - batch_size)
        parallel.train_step(x[s : s + batch_size], y[s : s + batch_size], softmax_cross_entropy)
        optimizer.step()

    for i in range(3):
        step(i)
    t = time.perf_counter()
    for i in range(batches):
        step(i)
    return (time.perf_counter() - t) / batches


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--batches", type=int, default=200, help="timed steps per network")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-quantum", action="store_true", help="time the classical networks only")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    x, y, source = load_images(max(4096, args.batch_size * 4))
    results = {
        "batches": args.batches,
        "batch_size": args.batch_size,
        "data": source,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "runs": [],
    }
    ref = seconds_per_step("paper", None, x, y, args.batches, args.batch_size, 1)
    print(f"{'network':34s} {'s/step':>8s} {'2 epochs (s)':>13s} {'x paper CNN':>12s}")
    print(f"{'paper CNN (reference)':34s} {ref:8.4f} {ref * STEPS_2_EPOCHS:13.0f} {1.0:12.2f}")
    kinds = [("classical", None, 1)]
    if not args.no_quantum:
        kinds.append(("quantum (paper preset, 2 shards)", QuantumConfig.paper(), 2))
    for arch in args.arch:
        for kind, config, shards in kinds:
            s = seconds_per_step(arch, config, x, y, args.batches, args.batch_size, shards)
            results["runs"].append(
                {
                    "arch": arch,
                    "kind": kind,
                    "shards": shards,
                    "s_per_step": s,
                    "two_epochs_s": s * STEPS_2_EPOCHS,
                    "ratio_to_paper_cnn": s / ref,
                }
            )
            name = f"{arch} {kind}"
            print(f"{name:34s} {s:8.4f} {s * STEPS_2_EPOCHS:13.0f} {s / ref:12.2f}", flush=True)
    results["paper_cnn_s_per_step"] = ref
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
