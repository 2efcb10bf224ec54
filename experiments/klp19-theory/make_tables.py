"""Tables of experiments/klp19-theory/README.md from the recorded runs.

    python experiments/klp19-theory/make_tables.py OUT_DIR RECORD.json [...] [--second RECORD.json ...]

Records after ``--second`` are the second edition's (issue 17: run on another machine, whose
OpenBLAS kernels give other last bits, so its runs are compared only with each other); a
``results.json`` written by this script carries both editions (``runs``, ``second_edition``).

Each RECORD.json is a ``results.json`` of the ``sweep`` or of the ``mnist`` command (both hold
``{"runs": [...]}`` with the same run records) or one finished run's ``run.json`` (the record
itself; the sweep writes it when the run ends, its ``results.json`` only when the grid ends).
Records of the CNN's weights under the quantum forward pass (``cnn_forward.py``, or the
sweep's end) get a table of their own. Writes into OUT_DIR: ``results.json`` (every run record,
sorted by run id, with the environment of the first file), ``summary.csv`` (one line per run) and
``tables.md`` (the README's tables). The notebook runs of experiments/klp19 (recorded on another
CPU, see the README) are read from ``experiments/klp19/results.json`` for reference.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from qcnn.data.registry import public_source
from qcnn.experiments.grids import klp19_theory_cells
from qcnn.experiments.runner import config_tags, portable_paths
from qcnn.io import atomic_write_text
from qcnn.quantum import QuantumConfig

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE.parent / "klp19" / "results.json"
# the one-option ablation (qcnn.experiments.grids.THEORY_ABLATION), by the tags of its run ids
ABLATION_NAMES = {
    "ae9+fp0.01": "eps as a bound (AE, m from the bound, median of 11)",
    "ae6+fp0.01": "eps as a bound (AE, m from the bound, median of 11)",
    "ordertheory": "noise before the cap, f(Y + e)",
    "pershot": "a fresh estimate per tomography shot",
    "tomovalues-aenorm": "tomography values, normaliser by AE",
    "gradlinf+inputgrad": "l-infinity tomography of every gradient (+ the one passed back)",
}
EPS, DELTAS = (0.01, 0.1), (0.01, 0.1)
# the theory preset's version the tables show (QuantumConfig.THEORY_PRESET_VERSIONS): the records
# so far ran version 1 (the tomography gradients' norm exact)
PRESET = "theory-v1"


def variant(run: dict) -> str:
    cfg = QuantumConfig.from_dict(run["quantum"]["config"])
    tags = config_tags(cfg)
    if cfg.ipe == "amplitude_estimation" and not tags[0].startswith("theory"):
        tags = [f"ae{cfg.resolved_ae_bits}", *tags]
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


def qcnn_runs(runs: list[dict], var: str, eps: float, delta: float, seeds=None) -> list[dict]:
    def keep(r: dict) -> bool:
        if r["model"] != "qcnn":
            return False
        c = r["quantum"]["config"]
        return (
            c["cap"] == 10
            and c["sigma"] == 0.5
            and variant(r) == var
            and cell(r) == (eps, delta)
            and (seeds is None or r["seed"] in seeds)
        )

    return sorted((r for r in runs if keep(r)), key=lambda r: r["seed"])


def acc(runs: list[dict]) -> list[float]:
    return [r["test_accuracy"] for r in runs]


def with_change(values: list[float], base: list[float]) -> str:
    """``values`` formatted, with the change of the first from the first of ``base`` (points)."""
    if not values or not base:
        return fmt(values)
    return f"{fmt(values)} ({100 * (values[0] - base[0]):+.2f})"


def forward_mode(r: dict) -> str:
    return "theory" if r["quantum"]["config"]["ipe"] == "amplitude_estimation" else "notebook"


def tables(runs: list[dict], notebook_klp19: list[dict], forward: list[dict]) -> str:
    out = io.StringIO()

    def p(line: str = "") -> None:
        out.write(line + "\n")

    p("Test accuracy (%) after 2 epochs on full MNIST, sigma 0.5, C 10; final training loss of")
    p("the theory runs (mean of the last 12 loss logs).")
    p()
    p(
        "| eps | delta | notebook, experiments/klp19 (Xeon; seeds 1-3 where run) | notebook, here (seed 1) "
        "| theory preset v1, here | theory v1, final loss |"
    )
    p("|---|---|---|---|---|---|")
    for eps in EPS:
        for delta in DELTAS:
            th = qcnn_runs(runs, PRESET, eps, delta)
            loss = [r["final_train_loss"] for r in th if r["final_train_loss"] is not None]
            p(
                f"| {eps:g} | {delta:g} | {fmt(acc(qcnn_runs(notebook_klp19, 'paper', eps, delta)))} "
                f"| {fmt(acc(qcnn_runs(runs, 'paper', eps, delta, {1})))} | {fmt(acc(th))} "
                f"| {fmt(loss, 1.0, 3)} |"
            )
    p()
    p("Ablation: notebook mode with one theory option switched on (seed 1, sigma 0.5, C 10,")
    p("delta 0.01); test accuracy in %, and the change from notebook mode run here:")
    p()
    p("| option | eps 0.01 | eps 0.1 |")
    p("|---|---|---|")
    base = {eps: acc(qcnn_runs(runs, "paper", eps, 0.01, {1})) for eps in EPS}
    p(f"| none (notebook mode, here) | {fmt(base[0.01])} | {fmt(base[0.1])} |")

    for name in dict.fromkeys(ABLATION_NAMES.values()):  # each option once, in order
        tags = [t for t, n in ABLATION_NAMES.items() if n == name]
        by_eps = {
            eps: [v for t in tags for v in acc(qcnn_runs(runs, t, eps, 0.01, {1}))] for eps in EPS
        }
        p(
            f"| {name} | {with_change(by_eps[0.01], base[0.01])} | {with_change(by_eps[0.1], base[0.1])} |"
        )
    th = {eps: acc(qcnn_runs(runs, PRESET, eps, 0.01, {1})) for eps in EPS}
    p(
        f"| all of them (theory preset v1) | {with_change(th[0.01], base[0.01])} "
        f"| {with_change(th[0.1], base[0.1])} |"
    )
    p()
    p('Superseded (issue 17): the row "tomography values, normaliser by AE" ran its normaliser')
    p("with one AE run (failure_prob unset: k = 1, and m = 5 at eps 0.1), not the preset's median")
    p("of 11, so it measured a bad normaliser as much as count-based values; the second edition")
    p("below reruns it with the preset's normaliser and with the exact one. The theory preset")
    p("here is version 1 (the tomography gradients' norm exact).")
    grad = qcnn_runs(runs, "gradlinf+inputgrad", 0.01, 0.1, {1})
    if grad:  # the gradient read-out alone at the coarse delta
        p()
        p("At delta 0.1 (eps 0.01, seed 1): the gradient read-out alone, test accuracy in %:")
        p()
        p("| notebook mode, here | + l-infinity tomography of every gradient | theory preset v1 |")
        p("|---|---|---|")
        nb = acc(qcnn_runs(runs, "paper", 0.01, 0.1, {1}))
        th01 = acc(qcnn_runs(runs, PRESET, 0.01, 0.1, {1}))
        p(f"| {fmt(nb)} | {with_change(acc(grad), nb)} | {fmt(th01)} |")
    cnn = acc([r for r in runs if r["model"] == "cnn"])
    p()
    p(f"The CNN, same machine and settings (seed 1): {fmt(cnn)} %.")
    p()
    if forward:
        p("The CNN's trained weights under the quantum forward pass (no training; C 10, sigma 0.5;")
        p("`cnn_forward.py`): test accuracy in %")
        p()
        p("| eps | notebook mode | theory mode |")
        p("|---|---|---|")
        for eps in EPS:
            by_mode = {
                mode: acc([r for r in forward if forward_mode(r) == mode and cell(r)[0] == eps])
                for mode in ("notebook", "theory")
            }
            p(f"| {eps:g} | {fmt(by_mode['notebook'])} | {fmt(by_mode['theory'])} |")
        p()
    p("Training time of each run (s; shared machine, see the README):")
    p()
    for r in sorted(runs, key=run_id):
        p(f"- `{run_id(r)}`: {r['train_seconds']:.0f} s")
    return out.getvalue()


# -- the second edition (issue 17) ------------------------------------------------------------

CELLS = klp19_theory_cells()
SUBSET = 6000  # training images of the eta = 0.1 run and its sigma twin (22x the shots)
NAMES = {
    "notebook": "none (notebook mode)",
    "eps-bound": "eps as a bound (AE, m from the bound, median of 11)",
    "noise-order": "noise before the cap, f(Y + e)",
    "noise-per-shot": "a fresh estimate per tomography shot",
    "tomography-values": "tomography values, the preset's normaliser (AE, median of 11)",
    "tomography-values-exact-normaliser": "tomography values, the exact normaliser",
    "gradient-tomography": "l-infinity tomography of every gradient (+ the one passed back)",
    "theory": "all of them (theory preset v2)",
}


def cell_name(r: dict) -> str | None:
    """The name of the grid cell (qcnn.experiments.grids.klp19_theory_cells) a run ran, or
    None (a configuration outside the second edition's grid)."""
    cfg = QuantumConfig.from_dict(r["quantum"]["config"])
    return next((name for name, c in CELLS if c == cfg), None)


def train_size(r: dict) -> int | None:
    return (r.get("dataset") or {}).get("train_size")


def runs_of(
    runs: list[dict], name: str, eps: float, delta: float, subset: int | None = None
) -> list[dict]:
    """The runs of grid cell ``name`` at (eps, delta): on full MNIST, or on the first
    ``subset`` training images."""
    size = 60000 if subset is None else subset
    keep = [
        r for r in runs if r["model"] == "qcnn" and cell_name(r) == name and train_size(r) == size
    ]
    return sorted((r for r in keep if cell(r) == (eps, delta)), key=lambda r: r["seed"])


def with_mean_change(runs: list[dict], base: list[dict]) -> str:
    """The accuracies of ``runs`` formatted, with the change of their mean from the mean of the
    ``base`` runs of the same seeds (points; nothing when the base has none of those seeds)."""
    values = acc(runs)
    seeds = {r["seed"] for r in runs}
    matched = [r["test_accuracy"] for r in base if r["seed"] in seeds]
    if not values or len(matched) != len(values):
        return fmt(values)
    return f"{fmt(values)} ({100 * (np.mean(values) - np.mean(matched)):+.2f})"


def pixel_rms(r: dict) -> list[float] | None:
    """Per layer: the RMS inner-product error of one estimate per pixel over every pixel
    (``ipe_error_rms_pixel``; in per-pixel modes ``ipe_error_rms`` is that figure), or None for
    a per-shot run recorded before the statistic existed."""
    out = []
    for layer in r["quantum"]["layers"]:
        st = layer["stats"]
        if "ipe_error_rms_pixel" in st:
            out.append(st["ipe_error_rms_pixel"])
        elif not r["quantum"]["config"].get("noise_per_shot"):
            out.append(st["ipe_error_rms"])
        else:
            return None
    return out


def fmt_rms(runs: list[dict]) -> str:
    per_run = [pixel_rms(r) for r in runs]
    per_run = [v for v in per_run if v is not None]
    if not per_run:
        return "not run" if not runs else "not recorded"
    mean = np.mean(per_run, axis=0)
    return " / ".join(f"{v:.3f}" for v in mean) + (
        f" (n={len(per_run)})" if len(per_run) > 1 else ""
    )


def second_tables(runs: list[dict]) -> str:
    out = io.StringIO()

    def p(line: str = "") -> None:
        out.write(line + "\n")

    p("### Second edition (issue 17): runs on this machine only")
    p()
    p("Test accuracy (%) after 2 epochs on full MNIST, sigma 0.5, C 10; seeds as listed (mean ±")
    p("std over seeds, then each seed). Each ablation cell is notebook mode with one option group")
    p("changed (`qcnn.experiments.ablation`), AE options with the preset's m and k; the change is")
    p("from notebook mode's mean here.")
    p()
    p("| option (delta 0.01) | eps 0.01 | eps 0.1 |")
    p("|---|---|---|")
    base = {eps: runs_of(runs, "notebook", eps, 0.01) for eps in EPS}
    for name, title in NAMES.items():
        by_eps = {eps: runs_of(runs, name, eps, 0.01) for eps in EPS}
        if name == "notebook":
            p(f"| {title} | {fmt(acc(base[0.01]))} | {fmt(acc(base[0.1]))} |")
        else:
            p(
                f"| {title} | {with_mean_change(by_eps[0.01], base[0.01])} "
                f"| {with_mean_change(by_eps[0.1], base[0.1])} |"
            )
    p()
    p("The gradient read-out, eps 0.01: test accuracy in %, the change from the row's base")
    p("(notebook mode for the read-out; the read-out for its estimated norm; the theory preset v2")
    p("for its variants):")
    p()
    p("| configuration | delta 0.01 | delta 0.1 |")
    p("|---|---|---|")
    nb = {d: runs_of(runs, "notebook", 0.01, d) for d in DELTAS}
    ro = {d: runs_of(runs, "gradient-tomography", 0.01, d) for d in DELTAS}
    th = {d: runs_of(runs, "theory", 0.01, d) for d in DELTAS}
    norm = runs_of(runs, "gradient-norm", 0.01, 0.01)
    p(f"| notebook mode | {fmt(acc(nb[0.01]))} | {fmt(acc(nb[0.1]))} |")
    p(
        f"| + l-infinity tomography of every gradient | {with_mean_change(ro[0.01], nb[0.01])} "
        f"| {with_mean_change(ro[0.1], nb[0.1])} |"
    )
    p(f"| + its norm estimated by AE | {with_mean_change(norm, ro[0.01])} | not in the grid |")
    p(
        f"| theory preset v2 (KP signs, every gradient) | {fmt(acc(th[0.01]))} | {fmt(acc(th[0.1]))} |"
    )
    for key, title in (
        ("exact-signs", "exact signs"),
        ("gradient-on-quantum", "gradient_on = quantum"),
    ):
        v = {d: runs_of(runs, f"theory+{key}", 0.01, d) for d in DELTAS}
        p(
            f"| theory preset v2, {title} | {with_mean_change(v[0.01], th[0.01])} "
            f"| {with_mean_change(v[0.1], th[0.1])} |"
        )
    p()
    p("The theory preset v2 and notebook mode on the four cells; the preset with the theorem's")
    p("shot count for eta = 0.1 (36 ln d / eta^2 shots, about 22x sigma d) at eps = delta = 0.01:")
    p()
    p("| eps | delta | notebook mode | theory preset v2 |")
    p("|---|---|---|---|")
    for eps in EPS:
        for delta in DELTAS:
            p(
                f"| {eps:g} | {delta:g} | {fmt(acc(runs_of(runs, 'notebook', eps, delta)))} "
                f"| {fmt(acc(runs_of(runs, 'theory', eps, delta)))} |"
            )
    p(f"| 0.01 | 0.01 | eta = 0.1 shots: | {fmt(acc(runs_of(runs, 'eta-shots', 0.01, 0.01)))} |")
    p()
    sub = {n: acc(runs_of(runs, n, 0.01, 0.01, SUBSET)) for n in ("theory", "eta-shots")}
    if any(sub.values()):  # the eta run trained on a subset (22x the shots), with its twin
        p(f"On the first {SUBSET:,} training images (2 epochs, eps = delta = 0.01): the theory")
        p(
            f"preset v2 with sigma d shots {fmt(sub['theory'])} %, with eta = 0.1 shots "
            f"{fmt(sub['eta-shots'])} %."
        )
        p()
    return out.getvalue()


def rms_table(first: list[dict], second: list[dict]) -> str:
    """The like-for-like inner-product error: one estimate per pixel, every pixel."""
    out = io.StringIO()
    out.write(
        "RMS error of the estimated inner products, one estimate per pixel over every pixel\n"
    )
    out.write("(layers 1 / 2; mean over the run's batches; the same statistic in every mode):\n\n")
    out.write(
        "| eps | notebook mode | eps as a bound (AE, per pixel) | theory preset v2 (per shot; second edition) |\n"
    )
    out.write("|---|---|---|---|\n")
    for eps in EPS:
        nb = qcnn_runs(first, "paper", eps, 0.01, {1})
        ae = qcnn_runs(first, f"ae{9 if eps == 0.01 else 6}+fp0.01", eps, 0.01, {1})
        th = runs_of(second, "theory", eps, 0.01)
        out.write(f"| {eps:g} | {fmt_rms(nb)} | {fmt_rms(ae)} | {fmt_rms(th)} |\n")
    out.write("\n")
    return out.getvalue()


def run_id(r: dict) -> str:
    if r["model"] != "qcnn":
        return f"{r['model']}-{r.get('arch', 'paper')}-seed{r['seed']}"
    eps, delta = cell(r)
    return f"qcnn-eps{eps:g}-delta{delta:g}-{variant(r)}-seed{r['seed']}"


def summary_csv(runs: list[dict], second: list[dict] | None = None) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(
        [
            "run",
            "model",
            "variant",
            "eps",
            "delta",
            "seed",
            "test_accuracy",
            "final_train_loss",
            "train_seconds",
        ]
    )
    for r in sorted(runs, key=run_id):
        q = r["model"] == "qcnn"
        w.writerow(
            [
                run_id(r),
                r["model"],
                variant(r) if q else "",
                *(cell(r) if q else ("", "")),
                r["seed"],
                r["test_accuracy"],
                r["final_train_loss"],
                r["train_seconds"],
            ]
        )
    for r in sorted(second or [], key=run_id):
        q = r["model"] == "qcnn"
        w.writerow(
            [
                f"second-edition/{run_id(r)}",
                r["model"],
                (cell_name(r) or variant(r)) if q else "",
                *(cell(r) if q else ("", "")),
                r["seed"],
                r["test_accuracy"],
                r["final_train_loss"],
                r["train_seconds"],
            ]
        )
    return out.getvalue()


def _portable(r: dict) -> dict:
    """A run record without machine paths (records written before the code recorded none):
    absolute paths relative to the working directory, the data source's kind only."""
    r = portable_paths(r, Path.cwd())
    if isinstance(r.get("dataset"), dict) and isinstance(r["dataset"].get("source"), str):
        r["dataset"] = {**r["dataset"], "source": public_source(r["dataset"]["source"])}
    return r


def _records(files: list[dict]) -> list[dict]:
    return [
        r
        for f in files
        for r in (f["runs"] + f.get("cnn_weights_quantum_forward", []) if "runs" in f else [f])
    ]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir, rest = Path(argv[0]), argv[1:]
    split = rest.index("--second") if "--second" in rest else len(rest)
    paths, second_paths = [Path(a) for a in rest[:split]], [Path(a) for a in rest[split + 1 :]]
    files = [json.loads(p.read_text()) for p in paths]
    records = _records(files)
    second = [r for f in files for r in f.get("second_edition", [])]
    second += _records([json.loads(p.read_text()) for p in second_paths])
    second = [_portable(r) for r in second if r["model"] in ("cnn", "qcnn")]
    # a run given again (e.g. the folder's own record and the sweep's) counts once: the last
    second = list({run_id(r): r for r in second}.values())
    runs = [r for r in records if r["model"] in ("cnn", "qcnn")]
    # the CNN's weights under the quantum forward pass (cnn_forward.py, or the sweep's end)
    forward = [r for r in records if r["model"] == "cnn-weights-quantum-forward"]
    whole = [f for f in files if "runs" in f]
    ids = [run_id(r) for r in runs]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"the same run twice in {', '.join(map(str, paths))}")
    notebook_klp19 = json.loads(NOTEBOOK.read_text())["runs"]
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "dataset": whole[0]["dataset"] if whole else runs[0]["dataset"],
        "environment": whole[0]["environment"] if whole else None,
        # the sources of records this script wrote, then the other files given
        "sources": list(  # each once, in order
            dict.fromkeys(
                [src for f in files for src in f.get("sources", [])]
                + portable_paths(
                    [str(p) for p, f in zip(paths, files, strict=True) if "sources" not in f]
                    + [str(p) for p in second_paths],
                    Path.cwd(),
                )
            )
        ),
        "runs": sorted(runs, key=run_id),
        "cnn_weights_quantum_forward": sorted(forward, key=lambda r: (forward_mode(r), cell(r))),
        "second_edition": sorted(second, key=run_id),
    }
    atomic_write_text(out_dir / "results.json", json.dumps(record, indent=1) + "\n")
    atomic_write_text(out_dir / "summary.csv", summary_csv(runs, second))
    text = tables(runs, notebook_klp19, forward) + rms_table(runs, second) + second_tables(second)
    atomic_write_text(out_dir / "tables.md", text)
    print(f"wrote {out_dir}/results.json, summary.csv and tables.md ({len(runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
