"""Predicted running time of a quantum convolution layer against the classical one (model §4).

Per layer and per image, up to polylogarithmic factors:

- classical: ``H'W'D' * kh kw D`` multiply-adds;
- quantum forward (KLP19 main theorem): ``sigma H'W'D' * Q`` with
  ``Q = M sqrt(C) / (eps sqrt(E[f]))``, i.e. ``(1 / (eps eta^2)) M sqrt(C) / sqrt(E[f])``.

The kernel volume ``kh kw D`` disappears (it only enters through QRAM polylogs); the price is
``Q``, which depends on the data and is measured during a forward pass (``M``, ``E[f]`` are in
``QuantumConv2D.stats``). The predicted speed-up is ``kh kw D / (sigma Q)``: an advantage needs
kernels larger than the crossover volume ``sigma Q``. The backward pass costs
``O(((mu(A) + mu(dL/dY)) kappa(dL/dF) + (mu(dL/dY) + mu(F)) kappa(dL/dX)) / delta^2)``; the
report gives the measured ``mu(A)`` and ``mu(F)`` that enter it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LayerResources", "layer_resources", "crossover_table"]


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
    crossover_kernel_volume: float  # sigma Q: kernel volume where both cost the same
    implied_eta: float | None = None
    mu_A: float | None = None
    mu_F: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_resources(
    out_shape: tuple[int, int, int],
    kernel_shape: tuple[int, int, int],
    *,
    sigma: float,
    eps: float,
    cap: float,
    M: float,
    mean_f: float,
    implied_eta: float | None = None,
    mu_A: float | None = None,
    mu_F: float | None = None,
) -> LayerResources:
    """``out_shape = (D', H', W')``, ``kernel_shape = (D, kh, kw)``; statistics as measured."""
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
        implied_eta=implied_eta,
        mu_A=mu_A,
        mu_F=mu_F,
    )


def crossover_table(
    res: LayerResources,
    kernel_sizes: tuple[int, ...] = (3, 7, 11),
    depths: tuple[int, ...] = (1, 16, 64, 256, 1024),
) -> list[dict[str, float]]:
    """Predicted speed-up for larger kernels and deeper inputs, keeping the measured ``Q``.

    (Q grows with the data's norms in practice, so this is the optimistic direction.)
    """
    rows = []
    for k in kernel_sizes:
        for depth in depths:
            volume = k * k * depth
            rows.append(
                {
                    "kernel": k,
                    "depth": depth,
                    "kernel_volume": volume,
                    "speedup": volume / (res.sigma * res.Q),
                }
            )
    return rows
