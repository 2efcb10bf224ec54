"""Checkpoints written before issue 18 still resume; ``fit`` takes a ``TrainConfig`` and callbacks.

``tests/fixtures/checkpoint_format1/checkpoint.npz`` was written by the ``fit`` of commit
57e2d47 (before the checkpoint format moved to ``qcnn.checkpoint`` and ``fit`` took a
``TrainConfig``), after 1 of 2 epochs of the run :func:`run` builds:

    fit(model, opt, data(40, 0), data(12, 1), epochs=1, batch_size=8, seed=5, log_every=2,
        checkpoint_dir=..., run_spec={"fixture": "checkpoint format 1", "epochs": 2})

Resuming it with today's code must give exactly the weights and history of an uninterrupted
two-epoch run of today's code (which the notebook regression test pins to the old numbers).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from qcnn.checkpoint import FORMAT, read_checkpoint_meta
from qcnn.nn import SGD, Conv2D, Dense, Dropout, Flatten, ReLU, Sequential
from qcnn.train import (
    CHECKPOINT_NAME,
    BatchEnd,
    Callback,
    EpochLog,
    RunMismatchError,
    TrainConfig,
    fit,
)

FIXTURE = Path(__file__).parent / "fixtures" / "checkpoint_format1" / CHECKPOINT_NAME
SPEC = {"fixture": "checkpoint format 1", "epochs": 2}
KW = dict(batch_size=8, seed=5, log_every=2, run_spec=SPEC)


def run():
    """The fixture's model (a dropout layer, so a generator state is restored too) and SGD."""
    r = [np.random.default_rng(s) for s in np.random.SeedSequence(11).spawn(3)]
    model = Sequential(
        Conv2D(1, 2, 2, rng=r[0]),
        ReLU(),
        Flatten(),
        Dropout(0.2, rng=r[1]),
        Dense(18, 2, rng=r[2]),
    )
    return model, SGD(model.parameters(), lr=0.2, momentum=0.9)


def data(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, 0.3, (n, 1, 4, 4)).astype(np.float32)
    x[y == 0, :, :2] += 1.0
    x[y == 1, :, 2:] += 1.0
    return x, y


TRAIN, TEST = data(40, 0), data(12, 1)


def without_timing(history):
    d = history.to_dict()
    for e in d["epochs"]:
        e.pop("seconds")
        e.pop("eval_seconds")
    return d


def test_a_checkpoint_written_before_issue_18_resumes_exactly(tmp_path):
    assert read_checkpoint_meta(FIXTURE)["format"] == FORMAT == 1
    model, opt = run()
    full = fit(model, opt, TRAIN, TEST, epochs=2, **KW)

    shutil.copy(FIXTURE, tmp_path / CHECKPOINT_NAME)
    resumed_model, resumed_opt = run()
    config = TrainConfig(epochs=2, checkpoint_dir=tmp_path, resume=True, **KW)
    resumed = fit(resumed_model, resumed_opt, TRAIN, TEST, config)

    assert without_timing(resumed) == without_timing(full)
    for (name, a), (_, b) in zip(
        model.named_parameters(), resumed_model.named_parameters(), strict=True
    ):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    # the first epoch was not trained again: its log is the old code's, read from the file
    assert (
        resumed.epochs[0].seconds
        == read_checkpoint_meta(FIXTURE)["history"]["epochs"][0]["seconds"]
    )


def test_the_fixture_is_refused_for_other_settings(tmp_path):
    shutil.copy(FIXTURE, tmp_path / CHECKPOINT_NAME)
    model, opt = run()
    with pytest.raises(RunMismatchError, match="batch_size: checkpoint 8, this run 4"):
        fit(
            model,
            opt,
            TRAIN,
            TEST,
            epochs=2,
            checkpoint_dir=tmp_path,
            resume=True,
            **{**KW, "batch_size": 4},
        )


def test_train_config_validates_and_keywords_override_it():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=-1)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        TrainConfig(resume=True)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 2.5"):
        TrainConfig(batch_size=2.5)  # type: ignore[arg-type]
    base = TrainConfig(epochs=3, seed=4)
    assert base.replace(seed=9) == TrainConfig(epochs=3, seed=9)
    model, opt = run()
    with pytest.raises(TypeError, match="fit: TrainConfig has no setting 'epoch'"):
        fit(model, opt, TRAIN, epoch=1)
    with pytest.raises(TypeError, match="fit: TrainConfig has no setting 'on_epoch_end'"):
        fit(model, opt, TRAIN, on_epoch_end=print)
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        fit(model, opt, TRAIN, None, {"epochs": 1})  # type: ignore[arg-type]

    # a config and the same settings as keywords train identically
    a_model, a_opt = run()
    b_model, b_opt = run()
    a = fit(a_model, a_opt, TRAIN, TEST, TrainConfig(epochs=1, **KW))
    b = fit(b_model, b_opt, TRAIN, TEST, TrainConfig(epochs=5, seed=0), epochs=1, **KW)
    assert without_timing(a) == without_timing(b)


class Recorder(Callback):
    def __init__(self, stop_at: int | None = None) -> None:
        self.events: list[tuple] = []
        self.stop_at = stop_at

    def on_epoch_begin(self, epoch, epochs, batches):
        self.events.append(("begin", epoch, epochs, batches))

    def on_batch_end(self, info: BatchEnd):
        self.events.append(("batch", info.epoch, info.batch))
        return self.stop_at is not None and info.batches_done == self.stop_at

    def on_epoch_end(self, log: EpochLog, model):
        self.events.append(("epoch", log.epoch, log.test_accuracy is not None))

    def on_train_end(self):
        self.events.append(("end",))


def test_one_callback_protocol_with_plain_functions_accepted():
    model, opt = run()
    rec = Recorder()
    seen = []
    fit(model, opt, TRAIN, TEST, epochs=2, callbacks=[rec, seen.append], **KW)
    batches = [("batch", e, b) for e in (1, 2) for b in range(1, 6)]
    assert rec.events == [
        ("begin", 1, 2, 5),
        *batches[:5],
        ("epoch", 1, True),
        ("begin", 2, 2, 5),
        *batches[5:],
        ("epoch", 2, True),
        ("end",),
    ]
    assert [(i.epoch, i.batch) for i in seen] == [(e, b) for _, e, b in batches]

    # a stop after batch 7 abandons epoch 2; every callback still saw the batch, and the end
    model, opt = run()
    stopper, other = Recorder(stop_at=7), Recorder()
    hist = fit(model, opt, TRAIN, TEST, epochs=2, callbacks=[stopper, other], **KW)
    assert len(hist.epochs) == 1
    assert stopper.events == other.events
    assert stopper.events[-2:] == [("batch", 2, 2), ("end",)]
    with pytest.raises(TypeError, match="a callback must be"):
        fit(model, opt, TRAIN, epochs=1, callbacks=[3])  # type: ignore[list-item]


def test_on_train_end_runs_when_fit_raises():
    model, opt = run()
    rec = Recorder()
    x = TRAIN[0].copy()
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError):
        fit(model, opt, (x, TRAIN[1]), epochs=1, callbacks=[rec], **KW)
    assert rec.events[-1] == ("end",)
