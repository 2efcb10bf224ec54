"""Cost of the non-finite input check of Conv2D / QuantumConv2D in a training step.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_input_check.py [--steps N]

Times the training step (forward, backward, SGD) of KLP19's CNN and QCNN (paper preset, batch
64, 1 shard) with the check on, and with ``qcnn.nn.layers.check_finite`` replaced by a no-op,
alternating the two in rounds so that the machine's drift hits both alike. Prints the ratio
(checked / unchecked) of the median step times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import qcnn.nn.layers as layers
from qcnn.models import make_optimizer, paper_cnn, paper_qcnn
from qcnn.nn import softmax_cross_entropy
from qcnn.quantum import QuantumConfig


def _step_times(model, optimizer, x, y, steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        logits = model(x)
        _, dlogits = softmax_cross_entropy(logits, y)
        model.backward(dlogits)
        optimizer.step()
        times.append(time.perf_counter() - t)
    return times


def measure(steps: int, rounds: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    real_check = layers.check_finite
    result = {}
    for name in ("cnn", "qcnn"):
        cfg = QuantumConfig.paper()
        model = paper_cnn(seed=1) if name == "cnn" else paper_qcnn(cfg, seed=1)
        opt = make_optimizer(model, lr=1e-4, config=None if name == "cnn" else cfg, seed=1)
        _step_times(model, opt, x, y, 3)  # warm-up
        on, off = [], []
        for _ in range(rounds):
            layers.check_finite = real_check
            on += _step_times(model, opt, x, y, steps)
            layers.check_finite = lambda *_a, **_k: None
            off += _step_times(model, opt, x, y, steps)
        layers.check_finite = real_check
        t_on, t_off = statistics.median(on), statistics.median(off)
        result[f"{name}_step_ms_checked"] = 1e3 * t_on
        result[f"{name}_step_ms_unchecked"] = 1e3 * t_off
        result[f"{name}_ratio"] = t_on / t_off
    # the check alone on the two conv inputs of the QCNN (first: images, second: a feature map)
    for shape in ((64, 1, 28, 28), (64, 5, 22, 22)):
        a = rng.standard_normal(shape, dtype=np.float32)
        t = time.perf_counter()
        for _ in range(200):
            real_check(a, "x")
        result[f"check_us_{'x'.join(map(str, shape))}"] = 1e6 * (time.perf_counter() - t) / 200
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="steps per round and setting")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    res = measure(args.steps, args.rounds)
    for k, v in res.items():
        print(f"{k:32s} {v:10.4f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
