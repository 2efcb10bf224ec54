"""Exact multinomial draws for very many shots over very many outcomes (l-infinity tomography).

The tomography of a gradient measures N = ceil(36 ln d / delta^2) copies of a d-dimensional state:
for the first dense layer of the paper's network d = 768,000 and N ~ 4.9 million per step.
``numpy.random.Generator.multinomial`` draws one conditional binomial per outcome (~100 ns each),
which is the cost floor of an exact draw; :func:`multinomial_counts` keeps numpy's sampler for the
outcomes that need it and saves the rest, without changing the law:

- **Lumping the small outcomes.** Outcomes whose expected count ``N p_i`` is below
  :data:`SMALL_MEAN` are merged into one "lump" category. numpy draws the counts of the large
  outcomes and of the lump jointly (exactly ``Multinomial(N, (p_large, P_small))``); given the lump's
  count m, its shots are m i.i.d. draws among the small outcomes with probability proportional to
  ``p_i`` (one sorted inverse-CDF search per shot). By the grouping property of the multinomial
  the counts are exactly ``Multinomial(N, p)``. Heavy-tailed vectors (gradients) have most of
  their entries here but few of the shots, so this replaces most binomial draws by cheap searches.
- **Two threads** (numpy's samplers release the GIL): several rows are split between two threads;
  one long row is split into two halves whose shot numbers are drawn first,
  ``N_left ~ Binomial(N, P_left)`` (exact: the multinomial restricted to a half, given its total, is
  the multinomial of that half). Every thread draws from its own generator seeded from the
  caller's through ``SeedSequence``, so the numbers depend only on the caller's generator state.

Rows ``(R, d)`` are independent states (e.g. one per image). The probabilities are float64, so the
law is exact up to float64 rounding of the probabilities, as for numpy's sampler.
"""

from __future__ import annotations

import atexit
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from qcnn.quantum.sampling import _search_sorted_targets

__all__ = ["multinomial_counts", "counts_unchecked", "one_row_counts", "SMALL_MEAN"]

# Outcomes expected to be drawn fewer times than this are drawn shot by shot (a sorted search per
# shot, ~20 ns) rather than one conditional binomial each (~100 ns).
SMALL_MEAN = 1.0
# Below this many binomial draws the thread hand-off costs more than it saves.
_PARALLEL_MIN = 1 << 15
_pool: ThreadPoolExecutor | None = None


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="qcnn-multinomial")
        atexit.register(_pool.shutdown, wait=False)
    return _pool


def _children(rng: np.random.Generator, k: int) -> list[np.random.Generator]:
    entropy = rng.integers(0, 2**63, size=2).tolist()
    return [np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(k)]


