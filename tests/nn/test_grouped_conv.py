"""Grouped convolution (``groups=``, PyTorch's layout ``(O, C / groups, kh, kw)``).

References: ``scipy.signal.correlate2d`` group by group, the dense convolution with the
block-diagonal kernel, finite differences (float64) for every gradient, and ``torch`` when
installed. A block-diagonal ``connections`` table is the same layer as ``groups``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from qcnn.nn import Conv2D
from qcnn.nn import functional as F
from tests.nn.test_layers import check_layer, grad_error


def scipy_grouped(x, w, groups, stride=1, pad=0):
    """Per group k: output maps of group k = sum over the group's input maps of
    ``correlate2d(x[c], w[o, c - k C/g], 'valid')`` on the zero-padded input, subsampled."""
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    og = o // groups
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = []
    for i in range(n):
        maps = []
        for j in range(o):
            k = j // og
            acc = sum(
                scipy.signal.correlate2d(xp[i, k * cg + t], w[j, t], "valid") for t in range(cg)
            )
            maps.append(acc[::stride, ::stride])
        out.append(maps)
    return np.array(out)


@pytest.mark.parametrize(
    "c, o, g, k, stride, pad",
    [(4, 6, 2, 3, 1, 0), (6, 6, 3, 3, 2, 1), (4, 4, 4, 2, 1, 1), (6, 4, 2, (3, 2), 1, 0)],
)
def test_grouped_conv2d_is_scipy_per_group(c, o, g, k, stride, pad):
    rng = np.random.default_rng(11)
    kh, kw = F.pair(k, "k")
    x = rng.standard_normal((2, c, 7, 9))
    w = rng.standard_normal((o, c // g, kh, kw))
    b = rng.standard_normal(o)
    pad_arg = pad
    out = F.conv2d(x, w, b, stride, pad_arg, groups=g)
    ref = scipy_grouped(x, w, g, stride, pad) + b[None, :, None, None]
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)
    # the dense convolution with the block-diagonal kernel: the same numbers
    dense = F.expand_groups(w, g)
    assert dense.shape == (o, c, kh, kw)
    assert np.array_equal(dense.any(axis=(2, 3)), F.group_table(o, c, g))
    np.testing.assert_allclose(F.conv2d(x, dense, b, stride, pad_arg), out, rtol=0, atol=1e-12)


@pytest.mark.parametrize("stride, padding, bias", [(1, 0, True), (1, "same", False), (2, 1, True)])
def test_grouped_conv2d_backward_matches_finite_differences(stride, padding, bias):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 6, 7, 7))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4) if bias else None
    out, cache = F.conv2d_forward(x, w, b, stride, padding, 2)
    r = rng.standard_normal(out.shape)
    dx, dw, db = F.conv2d_backward(r, cache)

    def f():
        return float(np.sum(F.conv2d(x, w, b, stride, padding, 2) * r))

    assert dx is not None and dx.shape == x.shape and dw.shape == w.shape
    assert grad_error(f, dx, x) < 1e-6
    assert grad_error(f, dw, w) < 1e-6
    if bias:
        assert db is not None and grad_error(f, db, b) < 1e-6
    # and the dense twin's gradients, restricted to the blocks, are the same
    dx_d, dw_d, _ = F.conv2d_backward(
        r, F.conv2d_forward(x, F.expand_groups(w, 2), b, stride, padding)[1]
    )
    np.testing.assert_allclose(dx, dx_d, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        F.expand_groups(dw, 2), dw_d * F.group_table(4, 6, 2)[:, :, None, None], atol=1e-12
    )


@pytest.mark.parametrize("groups, stride, padding", [(2, 1, 1), (3, 2, "same"), (6, 1, 0)])
def test_grouped_layer_gradient_check(groups, stride, padding):
    layer = Conv2D(6, 6, 3, stride, padding, rng=13, dtype=np.float64, groups=groups)
    assert layer.weight.shape == (6, 6 // groups, 3, 3)
    x = np.random.default_rng(14).standard_normal((2, 6, 5, 5))
    errors = check_layer(layer, x)
    assert set(errors) == {"input", "weight", "bias"}


def test_block_diagonal_connections_are_groups_one_mechanism():
    table = F.group_table(4, 6, 2)
    assert F.table_groups(table) == 2
    assert F.table_groups(np.ones((4, 6), bool)) == 1
    from qcnn.models import LENET5_C3_TABLE

    assert F.table_groups(LENET5_C3_TABLE) is None  # a partial table stays a mask
    by_table = Conv2D(6, 4, 3, rng=15, dtype=np.float64, connections=table)
    by_groups = Conv2D(6, 4, 3, rng=15, dtype=np.float64, groups=2)
    assert by_table.groups == 2 and by_table.connections is None
    assert by_table.weight.shape == by_groups.weight.shape == (4, 3, 3, 3)
    np.testing.assert_array_equal(by_table.weight.data, by_groups.weight.data)
    np.testing.assert_array_equal(by_groups.connection_table(), table)
    assert by_groups.kernel_volume() == 3 * 9  # inputs of one output pixel: its group's
    assert "groups=2" in repr(by_groups)
    # the dense kernel convolves like the layer; a full table is no table
    x = np.random.default_rng(16).standard_normal((2, 6, 5, 5))
    np.testing.assert_allclose(
        by_groups.forward(x), F.conv2d(x, by_groups.dense_kernel(), by_groups.bias.data), atol=1e-12
    )
    full = Conv2D(6, 4, 3, rng=15, connections=np.ones((4, 6), bool))
    assert full.connections is None and full.groups == 1
    # a partial table keeps the dense weight and its mask; its table is the one given
    partial = Conv2D(6, 16, 5, rng=1, connections=LENET5_C3_TABLE.T.T[:, :6])
    assert partial.groups == 1 and partial.weight.shape == (16, 6, 5, 5)
    np.testing.assert_array_equal(partial.connection_table(), LENET5_C3_TABLE)
    np.testing.assert_array_equal(partial.dense_kernel(), partial.kernel())


def test_groups_one_is_the_plain_gemm_bit_for_bit():
    """groups=1 runs the single GEMM it always ran: the same numbers as the kernel matrix times
    the im2col matrix, forward and backward, bit for bit."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((3, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    out, cache = F.conv2d_forward(x, w, None, 2, 1)
    geom = F.conv_geometry((9, 9), (3, 3), 2, 1)
    ref = (w.reshape(5, -1) @ F.im2col(x, geom)).reshape(5, 3, 5, 5).transpose(1, 0, 2, 3)
    assert np.array_equal(out, ref)
    r = rng.standard_normal(out.shape).astype(np.float32)
    dx, dw, _ = F.conv2d_backward(r, cache)
    r2d = r.transpose(1, 0, 2, 3).reshape(5, -1)
    assert np.array_equal(dx, F.col2im(w.reshape(5, -1).T @ r2d, x.shape, geom))
    assert np.array_equal(dw, (F.im2col(x, geom) @ r2d.T).T.reshape(w.shape))


def test_groups_are_validated():
    x = np.zeros((1, 6, 5, 5))
    with pytest.raises(ValueError, match="divisor"):
        F.conv2d(x, np.zeros((4, 2, 3, 3)), groups=4)
    with pytest.raises(ValueError, match="per group"):
        F.conv2d(x, np.zeros((4, 2, 3, 3)), groups=2)
    with pytest.raises(TypeError, match="groups"):
        F.conv2d(x, np.zeros((4, 3, 3, 3)), groups=2.0)
    with pytest.raises(ValueError, match="divisor"):
        Conv2D(6, 4, 3, groups=0)
    with pytest.raises(ValueError, match="not both"):
        from qcnn.models import LENET5_C3_TABLE

        Conv2D(6, 16, 5, connections=LENET5_C3_TABLE, groups=2)


def test_grouped_conv_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(18)
    x = rng.standard_normal((2, 6, 9, 9))
    w = rng.standard_normal((9, 2, 3, 3))
    b = rng.standard_normal(9)
    ref = torch.nn.functional.conv2d(
        torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=2, padding=1, groups=3
    )
    np.testing.assert_allclose(F.conv2d(x, w, b, 2, 1, groups=3), ref.numpy(), atol=1e-12)
