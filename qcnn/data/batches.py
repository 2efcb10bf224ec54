"""Seeded mini-batch iteration.

Shuffling draws from the ``numpy.random.Generator`` passed in (never numpy's global state), so
one seed at the top of an experiment fixes the order of every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral

import numpy as np

__all__ = ["iterate_minibatches", "num_batches"]


def _check_positive_int(value: object, what: str) -> int:
    # bool is an Integral too, but batch_size=True is certainly a bug.
    if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of batches :func:`iterate_minibatches` yields for ``n`` examples.

    ``ceil(n / batch_size)``, or ``floor(n / batch_size)`` with ``drop_last`` (which drops the
    final incomplete batch).
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return int(n) // batch_size if drop_last else -(-int(n) // batch_size)


def iterate_minibatches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    rng: np.random.Generator | int | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x[idx], y[idx])`` mini-batches covering every example once per call (one epoch).

    Args:
        x: ``(N, ...)`` inputs, e.g. ``(N, 1, 28, 28)``.
        y: ``(N, ...)`` targets, e.g. ``(N,)`` labels.
        batch_size: examples per batch (> 0); the last batch may be smaller unless ``drop_last``.
        rng: the ``Generator`` that draws the permutation (an ``int`` is used as a seed for
            ``numpy.random.default_rng``). Required when ``shuffle`` is true, so that no epoch
            order is ever irreproducible by accident.
        shuffle: visit the examples in a random permutation; otherwise in order (then the
            batches are views, not copies).
        drop_last: skip the final batch if it has fewer than ``batch_size`` examples.

    Yields:
        ``(xb (B, ...), yb (B, ...))`` with ``B == batch_size`` except possibly the last.
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y have different lengths: {n} and {len(y)}")
    if shuffle:
        if rng is None:
            raise ValueError("shuffle=True needs rng (a numpy.random.Generator or an int seed)")
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        order = rng.permutation(n)
    else:
        order = None
    stop = num_batches(n, batch_size, drop_last) * batch_size
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        if order is None:
            yield x[start:end], y[start:end]
        else:
            idx = order[start:end]
            yield x[idx], y[idx]
