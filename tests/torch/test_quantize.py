"""``qcnn.torch.quantize``: Sequential and traced models, BN folding, pooling merged, the plan,
seeding; with ``QuantumConfig.exact()`` the quantized model computes the classical one."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="qcnn.torch needs PyTorch (pip install 'qcnn[torch]')")
import torch.nn.functional as TF  # noqa: E402
from torch import nn  # noqa: E402

from qcnn.quantum import QuantumConfig  # noqa: E402
from qcnn.torch import QuantumConv2d, quantization_plan, quantize  # noqa: E402

EXACT = QuantumConfig.exact()


def _randomise_batch_norms(model: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters (a fresh BN folds to identity)."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=gen) * 0.4 - 0.2)


def _quantum_layers(model: nn.Module) -> list[QuantumConv2d]:
    return [m for m in model.modules() if isinstance(m, QuantumConv2d)]


def test_sequential_keeps_its_type_names_and_weights():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1, dilation=1, groups=2),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 1),  # no ReLU after it: classical
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"), nn.ReLU()),
        nn.Flatten(),
        nn.Linear(8 * 7 * 7, 10),
    ).eval()
    _randomise_batch_norms(model)
    q = quantize(model, EXACT, seed=0)
    assert isinstance(q, nn.Sequential)
    assert list(q._modules) == ["0", "3", "6", "7", "8", "9"]
    assert [type(m).__name__ for m in q] == [
        "QuantumConv2d",
        "QuantumConv2d",
        "Conv2d",
        "Sequential",
        "Flatten",
        "Linear",
    ]
    assert isinstance(q[0].pool, nn.MaxPool2d) and q[1].groups == 2
    assert q[3][0].padding_mode == "reflect"
    torch.testing.assert_close(q[0].weight, model[0].weight)
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(q(x), model(x), rtol=1e-5, atol=1e-5)
    missing, unexpected = q.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(k.startswith("4.") for k in unexpected)  # the folded BN only
    assert isinstance(model[0], nn.Conv2d) and type(model[0]) is nn.Conv2d  # original untouched


class Custom(nn.Module):
    """Functional ReLUs, a method ReLU, a residual connection, a conv whose output has two uses."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.c = nn.Conv2d(6, 6, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        h = TF.relu(self.a(x))
        r = torch.relu(self.bn(self.b(h)))
        h = self.pool(self.c(r).relu())
        s = self.a(x)  # the same conv again, with two uses below: stays classical here
        h = h + TF.avg_pool2d(s + s, 2)
        return self.head(h.flatten(1))


def test_traced_module_patterns_and_equality():
    torch.manual_seed(1)
    model = Custom().eval()
    _randomise_batch_norms(model)
    q = quantize(model, EXACT, seed=0)
    assert isinstance(q, torch.fx.GraphModule)
    kinds = {name: type(m).__name__ for name, m in q.named_children()}
    assert kinds["b"] == "QuantumConv2d" and kinds["c"] == "QuantumConv2d"
    assert isinstance(q.c.pool, nn.AvgPool2d)
    assert "bn" not in kinds  # folded
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(q(x), model(x), rtol=1e-5, atol=1e-5)
    plan = {(n.path, n.action) for n in quantization_plan(model)}
    assert {("b", "quantum"), ("bn", "absorbed"), ("c", "quantum"), ("pool", "merged")} <= plan
    assert ("head", "classical") in plan
    shared = [n for n in quantization_plan(model) if n.path == "a"]
    assert [n.action for n in shared] == ["classical"] and "several places" in shared[0].detail


def test_batch_norm_folding_needs_eval_mode():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
    with pytest.raises(ValueError, match="eval"):
        quantize(model, EXACT)
    q = quantize(model.eval(), EXACT)
    assert isinstance(q[0], QuantumConv2d)


def test_resnet18_exact_equals_classical():
    """torchvision's ResNet-18 (random init, no download, eval, BN statistics randomised): every
    conv followed by BN and ReLU becomes quantum (the stem, with its max pool merged, and the
    first conv of each of the 8 blocks: 9), and with the exact config the outputs agree."""
    tv = pytest.importorskip("torchvision.models", reason="the ResNet-18 test needs torchvision")
    torch.manual_seed(0)
    model = tv.resnet18(weights=None).eval()
    _randomise_batch_norms(model)
    q = quantize(model, EXACT, seed=0)
    layers = _quantum_layers(q)
    assert len(layers) == 9
    assert isinstance(q.conv1.pool, nn.MaxPool2d)
    plan = quantization_plan(model)
    quantum = sorted(n.path for n in plan if n.action == "quantum")
    assert quantum == sorted(
        ["conv1"] + [f"layer{i}.{j}.conv1" for i in range(1, 5) for j in range(2)]
    )
    classical_convs = [n.path for n in plan if n.action == "classical" and "Conv2d" in n.layer]
    # each block's conv2 (its BN feeds the residual add) and the 3 downsampling convs
    assert len(classical_convs) == 8 + 3
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref, out = model(x), q(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_seeding_is_by_order_and_reproducible():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.ReLU())
    a, b = (
        quantize(model, QuantumConfig.paper(), seed=5),
        quantize(model, QuantumConfig.paper(), seed=5),
    )
    x = torch.randn(2, 1, 9, 9)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    from qcnn.seeding import seed_stream

    children = seed_stream(5, "quantum_noise").spawn(2)
    for layer, child in zip(_quantum_layers(a), children, strict=True):
        assert layer.streams.seed.spawn_key == child.spawn_key
        assert layer.streams.seed.entropy == child.entropy
    c = quantize(model, QuantumConfig.paper(), seed=6)
    assert not torch.equal(c(x), quantize(model, QuantumConfig.paper(), seed=5)(x))


def test_untraceable_module_is_refused_by_name():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
                return torch.relu(self.conv(x))
            return self.conv(x)

    with pytest.raises(TypeError, match="Branchy"):
        quantize(nn.Sequential(Branchy()), EXACT)


def test_bad_arguments():
    with pytest.raises(TypeError, match="QuantumConfig"):
        quantize(nn.Conv2d(1, 1, 1), {"eps": 0.1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="torch.nn.Module"):
        quantize(np.zeros(3), EXACT)  # type: ignore[arg-type]
