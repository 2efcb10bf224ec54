"""Tests of qcnn.train: fit / evaluate, the history (JSON and CSV), checkpoints and exact resume.

The networks are tiny and the data synthetic (bright top half = class 0, bright bottom half =
class 1), so every run takes milliseconds. Randomness inside the model comes from a Dropout
layer, a ``Jitter`` layer (noise in training *and* inference, like a quantum layer) and a noisy
gradient hook, all owning ``rng`` attributes, so checkpoints must restore every generator.
"""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest

from qcnn.data.batches import iterate_minibatches
from qcnn.nn import SGD, Conv2D, Dense, Dropout, Flatten, Layer, ReLU, Sequential
from qcnn.nn.losses import softmax_cross_entropy
from qcnn.nn.model import load_npz_strict
from qcnn.seeding import seed_stream
from qcnn.train import (
    CHECKPOINT_NAME,
    BatchEnd,
    EpochLog,
    History,
    StepLog,
    evaluate,
    fit,
    generators_of,
    load_checkpoint,
    write_history,
)
from tests.conftest import stop_after


class Jitter(Layer):
    """Adds Gaussian noise in training and inference (draws from ``self.rng`` every call)."""

    def __init__(self, scale: float, rng: np.random.Generator) -> None:
        super().__init__()
        self.scale, self.rng = scale, rng

    def forward(self, x):
        return x + self.scale * self.rng.standard_normal(x.shape).astype(x.dtype)

    def backward(self, dout):
        return dout


class NoisyGrad:
    """A gradient hook with its own generator (like the quantum backprop noise)."""

    def __init__(self, scale: float, rng: np.random.Generator) -> None:
        self.scale, self.rng = scale, rng

    def __call__(self, p, g):
        return g + self.scale * self.rng.standard_normal(g.shape).astype(g.dtype)


def dataset(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, 0.3, (n, 1, 4, 4)).astype(np.float32)
    x[y == 0, :, :2] += 1.0
    x[y == 1, :, 2:] += 1.0
    return x, y


TRAIN, TEST = dataset(48, 0), dataset(16, 1)


def make_run(seed=0, jitter=0.0, dropout=0.2, grad_noise=1e-3, momentum=0.9):
    """A small model and its optimizer; every generator spawned from ``seed``."""
    r = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]
    model = Sequential(
        Conv2D(1, 2, 2, rng=r[0]),
        ReLU(),
        Jitter(jitter, r[1]),  # draws even at scale 0
        Flatten(),
        Dropout(dropout, rng=r[2]),
        Dense(18, 2, rng=r[3]),
    )
    hooks = [NoisyGrad(grad_noise, r[4])] if grad_noise else []
    return model, SGD(model.parameters(), lr=0.2, momentum=momentum, grad_hooks=hooks)


def weights(model):
    return model.state_dict()


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def without_timing(history):
    d = history.to_dict()
    for e in d["epochs"]:
        e.pop("seconds")
        e.pop("eval_seconds", None)
    return d


# ----------------------------------------------------------------------------------------------
# fit
# ----------------------------------------------------------------------------------------------


def test_fit_learns_a_separable_problem():
    model, opt = make_run()
    loss0, acc0 = evaluate(model, *TEST)
    hist = fit(model, opt, TRAIN, TEST, epochs=6, batch_size=8, seed=3, log_every=2)
    assert [e.epoch for e in hist.epochs] == list(range(1, 7))
    assert hist.epochs[-1].train_loss < 0.5 * hist.epochs[0].train_loss
    loss1, acc1 = evaluate(model, *TEST)
    assert loss1 < 0.5 * loss0 and acc1 == 1.0
    assert (
        hist.epochs[-1].test_loss == pytest.approx(loss1) and hist.epochs[-1].test_accuracy == acc1
    )
    # bookkeeping: 6 batches an epoch, a log every 2 batches
    assert len(hist.steps) == 6 * 3
    assert [s.batch for s in hist.steps[:3]] == [2, 4, 6]
    assert [e.images_seen for e in hist.epochs] == [48 * k for k in range(1, 7)]
    assert [s.images_seen for s in hist.steps[:3]] == [16, 32, 48]
    assert all(0 <= e.train_accuracy <= 1 for e in hist.epochs)
    assert hist.final_loss(last=3) == pytest.approx(np.mean([s.loss for s in hist.steps[-3:]]))
    assert hist.train_seconds == pytest.approx(sum(e.seconds for e in hist.epochs))


