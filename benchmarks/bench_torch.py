"""The paper QCNN's training step with the torch layer, the numpy emulator and plain torch, side
by side in one command (issue 20).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_torch.py [--steps N]

For each preset (``paper``, ``theory``; ``--presets``) it times one SGD step (batch 64, lr 0.01,
KLP19's network on MNIST) of

- ``numpy``: the emulator (``qcnn.models.paper_qcnn`` + ``make_optimizer``, one shard and two);
- ``torch``: ``qcnn.torch.paper_qcnn`` + ``torch.optim.SGD`` + ``QuantumBackprop`` on
  ``--device`` (default cpu);

and, once, the plain torch CNN (same network, ReLU). Where the torch QCNN's extra time goes is
measured by ablation, each row one more part of the model switched on: the quantum layer with no
error at all (conv, norms, cap), + the estimation error, + sampling (the full forward), + the
gradient model (the full step). Figures are seconds per step (the mean over ``--steps`` after 3
warm-up steps); compare them only within one run of this command.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from qcnn.models import make_optimizer
from qcnn.models import paper_qcnn as numpy_paper_qcnn
from qcnn.nn import softmax_cross_entropy
from qcnn.nn.parallel import DataParallel
from qcnn.quantum import QuantumConfig

BATCH = 64
PRESETS = {"paper": QuantumConfig.paper, "theory": QuantumConfig.theory}


def data(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        from qcnn.experiments.runner import load_data

        d = load_data(train_size=n, test_size=1)
        return d.x_train, d.y_train, d.info["source"]
    except Exception as exc:  # the timing does not depend on the data
        print(f"(no MNIST: {exc}; random images)", file=sys.stderr)
        rng = np.random.default_rng(0)
        return (
            rng.standard_normal((n, 1, 28, 28), dtype=np.float32),
            rng.integers(0, 10, n),
            "random",
        )


def seconds_per_step(step, steps: int) -> float:
    for i in range(3):
        step(i)
    t = time.perf_counter()
    for i in range(steps):
        step(3 + i)
    return (time.perf_counter() - t) / steps


def numpy_step(config: QuantumConfig, x, y, shards: int):
    model = numpy_paper_qcnn(config, seed=1)
    opt = make_optimizer(model, config=config, seed=1)
    parallel = DataParallel(model, shards)

    def step(i: int) -> None:
        s = (i * BATCH) % (len(x) - BATCH)
        parallel.train_step(x[s : s + BATCH], y[s : s + BATCH], softmax_cross_entropy)
        opt.step()

    return step


def torch_step(torch, model, x, y, device, backprop_config: QuantumConfig | None):
    from qcnn.torch import QuantumBackprop

    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    if backprop_config is not None and backprop_config.delta > 0:
        QuantumBackprop(opt, model, backprop_config, seed=1)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    lossf = torch.nn.CrossEntropyLoss()

    def step(i: int) -> None:
        s = (i * BATCH) % (len(x) - BATCH)
        opt.zero_grad()
        lossf(model(xt[s : s + BATCH]), yt[s : s + BATCH]).backward()
        opt.step()
        if device != "cpu":
            torch.cuda.synchronize()

    return step


def ablations(config: QuantumConfig) -> list[tuple[str, QuantumConfig]]:
    """The torch rows: each switches on one more part of ``config``."""
    no_error = config.replace(
        eps=0.0,
        ipe="exact",
        sigma=None,
        eta=None,
        delta=0.0,
        failure_prob=None,
        noise_per_shot=False,
        sampled_value="exact",
        tomography_normaliser="exact",
        gradient_norm="exact",
        input_gradient_noise=False,
    )
    noise = config.replace(
        sigma=None,
        eta=None,
        delta=0.0,
        noise_per_shot=False,
        sampled_value="exact",
        tomography_normaliser="exact",
        gradient_norm="exact",
        input_gradient_noise=False,
    )
    forward = config.replace(delta=0.0, gradient_norm="exact", input_gradient_noise=False)
    return [
        ("quantum layer, no error", no_error),
        ("+ estimation error", noise),
        ("+ sampling (full forward)", forward),
        ("+ gradient model (full step)", config),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=20, help="timed steps per row")
    p.add_argument("--presets", default="paper,theory", help="comma-separated: paper, theory")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch's intra-op threads (default 1, as the numpy emulator's one shard; on a busy "
        "machine more threads wait for each other)",
    )
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)
    presets = [s.strip() for s in args.presets.split(",") if s.strip()]
    bad = [s for s in presets if s not in PRESETS]
    if bad or args.steps < 1:
        print(f"error: --presets takes {sorted(PRESETS)}, --steps >= 1", file=sys.stderr)
        return 2
    try:
        import torch

        from qcnn.torch.models import paper_cnn, paper_qcnn
    except ImportError:
        print("error: bench_torch needs torch: pip install '.[torch]'", file=sys.stderr)
        return 2
    torch.set_num_threads(args.torch_threads)
    x, y, source = data(max(BATCH * (args.steps + 4), 1024))
    res: dict = {
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": args.device,
        "data": source,
        "steps": args.steps,
        "rows": [],
    }

    def row(preset: str, impl: str, what: str, step) -> None:
        s = seconds_per_step(step, args.steps)
        res["rows"].append({"preset": preset, "impl": impl, "what": what, "s_per_step": s})
        print(f"{preset:7s} {impl:8s} {what:32s} {s * 1e3:9.1f} ms/step", flush=True)

    torch.manual_seed(0)
    row("-", "torch", "plain CNN (ReLU)", torch_step(torch, paper_cnn(1), x, y, args.device, None))
    for preset in presets:
        config = PRESETS[preset]()
        row(preset, "numpy", "emulator, 1 shard", numpy_step(config, x, y, 1))
        row(preset, "numpy", "emulator, 2 shards", numpy_step(config, x, y, 2))
        for what, cfg in ablations(config):
            model = paper_qcnn(cfg, seed=1)
            row(preset, "torch", what, torch_step(torch, model, x, y, args.device, cfg))
    by = {(r["preset"], r["impl"], r["what"]): r["s_per_step"] for r in res["rows"]}
    cnn = by[("-", "torch", "plain CNN (ReLU)")]
    for preset in presets:
        full = by[(preset, "torch", "+ gradient model (full step)")]
        numpy_best = min(
            by[(preset, "numpy", "emulator, 1 shard")], by[(preset, "numpy", "emulator, 2 shards")]
        )
        res[f"{preset}_torch_over_numpy"] = full / numpy_best
        res[f"{preset}_torch_over_plain_cnn"] = full / cnn
        print(
            f"{preset}: torch QCNN step = {full / numpy_best:.2f}x the numpy emulator's best, "
            f"{full / cnn:.1f}x the plain torch CNN's"
        )
    if args.json:
        from qcnn.io import atomic_write_json

        atomic_write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
