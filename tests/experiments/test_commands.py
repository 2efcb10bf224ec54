"""Tests of the experiment commands ``python -m qcnn.experiments.mnist`` and ``...sweep``.

The commands are called in-process (``main([...])``) on small slices of MNIST: the real files
when ``QCNN_DATA_DIR`` points at them (CI sets it), else the 4,000/1,000-image subset a fresh
machine offline falls back to (the ``mnist_source`` fixture, tests/conftest.py). The argument
checks need no data (they must fail before any data is loaded).

What is proven:
- ``results.json`` has the documented schema, and its accuracies are what the saved weights give
  when evaluated again (``qcnn.train.evaluate``, fixed evaluation seed);
- ``history.csv`` / ``curves.png`` / ``feature_maps.png`` are written (valid PNG files);
- bad arguments exit with status 2 before data is loaded or anything is trained;
- ``--resume`` on a finished folder reproduces the results without training again;
- the sweep writes its summaries and figures, and a rerun skips finished runs;
- without ``--epochs`` the commands train the paper's number of SGD steps (2 epochs of full
  MNIST, 30 of the subset) and record why; an explicit ``--epochs`` wins;
- every command's default output folder is under ``runs/`` (ignored by git).
"""

from __future__ import annotations

import csv
import importlib
import json
import math
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

import qcnn.experiments.runner as runner
from qcnn.data import MNISTSubsetWarning
from qcnn.experiments import cli, grids, mnist, resources, schedulers, sweep, sweep_report
from qcnn.models import paper_cnn, paper_qcnn
from qcnn.quantum import QuantumConfig
from qcnn.train import evaluate
from tests.conftest import assert_png, quick_sweep_args

pytestmark = pytest.mark.filterwarnings("ignore::qcnn.data.MNISTSubsetWarning")

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--train-size", "300", "--test-size", "100", "--epochs", "1", "--quiet"]
RUN_KEYS = {
    "model",
    "quantum",
    "seed",
    "epochs",
    "test_accuracy",
    "test_loss",
    "train_seconds",
    "history",
}
EPOCH_KEYS = {"epoch", "images_seen", "train_loss", "train_accuracy", "test_loss", "test_accuracy"}


class MustNotRun(AssertionError):
    pass


def _forbid(*_a, **_k):
    raise MustNotRun("called although the command should have stopped earlier")


def _run_mnist(out: Path, *extra: str) -> dict:
    rc = mnist.main([*SMALL, "--out", str(out), *extra])
    assert rc == 0
    return json.loads((out / "results.json").read_text())


def _strip_timing(run: dict) -> dict:
    return {k: v for k, v in run.items() if k != "eval_seconds"}


# ----------------------------------------------------------------------------------------------
# python -m qcnn.experiments.mnist
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def both_run(tmp_path_factory, mnist_source) -> Path:
    out = tmp_path_factory.mktemp("mnist") / "both"
    _run_mnist(out, "--model", "both")
    return out


def _check_schema(results: dict, models: list[str], source) -> None:
    ds = results["dataset"]
    assert {"name", "source", "train_size", "test_size"} <= set(ds)
    assert ds["name"] == source.name and ds["train_size"] == 300 and ds["test_size"] == 100
    assert results["epochs"] == 1 and results["training_budget"]["source"] == "explicit"
    assert results["epochs_reason"].startswith("--epochs 1")
    assert isinstance(ds["source"], str) and ds["source"]
    assert [r["model"] for r in results["runs"]] == models
    for r in results["runs"]:
        assert RUN_KEYS <= set(r), r["model"]
        assert r["seed"] == 1 and r["epochs"] == 1
        assert 0.0 <= r["test_accuracy"] <= 1.0
        assert math.isfinite(r["test_loss"]) and r["test_loss"] > 0
        assert r["train_seconds"] >= 0.0
        assert isinstance(r["history"], list)
        if r["model"] == "cnn":
            assert r["quantum"] is None
        else:
            assert r["quantum"]["config"] == QuantumConfig.paper().to_dict()
            layers = r["quantum"]["layers"]
            assert len(layers) == 2
            for layer in layers:
                st = layer["stats"]
                assert 0.0 <= st["kept_fraction"] <= 1.0
                assert st["shots"] in (int(0.5 * 5 * 22 * 22), int(0.5 * 10 * 16 * 16))
        if r["model"] == "cnn-weights-quantum-forward":
            assert r["history"] == [] and r["train_seconds"] == 0.0
        else:
            assert r["train_seconds"] > 0.0
            (epoch,) = r["history"]
            assert EPOCH_KEYS <= set(epoch)
            assert epoch["epoch"] == 1 and epoch["images_seen"] == 300
            assert epoch["test_accuracy"] == r["test_accuracy"]
            assert epoch["test_loss"] == r["test_loss"]
            assert 0.0 <= epoch["train_accuracy"] <= 1.0


