"""A user's data set in one ``.npz`` file, validated with clear errors.

Required arrays: ``x_train``, ``y_train``, ``x_test``, ``y_test``.

- ``x_*``: ``(N, H, W)`` (one channel) or ``(N, H, W, C)`` (channels last, as Keras/TensorFlow
  files store images); a file storing channels first says so with a string entry
  ``layout = "NCHW"`` (``np.savez(..., layout="NCHW")``). Any H, W, C; uint8 (pixels 0..255)
  or floating point (finite values, taken as they are); train and test images of one shape.
- ``y_*``: 1-D integer labels ``0..K-1``, as many as images; ``K >= 2`` is the number of
  classes (the largest label + 1).

The file is read with ``allow_pickle=False`` (an object array is an error, never unpickled).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from qcnn.data.splits import RawSplits

__all__ = ["REQUIRED_ARRAYS", "load_npz_dataset"]

REQUIRED_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
LAYOUTS = ("NHWC", "NCHW")


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        # allow_pickle=False turns object arrays into a ValueError too: never unpickle here.
        raise ValueError(f"cannot read {os.fspath(path)!r} as a numpy .npz file: {exc}") from exc


def _images(x: np.ndarray, name: str, layout: str, where: str) -> np.ndarray:
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{where}: {name} has dtype {x.dtype}; expected uint8 or floating point")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        x = np.moveaxis(x, 3, 1) if layout == "NHWC" else x
    else:
        raise ValueError(
            f"{where}: {name} has shape {x.shape}; expected (N, H, W) or (N, H, W, C) "
            f"(or (N, C, H, W) with layout='NCHW')"
        )
    if x.shape[0] == 0 or min(x.shape[1:]) == 0:
        raise ValueError(f"{where}: {name} is empty (shape {x.shape})")
    if x.dtype != np.uint8 and not np.all(np.isfinite(x)):
        raise ValueError(f"{where}: {name} holds NaN or infinite values")
    return np.ascontiguousarray(x)


def _labels(y: np.ndarray, name: str, n: int, where: str) -> np.ndarray:
    if y.ndim != 1:
        raise ValueError(f"{where}: {name} has shape {y.shape}; expected 1-D labels (N,)")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{where}: {name} has dtype {y.dtype}; expected integer class labels")
    if len(y) != n:
        raise ValueError(f"{where}: {name} has {len(y)} labels for {n} images")
    if len(y) and y.min() < 0:
        raise ValueError(f"{where}: {name} holds negative labels ({int(y.min())})")
    return y.astype(np.int64)


def load_npz_dataset(path: str | os.PathLike) -> RawSplits:
    """Load and validate ``path``; images come back as ``(N, C, H, W)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ``.npz``, missing or malformed arrays (the message names them).
    """
    path = Path(path)
    where = os.fspath(path)
    if not path.is_file():
        raise FileNotFoundError(f"npz data set {where!r} does not exist")
    arrays = _read(path)
    missing = [k for k in REQUIRED_ARRAYS if k not in arrays]
    if missing:
        raise ValueError(
            f"{where}: missing arrays {missing}; an npz data set needs {list(REQUIRED_ARRAYS)} "
            f"(found {sorted(arrays)})"
        )
    layout = "NHWC"
    if "layout" in arrays:
        layout = str(arrays["layout"])
        if layout not in LAYOUTS:
            raise ValueError(f"{where}: layout must be one of {LAYOUTS}, got {layout!r}")
    x_train = _images(arrays["x_train"], "x_train", layout, where)
    x_test = _images(arrays["x_test"], "x_test", layout, where)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{where}: x_train images {x_train.shape[1:]} and x_test images {x_test.shape[1:]} "
            "(C, H, W) differ"
        )
    if x_train.dtype != x_test.dtype:
        raise ValueError(f"{where}: x_train is {x_train.dtype} but x_test is {x_test.dtype}")
    y_train = _labels(arrays["y_train"], "y_train", len(x_train), where)
    y_test = _labels(arrays["y_test"], "y_test", len(x_test), where)
    classes = int(max(y_train.max(), y_test.max(initial=0))) + 1
    if classes < 2:
        raise ValueError(f"{where}: the labels name only {classes} class; need at least 2")
    return RawSplits(x_train, y_train, x_test, y_test, source=f"npz:{where}", name="npz")
