"""The architectures of qcnn.models: LeNet-5 (1998) with its connection table and trainable
subsampling (structure, parameter counts, finite differences through the whole network),
AlexNet- and Inception-style networks, adaptation to other input shapes and class counts with
clear errors, summaries and the per-layer kernel volumes recorded with results."""

from __future__ import annotations

import numpy as np
import pytest

from qcnn.models import (
    LENET5_C3_TABLE,
    MODELS,
    architecture_info,
    build_model,
    conv_stack,
    lenet5_1998,
    rbf_codes,
    simple_convnet,
)
from qcnn.nn import (
    Concat,
    Conv2D,
    Dense,
    Dropout,
    EuclideanRBF,
    LocalResponseNorm,
    MaxPool2D,
    Sigmoid,
    Subsampling2D,
    Tanh,
    softmax_cross_entropy,
    walk,
)
from tests.nn.test_layers import check_layer, grad_error

# Table I of LeCun, Bottou, Bengio, Haffner (1998): rows = S2 maps 0-5, columns = C3 maps 0-15.
PUBLISHED_C3 = """
X...XXX..XXXX.XX
XX...XXX..XXXX.X
XXX...XXX..X.XXX
.XXX..XXXX..X.XX
..XXX..XXXX.XX.X
...XXX..XXXX.XXX
"""


def test_c3_connection_table_is_the_published_one():
    rows = [line for line in PUBLISHED_C3.split() if line]
    published = np.array([[ch == "X" for ch in row] for row in rows])  # (6, 16)
    np.testing.assert_array_equal(LENET5_C3_TABLE, published.T)
    assert LENET5_C3_TABLE.sum() == 60


def test_lenet5_1998_structure_and_parameter_counts():
    model = lenet5_1998()
    convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    subs = [layer for layer in model.layers if isinstance(layer, Subsampling2D)]
    assert [c.out_channels for c in convs] == [6, 16, 120] and len(subs) == 2
    assert convs[0].padding == 2 and convs[1].connections is not None
    # LeCun et al. count trainable parameters: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164
    effective = [156, 12, 25 * 60 + 16, 32, 48120, 10164]
    got = [
        sum(p.data.size for p in convs[0].parameters()),
        sum(p.data.size for p in subs[0].parameters()),
        int(convs[1].connections.sum()) * 25 + 16,  # connected weights and 16 biases
        sum(p.data.size for p in subs[1].parameters()),
        sum(p.data.size for p in convs[2].parameters()),
        sum(p.data.size for p in model[11].parameters()),
    ]
    assert got == effective
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    assert model.features(x, 9).shape == (2, 120, 1, 1)  # C5 after its tanh: 120 maps of 1x1
    assert model.features(x).shape == (2, 84)  # F6
    assert model.predict(x).shape == (2, 10)
    with pytest.raises(ValueError, match="activation"):
        lenet5_1998(activation="softsign")


@pytest.mark.parametrize(
    "activation, output", [("tanh", "dense"), ("sigmoid", "dense"), ("sigmoid", "rbf")]
)
def test_lenet5_1998_gradients_through_the_whole_network(activation, output):
    model = lenet5_1998(3, np.float64, activation=activation, output=output)
    squash = {"tanh": Tanh, "sigmoid": Sigmoid}[activation]
    assert sum(isinstance(layer, squash) for layer in model.layers) == 6  # C1 S2 C3 S4 C5 F6
    assert isinstance(model[-1], EuclideanRBF if output == "rbf" else Dense)
    rng = np.random.default_rng(1)
    for sub in (model[2], model[6]):  # move the subsampling away from its initial 1 / 0
        sub.weight.data[:] = rng.uniform(0.5, 1.5, sub.weight.shape)
        sub.bias.data[:] = rng.normal(0, 0.1, sub.bias.shape)
    x = rng.standard_normal((2, 1, 28, 28))
    y = np.array([3, 8])

    def loss() -> float:
        return softmax_cross_entropy(model.forward(x), y)[0]

    _, d = softmax_cross_entropy(model.forward(x), y)
    model.backward(d)
    c3 = model[4]
    assert np.all(c3.weight.grad[~LENET5_C3_TABLE] == 0)
    # sigmoid's vanishing gradient: C1's gradients are ~1e-7 under six sigmoids, where the
    # finite differences' rounding (~1e-16 |loss| / h) is already ~1e-5 of them
    tol = 1e-6 if activation == "tanh" else 1e-4
    for name, p in model.named_parameters():
        assert grad_error(loss, p.grad, p.data, max_entries=6, seed=2) < tol, name


def test_alexnet_and_inception_shapes():
    alex = build_model("alexnet-small")
    assert sum(isinstance(layer, LocalResponseNorm) for layer in alex.layers) == 2
    assert sum(isinstance(layer, Dropout) for layer in alex.layers) == 2
    assert [c.out_channels for c in alex.layers if isinstance(c, Conv2D)] == [32, 64, 96, 96, 64]
    assert alex.output_shape((1, 28, 28)) == (10,)
    inc = build_model("inception-small")
    blocks = [layer for layer in inc.layers if isinstance(layer, Concat)]
    assert [b.output_shape((32, 14, 14)) for b in blocks[:1]] == [(104, 14, 14)]
    assert blocks[1].output_shape((104, 7, 7)) == (192, 7, 7)
    assert len(blocks) == 2 and all(len(b.branches) == 4 for b in blocks)


