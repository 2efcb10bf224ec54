"""``python -m qcnn.experiments.circuits --coherent``: one digit through the layer as ONE circuit.

The coherent circuit (:mod:`qcnn.circuits.coherent`) loads every patch and kernel in
superposition, estimates every inner product by amplitude estimation at once and writes the
capped ReLU into a flag's amplitude. This command builds it for one image, runs it on Aer's
statevector simulator, and shows:

- the registers, qubits, depth and gate counts as built (each multiplexer one gate) and the
  CNOT count of its decomposition counted from the construction;
- ``P(pixel | flag = 1)`` read from the statevector beside the emulator's exact per-shot law
  (:func:`qcnn.quantum.ae_output_law`), with their total-variation distance;
- N shots sampled from the circuit's law (each shot a pixel and the value its AE outcome
  carries; a pixel drawn n times takes the mean of its n values) beside the classical
  convolution with the capped ReLU;
- ``P(flag = 1)`` and the amplitude-amplification rounds the algorithm would pay per shot.

Default input: the 8x8 image of the circuits demo (``--kernels`` 3x3 kernels). With
``--full-size``: an MNIST digit at 28x28 through the first layer of the paper network (5
kernels 7x7, 484 patches; 20 + m qubits). Writes ``coherent_demo.png``, ``coherent_demo.json``
and ``coherent_circuit.txt`` (the register-level drawing) into ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.circuits.coherent import (
    build_coherent_circuit,
    coherent_law,
    register_diagram,
    statevector_backend,
)
from qcnn.data.mnist import MNIST_MEAN, MNIST_STD
from qcnn.io import atomic_write_json, atomic_write_text
from qcnn.plotting import plot_coherent_layer
from qcnn.quantum import QuantumConfig, QuantumConv2D, ae_output_law
from qcnn.quantum.output_law import conv_products
from qcnn.quantum.sampling import shots_from_sigma
from qcnn.seeding import seed_stream

__all__ = ["coherent_input", "run_coherent", "FULL_KERNELS", "FULL_KERNEL_SIZE"]

FULL_KERNELS, FULL_KERNEL_SIZE = 5, 7  # the paper network's first layer (model §5)


def coherent_input(args: argparse.Namespace, image: np.ndarray) -> tuple[np.ndarray, int, int]:
    """``(x (1, H, W) float64, kernels, kernel size)`` of the run: the 8x8 demo input, or with
    ``--full-size`` the 28x28 MNIST digit normalised like the networks' inputs."""
    from qcnn.experiments.circuits import layer_input

    if getattr(args, "full_size", False):
        img = np.asarray(image)
        if img.shape != (28, 28):
            raise ValueError(
                f"--full-size runs a 28x28 MNIST digit; --dataset {args.dataset} has images of "
                f"shape {img.shape}"
            )
        x = (img.astype(np.float64) / 255.0 - MNIST_MEAN) / MNIST_STD
        return x[None], FULL_KERNELS, FULL_KERNEL_SIZE
    return layer_input(image)[0], int(args.kernels), 3


def _sample_map(
    folded: np.ndarray, values: np.ndarray, shots: int, rng: np.random.Generator
) -> np.ndarray:
    """Shots from ``P(q, p, J | flag = 1)`` (``(O, P, M/2 + 1)``); a pixel takes the mean of the
    values ``values[q, p, J]`` its shots carry (0 if never drawn): ``(O, P)``."""
    flat = folded.ravel()
    counts = rng.multinomial(shots, flat / flat.sum())
    o, p, nj = folded.shape
    val = values[:, :, :nj].ravel()  # y = J carries the value of J
    n_pix = counts.reshape(o, p, nj).sum(axis=2)
    s = (counts * val).reshape(o, p, nj).sum(axis=2)
    return np.divide(s, n_pix, out=np.zeros_like(s), where=n_pix > 0)


