"""Fashion-MNIST (Zalando Research): the MNIST file format with clothing images.

Same four IDX files and names as MNIST (``train-images-idx3-ubyte.gz``, ...; 60,000 / 10,000
images of 28 x 28 uint8, labels 0..9), so the checks of :mod:`qcnn.data.mnist` apply. Where the
data comes from, in order:

1. a directory the user names: the ``data_dir`` argument, else the environment variable
   ``QCNN_FASHION_MNIST_DIR``. It is the only place looked at and must hold the four files
   (canonical ``.gz`` names checked by md5, raw IDX by header and size), or loading stops with
   an error naming it. Without one, the user cache (``$XDG_CACHE_HOME/qcnn/fashion-mnist``, else
   ``~/.cache/qcnn/fashion-mnist``); a directory holding some but not all four is an error, a bad
   file is an error naming it;
2. (only without a named directory) a download from the public mirrors (all four files from one
   mirror, md5-verified in memory before anything is written; each then written atomically into
   the cache, or used from memory if the cache cannot be written), given up after
   ``DOWNLOAD_DEADLINE_S`` in total.

Finding, checking, downloading and decoding the files is :mod:`qcnn.data.idx_dataset`, shared
with MNIST.

There is no offline fallback: without the files and without a network, loading fails with a
``FileNotFoundError`` that says where to put which files.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import numpy as np

from qcnn.data import idx_dataset
from qcnn.data.download import require_dir
from qcnn.data.idx_dataset import IDXSource
from qcnn.data.mnist import default_cache_dir
from qcnn.data.splits import RawSplits

__all__ = [
    "ENV_FASHION_DIR",
    "FASHION_MNIST_MD5",
    "FASHION_MNIST_MIRRORS",
    "CLASS_NAMES",
    "fashion_cache_dir",
    "load_fashion_mnist",
]

ENV_FASHION_DIR = "QCNN_FASHION_MNIST_DIR"

# md5 of the four files as published by Zalando Research (the fashion-mnist README; the same
# values are in torchvision's FashionMNIST.resources).
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

DOWNLOAD_TIMEOUT_S = 10.0  # connect and each read
DOWNLOAD_DEADLINE_S = 60.0  # the whole download (four files of up to 26 MB, every mirror)
_MAX_DOWNLOAD_BYTES = 32 * 2**20  # the largest file is about 26 MB
_N_EXAMPLES = {"train": 60_000, "test": 10_000}

# The URL-opening function; tests replace it to exercise the download path without a network.
_urlopen = urllib.request.urlopen


def fashion_cache_dir() -> Path:
    """``<user cache>/qcnn/fashion-mnist`` (next to MNIST's ``<user cache>/qcnn/mnist``)."""
    return default_cache_dir().parent / "fashion-mnist"


def _search_dirs(data_dir: str | os.PathLike | None) -> list[tuple[str, Path]]:
    """The named directory alone (``data_dir``, else ``$QCNN_FASHION_MNIST_DIR``), or the cache."""
    if data_dir is not None:
        return [("data_dir", Path(data_dir).expanduser())]
    env = os.environ.get(ENV_FASHION_DIR, "")
    if env:
        return [(f"${ENV_FASHION_DIR}", Path(env).expanduser())]
    return [("cache", fashion_cache_dir())]


def _source() -> IDXSource:
    """Fashion-MNIST as the shared IDX loader sees it, from this module's settings (read at
    call time, so that they can be changed, e.g. by tests)."""
    return IDXSource(
        title="Fashion-MNIST",
        md5=FASHION_MNIST_MD5,
        mirrors=FASHION_MNIST_MIRRORS,
        n_examples=_N_EXAMPLES,
        label_word="class",
        md5_advice="Delete it.",
        urlopen=_urlopen,
        read_timeout=DOWNLOAD_TIMEOUT_S,
        max_bytes=_MAX_DOWNLOAD_BYTES,
    )


def _splits(arrays: dict[tuple[str, str], np.ndarray], source: str) -> RawSplits:
    return RawSplits(
        train_images=arrays["train", "images"][:, None],
        train_labels=arrays["train", "labels"],
        test_images=arrays["test", "images"][:, None],
        test_labels=arrays["test", "labels"],
        source=source,
        name="fashion-mnist",
    )


def _load_dir(directory: Path, origin: str) -> RawSplits | None:
    """Fashion-MNIST from ``directory`` (:func:`qcnn.data.idx_dataset.load_dir`), or None."""
    arrays = idx_dataset.load_dir(_source(), directory, origin)
    return None if arrays is None else _splits(arrays, f"fashion-mnist-idx:{directory}")


def _download(cache_dir: Path, errors: list[str]) -> RawSplits | None:
    """Fashion-MNIST downloaded into ``cache_dir`` (:func:`qcnn.data.idx_dataset.download`:
    verified before anything is written; an unwritable cache is survived), or None."""
    got = idx_dataset.download(_source(), cache_dir, errors, DOWNLOAD_DEADLINE_S)
    return None if got is None else _splits(got[0], f"download:{got[1]}")


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None, download: bool = True
) -> RawSplits:
    """Fashion-MNIST as uint8 ``(60000, 1, 28, 28)`` / ``(10000, 1, 28, 28)`` and int64 labels.

    Raises:
        IDXError: a file that is present is corrupt (the message names it).
        FileNotFoundError: no directory holds the files and the download failed or was not
            allowed (the message says so, and where to put the files).
    """
    dirs = _search_dirs(data_dir)
    origin, d = dirs[0]
    if origin != "cache":
        what = "--data-dir (data_dir)" if origin == "data_dir" else origin
        names = ", ".join(FASHION_MNIST_MD5)
        return require_dir(d, what, lambda p: _load_dir(p, origin), f"{names}, or raw IDX")
    splits = _load_dir(d, origin)
    if splits is not None:
        return splits
    errors: list[str] = []
    if download:
        splits = _download(fashion_cache_dir(), errors)
        if splits is not None:
            return splits
        errors.insert(0, "Download failed from every mirror (is this machine offline?):")
    else:
        errors.append("Download was not allowed.")
    lines = [
        "Fashion-MNIST is not available: it cannot be fetched and no local copy was found "
        "(there is no offline fallback). Searched, in order:",
        *[f"  - {d}  ({origin})" for origin, d in dirs],
        f"Put these four files (from {FASHION_MNIST_MIRRORS[0]}) into one of them, e.g. the "
        f"folder named by ${ENV_FASHION_DIR} or --data-dir:",
        *[f"  {name}" for name in FASHION_MNIST_MD5],
        *errors,
    ]
    raise FileNotFoundError("\n".join(lines))
