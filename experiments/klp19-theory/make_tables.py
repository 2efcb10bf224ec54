"""Tables of experiments/klp19-theory/README.md from the sweep's results.json and the notebook
runs of experiments/klp19/results.json (same cells, same seeds).

    python experiments/klp19-theory/make_tables.py runs/klp19-theory/results.json > tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from qcnn.experiments.runner import config_tags
from qcnn.quantum import QuantumConfig

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE.parent / "klp19" / "results.json"
ABLATION_NAMES = {
    "ae6-fp0.01": "eps as a bound (AE, median of 11, m from the bound)",
    "ae9-fp0.01": "eps as a bound (AE, median of 11, m from the bound)",
    "fp0.01": "eps as a bound (AE, median of 11, m from the bound)",
    "ordertheory": "noise before the cap, f(Y + e)",
    "pershot": "a fresh estimate per tomography shot",
    "tomovalues-aenorm": "tomography values, normaliser by AE",
    "gradlinf+inputgrad": "l-infinity tomography of every gradient (+ the one passed back)",
}


def variant(run: dict) -> str:
    cfg = QuantumConfig.from_dict(run["quantum"]["config"])
    tags = config_tags(cfg)
    return "+".join(tags) if tags else "paper"


def cell(run: dict) -> tuple[float, float]:
    c = run["quantum"]["config"]
    return c["eps"], c["delta"]


def fmt(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    if not values:
        return "not run"
    v = np.asarray(values) * scale
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return (
        f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f} (n={v.size}: "
        + ", ".join(f"{x:.{digits}f}" for x in v)
        + ")"
    )


def main(path: str) -> int:
    theory_runs = json.loads(Path(path).read_text())["runs"]
    notebook_runs = json.loads(NOTEBOOK.read_text())["runs"]

    def qcnn(runs, var, eps, delta, seeds=None):
        return [r for r in runs if r["model"] == "qcnn" and r["quantum"]["config"]["cap"] == 10
                and r["quantum"]["config"]["sigma"] == 0.5 and variant(r) == var
                and cell(r) == (eps, delta) and (seeds is None or r["seed"] in seeds)]  # fmt: skip

    print("| eps | delta | notebook mode (experiments/klp19) | theory mode | theory, final loss |")
    print("|---|---|---|---|---|")
    for eps in (0.01, 0.1):
        for delta in (0.01, 0.1):
            nb = [r["test_accuracy"] for r in qcnn(notebook_runs, "paper", eps, delta)]
            th = qcnn(theory_runs, "theory", eps, delta)
            loss = [r["final_train_loss"] for r in th if r["final_train_loss"] is not None]
            print(f"| {eps:g} | {delta:g} | {fmt(nb)} | {fmt([r['test_accuracy'] for r in th])} | "
                  f"{fmt(loss, 1.0, 3)} |")  # fmt: skip
    print()
    print("Ablation: notebook mode with one theory option switched on (seed 1, sigma 0.5, C 10, "
          "delta 0.01); test accuracy in %:")  # fmt: skip
    print()
    print("| option | eps 0.01 | eps 0.1 |")
    print("|---|---|---|")
    base = {eps: [r["test_accuracy"] for r in qcnn(notebook_runs, "paper", eps, 0.01, {1})]
            for eps in (0.01, 0.1)}  # fmt: skip
    print(f"| none (notebook mode, experiments/klp19) | {fmt(base[0.01])} | {fmt(base[0.1])} |")
    rows: dict[str, dict[float, list[float]]] = {}
    for r in theory_runs:
        if r["model"] != "qcnn" or variant(r) in ("theory", "paper"):
            continue
        name = ABLATION_NAMES.get(variant(r), variant(r))
        rows.setdefault(name, {}).setdefault(cell(r)[0], []).append(r["test_accuracy"])
    for name, by_eps in rows.items():
        print(f"| {name} | {fmt(by_eps.get(0.01, []))} | {fmt(by_eps.get(0.1, []))} |")
    th = {eps: [r["test_accuracy"] for r in qcnn(theory_runs, "theory", eps, 0.01, {1})]
          for eps in (0.01, 0.1)}  # fmt: skip
    print(f"| all of them (theory preset) | {fmt(th[0.01])} | {fmt(th[0.1])} |")
    print()
    print("CNN weights under the quantum forward pass (test accuracy in %):")
    print()
    print("| forward pass | eps 0.01 | eps 0.1 |")
    print("|---|---|---|")
    for var in ("paper", "theory"):
        accs = {}
        for r in theory_runs:
            if r["model"] == "cnn-weights-quantum-forward" and variant(r).startswith(var):
                accs.setdefault(r["quantum"]["config"]["eps"], []).append(r["test_accuracy"])
        print(f"| {var} | {fmt(accs.get(0.01, []))} | {fmt(accs.get(0.1, []))} |")
    cnn = [r["test_accuracy"] for r in theory_runs if r["model"] == "cnn"]
    print(f"\nThe CNN itself: {fmt(cnn)} %.")
    print()
    print("Training time of each run (s; the machine was shared, see the README):")
    print()
    for r in theory_runs:
        if r["model"] in ("qcnn", "cnn"):
            tag = variant(r) if r["model"] == "qcnn" else "cnn"
            eps = cell(r)[0] if r["model"] == "qcnn" else "-"
            delta = cell(r)[1] if r["model"] == "qcnn" else "-"
            print(
                f"- {tag}, eps {eps}, delta {delta}, seed {r['seed']}: {r['train_seconds']:.0f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
