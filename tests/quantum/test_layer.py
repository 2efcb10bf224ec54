"""Tests of ``QuantumConv2D`` (model §2-3) and of quantum backprop (``QuantumGradientNoise``).

- Zero-error equivalence: with ``QuantumConfig.exact(cap=1e30)`` the layer is Conv2D + ReLU
  (+ MaxPool2D / AvgPool2D) forward and backward, and ``paper_qcnn`` is ``paper_cnn``.
- Finite differences (float64) with the sampling fixed by a stub executor: unsampled pixels get
  zero gradient, the cap has derivative 0 outside (0, C), the estimation noise is a constant.
- Statistics, zero images, the first-image norm shortcut, tomography values, determinism,
  evaluation reproducibility, batch shapes, and that ``import qcnn.quantum`` stays Qiskit-free.
- Gradient noise: std ``delta ||g||_2``, the ``'quantum'`` restriction, and through ``make_optimizer``.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import stats

from qcnn.experiments.runner import _layer_stats
from qcnn.models import make_optimizer, paper_cnn, paper_qcnn, quantum_layers, transfer_weights
from qcnn.nn import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from qcnn.nn.gradcheck import numerical_gradient
from qcnn.nn.layers import Parameter
from qcnn.nn.losses import softmax_cross_entropy
from qcnn.quantum import (
    QUANTUM_TAG,
    ConvProblem,
    EmulatorExecutor,
    Executor,
    QuantumConfig,
    QuantumConv2D,
    QuantumGradientNoise,
    implied_eta,
    layer_shots,
    tomography_shots,
)
from qcnn.quantum.executor import make_executor
from qcnn.quantum.layer_stats import LayerStatistics, watch_statistics
from qcnn.train import evaluate

STAT_KEYS = {
    "M",
    "M_max",
    "mean_f",
    "pixels",
    "shots",
    "implied_eta",
    "eta_reference",
    "shots_for_eta_reference",
    "kept_fraction",
    "zero_images",
    "ipe_error_rms",
    "ipe_error_rms_pixel",
    "mu_F",
}


class FixedExecutor:
    """Stub executor: ``Ybar = Y + noise`` with a fixed ``noise``, and fixed ``counts``.

    It records every ``ConvProblem`` it is given, so tests can inspect the norms the layer used.
    """

    def __init__(self, counts=None, noise=None):
        self.counts, self.noise, self.problems = counts, noise, []

    def inner_products(self, problem, config, rng):
        self.problems.append(problem)
        return problem.y + (0.0 if self.noise is None else self.noise)

    def sample(self, values, shots, config, rng):
        assert values.ndim == 2
        if self.counts is None:
            return np.full(values.shape, 1, dtype=np.int64)
        assert self.counts.shape == values.shape
        return self.counts

    def sample_per_shot(self, problem, shots, config, rng):
        raise NotImplementedError("FixedExecutor has no per-shot sampler")

    def normaliser(self, mean_f, d, config, rng):
        raise NotImplementedError("FixedExecutor has no normaliser")


def _patches(x: np.ndarray, k: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """``(N, H', W', C, k, k)`` receptive fields, computed independently of qcnn.nn."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return win.transpose(0, 2, 3, 1, 4, 5)


# ----------------------------------------------------------------------------------------------
# Zero-error equivalence with the classical layers
# ----------------------------------------------------------------------------------------------

GEOMETRIES = [  # (H, W, kernel, stride, padding): every case has even output sides (for pooling)
    (10, 10, 3, 1, 0),
    (11, 11, 3, 2, 1),
    (8, 8, 3, 1, "same"),
    (8, 8, 3, 2, "same"),
    (9, 9, 2, 1, "valid"),
    (10, 14, (3, 2), (1, 2), (0, 1)),
]


