"""Finite-difference gradient checks (float64) for every layer of qcnn.nn and for small networks.

Each check uses the scalar ``f = sum(layer(x) * r)`` with a fixed random ``r`` (so
``df/dout = r``), compares ``layer.backward(r)`` and every ``param.grad`` with central
differences from :mod:`qcnn.nn.gradcheck`, and builds its inputs away from kinks (ReLU at 0,
the cap of CapReLU, ties inside max-pool windows) so that the finite differences are valid.
"""

from __future__ import annotations

import numpy as np
import pytest

from qcnn.nn import (
    AvgPool2D,
    CapReLU,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    inference,
    softmax_cross_entropy,
)
from qcnn.nn import functional as F
from qcnn.nn.gradcheck import numerical_gradient, relative_error

TOL = 1e-6
H = 1e-5  # central differences: truncation ~H^2, rounding ~1e-16 |f| / H
MARGIN = 2e-4  # minimum distance of every input from a kink; >> H * |perturbation effect|


def grad_error(f, analytic, x, max_entries=None, seed=0):
    """Relative error between ``analytic`` (shape of x) and central differences of ``f``.

    Elementwise relative error; entries below a tenth of the gradient's scale are compared in
    absolute terms against that tenth (rounding makes every finite difference uncertain by
    ~1e-16 |f| / H, whatever the entry's size).
    """
    assert analytic.shape == x.shape and analytic.dtype == np.float64
    idx, num = numerical_gradient(
        f, x, h=H, max_entries=max_entries, rng=np.random.default_rng(seed)
    )
    ana = analytic.reshape(-1)[idx]
    scale = max(np.abs(ana).max(initial=0.0), np.abs(num).max(initial=0.0))
    return relative_error(ana, num, floor=0.1 * scale + 1e-12)


def check_layer(layer, x, seed=0, before=None, input_grad=True, max_entries=None):
    """Gradient-check ``layer``'s input gradient and every parameter's gradient at ``x``."""
    rng = np.random.default_rng(seed)

    def run():
        if before is not None:
            before()
        return layer.train().forward(x)

    out = run()
    r = rng.standard_normal(out.shape)
    dx = layer.backward(r)
    grads = {name: p.grad.copy() for name, p in layer.params.items()}

    def f():
        return float(np.sum(run() * r))

    errors = {}
    if input_grad:
        errors["input"] = grad_error(f, dx, x, max_entries)
    for name, p in layer.params.items():
        errors[name] = grad_error(f, grads[name], p.data, max_entries)
    assert errors, "nothing was checked"
    assert max(errors.values()) < TOL, errors
    return errors


def away_from_zero(rng, shape, low=0.1, high=1.0):
    """Random values with |x| in [low, high] and random signs."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def distinct_values(rng, shape, gap=0.05):
    """A random arrangement of well-separated values: no ties within H of each other."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * gap - n * gap / 2).reshape(shape)