def _numpy_multinomial(n: np.ndarray, pvals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``Multinomial(n[r], pvals[r])`` per row with numpy's exact sampler, in two threads when
    large. ``pvals (R, k)`` rows sum to 1 (the last column absorbs rounding)."""
    r, k = pvals.shape
    if r * k < _PARALLEL_MIN:
        return rng.multinomial(n, pvals)
    g1, g2 = _children(rng, 2)
    pool = _get_pool()
    if r >= 2:
        h = r // 2
        f1 = pool.submit(g1.multinomial, n[:h], pvals[:h])
        second = g2.multinomial(n[h:], pvals[h:])  # meanwhile, in this thread
        return np.concatenate([f1.result(), second])
    # one long row: split its outcomes in two halves, the shots between them binomially
    h = k // 2
    p_left = float(pvals[0, :h].sum())
    p_right = float(pvals[0, h:].sum())
    n_left = int(rng.binomial(n[0], p_left / (p_left + p_right))) if p_left > 0 else 0
    n_right = n[0] - n_left
    # the left half in a worker, the right half meanwhile in this thread
    future: Future[np.ndarray] | None = None
    if n_left > 0 and p_left > 0:
        future = pool.submit(_half_multinomial, g1, n_left, pvals[0, :h], p_left)
    if n_right > 0 and p_right > 0:
        right = _half_multinomial(g2, n_right, pvals[0, h:], p_right)
    else:
        right = np.zeros(k - h, dtype=np.int64)
    left = future.result() if future is not None else np.zeros(h, dtype=np.int64)
    return np.concatenate([left, right])[None, :]


def _half_multinomial(g: np.random.Generator, m: int, p: np.ndarray, tot: float) -> np.ndarray:
    """``Multinomial(m, p / tot)`` (renormalised)."""
    return g.multinomial(m, _normalised(p / tot))


def _normalised(p: np.ndarray) -> np.ndarray:
    """``p`` rescaled to sum to 1, with the rounding absorbed by its largest entry so that numpy's
    check ``sum(p[:-1]) <= 1`` holds."""
    p = p / p.sum(axis=-1, keepdims=True)
    excess = p.sum(axis=-1) - 1.0
    if np.any(excess != 0):
        top = np.argmax(p, axis=-1)
        if p.ndim == 1:
            p[top] = max(p[top] - excess, 0.0)
        else:
            rows = np.arange(p.shape[0])
            p[rows, top] = np.maximum(p[rows, top] - excess, 0.0)
    return p


def _sorted_uniforms(n_per_seg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each segment s, ``n_per_seg[s]`` sorted i.i.d. U(0, 1) numbers, segments one after
    the other. Exponential spacings: with ``E_1..E_{n+1}`` i.i.d. Exp(1) and partial sums ``S_k``,
    ``S_1/S_{n+1} < ... < S_n/S_{n+1}`` are the order statistics of n uniforms (exact, no sort)."""
    ends = np.cumsum(n_per_seg + 1)  # one extra spacing per segment: its normaliser
    s = np.cumsum(rng.standard_exponential(int(ends[-1])))
    if n_per_seg.size == 1:  # one segment: (S_k - 0) / (S_{n+1} - 0), the same numbers
        u = s[:-1]
        u /= s[-1]
        return np.minimum(u, np.nextafter(1.0, 0.0), out=u)
    base = np.concatenate([[0.0], s[ends[:-1] - 1]])
    keep = np.ones(s.size, dtype=bool)
    keep[ends - 1] = False
    which = np.repeat(np.arange(n_per_seg.size), n_per_seg)
    u = (s[keep] - base[which]) / (s[ends - 1] - base)[which]
    return np.minimum(u, np.nextafter(1.0, 0.0))


def _segment_categorical(
    weights: np.ndarray,
    seg_start: np.ndarray,
    seg_len: np.ndarray,
    n_draws: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Indices into the 1-D positive ``weights`` of ``n_draws[s]`` i.i.d. draws from each segment
    ``[seg_start[s], seg_start[s] + seg_len[s])`` with probability proportional to the weights
    (segments increasing, not overlapping, non-empty). Inverse CDF on one running sum with sorted
    targets, searched neighbour-first."""
    if not n_draws.sum():
        return np.zeros(0, dtype=np.int64)
    cum = np.cumsum(weights)
    if seg_start.size == 1 and seg_start[0] == 0 and seg_len[0] == weights.size:
        # one segment, all the weights: targets 0 + u (cum[-1] - 0), the same numbers, and the
        # search's answers are already inside the segment
        targets = _sorted_uniforms(n_draws, rng)
        targets *= cum[-1]
        return _search_sorted_targets(cum, targets)
    end = seg_start + seg_len
    lo = np.where(seg_start > 0, cum[np.maximum(seg_start - 1, 0)], 0.0)
    hi = cum[end - 1]
    which = np.repeat(np.arange(seg_start.size), n_draws)
    targets = lo[which] + _sorted_uniforms(n_draws, rng) * (hi - lo)[which]
    pos = _search_sorted_targets(cum, targets)
    # a target can round onto a segment's last boundary: keep it inside its segment
    return np.clip(pos, seg_start[which], end[which] - 1)


def multinomial_counts(
    shots: int | np.ndarray, probs: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Counts ``(R, d)`` int64: row r is ``Multinomial(shots[r], probs[r] / sum(probs[r]))``.

    Args:
        shots: N per row (an int for all rows, or ``(R,)`` non-negative ints).
        probs: ``(R, d)`` non-negative weights (each row with a positive sum is normalised; rows
            of zeros give zero counts).
        rng: the generator every draw comes from.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be (R, d), got shape {probs.shape}")
    if probs.size and (not np.isfinite(probs).all() or probs.min() < 0):
        raise ValueError("probs must be finite and non-negative")
    n = np.broadcast_to(np.asarray(shots, dtype=np.int64), (probs.shape[0],)).copy()
    if (n < 0).any():
        raise ValueError(f"shots must be non-negative, got {shots!r}")
    return counts_unchecked(n, probs, rng)


def one_row_counts(shots: int, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``Multinomial(shots, p / sum(p))`` of one finite non-negative float64 vector ``(d,)``
    (unchecked; the fast path of :func:`multinomial_counts`)."""
    d = p.size
    counts = np.zeros(d, dtype=np.int64)
    total = float(p.sum())
    if shots <= 0 or total <= 0 or d == 0:
        return counts
    thr = SMALL_MEAN * total / shots  # p_i >= thr: expected count >= SMALL_MEAN
    big = np.flatnonzero(p >= thr)
    small = np.flatnonzero((p > 0) & (p < thr))
    p_small = p[small]
    pv = np.empty(big.size + 1)
    np.take(p, big, out=pv[:-1])
    pv[-1] = p_small.sum()
    drawn = _numpy_multinomial(np.array([shots]), _normalised(pv)[None, :], rng)[0]
    counts[big] = drawn[:-1]
    n_lump = int(drawn[-1])
    if n_lump:  # the lump's shots go to its outcomes, each in proportion to p_i
        idx = _segment_categorical(
            p_small, np.array([0]), np.array([small.size]), np.array([n_lump]), rng
        )
        counts[small] = np.bincount(idx, minlength=small.size)  # (were 0: small, big disjoint)
    return counts


def counts_unchecked(n: np.ndarray, probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """:func:`multinomial_counts` without the argument checks (``n (R,)`` int64, ``probs (R, d)``
    finite non-negative float64)."""
    r, d = probs.shape
    totals = probs.sum(axis=1)
    n = np.where(totals > 0, n, 0)
    counts = np.zeros((r, d), dtype=np.int64)
    live = np.flatnonzero(n)
    if d == 0 or live.size == 0:
        return counts
    if live.size == 1:
        counts[live[0]] = one_row_counts(int(n[live[0]]), probs[live[0]], rng)
        return counts
    # several rows: one call for all, small outcomes zeroed (they cost ~nothing there)
    p = probs[live] / totals[live, None]
    lam = p * n[live, None]
    small = (lam < SMALL_MEAN) & (lam > 0)
    pv = np.concatenate([np.where(small, 0.0, p), (p * small).sum(axis=1, keepdims=True)], 1)
    drawn = _numpy_multinomial(n[live], _normalised(pv), rng)
    sub = drawn[:, :-1]
    n_lump = drawn[:, -1]
    if n_lump.any():  # the lump's shots go to its outcomes, each in proportion to p_i
        flat = np.flatnonzero(small.ravel())
        seg_len = np.bincount(flat // d, minlength=live.size)
        seg_start = np.cumsum(seg_len) - seg_len
        has = np.flatnonzero(n_lump)
        idx = _segment_categorical(
            lam.ravel()[flat], seg_start[has], seg_len[has], n_lump[has], rng
        )
        sub = sub + np.bincount(flat[idx], minlength=sub.size).reshape(sub.shape)
    counts[live] = sub
    return counts