def test_fit_logs_the_batch_loss_and_window_mean():
    # without any randomness in the model, the logged losses can be recomputed by hand
    model, opt = make_run(dropout=0.0, grad_noise=0.0, momentum=0.0)
    twin, twin_opt = make_run(dropout=0.0, grad_noise=0.0, momentum=0.0)
    hist = fit(model, opt, TRAIN, epochs=1, batch_size=16, seed=5, log_every=2)
    losses = []
    order = np.random.default_rng(seed_stream(5, "shuffle"))  # fit's documented batch order
    for xb, yb in iterate_minibatches(*TRAIN, 16, rng=order):
        loss, d = softmax_cross_entropy(twin.forward(xb), yb)
        twin.backward(d)
        twin_opt.step()
        losses.append(loss)
    assert_same_weights(weights(model), weights(twin))
    assert hist.steps == [StepLog(1, 2, 32, losses[1], float(np.mean(losses[:2])))]
    assert hist.epochs[0].train_loss == pytest.approx(np.mean(losses))


def test_fit_callbacks_see_every_batch_and_can_stop_the_run():
    model, opt = make_run()
    seen: list[BatchEnd] = []
    hist = fit(
        model,
        opt,
        TRAIN,
        TEST,
        epochs=2,
        batch_size=8,
        seed=3,
        log_every=2,
        callbacks=[seen.append, lambda info: None],
    )
    assert [(b.epoch, b.batch) for b in seen] == [(e, b) for e in (1, 2) for b in range(1, 7)]
    assert [b.batches_done for b in seen] == list(range(1, 13))
    assert [b.images_seen for b in seen] == [8 * k for k in range(1, 13)]
    assert all(b.batches_per_epoch == 6 and b.epochs == 2 for b in seen)
    assert [s.loss for s in hist.steps] == [b.loss for b in seen if b.batch % 2 == 0]
    # callbacks observe only: the same run without them gives the same weights
    twin, twin_opt = make_run()
    fit(twin, twin_opt, TRAIN, TEST, epochs=2, batch_size=8, seed=3, log_every=2)
    assert_same_weights(weights(model), weights(twin))

    # a stop request ends the run after that batch; every callback still sees the batch
    model, opt = make_run()
    later: list[int] = []
    hist = fit(
        model,
        opt,
        TRAIN,
        TEST,
        epochs=3,
        batch_size=8,
        seed=3,
        callbacks=[stop_after(8), lambda info: later.append(info.batches_done)],
    )
    assert later == list(range(1, 9)) and opt.steps == 8
    assert len(hist.epochs) == 1  # epoch 2 was abandoned: no log for it


def test_fit_is_deterministic_and_seed_dependent():
    runs = []
    for seed in (1, 1, 2):
        model, opt = make_run()
        fit(model, opt, TRAIN, epochs=2, batch_size=8, seed=seed)
        runs.append(weights(model))
    assert_same_weights(runs[0], runs[1])
    assert not np.array_equal(runs[0]["5.weight"], runs[2]["5.weight"])


def test_fit_argument_validation():
    model, opt = make_run()
    with pytest.raises(ValueError, match="epochs"):
        fit(model, opt, TRAIN, epochs=-1)
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, opt, TRAIN, batch_size=0)
    with pytest.raises(ValueError, match="log_every"):
        fit(model, opt, TRAIN, log_every=0)
    with pytest.raises(ValueError, match="must be non-empty and match"):
        fit(model, opt, (TRAIN[0], TRAIN[1][:-1]))
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        fit(model, opt, TRAIN, resume=True)
    x = TRAIN[0].copy()
    x[3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):  # refused by the first layer
        fit(model, opt, (x, TRAIN[1]), epochs=1, batch_size=48)


# ----------------------------------------------------------------------------------------------
# History
# ----------------------------------------------------------------------------------------------