def test_gradient_check_detects_a_wrong_gradient():
    """The tolerance is tight enough to catch a 1e-4 relative mistake (the check can fail)."""
    layer = Dense(5, 3, rng=1, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((4, 5))
    r = np.random.default_rng(3).standard_normal((4, 3))
    layer.forward(x)
    layer.backward(r)
    good = layer.weight.grad.copy()

    def f():
        return float(np.sum(layer.forward(x) * r))

    assert grad_error(f, good, layer.weight.data) < TOL
    assert grad_error(f, good * (1 + 1e-4), layer.weight.data) > 10 * TOL
    wrong = good.copy()
    wrong[0, 0] += 1e-5 * np.abs(good).max()
    assert grad_error(f, wrong, layer.weight.data) > TOL


# ----------------------------------------------------------------------------------------------
# Conv2D
# ----------------------------------------------------------------------------------------------

CONV_CASES = [
    # C, O, (H, W), kernel, stride, padding, bias
    (2, 3, (6, 5), (3, 2), 1, 0, True),
    (2, 3, (6, 6), 3, 1, 1, False),
    (2, 2, (5, 7), 3, 1, "same", True),
    (2, 2, (6, 6), (2, 3), 1, (1, 2), True),
    (1, 2, (5, 6), (2, 2), (1, 1), "same", True),  # even kernel: asymmetric 'same' padding
    (2, 3, (7, 7), 3, 2, 1, True),
    (1, 2, (7, 6), (3, 2), (2, 1), "same", True),
    (2, 2, (8, 7), 3, (1, 2), "valid", False),
    (2, 2, (9, 9), 3, 3, 0, True),
    (3, 2, (7, 7), 1, 2, 0, True),
]


@pytest.mark.parametrize(("c", "o", "hw", "k", "stride", "padding", "bias"), CONV_CASES)
def test_conv2d_gradients(monkeypatch, c, o, hw, k, stride, padding, bias):
    layer = Conv2D(c, o, k, stride, padding, bias, rng=5, dtype=np.float64)
    x = np.random.default_rng(6).standard_normal((2, c, *hw))
    # spy on which input-gradient path runs: stride 1 has its own fast path, others use col2im
    calls = []
    fast, col2im = F._conv_input_grad_stride1, F.col2im
    monkeypatch.setattr(F, "_conv_input_grad_stride1", lambda *a: calls.append("fast") or fast(*a))
    monkeypatch.setattr(F, "col2im", lambda *a: calls.append("col2im") or col2im(*a))
    errors = check_layer(layer, x)
    assert set(errors) == {"input", "weight"} | ({"bias"} if bias else set())
    unit_stride = F.pair(stride, "stride") == (1, 1)
    assert calls[0] == ("fast" if unit_stride else "col2im")


def test_conv2d_without_input_gradient_still_computes_parameter_gradients():
    layer = Conv2D(2, 3, 3, padding=1, rng=1, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((2, 2, 5, 5))
    layer.need_input_grad = False
    out = layer.forward(x)
    assert layer.backward(np.ones_like(out)) is None
    check_layer(layer, x, input_grad=False)


def test_conv2d_workspace_reuse_across_batch_sizes():
    """Buffers are reused between calls; results must not depend on what ran before."""
    layer = Conv2D(2, 3, 3, padding="same", rng=1, dtype=np.float64)
    rng = np.random.default_rng(0)
    x_small, x_big = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((5, 2, 6, 6))
    w, b = layer.weight.data, layer.bias.data
    for x in (x_small, x_big, x_small):
        out = layer.forward(x)
        ref, cache = F.conv2d_forward(x, w, b, 1, "same")
        np.testing.assert_array_equal(out, ref)
        g = rng.standard_normal(out.shape)
        dx = layer.backward(g)
        dx_ref, dw_ref, db_ref = F.conv2d_backward(g, cache)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(layer.weight.grad, dw_ref, rtol=1e-13)
        np.testing.assert_allclose(layer.bias.grad, db_ref, rtol=1e-13)
    # an inference pass has its own buffer: it must not change what a training pass returned
    out_train = layer.forward(x_big)
    kept = out_train.copy()
    layer.eval().forward(x_small)
    np.testing.assert_array_equal(out_train, kept)


def test_conv2d_layer_validation_and_shapes():
    layer = Conv2D(3, 4, (3, 2), stride=(2, 1), padding="same", rng=0)
    assert layer.weight.shape == (4, 3, 3, 2) and layer.bias.shape == (4,)
    assert layer.weight.data.dtype == np.float32
    x = np.zeros((2, 3, 7, 5), np.float32)
    assert layer.forward(x).shape == (2, *layer.output_shape((3, 7, 5))) == (2, 4, 4, 5)
    with pytest.raises(ValueError, match=r"expects input \(N, 3, H, W\)"):
        layer.forward(np.zeros((2, 2, 7, 5), np.float32))
    with pytest.raises(ValueError, match="in_channels must be an integer >= 1"):
        Conv2D(0, 4, 3)
    with pytest.raises(RuntimeError, match="without a training forward"):
        Conv2D(1, 1, 3, rng=0).backward(np.zeros((1, 1, 1, 1)))
    with pytest.raises(RuntimeError, match="without a training forward"):
        layer.eval().forward(x)
        layer.backward(np.zeros((2, 4, 4, 5), np.float32))


def test_conv2d_accepts_stride_and_padding_valid_for_the_input():
    x = np.random.default_rng(0).standard_normal((1, 1, 7, 7))
    w = np.random.default_rng(1).standard_normal((1, 1, 3, 3))
    assert F.conv2d(x, w, stride=3, padding=1).shape == (1, 1, 3, 3)  # the functional op works
    layer = Conv2D(1, 1, 3, stride=3, padding=1, bias=False, rng=0, dtype=np.float64)
    layer.weight.data[...] = w
    np.testing.assert_array_equal(layer.forward(x), F.conv2d(x, w, stride=3, padding=1))


def test_kaiming_uniform_initialisation_bounds():
    layer = Conv2D(4, 64, 3, rng=0)
    bound = 1 / np.sqrt(4 * 9)  # PyTorch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for p in (layer.weight.data, layer.bias.data):
        assert np.abs(p).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.95 * bound  # uniform, not a narrower law
    assert abs(layer.weight.data.std() - bound / np.sqrt(3)) < 0.05 * bound
    dense = Dense(50, 400, rng=0)
    assert (
        np.abs(dense.weight.data).max() <= 1 / np.sqrt(50) < np.abs(dense.weight.data).max() / 0.95
    )
    np.testing.assert_array_equal(Conv2D(4, 64, 3, rng=0).weight.data, layer.weight.data)


# ----------------------------------------------------------------------------------------------
# Dense, activations, dropout, pooling, flatten
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_dense_gradients(bias):
    layer = Dense(6, 4, bias, rng=3, dtype=np.float64)
    errors = check_layer(layer, np.random.default_rng(4).standard_normal((5, 6)))
    assert set(errors) == {"input", "weight"} | ({"bias"} if bias else set())


def test_dense_forward_and_validation():
    layer = Dense(3, 2, rng=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((4, 3))
    np.testing.assert_allclose(layer.forward(x), x @ layer.weight.data.T + layer.bias.data)
    assert layer.output_shape((3,)) == (2,)
    with pytest.raises(ValueError, match=r"expects input \(N, 3\)"):
        layer.forward(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="out_features must be an integer >= 1"):
        Dense(3, 0)
    layer.need_input_grad = False
    layer.forward(x)
    assert layer.backward(np.ones((4, 2))) is None and layer.weight.grad is not None


def test_relu_gradients():
    x = away_from_zero(np.random.default_rng(0), (3, 2, 4, 4))
    check_layer(ReLU(), x)
    out = ReLU().forward(x)
    np.testing.assert_array_equal(out, np.where(x > 0, x, 0))


def test_capped_relu_gradients_and_values():
    rng = np.random.default_rng(0)
    cap = 1.0
    # three regions, each at least MARGIN-far from the kinks at 0 and at the cap
    x = rng.choice([-1.0, 1.0, 2.0], (4, 3, 5)) * rng.uniform(0.1, 0.4, (4, 3, 5)) + np.where(
        rng.random((4, 3, 5)) < 0.3, 1.5, 0.0
    )
    assert np.abs(x).min() > MARGIN and np.abs(x - cap).min() > MARGIN
    layer = CapReLU(cap)
    check_layer(layer, x)
    np.testing.assert_array_equal(layer.forward(x), np.minimum(np.maximum(x, 0), cap))
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), ((x > 0) & (x < cap)) * 1.0)
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="cap"):
            CapReLU(bad)


