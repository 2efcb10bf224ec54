"""``python -m qcnn.experiments.sweep``: the paper's grid of QCNN runs next to the CNN.

``--grid paper``: eps {0.01, 0.1} x C {2, 10} x sigma {0.1, ..., 0.5} x delta {0.01, 0.1}
(40 QCNN runs) + the CNN, plus the CNN's weights under the quantum forward pass for each eps
(C 10, sigma 0.5), as in the authors' table (model §5).

Each run writes ``runs/<run id>/run.json`` and ``model.npz`` (and a checkpoint while it trains),
so ``--resume`` skips finished runs and resumes interrupted ones; without ``--resume`` the
output folder must be new or empty. Where the runs execute (:mod:`qcnn.experiments.schedulers`):
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
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qcnn.experiments.budget import resolve_epochs
from qcnn.experiments.cli import (
    add_common_arguments,
    add_model_arguments,
    add_preset_argument,
    add_training_arguments,
    check_data_dir,
    check_output_dir,
    cli_errors,
    command_parser,
    default_out,
    int_in,
    nonneg_int,
    usage_error,
)
from qcnn.experiments.grids import GRIDS, NAMED_GRIDS, forward_configs, grid_specs
from qcnn.experiments.runner import (
    environment_info,
    load_data,
    load_finished_record,
    quantum_forward_run,
)
from qcnn.experiments.schedulers import (
    ClusterMismatch,
    RunOutcome,
    parse_scheduler,
    run_in_pool,
    run_in_process,
    run_on_dask,
    write_outcome,
)
from qcnn.experiments.sweep_report import paper_comparison, write_summary
from qcnn.models import build_model
from qcnn.nn.parallel import one_blas_thread

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "sweep",
        "Run the paper's grid of QCNN trainings (and the CNN), resumably, locally or "
        "on a Dask cluster, and summarise it.",
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
            for cfg in forward_configs(args.grid, args.preset):
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
