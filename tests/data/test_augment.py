"""Data augmentation by random shifts (= random crops of the padded image): exact against index
loops, seeded, every shift in range drawn, background entering at the border; in ``fit`` off by
default (no generator drawn), deterministic, and resumed exactly."""

from __future__ import annotations

import os

import numpy as np
import pytest

from qcnn.data.augment import random_shifts, shift_images
from qcnn.train import CHECKPOINT_NAME, fit
from tests.conftest import stop_after
from tests.test_train import TEST, TRAIN, assert_same_weights, make_run, weights


def shift_loop(img, dy, dx, fill):
    """out[i, j] = img[i - dy, j - dx] where that is inside, else fill (2-D)."""
    h, w = img.shape
    out = np.full_like(img, fill)
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[i, j] = img[i - dy, j - dx]
    return out


@pytest.mark.parametrize("dy, dx", [(0, 0), (1, 0), (0, -2), (3, -1), (-3, 3)])
def test_shift_images_is_the_index_shift(dy, dx):
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 6))
    out = shift_images(x, dy, dx)
    assert out.shape == x.shape and out.dtype == x.dtype
    for n in range(2):
        for c in range(3):
            ref = shift_loop(x[n, c], dy, dx, x[n, c].min())
            np.testing.assert_array_equal(out[n, c], ref)
    np.testing.assert_array_equal(
        shift_images(x, dy, dx, fill=0.5)[0, 0], shift_loop(x[0, 0], dy, dx, 0.5)
    )


def test_random_shifts_are_seeded_shifts_in_range():
    x = np.random.default_rng(2).standard_normal((400, 1, 6, 6))
    out = random_shifts(x, 2, np.random.default_rng(3))
    again = random_shifts(x, 2, np.random.default_rng(3))
    np.testing.assert_array_equal(out, again)
    seen = set()
    for n in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(out[n, 0], shift_loop(x[n, 0], dy, dx, x[n, 0].min()))
        ]
        assert len(matches) == 1  # each image is exactly one shift of itself
        seen.add(matches[0])
    assert len(seen) == 25  # all (2 * 2 + 1)^2 shifts occur
    assert random_shifts(x, 0, np.random.default_rng(3)) is x
    with pytest.raises(ValueError, match="out of view"):
        random_shifts(x, 6, np.random.default_rng(0))
    with pytest.raises(ValueError, match="max_shift"):
        random_shifts(x, -1, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        random_shifts(x, 1, 3)
    with pytest.raises(ValueError, match="fill"):
        shift_images(x, 1, 1, fill="max")


def test_fit_augment_changes_training_deterministically_and_off_is_the_default():
    kw = dict(epochs=2, batch_size=8, seed=7, log_every=2)
    a, opt_a = make_run(seed=0)
    fit(a, opt_a, TRAIN, TEST, **kw)
    b, opt_b = make_run(seed=0)
    fit(b, opt_b, TRAIN, TEST, augment=0, **kw)
    assert_same_weights(weights(a), weights(b))  # augment=0 is the default, bit for bit
    c, opt_c = make_run(seed=0)
    fit(c, opt_c, TRAIN, TEST, augment=1, **kw)
    d, opt_d = make_run(seed=0)
    fit(d, opt_d, TRAIN, TEST, augment=1, **kw)
    assert_same_weights(weights(c), weights(d))  # seeded
    assert not np.array_equal(weights(a)["5.weight"], weights(c)["5.weight"])
    with pytest.raises(ValueError, match="augment"):
        fit(c, opt_c, TRAIN, TEST, augment=-1, **kw)


def test_fit_augment_resumes_exactly(tmp_path):
    kw = dict(epochs=3, batch_size=8, seed=7, log_every=2, augment=1)
    model, opt = make_run(seed=0)
    fit(model, opt, TRAIN, TEST, checkpoint_dir=tmp_path / "a", **kw)
    model_b, opt_b = make_run(seed=0)
    fit(model_b, opt_b, TRAIN, TEST, checkpoint_dir=tmp_path / "b", callbacks=[stop_after(9)], **kw)
    assert os.listdir(tmp_path / "b") == [CHECKPOINT_NAME]
    model_c, opt_c = make_run(seed=5)
    fit(model_c, opt_c, TRAIN, TEST, checkpoint_dir=tmp_path / "b", resume=True, **kw)
    assert_same_weights(weights(model_c), weights(model))
