"""The CNN primer's worked examples, each a small function over the engine (``qcnn.nn``).

qcnn's source is a CNN primer that ends with the quantum CNN; these are its classical identities
as code, each asserted by ``tests/test_primer.py`` and shown in ``docs/primer.ipynb``:

- :func:`output_size`: ``H' = (H + 2P - K) / S + 1``;
- :func:`conv_as_matrix` / :func:`sparse_fc_example`: a convolution layer is a fully connected
  layer whose matrix is sparse and shares its weights (3x3 on 4x4: a 4x16 matrix, 9 non-zeros
  per row, the same 9 in every row);
- :func:`input_gradient_by_full_convolution`: the input gradient is the wide (``'full'``)
  convolution of the output gradient with the kernel rotated by 180 degrees;
- :func:`weight_gradient_by_correlation`: the weight gradient is the correlation of the input
  with the output gradient;
- :func:`pooling_shift_change` / :func:`prediction_agreement`: how much a feature map, its max
  pooling and a trained network's prediction change when the input moves by a few pixels;
- :data:`CLASSIC_FILTERS` / :func:`apply_filter`: edge detection (Sobel), smoothing (Gaussian),
  the Laplacian, applied to a digit;
- :func:`decay_response`: the decay signal ``w = [1, 1/2, 1/4]`` as a 1-D convolution
  ``y_t = sum_k w_k x_(t-k+1)``.

Conventions are the engine's: ``conv2d`` is the cross-correlation every framework calls a
convolution, ``convolve2d`` / ``convolve1d`` flip the kernel (see :mod:`qcnn.nn.functional`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qcnn.checks import check_int
from qcnn.data.augment import shift_images
from qcnn.nn import functional as F
from qcnn.nn.model import Sequential

__all__ = [
    "output_size",
    "conv_as_matrix",
    "SparseFC",
    "sparse_fc_example",
    "input_gradient_by_full_convolution",
    "weight_gradient_by_correlation",
    "pooling_shift_change",
    "prediction_agreement",
    "CLASSIC_FILTERS",
    "apply_filter",
    "DECAY_KERNEL",
    "decay_response",
]


def output_size(n: int, k: int, stride: int = 1, padding: int = 0) -> int:
    """The output-size formula ``(n + 2 padding - k) / stride + 1`` of one axis; ValueError
    when it is not an integer (the window would not tile the padded input)."""
    n, k = check_int(n, "n", min=1), check_int(k, "k", min=1)
    s, p = check_int(stride, "stride", min=1), check_int(padding, "padding", min=0)
    span = n + 2 * p - k
    if span < 0 or span % s:
        raise ValueError(f"({n} + 2*{p} - {k}) / {s} + 1 is not a positive integer")
    return span // s + 1


def conv_as_matrix(
    kernel: np.ndarray,
    in_hw: tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: F.Padding = 0,
) -> np.ndarray:
    """The matrix ``M`` ``(H' W', H W)`` of a one-channel convolution (cross-correlation) with
    ``kernel`` ``(kh, kw)``: ``conv2d(x, kernel).ravel() == M @ x.ravel()`` for every image ``x``
    ``(H, W)``. Row ``p`` holds the kernel's weights at the pixels of receptive field ``p``.

    Built by convolving the ``H W`` unit images (column ``j`` of ``M`` is the response to pixel
    ``j``), so it is the engine's own convolution written as a matrix."""
    kernel = np.asarray(kernel, dtype=float)
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be (kh, kw), got shape {kernel.shape}")
    h, w = in_hw
    basis = np.eye(h * w).reshape(h * w, 1, h, w)
    responses = F.conv2d(basis, kernel[None, None], stride=stride, padding=padding)
    return responses.reshape(h * w, -1).T


@dataclass(frozen=True)
class SparseFC:
    """A conv layer seen as a fully connected one (:func:`sparse_fc_example`)."""

    matrix: np.ndarray  # (H'W', HW) the equivalent dense layer's weights
    nonzeros_per_row: np.ndarray  # (H'W',) kernel weights in each row
    rows_share_weights: bool  # every row holds the same kernel weights (shifted)
    products_equal: bool  # matrix @ x equals the convolution for the image tried
    conv_parameters: int  # kh * kw: what the conv layer stores
    dense_parameters: int  # H'W' * HW: what a fully connected layer of these sizes stores


def sparse_fc_example(
    kernel: np.ndarray | None = None,
    in_hw: tuple[int, int] = (4, 4),
    rng: np.random.Generator | None = None,
) -> SparseFC:
    """The primer's example: a 3x3 kernel on a 4x4 input is a 4x16 matrix with 9 non-zeros per
    row, the same 9 weights in every row; ``matrix @ x`` equals the convolution (checked on a
    random image from ``rng``, default seed 0). ``kernel`` defaults to ``1..9`` as 3x3."""
    k = np.arange(1.0, 10.0).reshape(3, 3) if kernel is None else np.asarray(kernel, float)
    m = conv_as_matrix(k, in_hw)
    rng = np.random.default_rng(0) if rng is None else rng
    x = rng.standard_normal(in_hw)
    conv = F.conv2d(x[None, None], k[None, None])[0, 0]
    rows = [np.sort(row[row != 0]) for row in m]
    weights = np.sort(k[k != 0].ravel())
    return SparseFC(
        matrix=m,
        nonzeros_per_row=np.count_nonzero(m, axis=1),
        rows_share_weights=all(np.array_equal(r, weights) for r in rows),
        products_equal=bool(np.allclose(m @ x.ravel(), conv.ravel(), rtol=0, atol=1e-12)),
        conv_parameters=k.size,
        dense_parameters=m.size,
    )


