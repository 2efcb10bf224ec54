"""Shared command-line pieces of the four commands (``mnist``, ``sweep``, ``circuits``,
``resources``): the flags they all have (``--data-dir``, ``--out``, ``--seed``, ``--quiet``), the
quantum-layer flags and the :class:`~qcnn.quantum.QuantumConfig` built from them, argparse value
types that reject bad values with a clear message, and the early check that the output folder can
be written (before any training starts). A flag used by more than one command is declared here."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

from qcnn.quantum import QuantumConfig

__all__ = [
    "ARCH_HELP",
    "add_common_arguments",
    "add_model_arguments",
    "dataset_name",
    "add_quantum_arguments",
    "config_from_args",
    "nonneg_int",
    "pos_int",
    "pos_float",
    "nonneg_float",
    "probability",
    "check_output_dir",
]


def _number(text: str, kind: type, what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def nonneg_int(text: str) -> int:
    v = _number(text, int, "a non-negative integer")
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v}")
    return v


def pos_int(text: str) -> int:
    v = _number(text, int, "a positive integer")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def pos_float(text: str) -> float:
    v = _number(text, float, "a number")
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return v


def nonneg_float(text: str) -> float:
    v = _number(text, float, "a number")
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return v


def probability(text: str) -> float:
    v = _number(text, float, "a probability")
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text}")
    return v


def check_output_dir(out: Path, resume: bool = False) -> None:
    """Fail early (before any training) if ``out`` cannot be written; raises ValueError."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    if resume and not out.is_dir():
        raise ValueError(f"--resume: {str(out)!r} does not exist; nothing to resume")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--out {str(out)!r} is not writable: {exc.strerror or exc}") from None


def add_common_arguments(
    parser: argparse.ArgumentParser,
    *,
    out_default: str | None,
    out_help: str = "output folder",
    seed_default: int = 1,
    seed_help: str = "the one seed behind every random number",
) -> None:
    """Declare ``--data-dir``, ``--out``, ``--seed`` and ``--quiet`` on ``parser``.

    ``--data-dir`` and ``--out`` are strings (``None`` when not given and ``out_default`` is
    ``None``), so ``vars(args)`` stays JSON-serialisable for the results files.
    """
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder with the data set's files (MNIST, Fashion-MNIST), searched before "
        "$QCNN_DATA_DIR / $QCNN_FASHION_MNIST_DIR and ~/.cache/qcnn/<data set> (README, section Data)",
    )
    parser.add_argument("--out", default=out_default, help=out_help)
    parser.add_argument("--seed", type=nonneg_int, default=seed_default, help=seed_help)
    parser.add_argument(
        "--quiet", action="store_true", help="no progress output, only the final summary"
    )


ARCH_HELP = {
    "paper": "KLP19's network (two 7x7 convs, no pooling)",
    "lenet5": "LeNet-style, modern (ReLU, max pooling)",
    "lenet5-1998": "LeCun 1998 (trainable subsampling, C3 connection table, tanh: stays classical "
    "when quantized)",
    "alexnet-small": "AlexNet ideas at 28x28 (5 conv 3x3, LRN, dropout)",
    "inception-small": "two Inception v1 blocks, global average pooling",
}


def dataset_name(text: str) -> str:
    """argparse type of ``--dataset``: a registered name or ``npz:PATH``."""
    from qcnn.data import dataset_spec

    try:
        dataset_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_model_arguments(parser: argparse.ArgumentParser, *, arch_default: str = "paper") -> None:
    """Declare ``--arch`` (an architecture of :data:`qcnn.models.MODELS`) and ``--dataset``
    (a data set of the registry :mod:`qcnn.data.registry`, or ``npz:PATH``)."""
    from qcnn.data import DATASETS
    from qcnn.models import MODELS

    parser.add_argument(
        "--arch",
        choices=list(MODELS),
        default=arch_default,
        help="network: " + "; ".join(f"{k}: {ARCH_HELP.get(k, k)}" for k in MODELS),
    )
    parser.add_argument(
        "--dataset",
        type=dataset_name,
        default="mnist",
        metavar="{" + ",".join(DATASETS) + ",npz:PATH}",
        help="data set: "
        + "; ".join(f"{k}: {s.description}" for k, s in DATASETS.items())
        + "; npz:PATH: arrays x_train, y_train, x_test, y_test of a .npz file",
    )


def add_quantum_arguments(parser: argparse.ArgumentParser) -> None:
    """The :class:`~qcnn.quantum.QuantumConfig` flags (read back by :func:`config_from_args`)."""
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
    q.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="fraction of output pixels drawn as shots, 0 < sigma <= 1 (default 0.5 unless --eta "
        "or --no-sampling)",
    )
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
    """Build the QuantumConfig of :func:`add_quantum_arguments`' flags; raises ValueError with the
    offending field."""
    if args.no_sampling and (args.sigma is not None or args.eta is not None):
        raise ValueError("--no-sampling excludes --sigma and --eta")
    sigma = args.sigma
    if sigma is None and args.eta is None and not args.no_sampling:
        sigma = 0.5
    return QuantumConfig(
        eps=args.eps,
        cap=args.cap,
        sigma=sigma,
        eta=args.eta,
        delta=args.delta,
        ipe=args.ipe,
        ae_bits=args.ae_bits,
        ae_median=args.ae_median,
        noise_order=args.noise_order,
        sampling_power=args.sampling_power,
        sampled_value=args.sampled_value,
        gradient_on=args.gradient_noise_on,
        norms=args.norms,
    )
