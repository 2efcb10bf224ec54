"""Data augmentation by small translations: shifted images and seeded random crops.

A random crop of ``H x W`` from the image padded by ``m`` pixels on every side *is* a random
shift by ``(dy, dx)`` in ``[-m, m]^2``; both are :func:`random_shifts`. The pixels that enter at
the border take ``fill``: ``'min'`` (default) each image's smallest value per channel, which is
the background of a normalised MNIST digit, or a number. Training with ``fit(..., augment=m)``
shifts every training batch (never the test set) with a generator of its own per epoch.
"""

from __future__ import annotations

import numpy as np

from qcnn.checks import check_int

__all__ = ["shift_images", "random_shifts"]

Fill = float | str


def _fill_values(x: np.ndarray, fill: Fill) -> np.ndarray:
    """``(N, C, 1, 1)`` (``'min'``) or scalar fill values of ``x``'s dtype."""
    if isinstance(fill, str):
        if fill != "min":
            raise ValueError(f"fill must be 'min' or a number, got {fill!r}")
        return x.min(axis=(2, 3), keepdims=True)
    if not np.isfinite(fill):
        raise ValueError(f"fill must be finite, got {fill!r}")
    return np.asarray(fill, dtype=x.dtype)


def _check_images(x: np.ndarray) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {getattr(x, 'shape', None)}")


def _shifted(x: np.ndarray, dy: np.ndarray, dx: np.ndarray, fill: Fill) -> np.ndarray:
    """Image n moved down by ``dy[n]`` and right by ``dx[n]`` (negative: up / left)."""
    n, c, h, w = x.shape
    m = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    padded = np.empty((n, c, h + 2 * m, w + 2 * m), dtype=x.dtype)
    padded[...] = _fill_values(x, fill)
    padded[:, :, m : m + h, m : m + w] = x
    rows = (m - dy)[:, None] + np.arange(h)[None, :]  # (N, H): the crop's rows in the padding
    cols = (m - dx)[:, None] + np.arange(w)[None, :]
    return padded[
        np.arange(n)[:, None, None, None],
        np.arange(c)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def shift_images(x: np.ndarray, dy: int, dx: int, fill: Fill = "min") -> np.ndarray:
    """Every image of ``x`` ``(N, C, H, W)`` moved ``dy`` pixels down and ``dx`` right
    (negative: up / left), ``fill`` entering at the border: ``out[..., i, j] = x[..., i - dy,
    j - dx]`` where that exists. Same shape and dtype."""
    _check_images(x)
    dy, dx = check_int(dy, "dy"), check_int(dx, "dx")
    if abs(dy) >= x.shape[2] or abs(dx) >= x.shape[3]:
        raise ValueError(f"shift ({dy}, {dx}) moves images of {x.shape[2:]} out of view")
    n = x.shape[0]
    return _shifted(x, np.full(n, dy), np.full(n, dx), fill)


def random_shifts(
    x: np.ndarray, max_shift: int, rng: np.random.Generator, fill: Fill = "min"
) -> np.ndarray:
    """Each image of ``x`` ``(N, C, H, W)`` shifted by its own ``(dy, dx)`` drawn uniformly from
    ``{-max_shift, ..., max_shift}^2`` with ``rng`` (a random crop of the image padded by
    ``max_shift``). ``max_shift=0`` returns ``x`` itself and draws nothing."""
    _check_images(x)
    m = check_int(max_shift, "max_shift", min=0)
    if m == 0:
        return x
    if m >= min(x.shape[2:]):
        raise ValueError(f"max_shift {m} moves images of {x.shape[2:]} out of view")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    d = rng.integers(-m, m + 1, size=(2, x.shape[0]))
    return _shifted(x, d[0], d[1], fill)