def test_derivative_convention_at_the_kinks():
    """Documented: ReLU' = 1 only for x > 0; CapReLU' = 1 only on the open interval (0, cap)."""
    x = np.array([[-1.0, 0.0, 0.5, 1.0, 2.0]])
    relu, cap = ReLU(), CapReLU(1.0)
    relu.forward(x)
    cap.forward(x)
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), [[0, 0, 1, 1, 1]])
    np.testing.assert_array_equal(cap.backward(np.ones_like(x)), [[0, 0, 1, 0, 0]])


def test_sigmoid_and_tanh_gradients():
    x = np.random.default_rng(0).uniform(-4, 4, (3, 7))
    check_layer(Sigmoid(), x)
    check_layer(Tanh(), x)
    np.testing.assert_allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(Tanh().forward(x), np.tanh(x), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_for_huge_inputs(dtype):
    x = np.array([-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4], dtype=dtype)
    out = Sigmoid().forward(x)  # RuntimeWarnings in qcnn are errors (pyproject): no overflow
    assert out.dtype == dtype
    assert np.all(np.isfinite(out)) and out[0] == 0.0 and out[-1] == 1.0 and out[3] == 0.5


def test_dropout_gradients_with_a_fixed_mask():
    layer = Dropout(0.4, rng=0)

    def fix_mask():
        layer.rng = np.random.default_rng(123)  # same mask on every forward

    errors = check_layer(layer, np.random.default_rng(1).standard_normal((6, 10)), before=fix_mask)
    assert set(errors) == {"input"}


def test_dropout_semantics():
    p = 0.3
    layer = Dropout(p, rng=0)
    x = np.ones((200, 100), np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32
    values = np.unique(out)
    np.testing.assert_allclose(values, [0.0, 1 / (1 - p)], rtol=1e-6)
    assert abs((out == 0).mean() - p) < 0.01  # 20,000 draws: sd 0.003
    g = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(g), g * out)  # x = 1: out is the mask
    assert layer.eval().forward(x) is x  # inference: identity, no draws
    state = layer.rng.bit_generator.state
    layer.eval().forward(x)
    assert layer.rng.bit_generator.state == state
    assert Dropout(0.0, rng=0).forward(x) is x
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="p must be in"):
            Dropout(bad)
    # the same seed gives the same masks
    np.testing.assert_array_equal(Dropout(p, rng=5).forward(x), Dropout(p, rng=5).forward(x))


