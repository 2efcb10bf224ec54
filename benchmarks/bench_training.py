"""Training throughput of qcnn against PyTorch on the same network, in the same process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_training.py [--batches N]

Measures images per second while training KLP19's network (batch 64, float32, SGD lr 0.01):

- ``cnn``: qcnn's numpy engine vs ``torch.nn`` (if torch is installed: ``pip install torch==2.13.0``);
- ``qcnn``: qcnn's emulator at the paper preset (eps 0.01, C 10, sigma 0.5, delta 0.01) vs a
  PyTorch implementation of the same model written here (Gaussian IPE noise with per-image patch
  norms, cap-noise-cap, value-proportional sampling with ``torch.multinomial``, gradient noise on
  every parameter), vectorised over the batch like ours.

Figures are reported as ratios to the PyTorch run measured in the same command (the machine's
speed cancels out), plus the implied time of one 60,000-image epoch. ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from qcnn.models import make_optimizer, paper_cnn, paper_qcnn
from qcnn.nn import softmax_cross_entropy
from qcnn.nn.parallel import DataParallel
from qcnn.quantum import QuantumConfig

EPOCH = 60_000


def mnist_or_random(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        from qcnn.experiments.runner import load_data

        data = load_data(train_size=n, test_size=1)
        return data.x_train, data.y_train, data.info["source"]
    except Exception as exc:  # benchmarks must run anywhere; the numbers do not depend on the data
        rng = np.random.default_rng(0)
        print(f"(no MNIST: {exc}; using random images)", file=sys.stderr)
        return (
            rng.standard_normal((n, 1, 28, 28), dtype=np.float32),
            rng.integers(0, 10, n),
            "random",
        )


def seconds_per_image(step, batches: int, batch_size: int) -> float:
    """Time ``batches`` calls of ``step(i)`` after 3 warm-up calls; seconds per image."""
    for i in range(3):
        step(i)
    t = time.perf_counter()
    for i in range(batches):
        step(i)
    return (time.perf_counter() - t) / (batches * batch_size)


def time_qcnn(model, optimizer, x, y, batches: int, batch_size: int, shards: int = 1) -> float:
    """Seconds per image for ``batches`` SGD steps (after 3 warm-up steps), the batch split
    into ``shards`` slices trained in parallel threads as ``fit(..., shards=...)`` does."""
    n = len(x)
    parallel = DataParallel(model, shards)

    def step(i):
        s = (i * batch_size) % (n - batch_size)
        parallel.train_step(x[s : s + batch_size], y[s : s + batch_size], softmax_cross_entropy)
        optimizer.step()

    return seconds_per_image(step, batches, batch_size)


# ----------------------------------------------------------------------------------------------
# PyTorch reference implementations
# ----------------------------------------------------------------------------------------------


def torch_models(torch):
    nn = torch.nn

    def head():
        return [
            nn.Flatten(),
            nn.Linear(2560, 300),
            nn.ReLU(),
            nn.Linear(300, 50),
            nn.ReLU(),
            nn.Linear(50, 10),
        ]

    def cnn():
        return nn.Sequential(nn.Conv2d(1, 5, 7), nn.ReLU(), nn.Conv2d(5, 10, 7), nn.ReLU(), *head())

    class QuantumConv(nn.Module):
        """The emulated quantum layer in PyTorch (same model as qcnn.quantum.QuantumConv2D)."""

        def __init__(self, c_in, c_out, k, eps, cap, sigma):
            super().__init__()
            self.conv = nn.Conv2d(c_in, c_out, k)
            self.k, self.eps, self.cap, self.sigma = k, eps, cap, sigma
            self.ones = torch.ones(1, c_in, k, k)

        def forward(self, x):
            y = self.conv(x)
            with torch.no_grad():
                patch = torch.sqrt(
                    torch.nn.functional.conv2d(x * x, self.ones).clamp_min(0)
                )  # (N,1,H',W')
                knorm = self.conv.weight.flatten(1).norm(dim=1).view(1, -1, 1, 1)
                noise = 2 * self.eps * patch * knorm * torch.randn_like(y)
            f = torch.clamp(torch.clamp(y, 0, self.cap) + noise, 0, self.cap)
            with torch.no_grad():
                n = f.shape[0]
                flat = f.reshape(n, -1)
                shots = int(self.sigma * flat.shape[1])
                live = flat.sum(1) > 0
                mask = torch.zeros_like(flat, dtype=torch.bool)
                if live.any():
                    idx = torch.multinomial(flat[live], shots, replacement=True)
                    rows = mask[live]
                    rows.scatter_(1, idx, True)
                    mask[live] = rows
            return f * mask.view_as(f)

    def qcnn(cfg: QuantumConfig):
        return nn.Sequential(
            QuantumConv(1, 5, 7, cfg.eps, cfg.cap, cfg.sigma),
            QuantumConv(5, 10, 7, cfg.eps, cfg.cap, cfg.sigma),
            *head(),
        )

    return cnn, qcnn


def time_torch(torch, model, x, y, batches: int, batch_size: int, delta: float = 0.0) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    lossf = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n = len(x)

    def step(i):
        s = (i * batch_size) % (n - batch_size)
        opt.zero_grad()
        lossf(model(xt[s : s + batch_size]), yt[s : s + batch_size]).backward()
        if delta:
            with torch.no_grad():
                for p in model.parameters():
                    p.grad += delta * p.grad.norm() * torch.randn_like(p.grad)
        opt.step()

    return seconds_per_image(step, batches, batch_size)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batches", type=int, default=200, help="timed SGD steps per measurement")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)
    if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("OPENBLAS_L2_SIZE"):
        print(
            "warning: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set; they slow numpy down",
            file=sys.stderr,
        )
    n = max(args.batches * args.batch_size, 4096)
    x, y, source = mnist_or_random(n)
    cfg = QuantumConfig.paper()
    results = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "data": source,
        "batch_size": args.batch_size,
        "batches": args.batches,
        "numpy": np.__version__,
    }

    cnn = paper_cnn(1)
    results["qcnn_engine_cnn_s_per_image"] = time_qcnn(
        cnn, make_optimizer(cnn), x, y, args.batches, args.batch_size
    )
    q = paper_qcnn(cfg, 1)
    results["qcnn_emulator_qcnn_s_per_image"] = time_qcnn(
        q, make_optimizer(q, config=cfg), x, y, args.batches, args.batch_size
    )
    q = paper_qcnn(cfg, 1)
    results["qcnn_emulator_qcnn_2shards_s_per_image"] = time_qcnn(
        q, make_optimizer(q, config=cfg), x, y, args.batches, args.batch_size, shards=2
    )
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print(
                "torch not installed (pip install torch==2.13.0): skipping the reference",
                file=sys.stderr,
            )
    if torch is not None:
        torch.manual_seed(0)
        results["torch"] = torch.__version__
        results["torch_threads"] = torch.get_num_threads()
        tcnn, tqcnn = torch_models(torch)
        results["torch_cnn_s_per_image"] = time_torch(
            torch, tcnn(), x, y, args.batches, args.batch_size
        )
        results["torch_qcnn_s_per_image"] = time_torch(
            torch, tqcnn(cfg), x, y, args.batches, args.batch_size, delta=cfg.delta
        )

    print(
        f"{'network':8s} {'implementation':16s} {'images/s':>9s} {'s / 60k epoch':>14s} {'vs torch':>9s}"
    )
    for net, ours, ref in (
        ("cnn", "qcnn_engine_cnn", "torch_cnn"),
        ("qcnn", "qcnn_emulator_qcnn", "torch_qcnn"),
    ):
        rows = [("qcnn (numpy)", results[f"{ours}_s_per_image"])]
        if f"{ours}_2shards_s_per_image" in results:
            rows.append(("qcnn, 2 shards", results[f"{ours}_2shards_s_per_image"]))
        if f"{ref}_s_per_image" in results:
            rows.append(("pytorch", results[f"{ref}_s_per_image"]))
        for name, spi in rows:
            ratio = (
                spi / results[f"{ref}_s_per_image"]
                if f"{ref}_s_per_image" in results
                else float("nan")
            )
            print(f"{net:8s} {name:16s} {1 / spi:9.0f} {spi * EPOCH:14.1f} {ratio:8.2f}x")
        if f"{ref}_s_per_image" in results:
            results[f"{net}_ratio_to_torch"] = (
                results[f"{ours}_s_per_image"] / results[f"{ref}_s_per_image"]
            )
            if f"{ours}_2shards_s_per_image" in results:
                results[f"{net}_2shards_ratio_to_torch"] = (
                    results[f"{ours}_2shards_s_per_image"] / results[f"{ref}_s_per_image"]
                )
    if args.json:
        from qcnn.io import atomic_write_json

        atomic_write_json(args.json, results)
    else:
        print(json.dumps({k: v for k, v in results.items() if "ratio" in k}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
