"""``python -m qcnn.experiments.visualize``: what a trained network learned, classical and quantum.

    python -m qcnn.experiments.visualize --weights RUN/model.npz [--arch ...] --out DIR

``--weights`` is the ``model.npz`` of a run of the ``mnist`` command (a CNN's or a QCNN's: the
parameter names tell which; the architecture and the data set are read from the ``run.json``
next to it unless ``--arch`` / ``--dataset`` are given). The quantized twin is
``quantize(network, config)`` with the same weights (quantum flags: the paper preset by default).
Writes into ``--out`` (atomically):

- ``kernels.png``: the learned kernels of the first convolution;
- ``activation_maximisation.png``: for the first ``--filters`` filters of each convolution, the
  input maximising the filter's mean activation, by gradient ascent on the input from seeded
  noise under an L2-norm constraint (radius: the mean norm of the test images); one row for the
  classical network and one for the quantized one. Quantum: ascent on the expected activation
  (errors on, averaged over noisy passes) with the gradient taken with the error models off
  (exact inner products, no sampling; :mod:`qcnn.inspection`);
- ``features.png``: the penultimate-layer features (the input of the last dense layer) of
  ``--images`` test images projected to 2-D (PCA by default, or t-SNE), coloured by class,
  classical beside quantum;
- ``visualize.json``: settings, the objective before/after every ascent, the projections' data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.experiments.cli import (
    add_common_arguments,
    add_quantum_arguments,
    check_output_dir,
    command_parser,
    config_from_args,
    dataset_name,
    pos_float,
    pos_int,
)
from qcnn.experiments.runner import portable_paths
from qcnn.io import atomic_write_json
from qcnn.nn.parallel import one_blas_thread

__all__ = ["build_parser", "main", "load_networks"]

QUANTUM_NOTE = (
    "quantum: ascent on the expected activation (error models on, mean of noisy passes); "
    "gradient with the error models off (exact inner products, no sampling)"
)


def build_parser() -> argparse.ArgumentParser:
    from qcnn.models import MODELS

    p = command_parser(
        "visualize",
        "Pictures of what a trained network learned (first-layer kernels, "
        "activation maximisation, penultimate-layer features in 2-D), for the classical network "
        "and its quantized twin.",
    )
    p.add_argument("--weights", required=True, help="model.npz of a run (CNN or QCNN)")
    p.add_argument(
        "--arch",
        choices=list(MODELS),
        default=None,
        help="architecture (default: from the run.json next to --weights, else paper)",
    )
    p.add_argument(
        "--dataset",
        type=dataset_name,
        default=None,
        help="data set (default: from the run.json next to --weights, else mnist)",
    )
    p.add_argument("--filters", type=pos_int, default=4, help="filters per convolution")
    p.add_argument(
        "--layers",
        nargs="+",
        default=None,
        metavar="PATH",
        help="convolutions to visualise, by dotted path (default: all)",
    )
    p.add_argument("--steps", type=pos_int, default=60, help="gradient-ascent steps")
    p.add_argument(
        "--step-size",
        type=pos_float,
        default=0.1,
        help="ascent step as a fraction of the L2 radius",
    )
    p.add_argument("--images", type=pos_int, default=2000, help="test images for the features")
    p.add_argument(
        "--projection",
        choices=["pca", "tsne"],
        default="pca",
        help="2-D projection of the features (tsne: scikit-learn, slower)",
    )
    add_common_arguments(
        p,
        out_default=None,
        out_help="output folder (default runs/visualize)",
        seed_default=0,
        seed_help="seed of the ascents' starting noise and of the quantum layers' streams",
    )
    add_quantum_arguments(p)
    return p


def _from_run_json(weights: Path) -> dict[str, Any]:
    path = weights.with_name("run.json")
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _dataset_of(run: dict[str, Any]) -> str | None:
    info = run.get("dataset") or {}
    name, source = info.get("name"), str(info.get("source", ""))
    if name in ("mnist", "mnist-5k-subset"):
        return "mnist"
    if source.startswith("npz:"):
        return source
    return name


def load_networks(weights: str | Path, arch: str, shape, classes: int, config):
    """``(classical, quantized)`` networks holding the weights of ``weights`` (saved from a CNN
    or from a QCNN of ``arch``). Raises ValueError naming the file if they fit neither."""
    from qcnn.models import build_model, transfer_weights
    from qcnn.nn.model import load_npz_strict
    from qcnn.quantum import QuantumConfig, quantize

    state = load_npz_strict(weights)
    cnn = build_model(arch, None, input_shape=shape, classes=classes)
    try:
        cnn.load_state_dict(state)
    except ValueError as as_cnn:
        twin = quantize(cnn, QuantumConfig.exact())
        try:
            twin.load_state_dict(state)
        except ValueError:
            raise ValueError(
                f"{weights}: these weights fit neither the classical {arch} network nor its "
                f"quantized twin for inputs {tuple(shape)} and {classes} classes ({as_cnn})"
            ) from None
        transfer_weights(twin, cnn)
    return cnn, quantize(cnn, config)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        out = Path(args.out) if args.out else Path("runs") / "visualize"
        check_output_dir(out)
    except ValueError as exc:
        parser.error(str(exc))
    weights = Path(args.weights)
    run = _from_run_json(weights)
    arch = args.arch or run.get("arch") or "paper"
    dataset = args.dataset or _dataset_of(run) or "mnist"

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    from qcnn.experiments.runner import load_data
    from qcnn.inspection import (
        conv_targets,
        maximise_activation,
        project_2d,
        reseed_quantum_layers,
    )
    from qcnn.models import quantum_layers
    from qcnn.plotting import (
        plot_activation_maximisation,
        plot_feature_projection,
        plot_kernel_grid,
    )

    try:
        data = load_data(args.data_dir, train_size=1, test_size=args.images, dataset=dataset)
        cnn, qnet = load_networks(weights, arch, data.shape, data.classes, config)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    has_quantum = bool(quantum_layers(qnet))
    targets = conv_targets(cnn)
    if args.layers:
        unknown = sorted(set(args.layers) - {t.path for t in targets})
        if unknown:
            print(
                f"error: --layers {unknown}: the convolutions are at {[t.path for t in targets]}",
                file=sys.stderr,
            )
            return 2
        targets = [t for t in targets if t.path in args.layers]
    t0 = time.perf_counter()
    summary: dict[str, Any] = {
        "weights": portable_paths(str(weights), out),
        "arch": arch,
        "dataset": data.info,
        "config": config.to_dict(),
        "note": QUANTUM_NOTE,
        "settings": portable_paths(vars(args), out),
    }

    # (a) first-layer kernels -----------------------------------------------------------------
    first = conv_targets(cnn)[0].conv
    plot_kernel_grid(
        first.kernel(),
        out / "kernels.png",
        title=f"{arch}: first convolution, {first.out_channels} kernels "
        f"{first.in_channels}x{first.kernel_size[0]}x{first.kernel_size[1]}",
    )
    say(f"kernels.png: {first.out_channels} kernels of layer {conv_targets(cnn)[0].path}")

    # (b) activation maximisation -------------------------------------------------------------
    radius = float(np.linalg.norm(data.x_test.reshape(len(data.x_test), -1), axis=1).mean())
    rows, ascents = [], []
    networks = [("classical", None)] + ([("quantum", config)] if has_quantum else [])
    with one_blas_thread():  # one image at a time: BLAS threads only cost here
        for t in targets:
            filters = list(range(min(args.filters, t.conv.out_channels)))
            for name, cfg in networks:
                images, captions = [], []
                for q in filters:
                    res = maximise_activation(
                        t,
                        q,
                        data.shape,
                        config=cfg,
                        steps=args.steps,
                        lr=args.step_size,
                        radius=radius,
                        seed=args.seed,
                    )
                    images.append(res.x[0])
                    captions.append(f"f{q}: {res.start:.3g}->{res.final:.3g}")
                    ascents.append(
                        {
                            "layer": t.path,
                            "network": name,
                            "filter": q,
                            "start": res.start,
                            "final": res.final,
                        }
                    )
                rows.append({"label": f"{t.path} {name}", "images": images, "captions": captions})
            say(f"activation maximisation: layer {t.path} done ({time.perf_counter() - t0:.0f} s)")
    note = QUANTUM_NOTE if has_quantum else "the quantized network has no quantum layer"
    plot_activation_maximisation(
        rows,
        out / "activation_maximisation.png",
        title=f"{arch}: inputs maximising each filter's mean activation (||x|| <= {radius:.3g}); "
        f"caption: activation before->after\n{note}",
    )
    summary["activation_maximisation"] = {"radius": radius, "steps": args.steps, "ascents": ascents}

    # (c) penultimate-layer features ----------------------------------------------------------
    reseed_quantum_layers(qnet, args.seed)
    panels, projections = [], {}
    for name, net in [("classical", cnn)] + ([("quantum", qnet)] if has_quantum else []):
        feats = net.features(data.x_test)
        xy = project_2d(feats, args.projection, seed=args.seed)
        projections[name] = {"features": int(np.prod(feats.shape[1:]))}
        panels.append((f"{name}: {feats.shape[1:]} features, {args.projection.upper()}", xy))
    plot_feature_projection(
        panels,
        data.y_test,
        out / "features.png",
        title=f"{arch}: penultimate-layer features of {len(data.y_test)} test images "
        f"({data.info['name']})" + ("" if has_quantum else "; no quantum layer"),
    )
    summary["features"] = {"images": len(data.y_test), "projection": args.projection, **projections}
    summary["seconds"] = time.perf_counter() - t0
    atomic_write_json(out / "visualize.json", summary)
    say(f"features.png: {args.projection} of {len(data.y_test)} test images")
    print(f"wrote {out}/ (kernels.png, activation_maximisation.png, features.png, visualize.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
