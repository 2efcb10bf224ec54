"""Stateless array functions of the classical engine: convolution and pooling, forward and backward.

Everything is built on one data movement, *im2col*: the receptive field of every output pixel
becomes one column of a matrix, so a convolution is one matrix product (model §1: ``Y = A F``).

Layout conventions
------------------
- Images: ``(N, C, H, W)``. Kernels: ``(O, C, kh, kw)`` (cross-correlation, no flip, as every
  framework does).
- ``cols`` from :func:`im2col` has shape ``(C * kh * kw, N * H' * W')``: row index
  ``(c, i, j)`` (channel-major, like ``weight.reshape(O, -1)``), column index ``(n, h', w')``.
  Column ``(n, p)`` is the transposed patch ``A_p`` of image ``n`` in the model's notation.

Sizes
-----
``stride`` is an int or a pair. ``padding`` is an int, a pair, ``'same'``, ``'valid'`` or
``'full'``:

- integer padding ``P``: ``H' = (H + 2P - kh) / s + 1``; a non-integer ``H'`` raises ValueError
  (no silent rounding);
- ``'valid'``: no padding, ``H' = ceil((H - kh + 1) / s)`` (TensorFlow's rule);
- ``'same'``: ``H' = ceil(H / s)``, with ``max((H' - 1) s + kh - H, 0)`` padding split as
  TensorFlow does (the extra row/column at the bottom/right);
- ``'full'``: the *wide* convolution, ``kh - 1`` / ``kw - 1`` zeros on every side, so every
  window that overlaps the input by at least one pixel is computed:
  ``H' = ceil((H + kh - 1) / s)`` (``H + kh - 1`` at stride 1, as ``scipy.signal``'s
  ``mode='full'``).

Convolution or cross-correlation
--------------------------------
What deep-learning frameworks call a convolution (:func:`conv2d`) is a *cross-correlation*:
``out[i, j] = sum_{u, v} x[i + u, j + v] w[u, v]``, the kernel laid over the image as it is.
The convolution of signal processing flips the kernel first:
``out[i, j] = sum_{u, v} x[i + u, j + v] w[kh - 1 - u, kw - 1 - v]``
(:func:`convolve2d`; with ``padding='full'`` it is ``scipy.signal.convolve2d(x, w, 'full')``).
For a network that learns its kernels the two are the same model (the flip is absorbed into
the learned weights); they differ when a kernel is given, e.g. a known filter.

1-D convolution (:func:`conv1d`) of signals ``(N, C, L)`` runs through the same im2col as a
``(N, C, 1, L)`` image with ``(O, C, 1, k)`` kernels; :func:`convolve1d` is the signal-processing
(and the primer's) convolution ``y_t = sum_k w_k x_(t-k+1)``, ``numpy.convolve`` in every mode.

Grouped convolution
-------------------
``groups=g`` (:func:`conv2d`, :func:`conv1d`, :func:`convolve2d`) takes PyTorch's kernels
``(O, C / g, kh, kw)``: input and output maps fall into g consecutive groups and each output
group sees only its input group. It is the block-diagonal case of a connection table
(:func:`group_table`): the dense convolution with :func:`expand_groups` of the kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import DTypeLike

__all__ = [
    "check_window_args",
    "Geometry",
    "Workspace",
    "pair",
    "conv_geometry",
    "im2col",
    "col2im",
    "conv2d",
    "conv2d_forward",
    "conv2d_backward",
    "ConvCache",
    "convolve2d",
    "convolve2d_forward",
    "convolve2d_backward",
    "conv1d",
    "conv1d_forward",
    "conv1d_backward",
    "convolve1d",
    "convolve1d_forward",
    "convolve1d_backward",
    "Convolve1DCache",
    "check_groups",
    "group_table",
    "table_groups",
    "expand_groups",
    "patch_sq_norms",
    "max_pool2d",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "MaxPoolCache",
    "avg_pool2d",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "AvgPoolCache",
    "LRNCache",
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "local_response_norm",
    "local_response_norm_forward",
    "local_response_norm_backward",
]

PADDING_MODES = ("same", "valid", "full")

Padding = int | tuple[int, int] | str


def pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    """Return ``value`` as a pair of ints; an int ``v`` becomes ``(v, v)``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


@dataclass(frozen=True)
class Geometry:
    """Sizes of one sliding-window operation on a ``(N, C, H, W)`` input.

    ``pads`` is ``(top, bottom, left, right)``; ``out`` is ``(H', W')``.
    """

    in_hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]
    out: tuple[int, int]

    @property
    def padded_hw(self) -> tuple[int, int]:
        top, bottom, left, right = self.pads
        return self.in_hw[0] + top + bottom, self.in_hw[1] + left + right

    @property
    def has_padding(self) -> bool:
        return any(self.pads)


def check_window_args(
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
    *,
    what: str = "conv2d",
) -> None:
    """Validate kernel, stride and padding on their own (no input size needed), so a layer can
    reject bad settings at construction time."""
    kh, kw = pair(kernel, "kernel_size")
    sh, sw = pair(stride, "stride")
    if kh < 1 or kw < 1:
        raise ValueError(f"{what}: kernel size must be positive, got {(kh, kw)}")
    if sh < 1 or sw < 1:
        raise ValueError(f"{what}: stride must be positive, got {(sh, sw)}")
    if isinstance(padding, str):
        if padding.lower() not in PADDING_MODES:
            raise ValueError(
                f"{what}: padding must be an int, a pair, 'same', 'valid' or 'full', "
                f"got {padding!r}"
            )
    else:
        ph, pw = pair(padding, "padding")
        if ph < 0 or pw < 0:
            raise ValueError(f"{what}: padding must be non-negative, got {(ph, pw)}")


