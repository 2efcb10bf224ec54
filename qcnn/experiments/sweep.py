"""``python -m qcnn.experiments.sweep``: the paper's grid of QCNN runs next to the CNN.

``--grid paper``: eps {0.01, 0.1} x C {2, 10} x sigma {0.1, ..., 0.5} x delta {0.01, 0.1}
(40 QCNN runs) + the CNN, plus the CNN's weights under the quantum forward pass for each eps
(C 10, sigma 0.5), as in the authors' table (model §5).

Each run writes ``runs/<run id>/run.json`` and ``model.npz`` (and a checkpoint while it trains),
so ``--resume`` skips finished runs and resumes interrupted ones; without ``--resume`` the
output folder must be new or empty. Where the runs execute (:mod:`qcnn.experiments.executors`):
``--workers N`` trains N runs at once in local processes (one BLAS thread each);
``--scheduler tcp://HOST:PORT`` submits them to a Dask cluster, ``--scheduler local:N`` to a
local Dask cluster of N workers; the numbers are the same either way. At the end:
``summary.md`` and ``summary.csv`` (test accuracy, final training loss, time),
``paper_comparison.md`` (our numbers next to the authors'), and one figure per (eps, C, delta)
with the CNN and the five sigma curves, like the paper's. A run that diverges is reported (one
line each); the others are kept, summarised, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.experiments.ablation import with_option
from qcnn.experiments.budget import resolve_epochs
from qcnn.experiments.cli import (
    add_common_arguments,
    add_model_arguments,
    add_preset_argument,
    add_training_arguments,
    check_data_dir,
    check_output_dir,
    cli_errors,
    default_out,
    int_in,
    nonneg_int,
    usage_error,
)
from qcnn.experiments.executors import (
    ClusterMismatch,
    RunOutcome,
    one_blas_thread,
    parse_scheduler,
    run_in_pool,
    run_in_process,
    run_on_dask,
    write_outcome,
)
from qcnn.experiments.runner import (
    RunSpec,
    config_tags,
    environment_info,
    load_data,
    load_finished_record,
    quantum_forward_run,
)
from qcnn.io import atomic_write_json, atomic_write_text
from qcnn.models import build_model
from qcnn.quantum import QuantumConfig
from qcnn.train import rows_to_csv

__all__ = [
    "GRIDS",
    "NAMED_GRIDS",
    "grid_specs",
    "klp19_theory_cells",
    "klp19_theory_configs",
    "klp19_theory_specs",
    "main",
    "PAPER_TABLE",
]

GRIDS: dict[str, dict[str, list[float]]] = {
    "paper": {
        "eps": [0.01, 0.1],
        "cap": [2.0, 10.0],
        "sigma": [0.1, 0.2, 0.3, 0.4, 0.5],
        "delta": [0.01, 0.1],
    },
    "quick": {"eps": [0.01], "cap": [10.0], "sigma": [0.1, 0.5], "delta": [0.01]},
}

# The authors' numbers (model §5): test accuracy at sigma 0.5, C 10, and final training losses.
PAPER_TABLE: list[dict[str, Any]] = [
    {"model": "cnn", "eps": None, "delta": None, "test_accuracy": 0.9687},
    {"model": "qcnn", "eps": 0.01, "delta": 0.01, "test_accuracy": 0.9537},
    {"model": "qcnn", "eps": 0.01, "delta": 0.1, "test_accuracy": 0.9353},
    {"model": "qcnn", "eps": 0.1, "delta": 0.01, "test_accuracy": 0.8922},
    {"model": "qcnn", "eps": 0.1, "delta": 0.1, "test_accuracy": 0.5279},
    {"model": "cnn-weights-quantum-forward", "eps": 0.01, "delta": None, "test_accuracy": 0.9589},
    {"model": "cnn-weights-quantum-forward", "eps": 0.1, "delta": None, "test_accuracy": 0.9355},
]
PAPER_FINAL_LOSS = {
    0.1: 0.707,
    0.2: 0.296,
    0.3: 0.251,
    0.4: 0.189,
    0.5: 0.157,
}  # eps .01, C 10, delta .01
PAPER_CNN_FINAL_LOSS = 0.090


def grid_specs(
    grid: dict[str, list[float]],
    replicate_seeds: tuple[int, ...] = (),
    preset: str = "paper",
    **common: Any,
) -> list[RunSpec]:
    """The CNN first, then one QCNN run per grid point (the ``preset`` otherwise: paper or
    theory), then the CNN and the preset's QCNN at (eps 0.01, C 10, sigma 0.5, delta 0.01) again
    for each replicate seed."""
    make = functools.partial(QuantumConfig.preset, preset)
    specs = [RunSpec(config=None, **common)]
    for eps, cap, delta, sigma in itertools.product(
        grid["eps"], grid["cap"], grid["delta"], grid["sigma"]
    ):
        specs.append(RunSpec(config=make(eps=eps, cap=cap, sigma=sigma, delta=delta), **common))
    for seed in replicate_seeds:
        if seed == common.get("seed"):
            continue
        rep = {**common, "seed": seed}
        specs += [RunSpec(config=None, **rep), RunSpec(config=make(), **rep)]
    return specs


_EPS = (0.01, 0.1)
# The ablation of experiments/klp19-theory, from notebook mode at delta 0.01: name -> (option
# group, changes) (qcnn.experiments.ablation: each cell differs from its base in that group
# alone). "failure_prob" gives an AE option the preset's m and k (derived from eps and Delta).
THEORY_ABLATION: dict[str, tuple[str, dict[str, Any]]] = {
    "eps-bound": ("eps-bound", {"ipe": "amplitude_estimation", "failure_prob": 0.01}),
    "noise-order": ("noise-order", {"noise_order": "theory"}),
    "noise-per-shot": ("noise-per-shot", {"noise_per_shot": True}),
    "tomography-values": (
        "tomography-values",
        {
            "sampled_value": "tomography",
            "tomography_normaliser": "amplitude_estimation",
            "failure_prob": 0.01,
        },
    ),
    "tomography-values-exact-normaliser": ("tomography-values", {"sampled_value": "tomography"}),
    "gradient-tomography": (
        "gradient-tomography",
        {"gradient_model": "linf_tomography", "input_gradient_noise": True},
    ),
}
# From the theory preset at eps 0.01, delta in {0.01, 0.1}: one option changed.
THEORY_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "exact-signs": ("gradient-signs", {"gradient_signs": "exact"}),
    "gradient-on-quantum": ("gradient-on", {"gradient_on": "quantum"}),
}
# The gradient norm: notebook mode + the gradient read-out, with and without the estimated norm.
GRADIENT_NORM = ("gradient-norm", {"gradient_norm": "amplitude_estimation", "failure_prob": 0.01})
# The theorem's shot count: the preset at eps = delta = 0.01 with N = 36 ln d / eta^2, eta 0.1.
ETA_SHOTS = ("shots", {"sigma": None, "eta": 0.1})


def klp19_theory_cells() -> list[tuple[str, QuantumConfig]]:
    """The quantum configurations of experiments/klp19-theory with their names, in the order the
    record needs them most: the theory preset on eps {0.01, 0.1} x delta {0.01, 0.1} (sigma 0.5,
    C 10); the ablation from notebook mode (:data:`THEORY_ABLATION`) at eps 0.01 and 0.1 (delta
    0.01); the preset with one option changed (:data:`THEORY_VARIANTS`) at eps 0.01, delta 0.01
    and 0.1; the gradient read-out alone at delta 0.1 and with the estimated norm
    (:data:`GRADIENT_NORM`) at delta 0.01; notebook mode on the four cells; the preset with the
    theorem's shot count (:data:`ETA_SHOTS`). Every cell is built by
    :func:`qcnn.experiments.ablation.with_option` from its base, so it differs from it in the
    named option alone. Names: ``theory``, ``notebook``, the keys of the tables above
    (``theory+KEY`` for the variants), ``gradient-norm``, ``eta-shots``."""
    cells = [
        ("theory", QuantumConfig.theory(eps=e, delta=d)) for e, d in itertools.product(_EPS, _EPS)
    ]
    for eps in (0.01, 0.1):
        base = QuantumConfig.paper(eps=eps, delta=0.01)
        cells += [(k, with_option(base, g, **ch)) for k, (g, ch) in THEORY_ABLATION.items()]
    for delta in (0.01, 0.1):
        preset = QuantumConfig.theory(eps=0.01, delta=delta)
        cells += [
            (f"theory+{k}", with_option(preset, g, **ch)) for k, (g, ch) in THEORY_VARIANTS.items()
        ]
    group, changes = THEORY_ABLATION["gradient-tomography"]
    cells.append(
        (
            "gradient-tomography",
            with_option(QuantumConfig.paper(eps=0.01, delta=0.1), group, **changes),
        )
    )
    read_out = with_option(QuantumConfig.paper(eps=0.01, delta=0.01), group, **changes)
    cells.append(("gradient-norm", with_option(read_out, GRADIENT_NORM[0], **GRADIENT_NORM[1])))
    cells += [
        ("notebook", QuantumConfig.paper(eps=e, delta=d)) for e, d in itertools.product(_EPS, _EPS)
    ]
    cells.append(("eta-shots", with_option(QuantumConfig.theory(), ETA_SHOTS[0], **ETA_SHOTS[1])))
    return cells


def klp19_theory_configs() -> list[QuantumConfig]:
    """The configurations of :func:`klp19_theory_cells`, in its order."""
    return [c for _, c in klp19_theory_cells()]


def klp19_theory_specs(replicate_seeds: tuple[int, ...] = (), **common: Any) -> list[RunSpec]:
    """The grid of experiments/klp19-theory: the CNN and :func:`klp19_theory_configs`, then for
    each replicate seed the CNN and every configuration again except the theorem's shot count
    (22x the shots: one seed)."""
    configs = klp19_theory_configs()
    specs = [RunSpec(config=None, **common)] + [RunSpec(config=c, **common) for c in configs]
    for seed in replicate_seeds:
        if seed != common.get("seed"):
            rep = {**common, "seed": seed}
            specs.append(RunSpec(config=None, **rep))
            specs += [RunSpec(config=c, **rep) for c in configs if c.eta is None]
    return specs


# named grids that define their own configurations (--preset does not apply to them)
NAMED_GRIDS: dict[str, Callable[..., list[RunSpec]]] = {"klp19-theory": klp19_theory_specs}


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m qcnn.experiments.sweep",
        description="Run the paper's grid of QCNN trainings (and the CNN), resumably, locally or "
        "on a Dask cluster, and summarise it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--grid",
        choices=sorted(GRIDS) + sorted(NAMED_GRIDS),
        default="paper",
        help="paper: 40 QCNN runs + CNN; quick: 2 QCNN runs + CNN; klp19-theory: the theory "
        "preset on the paper's sigma-0.5 cells, notebook mode on the same cells and the "
        "one-option ablation (experiments/klp19-theory)",
    )
    add_preset_argument(
        p,
        lead="configuration of the paper and quick grids' QCNN runs",
        tail="grid values override it",
    )
    add_training_arguments(p, per_run=True, momentum=False)
    p.add_argument(
        "--replicate-seeds",
        type=nonneg_int,
        nargs="*",
        default=[],
        help="more seeds for the CNN and the paper-preset QCNN (mean and std in the comparison)",
    )
    p.add_argument(
        "--workers",
        type=int_in(1, 256),
        default=None,
        help="runs trained at once in local processes (default 1: in this process)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help="run on Dask instead: tcp://HOST:PORT of a running 'dask scheduler', or local:N for "
        "a local cluster of N workers (pip install 'qcnn[dask]'; README, section Running a "
        "sweep on a cluster)",
    )
    p.add_argument("--train-size", type=int_in(1, 10**8), default=None)
    p.add_argument("--test-size", type=int_in(1, 10**8), default=None)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep in --out: finished runs are kept (if their settings match), "
        "interrupted ones resume from their checkpoints",
    )
    p.add_argument(
        "--no-quantum-forward",
        action="store_true",
        help="skip the CNN-weights quantum-forward evals",
    )
    p.add_argument(
        "--max-runs",
        type=int_in(1, 10**6),
        default=None,
        help="train at most this many of the unfinished runs, then summarise the finished ones "
        "(run the command again with --resume to continue: one training per command)",
    )
    p.add_argument(
        "--shards",
        type=int_in(1, 64),
        default=1,
        help="batch slices per run trained in parallel threads (1 suits --workers 2 on 2 cores)",
    )
    add_model_arguments(p)
    add_common_arguments(
        p,
        out_default=None,
        out_help="output folder (default runs/sweep-<timestamp>); must be new or empty unless "
        "--resume",
        seed_help="seed of the grid runs",
    )
    return p


def _forward_configs(grid: str, preset: str) -> list[QuantumConfig]:
    """Configurations under which the trained CNN's weights are evaluated (C 10, sigma 0.5, no
    gradient noise), one per eps of the grid: the preset's, or both modes for klp19-theory."""
    if grid in NAMED_GRIDS:
        return [
            make(eps=e, delta=0.0)
            for make in (QuantumConfig.paper, QuantumConfig.theory)
            for e in (0.01, 0.1)
        ]
    return [
        QuantumConfig.preset(preset, eps=e, cap=10.0, sigma=0.5, delta=0.0)
        for e in GRIDS[grid]["eps"]
    ]


