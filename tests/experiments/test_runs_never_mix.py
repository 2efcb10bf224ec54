"""Never mix or lose a run (docs/reliability.md: folders, corrupt files, resume with other
settings, divergence).

- Output folder policy, the same for all four commands: a non-empty ``--out`` without
  ``--resume`` is refused with one line and nothing in it changes; ``--resume`` needs a folder
  with runs in it and removes the temporary files a killed writer left there; the default is a
  fresh ``runs/<command>-<timestamp>`` folder.
- ``--resume`` compares the complete run specification and names every differing setting
  (momentum, test size, quantum settings, ... which slipped through before).
- A damaged run record or weights file is one error naming the file (never a finished run
  from NaN weights); ``resources --weights`` names missing / extra parameters.
- A run that diverges ends the command with status 1 and one line naming run, epoch and batch;
  the runs finished before it stay in ``results.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qcnn.experiments.runner as runner
from qcnn.experiments import cli, mnist, resources, sweep
from qcnn.models import paper_cnn, paper_qcnn
from qcnn.quantum import QuantumConfig
from qcnn.train import TrainingDiverged
from tests.conftest import REAL_DATA_DIR, TINY, needs_data


def _forbid(*_a, **_k):
    raise AssertionError("work started although the command should have stopped")


@pytest.fixture
def forbid_work(monkeypatch):
    monkeypatch.setattr(mnist, "train_run", _forbid)
    for mod in (mnist, sweep, resources, runner):
        monkeypatch.setattr(mod, "load_data", _forbid)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------------------------
# Output folders
# ----------------------------------------------------------------------------------------------

COMMANDS = {"mnist": mnist, "sweep": sweep, "resources": resources}


@pytest.mark.parametrize("command", [*COMMANDS, "circuits"])
def test_a_non_empty_out_is_refused_without_resume(command, forbid_work, tmp_path, capsys):
    if command == "circuits":
        pytest.importorskip("qiskit_aer")
        from qcnn.experiments import circuits as module
    else:
        module = COMMANDS[command]
    out = tmp_path / "first-run"
    out.mkdir()
    (out / "results.json").write_text('{"runs": []}')
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    with pytest.raises(SystemExit) as info:
        module.main(["--out", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "is not empty" in err and "results.json" in err and len(err.splitlines()) == 1
    assert ("--resume" in err) == (command in ("mnist", "sweep"))
    assert _snapshot(out) == before


@pytest.mark.parametrize("command", ["mnist", "sweep"])
def test_resume_needs_a_folder_with_runs(command, forbid_work, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "missing", tmp_path / "empty"):
        with pytest.raises(SystemExit) as info:
            COMMANDS[command].main(["--out", str(out), "--resume"])
        assert info.value.code == 2
        assert "nothing to resume" in capsys.readouterr().err


def test_resume_removes_stale_temporaries_of_dead_writers(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    out = tmp_path / "out"
    (out / "run-a").mkdir(parents=True)
    (out / "results.json").write_text("{}")
    stale = out / "run-a" / f".checkpoint.npz.qcnn-{proc.pid}-abc123.tmp"
    stale.write_bytes(b"half")
    cli.check_output_dir(out, resume=True)
    assert not stale.exists() and (out / "results.json").exists()


def test_default_out_is_a_fresh_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = cli.default_out("sweep")
    assert first.parent == Path("runs") and first.name.startswith("sweep-")
    first.mkdir(parents=True)
    second = cli.default_out("sweep")
    assert second != first and not second.exists()


# ----------------------------------------------------------------------------------------------
# Resume compares the complete specification
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qcnn_run(tmp_path_factory) -> Path:
    if not REAL_DATA_DIR:
        pytest.skip("QCNN_DATA_DIR is not set")
    out = tmp_path_factory.mktemp("mnist") / "out"
    assert mnist.main([*TINY, "--model", "qcnn", "--out", str(out)]) == 0
    return out


# flag change -> (the flag-level message, from results.json's arguments; the checkpoint-level
# message when results.json is missing, for settings that keep the run id; None: a new run id)
CHANGES = {
    "momentum": (
        ["--momentum", "0.5"],
        "momentum: before 0.0, now 0.5",
        "run.momentum: checkpoint 0.0, this run 0.5",
    ),
    "test size": (
        ["--test-size", "60"],
        "test_size: before 50, now 60",
        "dataset.test_size: checkpoint 50, this run 60",
    ),
    "lr": (["--lr", "0.02"], "lr: before 0.01, now 0.02", "run.lr: checkpoint 0.01, this run 0.02"),
    "shards": (["--shards", "1"], "shards: before null, now 1", "shards: checkpoint 2, this run 1"),
    "noise order": (["--noise-order", "theory"], 'noise_order: before null, now "theory"', None),
    "sampled value": (["--sampled-value", "tomography"], "sampled_value: before null", None),
    "norms": (["--norms", "first_image"], 'norms: before null, now "first_image"', None),
    "gradient on": (["--gradient-on", "quantum"], "gradient_on: before null", None),
    "preset": (["--preset", "theory"], 'preset: before "paper", now "theory"', None),
}


def _resume_argv(out: Path, flags: list[str]) -> list[str]:
    argv = [*TINY, "--model", "qcnn", "--out", str(out), "--resume"]
    replaced = dict(zip(flags[::2], flags[1::2], strict=True))
    for i, a in enumerate(argv[:-1]):
        if a in replaced:
            argv[i + 1] = replaced.pop(a)
    return argv + [x for k, v in replaced.items() for x in (k, v)]


@needs_data
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_resume_with_any_other_setting_is_refused_naming_it(change, qcnn_run, capsys):
    flags, expected, _ = CHANGES[change]
    before = _snapshot(qcnn_run)
    assert mnist.main(_resume_argv(qcnn_run, flags)) == 2
    err = capsys.readouterr().err
    assert expected in err and "other settings" in err and err.count("\n") == 1, err
    assert _snapshot(qcnn_run) == before  # nothing recorded as if the run had used them


@needs_data
@pytest.mark.parametrize("change", sorted(c for c in CHANGES if CHANGES[c][2]))
def test_resume_before_any_result_checks_the_checkpoints_spec(change, qcnn_run, tmp_path, capsys):
    """Killed before the first run finished (no results.json): the checkpoint's complete
    specification is compared."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(qcnn_run, copy)
    (copy / "results.json").unlink()
    flags, _, expected = CHANGES[change]
    before = _snapshot(copy)
    assert mnist.main(_resume_argv(copy, flags)) == 2
    err = capsys.readouterr().err
    assert expected in err and "other settings" in err, err
    assert _snapshot(copy) == before


