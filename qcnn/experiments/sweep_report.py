"""The sweep's report: ``summary.md`` / ``summary.csv`` (one row per run), ``paper_comparison.md``
(our accuracy and final loss next to the authors' published numbers,
:mod:`qcnn.experiments.published`), ``results.json`` and one loss figure per (eps, C, delta)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qcnn.experiments.published import PAPER_CNN_FINAL_LOSS, PAPER_FINAL_LOSS, PAPER_TABLE
from qcnn.experiments.runner import config_tags
from qcnn.io import atomic_write_json, atomic_write_text
from qcnn.quantum import QuantumConfig
from qcnn.train import rows_to_csv

__all__ = ["variant", "paper_comparison", "write_summary"]


def _row(r: dict[str, Any]) -> dict[str, Any]:
    cfg = (r.get("quantum") or {}).get("config") or {}
    return {
        "model": r["model"],
        "eps": cfg.get("eps"),
        "cap": cfg.get("cap"),
        "sigma": cfg.get("sigma"),
        "delta": cfg.get("delta") if r["model"] == "qcnn" else None,
        "variant": variant(cfg) if cfg else None,
        "seed": r["seed"],
        "test_accuracy": round(r["test_accuracy"], 4),
        "final_train_loss": None
        if r.get("final_train_loss") is None
        else round(r["final_train_loss"], 4),
        "train_seconds": round(r["train_seconds"], 1),
    }


def variant(config: dict[str, Any]) -> str:
    """Which mode a recorded configuration is: ``paper`` (notebook mode), ``theory`` (the
    preset) or the theory options switched on (:func:`qcnn.experiments.runner.config_tags`)."""
    tags = config_tags(QuantumConfig.from_dict(config))
    return "+".join(tags) if tags else "paper"


def _markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(v: Any) -> str:
        return "-" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _mean_std(values: list[float], scale: float = 1.0, fmt: str = ".2f", unit: str = "") -> str:
    values = [v for v in values if v is not None]  # e.g. a run shorter than one loss log
    if not values:
        return "not run"
    v = np.asarray(values, dtype=float) * scale
    if v.size == 1:
        return f"{v[0]:{fmt}}{unit}"
    return f"{v.mean():{fmt}}{unit} ± {v.std(ddof=1):{fmt}} (n={v.size})"


def _matches(
    r: dict[str, Any],
    model: str,
    eps: float | None = None,
    delta: float | None = None,
    cap: float = 10.0,
    sigma: float = 0.5,
) -> bool:
    if r["model"] != model:
        return False
    if model == "cnn":
        return True
    c = r["quantum"]["config"]
    if variant(c) != "paper":  # the authors' numbers are notebook mode's
        return False
    if eps is not None and c["eps"] != eps:
        return False
    if model == "qcnn":
        return c["delta"] == delta and c["cap"] == cap and c["sigma"] == sigma
    return True


def paper_comparison(records: list[dict[str, Any]]) -> str:
    """Markdown: our accuracy (mean ± std over seeds where several) next to the authors'."""
    out = ["| model | eps | delta | authors | ours |", "|---|---|---|---|---|"]
    for ref in PAPER_TABLE:
        accs = [
            r["test_accuracy"]
            for r in records
            if _matches(r, ref["model"], ref["eps"], ref["delta"])
        ]
        eps = "-" if ref["eps"] is None else f"{ref['eps']:g}"
        delta = "-" if ref["delta"] is None else f"{ref['delta']:g}"
        ours = _mean_std(accs, 100, ".2f", " %")
        out.append(
            f"| {ref['model']} | {eps} | {delta} | {100 * ref['test_accuracy']:.2f} % | {ours} |"
        )
    out += [
        "",
        "Final training loss (mean of the last 12 logs), eps 0.01, C 10, delta 0.01:",
        "",
        "| sigma | authors | ours |",
        "|---|---|---|",
    ]
    for sigma, ref_loss in PAPER_FINAL_LOSS.items():
        losses = [
            r["final_train_loss"] for r in records if _matches(r, "qcnn", 0.01, 0.01, 10.0, sigma)
        ]
        out.append(f"| {sigma:g} | {ref_loss:.3f} | {_mean_std(losses, 1, '.3f')} |")
    cnn = [r["final_train_loss"] for r in records if r["model"] == "cnn"]
    out.append(f"| CNN | {PAPER_CNN_FINAL_LOSS:.3f} | {_mean_std(cnn, 1, '.3f')} |")
    return "\n".join(out) + "\n"


def write_summary(
    out: Path, records: list[dict[str, Any]], data_info: dict[str, Any], meta: dict[str, Any]
) -> None:
    from qcnn.plotting import plot_sigma_curves

    rows = sorted(
        (_row(r) for r in records),
        key=lambda r: (
            r["model"],
            r["variant"] or "",
            r["eps"] or 0,
            r["cap"] or 0,
            r["delta"] or 0,
            r["sigma"] or 0,
            r["seed"],
        ),
    )
    cols = list(rows[0]) if rows else []
    atomic_write_text(out / "summary.csv", rows_to_csv(rows, cols))
    header = (
        f"# Sweep summary\n\nDataset: {data_info['name']} ({data_info['train_size']} train / "
        f"{data_info['test_size']} test), source `{data_info['source']}`.\n\nCommand: `{meta['command']}`\n\n"
    )
    if meta.get("epochs_reason"):
        header += f"Epochs: {meta['epochs_reason']}.\n\n"
    atomic_write_text(out / "summary.md", header + _markdown(rows, cols))
    atomic_write_text(out / "paper_comparison.md", paper_comparison(records))
    atomic_write_json(
        out / "results.json", {"dataset": data_info, "environment": meta, "runs": records}
    )
    # One figure per (eps, C, delta) with the grid's seed only (replicate seeds would repeat
    # the sigma = 0.5 curve); the first record is the grid's CNN.
    grid_seed = records[0]["seed"] if records else None
    cnn = next((r for r in records if r["model"] == "cnn" and r["seed"] == grid_seed), None)
    groups: dict[tuple, list] = {}
    for r in records:
        if r["model"] == "qcnn" and r["seed"] == grid_seed:
            c = r["quantum"]["config"]
            groups.setdefault((variant(c), c["eps"], c["cap"], c["delta"]), []).append(r)
    (out / "figures").mkdir(exist_ok=True)
    for (var, eps, cap, delta), runs in sorted(groups.items()):
        tag = "" if var == "paper" else f"{var}-"  # notebook mode keeps its former file names
        name = f"loss-{tag}eps{eps:g}-C{cap:g}-delta{delta:g}.png"
        title = ("" if var == "paper" else f"{var}: ") + f"eps={eps:g}, C={cap:g}, delta={delta:g}"
        plot_sigma_curves(cnn, runs, out / "figures" / name, title)