@pytest.mark.parametrize("arch", list(MODELS))
def test_every_architecture_adapts_to_channels_and_classes(arch):
    model = build_model(arch, input_shape=(3, 32, 32), classes=4, seed=2)
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert model.predict(x).shape == (2, 4)
    text = model.summary((3, 32, 32))
    assert text.splitlines()[-1] == f"total parameters: {model.num_parameters():,}"


@pytest.mark.parametrize(
    "arch, smallest", [("paper", 13), ("lenet5", 12), ("lenet5-1998", 28), ("alexnet-small", 12)]
)
def test_too_small_inputs_give_an_error_naming_the_minimum_size(arch, smallest):
    with pytest.raises(ValueError, match=f"smallest square input it fits is {smallest}x{smallest}"):
        build_model(arch, input_shape=(1, 8, 8))
    build_model(arch, input_shape=(1, smallest, smallest))


def test_inception_fits_the_8x8_digits_and_bad_arguments_are_rejected():
    model = build_model("inception-small", input_shape=(1, 8, 8))
    assert model.predict(np.zeros((1, 1, 8, 8), np.float32)).shape == (1, 10)
    with pytest.raises(ValueError, match="unknown architecture 'vgg'"):
        build_model("vgg")
    with pytest.raises(ValueError, match="classes"):
        build_model("paper", classes=1)
    with pytest.raises(ValueError, match="input_shape"):
        build_model("paper", input_shape=(28, 28))


def test_architecture_info_lists_kernel_volumes():
    info = architecture_info(build_model("paper"), (1, 28, 28))
    assert info["parameters"] == build_model("paper").num_parameters()
    assert [r["kernel_volume"] for r in info["conv_layers"]] == [49, 245]
    assert [r["output_shape"] for r in info["conv_layers"]] == [[5, 22, 22], [10, 16, 16]]
    lenet = architecture_info(lenet5_1998(), (1, 28, 28))["conv_layers"]
    assert [r["kernel_volume"] for r in lenet] == [25, 6 * 25, 16 * 25]  # C3: at most 6 maps
    inc = architecture_info(build_model("inception-small"), (1, 28, 28))["conv_layers"]
    assert len(inc) == 13 and inc[0]["path"] == "0"
    five = [r for r in inc if r["kernel"][1:] == [5, 5]]
    assert [r["kernel_volume"] for r in five] == [8 * 25, 12 * 25]
    assert [r["input_shape"] for r in five] == [[8, 14, 14], [12, 7, 7]]
    q = architecture_info(
        build_model("inception-small", __import__("qcnn").quantum.QuantumConfig.exact()),
        (1, 28, 28),
    )
    assert all(r["quantum"] for r in q["conv_layers"])


@pytest.mark.parametrize("arch", ["alexnet-small", "inception-small"])
def test_deep_networks_use_he_initialisation(arch):
    model = build_model(arch, seed=5)
    for layer in walk(model):
        if isinstance(layer, (Conv2D, Dense)):
            fan_in = layer.weight.data[0].size
            bound = np.sqrt(6.0 / fan_in)
            w = layer.weight.data
            assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
            assert not np.any(layer.bias.data)
    other = build_model(arch, seed=6)
    assert not np.array_equal(model.parameters()[0].data, other.parameters()[0].data)


