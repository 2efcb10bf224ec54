"""``qcnn.torch.QuantumConv2d`` against the classical conv and the numpy emulator.

- exact config: equals ``nn.Conv2d`` + ReLU (+ pooling) for every conv argument, forward and
  gradients;
- deterministic parts equal the emulator's: the norms (against an independent im2col reference,
  groups and dilation included), the capped ReLU (``qcnn.quantum.noisy_cap_relu``), the written
  tomography values (``qcnn.quantum.sampled_values``);
- the host-side error models (amplitude estimation, noise per shot, the AE normaliser) are the
  emulator's functions: with the numpy layer given the same generator state, the outputs and
  the gradients are equal (float64);
- the device-side draws (Gaussian estimation noise, pixel sampling) are compared in law.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="qcnn.torch needs PyTorch (pip install 'qcnn[torch]')")
from torch import nn  # noqa: E402

from qcnn.quantum import (  # noqa: E402
    QuantumConfig,
    QuantumConv2D,
    estimate_inner_products,
    noisy_cap_relu,
    sampled_values,
)
from qcnn.torch import QuantumConv2d, reseed  # noqa: E402
from qcnn.torch.layer import cap_relu  # noqa: E402

CONV_ARGS = [
    dict(),
    dict(stride=2, padding=1),
    dict(padding="same"),
    dict(padding=2, dilation=2),
    dict(groups=2),
    dict(padding=1, padding_mode="reflect"),
    dict(padding=1, padding_mode="circular", bias=False),
    dict(stride=(2, 1), padding=(1, 0), padding_mode="replicate"),
]


def _twins(args, pool=None, config=None, seed=0):
    torch.manual_seed(seed)
    conv = nn.Conv2d(4, 6, 3, **args)
    with torch.no_grad():
        if conv.bias is not None:
            conv.bias.uniform_(-0.3, 0.3)
    q = QuantumConv2d.from_conv(conv, config or QuantumConfig.exact(), pool=pool, seed=1)
    return conv, q


@pytest.mark.parametrize(
    "args", CONV_ARGS, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items())
)
@pytest.mark.parametrize(
    "pool", [None, nn.MaxPool2d(2), nn.AvgPool2d(3, 2, 1)], ids=["none", "max", "avg"]
)
def test_exact_config_equals_classical_conv_relu_pool(args, pool):
    conv, q = _twins(args, pool)
    x = torch.randn(3, 4, 9, 10, dtype=torch.float64)
    conv, q = conv.double(), q.double()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref = torch.relu(conv(xa))
    if pool is not None:
        ref = pool(ref)
    out = q(xb)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    ref.backward(g)
    out.backward(g)
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(q.weight.grad, conv.weight.grad, rtol=1e-12, atol=1e-12)
    if conv.bias is not None:
        torch.testing.assert_close(q.bias.grad, conv.bias.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "args", CONV_ARGS, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items())
)
def test_norm_products_equal_an_im2col_reference(args):
    """||A_p|| ||F_q||: A_p the patch the kernel reads (its group's channels, dilated, padded
    with the padding mode), checked with an explicit unfold of the padded input."""
    _, q = _twins(args)
    q = q.double()
    x = torch.randn(2, 4, 9, 10, dtype=torch.float64)
    xp, padding = q._padded(x)
    scale = q._scale(xp, padding)
    y = q._conv_forward(x, q.weight, None)
    if padding == "same":  # kernel 3, dilation 1: one pixel on each side
        padding = 1
    cols = nn.functional.unfold(xp, q.kernel_size, q.dilation, padding, q.stride)  # (N, C k, L)
    g, o = q.groups, q.out_channels
    per_group = cols.view(2, g, -1, cols.shape[-1]).norm(dim=2)  # (N, G, L)
    a_norm = per_group.repeat_interleave(o // g, dim=1).view(y.shape)
    f_norm = q.weight.detach().flatten(1).norm(dim=1).view(1, -1, 1, 1)
    torch.testing.assert_close(scale, a_norm * f_norm, rtol=1e-10, atol=1e-12)


def test_first_image_norms_are_image0_channel0():
    _, q = _twins({}, config=QuantumConfig.paper().replace(norms="first_image"))
    x = torch.randn(3, 4, 8, 8)
    scale = q._scale(x, 0)
    sq = nn.functional.conv2d(x[:1, :1] ** 2, torch.ones(1, 1, 3, 3))
    f = q.weight.detach().flatten(1).norm(dim=1).view(1, -1, 1, 1)
    torch.testing.assert_close(scale, sq.sqrt() * f)


@pytest.mark.parametrize("order", ["paper", "theory"])
def test_cap_relu_equals_the_emulators(order):
    rng = np.random.default_rng(0)
    y = rng.normal(0, 4, 5000)
    y_bar = y + rng.normal(0, 2, 5000)
    f_ref, df_ref = noisy_cap_relu(y, y_bar, 3.0, order)
    f, df = cap_relu(torch.from_numpy(y), torch.from_numpy(y_bar), 3.0, order)
    np.testing.assert_array_equal(f.numpy(), f_ref)
    np.testing.assert_array_equal(df.numpy(), df_ref)


def _numpy_twin(q: QuantumConv2d, config: QuantumConfig) -> QuantumConv2D:
    """The emulator's layer with q's weights (float64), its generator a copy of q's host one."""
    layer = QuantumConv2D(
        q.in_channels,
        q.out_channels,
        q.kernel_size,
        q.stride,
        q.padding,  # type: ignore[arg-type]
        q.bias is not None,
        config=config,
        pool="max" if isinstance(q.pool, nn.MaxPool2d) else None,
        rng=0,
        dtype=np.float64,
    )
    layer.weight.data = q.weight.detach().numpy().astype(np.float64)
    if q.bias is not None:
        layer.bias.data = q.bias.detach().numpy().astype(np.float64)
    layer.rng = copy.deepcopy(q.streams.host)
    return layer


