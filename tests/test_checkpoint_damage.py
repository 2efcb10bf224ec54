"""Damaged checkpoints, divergence, file permissions and stale temporary files (qcnn.train,
qcnn.io).

Corrupt-file class (docs/reliability.md): every way a checkpoint can be damaged (truncated,
not a zip, bad or missing metadata, missing keys, wrong types, inconsistent history, bad
generator states, NaN/inf arrays, unexpected entries) gives exactly one ``CheckpointError`` that
names the file and what is wrong: never a raw JSONDecodeError / KeyError / TypeError, and the
model and optimizer are left untouched. Divergence gives one ``TrainingDiverged`` naming the run,
epoch and batch and the likely cause, and keeps the checkpoint of the last finished epoch.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from qcnn.io import atomic_write_text, json_differences, remove_stale_temp_files
from qcnn.nn import SGD, Conv2D, Dense, Flatten, ReLU, Sequential
from qcnn.nn.model import load_npz_strict
from qcnn.train import (
    CHECKPOINT_NAME,
    CheckpointError,
    RunMismatchError,
    TrainingDiverged,
    fit,
    read_checkpoint_meta,
)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 1, 4, 4)).astype(np.float32)
Y = np.arange(24) % 2
KW = dict(epochs=2, batch_size=8, seed=3)


def make(seed=0, lr=0.1):
    model = Sequential(Conv2D(1, 2, 2, rng=seed), ReLU(), Flatten(), Dense(18, 2, rng=seed + 1))
    return model, SGD(model.parameters(), lr=lr, momentum=0.9)


@pytest.fixture
def ckpt(tmp_path):
    model, opt = make()
    fit(model, opt, (X, Y), epochs=1, batch_size=8, seed=3, checkpoint_dir=tmp_path)
    return tmp_path / CHECKPOINT_NAME


def _rewrite(path, arrays=None, meta=None, raw_meta=None):
    data = load_npz_strict(path)
    if meta is not None:
        data["meta"] = np.array(json.dumps(meta))
    if raw_meta is not None:
        data["meta"] = raw_meta
    if arrays is not None:
        data = arrays(data)
    with open(path, "wb") as fh:
        np.savez(fh, **data)


def _meta(path):
    return json.loads(str(load_npz_strict(path)["meta"]))


def _edit(path, fn):
    meta = _meta(path)
    fn(meta)
    _rewrite(path, meta=meta)


def _drop(key):
    return lambda m: m.pop(key)


def _set(*keys_value):
    *keys, value = keys_value

    def fn(meta):
        target = meta
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value

    return fn


DAMAGE = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "npz"),
    "empty file": (lambda p: p.write_bytes(b""), "npz"),
    "random bytes": (lambda p: p.write_bytes(os.urandom(300)), "npz"),
    "no meta": (
        lambda p: _rewrite(p, arrays=lambda d: {k: v for k, v in d.items() if k != "meta"}),
        "no 'meta'",
    ),
    "meta is numbers": (lambda p: _rewrite(p, raw_meta=np.arange(3)), "not text"),
    "meta not JSON": (lambda p: _rewrite(p, raw_meta=np.array('{"epoch": 1,')), "not valid JSON"),
    "meta is a list": (lambda p: _rewrite(p, raw_meta=np.array("[1, 2]")), "JSON list"),
    "missing epoch": (lambda p: _edit(p, _drop("epoch")), "lacks ['epoch']"),
    "missing rng": (lambda p: _edit(p, _drop("rng")), "lacks ['rng']"),
    "missing run": (lambda p: _edit(p, _drop("run")), "lacks ['run']"),
    "missing history": (lambda p: _edit(p, _drop("history")), "lacks ['history']"),
    "format 2": (lambda p: _edit(p, _set("format", 2)), "unknown format"),
    "epoch is text": (lambda p: _edit(p, _set("epoch", "1")), "epoch"),
    "epoch negative": (lambda p: _edit(p, _set("epoch", -1)), "epoch"),
    "epoch is bool": (lambda p: _edit(p, _set("epoch", True)), "epoch"),
    "epoch beyond history": (lambda p: _edit(p, _set("epoch", 2)), "history holds 1"),
    "run is a list": (lambda p: _edit(p, _set("run", [])), "run"),
    "history steps not a list": (lambda p: _edit(p, _set("history", "steps", {})), "steps"),
    "history epoch lacks a key": (
        lambda p: _edit(p, lambda m: m["history"]["epochs"][0].pop("train_loss")),
        "history.epochs[0]",
    ),
    "history loss is text": (
        lambda p: _edit(p, _set("history", "epochs", 0, "train_loss", "x")),
        "train_loss",
    ),
    "history loss is NaN": (
        lambda p: _edit(p, _set("history", "epochs", 0, "train_loss", float("nan"))),
        "train_loss",
    ),
    "rng not a list": (lambda p: _edit(p, _set("rng", {})), "rng"),
    "rng state garbage": (
        lambda p: _edit(p, _set("rng", 0, "state", {"state": "x"})),
        "generator state 0",
    ),
    "rng entry missing": (lambda p: _edit(p, lambda m: m["rng"].pop()), "generator states"),
    "NaN weight": (
        lambda p: _rewrite(
            p, arrays=lambda d: {**d, "model/0.weight": d["model/0.weight"] * np.nan}
        ),
        "model/0.weight",
    ),
    "inf momentum": (
        lambda p: _rewrite(
            p,
            arrays=lambda d: {
                **d,
                "optim/momentum.3.weight": d["optim/momentum.3.weight"] + np.inf,
            },
        ),
        "optim/momentum.3.weight",
    ),
    "text weights": (
        lambda p: _rewrite(p, arrays=lambda d: {**d, "model/0.bias": np.array(["a", "b"])}),
        "dtype",
    ),
    "unexpected entry": (
        lambda p: _rewrite(p, arrays=lambda d: {**d, "extra": np.zeros(2)}),
        "unexpected entry 'extra'",
    ),
    "no weights": (
        lambda p: _rewrite(
            p, arrays=lambda d: {k: v for k, v in d.items() if not k.startswith("model/")}
        ),
        "no model weights",
    ),
    "missing weight": (
        lambda p: _rewrite(p, arrays=lambda d: {k: v for k, v in d.items() if k != "model/3.bias"}),
        "3.bias",
    ),
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_a_damaged_checkpoint_gives_one_clear_error_and_changes_nothing(ckpt, name):
    damage, fragment = DAMAGE[name]
    damage(ckpt)
    model, opt = make(seed=5)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        fit(model, opt, (X, Y), checkpoint_dir=ckpt.parent, resume=True, **KW)
    exc = info.value
    assert type(exc) in (CheckpointError, ValueError)  # never JSONDecodeError/KeyError/TypeError
    assert not isinstance(exc, (json.JSONDecodeError, KeyError, TypeError))
    msg = str(exc)
    assert str(ckpt) in msg and fragment in msg, msg
    assert "\n" not in msg  # one line
    for k, v in model.state_dict().items():  # all or nothing
        np.testing.assert_array_equal(v, before[k])


def test_read_checkpoint_meta_reports_the_epochs_done(ckpt):
    meta = read_checkpoint_meta(ckpt)
    assert meta["epoch"] == 1 and len(meta["history"]["epochs"]) == 1
    ckpt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="damaged"):
        read_checkpoint_meta(ckpt)


def test_resume_names_every_differing_setting(ckpt):
    model, _ = make()
    opt = SGD(model.parameters(), lr=0.05, momentum=0.5)
    with pytest.raises(RunMismatchError) as info:
        fit(model, opt, (X, Y), checkpoint_dir=ckpt.parent, resume=True, **KW)
    msg = str(info.value)
    assert "lr: checkpoint 0.1, this run 0.05" in msg
    assert "optimizer_settings.momentum: checkpoint 0.9, this run 0.5" in msg


def test_resume_compares_the_callers_whole_spec(tmp_path):
    spec = {"arch": "tiny", "config": {"eps": 0.01, "sigma": 0.5}, "dataset": {"train_size": 24}}
    model, opt = make()
    fit(model, opt, (X, Y), epochs=1, batch_size=8, seed=3, checkpoint_dir=tmp_path, run_spec=spec)
    other = {**spec, "config": {"eps": 0.01, "sigma": 0.3, "new_field": True}}
    model, opt = make()
    with pytest.raises(RunMismatchError) as info:
        fit(model, opt, (X, Y), checkpoint_dir=tmp_path, resume=True, run_spec=other, **KW)
    msg = str(info.value)
    assert "spec.config.sigma: checkpoint 0.5, this run 0.3" in msg
    assert "spec.config.new_field: checkpoint (absent), this run true" in msg
    model, opt = make()  # the same spec resumes
    hist = fit(model, opt, (X, Y), checkpoint_dir=tmp_path, resume=True, run_spec=spec, **KW)
    assert len(hist.epochs) == 2


def test_json_differences():
    assert json_differences({"a": 1, "b": [1, 2]}, {"a": 1.0, "b": [1, 2]}) == []
    assert json_differences({"a": [1, 2]}, {"a": [1, 2, 3]}) == ["a: stored [1, 2], now [1, 2, 3]"]


# ----------------------------------------------------------------------------------------------
# Divergence
# ----------------------------------------------------------------------------------------------


# Overflow warnings on the way to inf are expected here (the suite turns qcnn's into errors).
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_names_run_epoch_batch_and_cause_and_keeps_the_last_checkpoint(tmp_path):
    model, opt = make()
    fit(model, opt, (X, Y), epochs=1, batch_size=8, seed=3, checkpoint_dir=tmp_path)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    model, opt = make()
    opt.lr = 1e30  # the resumed epoch blows up
    with pytest.raises(TrainingDiverged) as info:
        fit(
            model,
            opt,
            (X, Y),
            epochs=2,
            batch_size=8,
            seed=3,
            checkpoint_dir=tmp_path,
            desc="tiny-run",
        )
    exc = info.value
    assert (exc.run, exc.epoch) == ("tiny-run", 1) and exc.batch >= 1
    msg = str(exc)
    assert msg.startswith("tiny-run: training diverged at epoch 1, batch ")
    assert "learning rate (1e+30)" in msg and "\n" not in msg
    assert isinstance(exc, FloatingPointError)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before  # nothing overwritten


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_message_mentions_delta_when_there_is_gradient_noise():
    from qcnn.quantum.gradient_noise import QuantumGradientNoise

    model, _ = make()
    opt = SGD(model.parameters(), lr=1e30, grad_hooks=[QuantumGradientNoise(0.5, 0)])
    with pytest.raises(TrainingDiverged, match=r"delta \(0.5\)"):
        fit(model, opt, (X, Y), epochs=1, batch_size=8, seed=3)


# ----------------------------------------------------------------------------------------------
# Permissions and stale temporary files
# ----------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_files_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        model, opt = make()
        fit(model, opt, (X, Y), epochs=1, batch_size=8, seed=3, checkpoint_dir=tmp_path)
    finally:
        os.umask(old)
    for name in ("a.txt", CHECKPOINT_NAME):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    sub = tmp_path / "run"
    sub.mkdir()
    dead = _dead_pid()
    stale = [
        tmp_path / f".results.json.qcnn-{dead}-ab_12cd.tmp",
        sub / f".checkpoint.npz.qcnn-{dead}-x9y8z7.tmp",
    ]
    live = sub / f".model.npz.qcnn-{os.getpid()}-abcdef.tmp"  # a writer that still runs
    foreign = [tmp_path / ".notes.tmp", tmp_path / "data.tmp"]  # not ours: never touched
    for p in [*stale, live, *foreign]:
        p.write_bytes(b"partial")
    removed = remove_stale_temp_files(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert live.exists() and all(p.exists() for p in foreign)
    assert not any(p.exists() for p in stale)


def test_fit_removes_stale_temp_files_in_its_checkpoint_folder(tmp_path):
    stale = tmp_path / f".checkpoint.npz.qcnn-{_dead_pid()}-abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    model, opt = make()
    fit(model, opt, (X, Y), epochs=1, batch_size=8, seed=3, checkpoint_dir=tmp_path)
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT_NAME]
