"""``python -m qcnn.experiments.mnist``: train the CNN and the QCNN side by side on MNIST.

``--arch`` picks the network (:data:`qcnn.models.MODELS`; the QCNN is
``quantize(network, config)``), ``--dataset`` the data (``mnist``, ``fashion-mnist``, ``digits``,
``npz:PATH``). By default: the KLP19 network, classical and quantum at the paper preset (eps 0.01, C 10,
sigma 0.5, delta 0.01), 2 epochs of SGD (lr 0.01, batch 64) on full MNIST, plus the trained CNN's
weights evaluated under the quantum forward pass. On a smaller training set (the offline subset,
``--train-size``) the default epochs keep the paper's number of SGD steps instead
(:mod:`qcnn.experiments.budget`). Writes into ``--out``:

- ``results.json``: dataset, training budget (``epochs`` and ``epochs_reason``), environment, and
  one record per run (accuracy, loss, time, history);
- ``history.csv``: every loss log and epoch summary of every run;
- ``curves.png``: training loss against images seen, and test accuracy per epoch;
- ``feature_maps.png``: one test image through the first quantum layer, stage by stage;
- ``<run id>/``: checkpoint (for ``--resume``), final weights ``model.npz`` and ``run.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.experiments.budget import EpochBudget, resolve_epochs
from qcnn.experiments.cli import (
    add_common_arguments,
    add_model_arguments,
    add_quantum_arguments,
    add_training_arguments,
    check_activation,
    check_data_dir,
    check_output_dir,
    check_sampling_memory,
    cli_errors,
    command_parser,
    config_from_args,
    default_out,
    int_in,
    usage_error,
)
from qcnn.experiments.runner import (
    Data,
    RecordError,
    RunSpec,
    environment_info,
    load_data,
    portable_paths,
    quantum_forward_run,
    train_run,
)
from qcnn.io import atomic_write_json, atomic_write_text, json_differences, to_jsonable
from qcnn.models import build_model, quantum_layers, transfer_weights
from qcnn.quantum import QuantumConfig, quantization_plan
from qcnn.train import EVAL_BATCH, History, RunMismatchError, TrainingDiverged, rows_to_csv

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "mnist",
        "Train the classical CNN and the quantum CNN (KLP19) side by side on MNIST and write "
        "results.json, history.csv, curves.png and feature_maps.png.",
    )
    p.add_argument(
        "--model",
        choices=["cnn", "qcnn", "both"],
        default="both",
        help="which network(s) to train; 'both' also evaluates the CNN's weights under the "
        "quantum forward pass",
    )
    add_model_arguments(p, activation=True)
    add_training_arguments(p)
    p.add_argument(
        "--train-size", type=int_in(1, 10**8), default=None, help="use the first N training images"
    )
    p.add_argument(
        "--test-size", type=int_in(1, 10**8), default=None, help="use the first N test images"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the runs in --out (which must hold them) from their checkpoints; refused "
        "if any setting differs. Without it, --out must be new or empty",
    )
    p.add_argument(
        "--no-quantum-forward",
        action="store_true",
        help="with --model both: skip evaluating the CNN's weights under the quantum forward pass",
    )
    p.add_argument(
        "--shards",
        type=int_in(1, 64),
        default=None,
        help="train each batch as N slices in parallel threads (default: 2 for the QCNN, whose "
        "numpy work then uses a second core; 1 for the CNN, which gains nothing). Part of "
        "the run's identity: results depend on it, not on the machine",
    )
    add_common_arguments(
        p, out_default=None, out_help="output folder (default runs/mnist-<timestamp>)"
    )
    add_quantum_arguments(p)
    return p


def _summary(records: list[dict[str, Any]], data_info: dict[str, Any], budget: EpochBudget) -> str:
    lines = [
        f"dataset: {data_info['name']} ({data_info['train_size']} train / {data_info['test_size']} test) "
        f"from {data_info['source']}",
        f"epochs: {budget.epochs} ({budget.reason})",
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
    out: Path,
    data: Data,
    config: QuantumConfig,
    weights_from,
    arch: str,
    seed: int,
    activation: str | None = None,
) -> bool:
    """The first quantum layer's stages on the first test image (figure ``feature_maps.png``);
    False (no figure) when the quantized network has no quantum layer."""
    from qcnn.plotting import plot_feature_maps

    qnet = build_model(
        arch,
        config,
        seed=seed,
        input_shape=data.shape,
        classes=data.classes,
        activation=activation,
    )
    if weights_from is not None:
        transfer_weights(weights_from, qnet)
    if not quantum_layers(qnet):
        return False
    layer = quantum_layers(qnet)[0]
    layer.rng = np.random.default_rng(0)  # a fixed picture for a fixed network
    stages = layer.forward_stages(data.x_test[:1])
    title = f"first quantum layer, eps={config.eps:g}, C={config.cap:g}, sigma={config.sigma}"
    plot_feature_maps(data.x_test[0, 0], stages, out / "feature_maps.png", title=title)
    return True


def describe_model(
    arch: str,
    data: Data,
    config: QuantumConfig | None,
    seed: int,
    activation: str | None = None,
) -> str:
    """The layer table of the classical network and, with a config, what quantizing it does.

    Raises ValueError when the architecture does not fit the data's images."""
    cnn = build_model(
        arch, None, seed=seed, input_shape=data.shape, classes=data.classes, activation=activation
    )
    lines = [
        f"architecture {arch} on {data.shape} inputs, {data.classes} classes:",
        cnn.summary(data.shape),
    ]
    if config is not None:
        plan = quantization_plan(cnn)
        quantum = [n.path for n in plan if n.action == "quantum"]
        kept = [
            f"{n.path} {n.layer.split('(')[0]}"
            for n in plan
            if n.action == "classical"
            and not n.layer.startswith(("Dense", "Flatten", "ReLU", "Dropout"))
        ]
        lines.append(
            f"quantized: {len(quantum)} quantum layer(s) at {', '.join(quantum) or '-'}"
            f"; kept classical: {', '.join(kept) or '-'}"
        )
    return "\n".join(lines)