def conv_geometry(
    in_hw: tuple[int, ...],
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
    *,
    what: str = "conv2d",
) -> Geometry:
    """Output size and padding of a window of size ``kernel`` sliding over ``in_hw``.

    Raises ValueError naming the shapes when integer padding gives a non-integer output size,
    or when the window does not fit.
    """
    check_window_args(kernel, stride, padding, what=what)
    kh, kw = pair(kernel, "kernel_size")
    sh, sw = pair(stride, "stride")
    h, w = in_hw
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            if h < kh or w < kw:
                raise ValueError(f"{what}: kernel {(kh, kw)} larger than input {(h, w)}")
            out = (math.ceil((h - kh + 1) / sh), math.ceil((w - kw + 1) / sw))
            pads = (0, 0, 0, 0)
        elif mode == "same":
            out = (math.ceil(h / sh), math.ceil(w / sw))
            ph = max((out[0] - 1) * sh + kh - h, 0)
            pw = max((out[1] - 1) * sw + kw - w, 0)
            pads = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
        elif mode == "full":
            out = (math.ceil((h + kh - 1) / sh), math.ceil((w + kw - 1) / sw))
            pads = (kh - 1, kh - 1, kw - 1, kw - 1)
        else:  # pragma: no cover - check_window_args accepts only PADDING_MODES
            raise AssertionError(padding)
    else:
        ph, pw = pair(padding, "padding")
        out_dims = []
        for size, k, s, p, axis in ((h, kh, sh, ph, "height"), (w, kw, sw, pw, "width")):
            span = size + 2 * p - k
            if span < 0:
                raise ValueError(
                    f"{what}: kernel {(kh, kw)} larger than padded input "
                    f"{(h + 2 * ph, w + 2 * pw)} (input {(h, w)}, padding {(ph, pw)})"
                )
            if span % s:
                raise ValueError(
                    f"{what}: input {(h, w)} with kernel {(kh, kw)}, stride {(sh, sw)} and "
                    f"padding {(ph, pw)} gives a non-integer output {axis} "
                    f"({size} + 2*{p} - {k})/{s} + 1 = {span / s + 1:g}; "
                    "adjust padding or use padding='valid' / 'same'"
                )
            out_dims.append(span // s + 1)
        out = (out_dims[0], out_dims[1])
        pads = (ph, ph, pw, pw)
    return Geometry(in_hw=(h, w), kernel=(kh, kw), stride=(sh, sw), pads=pads, out=out)


def _check_4d(x: np.ndarray, name: str = "x") -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        shape = getattr(x, "shape", None)
        raise ValueError(f"{name} must be a 4-D array (N, C, H, W), got shape {shape}")


def _pad(x: np.ndarray, geom: Geometry, value: float = 0.0) -> np.ndarray:
    if not geom.has_padding:
        return x
    top, bottom, left, right = geom.pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _windows(xp: np.ndarray, geom: Geometry) -> np.ndarray:
    """Strided view ``(N, C, H', W', kh, kw)`` of all windows of the padded input (no copy)."""
    (kh, kw), (sh, sw), (ho, wo) = geom.kernel, geom.stride, geom.out
    view = sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return view[:, :, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw]


def im2col(x: np.ndarray, geom: Geometry, out: np.ndarray | None = None) -> np.ndarray:
    """Patches of ``x`` ``(N, C, H, W)`` as columns: ``(C * kh * kw, N * H' * W')``.

    Row order ``(c, i, j)`` matches ``weight.reshape(O, -1)``; column order is ``(n, h', w')``.
    ``out`` may be a reusable buffer with ``C * kh * kw * N * H' * W'`` elements of x's dtype.
    """
    xp = _pad(x, geom)
    n, c = x.shape[:2]
    (kh, kw), (ho, wo) = geom.kernel, geom.out
    shape6 = (c, kh, kw, n, ho, wo)
    cols = np.empty(shape6, dtype=x.dtype) if out is None else out.reshape(shape6)
    # One strided copy into a C-contiguous target, so the GEMM that follows streams it.
    cols[...] = _windows(xp, geom).transpose(1, 4, 5, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * ho * wo)


def col2im(cols: np.ndarray, x_shape: tuple[int, ...], geom: Geometry) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add columns back to an image ``x_shape`` = (N, C, H, W)."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ho, wo) = geom.kernel, geom.stride, geom.out
    hp, wp = geom.padded_hw
    cols6 = cols.reshape(c, kh, kw, n, ho, wo)
    # Accumulate in (C, N, H, W) so each slice add reads a contiguous (C, N, H', W') block.
    dxp = np.zeros((c, n, hp, wp), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i : i + sh * ho : sh, j : j + sw * wo : sw] += cols6[:, i, j]
    top, _, left, _ = geom.pads
    return dxp[:, :, top : top + h, left : left + w].transpose(1, 0, 2, 3)


class Workspace:
    """Scratch buffers reused across calls, keyed by name.

    Large temporaries (the im2col matrix above all) cost more to allocate than to fill: every
    fresh multi-megabyte array is page-faulted in by the kernel. A layer keeps one Workspace and
    gets the same buffer back on every batch of the same shape. Never return a workspace buffer
    to a caller that may keep it: the next call overwrites it.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, size: int, dtype: DTypeLike) -> np.ndarray:
        """A 1-D buffer of ``size`` elements of ``dtype`` (contents undefined)."""
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.empty(size, dtype=dtype)
            self._buffers[name] = buf
        return buf[:size]

    def clear(self) -> None:
        self._buffers.clear()


class ConvCache(NamedTuple):
    """What :func:`conv2d_backward` needs from :func:`conv2d_forward`."""

    x_shape: tuple[int, ...]  # (N, C, H, W) of the input
    cols: np.ndarray  # (C kh kw, N H' W') im2col matrix of the input
    weight: np.ndarray  # (O, C / groups, kh, kw) kernel used
    geom: Geometry
    has_bias: bool
    groups: int = 1


def check_groups(groups: int, in_channels: int, out_channels: int, what: str = "conv2d") -> int:
    """``groups`` as an int that divides both channel counts (ValueError/TypeError otherwise)."""
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"{what}: groups must be an int, got {groups!r}")
    g = int(groups)
    if g < 1 or in_channels % g or out_channels % g:
        raise ValueError(
            f"{what}: groups must be a positive divisor of both in_channels ({in_channels}) and "
            f"out_channels ({out_channels}), got {g}"
        )
    return g


def group_table(out_channels: int, in_channels: int, groups: int) -> np.ndarray:
    """The connection table of a grouped convolution: boolean ``(O, C)``, block-diagonal.

    Output map ``o`` sees input map ``c`` exactly when both are in the same group
    (``o // (O / groups) == c // (C / groups)``).
    """
    g = check_groups(groups, in_channels, out_channels)
    og, cg = out_channels // g, in_channels // g
    return (np.arange(out_channels)[:, None] // og) == (np.arange(in_channels)[None, :] // cg)


def table_groups(table: np.ndarray) -> int | None:
    """The ``groups`` whose :func:`group_table` equals ``table`` ``(O, C)``, or None.

    A full table gives 1; LeNet-5's C3 table (not block-diagonal) gives None.
    """
    arr = np.asarray(table, dtype=bool)
    o, c = arr.shape
    for g in range(1, math.gcd(o, c) + 1):
        if o % g == 0 and c % g == 0 and np.array_equal(arr, group_table(o, c, g)):
            return g
    return None


def expand_groups(weight: np.ndarray, groups: int) -> np.ndarray:
    """A grouped kernel ``(O, C / groups, kh, kw)`` as the dense kernel ``(O, C, kh, kw)`` it
    equals: each output map's weights in its group's channels, zeros elsewhere."""
    _check_4d(weight, "weight")
    o, cg, kh, kw = weight.shape
    g = check_groups(groups, cg * groups, o)
    dense = np.zeros((o, cg * g, kh, kw), dtype=weight.dtype)
    og = o // g
    for k in range(g):
        dense[k * og : (k + 1) * og, k * cg : (k + 1) * cg] = weight[k * og : (k + 1) * og]
    return dense


def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
    groups: int = 1,
    *,
    workspace: Workspace | None = None,
    workspace_key: str = "cols",
) -> tuple[np.ndarray, ConvCache]:
    """Convolution (cross-correlation) that also returns the cache :func:`conv2d_backward` needs.

    x ``(N, C, H, W)``, weight ``(O, C / groups, kh, kw)``, bias ``(O,)`` -> out
    ``(N, O, H', W')``. The output is a transposed view of a channel-major ``(O, N, H', W')``
    buffer, which is the layout the next convolution's im2col reads fastest.

    ``groups`` g (PyTorch's layout and meaning): the C input maps and the O output maps are cut
    into g consecutive groups and output group k sees only input group k, so output map ``o``
    has ``C / g`` kernel slices (AlexNet's two-GPU split is g = 2). Equal to the dense
    convolution with :func:`expand_groups` of the weight (zeros between groups), at 1/g of the
    multiply-adds: one batched GEMM over the groups' row blocks of the shared im2col matrix.
    ``groups=1`` runs the plain single GEMM.
    """
    _check_4d(x)
    _check_4d(weight, "weight")
    o = weight.shape[0]
    g = check_groups(groups, x.shape[1], o)
    if weight.shape[1] * g != x.shape[1]:
        per = "" if g == 1 else f" per group ({g} groups)"
        raise ValueError(
            f"conv2d: input {x.shape} has {x.shape[1]} channels but weight {weight.shape} "
            f"expects {weight.shape[1]}{per}"
        )
    if bias is not None and bias.shape != (o,):
        raise ValueError(f"conv2d: bias shape {bias.shape} does not match {o} output channels")
    geom = conv_geometry(x.shape[2:], weight.shape[2:], stride, padding)
    n, (ho, wo) = x.shape[0], geom.out
    dtype = np.result_type(x.dtype, weight.dtype)
    buf = None
    if workspace is not None:
        buf = workspace.get(workspace_key, x.shape[1] * weight[0, 0].size * n * ho * wo, x.dtype)
    cols = im2col(x, geom, buf)
    if g == 1:
        out2d = weight.reshape(o, -1).astype(dtype, copy=False) @ cols  # (O, N*H'*W'): one GEMM
    else:
        # im2col rows are channel-major, so group k's rows are one contiguous block of cols
        w3d = weight.reshape(g, o // g, -1).astype(dtype, copy=False)
        out2d = np.matmul(w3d, cols.reshape(g, w3d.shape[2], -1)).reshape(o, -1)
    if bias is not None:
        out2d += bias.astype(dtype, copy=False)[:, None]
    out = out2d.reshape(o, n, ho, wo).transpose(1, 0, 2, 3)
    return out, ConvCache(x.shape, cols, weight, geom, bias is not None, g)


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
    groups: int = 1,
) -> np.ndarray:
    """2-D convolution: x ``(N, C, H, W)``, weight ``(O, C / groups, kh, kw)`` ->
    ``(N, O, H', W')`` (grouped when ``groups`` > 1: see :func:`conv2d_forward`)."""
    return conv2d_forward(x, weight, bias, stride, padding, groups)[0]


def conv2d_backward(
    dout: np.ndarray,
    cache: ConvCache,
    need_input_grad: bool = True,
    *,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv2d_forward`: returns ``(dx, dweight, dbias)``.

    ``dx`` is skipped (None) when ``need_input_grad`` is False, e.g. for a network's first layer,
    which saves the largest data movement of the backward pass.
    """
    x_shape, cols, weight, geom, has_bias, g = cache
    o = weight.shape[0]
    dout2d = dout.transpose(1, 0, 2, 3).reshape(o, -1)  # (O, N*H'*W')
    dbias = dout2d.sum(axis=1) if has_bias else None
    if g == 1:
        # cols @ dout2d.T streams cols row by row: faster than dout2d @ cols.T for skinny O.
        dweight = (cols @ dout2d.T).T.reshape(weight.shape).astype(weight.dtype, copy=False)
    else:
        # per group: (C/g kh kw, NHW) @ (NHW, O/g), batched over the groups
        dout3d = dout2d.reshape(g, o // g, -1)
        dw3d = np.matmul(cols.reshape(g, -1, cols.shape[1]), dout3d.transpose(0, 2, 1))
        dweight = dw3d.transpose(0, 2, 1).reshape(weight.shape).astype(weight.dtype, copy=False)
    dx = None
    if need_input_grad:
        if g == 1:
            w2d_t = weight.reshape(o, -1).T.astype(dout2d.dtype, copy=False)
        else:  # (C/g kh kw, O/g) per group, stacked: (g, C/g kh kw, O/g)
            w2d_t = weight.reshape(g, o // g, -1).transpose(0, 2, 1)
            w2d_t = w2d_t.astype(dout2d.dtype, copy=False)
        if geom.stride == (1, 1):
            dx = _conv_input_grad_stride1(dout, w2d_t, x_shape, geom, workspace)
        elif g == 1:
            dx = col2im(w2d_t @ dout2d, x_shape, geom)
        else:
            dcols = np.matmul(w2d_t, dout2d.reshape(g, o // g, -1))
            dx = col2im(dcols.reshape(-1, dout2d.shape[1]), x_shape, geom)
    return dx, dweight, dbias


def _conv_input_grad_stride1(
    dout: np.ndarray,
    w2d_t: np.ndarray,
    x_shape: tuple[int, ...],
    geom: Geometry,
    workspace: Workspace | None,
) -> np.ndarray:
    """``dx`` of a stride-1 convolution with contiguous shifted adds instead of col2im.

    ``w2d_t`` is the transposed kernel matrix ``(C kh kw, O)``, or for a grouped convolution
    one per group, ``(groups, C/groups kh kw, O/groups)``.

    With stride 1, output pixel ``(n, h, w)`` touches padded input pixel
    ``(n, h + i, w + j)``. Laying ``dout`` out on the padded input grid (zeros elsewhere) and
    flattening it, that is one *uniform* shift by ``i * Wp + j`` for every pixel, so each kernel
    offset becomes a single contiguous slice add over the whole batch. The zeros at the
    off-grid positions make the wrap-around across rows and images harmless. This moves more
    bytes than col2im but in long contiguous runs, which is what numpy does fast.
    """
    n, c, h, w = x_shape
    o = dout.shape[1]
    (kh, kw), (ho, wo) = geom.kernel, geom.out
    hp, wp = geom.padded_hw
    length = n * hp * wp
    dtype = w2d_t.dtype
    dgrid = np.zeros((o, n, hp, wp), dtype=dtype)
    dgrid[:, :, :ho, :wo] = dout.transpose(1, 0, 2, 3)
    size = c * kh * kw * length
    buf = np.empty(size, dtype) if workspace is None else workspace.get("dcols", size, dtype)
    if w2d_t.ndim == 2:
        dcols = np.matmul(w2d_t, dgrid.reshape(o, length), out=buf.reshape(c * kh * kw, length))
    else:  # grouped: w2d_t (g, C/g kh kw, O/g), one product per group, rows in channel order
        g = w2d_t.shape[0]
        grid3 = dgrid.reshape(g, o // g, length)
        dcols = np.matmul(w2d_t, grid3, out=buf.reshape(g, c * kh * kw // g, length))
    dcols = dcols.reshape(c, kh, kw, length)
    acc = np.zeros((c, length + (kh - 1) * wp + kw - 1), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            shift = i * wp + j
            acc[:, shift : shift + length] += dcols[:, i, j]
    dxp = acc[:, :length].reshape(c, n, hp, wp)
    top, _, left, _ = geom.pads
    return dxp[:, :, top : top + h, left : left + w].transpose(1, 0, 2, 3)


# ----------------------------------------------------------------------------------------------
# True (flipped-kernel) convolution and 1-D convolution, on the same im2col machinery
# ----------------------------------------------------------------------------------------------


def convolve2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
    groups: int = 1,
) -> tuple[np.ndarray, ConvCache]:
    """True 2-D convolution (kernel flipped in both spatial axes) and its backward cache.

    x ``(N, C, H, W)``, weight ``(O, C / groups, kh, kw)`` -> ``(N, O, H', W')``: the
    cross-correlation :func:`conv2d` with ``weight[:, :, ::-1, ::-1]`` (see the module
    docstring).
    """
    _check_4d(weight, "weight")
    return conv2d_forward(x, weight[:, :, ::-1, ::-1], bias, stride, padding, groups)


def convolve2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
    groups: int = 1,
) -> np.ndarray:
    """True convolution ``sum_{u,v} x[i+u, j+v] w[kh-1-u, kw-1-v]``: ``(N, O, H', W')``.

    With ``padding='full'`` and one channel this is ``scipy.signal.convolve2d(x, w, 'full')``;
    :func:`conv2d` (what every framework calls a convolution) is ``scipy.signal.correlate2d``.
    """
    return convolve2d_forward(x, weight, bias, stride, padding, groups)[0]


def convolve2d_backward(
    dout: np.ndarray, cache: ConvCache, need_input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`convolve2d_forward`: ``(dx, dweight, dbias)`` (dweight unflipped)."""
    dx, dw_flipped, db = conv2d_backward(dout, cache, need_input_grad)
    return dx, np.ascontiguousarray(dw_flipped[:, :, ::-1, ::-1]), db


def _conv1d_args(stride: int, padding: int | str) -> tuple[tuple[int, int], tuple[int, int] | str]:
    """1-D stride and padding as the 2-D arguments of a ``(N, C, 1, L)`` image."""
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)):
        raise TypeError(f"conv1d: stride must be an int, got {stride!r}")
    if isinstance(padding, str):
        return (1, int(stride)), padding
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)):
        raise TypeError(
            f"conv1d: padding must be an int, 'same', 'valid' or 'full', got {padding!r}"
        )
    return (1, int(stride)), (0, int(padding))


def conv1d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int | str = 0,
    groups: int = 1,
    *,
    workspace: Workspace | None = None,
    workspace_key: str = "cols",
) -> tuple[np.ndarray, ConvCache]:
    """1-D convolution (cross-correlation) of signals and the cache :func:`conv1d_backward` needs.

    x ``(N, C, L)``, weight ``(O, C / groups, k)``, bias ``(O,)`` -> out ``(N, O, L')`` with
    ``L' = (L + 2P - k) / s + 1`` (integer ``padding`` P), or ``padding`` ``'same'``,
    ``'valid'``, ``'full'`` (rules of the module docstring). Runs :func:`conv2d_forward` on
    ``(N, C, 1, L)`` with ``(O, C / groups, 1, k)`` kernels: one im2col, one GEMM.
    """
    for arr, name, shape in ((x, "x", "(N, C, L)"), (weight, "weight", "(O, C, k)")):
        if not isinstance(arr, np.ndarray) or arr.ndim != 3:
            raise ValueError(
                f"conv1d: {name} must be a 3-D array {shape}, got shape {getattr(arr, 'shape', None)}"
            )
    stride2, padding2 = _conv1d_args(stride, padding)
    # sizes checked here first so that errors name conv1d; the pairs are (1, L) and (1, k)
    conv_geometry((1, x.shape[2]), (1, weight.shape[2]), stride2, padding2, what="conv1d")
    out, cache = conv2d_forward(
        x[:, :, None, :],
        weight[:, :, None, :],
        bias,
        stride2,
        padding2,
        groups,
        workspace=workspace,
        workspace_key=workspace_key,
    )
    return out[:, :, 0, :], cache


def conv1d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int | str = 0,
    groups: int = 1,
) -> np.ndarray:
    """1-D convolution: x ``(N, C, L)``, weight ``(O, C / groups, k)`` -> ``(N, O, L')``.

    Cross-correlation like :func:`conv2d`; ``numpy.convolve(x, w[::-1], 'valid')`` per channel
    pair. The primer's 1-D convolution (kernel flipped) is :func:`convolve1d`.
    """
    return conv1d_forward(x, weight, bias, stride, padding, groups)[0]


def conv1d_backward(
    dout: np.ndarray,
    cache: ConvCache,
    need_input_grad: bool = True,
    *,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv1d_forward`: ``(dx (N, C, L), dweight (O, C, k), dbias)``."""
    dx, dw, db = conv2d_backward(dout[:, :, None, :], cache, need_input_grad, workspace=workspace)
    return (None if dx is None else dx[:, :, 0, :]), dw[:, :, 0, :], db


class Convolve1DCache(NamedTuple):
    """What :func:`convolve1d_backward` needs from :func:`convolve1d_forward`."""

    conv: ConvCache  # of the cross-correlation with the flipped kernel on the padded signal
    pads: tuple[int, int]  # zeros added (before, after) the signal; (0, 0) for integer padding


def _convolve1d_pads(length: int, k: int, padding: str) -> tuple[int, int]:
    """Zeros before and after a signal of ``length`` for numpy.convolve's ``padding`` mode."""
    mode = padding.lower()
    if mode == "valid":
        return 0, 0
    if mode == "full":
        return k - 1, k - 1
    if mode == "same":
        # numpy keeps the centre of the full output, dropping (k - 1) // 2 samples at its start
        # (and k // 2 at its end): k // 2 zeros before the signal, (k - 1) // 2 after it.
        return k // 2, (k - 1) // 2
    raise ValueError(
        f"convolve1d: padding must be an int, 'same', 'valid' or 'full', got {padding!r}"
    )


def convolve1d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int | str = 0,
) -> tuple[np.ndarray, Convolve1DCache]:
    """The primer's 1-D convolution ``y_t = sum_k w_k x_(t-k+1)`` (kernel flipped) and its cache.

    x ``(N, C, L)``, weight ``(O, C, k)``, bias ``(O,)`` -> ``(N, O, L')``, summed over input
    channels. For one channel, ``stride=1`` and ``L >= k`` it is ``numpy.convolve(x, w, mode)``
    with ``mode = padding`` in ``'valid'`` (``L - k + 1`` outputs, the kernel inside the
    signal), ``'full'`` (``L + k - 1``: the *wide* convolution, every overlap) and ``'same'``
    (``L``: the centre of the full output). For an even ``k`` the centre is not unique: like
    numpy, ``'same'`` puts ``k/2`` zeros before the signal and ``k/2 - 1`` after it (the
    cross-correlation :func:`conv1d` puts the extra zero *after*, TensorFlow's rule). ``stride``
    s keeps every s-th of these outputs, starting with the first: ``numpy.convolve(...)[::s]``.
    An integer ``padding`` P adds P zeros on both sides and follows :func:`conv1d`'s size rule
    (``(L + 2P - k) / s + 1`` must be an integer). numpy's ``'same'`` and ``'valid'`` with
    ``k > L`` swap the two arrays; here ``'valid'`` refuses, ``'same'`` keeps ``L`` outputs.
    """
    if not isinstance(weight, np.ndarray) or weight.ndim != 3:
        raise ValueError(
            f"convolve1d: weight must be a 3-D array (O, C, k), got shape "
            f"{getattr(weight, 'shape', None)}"
        )
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise ValueError(
            f"convolve1d: x must be a 3-D array (N, C, L), got shape {getattr(x, 'shape', None)}"
        )
    flipped = weight[:, :, ::-1]
    if not isinstance(padding, str):
        out, cache = conv1d_forward(x, flipped, bias, stride, padding)
        return out, Convolve1DCache(cache, (0, 0))
    pads = _convolve1d_pads(x.shape[2], weight.shape[2], padding)
    xp = np.pad(x, ((0, 0), (0, 0), pads)) if any(pads) else x
    out, cache = conv1d_forward(xp, flipped, bias, stride, "valid")
    return out, Convolve1DCache(cache, pads)


def convolve1d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int | str = 0,
) -> np.ndarray:
    """The primer's 1-D convolution (flipped kernel): ``(N, C, L)``, ``(O, C, k)`` ->
    ``(N, O, L')``; ``numpy.convolve(x, w, padding)[::stride]`` per channel pair, summed over
    the channels (see :func:`convolve1d_forward` for the modes and even kernels)."""
    return convolve1d_forward(x, weight, bias, stride, padding)[0]


def convolve1d_backward(
    dout: np.ndarray, cache: Convolve1DCache, need_input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`convolve1d_forward`: ``(dx (N, C, L), dweight (O, C, k), dbias)``."""
    dxp, dw_flipped, db = conv1d_backward(dout, cache.conv, need_input_grad)
    before, after = cache.pads
    dx = None if dxp is None else dxp[:, :, before : dxp.shape[2] - after]
    return dx, np.ascontiguousarray(dw_flipped[:, :, ::-1]), db


def patch_sq_norms(
    x: np.ndarray,
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
) -> np.ndarray:
    """Squared norms ``||A_p||^2`` of every receptive field over all channels: ``(N, H', W')``.

    Computed as a box filter of ``sum_c x^2`` through an integral image, so it costs O(N H W)
    instead of the O(N H' W' C kh kw) of summing the im2col rows.
    """
    _check_4d(x)
    geom = conv_geometry(x.shape[2:], kernel, stride, padding)
    # float64 accumulation: the integral image subtracts large partial sums.
    sq = _pad(np.einsum("nchw,nchw->nhw", x, x, dtype=np.float64)[:, None], geom)[:, 0]
    n, hp, wp = sq.shape
    integral = np.zeros((n, hp + 1, wp + 1))
    np.cumsum(np.cumsum(sq, axis=1), axis=2, out=integral[:, 1:, 1:])
    (kh, kw), (sh, sw), (ho, wo) = geom.kernel, geom.stride, geom.out
    r0 = np.arange(ho) * sh
    c0 = np.arange(wo) * sw
    box = (
        integral[:, r0[:, None] + kh, c0[None, :] + kw]
        - integral[:, r0[:, None], c0[None, :] + kw]
        - integral[:, r0[:, None] + kh, c0[None, :]]
        + integral[:, r0[:, None], c0[None, :]]
    )
    return np.maximum(box, 0.0).astype(x.dtype, copy=False)


# ----------------------------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------------------------


def _pool_geometry(x, kernel_size, stride, padding, what) -> Geometry:
    _check_4d(x)
    return conv_geometry(
        x.shape[2:], kernel_size, kernel_size if stride is None else stride, padding, what=what
    )


def _is_tiling(geom: Geometry) -> bool:
    """Non-overlapping windows that cover the input exactly (the common 2x2/2 case)."""
    return (
        geom.kernel == geom.stride
        and not geom.has_padding
        and geom.out[0] * geom.kernel[0] == geom.in_hw[0]
        and geom.out[1] * geom.kernel[1] == geom.in_hw[1]
    )


class MaxPoolCache(NamedTuple):
    """What :func:`max_pool2d_backward` needs from :func:`max_pool2d_forward`."""

    x_shape: tuple[int, ...]  # (N, C, H, W) of the input
    geom: Geometry
    arg: np.ndarray  # (N, C, H', W') flat index of each window's maximum within the window


class AvgPoolCache(NamedTuple):
    """What :func:`avg_pool2d_backward` needs from :func:`avg_pool2d_forward`."""

    x_shape: tuple[int, ...]  # (N, C, H, W) of the input
    geom: Geometry


def max_pool2d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: Padding = 0,
) -> tuple[np.ndarray, MaxPoolCache]:
    """Max pooling ``(N, C, H, W) -> (N, C, H', W')`` and the cache for the backward pass.

    ``stride`` defaults to ``kernel_size``. Padding is with -inf (it never wins the max).
    The cache holds the flat arg-max of every window, so the gradient goes to exactly one input
    (the first maximum on ties, like PyTorch).
    """
    geom = _pool_geometry(x, kernel_size, stride, padding, "max_pool2d")
    n, c = x.shape[:2]
    (kh, kw), (ho, wo) = geom.kernel, geom.out
    if _is_tiling(geom):
        blocks = x.reshape(n, c, ho, kh, wo, kw).transpose(0, 1, 2, 4, 3, 5)
    else:
        fill = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
        blocks = _windows(_pad(x, geom, fill), geom)
    blocks = blocks.reshape(n, c, ho, wo, kh * kw)
    arg = blocks.argmax(axis=-1)
    out = np.take_along_axis(blocks, arg[..., None], axis=-1)[..., 0]
    return out, MaxPoolCache(x.shape, geom, arg)


def max_pool2d(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: Padding = 0,
) -> np.ndarray:
    """Max pooling ``(N, C, H, W) -> (N, C, H', W')``; ``stride`` defaults to ``kernel_size``."""
    return max_pool2d_forward(x, kernel_size, stride, padding)[0]


def max_pool2d_backward(dout: np.ndarray, cache: MaxPoolCache) -> np.ndarray:
    """Route ``dout`` ``(N, C, H', W')`` to the arg-max of each window: ``(N, C, H, W)``."""
    n, c, h, w = cache.x_shape
    geom = cache.geom
    kw, (sh, sw), (ho, wo) = geom.kernel[1], geom.stride, geom.out
    hp, wp = geom.padded_hw
    # Flat index of each window's arg-max in the padded plane; bincount sums overlapping hits.
    di, dj = np.divmod(cache.arg, kw)
    rows = (np.arange(ho) * sh)[:, None] + di
    colsj = (np.arange(wo) * sw)[None, :] + dj
    plane = (np.arange(n * c) * (hp * wp)).reshape(n, c, 1, 1)
    flat = plane + rows * wp + colsj
    dxp = np.bincount(flat.ravel(), weights=dout.ravel(), minlength=n * c * hp * wp)
    dxp = dxp.astype(dout.dtype, copy=False).reshape(n, c, hp, wp)
    top, _, left, _ = geom.pads
    return dxp[:, :, top : top + h, left : left + w]


def avg_pool2d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: Padding = 0,
) -> tuple[np.ndarray, AvgPoolCache]:
    """Average pooling ``(N, C, H, W) -> (N, C, H', W')`` and the cache for the backward pass.

    ``stride`` defaults to ``kernel_size``; zero padding counts in the mean.
    """
    geom = _pool_geometry(x, kernel_size, stride, padding, "avg_pool2d")
    n, c = x.shape[:2]
    (kh, kw), (ho, wo) = geom.kernel, geom.out
    if _is_tiling(geom):
        out = x.reshape(n, c, ho, kh, wo, kw).mean(axis=(3, 5))
    else:
        out = _windows(_pad(x, geom), geom).mean(axis=(4, 5))
    return out, AvgPoolCache(x.shape, geom)


def avg_pool2d(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: Padding = 0,
) -> np.ndarray:
    """Average pooling ``(N, C, H, W) -> (N, C, H', W')``; zero padding counts in the mean."""
    return avg_pool2d_forward(x, kernel_size, stride, padding)[0]


def avg_pool2d_backward(dout: np.ndarray, cache: AvgPoolCache) -> np.ndarray:
    """Spread ``dout`` ``(N, C, H', W')`` evenly over each window: ``(N, C, H, W)``."""
    n, c, h, w = cache.x_shape
    geom = cache.geom
    (kh, kw), (sh, sw), (ho, wo) = geom.kernel, geom.stride, geom.out
    share = dout / (kh * kw)
    if _is_tiling(geom):
        dx = np.broadcast_to(share[:, :, :, None, :, None], (n, c, ho, kh, wo, kw))
        return dx.reshape(n, c, h, w).copy()  # a writable array, never a zero-stride view
    hp, wp = geom.padded_hw
    dxp = np.zeros((n, c, hp, wp), dtype=dout.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i : i + sh * ho : sh, j : j + sw * wo : sw] += share
    top, _, left, _ = geom.pads
    return dxp[:, :, top : top + h, left : left + w]


# ----------------------------------------------------------------------------------------------
# Global average pooling
# ----------------------------------------------------------------------------------------------


def global_avg_pool2d(x: np.ndarray) -> np.ndarray:
    """Mean of each channel over all positions: ``(N, C, H, W) -> (N, C)``."""
    _check_4d(x)
    return x.mean(axis=(2, 3))


def global_avg_pool2d_backward(dout: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Spread ``dout`` ``(N, C)`` evenly over every position: ``(N, C, H, W)``."""
    n, c, h, w = x_shape
    share = (dout / (h * w))[:, :, None, None]
    return np.broadcast_to(share, (n, c, h, w)).copy()


# ----------------------------------------------------------------------------------------------
# Local response normalisation (AlexNet), PyTorch's semantics
# ----------------------------------------------------------------------------------------------


def _channel_window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """``s[:, c] = sum_{c - before <= c' <= c + after} a[:, c']`` (zeros beyond the edges).

    A loop over the window's few offsets (not over pixels): exact, unlike a cumsum difference.
    """
    c = a.shape[1]
    pad = [(0, 0)] * a.ndim
    pad[1] = (before, after)
    ap = np.pad(a, pad)
    out = ap[:, 0:c].copy()
    for t in range(1, before + after + 1):
        out += ap[:, t : t + c]
    return out


def _check_lrn_args(size: int, alpha: float, beta: float, k: float) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive integer, got {size!r}")
    for name, v in (("alpha", alpha), ("beta", beta), ("k", k)):
        if not np.isfinite(v):
            raise ValueError(f"local_response_norm: {name} must be finite, got {v!r}")
    if k <= 0 or alpha < 0:
        # k > 0 and alpha >= 0 keep the denominator k + alpha * mean(a^2) positive.
        raise ValueError(
            f"local_response_norm: need k > 0 and alpha >= 0, got k={k}, alpha={alpha}"
        )


class LRNCache(NamedTuple):
    """What :func:`local_response_norm_backward` needs from :func:`local_response_norm_forward`."""

    x: np.ndarray  # (N, C, ...) the input
    scale: np.ndarray  # (N, C, ...) the denominator's base S = k + alpha / size * window sum of x^2
    inv: np.ndarray  # (N, C, ...) S^-beta
    size: int
    alpha: float
    beta: float


def local_response_norm_forward(
    x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> tuple[np.ndarray, LRNCache]:
    """Local response normalisation across channels, as ``torch.nn.LocalResponseNorm``.

    x ``(N, C, ...)`` -> ``b`` of the same shape,
    ``b_c = a_c / (k + alpha / size * sum_{c' = c - size//2}^{c + (size-1)//2} a_{c'}^2)^beta``,
    channels beyond the edges counting as zeros (the sum is still divided by ``size``).
    """
    _check_lrn_args(size, alpha, beta, k)
    if not isinstance(x, np.ndarray) or x.ndim < 3:
        raise ValueError(
            f"local_response_norm: x must be an array (N, C, ...) with at least 3 dimensions, "
            f"got shape {getattr(x, 'shape', None)}"
        )
    scale = _channel_window_sum(x * x, size // 2, (size - 1) // 2)
    scale *= alpha / size
    scale += k
    inv = scale ** (-beta)
    return x * inv, LRNCache(x, scale, inv, size, alpha, beta)


def local_response_norm(
    x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> np.ndarray:
    """See :func:`local_response_norm_forward`."""
    return local_response_norm_forward(x, size, alpha, beta, k)[0]


def local_response_norm_backward(dout: np.ndarray, cache: LRNCache) -> np.ndarray:
    """Gradient of :func:`local_response_norm_forward` with respect to its input.

    With ``S_c`` the denominator's base, ``db_c/da_j = [c = j] S_c^-beta
    - 2 beta alpha / size * a_c a_j S_c^(-beta-1) [j in window(c)]``; the sum over the ``c``
    whose window holds ``j`` is a window sum with the offsets mirrored.
    """
    x, scale, inv = cache.x, cache.scale, cache.inv
    size, alpha, beta = cache.size, cache.alpha, cache.beta
    t = dout * x * inv / scale
    back = _channel_window_sum(t, (size - 1) // 2, size // 2)
    return dout * inv - (2.0 * alpha * beta / size) * x * back
