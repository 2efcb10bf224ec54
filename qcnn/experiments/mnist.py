"""``python -m qcnn.experiments.mnist``: train the CNN and the QCNN side by side on MNIST.

By default: the KLP19 network, classical and quantum at the paper preset (eps 0.01, C 10,
sigma 0.5, delta 0.01), 2 epochs of SGD (lr 0.01, batch 64) on full MNIST, plus the trained CNN's
weights evaluated under the quantum forward pass. Writes into ``--out``:

- ``results.json``: dataset, environment, and one record per run (accuracy, loss, time, history);
- ``history.csv``: every loss log and epoch summary of every run;
- ``curves.png``: training loss against images seen, and test accuracy per epoch;
- ``feature_maps.png``: one test image through the first quantum layer, stage by stage;
- ``<run id>/``: checkpoint (for ``--resume``), final weights ``model.npz`` and ``run.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.experiments.cli import check_output_dir, nonneg_float, nonneg_int, pos_float, pos_int
from qcnn.experiments.runner import (
    Data,
    RunSpec,
    environment_info,
    load_data,
    quantum_forward_run,
    train_run,
)
from qcnn.io import atomic_write_json, atomic_write_text
from qcnn.models import MODELS, build_model, transfer_weights
from qcnn.quantum import QuantumConfig
from qcnn.train import History, rows_to_csv

__all__ = ["main", "build_parser", "config_from_args"]


def add_quantum_arguments(parser: argparse.ArgumentParser) -> None:
    """The QuantumConfig flags, shared with the sweep."""
    q = parser.add_argument_group("quantum layer (model §2-3; defaults: the paper preset)")
    q.add_argument(
        "--eps",
        type=nonneg_float,
        default=0.01,
        help="inner-product precision eps >= 0 (default 0.01)",
    )
    q.add_argument(
        "--cap", type=pos_float, default=10.0, help="cap C > 0 of the capped ReLU (default 10)"
    )
    q.add_argument("--sigma", type=float, default=None,
                   help="fraction of output pixels drawn as shots, 0 < sigma <= 1 (default 0.5 unless --eta "
                        "or --no-sampling)")  # fmt: skip
    q.add_argument(
        "--eta",
        type=pos_float,
        default=None,
        help="size the sampling by the tomography precision eta: N = ceil(36 ln d / eta^2)",
    )
    q.add_argument(
        "--no-sampling", action="store_true", help="keep every pixel (no l-infinity tomography)"
    )
    q.add_argument(
        "--delta",
        type=nonneg_float,
        default=0.01,
        help="gradient precision delta >= 0 (default 0.01)",
    )
    q.add_argument(
        "--ipe",
        choices=["gaussian", "amplitude_estimation", "exact"],
        default="gaussian",
        help="inner-product estimation error model (default gaussian, the authors' simulation)",
    )
    q.add_argument(
        "--ae-bits",
        type=pos_int,
        default=None,
        help="AE evaluation qubits m for --ipe amplitude_estimation (default: smallest m with pi/2^m <= eps)",
    )
    q.add_argument(
        "--ae-median", type=pos_int, default=1, help="median of k AE runs (odd, default 1)"
    )
    q.add_argument(
        "--noise-order",
        choices=["paper", "theory"],
        default="paper",
        help="paper: clamp(f(Y)+e, 0, C) as the authors' notebook; theory: f(Y+e)",
    )
    q.add_argument(
        "--sampled-value",
        choices=["exact", "tomography"],
        default="exact",
        help="value of a drawn pixel: exact f, or the tomographic estimate (n/N) sum f",
    )
    q.add_argument(
        "--sampling-power",
        type=int,
        choices=[1, 2],
        default=1,
        help="draw pixels with probability proportional to f^power (1: the algorithm)",
    )
    q.add_argument(
        "--gradient-noise-on",
        choices=["all", "quantum"],
        default="all",
        help="parameters that get quantum-backprop noise: all (paper) or quantum kernels only",
    )
    q.add_argument(
        "--norms",
        choices=["per_image", "first_image"],
        default="per_image",
        help="patch norms per image (default) or the notebook's first-image shortcut",
    )


def config_from_args(args: argparse.Namespace) -> QuantumConfig:
    """Build the QuantumConfig; raises ValueError with the offending field."""
    if args.no_sampling and (args.sigma is not None or args.eta is not None):
        raise ValueError("--no-sampling excludes --sigma and --eta")
    sigma = args.sigma
    if sigma is None and args.eta is None and not args.no_sampling:
        sigma = 0.5
    return QuantumConfig(
        eps=args.eps, cap=args.cap, sigma=sigma, eta=args.eta, delta=args.delta, ipe=args.ipe,
        ae_bits=args.ae_bits, ae_median=args.ae_median, noise_order=args.noise_order,
        sampling_power=args.sampling_power, sampled_value=args.sampled_value,
        gradient_noise_on=args.gradient_noise_on, norms=args.norms,
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m qcnn.experiments.mnist",
        description="Train the classical CNN and the quantum CNN (KLP19) side by side on MNIST and write "
        "results.json, history.csv, curves.png and feature_maps.png.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", choices=["cnn", "qcnn", "both"], default="both",
                   help="which network(s) to train; 'both' also evaluates the CNN's weights under the "
                        "quantum forward pass")  # fmt: skip
    p.add_argument(
        "--arch",
        choices=sorted(MODELS),
        default="paper",
        help="paper: KLP19's network (no pooling); lenet5: LeNet-style with pooling",
    )
    p.add_argument("--epochs", type=nonneg_int, default=2, help="training epochs")
    p.add_argument("--batch-size", type=pos_int, default=64, help="mini-batch size")
    p.add_argument("--lr", type=pos_float, default=0.01, help="SGD learning rate")
    p.add_argument("--momentum", type=float, default=0.0, help="SGD momentum in [0, 1)")
    p.add_argument(
        "--seed", type=nonneg_int, default=1, help="the one seed behind every random number"
    )
    p.add_argument(
        "--train-size", type=pos_int, default=None, help="use the first N training images"
    )
    p.add_argument("--test-size", type=pos_int, default=None, help="use the first N test images")
    p.add_argument("--data-dir", default=None,
                   help="folder with the MNIST IDX files (else $QCNN_DATA_DIR, ~/.cache/qcnn/mnist, download, "
                        "then the bundled 5k subset)")  # fmt: skip
    p.add_argument("--out", default=None, help="output folder (default runs/mnist-<timestamp>)")
    p.add_argument(
        "--resume", action="store_true", help="continue the runs in --out from their checkpoints"
    )
    p.add_argument(
        "--no-quantum-forward",
        action="store_true",
        help="with --model both: skip evaluating the CNN's weights under the quantum forward pass",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars, only the final summary")
    p.add_argument("--shards", type=pos_int, default=None,
                   help="train each batch as N slices in parallel threads (default: 2 for the QCNN, whose "
                        "numpy work gains ~1.3x on 2 cores; 1 for the CNN, which gains nothing). Part of "
                        "the run's identity: results depend on it, not on the machine")  # fmt: skip
    add_quantum_arguments(p)
    return p


def _summary(records: list[dict[str, Any]], data_info: dict[str, Any]) -> str:
    lines = [
        f"dataset: {data_info['name']} ({data_info['train_size']} train / {data_info['test_size']} test) "
        f"from {data_info['source']}",
        f"{'model':30s} {'test acc':>9s} {'test loss':>10s} {'final loss':>11s} {'train s':>8s}",
    ]
    for r in records:
        fl = "-" if r.get("final_train_loss") is None else f"{r['final_train_loss']:.4f}"
        lines.append(
            f"{r['model']:30s} {100 * r['test_accuracy']:8.2f}% {r['test_loss']:10.4f} {fl:>11s} "
            f"{r['train_seconds']:8.1f}"
        )
    return "\n".join(lines)


def write_results(
    out: Path, data_info: dict[str, Any], records: list[dict[str, Any]], extra: dict
) -> None:
    atomic_write_json(out / "results.json", {"dataset": data_info, **extra, "runs": records})
    rows = []
    for r in records:
        h = History.from_dict({"steps": r["loss_log"], "epochs": r["history"]})
        rows += h.csv_rows(model=r["model"], seed=r["seed"])
    atomic_write_text(
        out / "history.csv", rows_to_csv(rows, ("model", "seed", *History.CSV_COLUMNS))
    )


def write_feature_maps(
    out: Path, data: Data, config: QuantumConfig, weights_from, arch: str, seed: int
) -> None:
    """The first quantum layer's stages on the first test image (figure ``feature_maps.png``)."""
    from qcnn.models import quantum_layers
    from qcnn.plotting import plot_feature_maps

    qnet = build_model(arch, config, seed=seed)
    if weights_from is not None:
        transfer_weights(weights_from, qnet)
    layer = quantum_layers(qnet)[0]
    layer.rng = np.random.default_rng(0)  # a fixed picture for a fixed network
    stages = layer.forward_stages(data.x_test[:1])
    title = f"first quantum layer, eps={config.eps:g}, C={config.cap:g}, sigma={config.sigma}"
    plot_feature_maps(data.x_test[0, 0], stages, out / "feature_maps.png", title=title)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Everything that can be wrong is checked before any data is loaded or any epoch runs.
    try:
        config = config_from_args(args)  # validated even for --model cnn: a bad flag is an error
        if args.model == "cnn":
            config = None
        if not 0 <= args.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1), got {args.momentum}")
        out = Path(args.out) if args.out else Path("runs") / time.strftime("mnist-%Y%m%d-%H%M%S")
        check_output_dir(out, args.resume)
    except ValueError as exc:
        parser.error(str(exc))

    progress = not args.quiet and sys.stderr.isatty()
    try:
        data = load_data(args.data_dir, args.train_size, args.test_size)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if data.info["name"] != "mnist" and not args.quiet:
        print(
            f"NOTE: training on {data.info['name']} ({data.info['source']}), not full MNIST",
            file=sys.stderr,
        )

    common = dict(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  momentum=args.momentum, seed=args.seed)  # fmt: skip
    specs = []
    if args.model in ("cnn", "both"):
        specs.append(RunSpec(config=None, shards=args.shards or 1, **common))
    if args.model in ("qcnn", "both"):
        specs.append(RunSpec(config=config, shards=args.shards or 2, **common))

    records, models = [], {}
    extra = {"environment": environment_info(), "arguments": vars(args)}
    for spec in specs:
        if not args.quiet:
            print(f"training {spec.run_id} ...", file=sys.stderr)
        record, model = train_run(
            spec, data, out / spec.run_id, resume=args.resume, progress=progress
        )
        records.append(record)
        models[spec.model] = model
        write_results(out, data.info, records, extra)  # after every run: nothing is lost on a crash
    if args.model == "both" and not args.no_quantum_forward:
        records.append(quantum_forward_run(models["cnn"], records[0], config, data, args.arch))
        write_results(out, data.info, records, extra)

    from qcnn.plotting import plot_training_curves

    plot_training_curves(records, out / "curves.png")
    if config is not None:
        write_feature_maps(out, data, config, models.get("qcnn"), args.arch, args.seed)
    print(_summary(records, data.info))
    print(f"results written to {out}/ (results.json, history.csv, curves.png"
          f"{', feature_maps.png' if config is not None else ''})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