class _Progress:
    """A bar on a terminal, else one line per finished run (unless quiet)."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.done, self.quiet = total, 0, quiet
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="sweep", unit="run")

    def update(self, outcome: RunOutcome) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif not self.quiet:
            what = (
                f"test accuracy {100 * outcome.record['test_accuracy']:.2f} %"
                if outcome.record is not None
                else ("FAILED" if outcome.failed else "DIVERGED")
            )
            print(f"[{self.done}/{self.total}] {outcome.spec.run_id}: {what}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.scheduler is not None:
            parse_scheduler(args.scheduler)
            if args.workers is not None:
                raise ValueError(
                    "--workers (local processes) and --scheduler (Dask) exclude each other"
                )
        if len(set(args.replicate_seeds)) != len(args.replicate_seeds):
            raise ValueError(f"--replicate-seeds has duplicates: {args.replicate_seeds}")
        if args.shards > args.batch_size:
            raise ValueError(f"--shards {args.shards} exceeds --batch-size {args.batch_size}")
        if args.resume and not args.out:
            raise ValueError("--resume needs --out: the folder of the sweep to continue")
        if args.grid in NAMED_GRIDS and args.preset != "paper":
            raise ValueError(
                f"--grid {args.grid} defines its own configurations; --preset "
                "applies to the paper and quick grids"
            )
        check_data_dir(args.data_dir)
        out = Path(args.out) if args.out else default_out("sweep")
        check_output_dir(out, args.resume)
    except ValueError as exc:
        usage_error(parser, str(exc))
    workers = args.workers or 1
    try:  # fail fast on missing data or an architecture that does not fit it
        # loaded once, here: every executor trains on these arrays (and the evals use them)
        data = load_data(args.data_dir, args.train_size, args.test_size, args.dataset)
        build_model(args.arch, None, input_shape=data.shape, classes=data.classes)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    budget = resolve_epochs(args.epochs, data.info["train_size"], args.batch_size)
    if budget.source == "scaled" and not args.quiet:
        print(f"NOTE: {budget.reason}.", file=sys.stderr)
    common = dict(
        arch=args.arch,
        epochs=budget.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        shards=args.shards,
        augment=args.augment,
    )
    if args.grid in NAMED_GRIDS:
        specs = NAMED_GRIDS[args.grid](tuple(args.replicate_seeds), **common)
    else:
        specs = grid_specs(GRIDS[args.grid], tuple(args.replicate_seeds), args.preset, **common)
    meta = environment_info(args.out)
    meta["epochs_reason"] = budget.reason
    meta["training_budget"] = budget.to_dict()

    records: dict[str, dict[str, Any]] = {}
    todo = []
    for spec in specs:
        run_dir = out / "runs" / spec.run_id
        done = load_finished_record(run_dir, spec, data)  # refuses damaged / other-setting runs
        if done is not None:
            records[spec.run_id] = done
        else:
            todo.append((spec, run_dir))
    left = 0
    if args.max_runs is not None and len(todo) > args.max_runs:
        left = len(todo) - args.max_runs
        todo = todo[: args.max_runs]
    where = (
        f"on Dask ({args.scheduler})"
        if args.scheduler
        else f"with {workers} local worker process(es)"
        if workers > 1
        else "in this process"
    )
    if not args.quiet:
        print(
            f"{len(specs)} runs: {len(records)} finished, {len(todo)} to run {where}"
            + (f", {left} left for later commands" if left else "")
            + f"; writing into {out}/ (continue with --out {out} --resume)",
            file=sys.stderr,
        )

    t0 = time.perf_counter()
    if not todo:
        outcomes: Iterable[RunOutcome] = ()
    elif args.scheduler:
        say = None if args.quiet else (lambda message: print(message, file=sys.stderr))
        outcomes = run_on_dask(todo, data, args.scheduler, say=say)
    elif workers > 1:
        outcomes = run_in_pool(todo, data, workers)
    else:
        outcomes = run_in_process(todo, data)
    progress = _Progress(len(todo), args.quiet)
    diverged: list[str] = []
    failed: list[str] = []
    run_dirs = dict((spec.run_id, rd) for spec, rd in todo)
    try:
        for outcome in outcomes:
            if outcome.error is not None:
                (failed if outcome.failed else diverged).append(outcome.error)
            else:
                assert outcome.record is not None  # an outcome has a record or an error
                write_outcome(outcome, run_dirs[outcome.spec.run_id])  # Dask: results come back
                records[outcome.spec.run_id] = outcome.record
            progress.update(outcome)
    except (ConnectionError, ClusterMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        progress.close()

    finished = [s for s in specs if s.run_id in records]
    ordered = [records[s.run_id] for s in finished]
    if not args.no_quantum_forward and not left:
        for spec, record in zip(finished, list(ordered), strict=True):
            if spec.config is not None:
                continue
            cnn = build_model(
                spec.arch, None, seed=spec.seed, input_shape=data.shape, classes=data.classes
            )
            cnn.load(out / "runs" / spec.run_id / "model.npz")
            for cfg in _forward_configs(args.grid, args.preset):
                with one_blas_thread():  # like the runs: the numbers do not depend on the cores
                    ordered.append(quantum_forward_run(cnn, record, cfg, data, spec.arch))
    meta["sweep_seconds"] = time.perf_counter() - t0
    meta["workers"] = workers
    meta["scheduler"] = args.scheduler
    if ordered:
        write_summary(out, ordered, data.info, meta)
        print((out / "summary.md").read_text())
        print(paper_comparison(ordered))
    print(
        f"sweep written to {out}/ in {meta['sweep_seconds']:.0f} s"
        + (f" ({left} runs left: run the command again with --resume)" if left else "")
    )
    if diverged or failed:
        for message in diverged + failed:
            print(f"error: {message}", file=sys.stderr)
        what = " and ".join(
            f"{len(errors)} of {len(specs)} runs {verb}"
            for errors, verb in ((diverged, "diverged"), (failed, "failed on the cluster"))
            if errors
        )
        print(
            f"error: {what}; the {len(finished)} finished runs above are complete and kept "
            f"in {out}/" + (" (rerun with --resume for the failed ones)" if failed else ""),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
