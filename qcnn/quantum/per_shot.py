"""Noise per shot: every tomography shot re-runs the inner-product estimation coherently.

In the algorithm (model §2.2-2.5, §6) the estimate register holding ``Ybar`` is in superposition
when the output state is prepared: after the conditional rotation and amplitude amplification the
joint state over (pixel p, estimate ybar) is proportional to
``sum_p sum_ybar sqrt(P(ybar | p)) sqrt(f(ybar)) |p, ybar>``. A shot measures both registers, so

- pixel p comes out with probability proportional to ``E[f(Ybar_p)]`` (not to one frozen draw);
- its value register holds ybar from the **f-tilted law** ``P(ybar | p) f(ybar) / E[f(Ybar_p)]``;
- shots are independent, so a pixel drawn n times carries n independent values; it is written as
  their mean (the derivative mask too: the fraction of its draws in the cap's linear range).

docs/theory.md derives this and says why the tilted (not the untilted) law is the right one.

Two estimation models (``QuantumConfig.ipe``):

- **Gaussian** ``Ybar = Y + 2 eps ||A_p|| ||F_q|| Z``: exact rejection sampling of (pixel, value)
  pairs. Proposals draw a pixel with weight ``f(mu + T s)`` (the largest value within T standard
  deviations) and a Gaussian estimate, accepted with probability ``f(z) / f(mu + T s)`` when
  ``|z - mu| <= T s``; the rest of the line (probability ``2 Phi(-T)``) is covered by a second
  proposal with weight ``C 2 Phi(-T)`` and an exact tail sampler. Accepted pairs have exactly the
  joint law above; no normal CDF is needed.
- **Amplitude estimation** (median of k runs): the law of the median on a window of outcomes
  (:mod:`qcnn.quantum.ae_law`), so ``E[f(Ybar_p)]`` is computed per pixel; pixels are drawn
  with weights ``E_window + (bound on the rest)``, draws that land on the rest are resolved on
  the pixel's full law and accepted in proportion (exact rejection); values come from the tilted
  window law. The estimate map (phase of a pixel, ``Ybar(J)``) is
  :mod:`qcnn.quantum.output_law`'s, where the exact law these draws follow is computed.

:func:`sample_per_shot` returns, per pixel, the shot count, the sum of the shots' values and of
their linear-range indicators, plus ``sum_p E[f(Ybar_p)]`` per image when the model knows it
(the amplitude the tomography normaliser estimates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from qcnn.quantum.ae_law import (
    MEDIAN_WINDOW,
    full_cdf,
    is_tiny,
    lower_tail_bound,
    median_cdf_map,
    median_window_law,
    window,
    window_start,
)
from qcnn.quantum.noise import standard_normal
from qcnn.quantum.output_law import ae_phase_of_products, estimate_cosines
from qcnn.quantum.sampling import weighted_row_draws

if TYPE_CHECKING:
    from qcnn.quantum.config import QuantumConfig

__all__ = [
    "ShotProblem",
    "PerShot",
    "sample_per_shot",
    "gaussian_mean_f",
    "normal_cdf",
    "GAUSS_WINDOW",
]

GAUSS_WINDOW = 4.0  # T: the Gaussian proposal covers mu +- T s exactly, the rest by its tail
_ROUNDS = 64  # safety cap on rejection rounds (each round has acceptance ~ 1/2 or better)


class ShotProblem(NamedTuple):
    """One layer's outputs to measure shot by shot (arrays ``(B, d)``, one row per image).

    Attributes:
        y_nb: exact inner products ``Y = <A_p, F_q>`` without the bias (what is estimated).
        bias: the bias of each pixel (added classically after the estimate; zeros without bias).
        scale: norm products ``||A_p|| ||F_q||``.
    """

    y_nb: np.ndarray
    bias: np.ndarray
    scale: np.ndarray


@dataclass
class PerShot:
    """Per-pixel results of the shots of one layer's forward pass (arrays ``(B, d)``).

    Attributes:
        counts: shots per pixel (each row sums to N, or 0 for an image whose outputs are all 0).
        value_sum: sum of ``f`` over the pixel's shots.
        linear_sum: number of the pixel's shots whose estimate was in the linear range of the cap.
        error_sum: sum over the shots of ``Ybar - Y`` (for the statistics).
        mean_f: ``(B,)`` ``mean_p E[f(Ybar_p)]`` when the model computes it (AE), else None.
        mean_f_err: ``(B,)`` bound on the error of ``mean_f`` (mass outside the windows).
        fallbacks: draws resolved on a pixel's full law (AE), for the statistics.
    """

    counts: np.ndarray
    value_sum: np.ndarray
    linear_sum: np.ndarray
    error_sum: np.ndarray
    mean_f: np.ndarray | None = None
    mean_f_err: np.ndarray | None = None
    fallbacks: int = 0


class _ShotSums:
    """The accepted shots of every rejection round, summed per pixel at the end: one bincount
    over the rounds in order adds the same numbers in the same order as ``np.add.at`` round
    after round (and is much faster)."""

    def __init__(self) -> None:
        self.pix: list[np.ndarray] = []
        self.value: list[np.ndarray] = []
        self.linear: list[np.ndarray] = []
        self.error: list[np.ndarray] = []

    def add(
        self, pix: np.ndarray, value: np.ndarray, linear: np.ndarray, error: np.ndarray
    ) -> None:
        self.pix.append(pix)
        self.value.append(value)
        self.linear.append(linear)
        self.error.append(error)

    def sums(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(counts, value_sum, linear_sum, error_sum)``, each ``(n,)`` over the pixels."""
        pix = np.concatenate(self.pix) if self.pix else np.zeros(0, dtype=np.int64)

        def total(parts: list[np.ndarray]) -> np.ndarray:
            w = np.concatenate(parts).astype(np.float64) if parts else None
            return np.bincount(pix, weights=w, minlength=n).astype(np.float64, copy=False)

        counts = np.bincount(pix, minlength=n).astype(np.int64, copy=False)
        return counts, total(self.value), total(self.linear), total(self.error)

    def result(
        self,
        b: int,
        d: int,
        mean_f: np.ndarray | None = None,
        mean_f_err: np.ndarray | None = None,
        fallbacks: int = 0,
    ) -> PerShot:
        """The :class:`PerShot` of ``b`` images of ``d`` pixels (the rest: its optional fields)."""
        counts, value_sum, linear_sum, error_sum = self.sums(b * d)
        shape = (b, d)
        return PerShot(
            counts.reshape(shape),
            value_sum.reshape(shape),
            linear_sum.reshape(shape),
            error_sum.reshape(shape),
            mean_f,
            mean_f_err,
            fallbacks,
        )


