"""One loader for the data sets published as four IDX files (MNIST, Fashion-MNIST).

Both ship ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (28 x 28 uint8 images, labels
0..9); what differs is declared in an :class:`IDXSource` (published md5s, mirrors, sizes, the
words of the messages). This module does the rest once for both:

- the accepted names of each file in a directory (the md5-checked ``.gz`` first, then raw IDX as
  ``train-images-idx3-ubyte`` or ``train-images.idx3-ubyte``), checked by md5 or by header and
  size (:func:`load_dir`); a directory with some but not all four files is an error unless it is
  the cache, which the download completes;
- the download (:func:`download`): all four files from one mirror, verified in memory before
  anything is written, then each written atomically into the cache; a cache that cannot be
  written (read-only, full) does not stop the run: the verified data is used from memory, with
  a warning.

The dataset modules (:mod:`qcnn.data.mnist`, :mod:`qcnn.data.fashion_mnist`) build their source
at call time from their module settings, assemble the arrays into their container and decide
what happens when nothing is found (MNIST's offline subset; Fashion-MNIST has none).
"""

from __future__ import annotations

import hashlib
import http.client
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.data.download import DeadlinePassed, fetch, run_with_deadline
from qcnn.data.idx import MAGIC_IMAGES, MAGIC_LABELS, IDXError, parse_idx
from qcnn.io import atomic_write_bytes

__all__ = [
    "SPLITS",
    "IMAGE_SHAPE",
    "IDXSource",
    "all_files",
    "candidate_names",
    "find_files",
    "decode",
    "load_dir",
    "download",
    "loud",
]

SPLITS = ("train", "test")
IMAGE_SHAPE = (28, 28)
_PREFIX = {"train": "train", "test": "t10k"}

# Arrays by (split, kind): kind "images" uint8 (N, 28, 28), "labels" int64 (N,).
Arrays = dict[tuple[str, str], np.ndarray]


@dataclass(frozen=True)
class IDXSource:
    """What one IDX data set declares; the rest is this module's.

    ``title`` names it in messages ("MNIST"); ``md5`` maps the canonical ``.gz`` names to their
    published digests; ``n_examples`` the images per split; ``label_word`` what a label is
    ("digit", "class"); ``md5_advice`` the sentence after an md5 mismatch; ``urlopen``,
    ``read_timeout`` (connect and each read, s) and ``max_bytes`` (per file) drive the download.
    """

    title: str
    md5: Mapping[str, str]
    mirrors: tuple[str, ...]
    n_examples: Mapping[str, int]
    label_word: str
    md5_advice: str
    urlopen: Callable[..., Any]
    read_timeout: float
    max_bytes: int


def all_files() -> list[tuple[str, str, str]]:
    """``(split, kind, stem)`` for the four files, e.g. ``('train', 'images',
    'train-images-idx3-ubyte')``."""
    return [
        (split, kind, f"{_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte")
        for split in SPLITS
        for kind in ("images", "labels")
    ]


def candidate_names(stem: str) -> tuple[str, str, str]:
    """Accepted file names for one file, in order of preference (md5-checked gz first)."""
    # 'train-images-idx3-ubyte' -> dotted variant 'train-images.idx3-ubyte' (as in some mirrors).
    head, _, tail = stem.rpartition("-idx")
    return (f"{stem}.gz", stem, f"{head}.idx{tail}")


def find_files(directory: Path) -> dict[tuple[str, str], Path]:
    """The data set's files present in ``directory``, keyed by ``(split, kind)``."""
    found = {}
    for split, kind, stem in all_files():
        for cand in candidate_names(stem):
            path = directory / cand
            if path.exists():
                found[split, kind] = path
                break
    return found


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def decode(
    source: IDXSource, data: bytes, name: str, file_name: str, split: str, kind: str
) -> np.ndarray:
    """Verify and decode one file's bytes; ``name`` (path or URL) is used in messages.

    ``file_name`` decides the check: a canonical ``.gz`` name is checked by md5, then every file
    by magic number, header and size (:func:`qcnn.data.idx.parse_idx`).
    """
    if file_name in source.md5:
        digest = _md5(data)
        if digest != source.md5[file_name]:
            raise IDXError(
                f"{name}: md5 {digest} != published {source.md5[file_name]}. The file is corrupt "
                f"or not the original {source.title} file. {source.md5_advice}"
            )
    n = source.n_examples[split]
    if kind == "images":
        return parse_idx(data, name, expected_magic=MAGIC_IMAGES, expected_shape=(n, *IMAGE_SHAPE))
    labels = parse_idx(data, name, expected_magic=MAGIC_LABELS, expected_shape=(n,))
    if labels.size and labels.max() > 9:
        raise IDXError(f"{name}: label {int(labels.max())} is not a {source.label_word} 0..9")
    return labels.astype(np.int64)