def run_coherent(
    args: argparse.Namespace, image: np.ndarray, source: str, label: int
) -> dict[str, Any]:
    """Build and run the coherent circuit on ``image``; print and write the results."""
    x, kernels, ksize = coherent_input(args, image)
    m = int(args.ae_bits)
    cfg = QuantumConfig(
        ipe="amplitude_estimation",
        noise_order="theory",
        ae_bits=m,
        cap=args.cap,
        sigma=args.sigma,
        noise_per_shot=True,
    )
    # the kernels of the per-pair demo (Kaiming init from --seed)
    weight = QuantumConv2D(
        x.shape[0], kernels, ksize, bias=False, config=cfg, rng=args.seed, dtype=np.float64
    ).weight.data.astype(np.float64)

    start = time.perf_counter()
    cc = build_coherent_circuit(x, weight, None, cfg)
    build_s = time.perf_counter() - start
    stats = cc.stats()
    options: dict[str, Any] = {}
    if getattr(args, "aer_precision", "double") == "single":
        options["precision"] = "single"
    backend = statevector_backend(getattr(args, "aer_device", None), **options)
    start = time.perf_counter()
    law = coherent_law(cc, backend)
    simulate_s = time.perf_counter() - start

    circ = law.output_distribution()
    y_nb, scale, hw = conv_products(x, weight)
    ref = ae_output_law(y_nb, scale, np.zeros_like(y_nb), args.cap, m)
    emu = ref.pixel_law().reshape(circ.shape)
    tv = 0.5 * float(np.abs(circ - emu).sum())
    d = circ.size
    shots = int(args.shots) if args.shots is not None else shots_from_sigma(d, args.sigma)
    rng = np.random.default_rng(seed_stream(args.seed, "circuits"))
    sampled = _sample_map(law.folded_joint_given_flag(), cc.values, shots, rng).reshape(circ.shape)
    classical = np.clip(y_nb, 0.0, args.cap).reshape(circ.shape)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "MNIST" if args.dataset == "mnist" else args.dataset
    title = (
        f"{name} test #{args.index} (label {label}), coherent circuit: {kernels} kernels "
        f"{ksize}x{ksize}, m={m}, {stats['qubits']} qubits, N={shots} shots"
    )
    plot_coherent_layer(
        x[0],
        [
            ("P(pixel | flag=1), circuit", circ),
            ("P(pixel), emulator law", emu),
            (f"sampled map, N={shots}", sampled),
            ("classical conv, capped", classical),
        ],
        out_dir / "coherent_demo.png",
        title,
    )
    summary = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data_source": source,
        "label": int(label),
        "config": cfg.to_dict(),
        "registers": {k: list(v) for k, v in cc.layout.registers.items()},
        "stats": stats,
        "cx_from_construction": cc.cx_count(),
        "build_s": build_s,
        "simulate_s": simulate_s,
        "flag_probability": law.flag_probability,
        "amplification_rounds": law.amplification_rounds,
        "tv_circuit_vs_emulator": tv,
        "shots": shots,
        "aer_device": getattr(args, "aer_device", None) or "CPU",
    }
    atomic_write_json(out_dir / "coherent_demo.json", summary)
    drawing = str(register_diagram(cc.layout).draw("text", fold=-1))
    atomic_write_text(out_dir / "coherent_circuit.txt", drawing + "\n")
    if not args.quiet:
        print(title)
        print(cc.layout.describe())
    ops = ", ".join(f"{k} {v}" for k, v in sorted(stats["ops"].items()))
    print(
        f"qubits {stats['qubits']}, depth {stats['depth']}, gates {stats['gates']} ({ops}); "
        f"{stats['multiplexer_branches']} multiplexer branches; "
        f"{cc.cx_count()} CNOTs when decomposed (counted from the construction)"
    )
    print(
        f"built in {build_s:.2f} s, simulated in {simulate_s:.2f} s; P(flag=1) = "
        f"{law.flag_probability:.4g} ({law.amplification_rounds} amplitude-amplification rounds "
        f"per shot); TV(circuit, emulator law) = {tv:.2e}; wrote {out_dir}"
    )
    return summary
