"""The paper QCNN trained with the torch layer and with the numpy emulator, seed for seed.

    QCNN_DATA_DIR=... python experiments/torch-engine/compare.py [--steps 1876] [--seeds 1,2,3]

Both engines start from the same initial weights (``qcnn.models.paper_cnn(seed)``, moved to torch
by ``qcnn.torch.models``), see the same batches (one permutation per epoch from
``seed_stream(seed, 'shuffle')``), train with SGD (lr 0.01, batch 64) under the same
``QuantumConfig`` (``--preset``), quantum backprop included, and are evaluated on the first
``--test`` test images. Their noise streams differ (numpy generators vs torch generators), so
the two accuracies of one seed are two draws of the same random training; the check is on the
means over seeds: they should differ by less than twice the standard error of their difference.
Prints one line per run and the summary; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=1876, help="SGD steps (1876: 2 epochs of MNIST)")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--preset", default="paper", choices=["paper", "theory"])
    p.add_argument("--test", type=int, default=10_000, help="test images evaluated")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import torch

    from qcnn.experiments.runner import load_data
    from qcnn.models import make_optimizer, paper_qcnn
    from qcnn.nn import softmax_cross_entropy
    from qcnn.quantum import QuantumConfig
    from qcnn.seeding import seed_stream
    from qcnn.torch import QuantumBackprop
    from qcnn.torch.models import paper_qcnn as torch_paper_qcnn

    torch.set_num_threads(1)
    config = QuantumConfig.preset(args.preset)
    data = load_data(test_size=args.test)
    seeds = [int(s) for s in args.seeds.split(",")]

    def batches(seed: int):
        rng = np.random.default_rng(seed_stream(seed, "shuffle"))
        n, b = len(data.x_train), 64
        while True:
            order = rng.permutation(n)
            for s in range(0, n - b + 1, b):
                yield order[s : s + b]

    def numpy_run(seed: int) -> float:
        model = paper_qcnn(config, seed)
        opt = make_optimizer(model, lr=0.01, config=config, seed=seed)
        model.train()
        for _, idx in zip(range(args.steps), batches(seed), strict=False):
            loss, d = softmax_cross_entropy(model.forward(data.x_train[idx]), data.y_train[idx])
            model.backward(d)
            opt.step()
        model.eval()
        correct = 0
        for s in range(0, len(data.x_test), 1000):
            pred = model.forward(data.x_test[s : s + 1000]).argmax(axis=1)
            correct += int((pred == data.y_test[s : s + 1000]).sum())
        return correct / len(data.x_test)

    def torch_run(seed: int) -> float:
        model = torch_paper_qcnn(config, seed)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        QuantumBackprop(opt, model, seed=seed_stream(seed, "gradient_noise"))
        lossf = torch.nn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train).long()
        for _, idx in zip(range(args.steps), batches(seed), strict=False):
            i = torch.from_numpy(idx)
            opt.zero_grad()
            lossf(model(xt[i]), yt[i]).backward()
            opt.step()
        correct = 0
        with torch.no_grad():
            for s in range(0, len(data.x_test), 1000):
                pred = model(torch.from_numpy(data.x_test[s : s + 1000])).argmax(dim=1).numpy()
                correct += int((pred == data.y_test[s : s + 1000]).sum())
        return correct / len(data.x_test)

    res: dict = {
        "preset": args.preset,
        "steps": args.steps,
        "test": len(data.x_test),
        "data": data.info.get("source"),
        "runs": [],
    }
    for seed in seeds:
        for engine, run in (("numpy", numpy_run), ("torch", torch_run)):
            t = time.perf_counter()
            acc = run(seed)
            res["runs"].append(
                {
                    "engine": engine,
                    "seed": seed,
                    "accuracy": acc,
                    "seconds": time.perf_counter() - t,
                }
            )
            print(
                f"{engine} seed {seed}: {100 * acc:.2f} % ({time.perf_counter() - t:.0f} s)",
                flush=True,
            )
    acc = {
        e: np.array([r["accuracy"] for r in res["runs"] if r["engine"] == e])
        for e in ("numpy", "torch")
    }
    k = len(seeds)
    diff = acc["torch"].mean() - acc["numpy"].mean()
    se = (
        math.sqrt(acc["torch"].var(ddof=1) / k + acc["numpy"].var(ddof=1) / k)
        if k > 1
        else float("nan")
    )
    res.update(
        numpy_mean=acc["numpy"].mean(),
        torch_mean=acc["torch"].mean(),
        difference=diff,
        se_difference=se,
        within_two_se=bool(abs(diff) < 2 * se),
    )
    print(
        f"numpy {100 * acc['numpy'].mean():.2f} %, torch {100 * acc['torch'].mean():.2f} %, "
        f"difference {100 * diff:+.2f} points, 2 SE = {200 * se:.2f} points: "
        f"{'within' if abs(diff) < 2 * se else 'NOT within'}"
    )
    if args.json:
        from qcnn.io import atomic_write_json

        atomic_write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