def test_alexnet_groups_two_splits_convs_two_four_five_like_the_two_gpus():
    plain, split = build_model("alexnet-small", seed=4), MODELS["alexnet-small"](4, groups=2)
    convs = [c for c in split.layers if isinstance(c, Conv2D)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert [c.weight.shape for c in convs][1] == (64, 16, 3, 3)  # PyTorch's (O, C/g, kh, kw)
    plain_convs = [c for c in plain.layers if isinstance(c, Conv2D)]
    saved = sum(plain_convs[i].weight.data.size // 2 for i in (1, 3, 4))  # half of each kernel
    assert plain.num_parameters() - split.num_parameters() == saved == 78_336
    # groups=1 is the network it always was: same weights, bit for bit
    again = MODELS["alexnet-small"](4, groups=1)
    for a, b in zip(plain.parameters(), again.parameters(), strict=True):
        assert np.array_equal(a.data, b.data)
    x = np.random.default_rng(5).standard_normal((2, 1, 28, 28)).astype(np.float32)
    assert split.predict(x).shape == (2, 10)
    info = architecture_info(split, (1, 28, 28))
    assert [row["kernel"][0] for row in info["conv_layers"]] == [1, 16, 64, 48, 48]
    with pytest.raises(ValueError, match="groups"):
        MODELS["alexnet-small"](4, groups=3)


def test_rbf_output_is_minus_the_squared_distance_to_fixed_codes():
    codes = rbf_codes(10)
    assert codes.shape == (10, 84) and set(np.unique(codes)) == {-1.0, 1.0}
    assert len({row.tobytes() for row in codes}) == 10  # ten distinct class codes
    assert set(np.unique(rbf_codes(10, low=0.0))) == {0.0, 1.0}
    layer = EuclideanRBF(codes)
    assert layer.params == {}  # fixed codes: nothing to train
    x = np.random.default_rng(7).standard_normal((3, 84))
    ref = -np.array([[np.sum((x[n] - codes[k]) ** 2) for k in range(10)] for n in range(3)])
    np.testing.assert_allclose(layer.forward(x), ref, rtol=1e-12)
    # the nearest code wins: an input at code 4 is class 4
    assert int(np.argmax(layer.forward(codes[4:5] * 0.9))) == 4
    errors = check_layer(layer, x)
    assert set(errors) == {"input"}
    with pytest.raises(ValueError, match="2-D"):
        EuclideanRBF(np.ones(3))
    with pytest.raises(ValueError, match="classes"):
        rbf_codes(128, 84)
    with pytest.raises(ValueError, match="output"):
        lenet5_1998(output="softmax")


def test_simple_convnet_is_the_primers_network_by_its_numbers():
    model = simple_convnet(2, np.float64)
    # conv 30 5x5 (780) + dense 4320 -> 100 (432,100) + dense 100 -> 10 (1,010)
    assert model.num_parameters() == 433_890
    assert model.output_shape((1, 28, 28)) == (10,)
    w = model[0].weight.data
    assert abs(w.std() - 0.01) < 0.002 and not model[0].bias.data.any()
    he = simple_convnet(
        2,
        conv_param={"filter_num": 16, "filter_size": 3, "pad": 1},
        hidden_size=50,
        weight_init_std="he",
    )
    assert he[0].weight.shape == (16, 1, 3, 3) and he.output_shape((1, 28, 28)) == (10,)
    dense = [layer for layer in he.layers if isinstance(layer, Dense)]
    assert abs(dense[0].weight.data.std() - np.sqrt(2 / (16 * 14 * 14))) < 2e-3
    xavier = simple_convnet(2, weight_init_std="xavier")
    assert abs(xavier[0].weight.data.std() - np.sqrt(1 / 25)) < 0.03
    # same seed, same network; the seed drives the weights
    a, b = simple_convnet(5), simple_convnet(5)
    assert all(
        np.array_equal(p.data, q.data) for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )
    assert not np.array_equal(simple_convnet(6)[0].weight.data, a[0].weight.data)
    with pytest.raises(ValueError, match="unknown keys"):
        simple_convnet(conv_param={"filters": 3})
    with pytest.raises(ValueError, match="weight_init_std"):
        simple_convnet(weight_init_std="lecun")
    with pytest.raises(ValueError, match="weight_init_std"):
        simple_convnet(weight_init_std=-0.1)


@pytest.mark.parametrize("n, m, k", [(1, 1, 1), (2, 2, 2), (3, 2, 3), (4, 1, 2)])
def test_conv_stack_n_blocks_of_m_convs_and_pool_then_k_dense(n, m, k):
    model = conv_stack(n, m, k, seed=3, channels=4, hidden_size=20)
    convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    pools = [layer for layer in model.layers if isinstance(layer, MaxPool2D)]
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    assert (len(convs), len(pools), len(dense)) == (n * m, n, k)
    assert [c.out_channels for c in convs] == [4 * 2**b for b in range(n) for _ in range(m)]
    side = 28
    for _ in range(n):
        side //= 2
    widths = [4 * 2**b for b in range(n)]
    ins = [1] + [widths[b] for b in range(n) for _ in range(m)][:-1]
    outs = [widths[b] for b in range(n) for _ in range(m)]
    conv_params = sum(i * o * 9 + o for i, o in zip(ins, outs, strict=True))
    sizes = [widths[-1] * side * side, *([20] * (k - 1)), 10]
    dense_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    assert model.num_parameters() == conv_params + dense_params
    x = np.random.default_rng(4).standard_normal((2, 1, 28, 28)).astype(np.float32)
    assert model.predict(x).shape == (2, 10)


def test_conv_stack_options_and_errors():
    model = conv_stack(2, 1, 1, channels=(3, 5), pool="avg", activation="sigmoid")
    assert [c.out_channels for c in model.layers if isinstance(c, Conv2D)] == [3, 5]
    assert sum(isinstance(layer, Sigmoid) for layer in model.layers) == 2
    with pytest.raises(ValueError, match="one count per block"):
        conv_stack(2, 1, 1, channels=(3,))
    with pytest.raises(ValueError, match="does not fit"):
        conv_stack(5, 1, 1)  # 28 -> 14 -> 7 -> 3 -> 1 -> nothing
    with pytest.raises(ValueError, match="blocks"):
        conv_stack(0, 1, 1)
    with pytest.raises(ValueError, match="pool"):
        conv_stack(1, 1, 1, pool="min")
