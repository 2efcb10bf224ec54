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
   the cache), given up after ``DOWNLOAD_DEADLINE_S`` in total.

There is no offline fallback: without the files and without a network, loading fails with a
``FileNotFoundError`` that says where to put which files.
"""

from __future__ import annotations

import http.client
import os
import threading
import urllib.request
from pathlib import Path

import numpy as np

from qcnn.data.download import DeadlinePassed, fetch, require_dir, run_with_deadline
from qcnn.data.idx import MAGIC_IMAGES, MAGIC_LABELS, IDXError, parse_idx
from qcnn.data.mnist import _all_files, _candidate_names, _md5, default_cache_dir
from qcnn.data.splits import RawSplits
from qcnn.io import atomic_write_bytes

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
IMAGE_SHAPE = (28, 28)

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


def _decode(data: bytes, name: str, file_name: str, split: str, kind: str) -> np.ndarray:
    """Verify (md5 for the canonical gz names) and parse one file; ``name`` is for messages."""
    if file_name in FASHION_MNIST_MD5:
        digest = _md5(data)
        if digest != FASHION_MNIST_MD5[file_name]:
            raise IDXError(
                f"{name}: md5 {digest} != published {FASHION_MNIST_MD5[file_name]}; the file is "
                "corrupt or not the original Fashion-MNIST file. Delete it."
            )
    n = _N_EXAMPLES[split]
    if kind == "images":
        return parse_idx(data, name, expected_magic=MAGIC_IMAGES, expected_shape=(n, *IMAGE_SHAPE))
    labels = parse_idx(data, name, expected_magic=MAGIC_LABELS, expected_shape=(n,))
    if labels.size and labels.max() > 9:
        raise IDXError(f"{name}: label {int(labels.max())} is not a class 0..9")
    return labels.astype(np.int64)


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
    found = {}
    for split, kind, stem in _all_files():
        for cand in _candidate_names(stem):
            if (directory / cand).exists():
                found[split, kind] = directory / cand
                break
    if not found or (len(found) < 4 and origin == "cache"):
        return None  # an incomplete cache is only ever ours: the download completes it
    if len(found) < 4:
        missing = [stem for split, kind, stem in _all_files() if (split, kind) not in found]
        raise FileNotFoundError(
            f"{directory} (from {origin}) holds some Fashion-MNIST files but not "
            f"{', '.join(missing)} (as .gz or raw IDX). Put all four files there."
        )
    arrays = {key: _decode(p.read_bytes(), str(p), p.name, *key) for key, p in found.items()}
    return _splits(arrays, f"fashion-mnist-idx:{directory}")


def _download_mirrors(
    cache_dir: Path, deadline: float, cancel: threading.Event, errors: list[str]
) -> RawSplits | None:
    for base in FASHION_MNIST_MIRRORS:
        blobs, arrays = {}, {}
        try:
            for split, kind, stem in _all_files():
                file_name = f"{stem}.gz"
                data = fetch(
                    base + file_name,
                    _urlopen,
                    deadline=deadline,
                    cancel=cancel,
                    read_timeout=DOWNLOAD_TIMEOUT_S,
                    max_bytes=_MAX_DOWNLOAD_BYTES,
                )
                arrays[split, kind] = _decode(data, base + file_name, file_name, split, kind)
                blobs[file_name] = data
        except DeadlinePassed as exc:
            errors.append(f"{base}: {exc}")
            return None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            errors.append(f"{base}: {type(exc).__name__}: {exc}")
            continue
        if cancel.is_set():
            return None
        for file_name, data in blobs.items():  # all four verified: now write them
            atomic_write_bytes(cache_dir / file_name, data)
        return _splits(arrays, f"download:{base}")
    return None


def _download(cache_dir: Path, errors: list[str]) -> RawSplits | None:
    def work(deadline: float, cancel: threading.Event, errs: list[str]) -> RawSplits | None:
        return _download_mirrors(cache_dir, deadline, cancel, errs)

    return run_with_deadline(work, DOWNLOAD_DEADLINE_S, errors)


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