def test_history_json_and_csv_round_trip(tmp_path):
    model, opt = make_run()
    hist = fit(model, opt, TRAIN, TEST, epochs=2, batch_size=8, seed=3, log_every=4)
    hist.epochs.append(EpochLog(3, 999, 0.5, 0.75, None, None, 1.25))  # no test set: None
    write_history(tmp_path, hist)
    assert sorted(os.listdir(tmp_path)) == ["history.csv", "history.json"]

    back = History.from_dict(json.loads((tmp_path / "history.json").read_text()))
    assert back == hist  # exact: floats survive JSON by repr

    rows = list(csv.DictReader(io.StringIO((tmp_path / "history.csv").read_text())))
    assert list(rows[0]) == list(History.CSV_COLUMNS)
    step_rows = [r for r in rows if r["kind"] == "step"]
    epoch_rows = [r for r in rows if r["kind"] == "epoch"]
    assert len(step_rows) == len(hist.steps) and len(epoch_rows) == len(hist.epochs)
    for r, s in zip(step_rows, hist.steps, strict=True):
        assert (int(r["epoch"]), int(r["batch"]), int(r["images_seen"])) == (
            s.epoch,
            s.batch,
            s.images_seen,
        )
        assert float(r["loss"]) == s.loss and float(r["loss_avg"]) == s.loss_avg
        assert r["train_loss"] == "" and r["test_accuracy"] == ""
    for r, e in zip(epoch_rows, hist.epochs, strict=True):
        assert float(r["train_loss"]) == e.train_loss and float(r["seconds"]) == e.seconds
        assert (r["test_loss"] == "") == (e.test_loss is None)
        if e.test_loss is not None:
            assert (
                float(r["test_loss"]) == e.test_loss
                and float(r["test_accuracy"]) == e.test_accuracy
            )
    assert History.from_dict({}) == History()


# ----------------------------------------------------------------------------------------------
# Checkpoints and resume
# ----------------------------------------------------------------------------------------------

EPOCHS, BATCH = 3, 8  # 6 batches an epoch


def test_resume_after_a_crash_reproduces_the_uninterrupted_run_exactly(tmp_path):
    kw = dict(epochs=EPOCHS, batch_size=BATCH, seed=7, log_every=2)
    model, opt = make_run(seed=0, jitter=0.05)
    full = fit(model, opt, TRAIN, TEST, checkpoint_dir=tmp_path / "a", **kw)
    reference = weights(model)

    # crash in the middle of epoch 2: the checkpoint on disk is the one of epoch 1
    model_b, opt_b = make_run(seed=0, jitter=0.05)
    partial = fit(
        model_b, opt_b, TRAIN, TEST, checkpoint_dir=tmp_path / "b", callbacks=[stop_after(9)], **kw
    )
    assert len(partial.epochs) == 1
    assert os.listdir(tmp_path / "b") == [CHECKPOINT_NAME]  # no temporary files
    assert not np.array_equal(weights(model_b)["5.weight"], reference["5.weight"])

    # resume into a *differently seeded* model and optimizer: the checkpoint must restore the
    # weights, the momentum buffers and every generator (shuffle, dropout, jitter, grad noise)
    model_c, opt_c = make_run(seed=99, jitter=0.05)
    resumed = fit(model_c, opt_c, TRAIN, TEST, checkpoint_dir=tmp_path / "b", resume=True, **kw)
    assert_same_weights(weights(model_c), reference)
    assert without_timing(resumed) == without_timing(full)
    assert opt_c.steps == opt.steps == EPOCHS * 6
    for g_full, g_resumed in zip(
        generators_of(model, opt), generators_of(model_c, opt_c), strict=True
    ):
        assert g_full.bit_generator.state == g_resumed.bit_generator.state


def test_resume_without_a_checkpoint_starts_fresh_and_a_finished_run_is_a_no_op(tmp_path):
    kw = dict(epochs=2, batch_size=BATCH, seed=7)
    model, opt = make_run()
    fit(model, opt, TRAIN, **kw)
    model_b, opt_b = make_run()
    fit(model_b, opt_b, TRAIN, checkpoint_dir=tmp_path, resume=True, **kw)
    assert_same_weights(weights(model_b), weights(model))
    # resuming a completed run trains no further
    model_c, opt_c = make_run(seed=5)
    hist = fit(model_c, opt_c, TRAIN, checkpoint_dir=tmp_path, resume=True, **kw)
    assert_same_weights(weights(model_c), weights(model))
    assert len(hist.epochs) == 2