def test_mnist_both_results_schema_and_files(both_run, mnist_source):
    results = json.loads((both_run / "results.json").read_text())
    _check_schema(results, ["cnn", "qcnn", "cnn-weights-quantum-forward"], mnist_source)
    for name in ("curves.png", "feature_maps.png"):
        assert_png(both_run / name)
    with open(both_run / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"model", "seed", "kind", "epoch", "test_accuracy"} <= set(rows[0])
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert sorted(r["model"] for r in epochs) == ["cnn", "qcnn"]
    by_model = {r["model"]: r for r in results["runs"]}
    for r in epochs:
        assert float(r["test_accuracy"]) == pytest.approx(by_model[r["model"]]["test_accuracy"])
    for run_id in ("cnn-paper-seed1", "qcnn-paper-eps0.01-C10-sigma0.5-delta0.01-seed1"):
        for f in ("model.npz", "run.json", "checkpoint.npz"):
            assert (both_run / run_id / f).is_file(), (run_id, f)


def test_mnist_accuracies_are_what_the_saved_weights_give(both_run, mnist_source):
    """Evaluate the saved weights again, independently of the command: same numbers."""
    results = json.loads((both_run / "results.json").read_text())
    by_model = {r["model"]: r for r in results["runs"]}
    data = runner.load_data(mnist_source.data_dir, 300, 100)
    assert data.info == results["dataset"]
    cnn = paper_cnn(1)
    cnn.load(both_run / "cnn-paper-seed1" / "model.npz")
    loss, acc = evaluate(cnn, data.x_test, data.y_test)
    assert acc == by_model["cnn"]["test_accuracy"]
    assert loss == pytest.approx(by_model["cnn"]["test_loss"], rel=1e-6)
    cfg = QuantumConfig.paper()
    qnet = paper_qcnn(cfg, 1)
    qnet.load(both_run / "qcnn-paper-eps0.01-C10-sigma0.5-delta0.01-seed1" / "model.npz")
    loss, acc = evaluate(qnet, data.x_test, data.y_test)
    assert acc == by_model["qcnn"]["test_accuracy"]
    assert loss == pytest.approx(by_model["qcnn"]["test_loss"], rel=1e-6)
    # the CNN's weights under the quantum forward pass
    fwd = paper_qcnn(cfg, 1)
    for a, b in zip(cnn.parameters(), fwd.parameters(), strict=True):
        b.data = a.data.copy()
    loss, acc = evaluate(fwd, data.x_test, data.y_test)
    assert acc == by_model["cnn-weights-quantum-forward"]["test_accuracy"]
    assert loss == pytest.approx(by_model["cnn-weights-quantum-forward"]["test_loss"], rel=1e-6)
    # the two trained networks really differ (quantum training is not classical training)
    assert (
        by_model["qcnn"]["history"][0]["train_loss"] != by_model["cnn"]["history"][0]["train_loss"]
    )


def test_mnist_resume_on_finished_dir_reproduces_results_without_training(both_run, tmp_path):
    copy = tmp_path / "resumed"
    shutil.copytree(both_run, copy)
    before = json.loads((copy / "results.json").read_text())
    weights = {p: p.read_bytes() for p in copy.glob("*/model.npz")}
    after = _run_mnist(copy, "--model", "both", "--resume")
    assert after["dataset"] == before["dataset"]
    assert [_strip_timing(r) for r in after["runs"]] == [_strip_timing(r) for r in before["runs"]]
    # train_seconds and history come back from the checkpoints: nothing was trained again
    for p, data in weights.items():
        assert p.read_bytes() == data, p
    assert_png(copy / "curves.png")