POOL_LAYER_CASES = [
    ((6, 6), 2, None, 0),
    ((5, 5), 3, 1, 0),
    ((7, 7), 3, 2, 1),
    ((5, 6), (2, 3), (1, 2), "same"),
    ((5, 5), 2, 2, "valid"),
]


@pytest.mark.parametrize(("hw", "k", "s", "padding"), POOL_LAYER_CASES)
def test_max_pool_gradients(hw, k, s, padding):
    x = distinct_values(np.random.default_rng(0), (2, 2, *hw))
    layer = MaxPool2D(k, s, padding)
    errors = check_layer(layer, x)
    assert set(errors) == {"input"}
    assert layer.forward(x).shape == (2, *layer.output_shape((2, *hw)))


@pytest.mark.parametrize(("hw", "k", "s", "padding"), POOL_LAYER_CASES)
def test_avg_pool_gradients(hw, k, s, padding):
    x = np.random.default_rng(0).standard_normal((2, 2, *hw))
    layer = AvgPool2D(k, s, padding)
    check_layer(layer, x)
    assert layer.forward(x).shape == (2, *layer.output_shape((2, *hw)))


@pytest.mark.parametrize("layer_type", [MaxPool2D, AvgPool2D])
def test_pool_backward_needs_a_training_forward(layer_type):
    layer = layer_type(2)
    x = np.ones((1, 1, 4, 4))
    with pytest.raises(RuntimeError, match="without a training forward"):
        layer.backward(np.ones((1, 1, 2, 2)))
    layer.eval().forward(x)  # inference keeps no cache
    with pytest.raises(RuntimeError, match="without a training forward"):
        layer.backward(np.ones((1, 1, 2, 2)))
    layer.train().forward(x)
    assert layer.backward(np.ones((1, 1, 2, 2))).shape == x.shape


def test_flatten_gradients_and_shape():
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 5))
    layer = Flatten()
    check_layer(layer, x)
    assert layer.forward(x).shape == (3, *layer.output_shape((2, 4, 5))) == (3, 40)


# ----------------------------------------------------------------------------------------------
# Whole networks through Sequential
# ----------------------------------------------------------------------------------------------


