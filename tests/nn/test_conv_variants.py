"""Wide ('full') convolution, true (flipped-kernel) convolution and 1-D convolution.

References: ``scipy.signal.correlate2d`` / ``convolve2d`` (mode 'full' and 'valid'),
``numpy.convolve`` for signals, and finite differences (float64) for every gradient.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal

from qcnn.nn import Conv1D, Conv2D
from qcnn.nn import functional as F
from tests.nn.test_layers import check_layer, grad_error


def scipy_multichannel(x, w, op, mode):
    """sum over input channels of ``op(x[n, c], w[o, c], mode)`` for every (n, o)."""
    n, c = x.shape[:2]
    o = w.shape[0]
    return np.array(
        [[sum(op(x[i, ch], w[j, ch], mode) for ch in range(c)) for j in range(o)] for i in range(n)]
    )


@pytest.mark.parametrize("hw, k", [((5, 6), (3, 2)), ((4, 4), (4, 4)), ((3, 7), (5, 1))])
def test_full_padding_is_scipy_full_cross_correlation(hw, k):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, *hw))
    w = rng.standard_normal((4, 3, *k))
    out = F.conv2d(x, w, padding="full")
    assert out.shape == (2, 4, hw[0] + k[0] - 1, hw[1] + k[1] - 1)
    ref = scipy_multichannel(x, w, scipy.signal.correlate2d, "full")
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["full", "valid"])
def test_convolve2d_flips_the_kernel_like_scipy(mode):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 6, 7))
    w = rng.standard_normal((3, 2, 3, 4))
    padding = "full" if mode == "full" else 0
    out = F.convolve2d(x, w, padding=padding)
    ref = scipy_multichannel(x, w, scipy.signal.convolve2d, mode)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)
    # ... and differs from the cross-correlation of the same kernel (an asymmetric one)
    assert np.abs(out - F.conv2d(x, w, padding=padding)).max() > 0.1
    # the flip is all there is: convolving with a flipped kernel is cross-correlating
    np.testing.assert_allclose(
        F.convolve2d(x, w[:, :, ::-1, ::-1], padding=padding), F.conv2d(x, w, padding=padding)
    )


@pytest.mark.parametrize("h, k, s", [(5, 3, 1), (6, 2, 2), (7, 3, 3), (1, 4, 2)])
def test_full_padding_output_size_rule(h, k, s):
    geom = F.conv_geometry((h, h), k, s, "full")
    assert geom.pads == (k - 1,) * 4
    assert geom.out == (math.ceil((h + k - 1) / s),) * 2
    # the last window still starts inside the padded input
    assert (geom.out[0] - 1) * s + k <= h + 2 * (k - 1)


def test_full_padding_strided_is_the_subsampled_full_output():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 7, 6))
    w = rng.standard_normal((2, 2, 3, 3))
    np.testing.assert_allclose(
        F.conv2d(x, w, stride=2, padding="full"), F.conv2d(x, w, padding="full")[:, :, ::2, ::2]
    )


def test_unknown_padding_mode_is_rejected():
    with pytest.raises(ValueError, match="'full'"):
        F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 2, 2)), padding="wide")


@pytest.mark.parametrize("k, stride, bias", [(3, 1, True), ((2, 3), 1, False), (3, 2, True)])
def test_full_padding_gradients(k, stride, bias):
    layer = Conv2D(2, 3, k, stride, "full", bias, rng=4, dtype=np.float64)
    x = np.random.default_rng(5).standard_normal((2, 2, 5, 4))
    check_layer(layer, x)


@pytest.mark.parametrize("padding", ["full", 0, "same"])
def test_convolve2d_gradients(padding):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 5, 5))
    w = rng.standard_normal((3, 2, 3, 2))
    b = rng.standard_normal(3)
    out, cache = F.convolve2d_forward(x, w, b, 1, padding)
    r = rng.standard_normal(out.shape)
    dx, dw, db = F.convolve2d_backward(r, cache)

    def f():
        return float(np.sum(F.convolve2d(x, w, b, 1, padding) * r))

    for analytic, wrt in ((dx, x), (dw, w), (db, b)):
        assert grad_error(f, analytic, wrt) < 1e-6


# ----------------------------------------------------------------------------------------------
# conv1d
# ----------------------------------------------------------------------------------------------


def numpy_conv1d_full(x, w):
    """Cross-correlation of every (n, o) pair, mode 'full', via numpy.convolve (flip the kernel)."""
    n, c, _ = x.shape
    o = w.shape[0]
    return np.array(
        [
            [
                sum(np.convolve(x[i, ch], w[j, ch][::-1], "full") for ch in range(c))
                for j in range(o)
            ]
            for i in range(n)
        ]
    )


@pytest.mark.parametrize("length, k", [(11, 4), (9, 3), (5, 5), (3, 6)])
def test_conv1d_matches_numpy_convolve(length, k):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, length))
    w = rng.standard_normal((4, 3, k))
    full = numpy_conv1d_full(x, w)
    np.testing.assert_allclose(F.conv1d(x, w, padding="full"), full, atol=1e-12)
    if length >= k:
        valid = full[:, :, k - 1 : length]  # numpy.convolve's 'valid' part of 'full'
        np.testing.assert_allclose(F.conv1d(x, w, padding="valid"), valid, atol=1e-12)
        np.testing.assert_allclose(F.conv1d(x, w), valid, atol=1e-12)
        np.testing.assert_allclose(
            F.conv1d(x, w, stride=2, padding="valid"), valid[:, :, ::2], atol=1e-12
        )
    # 'same' (TensorFlow's rule: (k-1)//2 zeros before) is a window of the full output
    before = (k - 1) // 2
    same = full[:, :, k - 1 - before : k - 1 - before + length]
    np.testing.assert_allclose(F.conv1d(x, w, padding="same"), same, atol=1e-12)
    # integer padding p: the full output seen through p zeros per side
    p = min(k - 1, 2)
    if length + 2 * p >= k:
        start = k - 1 - p
        np.testing.assert_allclose(
            F.conv1d(x, w, padding=p),
            full[:, :, start : start + length + 2 * p - k + 1],
            atol=1e-12,
        )


def test_conv1d_bias_and_validation():
    x = np.ones((2, 2, 6))
    w = np.ones((3, 2, 2))
    out = F.conv1d(x, w, np.array([0.5, 1.0, -1.0]))
    np.testing.assert_allclose(out[:, :, 0], [[4.5, 5.0, 3.0]] * 2)
    with pytest.raises(ValueError, match="3-D array"):
        F.conv1d(np.ones((2, 2, 1, 6)), w)
    with pytest.raises(ValueError, match="3-D array"):
        F.conv1d(x, np.ones((3, 2, 1, 2)))
    with pytest.raises(ValueError, match="channels"):
        F.conv1d(np.ones((2, 3, 6)), w)
    with pytest.raises(TypeError, match="padding"):
        F.conv1d(x, w, padding=(1, 1))
    with pytest.raises(ValueError, match="non-integer output"):
        F.conv1d(x, w, stride=3)
    with pytest.raises(ValueError, match="positive"):
        Conv1D(0, 2, 3)


@pytest.mark.parametrize(
    "c, o, length, k, stride, padding, bias",
    [
        (2, 3, 9, 3, 1, 0, True),
        (1, 2, 8, 4, 1, "same", False),
        (2, 2, 7, 3, 2, "full", True),
        (3, 2, 10, 2, 2, 1, True),
    ],
)
def test_conv1d_layer_gradients_and_shape(c, o, length, k, stride, padding, bias):
    layer = Conv1D(c, o, k, stride, padding, bias, rng=8, dtype=np.float64)
    x = np.random.default_rng(9).standard_normal((2, c, length))
    errors = check_layer(layer, x)
    assert set(errors) == {"input", "weight"} | ({"bias"} if bias else set())
    assert layer.forward(x).shape[1:] == layer.output_shape((c, length))


# ----------------------------------------------------------------------------------------------
# convolve1d: the primer's 1-D convolution (flipped kernel)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [7, 8, 10])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("mode", ["valid", "same", "full"])
def test_convolve1d_is_numpy_convolve_in_every_mode(length, k, mode):
    rng = np.random.default_rng(20)
    x = rng.standard_normal((2, 3, length))
    w = rng.standard_normal((4, 3, k))
    b = rng.standard_normal(4)
    for stride in (1, 2, 3):
        ref = np.array(
            [
                [
                    sum(np.convolve(x[i, c], w[o, c], mode) for c in range(3))[::stride] + b[o]
                    for o in range(4)
                ]
                for i in range(2)
            ]
        )
        out = F.convolve1d(x, w, b, stride, mode)
        assert out.shape == ref.shape, (stride, out.shape, ref.shape)
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


def test_convolve1d_even_kernel_same_follows_numpys_centring():
    # k = 2: numpy's 'same' is y_t = w_0 x_t + w_1 x_(t-1), a zero *before* the signal; the
    # cross-correlation conv1d's 'same' (TensorFlow's rule) puts the zero after it.
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    w = np.array([[[10.0, 1.0]]])
    np.testing.assert_array_equal(F.convolve1d(x, w, padding="same")[0, 0], [10, 21, 32, 43])
    np.testing.assert_array_equal(np.convolve(x[0, 0], w[0, 0], "same"), [10, 21, 32, 43])
    np.testing.assert_array_equal(F.conv1d(x, w[:, :, ::-1], padding="same")[0, 0], [21, 32, 43, 4])


def test_convolve1d_integer_padding_and_the_primers_decay_signal():
    # y_t = sum_k w_k x_(t-k+1): an impulse comes out as the kernel itself
    w = np.array([[[1.0, 0.5, 0.25]]])
    impulse = np.zeros((1, 1, 6))
    impulse[0, 0, 0] = 1.0
    np.testing.assert_array_equal(F.convolve1d(impulse, w, padding="full")[0, 0, :3], w[0, 0])
    x = np.random.default_rng(21).standard_normal((1, 2, 9))
    w2 = np.random.default_rng(22).standard_normal((3, 2, 3))
    # integer padding P = k - 1 is the full convolution; P zeros on both sides in general
    np.testing.assert_allclose(F.convolve1d(x, w2, padding=2), F.convolve1d(x, w2, padding="full"))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    np.testing.assert_allclose(F.convolve1d(x, w2, padding=1), F.convolve1d(padded, w2))
    with pytest.raises(ValueError, match="non-integer output"):
        F.convolve1d(x, w2, stride=3, padding=1)
    with pytest.raises(ValueError, match="padding"):
        F.convolve1d(x, w2, padding="wide")
    with pytest.raises(ValueError, match="3-D array"):
        F.convolve1d(x[0], w2)


@pytest.mark.parametrize(
    "stride, padding", [(1, "valid"), (1, "same"), (2, "same"), (2, "full"), (1, 1), (3, "full")]
)
@pytest.mark.parametrize("k", [2, 3])
def test_convolve1d_gradients(stride, padding, k):
    rng = np.random.default_rng(23)
    x = rng.standard_normal((2, 2, 9))
    w = rng.standard_normal((3, 2, k))
    b = rng.standard_normal(3)
    if isinstance(padding, int) and (9 + 2 * padding - k) % stride:
        padding = "same"
    out, cache = F.convolve1d_forward(x, w, b, stride, padding)
    r = rng.standard_normal(out.shape)
    dx, dw, db = F.convolve1d_backward(r, cache)

    def f():
        return float(np.sum(F.convolve1d(x, w, b, stride, padding) * r))

    assert dx is not None and dx.shape == x.shape
    for analytic, wrt in ((dx, x), (dw, w), (db, b)):
        assert grad_error(f, analytic, wrt) < 1e-6
