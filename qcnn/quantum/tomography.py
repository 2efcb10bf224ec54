"""Emulated l-infinity tomography of a real vector with the Kerenidis-Prakash sign step.

The quantum algorithm reads a vector out of a state ``|x> = v / ||v||_2`` (its norm is known
separately) by l-infinity tomography (KLP19, model §2.5 and §3):

1. **Magnitudes.** Measure N copies of ``|x>`` in the computational basis: outcome i with
   probability ``p_i = v_i^2 / ||v||^2``, so the counts are ``Multinomial(N, p)``; the magnitude
   estimate is ``sqrt(n_i / N)``.
2. **Signs** (Kerenidis-Prakash). Prepare ``(|0>|x> + |1>|sqrt(p~)>) / sqrt2`` with
   ``p~_i = n_i / N``, apply H to the control and measure N more copies. Outcome ``(0, i)`` has
   probability ``(x_i + sqrt(p~_i))^2 / 4`` (:func:`sign_step_probabilities`): about ``p_i`` when
   ``x_i > 0`` and about 0 when ``x_i < 0``. The sign is +1 when ``n(0, i) > 0.4 n_i``
   (``= 0.4 p~_i N``, :data:`SIGN_THRESHOLD`), else -1 (:func:`kp_signs`).

With ``N = ceil(36 ln d / delta^2)`` (:func:`qcnn.quantum.sampling.tomography_shots`) the
estimate ``v~_i = sign_i sqrt(n_i / N) ||v||`` satisfies ``||v~ - v||_inf <= delta ||v||_2``
with probability at least ``1 - 1 / d^0.83`` (the guarantee KLP19 state for their l-infinity
tomography; tested in ``tests/quantum/test_tomography.py``). Entries never observed come back as
0: the error is bounded and biased toward zero, unlike additive Gaussian noise.

:func:`tomography_estimate` emulates both steps *in law*: the counts of step 1 and the counts
``n(0, i)`` of step 2 are exact multinomial draws (:func:`qcnn.quantum.multinomial.multinomial_counts`),
so its output has exactly the distribution of the circuit's (the Qiskit version in the circuits package runs the
same two steps as circuits and shares :data:`SIGN_THRESHOLD` and :func:`kp_signs`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qcnn.quantum.ae_law import median_ae_estimate
from qcnn.quantum.multinomial import counts_unchecked, one_row_counts
from qcnn.quantum.sampling import tomography_shots

__all__ = [
    "SIGN_THRESHOLD",
    "sign_step_probabilities",
    "kp_signs",
    "tomography_estimate",
    "theorem_success_probability",
    "norm_amplitude",
]

SIGN_THRESHOLD = 0.4  # KP: sign +1 when n(0, i) > 0.4 p~_i N


def theorem_success_probability(d: int) -> float:
    """``1 - 1 / d^0.83``: the probability with which KLP19's l-infinity tomography theorem
    guarantees ``||v~ - v||_inf <= delta ||v||_2`` for a d-dimensional vector."""
    return 1.0 - float(d) ** -0.83


def norm_amplitude(v: np.ndarray) -> np.ndarray:
    """The amplitude whose estimation gives ``||v||_2``: ``a = ||v||_2^2 / (d max_i v_i^2)`` per
    row of ``v (n, d)`` (0 for a zero row), so ``||v||_2 = max_i |v_i| sqrt(d a)``.

    It is the probability that the flag qubit reads 0 after the standard preparation of a vector
    from its entries, ``(1/sqrt d) sum_i |i> (v_i/B |0> + sqrt(1 - v_i^2/B^2) |1>)`` with the
    entry bound ``B = max_i |v_i|`` (docs/theory.md §2)."""
    v = np.asarray(v, dtype=np.float64)
    scale = np.abs(v).max(axis=-1)
    live = scale > 0
    unit = v / np.where(live, scale, 1.0)[..., None]
    return np.where(live, np.einsum("...i,...i->...", unit, unit) / v.shape[-1], 0.0)


def sign_step_probabilities(x: np.ndarray, sqrt_p: np.ndarray) -> np.ndarray:
    """P(outcome ``(0, i)``) of the KP sign circuit: ``(x_i + sqrt(p~_i))^2 / 4``.

    ``x`` is the unit vector ``v / ||v||``, ``sqrt_p`` the magnitudes ``sqrt(n_i / N)`` of step 1;
    the outcomes ``(1, i)`` have ``(x_i - sqrt(p~_i))^2 / 4``.
    """
    return (np.asarray(x) + np.asarray(sqrt_p)) ** 2 / 4.0


def kp_signs(sign_counts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Signs from the KP sign step: +1 where ``n(0, i) > 0.4 n_i``, else -1; +1 where ``n_i = 0``
    (never observed: the estimate is 0 whatever the sign). Shapes of the two arrays match."""
    sign_counts, counts = np.asarray(sign_counts), np.asarray(counts)
    signs = np.where(sign_counts > SIGN_THRESHOLD * counts, 1.0, -1.0)
    signs[counts == 0] = 1.0
    return signs


