"""Concat (branches on one input), Sequential.features / summary, and the input gradient of a
whole network on request (activation maximisation needs it). References: finite differences
(float64), the branches run by hand, and hand-counted shapes and parameters."""

from __future__ import annotations

import numpy as np
import pytest

from qcnn.nn import (
    Concat,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Sequential,
    Tanh,
    softmax_cross_entropy,
    walk,
)
from tests.nn.test_layers import check_layer, distinct_values, grad_error


def rngs(seed, n):
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def inception_like(seed=0, dtype=np.float64):
    """conv stem, a Concat of four branches (1x1; 1x1->3x3; 3x3 max pool->1x1; a bare 1x1),
    global average pooling, dense."""
    r = rngs(seed, 7)
    block = Concat(
        Sequential(Conv2D(2, 2, 1, rng=r[1], dtype=dtype), ReLU()),
        Sequential(
            Conv2D(2, 1, 1, rng=r[2], dtype=dtype),
            Tanh(),
            Conv2D(1, 3, 3, padding="same", rng=r[3], dtype=dtype),
            Tanh(),
        ),
        Sequential(MaxPool2D(3, 1, "same"), Conv2D(2, 2, 1, rng=r[4], dtype=dtype)),
        Conv2D(2, 1, 1, rng=r[5], dtype=dtype),
    )
    return Sequential(
        Conv2D(1, 2, 3, padding=1, rng=r[0], dtype=dtype),
        Tanh(),
        block,
        GlobalAvgPool2D(),
        Dense(8, 3, rng=r[6], dtype=dtype),
    )


def test_concat_is_the_branches_side_by_side_and_backward_sums():
    rng = np.random.default_rng(1)
    model = inception_like()
    block = model[2]
    x = rng.standard_normal((3, 2, 5, 5))
    out = block.forward(x)
    parts = [b.forward(x) for b in block.branches]
    np.testing.assert_array_equal(out, np.concatenate(parts, axis=1))
    assert out.shape == (3, 8, 5, 5) and block.output_shape((2, 5, 5)) == (8, 5, 5)
    dout = rng.standard_normal(out.shape)
    block.forward(x)
    dx = block.backward(dout)
    ref = 0
    for b, lo, hi in zip(block.branches, (0, 2, 5, 7), (2, 5, 7, 8), strict=True):
        b.forward(x)
        ref = ref + b.backward(dout[:, lo:hi])
    np.testing.assert_allclose(dx, ref, atol=1e-14)


def test_concat_gradients_finite_differences():
    rng = np.random.default_rng(2)
    block = inception_like()[2]
    block.need_input_grad = True
    # distinct values keep the max-pool branch away from ties
    x = distinct_values(rng, (2, 2, 4, 4), gap=0.07)
    errors = check_layer(block, x)
    assert "input" in errors


def test_network_with_concat_gradients_and_input_gradient_on_request():
    model = inception_like()
    x = distinct_values(np.random.default_rng(3), (2, 1, 5, 5), gap=0.05)
    y = np.array([0, 2])
    assert model.need_input_grad is False  # the first layer skips it by default
    model.need_input_grad = True  # ... and computes it on request

    def loss() -> float:
        return softmax_cross_entropy(model.forward(x), y)[0]

    _, dlogits = softmax_cross_entropy(model.forward(x), y)
    dx = model.backward(dlogits)
    assert grad_error(loss, dx, x) < 1e-6
    for name, p in model.named_parameters():
        assert grad_error(loss, p.grad, p.data, max_entries=15) < 1e-6, name
    model.need_input_grad = False
    model.forward(x)
    assert model.backward(dlogits) is None


def test_concat_names_walk_and_state_dict_round_trip(tmp_path):
    model = inception_like(1)
    names = list(model.state_dict())
    assert "2.0.0.weight" in names and "2.1.2.bias" in names and "2.3.weight" in names
    assert [p.name for p in model.parameters()] == names
    assert sum(isinstance(layer, Conv2D) for layer in walk(model)) == 6
    model.save(tmp_path / "m.npz")
    other = inception_like(2)
    other.load(tmp_path / "m.npz")
    x = np.random.default_rng(4).standard_normal((2, 1, 5, 5))
    np.testing.assert_array_equal(model.predict(x), other.predict(x))


def test_concat_validation():
    with pytest.raises(ValueError, match="at least one"):
        Concat()
    with pytest.raises(TypeError, match="not a qcnn.nn Layer"):
        Concat(ReLU(), "relu")
    shared = ReLU()
    with pytest.raises(ValueError, match="same layer object"):
        Concat(shared, shared)
    bad = Concat(Conv2D(1, 2, 3), Conv2D(1, 2, 1))  # 3x3 valid shrinks, 1x1 does not
    with pytest.raises(ValueError, match="every axis but 1"):
        bad.forward(np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match="differ"):
        bad.output_shape((1, 5, 5))


# ----------------------------------------------------------------------------------------------
# features / summary
# ----------------------------------------------------------------------------------------------


def test_features_default_is_the_input_of_the_last_dense_layer():
    model = inception_like()
    x = np.random.default_rng(5).standard_normal((7, 1, 5, 5))
    feats = model.features(x, batch_size=3)  # batches of 3, 3, 1
    h = x
    for layer in model.layers[:4]:  # conv, tanh, concat, global pool
        h = layer.eval().forward(h)
    assert feats.shape == (7, 8)
    np.testing.assert_allclose(feats, h, atol=1e-14)
    # the features are what the last Dense layer sees
    np.testing.assert_allclose(model[-1].eval().forward(feats), model.predict(x))


def test_features_by_index_negative_index_and_dotted_path():
    model = inception_like()
    x = np.random.default_rng(6).standard_normal((2, 1, 5, 5))
    h0 = model[0].eval().forward(x)
    h1 = model[1].eval().forward(h0)
    np.testing.assert_allclose(model.features(x, 0), h0)
    np.testing.assert_allclose(model.features(x, "1"), h1)
    np.testing.assert_allclose(model.features(x, -1), model.predict(x))
    # inside branch 1 of the Concat (layer 2): the output of its 3x3 convolution
    branch = model[2].branches[1]
    branch.eval()
    ref = branch[2].forward(branch[1].forward(branch[0].forward(h1)))
    np.testing.assert_allclose(model.features(x, "2.1.2"), ref)
    assert model.features(x, "2.1.2").shape == (2, 3, 5, 5)
    for bad in (7, -8, "x", "2.9"):
        with pytest.raises(ValueError):
            model.features(x, bad)
    with pytest.raises(ValueError, match="no Dense"):
        Sequential(Conv2D(1, 1, 1), ReLU()).features(x)


def test_summary_lists_shapes_and_parameter_counts():
    model = Sequential(
        Conv2D(1, 6, 5, padding="same", rng=0),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(6 * 14 * 14, 10, rng=1),
    )
    text = model.summary((1, 28, 28))
    lines = text.splitlines()
    assert "output shape" in lines[0] and "parameters" in lines[0]
    assert any(line.startswith("0 ") and "(6, 28, 28)" in line and " 156" in line for line in lines)
    assert any(line.startswith("2 ") and "(6, 14, 14)" in line for line in lines)
    assert any(line.startswith("4 ") and "(10,)" in line and "11,770" in line for line in lines)
    assert lines[-1] == f"total parameters: {156 + 11770:,}"
    nested = inception_like().summary((1, 5, 5))
    assert "2.1.2" in nested and "(3, 5, 5)" in nested and "Concat" in nested
    assert nested.splitlines()[-1] == f"total parameters: {inception_like().num_parameters():,}"