def kink_margin(model, x):
    """Smallest distance of the forward pass from a kink: |ReLU input| and, in each max-pool
    window whose maximum is positive, the gap between the two largest values."""
    margin = np.inf
    for layer in model.layers:
        if isinstance(layer, ReLU):
            margin = min(margin, np.abs(x).min())
        if isinstance(layer, MaxPool2D):
            stride = layer.kernel_size if layer.stride is None else layer.stride
            geom = F.conv_geometry(x.shape[2:], layer.kernel_size, stride, layer.padding)
            cols = F.im2col(x.reshape(-1, 1, *x.shape[2:]), geom)  # (kh*kw, windows)
            top2 = np.sort(cols, axis=0)[-2:]
            live = top2[1] > 0
            if live.any():
                margin = min(margin, (top2[1] - top2[0])[live].min())
        with inference(layer):
            x = layer.forward(x)
    return margin


def check_network(model, x, loss="sum", max_entries=None, seed=0):
    """Gradient-check every parameter of ``model`` through ``Sequential.forward/backward``."""
    assert kink_margin(model, x) > MARGIN
    rng = np.random.default_rng(seed)
    out = model.forward(x)
    if loss == "sum":
        r = rng.standard_normal(out.shape)

        def f():
            return float(np.sum(model.forward(x) * r))

        dout = r
    else:
        labels = rng.integers(0, out.shape[1], len(out))

        def f():
            return softmax_cross_entropy(model.forward(x), labels)[0]

        dout = softmax_cross_entropy(out, labels)[1]
    model.backward(dout)
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}
    errors = {
        name: grad_error(f, grads[name], p.data, max_entries)
        for name, p in model.named_parameters()
    }
    assert max(errors.values()) < TOL, errors
    return errors


def test_conv_relu_pool_conv_dense_network_gradients():
    model = Sequential(
        Conv2D(2, 3, 3, padding=1, rng=1, dtype=np.float64),
        ReLU(),
        MaxPool2D(2),
        Conv2D(3, 4, (3, 2), stride=(1, 2), rng=2, dtype=np.float64),
        Tanh(),
        Flatten(),
        Dense(16, 5, rng=3, dtype=np.float64),
    )
    x = np.random.default_rng(4).standard_normal((2, 2, 8, 8))
    errors = check_network(model, x)
    assert set(errors) == {"0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias"}


def test_miniature_paper_cnn_gradients_with_cross_entropy():
    # paper_cnn's shape (conv, ReLU, conv, ReLU, flatten, dense-ReLU x2, dense), scaled down
    model = Sequential(
        Conv2D(1, 2, 3, rng=1, dtype=np.float64),
        ReLU(),
        Conv2D(2, 3, 3, rng=2, dtype=np.float64),
        ReLU(),
        Flatten(),
        Dense(108, 12, rng=3, dtype=np.float64),
        ReLU(),
        Dense(12, 8, rng=4, dtype=np.float64),
        ReLU(),
        Dense(8, 4, rng=5, dtype=np.float64),
    )
    x = np.random.default_rng(6).random((3, 1, 10, 10))
    check_network(model, x, loss="ce")


def test_network_with_pooling_sigmoid_dropout_gradients():
    drop = Dropout(0.25, rng=0)
    model = Sequential(
        Conv2D(1, 3, (3, 2), stride=2, padding="same", rng=1, dtype=np.float64),
        Sigmoid(),
        AvgPool2D(2, 1),
        Conv2D(3, 2, 2, rng=2, dtype=np.float64),
        CapReLU(0.3),
        Flatten(),
        drop,
        Dense(18, 3, rng=3, dtype=np.float64),
    )
    x = np.random.default_rng(4).standard_normal((2, 1, 10, 10))
    pre_cap = model.layers[3]
    real_forward = pre_cap.forward

    def forward_checking_cap(xx):
        out = real_forward(xx)
        assert np.abs(out).min() > MARGIN and np.abs(out - 0.3).min() > MARGIN
        return out

    pre_cap.forward = forward_checking_cap
    real_drop = drop.forward

    def fixed_mask(xx):
        drop.rng = np.random.default_rng(9)
        return real_drop(xx)

    drop.forward = fixed_mask
    check_network(model, x)