def tomography_estimate(
    v: np.ndarray,
    delta: float,
    rng: np.random.Generator,
    *,
    signs: str = "kp",  # "kp" or "exact", checked below
    shots: int | None = None,
    batch_dims: int = 0,
    norm_ae: tuple[int, int] | None = None,
) -> np.ndarray:
    """l-infinity tomography estimate of a real array, emulated exactly in law.

    Args:
        v: any real array. With ``batch_dims = b`` its first b axes index independent vectors
            (e.g. ``b = 1``: one tomography per image of a ``(N, C, H, W)`` gradient); otherwise
            the whole array is one vector of ``d = v.size`` entries.
        delta: precision > 0; ``N = ceil(36 ln d / delta^2)`` shots per step (d: entries of one
            vector).
        rng: the generator every draw comes from.
        signs: ``'kp'``: the Kerenidis-Prakash sign step (its counts drawn in law); ``'exact'``:
            the true signs (an ablation).
        shots: N directly (overrides ``delta``).
        batch_dims: number of leading batch axes (see ``v``).
        norm_ae: ``(m, k)``: the norm ``||v||_2`` is estimated, not read exactly: the median of k
            canonical amplitude-estimation runs with m bits of :func:`norm_amplitude`, drawn
            after the tomography's counts (so the counts are those of the exact-norm read-out
            with the same generator). None: the exact norm (an oracle).

    Returns:
        An array of v's shape and dtype (float64 for integer input): ``sign_i sqrt(n_i / N) ||v||``
        (``||v||`` estimated with ``norm_ae``),
        0 where the entry was never observed. Zero vectors give zeros; tiny and huge vectors are
        handled by scaling with ``max |v_i|`` before squaring (no underflow or overflow).
    """
    v = np.asarray(v)
    if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
        raise TypeError(f"tomography_estimate needs a real array, got dtype {v.dtype}")
    if signs not in ("kp", "exact"):
        raise ValueError(f"signs must be 'kp' or 'exact', got {signs!r}")
    if isinstance(batch_dims, bool) or not isinstance(batch_dims, int):
        raise ValueError(f"batch_dims must be an integer, got {batch_dims!r}")
    if not 0 <= batch_dims <= v.ndim:
        raise ValueError(f"batch_dims must be in [0, {v.ndim}], got {batch_dims}")
    out_dtype = v.dtype if np.issubdtype(v.dtype, np.floating) else np.dtype(np.float64)
    n_vec = int(np.prod(v.shape[:batch_dims], dtype=np.int64))
    d = int(np.prod(v.shape[batch_dims:], dtype=np.int64))
    if shots is None:
        if (
            not isinstance(delta, (int, float))
            or isinstance(delta, bool)
            or not np.isfinite(delta)
            or delta <= 0
        ):
            raise ValueError(f"delta must be a finite number > 0, got {delta!r}")
        n_shots = tomography_shots(d, float(delta)) if d >= 1 else 0
    else:
        if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
            raise ValueError(f"shots must be a positive integer, got {shots!r}")
        n_shots = int(shots)
    if v.size == 0:
        return np.zeros(v.shape, dtype=out_dtype)

    rows = v.reshape(n_vec, d).astype(np.float64)
    scale = np.abs(rows).max(axis=1)  # NaN and inf propagate: one check for every entry
    if not np.isfinite(scale).all():
        raise ValueError("tomography_estimate needs finite values")
    live = scale > 0
    inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=live)
    unit = rows * inv[:, None]  # max |unit| = 1: squaring cannot underflow or overflow
    norm = np.sqrt(np.einsum("ij,ij->i", unit, unit))  # ||v|| / max|v| in [1, sqrt(d)]
    x = np.multiply(
        unit, np.divide(1.0, norm, out=np.zeros_like(norm), where=live)[:, None], out=unit
    )
    if n_vec == 1:
        if not live[0]:
            return np.zeros(v.shape, dtype=out_dtype)
        est = None if norm_ae is None else (lambda: _norm_estimate(norm, d, norm_ae, rng))
        return _one_vector(
            x[0], n_shots, signs, rng, norm[0] * scale[0], out_dtype, estimate=est, scale=scale[0]
        ).reshape(v.shape)
    else:
        probs = x * x
        counts = counts_unchecked(np.where(live, n_shots, 0), probs, rng)
        mag = np.sqrt(counts / n_shots)
        if signs == "exact":
            sign = np.where(rows < 0, -1.0, 1.0)
        else:
            # Step 2: counts of the outcomes (0, i) for the observed i; every other outcome (the
            # (1, i) and the unobserved (0, i)) is lumped into one last category.
            seen = counts > 0
            q = np.where(seen, sign_step_probabilities(x, mag), 0.0)
            rest = np.maximum(1.0 - q.sum(axis=1), 0.0)
            sign_counts = counts_unchecked(
                np.where(live, n_shots, 0), np.concatenate([q, rest[:, None]], axis=1), rng
            )[:, :d]
            sign = kp_signs(sign_counts, counts)
        if norm_ae is not None:
            norm = _norm_estimate(norm, d, norm_ae, rng)
        out = sign * mag * (norm * scale)[:, None]
    return out.reshape(v.shape).astype(out_dtype, copy=False)


