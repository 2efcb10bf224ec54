"""Quantum backprop in torch: the gradient models of the emulator on torch gradients.

- Gaussian (on the device): the law of ``(g~ - g) / (delta ||g||)`` is N(0, 1), per tensor and
  per image;
- l-infinity tomography: the emulator's :func:`qcnn.quantum.tomography_estimate` itself, equal
  given the same generator state, and its bound ``||g~ - g||_inf <= delta ||g||``;
- :class:`QuantumBackprop` as a step pre-hook of any optimizer, on all or on the quantum
  parameters only; the layer's input-gradient readout through autograd.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="qcnn.torch needs PyTorch (pip install 'qcnn[torch]')")
from torch import nn  # noqa: E402

from qcnn.quantum import QuantumConfig, tomography_estimate  # noqa: E402
from qcnn.torch import QuantumBackprop, QuantumConv2d, noisy_gradient  # noqa: E402
from qcnn.torch.random import Streams  # noqa: E402


def test_gaussian_gradient_law_per_tensor_and_per_image():
    stats = pytest.importorskip("scipy.stats")
    streams = Streams(0)
    g = torch.randn(8, 3, 20, 20, dtype=torch.float64)
    out = noisy_gradient(g, 0.1, streams, "gaussian")
    z = ((out - g) / (0.1 * g.norm())).flatten().numpy()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    out = noisy_gradient(g, 0.1, streams, "gaussian", batch_dims=1)
    norms = g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    z = ((out - g) / (0.1 * norms)).flatten().numpy()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # power: a norm over the whole batch instead of per image is rejected
    z_wrong = ((out - g) / (0.1 * g.norm() / np.sqrt(8))).flatten().numpy()
    assert stats.kstest(z_wrong * 1.2, "norm").pvalue < 1e-6
    assert noisy_gradient(g, 0.0, streams) is g


@pytest.mark.parametrize("signs", ["kp", "exact"])
@pytest.mark.parametrize("batch_dims", [0, 1])
def test_tomography_is_the_emulators(signs, batch_dims):
    streams = Streams(3)
    g = torch.randn(4, 50, dtype=torch.float64)
    rng = copy.deepcopy(streams.host)
    out = noisy_gradient(g, 0.2, streams, "linf_tomography", signs=signs, batch_dims=batch_dims)
    ref = tomography_estimate(g.numpy(), 0.2, rng, signs=signs, batch_dims=batch_dims)
    np.testing.assert_array_equal(out.numpy(), ref)
    rows = (out - g).reshape(-1 if batch_dims == 0 else 4, 200 if batch_dims == 0 else 50)
    norms = g.reshape(rows.shape).norm(dim=1)
    assert (rows.abs().max(dim=1).values <= 0.2 * norms).all()


def test_tomography_with_the_estimated_norm_is_the_emulators():
    """The theory preset's gradient model (l-infinity tomography, the norm estimated by AE with
    the preset's m and k) equals the emulator's for the same generator state."""
    from qcnn.quantum import noisy_gradient as emulator_noisy_gradient

    config = QuantumConfig.theory()
    assert config.gradient_norm_ae is not None
    streams = Streams(4)
    g = torch.randn(6, 40, dtype=torch.float64)
    rng = copy.deepcopy(streams.host)
    out = noisy_gradient(
        g, config.delta, streams, "linf_tomography", norm_ae=config.gradient_norm_ae
    )
    ref = emulator_noisy_gradient(
        g.numpy(), config.delta, rng, "linf_tomography", norm_ae=config.gradient_norm_ae
    )
    np.testing.assert_array_equal(out.numpy(), ref)
    with pytest.raises(ValueError, match="norm_ae"):
        noisy_gradient(g, 0.1, streams, "gaussian", norm_ae=(3, 1))


def _model(config: QuantumConfig) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        QuantumConv2d(1, 2, 3, config=config, seed=0),
        nn.Flatten(),
        nn.Linear(2 * 6 * 6, 3),
    )


@pytest.mark.parametrize("on", ["all", "quantum"])
def test_hook_noises_the_chosen_parameters_before_any_optimizer_step(on):
    config = QuantumConfig(eps=0.0, ipe="exact", sigma=None, delta=0.5, gradient_on=on)
    model = _model(config)
    opt = torch.optim.Adam(model.parameters(), lr=0.0)  # lr 0: only the gradients change
    hook = QuantumBackprop(opt, model, seed=1)
    x = torch.randn(4, 1, 8, 8)
    model(x).square().sum().backward()
    exact = [p.grad.clone() for p in model.parameters()]
    opt.step()
    changed = [not torch.equal(p.grad, e) for p, e in zip(model.parameters(), exact, strict=True)]
    expect = [True, True, True, True] if on == "all" else [True, False, False, False]
    assert changed == expect  # conv weight, conv bias, linear weight, linear bias
    hook.remove()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True))


def test_hook_takes_the_layers_config_and_refuses_disagreement():
    model = _model(QuantumConfig(delta=0.1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    assert QuantumBackprop(opt, model, seed=0).config.delta == 0.1
    model.append(QuantumConv2d(1, 1, 1, config=QuantumConfig(delta=0.2), seed=0))
    with pytest.raises(ValueError, match="disagree"):
        QuantumBackprop(opt, model)
    with pytest.raises(ValueError, match="no QuantumConv2d"):
        QuantumBackprop(opt, nn.Linear(2, 2))


def test_input_gradient_readout_is_per_image_tomography():
    """With input_gradient_noise the gradient the layer passes back is the emulator's
    tomography of the exact one, one vector per image (the same host generator state)."""
    config = QuantumConfig(
        eps=0.0,
        ipe="exact",
        sigma=None,
        delta=0.3,
        gradient_model="linf_tomography",
        input_gradient_noise=True,
    )
    torch.manual_seed(0)
    q = QuantumConv2d(2, 3, 3, config=config, seed=2).double()
    exact_q = QuantumConv2d.from_conv(q, config.replace(input_gradient_noise=False)).double()
    x = torch.randn(3, 2, 7, 7, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.randn(3, 3, 5, 5, dtype=torch.float64)
    rng = copy.deepcopy(q.streams.host)
    q(xa).backward(g)
    exact_q(xb).backward(g)
    ref = tomography_estimate(xb.grad.numpy(), 0.3, rng, signs="kp", batch_dims=1)
    np.testing.assert_allclose(xa.grad.numpy(), ref, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(q.weight.grad, exact_q.weight.grad)  # the kernel's is untouched


def test_first_layer_input_needs_no_readout():
    config = QuantumConfig(delta=0.3, input_gradient_noise=True)
    q = QuantumConv2d(1, 2, 3, config=config, seed=0)
    q(torch.randn(2, 1, 6, 6)).sum().backward()  # x does not require grad: nothing read out
    assert q.weight.grad is not None
