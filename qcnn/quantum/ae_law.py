"""The law of canonical amplitude estimation's outcome: one run, and the median of k runs.

Every AE in the emulator draws from here (the inner products of :mod:`qcnn.quantum.ipe`, the
per-shot sampler of :mod:`qcnn.quantum.per_shot`, the tomography normaliser of the executor).

**One run.** Canonical AE with ``M = 2^m`` points returns y in {0..M-1} with
``P(y) = 1/2 [K(y - x) + K(y + x)]``, ``K(t) = sin^2(pi x) / (M^2 sin^2(pi t / M))`` (the Fejer
kernel, :func:`ae_outcome_probabilities`), ``x = M theta``, ``a = sin^2(pi theta)``.
:func:`sample_ae_outcomes` draws y exactly (branch, then the offset from the nearest grid
point: a table of the :data:`_PEAK_TABLE` offsets on each side of the peak, the rest from the
full kernel).

**The median of k.** The estimate ``a~ = sin^2(pi y / M)`` depends on y only through
``J = min(y, M - y)`` in {0..M/2}, and increases with J; so the median of k estimates is
``sin^2(pi J_med / M)`` with ``J_med`` the median of the k values of J. Folding the two branches
gives the law of J: ``P(J = j) = K(j - x) + K(j + x)`` for 0 < j < M/2 (one term at j = 0 and
j = M/2). If ``F`` is the CDF of J, the median of k i.i.d. draws is ``F^-1(V)`` with
``V ~ Beta(h, h)``, ``h = (k + 1) / 2`` (the median of k uniforms, mapped through the monotone
``F^-1``): one draw instead of k. Its CDF is ``G(F(j))`` with ``G(u) = P(Bin(k, u) >= h)``.
:func:`median_ae_estimate` is the one entry point: one run for k = 1, this draw for k > 1.

**Window.** The median's law is computed on ``2W`` values of J around ``x`` (:class:`Window`,
``W`` = :data:`MEDIAN_WINDOW`): their exact probabilities, and the mass ``L = P(J < lo)`` below
the window by Euler-Maclaurin summation of the kernel over the far arc, with its rigorous error
bound (the remainder of the series is at most its last term because every even derivative of
``csc^2`` is positive). Sampling is *exact*: a draw whose ``V`` falls within that bound of a
window boundary, or outside the window, is redone on the full law of its pixel
(:func:`full_cdf`), which happens for a few draws in a million. Expectations on the window
(:func:`median_window_law`) carry the bound explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "MEDIAN_WINDOW",
    "ae_outcome_probabilities",
    "sample_ae_outcomes",
    "ae_estimate",
    "AEEstimate",
    "median_ae_estimate",
    "is_tiny",
    "window_start",
    "Window",
    "ae_phase",
    "window",
    "full_cdf",
    "median_cdf_map",
    "sample_median_j",
    "median_window_law",
    "lower_tail_bound",
]

# One run: outcomes within this many grid points of the peak are drawn from an explicit table;
# the rare rest (about 2 / (pi^2 * _PEAK_TABLE) of the mass) from the full kernel.
_PEAK_TABLE = 8
MEDIAN_WINDOW = 3  # W: the median's window holds J = lo .. lo + 2W - 1 around x
# Euler-Maclaurin terms (B_{2k}/(2k)! for k = 1, 2, 3); the remainder is at most the last term.
_EM = (1.0 / 12.0, -1.0 / 720.0, 1.0 / 30240.0)
# Margin for rounding in the window's CDF values: the window's probabilities are computed in
# float32 (their angles in float64, so each is accurate to a few float32 ulps relative) and
# summed in float64; 2e-6 covers 2W terms of at most 1 with relative error < 1e-6 each, and the
# tests check it against the exact law.
_ROUND = 2e-6


# -- one run --------------------------------------------------------------------------------------


def _fejer(delta: np.ndarray, big_m: int) -> np.ndarray:
    """``|sin(M pi d) / (M sin(pi d))|^2`` with the limit 1 where ``sin(pi d) = 0``."""
    den = big_m * np.sin(np.pi * delta)
    num = np.sin(big_m * np.pi * delta)
    small = np.abs(den) < 1e-12
    return np.where(small, 1.0, (num / np.where(small, 1.0, den)) ** 2)


def ae_outcome_probabilities(theta: np.ndarray | float, m: int) -> np.ndarray:
    """Exact distribution of canonical amplitude estimation's outcome ``y in {0..2^m - 1}``.

    ``P(y) = 1/2 [F(y/2^m - theta) + F(y/2^m + theta)]`` with ``a = sin^2(pi theta)``.
    ``theta`` of any shape -> probabilities of shape ``theta.shape + (2^m,)``.
    """
    big_m = 1 << int(m)
    theta = np.asarray(theta, dtype=np.float64)[..., None]
    grid = np.arange(big_m) / big_m
    p = 0.5 * (_fejer(grid - theta, big_m) + _fejer(grid + theta, big_m))
    return p / p.sum(axis=-1, keepdims=True)  # exact up to rounding; renormalise the rounding


def _sample_fejer_offsets(frac: np.ndarray, u: np.ndarray, big_m: int) -> np.ndarray:
    """Draw ``j`` with ``P(j) = sin^2(pi f) / (M^2 sin^2(pi (j - f) / M))`` (j mod M), by inverse CDF.

    ``frac`` = f in [0, 1) and ``u`` uniforms, both 1-D. Outcomes are ordered as the window
    ``-W+1..W`` around the peak first, then the remaining residues; that order makes the common
    case cheap without approximating anything.
    """
    out = np.zeros(frac.shape, dtype=np.int64)
    on_grid = frac == 0.0  # phase exactly on the grid: the outcome is certain
    todo = ~on_grid
    if not todo.any():
        return out
    f, uu = frac[todo], u[todo]
    s2 = np.sin(np.pi * f) ** 2

    def probs(offsets: np.ndarray, ff: np.ndarray, ss: np.ndarray) -> np.ndarray:
        return ss[:, None] / (
            big_m**2 * np.sin(np.pi * (offsets[None, :] - ff[:, None]) / big_m) ** 2
        )

    half = min(_PEAK_TABLE, big_m // 2)
    window = np.arange(-half + 1, half + 1) if big_m > 1 else np.zeros(1, dtype=np.int64)
    pw = probs(window, f, s2)
    cdf = np.cumsum(pw, axis=1)
    pick = (cdf <= uu[:, None]).sum(axis=1)  # index of the first cdf entry above u
    res = np.empty(f.shape, dtype=np.int64)
    inside = pick < window.size
    res[inside] = window[pick[inside]]
    outside = np.flatnonzero(~inside)
    if outside.size:
        rest = np.arange(half + 1, big_m - half + 1)  # the other residues mod M
        # Chunks keep the (pixels x 2^m) table at a few million entries whatever m is.
        step = max(1, (1 << 22) // max(rest.size, 1))
        for start in range(0, outside.size, step):
            sel = outside[start : start + step]
            cdf_rest = cdf[sel, -1:] + np.cumsum(probs(rest, f[sel], s2[sel]), axis=1)
            k = np.minimum((cdf_rest <= uu[sel, None]).sum(axis=1), rest.size - 1)  # rounding guard
            res[sel] = rest[k]
    out[todo] = res
    return out


def sample_ae_outcomes(theta: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """One canonical-AE outcome ``y in {0..2^m - 1}`` per element of ``theta`` (exact sampling).

    The distribution is an even mixture of two Fejer kernels centred at ``+theta`` and
    ``-theta``: pick the branch, then draw the offset from the nearest grid point.
    """
    big_m = 1 << int(m)
    theta = np.asarray(theta, dtype=np.float64)
    flat = theta.reshape(-1)
    sign = np.where(rng.random(flat.size) < 0.5, 1.0, -1.0)
    x = np.mod(sign * flat * big_m, big_m)
    k0 = np.floor(x)
    frac = x - k0
    j = _sample_fejer_offsets(frac, rng.random(flat.size), big_m)
    return (np.mod(k0.astype(np.int64) + j, big_m)).reshape(theta.shape)


def ae_estimate(a: np.ndarray, m: int, rng: np.random.Generator, median_of: int = 1) -> np.ndarray:
    """Canonical AE estimate ``a_hat = sin^2(pi y / 2^m)`` of ``a in [0, 1]``; the median of
    ``median_of`` runs drawn run by run (the reference for the one-step law of
    :func:`median_ae_estimate`, which the layers use)."""
    runs = [median_ae_estimate(a, m, 1, rng).amplitude for _ in range(median_of)]
    return runs[0] if median_of == 1 else np.median(np.stack(runs), axis=0)


class AEEstimate(NamedTuple):
    """The outcome of canonical AE (one run, or the median of k) on each entry of ``a``.

    Attributes:
        outcome: int64, ``a``'s shape: y in {0..M-1} of the one run (k = 1), or ``J_med`` in
            {0..M/2} of the median (k > 1); the estimate depends on y only through J.
        m: AE qubits (``M = 2^m``).
        k: the runs whose median was taken.
    """

    outcome: np.ndarray
    m: int
    k: int

    @property
    def amplitude(self) -> np.ndarray:
        """``a~ = sin^2(pi outcome / M)`` (float64)."""
        return np.sin(np.pi * self.outcome / (1 << self.m)) ** 2

    @property
    def cosine(self) -> np.ndarray:
        """``1 - 2 a~ = cos(2 pi outcome / M)``: the estimate of a normalised inner product.

        The two forms are equal in exact arithmetic; each k keeps the form its pinned runs were
        recorded with (tests/quantum/test_theory_bit_identical.py), so no bit changes."""
        if self.k == 1:
            return 1.0 - 2.0 * self.amplitude
        return np.cos(2.0 * np.pi * self.outcome / (1 << self.m))


def median_ae_estimate(a: np.ndarray, m: int, k: int, rng: np.random.Generator) -> AEEstimate:
    """The median of ``k`` canonical m-qubit AE runs on every entry of ``a`` (any shape, values
    in [0, 1]), exact in law: one run drawn directly for k = 1 (:func:`sample_ae_outcomes`),
    the median's ``J`` in one draw on its window for k > 1 (:func:`sample_median_j`)."""
    m = int(m)
    a = np.asarray(a)
    if k == 1:
        theta = np.arcsin(np.sqrt(np.clip(a.astype(np.float64, copy=False), 0.0, 1.0))) / np.pi
        return AEEstimate(sample_ae_outcomes(theta, m, rng), m, 1)
    x = ae_phase(a.ravel(), m)
    j = sample_median_j(window(x, m), k, rng, x=x).reshape(a.shape)
    return AEEstimate(j, m, int(k))