@needs_data
def test_resume_of_a_finished_run_says_so_and_reproduces_it(qcnn_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(qcnn_run, copy)
    argv = [a for a in TINY if a != "--quiet"]
    assert mnist.main([*argv, "--model", "qcnn", "--out", str(copy), "--resume"]) == 0
    assert "finished (1 of 1 epochs); using its checkpoint" in capsys.readouterr().err


def test_the_complete_spec_covers_fields_added_later():
    """run_spec_of serialises the whole RunSpec, QuantumConfig and data info: a new field of any
    of them is compared without new code."""
    data = runner.Data(
        np.zeros((1, 1, 28, 28)),
        np.zeros(1),
        np.zeros((1, 1, 28, 28)),
        np.zeros(1),
        {"name": "mnist", "train_size": 1, "new_info": "x"},
    )
    spec = runner.RunSpec(config=QuantumConfig.paper())
    full = runner.run_spec_of(spec, data)
    assert full["dataset"]["new_info"] == "x"
    assert set(full["run"]["config"]) == set(QuantumConfig.paper().to_dict())
    assert set(full["run"]) >= {
        "arch",
        "epochs",
        "batch_size",
        "lr",
        "momentum",
        "seed",
        "log_every",
        "shards",
    }


# ----------------------------------------------------------------------------------------------
# Damaged records and weights
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished CNN run (run.json + model.npz) on random images."""
    rng = np.random.default_rng(0)
    data = runner.Data(
        rng.normal(size=(40, 1, 28, 28)).astype(np.float32),
        np.arange(40) % 10,
        rng.normal(size=(20, 1, 28, 28)).astype(np.float32),
        np.arange(20) % 10,
        {"name": "random", "source": "test", "train_size": 40, "test_size": 20},
    )
    spec = runner.RunSpec(config=None, epochs=1, batch_size=20)
    run_dir = tmp_path_factory.mktemp("finished") / spec.run_id
    runner.train_run(spec, data, run_dir)
    return spec, data, run_dir


def _record_damage(run_dir: Path, name: str) -> None:
    path = run_dir / "run.json"
    record = json.loads(path.read_text())
    if name == "not JSON":
        path.write_text('{"model": "cnn", ')
    elif name == "not UTF-8":
        path.write_bytes(b"\xff\xfe\x00garbage")
    elif name == "a list":
        path.write_text("[]")
    elif name == "no accuracy":
        record.pop("test_accuracy")
        path.write_text(json.dumps(record))
    elif name == "accuracy 7":
        path.write_text(json.dumps({**record, "test_accuracy": 7}))
    elif name == "accuracy null (NaN)":
        path.write_text(json.dumps({**record, "test_accuracy": None}))
    elif name == "spec is text":
        path.write_text(json.dumps({**record, "spec": "cnn"}))
    elif name == "history entry broken":
        record["history"][0]["train_loss"] = "low"
        path.write_text(json.dumps(record))
    elif name == "NaN weights":
        arrays = dict(np.load(run_dir / "model.npz"))
        arrays["0.weight"] = arrays["0.weight"] * np.nan
        np.savez(run_dir / "model.npz", **arrays)
    elif name == "weights missing":
        (run_dir / "model.npz").unlink()
    elif name == "weights truncated":
        data = (run_dir / "model.npz").read_bytes()
        (run_dir / "model.npz").write_bytes(data[: len(data) // 3])


RECORD_DAMAGE = {
    "not JSON": "run.json",
    "not UTF-8": "run.json",
    "a list": "run.json",
    "no accuracy": "run.json",
    "accuracy 7": "run.json",
    "accuracy null (NaN)": "run.json",
    "spec is text": "run.json",
    "history entry broken": "run.json",
    "NaN weights": "model.npz",
    "weights missing": "model.npz",
    "weights truncated": "model.npz",
}


@pytest.mark.parametrize("damage", sorted(RECORD_DAMAGE))
def test_a_damaged_record_is_one_error_naming_the_file(finished, damage, tmp_path):
    import shutil

    spec, data, run_dir = finished
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    _record_damage(copy, damage)
    with pytest.raises(runner.RecordError) as info:
        runner.load_finished_record(copy, spec, data)
    msg = str(info.value)
    assert str(copy / RECORD_DAMAGE[damage]) in msg and "\n" not in msg


def test_an_intact_record_loads_and_other_settings_are_named(finished):
    spec, data, run_dir = finished
    assert runner.load_finished_record(run_dir, spec, data)["model"] == "cnn"
    other = runner.RunSpec(config=None, epochs=1, batch_size=20, momentum=0.9)
    with pytest.raises(runner.RunMismatchError, match="run.momentum: record 0.0, this run 0.9"):
        runner.load_finished_record(run_dir, other, data)


# ----------------------------------------------------------------------------------------------
# resources --weights
# ----------------------------------------------------------------------------------------------


def _weights(tmp_path, change) -> Path:
    state = paper_qcnn(QuantumConfig.paper(), seed=1).state_dict()
    change(state)
    path = tmp_path / "w.npz"
    np.savez(path, **state)
    return path


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda s: s.pop("3.bias"), ["missing ['3.bias']"]),
        (lambda s: s.update(extra=np.zeros(3, np.float32)), ["extra ['extra']"]),
        (lambda s: s.update({"0.weight": np.zeros((5, 1, 3, 3), np.float32)}), ["0.weight"]),
        (lambda s: s.update({"0.bias": s["0.bias"] * np.inf}), ["NaN or infinity", "0.bias"]),
    ],
    ids=["missing", "extra", "shape", "inf"],
)
@needs_data
def test_resources_weights_that_do_not_fit_are_named(change, words, tmp_path, capsys):
    path = _weights(tmp_path, change)
    argv = ["--weights", str(path), "--images", "8", "--out", str(tmp_path / "o"), "--quiet"]
    assert resources.main(argv) == 2
    err = capsys.readouterr().err
    assert str(path) in err and all(w in err for w in words), err


def test_resources_accepts_qcnn_and_cnn_weights(tmp_path):
    cfg = QuantumConfig.paper()
    for donor, kind in ((paper_qcnn(cfg, seed=5), "qcnn"), (paper_cnn(seed=5), "cnn")):
        path = tmp_path / f"{kind}.npz"
        donor.save(path)
        model = paper_qcnn(cfg, seed=1)
        assert resources.load_weights(str(path), model, paper_cnn(seed=1), "paper") == kind
        for a, b in zip(model.parameters(), donor.parameters(), strict=True):
            np.testing.assert_array_equal(a.data, b.data)


# ----------------------------------------------------------------------------------------------
# Divergence in a command
# ----------------------------------------------------------------------------------------------


@needs_data
def test_mnist_divergence_exit_1_one_line_and_the_finished_runs_are_kept(
    tmp_path, monkeypatch, capsys
):
    real_fit = runner.fit

    def fit(model, optimizer, train, test, config, **k):
        if config.desc.startswith("qcnn"):
            raise TrainingDiverged(
                config.desc, 1, 2, float("inf"), "likely cause: the learning rate"
            )
        return real_fit(model, optimizer, train, test, config, **k)

    monkeypatch.setattr(runner, "fit", fit)
    out = tmp_path / "out"
    assert mnist.main([*TINY, "--model", "both", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(
        "error: qcnn-paper-eps0.01-C10-sigma0.5-delta0.01-seed1: training "
        "diverged at epoch 1, batch 2"
    )
    assert "1 run(s) finished before it are in" in err[-1]
    results = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in results["runs"]] == ["cnn"]
