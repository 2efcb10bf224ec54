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


PRESETS = ("paper", "theory")


def add_quantum_arguments(parser: argparse.ArgumentParser) -> None:
    """The :class:`~qcnn.quantum.QuantumConfig` flags (read back by :func:`config_from_args`).

    ``--preset`` chooses the starting configuration (``paper``: the authors' notebook, the
    default; ``theory``: :meth:`QuantumConfig.theory`, docs/theory.md); every other flag given
    explicitly overrides the preset's value. Flags left out keep the preset's values, except
    that a preset value an explicit flag makes meaningless is dropped: ``--ae-median`` replaces the
    preset's ``failure_prob`` (which would derive the median), ``--sampled-value exact`` the
    preset's AE normaliser, and a ``failure_prob`` with no amplitude estimation left is unset.
    """
    q = parser.add_argument_group(
        "quantum layer (model §2-3, docs/theory.md; defaults: the --preset's values)"
    )
    q.add_argument(
        "--preset",
        choices=PRESETS,
        default="paper",
        help="starting configuration: paper (the authors' notebook: Gaussian IPE, eps a standard "
        "deviation) or theory (the theorems: AE with eps a bound holding with probability "
        ">= 1 - failure_prob, noise per shot, tomography values, l-infinity tomography of every "
        "gradient); explicit flags override it",
    )
    q.add_argument(
        "--eps",
        type=nonneg_float,
        default=None,
        help="inner-product precision eps >= 0 (default 0.01). A standard deviation with --ipe "
        "gaussian; with --ipe amplitude_estimation it sets the AE bits, and with "
        "--failure-prob it is a bound holding with probability >= 1 - failure_prob",
    )
    q.add_argument(
        "--cap", type=pos_float, default=None, help="cap C > 0 of the capped ReLU (default 10)"
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
        default=None,
        help="gradient precision delta >= 0 (default 0.01): a standard deviation with "
        "--gradient-model gaussian, a bound (with high probability) with linf_tomography",
    )
    q.add_argument(
        "--ipe",
        choices=["gaussian", "amplitude_estimation", "exact"],
        default=None,
        help="inner-product estimation error model (paper preset: gaussian, the authors' "
        "simulation; theory preset: amplitude_estimation)",
    )
    q.add_argument(
        "--ae-bits",
        type=pos_int,
        default=None,
        help="AE evaluation qubits m (default: from eps, the smallest m with pi/2^m <= eps, or "
        "pi/2^m + pi^2/4^m <= eps with --failure-prob)",
    )
    q.add_argument(
        "--ae-median", type=pos_int, default=None, help="median of k AE runs (odd, default 1)"
    )
    q.add_argument(
        "--failure-prob",
        type=float,
        default=None,
        help="Delta in (0, 1): eps becomes a bound holding with probability >= 1 - Delta; the "
        "AE median count and bits are derived (theory preset: 0.01)",
    )
    q.add_argument(
        "--noise-order",
        choices=["paper", "theory"],
        default=None,
        help="paper: clamp(f(Y)+e, 0, C) as the authors' notebook; theory: f(Y+e)",
    )
    q.add_argument(
        "--noise-per-shot",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a fresh estimate per tomography shot (theory) instead of one per pixel (paper)",
    )
    q.add_argument(
        "--sampled-value",
        choices=["exact", "tomography"],
        default=None,
        help="value of a drawn pixel: exact f, or the tomographic estimate (n/N) sum f",
    )
    q.add_argument(
        "--tomography-normaliser",
        choices=["exact", "amplitude_estimation"],
        default=None,
        help="sum f of the tomography values: exact (an oracle) or estimated by amplitude "
        "estimation of E[f]/C (theory)",
    )
    q.add_argument(
        "--sampling-power",
        type=int,
        choices=[1, 2],
        default=None,
        help="draw pixels with probability proportional to f^power (1: the algorithm)",
    )
    q.add_argument(
        "--gradient-model",
        choices=["gaussian", "linf_tomography"],
        default=None,
        help="quantum backprop: gaussian noise (paper) or l-infinity tomography (theory)",
    )
    q.add_argument(
        "--gradient-on",
        "--gradient-noise-on",  # the former name, still accepted
        dest="gradient_on",
        choices=["all", "quantum"],
        default=None,
        help="parameters whose gradients get the gradient model: all (paper) or quantum kernels",
    )
    q.add_argument(
        "--gradient-signs",
        choices=["kp", "exact"],
        default=None,
        help="signs of the tomography gradients: Kerenidis-Prakash sign step, or exact (ablation)",
    )
    q.add_argument(
        "--input-gradient-noise",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also apply the gradient model to the gradient each quantum layer passes back",
    )
    q.add_argument(
        "--norms",
        choices=["per_image", "first_image"],
        default=None,
        help="patch norms per image (default) or the notebook's first-image shortcut",
    )


# flags whose value is a QuantumConfig field of the same name
_FIELD_FLAGS = (
    "eps", "cap", "delta", "ipe", "ae_bits", "ae_median", "failure_prob", "noise_order",
    "noise_per_shot", "sampled_value", "tomography_normaliser", "sampling_power", "gradient_model",
    "gradient_on", "gradient_signs", "input_gradient_noise", "norms",
)  # fmt: skip


def preset_config(name: str) -> QuantumConfig:
    """The configuration a ``--preset`` starts from."""
    if name == "paper":
        return QuantumConfig.paper()
    if name == "theory":
        return QuantumConfig.theory()
    raise ValueError(f"--preset must be one of {PRESETS}, got {name!r}")


def config_from_args(args: argparse.Namespace) -> QuantumConfig:
    """Build the QuantumConfig of :func:`add_quantum_arguments`' flags: the preset, with every
    flag given explicitly overriding it (see :func:`add_quantum_arguments` for the precedence);
    raises ValueError with the offending field."""
    if args.no_sampling and (args.sigma is not None or args.eta is not None):
        raise ValueError("--no-sampling excludes --sigma and --eta")
    base = preset_config(getattr(args, "preset", None) or "paper").to_dict()
    given = {k: getattr(args, k) for k in _FIELD_FLAGS if getattr(args, k, None) is not None}
    if args.no_sampling:
        base.update(sigma=None, eta=None)
    elif args.sigma is not None or args.eta is not None:
        base.update(sigma=args.sigma, eta=args.eta)
    base.update(given)
    # preset values that an explicit flag makes meaningless give way
    if "ae_median" in given and "failure_prob" not in given:
        base["failure_prob"] = None
    if base["sampled_value"] != "tomography" and "tomography_normaliser" not in given:
        base["tomography_normaliser"] = "exact"
    uses_ae = base["ipe"] == "amplitude_estimation" or (
        base["sampled_value"] == "tomography" and base["tomography_normaliser"] != "exact"
    )
    if not uses_ae and "failure_prob" not in given:
        base["failure_prob"] = None
    if base["sigma"] is None and base["eta"] is None and "noise_per_shot" not in given:
        base["noise_per_shot"] = False
    return QuantumConfig.from_dict(base)
