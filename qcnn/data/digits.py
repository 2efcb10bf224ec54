"""scikit-learn's bundled 8 x 8 handwritten digits (UCI optdigits test set, 1,797 images).

Offline (the data ship inside scikit-learn). Pixels are integers 0..16. The natural input size
of the circuit executor: an 8 x 8 image needs 6 qubits, no downsampling.

Split rule (deterministic, stratified): within each digit, in file order, the first
``floor(4/5 * count)`` images go to train and the rest to test (1,433 / 364 images); each split
keeps file order.
"""

from __future__ import annotations

import numpy as np

from qcnn.data.splits import RawSplits

__all__ = ["load_digits_splits", "split_by_class"]

TRAIN_FRACTION = (4, 5)


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


def load_digits_splits() -> RawSplits:
    """The 8 x 8 digits as ``(N, 1, 8, 8)`` uint8 (0..16) and int64 labels, split as above."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise FileNotFoundError(
            "the 'digits' data set ships with scikit-learn, which is not installed "
            "(pip install scikit-learn)"
        ) from exc
    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[:, None]  # values 0..16, exact in uint8
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = split_by_class(labels)
    import sklearn

    return RawSplits(
        train_images=images[train_idx],
        train_labels=labels[train_idx],
        test_images=images[test_idx],
        test_labels=labels[test_idx],
        source=f"scikit-learn {sklearn.__version__} load_digits",
        name="digits",
    )