@pytest.mark.parametrize("model", ["cnn", "qcnn"])
def test_mnist_single_model(model, tmp_path, mnist_source):
    out = tmp_path / model
    results = _run_mnist(out, "--model", model)
    _check_schema(results, [model], mnist_source)
    assert_png(out / "curves.png")
    assert (out / "history.csv").is_file()
    # the feature maps show a quantum layer: only written when a quantum network is involved
    assert (out / "feature_maps.png").is_file() == (model == "qcnn")
    if model == "qcnn":
        assert_png(out / "feature_maps.png")


# ----------------------------------------------------------------------------------------------
# The default training budget: the paper's SGD steps (qcnn.experiments.budget)
# ----------------------------------------------------------------------------------------------


def test_default_epochs_keep_the_papers_steps_and_are_recorded(tmp_path, mnist_source, capsys):
    # batch 20,000: the paper's 2 epochs of 60,000 images are 6 steps; 128 images are 1 step
    # an epoch, so the default is 6 epochs (cheap enough to train here)
    out = tmp_path / "budget"
    argv = [
        "--train-size",
        "128",
        "--test-size",
        "64",
        "--batch-size",
        "20000",
        "--model",
        "cnn",
        "--out",
        str(out),
    ]
    assert mnist.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    budget = results["training_budget"]
    assert results["epochs"] == 6 == budget["epochs"]
    assert (budget["steps_per_epoch"], budget["steps"], budget["paper_steps"]) == (1, 6, 6)
    assert budget["source"] == "scaled" and results["epochs_reason"] == budget["reason"]
    assert results["arguments"]["epochs"] is None  # not given by the user
    (run,) = results["runs"]
    assert run["epochs"] == 6 and len(run["history"]) == 6
    captured = capsys.readouterr()
    assert "NOTE: 128 training images: 6 epochs" in captured.err
    assert "--epochs N overrides" in captured.err
    assert "epochs: 6 (128 training images" in captured.out  # the summary says it too


class _Captured(Exception):
    pass


def _capture_specs(monkeypatch) -> list:
    specs = []

    def capture(spec, *_a, **_k):
        specs.append(spec)
        raise _Captured

    monkeypatch.setattr(mnist, "train_run", capture)
    return specs


def test_default_command_on_the_offline_subset_trains_30_epochs(
    offline_subset, tmp_path, monkeypatch
):
    specs = _capture_specs(monkeypatch)
    with pytest.raises(_Captured):
        mnist.main(["--out", str(tmp_path / "o"), "--quiet"])
    assert specs[0].epochs == 30 and specs[0].batch_size == 64  # 30 x 63 = 1,890 steps
    specs.clear()
    with pytest.raises(_Captured):
        mnist.main(["--epochs", "2", "--out", str(tmp_path / "p"), "--quiet"])
    assert specs[0].epochs == 2  # an explicit --epochs always wins


def test_a_command_announces_the_offline_subset_once(offline_subset, tmp_path, monkeypatch, capsys):
    """The fallback's notice reaches stderr once (plus the command's one-line NOTE), not a second
    time as a Python warning with a source line."""
    _capture_specs(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_Captured):
            mnist.main(["--out", str(tmp_path / "o")])
    assert not [w for w in caught if issubclass(w.category, MNISTSubsetWarning)]
    err = capsys.readouterr().err
    assert err.count("FULL MNIST NOT FOUND") == 1, err
    assert err.count("NOTE: training on mnist-5k-subset") == 1, err


@pytest.mark.mnist
def test_default_command_on_full_mnist_trains_the_papers_2_epochs(tmp_path, monkeypatch):
    specs = _capture_specs(monkeypatch)
    with pytest.raises(_Captured):
        mnist.main(["--out", str(tmp_path / "o"), "--quiet"])
    assert specs[0].epochs == 2 and specs[0].lr == 0.01 and specs[0].batch_size == 64