def _cap(z: np.ndarray, cap: float) -> np.ndarray:
    return np.clip(z, 0.0, cap)


def _propose(
    weight: np.ndarray, need: np.ndarray, factor: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Proposals ``(row, column)`` drawn i.i.d. from each row of ``weight (B, K)`` with
    probability proportional to the weights: ``ceil(factor * max need) + 8`` per row that still
    needs shots (inverse-CDF search, :func:`qcnn.quantum.sampling.sample_pixels`)."""
    rows = np.flatnonzero(need > 0)
    n_prop = int(np.ceil(factor * need.max())) + 8
    live, flat = weighted_row_draws(weight[rows] if rows.size < need.size else weight, n_prop, rng)
    # the draws in the order of the counts' expansion (row by row, columns increasing): the
    # search returns them sorted
    k = weight.shape[1]
    return rows[live[flat // k]], flat % k


def _accept_rows(
    row: np.ndarray, accept: np.ndarray, need: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Indices of the accepted proposals to keep: for each row, a uniformly random subset of
    ``need[row]`` of its accepted ones (all of them if fewer). Proposals are i.i.d., so any
    selection that ignores their values keeps the accepted ones i.i.d. with the target law."""
    acc = np.flatnonzero(accept)
    if acc.size == 0:
        return acc
    keys = row[acc] + rng.random(acc.size)  # shuffle per row
    # the stable order of the keys; without ties any sort gives it, and a quicksort is faster
    perm = np.argsort(keys)
    sorted_keys = keys[perm]
    if (sorted_keys[1:] == sorted_keys[:-1]).any():
        perm = np.argsort(keys, kind="stable")
    order = acc[perm]
    r = row[order]
    per_row = np.bincount(r, minlength=need.size)
    first = (np.cumsum(per_row) - per_row)[r]  # where r's group starts: searchsorted(r, r, 'left')
    rank = np.arange(order.size) - first
    return order[rank < need[r]]


# -- Gaussian ------------------------------------------------------------------------------------


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Phi(x) for float64 arrays, relative error below 1.2e-7 (the Chebyshev fit of erfc in
    Numerical Recipes, ``erfcc``); numpy has no erf and scipy stays out of the training step."""
    z = np.abs(np.asarray(x, dtype=np.float64)) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * z)
    # fmt: skip below: Horner's form of the published polynomial, its coefficients in order
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))  # fmt: skip
    with np.errstate(under="ignore"):  # far tails: exp underflows to 0, which is the answer
        erfc = t * np.exp(-z * z + poly)
    return np.where(x >= 0, 1.0 - 0.5 * erfc, 0.5 * erfc)


def gaussian_mean_f(mu: np.ndarray, sd: np.ndarray, cap: float) -> np.ndarray:
    """``E[min(max(Z, 0), C)]`` for ``Z ~ N(mu, sd^2)`` elementwise (float64):
    ``mu [Phi(b) - Phi(a)] + sd [phi(a) - phi(b)] + C [1 - Phi(b)]`` with ``a = -mu/sd``,
    ``b = (C - mu)/sd``; ``clip(mu, 0, C)`` where ``sd = 0``."""
    mu = np.asarray(mu, dtype=np.float64)
    sd = np.broadcast_to(np.asarray(sd, dtype=np.float64), mu.shape)
    pos = sd > 0
    s = np.where(pos, sd, 1.0)
    a, b = -mu / s, (cap - mu) / s
    phi_a, phi_b = normal_cdf(a), normal_cdf(b)
    with np.errstate(under="ignore"):
        pdf_a = np.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)
        pdf_b = np.exp(-0.5 * b * b) / math.sqrt(2.0 * math.pi)
    out = mu * (phi_b - phi_a) + s * (pdf_a - pdf_b) + cap * (1.0 - phi_b)
    return np.where(pos, out, np.clip(mu, 0.0, cap))


def _normal_tail(n: int, t0: float, rng: np.random.Generator) -> np.ndarray:
    """n draws of Z ~ N(0, 1) conditioned on |Z| > t0 (Marsaglia's exact tail method)."""
    out = np.empty(0)
    while out.size < n:
        m = 2 * (n - out.size) + 8
        x = np.sqrt(t0 * t0 - 2.0 * np.log1p(-rng.random(m)))
        keep = rng.random(m) * x < t0
        out = np.concatenate([out, x[keep]])
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return sign * out[:n]


def _gaussian(
    mu: np.ndarray,
    sd: np.ndarray,
    base_linear: np.ndarray,
    cap: float,
    shots: int,
    rng: np.random.Generator,
) -> PerShot:
    b, d = mu.shape
    t0 = GAUSS_WINDOW
    tail_p = math.erfc(t0 / math.sqrt(2.0))  # P(|Z| > t0)
    bound_a = _cap(mu + t0 * sd, cap)  # largest f within the window
    weight = np.concatenate([bound_a, np.full((b, d), cap * tail_p)], axis=1)
    weight[:, d:] *= sd > 0  # no noise, no tail: the window is the point mu
    live = bound_a.max(axis=1) > 0  # rows whose every f is 0 give no shots
    need = np.where(live, shots, 0)
    shot_sums = _ShotSums()
    for _ in range(_ROUNDS):
        if not need.any():
            break
        # about need / acceptance proposals, the acceptance guessed from the weights
        rows = need > 0
        total = weight[rows].sum()
        acc = min(1.0, max(0.05, float(mu[rows].clip(0, cap).sum() / total))) if total > 0 else 1.0
        row, col = _propose(weight, need, 1.2 / acc, rng)
        tail = col >= d
        pix = row * d + np.where(tail, col - d, col)
        m, s = mu.ravel()[pix], sd.ravel()[pix]
        z_std = np.empty(pix.size)
        na = int((~tail).sum())
        z_std[~tail] = standard_normal(rng, (na,), dtype=np.float64)
        z_std[tail] = _normal_tail(int(tail.sum()), t0, rng)
        z = m + s * z_std
        f = _cap(z, cap)
        u = rng.random(pix.size)
        inside = (np.abs(z_std) <= t0) | (s == 0)  # no noise: the window is the whole law
        accept = np.where(tail, u * cap < f, inside & (u * bound_a.ravel()[pix] < f))
        keep = _accept_rows(row, accept, need, rng)
        k_pix = pix[keep]
        lin = (z[keep] > 0) & (z[keep] < cap) & base_linear.ravel()[k_pix]
        shot_sums.add(k_pix, f[keep], lin, z[keep] - m[keep])  # the error: Ybar - Y
        need = need - np.bincount(row[keep], minlength=b)
    else:
        raise RuntimeError("per-shot sampling did not converge (acceptance too low)")
    return shot_sums.result(b, d)


# -- amplitude estimation ------------------------------------------------------------------------


def _ae(
    y_nb: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    base_linear: np.ndarray,
    cap: float,
    m: int,
    k: int,
    shots: int,
    rng: np.random.Generator,
) -> PerShot:
    """AE model: ``Ybar(J) = scale cos(2 pi J / M)`` (the estimate ``scale (1 - 2 a~)``), and the
    value ``f(Ybar(J) + shift)`` with ``shift`` = bias (theory order) or bias + clip(Y) - Y."""
    b, d = y_nb.shape
    big_m = 1 << m
    width = 2 * MEDIAN_WINDOW
    n = b * d
    flat_scale = scale.ravel()
    flat_shift = shift.ravel()
    x = ae_phase_of_products(y_nb.ravel(), flat_scale, m)
    lo = window_start(x, m)
    # cos(2 pi J / M) for every J the sampler can return (J <= M/2; the window of a tiny grid
    # can reach 2W - 1): looked up instead of evaluated per pixel, the very same float64 values
    cos_j = estimate_cosines(m, max(big_m // 2, width - 1) + 1)
    z_top = flat_scale * cos_j[lo] + flat_shift  # largest value, J = lo
    live = np.flatnonzero(_cap(z_top, cap) > 0)  # pixels with f > 0 somewhere in the window
    tail_w = (
        0.0 if is_tiny(m) else cap * float(median_cdf_map(np.array([lower_tail_bound(m)]), k)[0])
    )

    # the median's law on the window, for live pixels
    win = window(x[live], m)
    probs, below, above, err = median_window_law(win, k)
    j = win.lo[:, None] + np.arange(width)
    z_win = flat_scale[live, None] * cos_j[j] + flat_shift[live, None]
    f_win = _cap(z_win, cap)
    e_win = np.einsum("ij,ij->i", probs, f_win)
    # E[f] = e_win + (lower tail, f <= C) + (upper tail, f <= f(hi)); a bound on each part
    up_f = f_win[:, -1]
    e_mid = e_win + 0.5 * (cap * below + up_f * above)
    e_err = 0.5 * (cap * below + up_f * above) + err * cap * width
    mean_f = np.zeros(n)
    mean_f[live] = e_mid
    mean_err = np.full(n, tail_w)  # dead pixels: only their lower tail can give f > 0
    mean_err[live] = e_err
    mean_f_img = mean_f.reshape(b, d).mean(axis=1)
    mean_err_img = mean_err.reshape(b, d).mean(axis=1)

    # proposal weights: window part of live pixels, and an upper bound on the rest of each pixel
    w_win = np.zeros(n)
    w_win[live] = e_win + err * cap * width  # (an upper bound of the window part)
    w_rest = np.full(n, tail_w)
    w_rest[live] = cap * np.minimum(below + err, 1.0) + up_f * np.minimum(above + err, 1.0)
    weight = np.concatenate([w_win.reshape(b, d), w_rest.reshape(b, d)], axis=1)
    # an image none of whose pixels can be non-zero within its window counts as all-zero (its
    # outputs' chance to be > 0 is below the tail bound): no shots, as for an all-zero image
    row_live = np.bincount(live // d, minlength=b) > 0
    need = np.where(row_live, shots, 0)
    pos_of = np.full(n, -1, dtype=np.int64)
    pos_of[live] = np.arange(live.size)
    # the tilted window law's running sums (unnormalised), one row per window position: the
    # additions of np.cumsum(probs * f_win, axis=1), with long inner loops
    cum_tilt = np.ascontiguousarray((probs * f_win).T)  # (2W, live pixels)
    for t in range(1, width):
        cum_tilt[t] += cum_tilt[t - 1]

    shot_sums = _ShotSums()
    fallbacks = 0
    y_flat = y_nb.ravel()
    for _ in range(_ROUNDS):
        if not need.any():
            break
        row, col = _propose(weight, need, 1.05, rng)
        rest = col >= d
        pix = row * d + np.where(rest, col - d, col)
        jj = np.zeros(pix.size, dtype=np.int64)
        accept = np.zeros(pix.size, dtype=bool)
        u = rng.random(pix.size)
        # window part: accept with (exact window mass) / (its upper bound), value from the
        # tilted window law
        wi = np.flatnonzero(~rest)
        if wi.size:
            q = pos_of[pix[wi]]
            accept[wi] = u[wi] * w_win[pix[wi]] < e_win[q]
            tgt = rng.random(wi.size) * cum_tilt[-1][q]
            below_tgt = np.zeros(wi.size, dtype=np.int64)  # window positions with sum <= tgt
            for t in range(width):
                below_tgt += cum_tilt[t][q] <= tgt
            jj[wi] = win.lo[q] + np.minimum(below_tgt, width - 1)
        # the rest: a draw of the median outside the window, on the pixel's full law
        ri = np.flatnonzero(rest)
        if ri.size:
            fallbacks += ri.size
            jr, ok = _outside_window(
                x[pix[ri]],
                lo[pix[ri]],
                flat_scale[pix[ri]],
                flat_shift[pix[ri]],
                w_rest[pix[ri]],
                cap,
                m,
                k,
                u[ri],
                rng.random(ri.size),
            )
            jj[ri] = jr
            accept[ri] = ok
        keep = _accept_rows(row, accept, need, rng)
        kp, kj = pix[keep], jj[keep]
        ybar = flat_scale[kp] * cos_j[kj]
        z = ybar + flat_shift[kp]
        shot_sums.add(
            kp, _cap(z, cap), (z > 0) & (z < cap) & base_linear.ravel()[kp], ybar - y_flat[kp]
        )
        need = need - np.bincount(row[keep], minlength=b)
    else:
        raise RuntimeError("per-shot sampling did not converge")
    return shot_sums.result(b, d, mean_f=mean_f_img, mean_f_err=mean_err_img, fallbacks=fallbacks)


def _outside_window(
    x: np.ndarray,
    lo: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    w_rest: np.ndarray,
    cap: float,
    m: int,
    k: int,
    u: np.ndarray,
    v: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """For proposals of the 'rest' part: J drawn from the median's law outside the window
    (exactly, on the full law), accepted with probability ``P(J) f(J) / (w_rest P(outside))``
    scaled so that accepted pairs follow ``P(J) f(J)`` outside the window."""
    width = 2 * MEDIAN_WINDOW
    g = median_cdf_map(full_cdf(x, m), k)  # (n, M/2 + 1) CDF of the median
    p = np.diff(np.concatenate([np.zeros((x.size, 1)), g], axis=1), axis=1)
    jgrid = np.arange(p.shape[1])
    inside = (jgrid[None, :] >= lo[:, None]) & (jgrid[None, :] < lo[:, None] + width)
    p_out = np.where(inside, 0.0, p)
    f = _cap(scale[:, None] * estimate_cosines(m, jgrid.size)[None, :] + shift[:, None], cap)
    mass = (p_out * f).sum(axis=1)  # sum over outside J of P(J) f(J)
    cum = np.cumsum(p_out * f, axis=1)
    target = v * mass  # v: the uniform of the draw, u: the uniform of the acceptance
    j = np.minimum((cum <= target[:, None]).sum(axis=1), p.shape[1] - 1)
    ok = (u * w_rest < mass) & (mass > 0)
    return j, ok


def sample_per_shot(
    problem: ShotProblem,
    config: QuantumConfig,
    shots: int,
    rng: np.random.Generator,
) -> PerShot:
    """Shots of one layer with a fresh estimate each (see the module docstring).

    Args:
        problem: the exact products, biases and norm products ``(B, d)``.
        config: the :class:`~qcnn.quantum.QuantumConfig`: the estimation model (``ipe``:
            Gaussian, amplitude estimation, or exact = the Gaussian model with no noise), eps,
            cap, noise order, AE bits and median count.
        shots: N per image.
        rng: generator of every draw.
    """
    cap = float(config.cap)
    y = (problem.y_nb + problem.bias).astype(np.float64)
    if config.noise_order == "paper":  # clamp(f(Y) + e, 0, C): the estimate shifted by clip(Y)-Y
        shift = _cap(y, cap) - y
        base_linear = (y > 0) & (y < cap)
    else:
        shift = np.zeros_like(y)
        base_linear = np.ones(y.shape, dtype=bool)
    if config.ipe == "amplitude_estimation":
        bits = config.resolved_ae_bits
        assert bits is not None  # set whenever ipe is "amplitude_estimation"
        return _ae(
            problem.y_nb.astype(np.float64),
            problem.scale.astype(np.float64),
            shift + problem.bias,
            base_linear,
            cap,
            bits,
            config.resolved_ae_median,
            shots,
            rng,
        )
    eps = config.eps if config.ipe == "gaussian" else 0.0
    sd = 2.0 * eps * problem.scale.astype(np.float64)
    return _gaussian(y + shift, sd, base_linear, cap, shots, rng)
