"""l-infinity tomography as sampling of high-value pixels (model §2.4-2.5).

The layer prepares ``sum_pq sqrt(f_pq) |p, q>`` (normalised) and measures it N times: each shot
returns pixel (p, q) with probability ``f_pq / sum f``, jointly over all channels and positions
of one image's layer output, with replacement. Pixels never drawn become 0.

All functions work on a batch of images at once: ``values`` is ``(B, d)`` with one row per image
(``d = D' H' W'``), and there is no Python loop over images or pixels.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "tomography_shots",
    "shots_from_sigma",
    "implied_eta",
    "check_sampling_args",
    "sample_pixels",
    "sampled_values",
    "expected_distinct_fraction",
]


def tomography_shots(d: int, eta: float) -> int:
    """Shots of l-infinity tomography to precision ``eta`` on a d-dimensional state:
    ``ceil(36 ln(d) / eta^2)`` (Kerenidis-Prakash)."""
    if not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    if not math.isfinite(eta) or eta <= 0:
        raise ValueError(f"eta must be a finite number > 0, got {eta!r}")
    return max(1, math.ceil(36.0 * math.log(d) / eta**2)) if d > 1 else 1


def shots_from_sigma(d: int, sigma: float) -> int:
    """``int(sigma * d)`` shots, the authors' simulation (at least 1)."""
    if not 0 < sigma <= 1:
        raise ValueError(f"sigma must satisfy 0 < sigma <= 1, got {sigma!r}")
    return max(1, int(sigma * d))


def implied_eta(d: int, shots: int) -> float:
    """The eta for which :func:`tomography_shots` would give ``shots``: ``sqrt(36 ln d / N)``."""
    if d <= 1:
        return 0.0
    return math.sqrt(36.0 * math.log(d) / shots)


def check_sampling_args(values: np.ndarray, shots: int, power: int) -> np.ndarray:
    """Validate the arguments of a pixel sampler (emulated or circuit); returns ``values`` as
    an array ``(B, d)``."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be (B, d), got shape {values.shape}")
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 0:
        raise ValueError(f"shots must be a non-negative integer, got {shots!r}")
    if power not in (1, 2):
        raise ValueError(f"power must be 1 or 2, got {power!r}")
    if values.size and np.min(values) < 0:
        raise ValueError("values must be non-negative (they are outputs of a capped ReLU)")
    return values


def sample_pixels(
    values: np.ndarray, shots: int, rng: np.random.Generator, power: int = 1
) -> np.ndarray:
    """Draw ``shots`` pixels per row with probability ``values**power / sum(values**power)``.

    Args:
        values: ``(B, d)`` non-negative pixel values, one row per image.
        shots: N >= 0, draws per image (with replacement).
        rng: the generator the draws come from.
        power: 1 (the algorithm: amplitudes ``sqrt(f)``) or 2 (ablation).

    Returns:
        counts ``(B, d)`` int64: how often each pixel was drawn; every row with a positive sum
        adds up to ``shots``. A row of zeros yields zeros (no division by zero).
    """
    values = check_sampling_args(values, shots, power)
    weights = np.asarray(values, dtype=np.float64)
    if power == 2:
        weights = weights * weights
    return sample_weighted_rows(weights, shots, rng)


def sample_weighted_rows(weights: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`sample_pixels` with power 1 on float64 weights ``(B, d)``, without the argument
    checks (non-negative finite weights, ``shots >= 0``); ``weights`` is not modified."""
    b, d = weights.shape
    counts = np.zeros((b, d), dtype=np.int64)
    live, flat = weighted_row_draws(weights, shots, rng)
    if flat.size:
        counts[live] = np.bincount(flat, minlength=live.size * d).reshape(live.size, d)
    return counts