@pytest.mark.slow
def test_the_first_run_offline_learns(offline_subset, tmp_path):
    """The newcomer's first command (README): on the offline subset, both networks learn."""
    out = tmp_path / "first-run"
    assert mnist.main(["--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["name"] == "mnist-5k-subset" and results["epochs"] == 30
    acc = {r["model"]: r["test_accuracy"] for r in results["runs"]}
    assert acc["cnn"] >= 0.90 and acc["qcnn"] >= 0.85, acc


# ----------------------------------------------------------------------------------------------
# Default output folders
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["mnist", "sweep", "circuits", "resources"])
def test_every_command_writes_under_runs_by_default(command, capsys):
    module = importlib.import_module(f"qcnn.experiments.{command}")
    with pytest.raises(SystemExit) as info:
        module.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("--out"))
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("-")), len(lines)
    )
    out_help = " ".join(" ".join(lines[start:end]).split())  # the --out entry of --help
    assert "runs/" in out_help, out_help
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"runs/{command}/results.json"], cwd=ROOT, timeout=30
    )
    assert ignored.returncode == 0, "runs/ must be ignored by git"


BAD_ARGS = {
    "negative epochs": ["--epochs", "-1"],
    "unknown model": ["--model", "resnet"],
    "sigma 1.5": ["--sigma", "1.5"],
    "sigma 0": ["--sigma", "0"],
    "sigma with eta": ["--sigma", "0.5", "--eta", "0.1"],
    "no-sampling with sigma": ["--no-sampling", "--sigma", "0.3"],
    "negative eps": ["--eps", "-0.1"],
    "zero cap": ["--cap", "0"],
    "even ae median": ["--ae-median", "2"],
    "too many ae bits": ["--ipe", "amplitude_estimation", "--ae-bits", "25"],
    "momentum 1": ["--momentum", "1"],
    "zero batch": ["--batch-size", "0"],
    "zero train size": ["--train-size", "0"],
    "unknown ipe": ["--ipe", "perfect"],
    "non-numeric lr": ["--lr", "fast"],
}


@pytest.fixture
def forbid_work(monkeypatch):
    """Anything past argument checking (loading data, training) fails the test."""
    monkeypatch.setattr(mnist, "train_run", _forbid)
    monkeypatch.setattr(schedulers, "train_run", _forbid)
    for mod in (mnist, sweep, resources):  # the executors get the data from the sweep
        monkeypatch.setattr(mod, "load_data", _forbid)
    monkeypatch.setattr(runner, "train_run", _forbid)
    monkeypatch.setattr(runner, "load_data", _forbid)