def _classical_chain(conv: Conv2D, pool: str | None) -> list:
    layers = [conv, ReLU()]
    if pool == "max":
        layers.append(MaxPool2D(2))
    elif pool == "avg":
        layers.append(AvgPool2D(2))
    return layers


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("pool", [None, "max", "avg"])
@pytest.mark.parametrize("geom", GEOMETRIES, ids=[str(g) for g in GEOMETRIES])
def test_exact_config_equals_conv_relu_forward_and_backward(geom, pool, bias):
    h, w, k, stride, padding = geom
    seed = 7
    q = QuantumConv2D(
        3,
        4,
        k,
        stride,
        padding,
        bias,
        config=QuantumConfig.exact(),
        pool=pool,
        rng=seed,
        dtype=np.float64,
    )
    c = Conv2D(3, 4, k, stride, padding, bias, rng=seed, dtype=np.float64)
    np.testing.assert_array_equal(q.weight.data, c.weight.data)  # same seed, same weights
    if bias:
        np.testing.assert_array_equal(q.bias.data, c.bias.data)
    chain = _classical_chain(c, pool)
    x = np.random.default_rng(1).standard_normal((5, 3, h, w))

    out_q = q.train().forward(x)
    out_c = x
    for layer in chain:
        out_c = layer.train().forward(out_c)
    assert out_q.shape == out_c.shape == (5, *q.output_shape(x.shape[1:]))
    np.testing.assert_allclose(out_q, out_c, rtol=1e-6, atol=1e-6)
    assert (out_c > 0).any() and (out_c == 0).any()  # both sides of the ReLU are exercised

    dout = np.random.default_rng(2).standard_normal(out_q.shape)
    dx_q = q.backward(dout)
    g = dout
    for layer in reversed(chain):
        g = layer.backward(g)
    np.testing.assert_allclose(dx_q, g, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(q.weight.grad, c.weight.grad, rtol=1e-6, atol=1e-6)
    if bias:
        np.testing.assert_allclose(q.bias.grad, c.bias.grad, rtol=1e-6, atol=1e-6)


def test_exact_config_float32():
    q = QuantumConv2D(2, 3, 5, config=QuantumConfig.exact(), rng=3)
    c = Conv2D(2, 3, 5, rng=3)
    x = np.random.default_rng(0).standard_normal((4, 2, 12, 12)).astype(np.float32)
    out_q = q.forward(x)
    out_c = np.maximum(c.forward(x), 0)
    assert out_q.dtype == np.float32
    np.testing.assert_allclose(out_q, out_c, rtol=1e-5, atol=1e-6)
    dout = np.ones_like(out_q)
    dx_q = q.backward(dout)
    dx_c = c.backward(dout * (out_c > 0))
    np.testing.assert_allclose(dx_q, dx_c, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(q.weight.grad, c.weight.grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(q.bias.grad, c.bias.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_paper_qcnn_exact_equals_paper_cnn(dtype):
    seed = 4
    cnn = paper_cnn(seed, dtype=dtype)
    qcnn = paper_qcnn(QuantumConfig.exact(), seed, dtype=dtype)
    p_c, p_q = cnn.parameters(), qcnn.parameters()
    assert [p.shape for p in p_c] == [p.shape for p in p_q]
    for a, b in zip(p_c, p_q, strict=True):
        np.testing.assert_array_equal(a.data, b.data)  # same initial weights by construction
    assert ["quantum" in p.tags for p in p_q] == [True, False, True, False] + [False] * 6
    assert not any(p.tags for p in p_c)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 1, 28, 28)).astype(dtype)
    y = rng.integers(0, 10, 6)
    tol = 1e-6 if dtype == np.float64 else 2e-5
    logits_c, logits_q = cnn.forward(x), qcnn.forward(x)
    np.testing.assert_allclose(logits_q, logits_c, rtol=tol, atol=tol)
    _, d = softmax_cross_entropy(logits_c, y)
    cnn.backward(d)
    qcnn.backward(d)
    for a, b in zip(p_c, p_q, strict=True):
        assert b.grad is not None
        np.testing.assert_allclose(b.grad, a.grad, rtol=tol, atol=tol, err_msg=a.name)
    # and one SGD step later they still agree
    opt_c = make_optimizer(cnn, lr=0.1)
    opt_q = make_optimizer(qcnn, lr=0.1, config=QuantumConfig.exact())  # delta 0: no hook
    assert opt_q.grad_hooks == []
    opt_c.step()
    opt_q.step()
    np.testing.assert_allclose(qcnn.forward(x), cnn.forward(x), rtol=tol, atol=tol)


# ----------------------------------------------------------------------------------------------
# Finite differences with the sampling fixed
# ----------------------------------------------------------------------------------------------

H_FD = 1e-6
MARGIN = 1e-4  # every pre-activation at least this far from a kink (>> H_FD * its sensitivity)


def _fd_setup(order: str, with_noise: bool, pool: str | None, seed: int):
    """A float64 layer with fixed mask (stub counts) and, optionally, fixed estimation noise."""
    rng = np.random.default_rng(seed)
    cap = 1.0
    cfg = QuantumConfig(
        eps=0.1 if with_noise else 0.0,
        ipe="gaussian" if with_noise else "exact",
        cap=cap,
        sigma=0.5,
        noise_order=order,
    )
    x = rng.standard_normal((2, 2, 8, 8))
    out_shape = (2, 3, 6, 6)
    noise = 0.3 * rng.standard_normal(out_shape) if with_noise else None
    counts = (rng.random((2, 3 * 36)) < 0.6).astype(np.int64) * rng.integers(1, 4, (2, 108))
    ex = FixedExecutor(counts=counts, noise=noise)
    layer = QuantumConv2D(2, 3, 3, config=cfg, pool=pool, executor=ex, rng=seed, dtype=np.float64)
    layer.weight.data *= 2.0  # spread the pre-activations over both kinks
    return layer, x, counts, noise, cap


def _kink_distance(layer, x, noise, order, cap) -> tuple[float, np.ndarray]:
    """Smallest distance of any capped ReLU input from 0 or C (where a finite difference would
    straddle a kink), and the exact pre-activation y."""
    y = layer.forward_stages(x)["exact"]
    e = 0.0 if noise is None else noise

    def dist(v):
        return np.minimum(np.abs(v), np.abs(v - cap))

    if order == "theory":
        return float(dist(y + e).min()), y
    # paper order: the outer cap sees clip(y) + e, which moves with y only where 0 < y < C
    lin = (y > 0) & (y < cap)
    inner = dist(np.clip(y, 0, cap) + e)[lin]
    return float(min(dist(y).min(), inner.min(initial=np.inf))), y


@pytest.mark.parametrize(
    ("order", "with_noise", "pool"),
    [
        ("paper", False, None),
        ("paper", False, "max"),
        ("paper", False, "avg"),
        ("paper", True, None),
        ("paper", True, "max"),
        ("theory", True, None),
        ("theory", True, "avg"),
    ],
)
def test_finite_differences_with_fixed_sampling(order, with_noise, pool):
    def margin(seed):
        layer, x, _, noise, cap = _fd_setup(order, with_noise, pool, seed)
        return _kink_distance(layer, x, noise, order, cap)[0]

    seed = next(s for s in range(200) if margin(s) > MARGIN)
    layer, x, counts, noise, cap = _fd_setup(order, with_noise, pool, seed)
    _, y = _kink_distance(layer, x, noise, order, cap)
    # every regime is present: negative, capped, linear-and-kept, linear-but-unsampled
    kept = (counts > 0).reshape(y.shape)
    lin = (y > 0) & (y < cap)
    assert (y < 0).any() and (y > cap).any() and (lin & kept).any() and (lin & ~kept).any()

    out = layer.train().forward(x)
    r = np.random.default_rng(99).standard_normal(out.shape)
    dx = layer.backward(r)
    grads = {"x": dx, "weight": layer.weight.grad.copy(), "bias": layer.bias.grad.copy()}

    def f() -> float:
        return float(np.sum(layer.eval().forward(x) * r))

    for name, arr in (("x", x), ("weight", layer.weight.data), ("bias", layer.bias.data)):
        _, num = numerical_gradient(f, arr, h=H_FD)
        np.testing.assert_allclose(grads[name].reshape(-1), num, rtol=1e-5, atol=1e-6, err_msg=name)

    if pool is None:
        # the bias gradient, written out: r summed over kept pixels in the linear range
        e = 0.0 if noise is None else noise
        if order == "theory":
            active = (y + e > 0) & (y + e < cap)
        else:
            f_val = np.clip(y, 0, cap) + e
            active = lin & (f_val > 0) & (f_val < cap)
        want_db = (r * (active & kept)).sum(axis=(0, 2, 3))
        np.testing.assert_allclose(grads["bias"], want_db, rtol=1e-10, atol=1e-12)
        # an unsampled pixel's output has no influence at all
        assert (lin & ~kept).any()
        r2 = r * ~kept
        layer.train().forward(x)
        assert np.all(layer.backward(r2) == 0)
        assert np.all(layer.weight.grad == 0) and np.all(layer.bias.grad == 0)


# ----------------------------------------------------------------------------------------------
# Norms, problems and statistics
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norms", ["per_image", "first_image"])
def test_norm_products_given_to_the_executor(norms):
    cfg = QuantumConfig(eps=0.1, sigma=None, norms=norms)
    ex = FixedExecutor()
    layer = QuantumConv2D(3, 4, 3, 2, 1, config=cfg, executor=ex, rng=0, dtype=np.float64)
    stats = layer.observe(LayerStatistics())
    x = np.random.default_rng(1).standard_normal((5, 3, 9, 9))
    x[2] *= 10.0  # images with very different norms
    layer.forward(x)
    (problem,) = ex.problems
    assert isinstance(problem, ConvProblem)
    pat = _patches(x, 3, 2, 1)  # (N, 5, 5, 3, 3, 3)
    if norms == "per_image":
        a_norm = np.sqrt((pat**2).sum(axis=(3, 4, 5)))  # all channels of the patch
    else:  # the notebook's shortcut: image 0, channel 0, for every image and channel
        a_norm = np.broadcast_to(np.sqrt((pat[:1, :, :, 0] ** 2).sum(axis=(3, 4))), (5, 5, 5))
    f_norm = np.linalg.norm(layer.weight.data.reshape(4, -1), axis=1)
    want = a_norm[:, None] * f_norm[None, :, None, None]
    np.testing.assert_allclose(np.broadcast_to(problem.scale, want.shape), want, rtol=1e-10)
    # the problem is consistent: y = F A, column (n, p) of cols is image n's patch p
    w2d = problem.weight2d
    np.testing.assert_array_equal(w2d, layer.weight.data.reshape(4, -1))
    y_from_cols = (w2d @ problem.cols).reshape(4, 5, 5, 5).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(problem.y, y_from_cols, rtol=1e-10, atol=1e-12)
    y_direct = np.einsum("nhwcij,ocij->nohw", pat, layer.weight.data)
    np.testing.assert_allclose(problem.y, y_direct, rtol=1e-10, atol=1e-12)
    # M: max ||A_p|| * max ||F_q||, per image; stats report the mean and the max over images
    m_img = a_norm.reshape(5, -1).max(axis=1) * f_norm.max()
    assert stats.last["M"] == pytest.approx(m_img.mean())
    assert stats.last["M_max"] == pytest.approx(m_img.max())


def test_stats_keys_and_values():
    cfg = QuantumConfig.paper(eps=0.05, cap=3.0, sigma=0.3)
    layer = QuantumConv2D(2, 5, 3, config=cfg, rng=11, dtype=np.float64)
    stats = layer.observe(LayerStatistics(detailed=True))
    x = np.random.default_rng(12).standard_normal((4, 2, 10, 10))
    st = layer.forward_stages(x)
    s = stats.last
    assert set(s) == STAT_KEYS | {"mu_A"}
    d = 5 * 8 * 8
    assert s["pixels"] == d
    assert s["shots"] == int(0.3 * d) == layer_shots(cfg, d)
    assert s["implied_eta"] == pytest.approx(math.sqrt(36 * math.log(d) / int(0.3 * d)))
    assert 0.0 <= s["kept_fraction"] <= 1.0
    # a drawn pixel has f > 0 and keeps it; an undrawn one is 0
    assert s["kept_fraction"] == pytest.approx(np.mean(st["sampled"] > 0))
    per_image_kept = (st["sampled"] > 0).reshape(4, -1).sum(axis=1)
    assert np.all(per_image_kept <= s["shots"])
    assert np.all(per_image_kept >= 1)
    np.testing.assert_array_equal(
        st["sampled"][st["sampled"] > 0], st["activated"][st["sampled"] > 0]
    )
    assert s["mean_f"] == pytest.approx(st["activated"].mean())
    assert s["zero_images"] == 0
    err = st["estimated"] - st["exact"]
    assert s["ipe_error_rms"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert s["ipe_error_rms_pixel"] == s["ipe_error_rms"]  # per pixel: the same figure
    w2d = layer.weight.data.reshape(5, -1)
    assert s["mu_F"] == pytest.approx(np.linalg.norm(w2d) / np.linalg.svd(w2d, compute_uv=False)[0])
    a0 = _patches(x[:1], 3)[0].reshape(64, -1)
    assert s["mu_A"] == pytest.approx(np.linalg.norm(a0) / np.linalg.svd(a0, compute_uv=False)[0])
    pat = _patches(x, 3)
    a_max = np.sqrt((pat**2).sum(axis=(3, 4, 5))).reshape(4, -1).max(axis=1)
    m_img = a_max * np.linalg.norm(w2d, axis=1).max()
    assert s["M"] == pytest.approx(m_img.mean())
    assert s["M_max"] == pytest.approx(m_img.max())
    # mean() averages passes; the layer's reset_stats clears them
    first = dict(s)
    layer.forward(x[::-1].copy())
    second = dict(stats.last)
    mean = stats.mean()
    for k in first:
        assert mean[k] == pytest.approx((first[k] + second[k]) / 2)
    layer.reset_stats()
    assert stats.mean() == {}
    # an observer of inference passes only ignores training passes; a detached one sees nothing
    stats.training = False
    layer.train().forward(x)
    assert stats.mean() == {}
    layer.eval().forward(x)
    assert set(stats.mean()) == set(first) and stats.mean()["M"] == pytest.approx(first["M"])
    layer.observers.remove(stats)
    stats.reset()
    layer.forward(x)
    assert stats.mean() == {} and layer.statistics is None


@pytest.mark.parametrize("name", ["paper", "per_shot_ae"])
def test_inference_only_statistics_equal_all_pass_statistics(name):
    """An observer that skips training passes (the run records') reports, for the inference
    passes, exactly what one that saw every pass reports, the per-shot layers' per-pixel error
    (drawn from a stream of its own that training passes advance) included."""
    cfg = {
        "paper": QuantumConfig.paper(),
        "per_shot_ae": QuantumConfig(
            noise_per_shot=True, ipe="amplitude_estimation", ae_bits=5, ae_median=3
        ),
    }[name]
    layer = QuantumConv2D(2, 3, 3, config=cfg, rng=4)
    every = layer.observe(LayerStatistics())
    inference = layer.observe(LayerStatistics(training=False))
    x = np.random.default_rng(5).standard_normal((3, 2, 8, 8)).astype(np.float32)
    for _ in range(3):
        layer.train().forward(x)
    assert inference.mean() == {} and every.mean()
    layer.reset_stats()
    for _ in range(2):
        layer.eval().forward(x)
    assert inference.mean() == every.mean()
    assert ("ipe_error_rms_pixel" in every.mean()) and ("per_shot_fallbacks" in every.mean()) == (
        name == "per_shot_ae"
    )


def test_no_observer_no_statistics(monkeypatch):
    """Without an observer a forward pass computes no statistics (no spectral norm)."""
    calls = []
    norm = np.linalg.norm
    monkeypatch.setattr(np.linalg, "norm", lambda *a, **k: calls.append(a) or norm(*a, **k))
    layer = QuantumConv2D(2, 5, 3, config=QuantumConfig.paper(), rng=11)
    layer.forward(np.ones((2, 2, 8, 8), np.float32))
    assert calls == [] and layer.statistics is None
    watch_statistics(layer)
    layer.forward(np.ones((2, 2, 8, 8), np.float32))
    assert calls and layer.statistics is not None and layer.statistics.last["shots"] > 0


def test_stats_without_sampling_and_with_eta():
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    layer = QuantumConv2D(1, 2, 3, config=QuantumConfig.exact(), rng=0)
    s = watch_statistics(layer)[layer]
    layer.forward(x)
    assert set(s.last) == STAT_KEYS
    assert math.isnan(s.last["shots"]) and math.isnan(s.last["implied_eta"])
    assert s.last["kept_fraction"] == 1.0 and s.last["ipe_error_rms"] == 0.0
    eta_cfg = QuantumConfig(sigma=None, eta=0.5)
    layer = QuantumConv2D(1, 2, 3, config=eta_cfg, rng=0)
    s = watch_statistics(layer)[layer]
    layer.forward(x)
    d = 2 * 36
    assert s.last["shots"] == tomography_shots(d, 0.5) == math.ceil(36 * math.log(d) / 0.25)
    assert s.last["implied_eta"] == pytest.approx(implied_eta(d, tomography_shots(d, 0.5)))


ZERO_CONFIGS = {
    "paper": QuantumConfig.paper(),
    "theory": QuantumConfig(noise_order="theory"),
    "ae": QuantumConfig(ipe="amplitude_estimation", eps=0.05, ae_median=3),
    "tomography": QuantumConfig(sampled_value="tomography", sampling_power=2),
    "eta": QuantumConfig(sigma=None, eta=0.3),
    "first_image": QuantumConfig(norms="first_image"),
    "exact": QuantumConfig.exact(cap=5.0),
    "per_shot": QuantumConfig(noise_per_shot=True),
    "theory_preset": QuantumConfig.theory(),
}


@pytest.mark.parametrize("pool", [None, "max", "avg"])
@pytest.mark.parametrize("name", sorted(ZERO_CONFIGS))
def test_all_zero_image_gives_zero_output_without_warnings(name, pool):
    cfg = ZERO_CONFIGS[name]
    layer = QuantumConv2D(2, 3, 3, bias=False, config=cfg, pool=pool, rng=1)
    stats = watch_statistics(layer, detailed=True)[layer]
    x = np.zeros((3, 2, 8, 8), np.float32)
    x[1] = np.random.default_rng(0).standard_normal((2, 8, 8))  # one live image in the batch
    # (with norms='first_image' the zero first image gives zero norms: no noise anywhere)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            out = layer.train().forward(x)
            dx = layer.backward(np.ones_like(out))
    live, dead = 1, [0, 2]
    assert np.all(out[dead] == 0) and np.all(dx[dead] == 0)
    assert np.isfinite(out).all() and np.isfinite(dx).all()
    assert out[live].any()
    assert stats.last["zero_images"] == 2
    undefined = {"shots", "implied_eta", "mu_A"}  # no sampling / first image may be all zero
    assert all(math.isfinite(v) for k, v in stats.last.items() if k not in undefined)
    # a batch of zeros only
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            out = layer.train().forward(np.zeros((2, 2, 8, 8), np.float32))
            dx = layer.backward(np.ones_like(out))
    assert not out.any() and not dx.any() and not layer.weight.grad.any()
    assert math.isnan(stats.last["mu_A"])  # zero patch matrix: undefined, reported as nan


def test_zero_image_with_negative_bias_gives_zero_output():
    layer = QuantumConv2D(1, 2, 3, config=QuantumConfig.paper(), rng=0)
    layer.bias.data[:] = -0.5
    out = layer.forward(np.zeros((2, 1, 6, 6), np.float32))
    assert not out.any()


def test_tomography_values_keep_each_images_total():
    """sampled_value='tomography': drawn pixels take (n/N) sum f, so each image keeps sum f."""
    cfg = QuantumConfig(eps=0.05, sigma=0.2, sampled_value="tomography")
    layer = QuantumConv2D(2, 3, 3, config=cfg, rng=4, dtype=np.float64)
    x = np.random.default_rng(4).standard_normal((6, 2, 9, 9))
    st = layer.forward_stages(x)
    f = st["activated"].reshape(6, -1)
    out = st["sampled"].reshape(6, -1)
    np.testing.assert_allclose(out.sum(axis=1), f.sum(axis=1), rtol=1e-10)
    shots = int(0.2 * f.shape[1])
    n = out * shots / f.sum(axis=1, keepdims=True)  # the counts
    np.testing.assert_allclose(n, np.round(n), atol=1e-8)
    assert np.all(np.round(n).sum(axis=1) == shots)
    assert np.all(out[f == 0] == 0)


def test_ae_model_through_the_layer():
    cfg = QuantumConfig(
        ipe="amplitude_estimation", ae_bits=5, sigma=None, cap=1e30, noise_order="theory"
    )
    layer = QuantumConv2D(2, 3, 3, config=cfg, rng=2, dtype=np.float64)
    x = np.random.default_rng(3).standard_normal((4, 2, 8, 8))
    st = layer.forward_stages(x)
    pat = _patches(x, 3)
    scale = (
        np.sqrt((pat**2).sum(axis=(3, 4, 5)))[:, None]
        * np.linalg.norm(layer.weight.data.reshape(3, -1), axis=1)[None, :, None, None]
    )
    err = np.abs(st["estimated"] - st["exact"])
    assert np.all(err <= 2 * scale + 1e-9)
    big_m = 32
    assert np.mean(err <= 2 * scale * (math.pi / big_m + math.pi**2 / big_m**2)) >= 8 / math.pi**2
    assert err.max() > 0


# ----------------------------------------------------------------------------------------------
# Randomness: determinism, evaluation
# ----------------------------------------------------------------------------------------------


def test_same_seed_same_output_and_fresh_noise_per_pass():
    cfg = QuantumConfig.paper(eps=0.1, sigma=0.3)
    x = np.random.default_rng(0).standard_normal((3, 1, 10, 10)).astype(np.float32)
    a = QuantumConv2D(1, 4, 3, config=cfg, rng=5)
    b = QuantumConv2D(1, 4, 3, config=cfg, rng=5)
    a1, a2 = a.forward(x), a.forward(x)
    b1, b2 = b.forward(x), b.forward(x)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # the network is stochastic
    c = QuantumConv2D(1, 4, 3, config=cfg, rng=6)
    assert not np.array_equal(c.forward(x), a1)
    # the same Generator gives the classical twin's weights, and the noise stream is separate
    g = np.random.default_rng(42)
    q = QuantumConv2D(1, 4, 3, config=cfg, rng=g)
    cl = Conv2D(1, 4, 3, rng=np.random.default_rng(42))
    np.testing.assert_array_equal(q.weight.data, cl.weight.data)


def _small_qnet(seed: int) -> Sequential:
    cfg = QuantumConfig.paper(eps=0.1, sigma=0.3)
    return Sequential(
        QuantumConv2D(1, 3, 3, config=cfg, rng=seed),
        QuantumConv2D(3, 2, 3, config=cfg, rng=seed + 1),
        Flatten(),
        Dense(2 * 6 * 6, 4, rng=seed + 2),
    )


def test_evaluate_is_reproducible_and_leaves_layer_rng_untouched():
    model = _small_qnet(0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 1, 10, 10)).astype(np.float32)
    y = rng.integers(0, 4, 40)
    qlayers = [layer for layer in model.layers if isinstance(layer, QuantumConv2D)]
    gens = [layer.rng for layer in qlayers]
    states = [g.bit_generator.state for g in gens]
    r1 = evaluate(model, x, y, batch_size=16)
    r2 = evaluate(model, x, y, batch_size=16)
    assert r1 == r2
    assert [layer.rng for layer in qlayers] == gens  # the same objects
    assert [g.bit_generator.state for g in gens] == states  # not advanced
    assert evaluate(model, x, y, batch_size=16, seed=12345) != r1  # the seed is used
    # training draws from the layer generators, evaluation does not disturb that stream
    model2 = _small_qnet(0)
    o1 = model.train().forward(x[:5])
    o2 = model2.train().forward(x[:5])
    np.testing.assert_array_equal(o1, o2)


def test_nested_quantum_layers_are_found_reseeded_and_reported():
    flat = _small_qnet(0)
    q0, q1, flatten, dense = flat.layers
    nested = Sequential(q0, Sequential(Sequential(q1), flatten), dense)
    assert quantum_layers(nested) == [q0, q1]
    x = np.random.default_rng(1).standard_normal((8, 1, 10, 10)).astype(np.float32)
    y = np.zeros(8, dtype=np.int64)
    states = [q.rng.bit_generator.state for q in (q0, q1)]
    watch_statistics(nested)
    r_nested = evaluate(nested, x, y)
    assert [q.rng.bit_generator.state for q in (q0, q1)] == states  # both reseeded and restored
    assert r_nested == evaluate(_small_qnet(0), x, y)  # the same evaluation noise as flat
    stats = _layer_stats(nested)
    assert [s["layer"] for s in stats] == [0, 3]  # positions in walk order below the model
    assert [s["layer"] for s in _layer_stats(flat)] == [0, 1]  # flat: index in model.layers
    assert all(s["name"] == "QuantumConv2D" and s["stats"]["shots"] > 0 for s in stats)


# ----------------------------------------------------------------------------------------------
# Shapes, vectorisation, validation
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("pool", [None, "max", "avg"])
def test_batch_shapes_and_vectorisation(batch, pool):
    x = np.random.default_rng(batch).standard_normal((batch, 2, 12, 12)).astype(np.float32)
    layer = QuantumConv2D(2, 3, 5, config=QuantumConfig.paper(), pool=pool, rng=0)
    out = layer.forward(x)
    assert out.shape == (batch, *layer.output_shape((2, 12, 12)))
    assert out.shape[1:] == ((3, 8, 8) if pool is None else (3, 4, 4))
    assert layer.backward(np.ones_like(out)).shape == x.shape
    # no sampling, no noise: each image of the batch gives what it gives alone
    exact = QuantumConv2D(2, 3, 5, config=QuantumConfig.exact(), pool=pool, rng=0)
    whole = exact.forward(x)
    for i in range(batch):
        np.testing.assert_allclose(exact.forward(x[i : i + 1])[0], whole[i], rtol=1e-5, atol=1e-6)


def test_sampling_is_per_image():
    """Each image gets its own N shots over its own channels and positions."""
    cfg = QuantumConfig(eps=0.0, ipe="exact", sigma=0.1)
    layer = QuantumConv2D(1, 2, 3, bias=False, config=cfg, rng=0, dtype=np.float64)
    x = np.abs(np.random.default_rng(0).standard_normal((7, 1, 10, 10)))
    x[3] *= 1000.0  # a bright image must not take the shots of the others
    layer.weight.data = np.abs(layer.weight.data)
    out = layer.forward(x).reshape(7, -1)
    shots = int(0.1 * out.shape[1])
    kept = (out > 0).sum(axis=1)
    assert np.all(kept >= 1) and np.all(kept <= shots)


def test_validation_errors():
    cfg = QuantumConfig.paper()
    with pytest.raises(ValueError, match="pool"):
        QuantumConv2D(1, 2, 3, config=cfg, pool="min")
    with pytest.raises(TypeError, match="QuantumConfig"):
        QuantumConv2D(1, 2, 3, config=cfg.to_dict())
    with pytest.raises(ValueError, match="executor"):
        QuantumConv2D(1, 2, 3, config=cfg, executor="gpu")
    with pytest.raises(TypeError):
        QuantumConv2D(1, 2, 3, config=cfg, executor=object())
    with pytest.raises(TypeError, match="executor_options"):
        QuantumConv2D(1, 2, 3, config=cfg, executor_options={"shots": 10})  # make_executor
    with pytest.raises(TypeError, match="options"):
        make_executor(EmulatorExecutor(), shots=10)
    layer = QuantumConv2D(1, 2, 3, config=cfg, rng=0)
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(np.zeros((1, 2, 4, 4), np.float32))
    layer.eval().forward(np.zeros((1, 1, 6, 6), np.float32))
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="expects input"):
        layer.forward(np.zeros((1, 2, 6, 6), np.float32))
    with pytest.raises(ValueError, match="expects input"):
        layer.forward(np.zeros((2, 6, 6), np.float32))
    pooled = QuantumConv2D(1, 2, 3, config=cfg, pool="max", rng=0)
    with pytest.raises(ValueError, match="non-integer"):
        pooled.forward(np.zeros((1, 1, 9, 9), np.float32))  # 7x7 cannot be pooled by 2
    assert layer.weight.tags == {QUANTUM_TAG} and not layer.bias.tags
    assert isinstance(EmulatorExecutor(), Executor)
    assert isinstance(FixedExecutor(), Executor)


def test_import_does_not_pull_in_qiskit():
    code = (
        "import sys, qcnn.quantum; "
        "assert 'qiskit' not in sys.modules, sorted(m for m in sys.modules if 'qiskit' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ----------------------------------------------------------------------------------------------
# Quantum backprop: gradient noise
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradient_noise_std_is_delta_times_l2_norm(dtype):
    g = np.random.default_rng(0).standard_normal((100, 300)).astype(dtype) * 3.0
    p = Parameter(np.zeros_like(g), "w")
    delta = 0.02
    noisy = QuantumGradientNoise(delta, rng=1)(p, g)
    assert noisy.dtype == dtype and noisy.shape == g.shape
    z = (noisy.astype(np.float64) - g) / (delta * np.linalg.norm(g.astype(np.float64)))
    assert abs(z.std() - 1.0) < 5 / math.sqrt(2 * z.size)
    assert abs(z.mean()) < 5 / math.sqrt(z.size)
    assert stats.kstest(z.ravel()[:5000], "norm").pvalue > 1e-3


def test_gradient_noise_zero_delta_zero_grad_and_quantum_restriction():
    g = np.random.default_rng(0).standard_normal((4, 5))
    classical = Parameter(np.zeros((4, 5)), "c", tags={"other"})
    quantum = Parameter(np.zeros((4, 5)), "q", tags={QUANTUM_TAG})
    assert QuantumGradientNoise(0.0, rng=0)(quantum, g) is g
    z = np.zeros((3, 3))
    np.testing.assert_array_equal(QuantumGradientNoise(0.5, rng=0)(quantum, z), z)
    only_q = QuantumGradientNoise(0.5, rng=0, on="quantum")
    assert only_q(classical, g) is g
    assert not np.array_equal(only_q(quantum, g), g)
    everything = QuantumGradientNoise(0.5, rng=0, on="all")
    assert not np.array_equal(everything(classical, g), g)
    # same seed, same noise
    np.testing.assert_array_equal(
        QuantumGradientNoise(0.1, rng=3)(quantum, g), QuantumGradientNoise(0.1, rng=3)(quantum, g)
    )
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="delta"):
            QuantumGradientNoise(bad)
    with pytest.raises(ValueError, match="on"):
        QuantumGradientNoise(0.1, on="kernels")


@pytest.mark.parametrize("on", ["all", "quantum"])
def test_gradient_noise_through_make_optimizer(on):
    delta, lr = 0.05, 0.1
    cfg = QuantumConfig.paper(delta=delta).replace(gradient_on=on)
    model = paper_qcnn(cfg, seed=3, dtype=np.float64)
    opt = make_optimizer(model, lr=lr, config=cfg, seed=3)
    assert len(opt.grad_hooks) == 1 and opt.grad_hooks[0].on == on
    rng = np.random.default_rng(0)
    params = model.parameters()
    grads = [rng.standard_normal(p.shape) for p in params]
    before = [p.data.copy() for p in params]
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    opt.step()
    for p, g, b in zip(params, grads, before, strict=True):
        applied = (b - p.data) / lr  # plain SGD: p <- p - lr * g_noisy
        if on == "all" or QUANTUM_TAG in p.tags:
            e = (applied - g) / (delta * np.linalg.norm(g))
            assert np.abs(e).max() > 0.5, p.name  # noise is there
            if e.size >= 2000:
                assert abs(e.std() - 1.0) < 5 / math.sqrt(2 * e.size), p.name
        else:
            np.testing.assert_allclose(applied, g, rtol=1e-9, atol=1e-12, err_msg=p.name)

    # reproducible from the seed, and different from another seed
    def step_once(seed):
        m = paper_qcnn(cfg, seed=3, dtype=np.float64)
        o = make_optimizer(m, lr=lr, config=cfg, seed=seed)
        for p, g in zip(m.parameters(), grads, strict=True):
            p.grad = g
        o.step()
        return m.parameters()[2].data.copy()  # conv2 kernel: noisy in both modes

    np.testing.assert_array_equal(step_once(3), step_once(3))
    assert not np.array_equal(step_once(3), step_once(4))


def test_make_optimizer_without_noise():
    model = paper_qcnn(QuantumConfig.paper(delta=0.0), seed=1)
    assert make_optimizer(model, config=QuantumConfig.paper(delta=0.0)).grad_hooks == []
    assert make_optimizer(model).grad_hooks == []


def test_transfer_weights_cnn_to_qcnn_round_trip():
    cnn, qcnn = paper_cnn(1), paper_qcnn(QuantumConfig.paper(), 2)
    transfer_weights(cnn, qcnn)
    for a, b in zip(cnn.parameters(), qcnn.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)
        assert a.data is not b.data


def test_per_shot_mode_records_the_per_pixel_error_like_notebook_mode():
    """Per shot, the recorded Ybar has error 0 at unsampled pixels and a mean of n draws at the
    others; ipe_error_rms_pixel is one fresh estimate per pixel of the first image, from a
    statistics-only generator: its square has the Gaussian model's law, mean
    ``mean_p (2 eps ||A_p|| ||F_q||)^2`` (issue 17, item 4), and the training stream is not
    touched (the same outputs as without the statistic's draw)."""
    rng = np.random.default_rng(5)
    x = rng.random((3, 2, 12, 12)).astype(np.float64)
    cfg = QuantumConfig(eps=0.05, noise_per_shot=True, sigma=0.5)
    layer = QuantumConv2D(2, 4, 3, config=cfg, rng=np.random.default_rng(1), dtype=np.float64)
    stats = layer.observe(LayerStatistics())
    a_norm, f_norm = layer._norm_products(x)
    s2 = (2 * cfg.eps * a_norm[:1, None] * f_norm[None, :, None, None]) ** 2  # first image
    values = []
    for _ in range(30):
        layer.forward(x)
        values.append(stats.last["ipe_error_rms_pixel"] ** 2)
    # each value: the mean of s2 Z^2 over the image's pixels; 30 of them
    var_one = 2 * np.sum(s2**2) / s2.size**2
    assert np.mean(values) == pytest.approx(s2.mean(), abs=5 * np.sqrt(var_one / 30))
    assert stats.last["ipe_error_rms"] < stats.last["ipe_error_rms_pixel"]
    twin = QuantumConv2D(2, 4, 3, config=cfg, rng=np.random.default_rng(1), dtype=np.float64)
    twin.weight.data[...] = layer.weight.data
    twin.bias.data[...] = layer.bias.data
    twin.observe(LayerStatistics())
    layer2 = QuantumConv2D(2, 4, 3, config=cfg, rng=np.random.default_rng(1), dtype=np.float64)
    layer2.weight.data[...] = layer.weight.data
    layer2.bias.data[...] = layer.bias.data  # no observer: the statistic off
    for _ in range(2):  # the second pass would differ if the statistic drew from the stream
        np.testing.assert_array_equal(twin.forward(x), layer2.forward(x))
