"""scikit-learn's bundled 8 x 8 handwritten digits (UCI optdigits test set, 1,797 images).

Offline: the data ship inside scikit-learn as ``sklearn/datasets/data/digits.csv.gz`` (one image
per row: 64 pixel values 0..16, row-major 8 x 8, then the label), which is read directly, as
``sklearn.datasets.load_digits`` reads it, without importing scikit-learn (whose import takes
seconds). The natural input size of the circuit executor: an 8 x 8 image needs 6 qubits, no
downsampling.

Split rule (deterministic, stratified): within each digit, in file order, the first
``floor(4/5 * count)`` images go to train and the rest to test (1,433 / 364 images); each split
keeps file order.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
from pathlib import Path

import numpy as np

from qcnn.data.splits import RawSplits

__all__ = ["digits_csv_path", "load_digits_splits", "split_by_class"]

TRAIN_FRACTION = (4, 5)
N_IMAGES = 1797


def split_by_class(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: the first 4/5 (rounded down) of each class in order; sorted."""
    labels = np.asarray(labels)
    train = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        train.append(idx[: len(idx) * TRAIN_FRACTION[0] // TRAIN_FRACTION[1]])
    train_idx = np.sort(np.concatenate(train))
    test_idx = np.setdiff1d(np.arange(len(labels)), train_idx)
    return train_idx, test_idx


def digits_csv_path() -> Path:
    """``sklearn/datasets/data/digits.csv.gz`` (located without importing scikit-learn)."""
    spec = importlib.util.find_spec("sklearn")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc, "datasets", "data", "digits.csv.gz")
        if path.is_file():
            return path
    raise FileNotFoundError(
        "the 'digits' data set ships with scikit-learn (sklearn/datasets/data/digits.csv.gz), "
        "which is not installed: pip install scikit-learn"
    )


def load_digits_splits() -> RawSplits:
    """The 8 x 8 digits as ``(N, 1, 8, 8)`` uint8 (0..16) and int64 labels, split as above."""
    path = digits_csv_path()
    try:
        table = np.loadtxt(io.BytesIO(gzip.decompress(path.read_bytes())), delimiter=",", ndmin=2)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read scikit-learn's digits ({exc})") from exc
    if table.shape != (N_IMAGES, 65):
        raise ValueError(f"{path}: shape {table.shape}, expected ({N_IMAGES}, 65)")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 16 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: pixel values outside 0..16 or labels outside 0..9")
    images = pixels.astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = labels.astype(np.int64)
    train_idx, test_idx = split_by_class(labels)
    return RawSplits(
        train_images=images[train_idx],
        train_labels=labels[train_idx],
        test_images=images[test_idx],
        test_labels=labels[test_idx],
        source=f"scikit-learn digits:{path}",
        name="digits",
    )