@pytest.mark.parametrize("name", sorted(BAD_ARGS))
def test_mnist_bad_arguments_exit_2_before_anything_runs(name, forbid_work, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        mnist.main([*BAD_ARGS[name], "--out", str(out), "--quiet"])
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_mnist_bad_argument_messages_name_the_problem(forbid_work, tmp_path, capsys):
    for argv, word in ((["--sigma", "1.5"], "sigma"), (["--sigma", "0.2", "--eta", "0.1"], "eta")):
        with pytest.raises(SystemExit):
            mnist.main([*argv, "--out", str(tmp_path / "o")])
        assert word in capsys.readouterr().err


def test_mnist_unwritable_out_exits_2(forbid_work, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    for out in (a_file, a_file / "sub"):
        with pytest.raises(SystemExit) as info:
            mnist.main(["--out", str(out), "--quiet"])
        assert info.value.code == 2
        assert str(out) in capsys.readouterr().err
    assert a_file.read_text() == "not a folder"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_mnist_read_only_out_exits_2(forbid_work, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(SystemExit) as info:
            mnist.main(["--out", str(ro / "x"), "--quiet"])
        assert info.value.code == 2
    finally:
        ro.chmod(0o700)


def test_mnist_resume_on_missing_dir_exits_2(forbid_work, tmp_path, capsys):
    missing = tmp_path / "never-ran"
    with pytest.raises(SystemExit) as info:
        mnist.main(["--resume", "--out", str(missing), "--quiet"])
    assert info.value.code == 2
    assert "resume" in capsys.readouterr().err
    assert not missing.exists()  # nothing created either


def test_config_from_args_defaults_to_the_paper_preset():
    args = mnist.build_parser().parse_args([])
    assert cli.config_from_args(args) == QuantumConfig.paper()
    args = mnist.build_parser().parse_args(["--eta", "0.2"])
    assert cli.config_from_args(args) == QuantumConfig.paper().replace(sigma=None, eta=0.2)
    args = mnist.build_parser().parse_args(["--no-sampling"])
    assert not cli.config_from_args(args).samples


COMMANDS = {"mnist": mnist, "sweep": sweep, "resources": resources}
COMMON_DEFAULTS = {  # command -> (--out default, --seed default), as before they were shared
    "mnist": (None, 1),
    "sweep": (None, 1),  # None: a fresh runs/<command>-<timestamp> folder (cli.default_out)
    "resources": (None, 1),
}


@pytest.mark.parametrize("command", sorted(COMMON_DEFAULTS))
def test_common_flags_are_declared_once_with_each_commands_defaults(command):
    parser = COMMANDS[command].build_parser()
    args = parser.parse_args([])
    out, seed = COMMON_DEFAULTS[command]
    assert (args.out, args.seed, args.data_dir, args.quiet) == (out, seed, None, False)
    args = parser.parse_args(["--data-dir", "d", "--out", "o", "--seed", "7", "--quiet"])
    assert (args.data_dir, args.out, args.seed, args.quiet) == ("d", "o", 7, True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--seed", "-1"])


# ----------------------------------------------------------------------------------------------
# python -m qcnn.experiments.sweep
# ----------------------------------------------------------------------------------------------

# The brief's invocation (batch 64 on 200 images = 4 batches, fewer than one loss log) crashes in
# paper_comparison (see the xfail below); 200 images in batches of 20 give one loss log per run.
SWEEP_ARGS = quick_sweep_args(epochs=1)
SWEEP_RUN_IDS = [
    "cnn-paper-seed1",
    "qcnn-paper-eps0.01-C10-sigma0.1-delta0.01-seed1",
    "qcnn-paper-eps0.01-C10-sigma0.5-delta0.01-seed1",
]


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory, mnist_source) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "quick"
    assert sweep.main([*SWEEP_ARGS, "--out", str(out)]) == 0
    return out


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_sweep_writes_summaries_and_figures(sweep_run):
    for name in ("summary.md", "summary.csv", "paper_comparison.md", "results.json"):
        assert (sweep_run / name).is_file(), name
    assert sorted(p.name for p in (sweep_run / "runs").iterdir()) == sorted(SWEEP_RUN_IDS)
    figures = sorted((sweep_run / "figures").glob("*.png"))
    assert [f.name for f in figures] == ["loss-eps0.01-C10-delta0.01.png"]
    assert_png(figures[0])
    rows = _read_csv(sweep_run / "summary.csv")
    kinds = sorted((r["model"], r["sigma"]) for r in rows)
    assert kinds == [
        ("cnn", ""),
        ("cnn-weights-quantum-forward", "0.5"),
        ("qcnn", "0.1"),
        ("qcnn", "0.5"),
    ]
    for run_id in SWEEP_RUN_IDS:
        rec = json.loads((sweep_run / "runs" / run_id / "run.json").read_text())
        row = next(
            r
            for r in rows
            if r["model"] == rec["model"]
            and (rec["quantum"] is None or float(r["sigma"]) == rec["quantum"]["config"]["sigma"])
        )
        assert float(row["test_accuracy"]) == pytest.approx(rec["test_accuracy"], abs=1e-4)
        assert 0.0 <= rec["test_accuracy"] <= 1.0
        assert rec["final_train_loss"] is not None
    md = (sweep_run / "summary.md").read_text()
    assert "| model |" in md and md.count("\n| ") >= 5
    comparison = (sweep_run / "paper_comparison.md").read_text()
    assert "95.37 %" in comparison and "not run" in comparison  # the authors' number is shown
    results = json.loads((sweep_run / "results.json").read_text())
    assert results["dataset"]["train_size"] == 200 and len(results["runs"]) == 4


def test_sweep_rerun_skips_finished_runs(sweep_run, tmp_path, monkeypatch):
    copy = tmp_path / "again"
    shutil.copytree(sweep_run, copy)
    monkeypatch.setattr(schedulers, "train_run", _forbid)
    monkeypatch.setattr(runner, "train_run", _forbid)
    assert sweep.main([*SWEEP_ARGS, "--out", str(copy), "--resume"]) == 0
    assert (copy / "summary.csv").read_text() == (sweep_run / "summary.csv").read_text()
    assert (copy / "paper_comparison.md").read_text() == (
        sweep_run / "paper_comparison.md"
    ).read_text()


def test_sweep_rerun_with_other_settings_does_not_reuse_stale_runs(
    sweep_run, tmp_path, monkeypatch, capsys
):
    copy = tmp_path / "other-lr"
    shutil.copytree(sweep_run, copy)
    monkeypatch.setattr(schedulers, "train_run", _forbid)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    # without --resume: the folder is not empty
    with pytest.raises(SystemExit) as info:
        sweep.main([*SWEEP_ARGS, "--lr", "0.05", "--out", str(copy)])
    assert info.value.code == 2
    assert "not empty" in capsys.readouterr().err
    # with --resume: the finished runs were made with another lr; refused, naming it
    rc = sweep.main(
        [*SWEEP_ARGS, "--lr", "0.05", "--no-quantum-forward", "--out", str(copy), "--resume"]
    )
    assert rc == 2
    # one line: the refusal (and, without QCNN_DATA_DIR, the offline subset's loud notice)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "MNIST SUBSET" not in ln]
    assert len(lines) == 1 and "run.lr: record 0.01, this run 0.05" in lines[0]
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_paper_comparison_with_runs_shorter_than_one_loss_log():
    cfg = QuantumConfig.paper(eps=0.01, cap=10.0, sigma=0.5, delta=0.01).to_dict()
    records = [
        {"model": "cnn", "quantum": None, "test_accuracy": 0.5, "final_train_loss": None},
        {
            "model": "qcnn",
            "quantum": {"config": cfg},
            "test_accuracy": 0.4,
            "final_train_loss": None,
        },
    ]
    text = sweep_report.paper_comparison(records)
    assert "| 0.5 | 0.157 |" in text


def test_sweep_quick_grid_as_documented(tmp_path, mnist_source):
    out = tmp_path / "sweep"
    argv = ["--grid", "quick", "--train-size", "200", "--test-size", "100", "--epochs", "1"]
    assert sweep.main([*argv, "--out", str(out), "--quiet"]) == 0
    assert (out / "paper_comparison.md").is_file()


@pytest.mark.parametrize(
    "argv",
    [["--epochs", "-1"], ["--grid", "huge"], ["--workers", "0"], ["--batch-size", "0"]],
    ids=["negative epochs", "unknown grid", "zero workers", "zero batch"],
)
def test_sweep_bad_arguments_exit_2(argv, forbid_work, tmp_path):
    with pytest.raises(SystemExit) as info:
        sweep.main([*argv, "--out", str(tmp_path / "s"), "--quiet"])
    assert info.value.code == 2


def test_sweep_unwritable_out_exits_2(forbid_work, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(SystemExit) as info:
        sweep.main(["--out", str(a_file), "--quiet"])
    assert info.value.code == 2


def test_grid_specs_cover_the_paper_grid():
    specs = grids.grid_specs(grids.GRIDS["paper"], epochs=2, seed=1)
    assert specs[0].config is None
    q = [s.config for s in specs[1:]]
    assert len(q) == 40 and len(set(q)) == 40
    assert {(c.eps, c.cap, c.sigma, c.delta) for c in q} == {
        (e, c, s, d)
        for e in (0.01, 0.1)
        for c in (2.0, 10.0)
        for s in (0.1, 0.2, 0.3, 0.4, 0.5)
        for d in (0.01, 0.1)
    }
    assert all(
        c == QuantumConfig.paper(eps=c.eps, cap=c.cap, sigma=c.sigma, delta=c.delta) for c in q
    )
    assert len({s.run_id for s in specs}) == 41  # every run has its own folder
    assert np.isclose(sum(s.epochs for s in specs), 82)