def weighted_row_draws(
    weights: np.ndarray, shots: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The draws of :func:`sample_weighted_rows` one by one: ``(live, flat)`` with ``live`` the
    rows with a positive sum and ``flat`` the sorted indices ``i d + column`` of every draw, i
    indexing ``live`` (``shots`` per live row; none when ``shots`` is 0)."""
    b, d = weights.shape
    cdf = np.cumsum(weights, axis=1)
    totals = cdf[:, -1].copy() if d else np.zeros(b)
    live = np.flatnonzero(totals > 0)
    if shots == 0 or live.size == 0:
        return live, np.zeros(0, dtype=np.int64)
    # Inverse-CDF sampling for all rows at once: row r's normalised CDF is shifted to [r, r + 1],
    # so the concatenation is sorted and a target u + r falls into row r.
    if live.size < b:
        cdf = cdf[live]
    cdf /= totals[live, None]
    cdf[:, -1] = 1.0  # rounding must never let a target fall past the row
    offsets = np.arange(live.size, dtype=np.float64)[:, None]
    cdf += offsets
    stacked = cdf.ravel()
    targets = rng.random((live.size, shots))
    targets.sort(axis=1)
    targets += offsets
    # r + u may round up to r + 1 for u within ~r ulps of 1: keep every target inside its row
    np.minimum(targets, np.nextafter(offsets + 1.0, 0.0), out=targets)
    return live, _search_sorted_targets(stacked, targets.ravel())


def _search_sorted_targets(xp: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``np.searchsorted(xp, targets, side='right')`` for sorted ``targets``, clipped to the last bin.

    ``np.interp`` locates each target by first trying next to the previous answer, which for
    sorted targets is nearly always right: about twice as fast as searchsorted's bisection. Its
    fractional answer can round up by one ulp at a bin edge, so every result is verified and the
    rare miss recomputed exactly.
    """
    n = xp.size
    pos = np.interp(targets, xp, np.arange(n, dtype=np.float64), left=-1.0)
    idx = np.floor(pos).astype(np.int64) + 1  # bins: idx with xp[idx - 1] <= t < xp[idx]
    np.clip(idx, 0, n - 1, out=idx)
    below = idx > 0
    bad = (targets >= xp[idx]) & (idx < n - 1)
    bad |= below & (xp[np.maximum(idx - 1, 0)] > targets)
    if bad.any():
        idx[bad] = np.minimum(np.searchsorted(xp, targets[bad], side="right"), n - 1)
    return idx


def sampled_values(
    values: np.ndarray,
    counts: np.ndarray,
    mode: str = "exact",
    power: int = 1,
    total: np.ndarray | None = None,
) -> np.ndarray:
    """Values written back after sampling: 0 for undrawn pixels, and for drawn ones

    - ``'exact'``: the value itself (the value register is measured with the index) [paper-sim];
    - ``'tomography'``: the estimate from the counts, ``(n/N)^(1/power) * ||f||_power``, i.e.
      ``(n/N) sum f`` for power 1 [theory]. ``total`` ``(B,)``: the normaliser ``||f||_power``
      to use instead of the exact one (e.g. an amplitude-estimation estimate of it).

    ``values`` and ``counts`` are ``(B, d)``.
    """
    if mode == "exact":
        return np.where(counts > 0, values, 0).astype(values.dtype, copy=False)
    if mode != "tomography":
        raise ValueError(f"mode must be 'exact' or 'tomography', got {mode!r}")
    shots = counts.sum(axis=1, keepdims=True)
    freq = np.divide(counts, shots, out=np.zeros(counts.shape), where=shots > 0)
    if total is not None:
        norm = np.asarray(total, dtype=np.float64).reshape(-1, 1)
    else:
        norm = (values.astype(np.float64) ** power).sum(axis=1, keepdims=True) ** (1.0 / power)
    est = freq ** (1.0 / power) * norm if power != 1 else freq * norm
    return est.astype(values.dtype, copy=False)


def expected_distinct_fraction(values: np.ndarray, shots: int, power: int = 1) -> np.ndarray:
    """Expected fraction of a row's pixels drawn at least once: ``mean_i 1 - (1 - p_i)^N``.

    ``values`` ``(B, d)`` -> ``(B,)``; rows of zeros give 0.
    """
    w = np.asarray(values, dtype=np.float64) ** power
    tot = w.sum(axis=1, keepdims=True)
    p = np.divide(w, tot, out=np.zeros_like(w), where=tot > 0)
    hit = np.where(tot > 0, 1.0 - (1.0 - p) ** shots, 0.0)
    return hit.mean(axis=1)
