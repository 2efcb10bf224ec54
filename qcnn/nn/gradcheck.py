"""Finite-difference gradient checking (central differences, float64)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["numerical_gradient", "relative_error"]


def numerical_gradient(
    f: Callable[[], float],
    x: np.ndarray,
    h: float = 1e-6,
    max_entries: int | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient of the scalar ``f()`` with respect to ``x`` (modified in place
    and restored).

    Returns ``(indices, grads)``: the flat indices checked (all, or ``max_entries`` drawn with
    ``rng``) and the numerical derivative at each.
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks need float64 arrays, got {x.dtype}")
    flat = x.reshape(-1)  # a view: x must be contiguous
    if not np.shares_memory(flat, x):
        raise ValueError("x must be contiguous for in-place perturbation")
    idx = np.arange(flat.size)
    if max_entries is not None and flat.size > max_entries:
        rng = rng or np.random.default_rng(0)
        idx = np.sort(rng.choice(flat.size, size=max_entries, replace=False))
    grads = np.empty(idx.size)
    for k, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        grads[k] = (fp - fm) / (2 * h)
    return idx, grads


def relative_error(a: np.ndarray, b: np.ndarray, floor: float = 1e-8) -> float:
    """``max |a - b| / max(|a| + |b|, floor)``, elementwise, then the max."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor), initial=0.0))
