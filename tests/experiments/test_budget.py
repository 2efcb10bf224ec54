"""The commands' default training budget (qcnn.experiments.budget): the paper's SGD steps.

The paper trains 2 epochs of 60,000 images in batches of 64 = 2 x 938 = 1,876 steps (model §5).
"""

from __future__ import annotations

import math

import pytest

from qcnn.experiments.budget import (
    MAX_TEST_EVALUATIONS,
    eval_every,
    paper_steps,
    resolve_epochs,
)


def test_paper_steps_are_two_epochs_of_full_mnist():
    assert paper_steps(64) == 1876 == 2 * math.ceil(60_000 / 64)
    assert paper_steps(60_000) == 2 and paper_steps(100_000) == 2


def test_full_mnist_keeps_the_papers_two_epochs_at_any_batch_size():
    for batch in (1, 10, 32, 64, 100, 128, 1000, 60_000):
        b = resolve_epochs(None, 60_000, batch)
        assert (b.epochs, b.source) == (2, "paper"), batch
        assert b.steps == b.paper_steps == paper_steps(batch)


def test_the_offline_subset_trains_30_epochs_the_papers_steps():
    b = resolve_epochs(None, 4000, 64)
    assert b.steps_per_epoch == 63 and b.epochs == 30 and b.steps == 1890
    assert b.source == "scaled" and b.paper_steps == 1876
    for word in ("4,000", "30 epochs", "1,876", "126", "--epochs"):
        assert word in b.reason
    assert b.to_dict()["epochs"] == 30


@pytest.mark.parametrize("train_size", [1, 7, 64, 65, 300, 4000, 6000, 31_000, 59_999])
@pytest.mark.parametrize("batch", [1, 20, 64, 500])
def test_a_smaller_set_gets_the_fewest_epochs_that_reach_the_papers_steps(train_size, batch):
    b = resolve_epochs(None, train_size, batch)
    per_epoch = math.ceil(train_size / batch)
    assert b.steps_per_epoch == per_epoch and b.steps == b.epochs * per_epoch
    assert b.epochs >= 2
    if b.epochs > 2:
        assert b.steps >= b.paper_steps > b.steps - per_epoch  # reached, and one epoch fewer not


def test_explicit_epochs_always_win():
    for n, batch in ((4000, 64), (60_000, 64), (300, 20_000)):
        for e in (0, 1, 2, 5, 100):
            b = resolve_epochs(e, n, batch)
            assert (b.epochs, b.source) == (e, "explicit")
            assert b.reason.startswith(f"--epochs {e}")


@pytest.mark.parametrize("args", [(-1, 4000, 64), (None, 0, 64), (None, 4000, 0)])
def test_bad_values_are_errors(args):
    with pytest.raises(ValueError):
        resolve_epochs(*args)


def test_eval_every_caps_the_number_of_test_evaluations():
    for epochs in range(0, 400):
        k = eval_every(epochs)
        evaluations = len([e for e in range(1, epochs + 1) if e % k == 0 or e == epochs])
        assert evaluations <= MAX_TEST_EVALUATIONS + 1
        if epochs <= MAX_TEST_EVALUATIONS:
            assert k == 1  # short runs (the paper's 2 epochs) evaluate after every epoch
