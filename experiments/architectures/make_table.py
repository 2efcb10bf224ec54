"""Collect the architectures experiment (run.sh) into one table.

    python experiments/architectures/make_table.py RUNS_DIR RESULTS_DIR

Reads ``RUNS_DIR/<arch>-cnn/results.json``, ``<arch>-qcnn/results.json`` and
``<arch>-resources/resources.json`` and writes into ``RESULTS_DIR``: ``table.md`` (accuracy,
training time, parameters, kernel volumes; then every quantum layer's kernel volume, Q and
predicted quantum/classical cost ratio), ``table.csv`` (the per-layer rows), ``summary.json``,
and a copy of every results/resources file under ``runs/``.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from pathlib import Path

ARCHS = ["paper", "lenet5", "lenet5-1998", "alexnet-small", "inception-small"]
# extra rows: (label, run folder prefix)
EXTRA = [("lenet5, plain SGD", "lenet5-plain-sgd")]


def _load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str]) -> int:
    runs, results = Path(argv[0]), Path(argv[1])
    (results / "runs").mkdir(parents=True, exist_ok=True)
    arch_rows, layer_rows, summary = [], [], {}
    for arch, prefix in [(a, a) for a in ARCHS] + EXTRA:
        recs = {}
        for model in ("cnn", "qcnn"):
            res = _load(runs / f"{prefix}-{model}" / "results.json")
            if res is not None:
                shutil.copy(
                    runs / f"{prefix}-{model}" / "results.json",
                    results / "runs" / f"{prefix}-{model}.json",
                )
                recs[model] = res["runs"][0]
                summary.setdefault("dataset", res["dataset"])
                summary.setdefault("environment", res.get("environment"))
        if not recs:
            continue
        resources = _load(runs / f"{prefix}-resources" / "resources.json")
        if resources is not None:
            shutil.copy(
                runs / f"{prefix}-resources" / "resources.json",
                results / "runs" / f"{prefix}-resources.json",
            )
        info = next(iter(recs.values()))["architecture"]
        volumes = [c["kernel_volume"] for c in info["conv_layers"]]
        qinfo = recs["qcnn"]["architecture"] if "qcnn" in recs else None
        quantum_paths = [c["path"] for c in qinfo["conv_layers"] if c["quantum"]] if qinfo else []
        row = {
            "arch": arch,
            "parameters": info["parameters"],
            "conv_layers": len(volumes),
            "kernel_volumes": volumes,
            "quantum_layers": len(quantum_paths),
            "momentum": next(iter(recs.values()))["momentum"],
        }
        for model in ("cnn", "qcnn"):
            if model in recs:
                row[f"{model}_test_accuracy"] = recs[model]["test_accuracy"]
                row[f"{model}_train_seconds"] = recs[model]["train_seconds"]
                row[f"{model}_final_train_loss"] = recs[model]["final_train_loss"]
        best = None
        for path, layer in zip(quantum_paths, (resources or {}).get("layers", []), strict=False):
            r = layer["resources"]
            ratio = r["quantum_ops"] / r["classical_ops"]
            back = layer.get("backward") or {}
            lr = {
                "arch": arch,
                "layer": path,
                "kernel_volume": r["kernel_volume"],
                "out_pixels": r["out_pixels"],
                "M": r["M"],
                "mean_f": r["mean_f"],
                "Q": r["Q"],
                "implied_eta": r.get("implied_eta"),
                "crossover_volume_fixed_q": r["crossover_kernel_volume"],
                # on the fit of Q measured on synthetic deeper inputs (last layer only)
                "crossover_volume_fit": layer.get("crossover_volume_fit"),
                "quantum_over_classical": ratio,
                "backward_quantum_over_classical": (
                    back["quantum_ops"] / back["classical_ops"] if back else None
                ),
            }
            layer_rows.append(lr)
            if best is None or ratio < best["quantum_over_classical"]:
                best = lr
        row["closest_layer"] = best
        arch_rows.append(row)
    closest = min(
        (r["closest_layer"] for r in arch_rows if r["closest_layer"]),
        key=lambda r: r["quantum_over_classical"],
        default=None,
    )
    summary.update({"architectures": arch_rows, "quantum_layers": layer_rows, "closest": closest})
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    def pct(v):
        return "-" if v is None else f"{100 * v:.2f} %"

    def sec(v):
        return "-" if v is None else f"{v:.0f}"

    lines = [
        "| architecture | SGD momentum | parameters | conv kernel volumes | quantum layers | "
        "CNN test acc | CNN train s | QCNN test acc | QCNN train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in arch_rows:
        lines.append(
            f"| {r['arch']} | {r['momentum']:g} | {r['parameters']:,} | "
            f"{', '.join(map(str, r['kernel_volumes']))} | "
            f"{r['quantum_layers']} | {pct(r.get('cnn_test_accuracy'))} | "
            f"{sec(r.get('cnn_train_seconds'))} | {pct(r.get('qcnn_test_accuracy'))} | "
            f"{sec(r.get('qcnn_train_seconds'))} |"
        )

    def num(v):
        return "-" if v is None else f"{v:.3g}"

    lines += [
        "",
        "| architecture | quantum layer | kernel volume kh kw D | H'W'D' | M | E[f] | Q | "
        "implied eta | forward: quantum / classical cost | backward: quantum / classical "
        "cost | crossover volume, Q fixed | crossover volume, fit of measured Q |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in layer_rows:
        lines.append(
            f"| {r['arch']} | {r['layer']} | {r['kernel_volume']} | {r['out_pixels']:,} | "
            f"{r['M']:.3g} | {r['mean_f']:.3g} | {r['Q']:.3g} | {num(r['implied_eta'])} | "
            f"{r['quantum_over_classical']:.3g} | {num(r['backward_quantum_over_classical'])} | "
            f"{r['crossover_volume_fixed_q']:.3g} | {num(r['crossover_volume_fit'])} |"
        )
    (results / "table.md").write_text("\n".join(lines) + "\n")
    buf = io.StringIO()
    if layer_rows:
        writer = csv.DictWriter(buf, fieldnames=list(layer_rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(layer_rows)
    (results / "table.csv").write_text(buf.getvalue())
    print("\n".join(lines))
    if closest:
        print(
            f"closest to the crossover: {closest['arch']} layer {closest['layer']} "
            f"(quantum/classical {closest['quantum_over_classical']:.3g})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