# -- the median of k: its law on a window ---------------------------------------------------------


def ae_phase(a: np.ndarray, m: int) -> np.ndarray:
    """``x = M theta`` with ``a = sin^2(pi theta)``, theta in [0, 1/2] (float64)."""
    a = np.clip(np.asarray(a, dtype=np.float64), 0.0, 1.0)
    return (1 << int(m)) * np.arcsin(np.sqrt(a)) / np.pi


def _csc_odd_derivatives(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """h', h''', h^(5) of h(u) = csc^2(u) as polynomials in t = cot(u)."""
    t2 = t * t
    d1 = -2.0 * t * (1.0 + t2)
    d3 = -t * (16.0 + t2 * (40.0 + 24.0 * t2))
    d5 = -t * (272.0 + t2 * (1232.0 + t2 * (1680.0 + 720.0 * t2)))
    return d1, d3, d5


@dataclass(frozen=True)
class Window:
    """The single-run law of J near the peak, per pixel (arrays over pixels, float64).

    Attributes:
        lo: ``(n,)`` first J of the window (int64); the window is ``lo .. lo + 2W - 1``.
        cdf: ``(n, 2W + 1)``: ``F(lo - 1) = L, F(lo), ..., F(lo + 2W - 1)``.
        tol: ``(n,)`` bound on the error of every ``cdf`` value (Euler-Maclaurin + rounding).
        fixed: ``(n,)`` bool: x lies on the grid, J = ``lo`` for sure (cdf is then a step).
        m: AE qubits.
    """

    lo: np.ndarray
    cdf: np.ndarray
    tol: np.ndarray
    fixed: np.ndarray
    m: int


def is_tiny(m: int, w: int = MEDIAN_WINDOW) -> bool:
    """Whether the grid is so small (M/2 + 1 <= 2W + 1) that the window is all of J."""
    return (1 << int(m)) // 2 <= 2 * w


def window_start(x: np.ndarray, m: int, w: int = MEDIAN_WINDOW) -> np.ndarray:
    """``lo``, the first J of the window around ``x`` (int64), as :func:`window` places it."""
    if is_tiny(m, w):
        return np.zeros(np.shape(x), dtype=np.int64)
    half = (1 << int(m)) // 2
    return np.clip(np.floor(x) - (w - 1), 0, half + 1 - 2 * w).astype(np.int64)


def window(x: np.ndarray, m: int, w: int = MEDIAN_WINDOW) -> Window:
    """The window of J around ``x = M theta`` (``(n,)`` in [0, M/2]) for m-qubit AE."""
    x = np.asarray(x, dtype=np.float64)
    big_m = 1 << int(m)
    half = big_m // 2
    width = 2 * w
    if is_tiny(m, w):  # tiny grids: the window is all of J, computed directly
        cdf_full = full_cdf(x, m)
        n = x.size
        lo = np.zeros(n, dtype=np.int64)
        cdf = np.concatenate([np.zeros((n, 1)), cdf_full], axis=1)
        pad = width + 1 - cdf.shape[1]
        if pad > 0:
            cdf = np.concatenate([cdf, np.ones((n, pad))], axis=1)
        return Window(lo, cdf, np.full(n, _ROUND), np.zeros(n, dtype=bool), m)
    n0 = np.floor(x)
    frac = x - n0
    fixed = frac == 0.0
    lo = window_start(x, m, w)
    phi = math.pi / big_m
    s2 = np.sin(math.pi * np.minimum(frac, 1.0 - frac)) ** 2  # accurate near both grid points
    c = s2 / (big_m * big_m)
    t = np.arange(width, dtype=np.float64)
    # main branch K(j - x) and folded branch K(j + x) for j = lo + t. The angle of the main
    # branch is taken as phi * (integer offset - frac), exact in floating point, so that
    # K stays accurate to rounding right at the peak (frac -> 0)
    # The (2W, n) layout (one row per window position) keeps numpy's inner loops along the
    # pixels rather than along 2W = 6 entries; every entry is the same operation on the same
    # numbers as in the (n, 2W) layout. Buffers are written in place.
    lo_f = lo.astype(np.float64)
    arg = (lo - n0)[None, :] + t[:, None]
    arg -= frac
    arg *= phi
    sin_main = arg.astype(np.float32)
    np.sin(sin_main, out=sin_main)
    fold = lo_f + t[:, None]  # (lo + t) + x in [0, M]: sin(phi u) = sin(phi (M - u)), take the
    fold += x
    np.minimum(fold, big_m - fold, out=fold)  # smaller argument, accurate near u = M as well
    fold *= phi
    sin_fold = fold.astype(np.float32)
    np.sin(sin_fold, out=sin_fold)
    c32 = c.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.multiply(sin_fold, sin_fold, out=sin_fold)
        np.divide(c32, sin_fold, out=sin_fold)
        prob = sin_main * sin_main
        np.divide(c32, prob, out=prob)
        prob += sin_fold
    edge = np.flatnonzero((lo == 0) | (lo + width - 1 >= half))
    if edge.size:  # J = 0 and J = M/2 have one preimage: one term, not two
        j = lo[edge] + np.arange(width)[:, None]
        ends = (j == 0) | (j == half)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            one = c32[edge] / (sin_main[:, edge] * sin_main[:, edge])
        prob[:, edge] = np.where(ends, one, prob[:, edge])
    # lower tail L = sum over the arc y = -(lo-1) .. lo-1 of K(y - x), by Euler-Maclaurin
    low = np.zeros(x.size)
    tol = np.full(x.size, _ROUND)
    has = (lo >= 1) & ~fixed
    every = bool(has.all())  # the usual case: no gather and scatter needed
    if has.any():
        xa, la, ca = (x, lo, c) if every else (x[has], lo[has], c[has])
        la = la.astype(np.float64)
        ua, ub = phi * (-(la - 1) - xa), phi * ((la - 1) - xa)  # both in (-pi, 0)
        ta, tb = 1.0 / np.tan(ua), 1.0 / np.tan(ub)
        total = (ca / phi) * (ta - tb) + 0.5 * ca * ((1 + ta * ta) + (1 + tb * tb))
        da, db = _csc_odd_derivatives(ta), _csc_odd_derivatives(tb)
        last = 0.0
        for k, coef in enumerate(_EM):
            order = 2 * k + 1
            last = coef * ca * phi**order * (db[k] - da[k])
            total = total + last
        if every:
            low = total
            tol += np.abs(last)  # the remainder is at most the last term's size
        else:
            low[has] = total
            tol[has] += np.abs(last)
    # cdf = [low, cumsum(prob) + low], the running sum (float64) column by column: the same
    # sequential additions as np.cumsum, which is slow along short rows
    cdf = np.empty((x.size, width + 1))
    cdf[:, 0] = low
    run = prob[0].astype(np.float64)
    np.add(run, low, out=cdf[:, 1])
    for col in range(1, width):
        run += prob[col]
        np.add(run, low, out=cdf[:, col + 1])
    if fixed.any():  # phase on the grid: J = fold(n0) for sure
        jf = np.minimum(n0[fixed], big_m - n0[fixed]).astype(np.int64)
        lo_f = np.clip(jf - (w - 1), 0, half + 1 - width)
        lo[fixed] = lo_f
        cdf[fixed] = (lo_f[:, None] + np.arange(-1, width) >= jf[:, None]).astype(np.float64)
        tol[fixed] = 0.0
    return Window(lo, cdf, tol, fixed, int(m))


def full_cdf(x: np.ndarray, m: int) -> np.ndarray:
    """Exact CDF of J over all of {0..M/2}: ``(n, M/2 + 1)``, computed term by term."""
    big_m = 1 << int(m)
    half = big_m // 2
    p = ae_outcome_probabilities(np.asarray(x, dtype=np.float64) / big_m, m)  # over y
    pj = p[:, : half + 1].copy()
    pj[:, 1:half] += p[:, big_m - 1 : half : -1]  # y and M - y give the same J
    return np.cumsum(pj, axis=1)


def median_cdf_map(u: np.ndarray, k: int) -> np.ndarray:
    """``G(u) = P(Bin(k, u) >= (k+1)/2)``: the CDF of the median of k draws at a CDF value u.

    Float32 arithmetic for float32 input (relative error ~1e-7), float64 otherwise."""
    u = np.asarray(u)
    dtype = np.float32 if u.dtype == np.float32 else np.float64
    u = np.clip(u.astype(dtype, copy=False), 0.0, 1.0)
    if k == 1:
        return u
    h = (k + 1) // 2
    n = k - h
    v = 1.0 - u
    # G = u^h * sum_j C(k, h+j) u^j v^(n-j), the sum by Horner on its homogeneous form
    # (the first Horner step from 1 is 1 * v and 1 * u: copies, the same numbers)
    vpow = v.copy()
    acc = u.copy()
    term = np.empty_like(u)
    for j in range(n - 1, -1, -1):
        if j < n - 1:
            vpow *= v
            acc *= u
        acc += np.multiply(dtype(math.comb(k, h + j)), vpow, out=term)
    # u^h by squaring (numpy's pow is slow); the first factor is copied, not multiplied by 1
    power: np.ndarray | None = None
    base, e = u, h
    while e:
        if e & 1:
            power = base.copy() if power is None else np.multiply(power, base, out=power)
        e >>= 1
        if e:
            base = base * base if base is u else np.multiply(base, base, out=base)
    assert power is not None  # h >= 1
    acc *= power
    return np.minimum(acc, dtype(1.0))


def lower_tail_bound(m: int, w: int = MEDIAN_WINDOW) -> float:
    """An upper bound on ``L = P(J < lo)`` over every phase x: the largest value on a fine grid
    of x, with a 25 % margin (the worst case is smooth in x between grid points)."""
    return _lower_tail_bound(int(m), int(w))


_TAIL_CACHE: dict[tuple[int, int], float] = {}


def _lower_tail_bound(m: int, w: int) -> float:
    key = (m, w)
    if key not in _TAIL_CACHE:
        half = (1 << m) // 2
        xs = np.linspace(0.0, half, 40 * half + 1)[1:-1]
        win = window(xs, m, w)
        _TAIL_CACHE[key] = float(min(1.0, 1.25 * (win.cdf[:, 0] + win.tol).max()))
    return _TAIL_CACHE[key]


def sample_median_j(
    win: Window,
    k: int,
    rng: np.random.Generator,
    index: np.ndarray | None = None,
    x: np.ndarray | None = None,
) -> np.ndarray:
    """J of the median of k AE runs, one draw per entry of ``index`` (pixels of ``win``; default
    one per pixel). Exact: ``F^-1(V)``, ``V ~ Beta(h, h)``; draws the window cannot decide (V
    outside it, or within ``tol`` of a boundary) are redone on the full law (needs ``x``)."""
    idx = np.arange(win.lo.size) if index is None else np.asarray(index)
    h = (k + 1) // 2
    v = rng.beta(h, h, size=idx.size) if k > 1 else rng.random(idx.size)
    # one row per CDF column (long inner loops); counts and flags are exact whatever the layout
    cdf_t = np.ascontiguousarray((win.cdf if index is None else win.cdf[idx]).T)
    tol = win.tol if index is None else win.tol[idx]
    width = cdf_t.shape[0] - 1
    pos = np.zeros(idx.size, dtype=np.int64)  # J - lo: first window value with F >= V
    for col in range(1, width + 1):
        pos += cdf_t[col] < v
    out = (win.lo if index is None else win.lo[idx]) + pos
    unsure = (v <= cdf_t[0] + tol) | (pos >= width)
    for col in range(width + 1):
        unsure |= np.abs(cdf_t[col] - v) <= tol
    unsure &= ~(win.fixed if index is None else win.fixed[idx])
    if unsure.any():
        if x is None:
            raise ValueError("sample_median_j needs x to resolve draws outside the window")
        sel = np.flatnonzero(unsure)
        full = full_cdf(np.asarray(x)[idx[sel]], win.m)
        out[sel] = np.minimum((full < v[sel, None]).sum(axis=1), full.shape[1] - 1)
    return out


def median_window_law(win: Window, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The law of the median's J on the window: ``(probs (n, 2W), below (n,), above (n,),
    err (n,))``: P(J_med = lo + t), P(J_med < lo), P(J_med > hi), and a bound on the error of each
    of these numbers (from the window's ``tol``)."""
    g = median_cdf_map(win.cdf.astype(np.float32), k).astype(np.float64)
    probs = np.diff(g, axis=1)
    below = g[:, 0]
    above = 1.0 - g[:, -1]
    # |G'| <= k C(k-1, h-1) / 2^(k-1) (the Beta(h, h) density at its mode)
    h = (k + 1) // 2
    slope = k * math.comb(k - 1, h - 1) / 2 ** (k - 1) if k > 1 else 1.0
    err = 2.0 * slope * win.tol + 4e-7  # + float32 rounding of G (values <= 1)
    return probs, below, above, err