# flags that may change between a run and its resumption (they do not change any result)
_RESUME_MAY_CHANGE = {"resume", "quiet", "out"}


def check_same_arguments(out: Path, args: argparse.Namespace) -> None:
    """``--resume``: the command's flags must be those of the run in ``out`` (its
    ``results.json`` records them), else :class:`~qcnn.train.RunMismatchError` names each
    differing flag. Settings that select other runs (e.g. ``--noise-order``, which is part of
    the run id) would otherwise train new runs beside the old ones in the same folder; the
    checkpoints then check each run's complete specification."""
    path = out / "results.json"
    if not path.exists():
        return  # killed before the first run finished: the checkpoints are checked instead
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))["arguments"]
        if not isinstance(stored, dict):
            raise TypeError("not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordError(
            f"{str(path)!r} is damaged: its arguments cannot be read ({exc})"
        ) from None
    # both in the portable form records store (paths relative to the run folder): records
    # written before that form, with absolute paths, compare the same way
    stored = portable_paths(stored, out)
    now = json.loads(json.dumps(to_jsonable(portable_paths(vars(args), out))))
    keep = set(now) | set(stored)
    diffs = json_differences(
        {k: stored.get(k) for k in keep - _RESUME_MAY_CHANGE},
        {k: now.get(k) for k in keep - _RESUME_MAY_CHANGE},
        names=("before", "now"),
    )
    if diffs:
        raise RunMismatchError(
            f"--resume: {str(out)!r} was written with other settings: "
            + "; ".join(diffs)
            + ". Use a new --out, or the same flags"
        )


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Everything that can be wrong is checked before any data is loaded or any epoch runs.
    try:
        config: QuantumConfig | None = config_from_args(args)  # validated for --model cnn too
        if args.model == "cnn":
            config = None
        if args.resume and not args.out:
            raise ValueError("--resume needs --out: the folder of the runs to continue")
        if args.shards is not None and args.shards > args.batch_size:
            raise ValueError(f"--shards {args.shards} exceeds --batch-size {args.batch_size}")
        eval_batch = min(EVAL_BATCH, args.test_size or EVAL_BATCH)
        check_activation(args.arch, args.activation)
        check_sampling_memory(
            config, args.arch, (args.batch_size, eval_batch), args.dataset, args.activation
        )
        check_data_dir(args.data_dir)
        out = Path(args.out) if args.out else default_out("mnist")
        check_output_dir(out, args.resume)
    except ValueError as exc:
        usage_error(parser, str(exc))

    if args.resume:
        check_same_arguments(out, args)
    progress = not args.quiet and sys.stderr.isatty()
    try:
        data = load_data(args.data_dir, args.train_size, args.test_size, args.dataset)
        description = describe_model(args.arch, data, config, args.seed, args.activation)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dataset == "mnist" and data.info["name"] != "mnist" and not args.quiet:
        print(
            f"NOTE: training on {data.info['name']} ({data.info['source']}), not full MNIST",
            file=sys.stderr,
        )
    if not args.quiet:
        print(description)

    budget = resolve_epochs(args.epochs, data.info["train_size"], args.batch_size)
    if budget.source == "scaled" and not args.quiet:
        print(f"NOTE: {budget.reason}.", file=sys.stderr)

    common = dict(
        arch=args.arch,
        epochs=budget.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        seed=args.seed,
        activation=args.activation,
        augment=args.augment,
    )
    specs = []
    if args.model in ("cnn", "both"):
        specs.append(RunSpec(config=None, shards=args.shards or 1, **common))
    if args.model in ("qcnn", "both"):
        specs.append(RunSpec(config=config, shards=args.shards or 2, **common))

    records: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    extra = {
        "epochs": budget.epochs,
        "epochs_reason": budget.reason,
        "training_budget": budget.to_dict(),
        "environment": environment_info(out),
        "arguments": portable_paths(vars(args), out),
    }

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    log(f"writing into {out}/ (continue an interrupted run with --out {out} --resume)")
    for spec in specs:
        log(f"training {spec.run_id} ...")
        try:
            record, model = train_run(
                spec, data, out / spec.run_id, resume=args.resume, progress=progress, log=log
            )
        except TrainingDiverged as exc:
            kept = f"; the {len(records)} run(s) finished before it are in {out}/results.json"
            print(f"error: {exc}{kept if records else ''}", file=sys.stderr)
            return 1
        records.append(record)
        models[spec.model] = model
        write_results(out, data.info, records, extra)  # after every run: nothing is lost on a crash
    if args.model == "both" and config is not None and not args.no_quantum_forward:
        records.append(quantum_forward_run(models["cnn"], records[0], config, data, args.arch))
        write_results(out, data.info, records, extra)

    from qcnn.plotting import plot_training_curves

    plot_training_curves(records, out / "curves.png")
    maps = config is not None and write_feature_maps(
        out, data, config, models.get("qcnn"), args.arch, args.seed, args.activation
    )
    print(_summary(records, data.info, budget))
    print(
        f"results written to {out}/ (results.json, history.csv, curves.png"
        f"{', feature_maps.png' if maps else ''})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
