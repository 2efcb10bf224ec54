"""Recount the architectures' quantum layers with the construction's cost counts (issue 16).

    python experiments/architectures/recount.py experiments/architectures/results-mnist

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
smaller of the two tensors: so a lower bound of the missing factor). Writes ``costs.md`` and
``costs.json`` into the folder.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from qcnn.models import architecture_info, build_model, quantum_layers
from qcnn.quantum import QuantumConfig
from qcnn.quantum.costs import LayerShape, forward_costs

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
        shape = LayerShape(ho * wo, d_out, layer.kernel_volume(), c_in * h * w,
                           layer.bias is not None)  # fmt: skip
        out[row["path"]] = (shape, layer is not first)
    return out


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    summary = json.loads((folder / "summary.json").read_text())
    presets = {"paper": QuantumConfig.paper(), "theory": QuantumConfig.theory()}
    rows = []
    for arch in ARCHS:
        layers = shapes(arch)
        for rec in (r for r in summary["quantum_layers"] if r["arch"] == arch):
            shape, passes_back = layers[rec["layer"]]
            assert shape.out_pixels == rec["out_pixels"] and shape.volume == rec["kernel_volume"]
            row = {"arch": arch, "layer": rec["layer"], "kernel_volume": shape.volume,
                   "out_pixels": shape.out_pixels, "mean_f": rec["mean_f"]}  # fmt: skip
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
            old = rec["backward_quantum_over_classical"]
            d_f = shape.volume * shape.kernels
            row["backward_old"] = old
            row["backward_with_shots"] = old * 2 * 36 * math.log(d_f) if old is not None else None
            row["passes_gradient_back"] = passes_back
            rows.append(row)
    (folder / "costs.json").write_text(json.dumps(rows, indent=2) + "\n")

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
    (folder / "costs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
