"""LocalResponseNorm, GlobalAvgPool2D, LeNet's trainable Subsampling2D and the partial
connection table of Conv2D: values against direct loops (and PyTorch when installed),
gradients against finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from qcnn.nn import Conv2D, GlobalAvgPool2D, LocalResponseNorm, Subsampling2D
from qcnn.nn import functional as F
from tests.nn.test_layers import check_layer


def lrn_loop(x, size, alpha, beta, k):
    """b_c = a_c / (k + alpha/size * sum_{c'=c-size//2}^{c+(size-1)//2} a_c'^2)^beta, by a loop
    over output channels and the channels of each window (zeros outside)."""
    out = np.empty_like(x, dtype=np.float64)
    c_total = x.shape[1]
    for c in range(c_total):
        acc = np.zeros(x[:, 0].shape)
        for cp in range(c - size // 2, c + (size - 1) // 2 + 1):
            if 0 <= cp < c_total:
                acc += x[:, cp].astype(np.float64) ** 2
        out[:, c] = x[:, c] / (k + alpha / size * acc) ** beta
    return out


LRN_CASES = [
    # size, alpha, beta, k, shape
    (5, 1e-4, 0.75, 1.0, (2, 7, 3, 4)),
    (2, 0.5, 0.75, 1.0, (2, 4, 3, 3)),  # even window: asymmetric
    (3, 2.0, 1.5, 0.5, (1, 5, 2, 2)),  # strong normalisation, so the backward terms matter
    (6, 1.0, 0.5, 2.0, (2, 3, 4)),  # window wider than the channels; 3-D input
    (1, 1.0, 0.75, 1.0, (2, 3, 2, 2)),
]


@pytest.mark.parametrize("size, alpha, beta, k, shape", LRN_CASES)
def test_lrn_matches_a_direct_loop(size, alpha, beta, k, shape):
    x = np.random.default_rng(1).standard_normal(shape) * 2
    np.testing.assert_allclose(
        F.local_response_norm(x, size, alpha, beta, k),
        lrn_loop(x, size, alpha, beta, k),
        rtol=1e-13,
        atol=1e-13,
    )


@pytest.mark.parametrize("size, alpha, beta, k, shape", LRN_CASES)
def test_lrn_gradients(size, alpha, beta, k, shape):
    layer = LocalResponseNorm(size, alpha, beta, k)
    x = np.random.default_rng(2).standard_normal(shape) * 2
    check_layer(layer, x)


@pytest.mark.parametrize("size, alpha, beta, k, shape", LRN_CASES)
def test_lrn_matches_pytorch(size, alpha, beta, k, shape):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal(shape) * 2
    r = np.random.default_rng(4).standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.LocalResponseNorm(size, alpha, beta, k)(xt)
    (yt * torch.tensor(r)).sum().backward()
    layer = LocalResponseNorm(size, alpha, beta, k)
    np.testing.assert_allclose(layer.forward(x), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(r), xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_lrn_float32_and_validation():
    x = np.random.default_rng(5).standard_normal((2, 6, 3, 3)).astype(np.float32)
    out = LocalResponseNorm(5, alpha=1.0)(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, lrn_loop(x, 5, 1.0, 0.75, 1.0), rtol=1e-5)
    for bad in (dict(size=0), dict(size=3, k=0.0), dict(size=3, alpha=-1.0), dict(size=2.5)):
        with pytest.raises(ValueError):
            LocalResponseNorm(**bad)
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        LocalResponseNorm(3)(np.ones((2, 3)))


def test_global_avg_pool_values_and_gradients():
    x = np.random.default_rng(6).standard_normal((3, 4, 5, 2))
    layer = GlobalAvgPool2D()
    out = layer.forward(x)
    assert out.shape == (3, 4) and layer.output_shape((4, 5, 2)) == (4,)
    for n in range(3):
        for c in range(4):
            assert out[n, c] == pytest.approx(sum(x[n, c].ravel()) / 10, abs=1e-14)
    check_layer(layer, x)


def test_subsampling_is_average_pooling_times_a_coefficient_plus_a_bias():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 6, 4))
    layer = Subsampling2D(3, dtype=np.float64)
    np.testing.assert_allclose(layer.forward(x), F.avg_pool2d(x, 2))  # initialised to the mean
    layer.weight.data[:] = [2.0, -1.0, 0.5]
    layer.bias.data[:] = [0.1, 0.2, 0.3]
    out = layer.forward(x)
    for c, (w, b) in enumerate(zip([2.0, -1.0, 0.5], [0.1, 0.2, 0.3], strict=True)):
        window_sum = sum(x[:, c, i::2, j::2] for i in (0, 1) for j in (0, 1))
        ref = w * window_sum / 4 + b
        np.testing.assert_allclose(out[:, c], ref, atol=1e-14)
    assert layer.output_shape((3, 6, 4)) == (3, 3, 2)


@pytest.mark.parametrize("k", [2, 3])
def test_subsampling_gradients(k):
    rng = np.random.default_rng(8)
    layer = Subsampling2D(2, k, dtype=np.float64)
    layer.weight.data[:] = rng.uniform(0.5, 2, 2)
    layer.bias.data[:] = rng.standard_normal(2)
    errors = check_layer(layer, rng.standard_normal((2, 2, 2 * k, 3 * k)))
    assert set(errors) == {"input", "weight", "bias"}
    with pytest.raises(ValueError, match="expects input"):
        layer.forward(np.ones((1, 3, 4, 4)))


# LeNet-5's C3 table (LeCun et al. 1998, table I) is in qcnn.models; here a small random one.
TABLE = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=bool)


def test_connection_table_masks_the_forward_pass():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 6, 6))
    layer = Conv2D(3, 4, 3, connections=TABLE, rng=1, dtype=np.float64)
    assert np.all(layer.weight.data[~TABLE] == 0)  # disconnected weights start at zero
    layer.weight.data[:] = rng.standard_normal(layer.weight.shape)  # e.g. after gradient noise
    out = layer.forward(x)
    for o in range(4):
        connected = np.flatnonzero(TABLE[o])
        ref = (
            F.conv2d(x[:, connected], layer.weight.data[o : o + 1, connected]) + layer.bias.data[o]
        )
        np.testing.assert_allclose(out[:, o : o + 1], ref, atol=1e-12)
    assert layer.kernel_volume() == 2 * 9


def test_connection_table_gradients_are_masked():
    rng = np.random.default_rng(10)
    layer = Conv2D(3, 4, 3, connections=TABLE, rng=2, dtype=np.float64)
    layer.weight.data[:] = rng.standard_normal(layer.weight.shape)
    errors = check_layer(layer, rng.standard_normal((2, 3, 5, 5)))
    assert set(errors) == {"input", "weight", "bias"}
    assert np.all(layer.weight.grad[~TABLE] == 0) and np.any(layer.weight.grad[TABLE] != 0)


def test_connection_table_validation():
    with pytest.raises(ValueError, match="shape"):
        Conv2D(3, 4, 3, connections=TABLE.T)
    with pytest.raises(ValueError, match="no input"):
        Conv2D(3, 4, 3, connections=np.zeros((4, 3), bool))
    with pytest.raises(ValueError, match="booleans"):
        Conv2D(3, 4, 3, connections=TABLE * 2.5)


def test_local_response_norm_cache_is_a_named_tuple():
    """Like every ``*_forward`` cache (ConvCache, MaxPoolCache, ...): fields by name."""
    x = np.random.default_rng(3).standard_normal((2, 5, 3, 3))
    out, cache = F.local_response_norm_forward(x, 3, alpha=0.2, beta=0.5, k=2.0)
    assert isinstance(cache, F.LRNCache)
    assert (cache.size, cache.alpha, cache.beta) == (3, 0.2, 0.5)
    np.testing.assert_array_equal(cache.x, x)
    np.testing.assert_allclose(out, x * cache.scale**-0.5)
    np.testing.assert_array_equal(cache.inv, cache.scale**-0.5)
