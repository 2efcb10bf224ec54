"""The stages of a quantum layer's forward pass and what each one hands to the next.

:class:`~qcnn.quantum.layer.QuantumConv2D` runs, for a whole batch (model §2):

1. :class:`InnerProducts`: the exact products ``Y = A F``, the norms, and (one estimate per pixel)
   the estimates ``Ybar`` from the executor;
2. :class:`Activation`: the capped ReLU of the estimates (per shot: of each shot's estimate,
   averaged over the pixel's shots);
3. :class:`Sampling`: the measurement of the output state by the executor, per pixel or per shot;
4. :class:`Values`: the values written back (0 where a pixel was not drawn) and the normaliser
   of tomography values;
5. :class:`Pooled`: pooling while writing to the next layer's storage.

Maps are ``(N, O, H', W')`` unless said; per-image rows are ``(N, d)`` with ``d = O H' W'``. A
:class:`ForwardRecord` (all stages of one pass) goes to the observers attached to the layer
(:mod:`qcnn.quantum.layer_stats`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qcnn.nn import functional as F
from qcnn.quantum.per_shot import PerShot

__all__ = [
    "InnerProducts",
    "Activation",
    "Sampling",
    "Normaliser",
    "Values",
    "Pooled",
    "ForwardRecord",
]


class InnerProducts(NamedTuple):
    """Stage 1: the layer's inner products.

    Attributes:
        conv: the convolution's cache (im2col columns, input shape), for the backward pass.
        exact_nb: ``Y`` without the bias (C-contiguous).
        exact: ``Y + bias``.
        estimated: ``Ybar + bias`` (the bias is added classically after the estimate); None
            when the estimate is drawn afresh in every shot (the sampling stage draws it).
        scale: ``||A_p|| ||F_q||``, ``(N or 1, O, H', W')`` (1: the notebook's first-image norms).
        patch_norms: ``||A_p||``, ``(N or 1, H', W')``.
        kernel_norms: ``||F_q||``, ``(O,)``.
    """

    conv: F.ConvCache
    exact_nb: np.ndarray
    exact: np.ndarray
    estimated: np.ndarray | None
    scale: np.ndarray
    patch_norms: np.ndarray
    kernel_norms: np.ndarray


class Activation(NamedTuple):
    """Stage 2: the capped ReLU ``f`` of the estimates.

    Attributes:
        values: ``f`` (per shot: the mean of ``f`` over the pixel's shots, 0 where none).
        mask: the cap's derivative (per shot: the fraction of the pixel's shots in its linear
            range).
        estimated: ``Ybar + bias`` (per shot: ``Y + bias`` plus the mean error of the pixel's
            shots; ``Y + bias`` where it was not drawn).
    """

    values: np.ndarray
    mask: np.ndarray
    estimated: np.ndarray


class Sampling(NamedTuple):
    """Stage 3: the measurement of the output state (l-infinity tomography), rows ``(N, d)``.

    Attributes:
        counts: shots per pixel; None when the layer does not sample.
        shots: N per image that ran (an executor may override the configured one); None when
            the layer does not sample.
        per_shot: the per-shot sampler's sums (noise per shot), else None.
        mean_f: ``(N,)`` ``mean_p E[f(Ybar_p)]`` over the estimator's law when the per-shot
            sampler computed it or the values need it, else None.
    """

    counts: np.ndarray | None
    shots: int | None
    per_shot: PerShot | None = None
    mean_f: np.ndarray | None = None


class Normaliser(NamedTuple):
    """``sum f`` per image ``(N,)``: the estimate tomography values were scaled with, and the
    exact value it estimates."""

    estimated: np.ndarray
    exact: np.ndarray


class Values(NamedTuple):
    """Stage 4: what is written back.

    Attributes:
        written: the map after sampling (0 where a pixel was not drawn).
        mask: the derivative mask after sampling (0 where a pixel was not drawn).
        normaliser: the estimated normaliser of tomography values, when one was estimated.
    """

    written: np.ndarray
    mask: np.ndarray
    normaliser: Normaliser | None = None


class Pooled(NamedTuple):
    """Stage 5: the layer's output ``(N, O, H'', W'')`` and the pooling's cache (None: no
    pooling)."""

    out: np.ndarray
    cache: F.MaxPoolCache | F.AvgPoolCache | None


class ForwardRecord(NamedTuple):
    """Every stage of one forward pass of a quantum layer, as its observers receive it.

    Attributes:
        x: the input ``(N, C, H, W)``.
        products, activation, sampling, values: the stages' outputs.
        training: whether it was a training pass.
    """

    x: np.ndarray
    products: InnerProducts
    activation: Activation
    sampling: Sampling
    values: Values
    training: bool