HOST_CONFIGS = {
    # every draw of these runs on the host through the emulator's own functions
    "ae-per-pixel-no-sampling": QuantumConfig(eps=0.05, ipe="amplitude_estimation", sigma=None),
    "ae-median-5-no-sampling": QuantumConfig(
        eps=0.05, ipe="amplitude_estimation", ae_median=5, sigma=None
    ),
    "per-shot-gaussian-paper": QuantumConfig(eps=0.05, cap=2.0, noise_per_shot=True),
    "per-shot-ae-theory-tomography": QuantumConfig(
        eps=0.05,
        cap=2.0,
        ipe="amplitude_estimation",
        noise_order="theory",
        noise_per_shot=True,
        sampled_value="tomography",
        tomography_normaliser="amplitude_estimation",
    ),
    "per-shot-ae-median-3": QuantumConfig(
        eps=0.1, cap=3.0, ipe="amplitude_estimation", ae_median=3, noise_per_shot=True
    ),
    # the theory preset: AE with the median of k = 11 (from Delta), per shot, AE normaliser
    "theory-preset": QuantumConfig.theory(eps=0.1, cap=3.0),
}


@pytest.mark.parametrize("name", list(HOST_CONFIGS))
@pytest.mark.parametrize("pool", [None, "max"])
def test_host_error_models_equal_the_emulator_forward_and_backward(name, pool):
    """Same weights, input and generator state: the torch layer and the emulator's layer give
    the same output and the same gradients (dx, dW, db), bit for bit up to GEMM rounding."""
    config = HOST_CONFIGS[name]
    torch.manual_seed(3)
    q = QuantumConv2d(3, 4, 3, padding=1, config=config, pool=pool, seed=5).double()
    twin = _numpy_twin(q, config)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    out = q(x)
    ref = twin.train().forward(x.detach().numpy())
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-9, atol=1e-12)
    assert (ref > 0).mean() > 0.05  # something was written
    g = np.random.default_rng(1).normal(size=ref.shape)
    out.backward(torch.from_numpy(g))
    dx = twin.backward(g)
    np.testing.assert_allclose(q.weight.grad.numpy(), twin.weight.grad, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(q.bias.grad.numpy(), twin.bias.grad, rtol=1e-9, atol=1e-12)
    if dx is not None:
        np.testing.assert_allclose(x.grad.numpy(), dx, rtol=1e-9, atol=1e-12)


def test_ae_estimate_is_the_emulators_outcome_law():
    """The per-pixel AE estimate is :func:`qcnn.quantum.estimate_inner_products` on the layer's
    exact products and norms, with the layer's host generator."""
    config = QuantumConfig(eps=0.02, ipe="amplitude_estimation", sigma=None)
    torch.manual_seed(0)
    q = QuantumConv2d(2, 3, 3, config=config, seed=9, bias=False).double()
    x = torch.randn(2, 2, 7, 7, dtype=torch.float64)
    rng = copy.deepcopy(q.streams.host)
    st = q.forward_stages(x)
    scale = q._scale(x, 0)
    ref = estimate_inner_products(st["exact"].numpy(), scale.numpy(), config, rng)
    np.testing.assert_array_equal(st["estimated"].numpy(), ref)


def test_gaussian_estimation_error_law():
    """(Ybar - Y) / (2 eps ||A_p|| ||F_q||) is N(0, 1), drawn on the device: a KS test and a
    two-sample KS test against the emulator's own draws for the same layer (n = 40,000 each:
    a shift of the scale by 3 % is detected with power > 0.99 at the 1e-3 level)."""
    stats = pytest.importorskip("scipy.stats")
    config = QuantumConfig(eps=0.05, sigma=None, cap=1e6)
    torch.manual_seed(0)
    q = QuantumConv2d(3, 10, 3, config=config, seed=2).double()
    x = torch.randn(100, 3, 6, 6, dtype=torch.float64)  # 100 * 10 * 16 = 16,000 pixels a pass
    zs = []
    for _ in range(3):
        st = q.forward_stages(x)
        scale = q._scale(x, 0)
        zs.append(((st["estimated"] - st["exact"]) / (2 * config.eps * scale)).flatten().numpy())
    z = np.concatenate(zs)[:40_000]
    assert stats.kstest(z, "norm").pvalue > 1e-3
    twin = _numpy_twin(q, config)
    twin.rng = np.random.default_rng(11)
    st_np = twin.forward_stages(x.numpy())
    scale_np = q._scale(x, 0).numpy()
    z_np = ((st_np["estimated"] - st_np["exact"]) / (2 * config.eps * scale_np)).ravel()
    assert stats.ks_2samp(z, z_np).pvalue > 1e-3
    # the variance: within 4 standard errors of 1; a 3 % scale error (variance +6.1 %, 8.6
    # standard errors) is rejected, which is the test's power
    se = np.sqrt(2.0 / z.size)
    assert abs(z.var() - 1.0) < 4 * se
    assert abs((1.03 * z).var() - 1.0) > 4 * se


PASSES = 1500


def test_sampling_is_value_proportional_on_the_device():
    """Shot counts of one image: chi-square against f / sum f (the emulator's law); the same
    counts are rejected against f^2 (the sampling_power=2 ablation), which shows the power."""
    config = QuantumConfig(eps=0.0, ipe="exact", sigma=0.5, cap=1e6)
    torch.manual_seed(1)
    q = QuantumConv2d(1, 2, 3, config=config, seed=4).double()
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    f = q.forward_stages(x)["activated"].flatten().numpy()
    counts = np.zeros_like(f)
    for _ in range(PASSES):  # passes x 16 shots
        counts += q.forward_stages(x)["sampled"].flatten().numpy() > 0
    # 'sampled' > 0 marks drawn pixels, not their counts: compare P(drawn) = 1 - (1 - p)^N
    p = f / f.sum()
    shots = int(0.5 * f.size)
    expected = PASSES * (1 - (1 - p) ** shots)
    live = f > 0
    drawn = counts[live]
    z = (drawn - expected[live]) / np.sqrt(expected[live] * (1 - expected[live] / PASSES))
    assert np.abs(z).max() < 4.5, z
    p2 = f**2 / (f**2).sum()
    exp2 = PASSES * (1 - (1 - p2) ** shots)
    z2 = (drawn - exp2[live]) / np.sqrt(np.maximum(exp2[live] * (1 - exp2[live] / PASSES), 1e-9))
    assert np.abs(z2).max() > 6


def test_multinomial_counts_chi_square():
    stats = pytest.importorskip("scipy.stats")
    from qcnn.torch.random import multinomial_counts

    rng = np.random.default_rng(0)
    w = rng.random((3, 50)) ** 3
    w[1] = 0.0  # an all-zero image: no shots
    gen = torch.Generator().manual_seed(0)
    counts = multinomial_counts(torch.from_numpy(w).float(), 200_000, gen).numpy()
    assert counts[1].sum() == 0 and (counts[[0, 2]].sum(axis=1) == 200_000).all()
    for r in (0, 2):
        expected = 200_000 * w[r] / w[r].sum()
        assert stats.chisquare(counts[r], expected).pvalue > 1e-3
        wrong = 200_000 * w[r] ** 1.1 / (w[r] ** 1.1).sum()
        assert stats.chisquare(counts[r], wrong).pvalue < 1e-6  # power: a 10 % exponent error


@pytest.mark.parametrize("power", [1, 2])
def test_tomography_values_equal_the_emulators(power):
    from qcnn.torch.layer import _tomography_values

    rng = np.random.default_rng(0)
    values = rng.random((4, 30)) * (rng.random((4, 30)) > 0.3)
    counts = rng.multinomial(20, np.full(30, 1 / 30), size=4)
    counts[2] = 0
    ref = sampled_values(values, counts, "tomography", power)
    got = _tomography_values(torch.from_numpy(values), torch.from_numpy(counts), power, None)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)


