"""Predicted running time of a quantum convolution layer against the classical one (model §4).

Per layer and per image, up to polylogarithmic factors:

- classical forward: ``H'W'D' * kh kw D`` multiply-adds;
- quantum forward (KLP19 main theorem): ``sigma H'W'D' * Q`` with
  ``Q = M sqrt(C) / (eps sqrt(E[f]))``, i.e. ``(1 / (eps eta^2)) M sqrt(C) / sqrt(E[f])``;
- classical backward: ``2 H'W'D' kh kw D`` (``dL/dF = A^T dL/dY`` and ``dL/dX = dL/dY F^T``);
- quantum backward: ``((mu(A) + mu(dL/dY)) kappa(dL/dF) + (mu(dL/dY) + mu(F)) kappa(dL/dX))
  / delta^2`` (quantum matrix multiplication read out by l-infinity tomography).

The kernel volume ``kh kw D`` disappears from the quantum forward pass (it only enters through
QRAM polylogs); the price is ``Q``, which depends on the data and is measured during a forward
pass (``M``, ``E[f]``: :class:`~qcnn.quantum.layer_stats.LayerStatistics`). The predicted forward speed-up is
``kh kw D / (sigma Q)``. ``M = max ||A_p|| ||F_q||`` **grows with the kernel volume** (a patch
of volume V of bounded activations has a norm ~ sqrt(V)), so :func:`crossover_table` scales M
with a measured growth ``M ~ V^alpha`` instead of holding Q fixed; the crossover volume then
solves ``V = sigma Q(V)``: ``V* = (sigma Q_0 / V_0^alpha)^(1 / (1 - alpha))`` for alpha < 1
(no crossover at all for alpha >= 1).

``mu`` comes in the two forms of the Kerenidis-Prakash QRAM data structures, both relative to
the spectral norm: ``||V||_F / ||V||_2`` (:func:`mu_frobenius`) and
``min_p sqrt(s_2p(V) s_2(1-p)(V^T)) / ||V||_2`` with ``s_q(V) = max_i sum_j |V_ij|^q``
(:func:`mu_kp`); the algorithm uses the smaller. ``kappa`` is the condition number over the
non-zero singular values (:func:`condition_number`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "LayerResources",
    "BackwardResources",
    "layer_resources",
    "backward_resources",
    "crossover_table",
    "crossover_volume",
    "fit_growth",
    "mu_frobenius",
    "mu_kp",
    "condition_number",
    "matrix_parameters",
]


@dataclass(frozen=True)
class LayerResources:
    """The running-time model of one layer, evaluated with measured statistics (per image)."""

    out_pixels: int  # H'W'D'
    kernel_volume: int  # kh kw D
    classical_ops: float  # H'W'D' kh kw D
    sigma: float
    eps: float
    cap: float
    M: float  # max_pq ||A_p|| ||F_q||
    mean_f: float  # E[f]
    Q: float  # M sqrt(C) / (eps sqrt(E[f]))
    quantum_ops: float  # sigma H'W'D' Q
    speedup: float  # classical_ops / quantum_ops
    crossover_kernel_volume: float  # sigma Q: kernel volume where both cost the same at fixed Q
    implied_eta: float | None = None
    mu_A: float | None = None
    mu_F: float | None = None
    shots: float | None = None  # N used per image (sigma d)
    shots_for_eta: float | None = None  # 36 ln d / eta^2 for eta_reference
    eta_reference: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BackwardResources:
    """The backward pass of one layer (per image): the quantum cost against the classical one."""

    mu_A: float
    mu_dY: float
    mu_F: float
    kappa_dF: float
    kappa_dX: float
    delta: float
    quantum_ops: float  # ((mu_A + mu_dY) kappa_dF + (mu_dY + mu_F) kappa_dX) / delta^2
    classical_ops: float  # 2 H'W'D' kh kw D
    speedup: float  # classical / quantum

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LayerMeasurements:
    """What a forward pass measured on a layer (the means of
    :class:`~qcnn.quantum.layer_stats.LayerStatistics`)."""

    M: float  # max_pq ||A_p|| ||F_q||, per image
    mean_f: float  # E[f]
    implied_eta: float | None = None  # the tomography precision the shots used give
    mu_A: float | None = None
    mu_F: float | None = None

    @classmethod
    def from_stats(cls, stats: dict[str, float]) -> LayerMeasurements:
        """From a statistics dict (``M`` and ``mean_f`` required, the rest when measured)."""
        return cls(
            M=stats["M"],
            mean_f=stats["mean_f"],
            implied_eta=stats.get("implied_eta"),
            mu_A=stats.get("mu_A"),
            mu_F=stats.get("mu_F"),
        )


def layer_resources(
    out_shape: tuple[int, int, int],
    kernel_shape: tuple[int, int, int],
    *,
    sigma: float,
    eps: float,
    cap: float,
    measured: LayerMeasurements,
    eta_reference: float | None = 0.1,
) -> LayerResources:
    """``out_shape = (D', H', W')``, ``kernel_shape = (D, kh, kw)``; ``measured``: the layer's
    statistics as measured."""
    M, mean_f = measured.M, measured.mean_f
    if eps <= 0:
        raise ValueError("the quantum running time needs eps > 0 (it scales as 1/eps)")
    if not 0 < sigma <= 1:
        raise ValueError(f"sigma must satisfy 0 < sigma <= 1, got {sigma!r}")
    if mean_f <= 0:
        raise ValueError(
            "E[f] = 0: the layer outputs nothing, amplitude amplification is undefined"
        )
    out_pixels = int(math.prod(out_shape))
    volume = int(math.prod(kernel_shape))
    q = M * math.sqrt(cap) / (eps * math.sqrt(mean_f))
    classical = float(out_pixels * volume)
    quantum = sigma * out_pixels * q
    shots = max(1, int(sigma * out_pixels))
    needed = (
        math.ceil(36.0 * math.log(out_pixels) / eta_reference**2)
        if eta_reference and out_pixels > 1
        else None
    )
    return LayerResources(
        out_pixels=out_pixels,
        kernel_volume=volume,
        classical_ops=classical,
        sigma=sigma,
        eps=eps,
        cap=cap,
        M=M,
        mean_f=mean_f,
        Q=q,
        quantum_ops=quantum,
        speedup=classical / quantum,
        crossover_kernel_volume=sigma * q,
        implied_eta=measured.implied_eta,
        mu_A=measured.mu_A,
        mu_F=measured.mu_F,
        shots=float(shots),
        shots_for_eta=None if needed is None else float(needed),
        eta_reference=eta_reference,
    )


def backward_resources(
    out_shape: tuple[int, int, int],
    kernel_shape: tuple[int, int, int],
    *,
    delta: float,
    mu_A: float,
    mu_dY: float,
    mu_F: float,
    kappa_dF: float,
    kappa_dX: float,
) -> BackwardResources:
    """The model's backward running time with measured mu and kappa (per image)."""
    if delta <= 0:
        raise ValueError(
            "the quantum backward running time needs delta > 0 (it scales as 1/delta^2)"
        )
    quantum = ((mu_A + mu_dY) * kappa_dF + (mu_dY + mu_F) * kappa_dX) / delta**2
    classical = 2.0 * math.prod(out_shape) * math.prod(kernel_shape)
    return BackwardResources(
        mu_A=mu_A,
        mu_dY=mu_dY,
        mu_F=mu_F,
        kappa_dF=kappa_dF,
        kappa_dX=kappa_dX,
        delta=delta,
        quantum_ops=quantum,
        classical_ops=classical,
        speedup=classical / quantum,
    )


def fit_growth(volumes: list[float], values: list[float]) -> tuple[float, float]:
    """Least-squares fit of ``value = c V^alpha`` in log-log: ``(alpha, c)``."""
    v = np.log(np.asarray(volumes, dtype=np.float64))
    y = np.log(np.asarray(values, dtype=np.float64))
    if v.size < 2 or np.ptp(v) == 0:
        raise ValueError("fit_growth needs at least two different volumes")
    alpha, logc = np.polyfit(v, y, 1)
    return float(alpha), float(math.exp(logc))


def crossover_volume(res: LayerResources, alpha: float) -> float:
    """The kernel volume V* where ``V = sigma Q(V)`` when ``Q ~ M ~ V^alpha`` from the measured
    layer (E[f] held): ``(sigma Q_0 / V_0^alpha)^(1 / (1 - alpha))``; inf for alpha >= 1."""
    if alpha >= 1:
        return math.inf
    return float((res.sigma * res.Q / res.kernel_volume**alpha) ** (1.0 / (1.0 - alpha)))


def crossover_table(
    res: LayerResources,
    kernel_sizes: tuple[int, ...] = (3, 7, 11),
    depths: tuple[int, ...] = (1, 16, 64, 256, 1024),
    *,
    alpha: float | None = None,
    q_of: Callable[[int, int], float] | None = None,
) -> list[dict[str, float]]:
    """Predicted forward speed-up ``kh kw D / (sigma Q)`` for larger kernels and deeper inputs.

    Q for a kernel of size k and depth D is, in order of preference: ``q_of(k, D)`` (measured,
    e.g. on synthetic deeper inputs), or the measured layer's Q scaled by the growth of M,
    ``Q_0 (V / V_0)^alpha``; with neither, Q is held fixed (the optimistic bound the first
    report used: M in fact grows with V).
    """
    rows = []
    for k in kernel_sizes:
        for depth in depths:
            volume = k * k * depth
            if q_of is not None:
                q = q_of(k, depth)
            elif alpha is not None:
                q = res.Q * (volume / res.kernel_volume) ** alpha
            else:
                q = res.Q
            rows.append(
                {
                    "kernel": k,
                    "depth": depth,
                    "kernel_volume": volume,
                    "Q": q,
                    "speedup": volume / (res.sigma * q),
                }
            )
    return rows


# -- matrix parameters of the backward pass ---------------------------------------------------


def _spectral(v: np.ndarray) -> np.ndarray:
    return np.linalg.svd(v.astype(np.float64), compute_uv=False)


def mu_frobenius(v: np.ndarray, s: np.ndarray | None = None) -> float:
    """``||V||_F / ||V||_2`` (in [1, sqrt(rank)]); nan for a zero matrix. ``s``: V's singular
    values if known."""
    s = _spectral(v) if s is None else s
    return float(np.sqrt((s**2).sum()) / s[0]) if s.size and s[0] > 0 else float("nan")


def _s(v: np.ndarray, q: float) -> float:
    """``s_q(V) = max_i sum_j |V_ij|^q`` with ``0^0 = 0`` (q = 0 counts non-zeros)."""
    a = np.abs(v.astype(np.float64))
    if q == 0:
        return float((a > 0).sum(axis=1).max(initial=0))
    return float((a**q).sum(axis=1).max(initial=0.0))


def mu_kp(v: np.ndarray, grid: int = 21, s: np.ndarray | None = None) -> float:
    """Kerenidis-Prakash: ``min_p sqrt(s_2p(V) s_2(1-p)(V^T)) / ||V||_2`` over p in
    ``linspace(0, 1, grid)``; nan for a zero matrix."""
    s = _spectral(v) if s is None else s
    if not s.size or s[0] == 0:
        return float("nan")
    vt = v.T
    best = min(math.sqrt(_s(v, 2 * p) * _s(vt, 2 * (1 - p))) for p in np.linspace(0, 1, grid))
    return float(best / s[0])


def condition_number(
    v: np.ndarray, rel: float = 1e-6, s: np.ndarray | None = None
) -> tuple[float, int]:
    """``(sigma_max / sigma_min, rank)`` over the singular values above ``rel sigma_max``
    (the algorithm acts on the row space; a rank-deficient matrix has no finite plain kappa)."""
    s = _spectral(v) if s is None else s
    if not s.size or s[0] == 0:
        return float("nan"), 0
    keep = s[s > rel * s[0]]
    return float(keep[0] / keep[-1]), int(keep.size)


def matrix_parameters(v: np.ndarray) -> dict[str, float]:
    """``mu_F``, ``mu_KP``, ``mu`` (the smaller), ``kappa`` and ``rank`` of one matrix."""
    s = _spectral(v)
    mf, mk = mu_frobenius(v, s), mu_kp(v, s=s)
    kappa, rank = condition_number(v, s=s)
    return {
        "mu_F": mf,
        "mu_KP": mk,
        "mu": float(np.nanmin([mf, mk])),
        "kappa": kappa,
        "rank": float(rank),
    }
