"""Recount the architectures' quantum layers with the construction's cost counts (issue 16).

    python experiments/architectures/recount.py experiments/architectures/results-mnist [--physical]

The trained weights of this experiment are not kept, but what the cost counts need of them is
recorded in ``summary.json``: each quantum layer's measured E[f] (paper preset), its output size
and kernel volume. The layer shapes (patches P, kernels D', input size, bias, whether a gradient
is passed back) come from the architecture itself (``qcnn.models``, MNIST's 1x28x28 input). The
forward pass is recounted exactly as ``python -m qcnn.experiments.resources`` counts it
(:func:`qcnn.quantum.costs.forward_costs`, per image, both QRAM readings, paper and theory preset;
E[f] is the paper preset's measurement for both, labelled). The backward pass needs the mu and
kappa of the batch's matrices, which were not recorded per batch: it is given as the model §4
formula the first report evaluated (per image) times the ``2 x 36 ln d`` the sign-stepped
l-infinity tomography needs and the formula left out, with d = V D' (the kernel gradient, the
smaller of the two tensors: so a lower bound of the missing factor). With ``--physical`` (the
optional extra ``qcnn[estimate]``), the forward pass of every layer at both presets also gets
Microsoft's resource estimator's physical qubits, code distance, T factories and runtime per
image (paper reading; one shot estimated, times the shots, theory mode's normaliser added),
against this machine's measured convolution throughput. Writes ``costs.md`` and ``costs.json``
into the folder.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from qcnn.experiments.cost_report import classical_throughput
from qcnn.models import architecture_info, build_model, quantum_layers
from qcnn.quantum import QuantumConfig
from qcnn.quantum.costs import Counts, LayerShape, forward_costs
from qcnn.quantum.physical import physical_estimates

ARCHS = ["paper", "lenet5", "alexnet-small", "inception-small"]


def shapes(arch: str) -> dict[str, tuple[LayerShape, bool]]:
    """Layer path -> (shape, gradient passed back) of every quantum layer of ``arch``."""
    model = build_model(arch, QuantumConfig.paper(), seed=1, input_shape=(1, 28, 28), classes=10)
    info = architecture_info(model, (1, 28, 28))
    rows = [c for c in info["conv_layers"] if c["quantum"]]
    out = {}
    first = model.layers[0]
    for row, layer in zip(rows, quantum_layers(model), strict=True):
        c_in, h, w = row["input_shape"]
        d_out, ho, wo = layer.conv_output_shape((c_in, h, w))
        shape = LayerShape(
            ho * wo, d_out, layer.kernel_volume(), c_in * h * w, layer.bias is not None
        )
        out[row["path"]] = (shape, layer is not first)
    return out


def physical(f: dict, cpu_flops: float, macs: float) -> list[dict]:
    """Forward per image of one layer, every qubit model: one shot x the shots (+ normaliser)."""
    shot = physical_estimates(Counts(**f["shot"]), units=f["factors"]["shots_used"])
    norm = None
    if f["normaliser"]["rotations"]:
        norm = physical_estimates(Counts(**f["normaliser"]))
    rows = []
    for i, p in enumerate(shot):
        t = p["runtime_s"] + (norm[i]["runtime_s"] if norm else 0.0)
        rows.append(
            {
                k: p[k]
                for k in (
                    "qubit_model",
                    "qec_scheme",
                    "physical_qubits",
                    "code_distance",
                    "t_factories",
                )
            }
            | {"forward_per_image_s": t, "over_cpu": t / (2.0 * macs / cpu_flops)}
        )
    return rows


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    with_physical = "--physical" in argv[1:]
    cpu = classical_throughput() if with_physical else None
    summary = json.loads((folder / "summary.json").read_text())
    presets = {"paper": QuantumConfig.paper(), "theory": QuantumConfig.theory()}
    rows = []
    for arch in ARCHS:
        layers = shapes(arch)
        for rec in (r for r in summary["quantum_layers"] if r["arch"] == arch):
            shape, passes_back = layers[rec["layer"]]
            assert shape.out_pixels == rec["out_pixels"] and shape.volume == rec["kernel_volume"]
            row = {
                "arch": arch,
                "layer": rec["layer"],
                "kernel_volume": shape.volume,
                "out_pixels": shape.out_pixels,
                "mean_f": rec["mean_f"],
            }
            for name, cfg in presets.items():
                for reading in ("paper", "circuit"):
                    f = forward_costs(shape, cfg, rec["mean_f"], reading)
                    op = "qram_queries" if reading == "paper" else "rotations"
                    macs = shape.classical_forward
                    row[f"{name}_{reading}_forward"] = f["per_image"][op] / macs
                    row[f"{name}_{reading}_forward_eta"] = f["per_image_eta"][op] / macs
                    if reading == "paper":
                        row[f"{name}_aa_rounds"] = f["factors"]["aa_rounds"]
                        row[f"{name}_k"] = f["factors"]["ae_median_k"]
                        if cpu is not None:
                            row[f"{name}_physical"] = physical(f, cpu["flop_per_s"], macs)
            old = rec["backward_quantum_over_classical"]
            d_f = shape.volume * shape.kernels
            row["backward_old"] = old
            row["backward_with_shots"] = old * 2 * 36 * math.log(d_f) if old is not None else None
            row["passes_gradient_back"] = passes_back
            rows.append(row)
    record = {"rows": rows, "throughput": cpu}
    (folder / "costs.json").write_text(json.dumps(record, indent=2) + "\n")

    def g(v):
        return "-" if v is None else f"{v:.3g}"

    lines = [
        "| architecture | layer | V | H'W'D' | E[f] | r | forward, paper preset (sigma d shots) | "
        "same, eta 0.1 shots | theory preset | theory, eta 0.1 | circuit reading, paper preset | "
        "backward, formula of the first report | backward, with 2 x 36 ln d (lower bound) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['layer']} | {r['kernel_volume']} | {r['out_pixels']:,} | "
            f"{r['mean_f']:.3g} | {r['paper_aa_rounds']} | {g(r['paper_paper_forward'])} | "
            f"{g(r['paper_paper_forward_eta'])} | {g(r['theory_paper_forward'])} | "
            f"{g(r['theory_paper_forward_eta'])} | {g(r['paper_circuit_forward'])} | "
            f"{g(r['backward_old'])} | {g(r['backward_with_shots'])} |"
        )
    if cpu is not None:
        first = rows[0]["paper_physical"]
        lines += [
            "",
            f"Physical estimates of the forward pass per image (paper reading of QRAM; "
            f"Microsoft's resource estimator, error budget 0.01 per shot; this machine's "
            f"convolution: {cpu['flop_per_s']:.3g} FLOP/s, {cpu['cpu']}, shared). Columns: "
            f"physical qubits / code distance / T factories / seconds per image / x CPU "
            f"time, for {first[0]['qubit_model']} ({first[0]['qec_scheme']}) and "
            f"{first[-1]['qubit_model']} ({first[-1]['qec_scheme']}):",
            "",
            "| architecture | layer | paper preset, "
            + first[0]["qubit_model"]
            + " | paper preset, "
            + first[-1]["qubit_model"]
            + " | theory preset, "
            + first[0]["qubit_model"]
            + " | theory preset, "
            + first[-1]["qubit_model"]
            + " |",
            "|---|---|---|---|---|---|",
        ]

        def cell(p):
            return (
                f"{p['physical_qubits']:,} / {p['code_distance']} / {p['t_factories']} / "
                f"{p['forward_per_image_s']:.3g} s / {p['over_cpu']:.2g}x"
            )

        for r in rows:
            pp, tp = r["paper_physical"], r["theory_physical"]
            lines.append(
                f"| {r['arch']} | {r['layer']} | {cell(pp[0])} | {cell(pp[-1])} | "
                f"{cell(tp[0])} | {cell(tp[-1])} |"
            )
    (folder / "costs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