def input_gradient_by_full_convolution(dout: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``dL/dx`` of ``y = conv2d(x, weight)`` (stride 1, no padding) as the primer derives it:
    the wide (``'full'``) convolution of the output gradient with the kernel rotated by 180
    degrees, ``dx[c] = sum_o full_corr(dout[o], rot180(weight[o, c]))``.

    dout ``(N, O, H', W')``, weight ``(O, C, kh, kw)`` -> ``(N, C, H' + kh - 1, W' + kw - 1)``.
    (The cross-correlation with the rotated kernel is the true convolution with the kernel:
    ``scipy.signal.convolve2d(dout[o], weight[o, c], 'full')``.)"""
    rotated = weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]  # (C, O, kh, kw), each 180 degrees
    return F.conv2d(dout, np.ascontiguousarray(rotated), padding="full")


def weight_gradient_by_correlation(x: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """``dL/dweight`` of ``y = conv2d(x, weight)`` (stride 1, no padding): the (valid)
    correlation of the input with the output gradient, summed over the batch,
    ``dw[o, c] = sum_n corr(x[n, c], dout[n, o])``.

    x ``(N, C, H, W)``, dout ``(N, O, H', W')`` -> ``(O, C, H - H' + 1, W - W' + 1)``."""
    # the batch becomes the channel axis that conv2d sums over
    dw = F.conv2d(
        np.ascontiguousarray(x.transpose(1, 0, 2, 3)),
        np.ascontiguousarray(dout.transpose(1, 0, 2, 3)),
    )
    return dw.transpose(1, 0, 2, 3)


def _relu_map(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return np.maximum(F.conv2d(x, kernel[None, None] if kernel.ndim == 2 else kernel), 0.0)


def _relative_change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-300))


def pooling_shift_change(
    images: np.ndarray,
    kernel: np.ndarray,
    shifts: tuple[int, ...] = (1, 2, 3),
    pool: int = 2,
) -> dict[int, tuple[float, float]]:
    """For each shift s (pixels to the right): the relative change ``||f(x_s) - f(x)|| /
    ||f(x)||`` of the feature map ``f = ReLU(conv2d(x, kernel))`` and of its ``pool x pool``
    max pooling: ``{s: (unpooled, pooled)}``.

    images ``(N, 1, H, W)``; kernel ``(kh, kw)`` or ``(O, 1, kh, kw)``. Max pooling keeps a
    window's maximum wherever in the window it sits, so its map moves less than the unpooled
    one (the pooled map of a 1-pixel shift changes less)."""
    base = _relu_map(images, np.asarray(kernel, images.dtype))
    pooled = F.max_pool2d(base, pool, pool, "valid")
    out = {}
    for s in shifts:
        moved = _relu_map(shift_images(images, 0, s), np.asarray(kernel, images.dtype))
        out[s] = (
            _relative_change(base, moved),
            _relative_change(pooled, F.max_pool2d(moved, pool, pool, "valid")),
        )
    return out


def prediction_agreement(
    model: Sequential, images: np.ndarray, shifts: tuple[int, ...] = (1, 2, 3)
) -> dict[int, float]:
    """Fraction of ``images`` whose predicted class stays the same when they move ``s``
    pixels (right, left, down and up; the mean of the four): ``{s: fraction}``."""
    base = model.predict(images).argmax(axis=1)
    out = {}
    for s in shifts:
        same = [
            float(np.mean(model.predict(shift_images(images, dy, dx)).argmax(axis=1) == base))
            for dy, dx in ((0, s), (0, -s), (s, 0), (-s, 0))
        ]
        out[s] = float(np.mean(same))
    return out


# The primer's classic filters, as kernels for the true convolution (convolve2d). Sobel's
# "vertical" kernel responds to vertical edges (a change along x), the "horizontal" to
# horizontal ones; the Gaussian is the 3x3 binomial [1 2 1]^T [1 2 1] / 16 (sigma ~ 0.85).
CLASSIC_FILTERS: dict[str, np.ndarray] = {
    "sobel_vertical": np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]),
    "sobel_horizontal": np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]),
    "gaussian": np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0,
    "laplacian": np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]),
}


def apply_filter(image: np.ndarray, kernel: np.ndarray | str, padding: F.Padding = "same"):
    """``image`` ``(H, W)`` convolved (true convolution, flipped kernel) with ``kernel``
    ``(kh, kw)`` or the name of one of :data:`CLASSIC_FILTERS`: ``(H', W')`` (``'same'``: the
    image's size)."""
    k = CLASSIC_FILTERS[kernel] if isinstance(kernel, str) else np.asarray(kernel, float)
    x = np.asarray(image, dtype=np.float64)
    return F.convolve2d(x[None, None], k[None, None], padding=padding)[0, 0]


DECAY_KERNEL = np.array([1.0, 0.5, 0.25])


def decay_response(x: np.ndarray, w: np.ndarray = DECAY_KERNEL) -> np.ndarray:
    """The primer's decay signal: ``y_t = sum_k w_k x_(t-k+1) = x_t + x_(t-1) / 2 +
    x_(t-2) / 4`` for ``w = [1, 1/2, 1/4]`` (each input's effect halves every step), the
    causal part (first ``len(x)`` samples) of the full 1-D convolution ``convolve1d``."""
    x = np.asarray(x, dtype=np.float64)
    full = F.convolve1d(x[None, None], np.asarray(w, float)[None, None], padding="full")
    return full[0, 0, : len(x)]