def load_dir(source: IDXSource, directory: Path, origin: str) -> Arrays | None:
    """The four arrays from ``directory``; None if it holds none of the files, or is the cache
    (``origin == "cache"``) with an incomplete set (only ever written by us, with verified files:
    the download completes it).

    Raises:
        IDXError: a file is present but bad (the message names it).
        FileNotFoundError: a directory the user named holds some but not all four files.
    """
    found = find_files(directory)
    if not found:
        return None
    if len(found) < 4:
        if origin == "cache":
            return None
        missing = [stem for split, kind, stem in all_files() if (split, kind) not in found]
        raise FileNotFoundError(
            f"{directory} (from {origin}) holds some {source.title} files but not "
            f"{', '.join(missing)} (as .gz or raw IDX). Put all four files there, or remove the "
            "partial set."
        )
    return {
        key: decode(source, path.read_bytes(), str(path), path.name, *key)
        for key, path in found.items()
    }


def _download_mirrors(
    source: IDXSource,
    cache_dir: Path,
    deadline: float,
    cancel: threading.Event,
    errors: list[str],
) -> tuple[Arrays, str] | None:
    """``(arrays, mirror)`` from the first mirror that serves all four gz files with the right
    md5; failures are appended to ``errors``. Nothing is written until all four are verified."""
    for base in source.mirrors:
        blobs: dict[str, bytes] = {}
        arrays: Arrays = {}
        try:
            for split, kind, stem in all_files():
                file_name = f"{stem}.gz"
                url = base + file_name
                data = fetch(
                    url,
                    source.urlopen,
                    deadline=deadline,
                    cancel=cancel,
                    read_timeout=source.read_timeout,
                    max_bytes=source.max_bytes,
                )
                # Decode now: md5 plus a full parse, so nothing unverified reaches the cache.
                arrays[split, kind] = decode(source, data, url, file_name, split, kind)
                blobs[file_name] = data
        except DeadlinePassed as exc:
            errors.append(f"{base}: {exc}")
            return None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            # OSError covers URLError, HTTPError and timeouts; ValueError covers IDXError.
            errors.append(f"{base}: {type(exc).__name__}: {exc}")
            continue
        if cancel.is_set():
            return None
        try:
            for file_name, data in blobs.items():
                atomic_write_bytes(cache_dir / file_name, data)
        except OSError as exc:
            # The data is verified and in memory; an unwritable cache should not stop the run.
            loud(
                f"qcnn: could not write {source.title} into the cache {cache_dir} ({exc}); "
                "using it from memory this time.",
                UserWarning,
            )
        return arrays, base
    return None


def download(
    source: IDXSource, cache_dir: Path, errors: list[str], deadline_s: float
) -> tuple[Arrays, str] | None:
    """The four arrays and the mirror they came from, downloaded under a total deadline of
    ``deadline_s`` seconds (every mirror, connect and transfer;
    :func:`qcnn.data.download.run_with_deadline`), or None with the reasons in ``errors``."""

    def work(
        deadline: float, cancel: threading.Event, errs: list[str]
    ) -> tuple[Arrays, str] | None:
        return _download_mirrors(source, cache_dir, deadline, cancel, errs)

    return run_with_deadline(work, deadline_s, errors)


def loud(message: str, category: type[Warning]) -> None:
    """Warn and also print to stderr: warnings can be filtered or shown once, stderr cannot."""
    warnings.warn(message, category, stacklevel=3)
    print(message, file=sys.stderr, flush=True)