def _norm_estimate(
    norm: np.ndarray, d: int, norm_ae: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """``||v|| / max|v|`` per row estimated by AE (``norm_ae = (m, k)``) from the exact ratio
    ``norm`` in [1, sqrt d]: the amplitude is ``norm^2 / d`` (:func:`norm_amplitude`)."""
    m, k = norm_ae
    a = np.minimum(norm * norm / d, 1.0)
    return np.sqrt(d * median_ae_estimate(a, m, k, rng).amplitude)


def _one_vector(
    x: np.ndarray,
    n_shots: int,
    signs: str,
    rng: np.random.Generator,
    factor: float,
    dtype: np.dtype,
    estimate: Callable[[], np.ndarray] | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """The tomography estimate of one unit vector ``x (d,)`` times ``factor`` (its norm), as
    ``dtype`` (the fast path: the sign step touches only the observed entries). With
    ``estimate`` the norm is ``estimate()[0] * scale`` instead, drawn after the counts."""
    counts = one_row_counts(n_shots, x * x, rng)
    seen = np.flatnonzero(counts)
    mag = np.sqrt(counts[seen] / n_shots)
    if signs == "exact":
        sign = np.where(x[seen] < 0, -1.0, 1.0)
    else:
        # sign_step_probabilities(x[seen], mag) written in place into the outcome vector,
        # followed by the rest: every other outcome
        pv = np.empty(seen.size + 1)
        q = pv[:-1]
        np.add(x[seen], mag, out=q)
        np.square(q, out=q)
        q /= 4.0
        pv[-1] = max(1.0 - float(q.sum()), 0.0)
        sign_counts = one_row_counts(n_shots, pv, rng)[:-1]
        # kp_signs on observed entries only (n_i > 0: no unobserved entry to set to +1)
        sign = np.where(sign_counts > SIGN_THRESHOLD * counts[seen], 1.0, -1.0)
    # (sign mag) factor, entry by entry as the full vector's product would be: unobserved
    # entries stay 0 (0 * factor = 0 for the finite positive factor)
    values = sign * mag
    if estimate is not None:
        factor = float(estimate()[0]) * scale
    values *= factor
    out = np.zeros(x.size, dtype=dtype)
    out[seen] = values
    return out