def test_checkpoint_contents(tmp_path):
    model, opt = make_run()
    fit(model, opt, TRAIN, epochs=1, batch_size=BATCH, seed=7, checkpoint_dir=tmp_path)
    data = load_npz_strict(tmp_path / CHECKPOINT_NAME)
    assert {k for k in data if k.startswith("model/")} == {f"model/{k}" for k in weights(model)}
    assert "optim/momentum.5.weight" in data and int(data["optim/steps"]) == 6
    meta = json.loads(str(data["meta"]))
    assert meta["epoch"] == 1 and meta["run"] == {
        "batch_size": BATCH,
        "seed": 7,
        "train_size": 48,
        "test_size": None,
        "optimizer": "SGD",
        "lr": opt.lr,
        "shards": 1,
        "optimizer_settings": {
            "momentum": 0.9,
            "nesterov": False,
            "weight_decay": 0.0,
            "grad_hooks": [{"type": "NoisyGrad", "scale": 0.001}],
        },
    }
    assert len(meta["rng"]) == 1 + len(generators_of(model, opt))  # shuffle + dropout + hook
    model_b, opt_b = make_run(seed=3)
    epoch, hist = load_checkpoint(
        tmp_path / CHECKPOINT_NAME, model_b, opt_b, np.random.default_rng()
    )
    assert epoch == 1 and len(hist.epochs) == 1
    assert_same_weights(weights(model_b), weights(model))


@pytest.mark.parametrize(
    "change",
    [dict(batch_size=16), dict(seed=8), dict(train=(TRAIN[0][:40], TRAIN[1][:40]))],
    ids=str,
)
def test_resume_refuses_a_checkpoint_of_a_different_run(tmp_path, change):
    model, opt = make_run()
    fit(model, opt, TRAIN, epochs=1, batch_size=BATCH, seed=7, checkpoint_dir=tmp_path)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    kw = dict(epochs=2, batch_size=BATCH, seed=7, checkpoint_dir=tmp_path, resume=True)
    train = change.pop("train", TRAIN)
    model_b, opt_b = make_run()
    with pytest.raises(ValueError, match="written by a run with other settings"):
        fit(model_b, opt_b, train, **{**kw, **change})
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before


def test_resume_refuses_a_checkpoint_with_other_generators_or_no_meta(tmp_path):
    model, opt = make_run()
    fit(model, opt, TRAIN, epochs=1, batch_size=BATCH, seed=7, checkpoint_dir=tmp_path)
    model_b, opt_b = make_run(grad_noise=0.0)  # one generator (and one gradient hook) fewer
    with pytest.raises(ValueError, match="other settings: optimizer_settings.grad_hooks"):
        fit(
            model_b,
            opt_b,
            TRAIN,
            epochs=2,
            batch_size=BATCH,
            seed=7,
            checkpoint_dir=tmp_path,
            resume=True,
        )
    model.save(tmp_path / "weights.npz")
    with pytest.raises(ValueError, match="not a qcnn checkpoint"):
        load_checkpoint(tmp_path / "weights.npz", model, opt, np.random.default_rng())


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------


def test_evaluate_matches_a_direct_computation_for_any_batch_size():
    model, _ = make_run(dropout=0.5)  # dropout is off at inference
    x, y = TEST
    logits = model.eval().forward(x)
    loss, _ = softmax_cross_entropy(logits, y)
    acc = float(np.mean(logits.argmax(axis=1) == y))
    for bs in (1, 5, 16, 1000):
        got_loss, got_acc = evaluate(model, x, y, batch_size=bs)
        assert got_loss == pytest.approx(loss, rel=1e-6) and got_acc == acc
    with pytest.raises(ValueError, match="non-empty"):
        evaluate(model, x[:0], y[:0])
    with pytest.raises(ValueError, match="matching"):
        evaluate(model, x, y[:-1])


def test_evaluate_is_reproducible_and_leaves_the_model_generators_alone():
    model, opt = make_run(jitter=0.5)
    gens = generators_of(model, opt)
    states = [g.bit_generator.state for g in gens]
    first = evaluate(model, *TEST)
    second = evaluate(model, *TEST)
    assert first == second  # the same noise every call
    assert evaluate(model, *TEST, seed=1) != first  # ...which really is noise
    assert generators_of(model, opt) == gens  # the very same generator objects, back in place
    assert [g.bit_generator.state for g in gens] == states  # not advanced
    # and the next training draw is what it would have been without the evaluation
    twin, twin_opt = make_run(jitter=0.5)
    x = TRAIN[0][:8]
    np.testing.assert_array_equal(model.forward(x), twin.forward(x))