def test_written_values_and_mask_follow_the_draws():
    config = QuantumConfig(eps=0.01, sigma=0.3, cap=2.0)
    torch.manual_seed(0)
    q = QuantumConv2d(2, 3, 3, config=config, seed=0)
    st = q.forward_stages(torch.randn(5, 2, 8, 8))
    drawn = st["sampled"] > 0
    torch.testing.assert_close(st["sampled"][drawn], st["activated"][drawn])
    assert not st["mask"][~drawn].any()  # undrawn pixels get no gradient
    f, df = cap_relu(st["exact"], st["estimated"], 2.0, "paper")
    assert torch.equal(st["mask"], df & drawn)


def test_same_seed_same_draws_and_reseed():
    config = QuantumConfig.paper()
    torch.manual_seed(0)
    a = QuantumConv2d(2, 3, 3, config=config, seed=7)
    b = copy.deepcopy(a)
    b.reseed(7)
    x = torch.randn(4, 2, 8, 8)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    first = a(x)
    assert not torch.equal(first, b.reseed(8) or b(x))
    model = nn.Sequential(copy.deepcopy(a), nn.Flatten())
    reseed(model, 3)
    one = model(x)
    reseed(model, 3)
    torch.testing.assert_close(model(x), one, rtol=0, atol=0)


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="QuantumConfig"):
        QuantumConv2d(1, 1, 3, config={"eps": 0.1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pool"):
        QuantumConv2d(1, 1, 3, config=QuantumConfig(), pool="median")
    with pytest.raises(ValueError, match="return_indices"):
        QuantumConv2d(1, 1, 3, config=QuantumConfig(), pool=nn.MaxPool2d(2, return_indices=True))
    q = QuantumConv2d(1, 1, 3, config=QuantumConfig(), seed=0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        q(torch.zeros(1, 5, 5))
    with pytest.raises(ValueError, match="seed"):
        QuantumConv2d(1, 1, 3, config=QuantumConfig(), seed=-1)


def test_empty_batch_and_all_zero_images():
    q = QuantumConv2d(1, 2, 3, config=QuantumConfig.paper(), seed=0)
    assert q(torch.zeros(0, 1, 6, 6)).shape == (0, 2, 4, 4)
    with torch.no_grad():
        q.bias.fill_(-1.0)
        q.weight.fill_(0.0)
    assert torch.equal(q(torch.randn(2, 1, 6, 6)), torch.zeros(2, 2, 4, 4))
