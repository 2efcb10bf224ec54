"""``RawSplits``: a data set's train and test images as stored (before normalisation).

The one raw container: every loader (MNIST with its offline subset, Fashion-MNIST, the digits, a
user's ``.npz``) returns it, and :func:`qcnn.data.load_dataset` normalises it into a
:class:`~qcnn.data.registry.Dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RawSplits"]


@dataclass(frozen=True, eq=False)
class RawSplits:
    """Images and labels of a train and a test split, and where they came from.

    Attributes:
        train_images: ``(N_train, C, H, W)``, the stored pixel values (uint8 0..255, the digits'
            0..16, or floats from an ``.npz``).
        train_labels: int64 ``(N_train,)``, classes ``0..K-1``.
        test_images: ``(N_test, C, H, W)``.
        test_labels: int64 ``(N_test,)``.
        source: where the arrays came from (a directory, a URL, a file, a package).
        name: the data set's name as recorded in results (e.g. ``"mnist"``, ``"mnist-5k-subset"``).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    name: str

    def __post_init__(self) -> None:
        for split, images, labels in (
            ("train", self.train_images, self.train_labels),
            ("test", self.test_images, self.test_labels),
        ):
            if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
                raise ValueError(
                    f"{self.name} {split}: images {images.shape} (expected (N, C, H, W)) and "
                    f"labels {labels.shape} do not match"
                )
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(
                f"{self.name}: train images {self.train_images.shape[1:]} and test images "
                f"{self.test_images.shape[1:]} differ in shape"
            )

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images (N, C, H, W), labels (N,))`` of ``'train'`` or ``'test'``."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if split == "train":
            return self.train_images, self.train_labels
        return self.test_images, self.test_labels

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.train_images.shape[1:]
        return int(c), int(h), int(w)