def test_evaluating_during_fit_does_not_change_training(tmp_path):
    kw = dict(epochs=2, batch_size=BATCH, seed=4)
    model, opt = make_run(jitter=0.3)
    with_test = fit(model, opt, TRAIN, TEST, **kw)
    model_b, opt_b = make_run(jitter=0.3)
    without_test = fit(model_b, opt_b, TRAIN, None, **kw)
    assert_same_weights(weights(model), weights(model_b))
    assert with_test.steps == without_test.steps
    assert with_test.epochs[0].test_loss is not None and without_test.epochs[0].test_loss is None


# ----------------------------------------------------------------------------------------------
# Nested models: generators, evaluation, statistics and shards go through qcnn.nn.walk
# ----------------------------------------------------------------------------------------------


class CountingLayer(Layer):
    """Identity that counts forward passes since ``reset_stats`` (like a layer's statistics)."""

    def __init__(self) -> None:
        super().__init__()
        self.passes = 0

    def forward(self, x):
        self.passes += 1
        return x

    def backward(self, dout):
        return dout

    def reset_stats(self) -> None:
        self.passes = 0


def nest(model: Sequential) -> Sequential:
    """``make_run``'s model with its layers grouped two levels deep (same layer objects)."""
    conv, relu, jitter, flatten, dropout, dense = model.layers
    return Sequential(
        conv,
        Sequential(relu, Sequential(jitter, CountingLayer())),
        Sequential(flatten, dropout),
        dense,
    )


@pytest.mark.parametrize("shards", [1, 2])
def test_nested_model_trains_and_resumes_exactly_like_the_flat_one(tmp_path, shards):
    kw = dict(epochs=2, batch_size=BATCH, seed=7, shards=shards)
    flat, opt = make_run(seed=0, jitter=0.05)
    full = fit(flat, opt, TRAIN, TEST, **kw)

    def nested_run(seed):
        model, _ = make_run(seed=seed, jitter=0.05)
        nested = nest(model)
        hooks = [NoisyGrad(1e-3, np.random.default_rng(np.random.SeedSequence(seed).spawn(5)[4]))]
        return nested, SGD(nested.parameters(), lr=0.2, momentum=0.9, grad_hooks=hooks)

    nested, opt_n = nested_run(0)
    assert len(generators_of(nested, opt_n)) == len(generators_of(flat, opt)) == 3
    history = fit(nested, opt_n, TRAIN, TEST, **kw)
    assert without_timing(history) == without_timing(full)
    for a, b in zip(flat.parameters(), nested.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    counter = nested[1][1][1]
    assert counter.passes == 1  # reset before the last evaluation (16 test images, one batch)

    # crash and resume into a differently seeded nested model: every generator is restored
    crashed, opt_c = nested_run(0)
    fit(crashed, opt_c, TRAIN, TEST, checkpoint_dir=tmp_path, callbacks=[stop_after(9)], **kw)
    resumed, opt_r = nested_run(99)
    fit(resumed, opt_r, TRAIN, TEST, checkpoint_dir=tmp_path, resume=True, **kw)
    for a, b in zip(flat.parameters(), resumed.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_eval_every_evaluates_every_kth_epoch_and_the_last_without_changing_training():
    kw = dict(epochs=5, batch_size=BATCH, seed=4)
    model, opt = make_run(jitter=0.3)
    every = fit(model, opt, TRAIN, TEST, **kw)
    model_b, opt_b = make_run(jitter=0.3)
    sparse = fit(model_b, opt_b, TRAIN, TEST, eval_every=2, **kw)
    assert_same_weights(weights(model), weights(model_b))
    assert every.steps == sparse.steps
    evaluated = [e.epoch for e in sparse.epochs if e.test_loss is not None]
    assert evaluated == [2, 4, 5]  # every 2nd epoch, and always the last
    for e_all, e_sparse in zip(every.epochs, sparse.epochs, strict=True):
        assert e_sparse.train_loss == e_all.train_loss
        if e_sparse.test_loss is not None:  # the same fixed evaluation seed: the same figures
            assert (e_sparse.test_loss, e_sparse.test_accuracy) == (
                e_all.test_loss,
                e_all.test_accuracy,
            )
        else:
            assert e_sparse.test_accuracy is None
    with pytest.raises(ValueError, match="eval_every"):
        fit(model, opt, TRAIN, TEST, epochs=1, eval_every=0)
