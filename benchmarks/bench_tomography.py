"""Speed of the emulated l-infinity tomography on large vectors, against numpy's multinomial.

    flock -x /tmp/qcnn-cpu.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/bench_tomography.py [--repeats 5] [--json out.json]

For d = 768,000 (the first dense layer's gradient of the paper network) and d = 10^6 with
delta = 0.01 (N = ceil(36 ln d / delta^2) ~ 4.9-5.0 million shots), times
``tomography_estimate`` (both KP steps: magnitudes and signs) and, in the same command, the
reference cost of one exact draw of the magnitude counts with ``numpy.random.Generator.multinomial``
(one conditional binomial per entry). Vectors are heavy-tailed like gradients (Gaussian times a
log-normal scale, 13 % exact zeros). Also the per-image tomography of a batch
``(64, 2420)`` (the gradient the paper network's second quantum layer passes back).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from qcnn.quantum import tomography_estimate


def gradient_like(d: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(d) * np.exp(1.5 * rng.standard_normal(d))
    v[rng.random(d) < 0.13] = 0.0
    return v.astype(np.float32)


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    out = {}
    for d in (768_000, 1_000_000):
        v = gradient_like(d, rng)
        n = math.ceil(36 * math.log(d) / 0.01**2)
        p64 = v.astype(np.float64) ** 2
        p64 /= p64.sum()
        ours = best_of(lambda v=v: tomography_estimate(v, 0.01, rng), args.repeats)
        ref = best_of(lambda p64=p64, n=n: rng.multinomial(n, p64), args.repeats)
        out[f"d{d}"] = {"N": n, "tomography_s": ours, "numpy_multinomial_s": ref}
        print(
            f"d = {d:,}, N = {n:,}: tomography_estimate (magnitudes + KP signs) {1e3 * ours:.0f} ms; "
            f"numpy multinomial (magnitudes only) {1e3 * ref:.0f} ms",
            flush=True,
        )
    batch = np.stack([gradient_like(2420, rng) for _ in range(64)])
    t = best_of(lambda: tomography_estimate(batch, 0.01, rng, batch_dims=1), args.repeats)
    out["batch64x2420"] = {"tomography_s": t}
    print(
        f"64 vectors of d = 2,420 (per image), N = {math.ceil(36 * math.log(2420) / 1e-4):,} "
        f"each: {1e3 * t:.0f} ms"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": out, "numpy": np.__version__}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
