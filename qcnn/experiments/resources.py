"""``python -m qcnn.experiments.resources``: predicted quantum vs classical running time per layer.

Runs test images through the QCNN (fresh, or with trained weights from a run of the ``mnist``
command), measures ``M``, ``E[f]``, ``mu(A)``, ``mu(F)`` in each quantum layer, and evaluates the
running-time model of :mod:`qcnn.quantum.resources`: classical multiply-adds against
``sigma H'W'D' * M sqrt(C) / (eps sqrt(E[f]))``, the crossover kernel volume, and the predicted
speed-up for larger kernels and deeper inputs. Writes ``resources.json`` and ``resources.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.experiments.cli import (
    add_common_arguments,
    add_model_arguments,
    add_quantum_arguments,
    check_data_dir,
    check_output_dir,
    check_sampling_memory,
    cli_errors,
    config_from_args,
    default_out,
    int_in,
    usage_error,
)
from qcnn.experiments.runner import environment_info, load_data
from qcnn.io import atomic_write_json, atomic_write_text
from qcnn.models import build_model, quantum_layers, transfer_weights
from qcnn.nn import Sequential
from qcnn.nn.model import load_npz_strict
from qcnn.quantum import QuantumConfig
from qcnn.quantum.resources import crossover_table, layer_resources
from qcnn.train import evaluate

__all__ = ["build_parser", "main", "report"]


def report(model: Sequential, config: QuantumConfig, x: np.ndarray, y: np.ndarray) -> list[dict]:
    """Measure each quantum layer (nested ones too) on ``x`` ``(N, C, H, W)`` and evaluate the
    running-time model with the input shape each layer saw."""
    if config.sigma is None:
        raise ValueError("the running-time model needs sigma (the fraction of pixels sampled)")
    layers = quantum_layers(model)
    for layer in layers:
        layer.detailed_stats = True
        layer.reset_stats()
    evaluate(model, x, y, batch_size=128)
    out = []
    for layer in layers:
        s = layer.stats_mean()
        in_shape = layer.last_input_shape
        assert in_shape is not None  # evaluate ran every layer
        out_c, out_h, out_w = layer.conv_output_shape(in_shape)
        res = layer_resources(
            (out_c, out_h, out_w),
            (in_shape[0], *layer.kernel_size),
            sigma=config.sigma,
            eps=config.effective_eps,
            cap=config.cap,
            M=s["M"],
            mean_f=s["mean_f"],
            implied_eta=s.get("implied_eta"),
            mu_A=s.get("mu_A"),
            mu_F=s.get("mu_F"),
        )
        out.append(
            {"layer": repr(layer), "resources": res.to_dict(), "crossover": crossover_table(res)}
        )
    return out


def _markdown(rows: list[dict]) -> str:
    lines = [
        "| layer | H'W'D' | kernel volume | classical ops | M | E[f] | Q | quantum ops | speed-up | crossover volume |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows):
        s = r["resources"]
        lines.append(
            f"| {i} | {s['out_pixels']} | {s['kernel_volume']} | {s['classical_ops']:.3g} | {s['M']:.3g} | "
            f"{s['mean_f']:.3g} | {s['Q']:.3g} | {s['quantum_ops']:.3g} | {s['speedup']:.3g} | "
            f"{s['crossover_kernel_volume']:.3g} |"
        )
    lines += [
        "",
        "Predicted speed-up (classical / quantum) for larger kernels, with the last layer's Q:",
        "",
    ]
    table = rows[-1]["crossover"]
    depths = sorted({t["depth"] for t in table})
    lines.append("| kernel \\ depth D | " + " | ".join(str(d) for d in depths) + " |")
    lines.append("|---|" + "---|" * len(depths))
    for k in sorted({t["kernel"] for t in table}):
        cells = [f"{t['speedup']:.2g}" for t in table if t["kernel"] == k]
        lines.append(f"| {k}x{k} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m qcnn.experiments.resources",
        description="Predicted quantum vs classical running time of each quantum layer, with measured M, E[f], mu.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--weights",
        default=None,
        help="model.npz of a trained QCNN or CNN (from python -m qcnn.experiments.mnist); default: fresh",
    )
    add_model_arguments(p)
    p.add_argument(
        "--images", type=int_in(1, 100_000), default=512, help="test images measured, 1..100000"
    )
    add_common_arguments(
        p,
        out_default=None,
        out_help="output folder (default runs/resources-<timestamp>); must be new or empty",
        seed_help="seed of the network (its weights unless --weights; its quantum layers' streams)",
    )
    add_quantum_arguments(p)
    return p


def load_weights(path: str, model: Sequential, donor: Sequential, arch: str) -> str:
    """Load a QCNN's or its CNN twin's ``model.npz`` into ``model``; returns which it was.

    Raises:
        ValueError: the file is not a readable npz, holds NaN/inf, or fits neither network; the
            message names the file and, for the closer of the two, the parameters that are
            missing, extra or of another shape.
    """
    state = load_npz_strict(path)
    bad = [k for k, v in state.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if bad:
        raise ValueError(f"--weights {path!r}: parameters {bad} hold NaN or infinity")
    problems = {}
    for kind, net in (("qcnn", model), ("cnn", donor)):
        expected = {name: p.data.shape for name, p in net.named_parameters()}
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        shapes = [
            f"{k} {state[k].shape} (expected {expected[k]})"
            for k in sorted(set(expected) & set(state))
            if state[k].shape != expected[k]
        ]
        if not (missing or extra or shapes):
            net.load_state_dict(state)
            if kind == "cnn":
                transfer_weights(donor, model)  # CNN weights: into the QCNN in order
            return kind
        problems[kind] = (missing, extra, shapes)
    kind = min(problems, key=lambda k: sum(len(x) for x in problems[k]))
    missing, extra, shapes = problems[kind]
    parts = [
        f"missing {missing}" if missing else "",
        f"extra {extra}" if extra else "",
        f"other shapes: {', '.join(shapes)}" if shapes else "",
    ]
    raise ValueError(
        f"--weights {path!r} does not fit --arch {arch} (closest: its "
        f"{'CNN' if kind == 'cnn' else 'QCNN'}): " + "; ".join(p for p in parts if p)
    )


@cli_errors
def main(argv: list[str] | None = None) -> int:
    # Floating-point warnings stay quiet in the report, as they always did under ``python -m``;
    # scoped here so the console script behaves the same and callers' numpy state is untouched.
    with np.errstate(all="ignore"):
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        config = config_from_args(args)
        if config.sigma is None:
            raise ValueError(
                "the running-time model needs --sigma (the fraction of pixels sampled)"
            )
        if config.effective_eps <= 0:
            raise ValueError("the running-time model needs eps > 0")
        check_sampling_memory(config, args.arch, (min(128, args.images),), args.dataset)
        if args.weights is not None and not Path(args.weights).is_file():
            raise ValueError(f"--weights {args.weights!r} is not a file")
        check_data_dir(args.data_dir)
        out = Path(args.out) if args.out else default_out("resources")
        check_output_dir(out, resume=False, can_resume=False)
    except ValueError as exc:
        usage_error(p, str(exc))
    try:
        data = load_data(args.data_dir, train_size=1, test_size=args.images, dataset=args.dataset)
        shape: dict[str, Any] = dict(input_shape=data.shape, classes=data.classes)
        model = build_model(args.arch, config, seed=args.seed, **shape)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not quantum_layers(model):
        print(f"error: --arch {args.arch} has no quantum layer once quantized", file=sys.stderr)
        return 2
    if args.weights:
        try:
            donor = build_model(args.arch, None, seed=args.seed, **shape)
            load_weights(args.weights, model, donor, args.arch)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    rows = report(model, config, data.x_test, data.y_test)
    result = {
        "config": config.to_dict(),
        "dataset": data.info,
        "weights": args.weights,
        "environment": environment_info(),
        "layers": rows,
    }
    atomic_write_json(out / "resources.json", result)
    md = _markdown(rows)
    atomic_write_text(
        out / "resources.md", f"# Resource report\n\nConfig: `{config.to_json()}`\n\n" + md
    )
    if not args.quiet:
        print(md)
    print(f"written to {out}/resources.json and resources.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
