"""Tests of qcnn.nn.model.Sequential (forward/backward, naming, persistence) and qcnn.models
(seeded construction, determinism, equivalence with the same network in PyTorch)."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from qcnn.models import lenet5, paper_cnn
from qcnn.nn import (
    SGD,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
    Sequential,
    Tanh,
    softmax_cross_entropy,
    walk,
)
from qcnn.nn.gradcheck import numerical_gradient, relative_error
from qcnn.nn.model import load_npz_strict


def small_model(seed=0, dtype=np.float64):
    r = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]
    return Sequential(
        Conv2D(1, 2, 3, padding=1, rng=r[0], dtype=dtype),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(18, 5, rng=r[1], dtype=dtype),
        Tanh(),
        Dense(5, 3, rng=r[2], dtype=dtype),
    )


# ----------------------------------------------------------------------------------------------
# Sequential
# ----------------------------------------------------------------------------------------------


def test_sequential_forward_backward_equals_manual_chaining():
    model = small_model()
    x = np.random.default_rng(1).standard_normal((4, 1, 6, 6))
    g = np.random.default_rng(2).standard_normal((4, 3))
    out = model.forward(x)
    model.backward(g)
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}

    twin = small_model()  # same seed: same weights
    h = x
    for layer in twin.layers:
        h = layer.forward(h)
    np.testing.assert_array_equal(out, h)
    d = g
    for layer in reversed(twin.layers):
        d = layer.backward(d)
    # the twin's first layer was also told need_input_grad=False by its Sequential
    assert d is None
    for name, p in twin.named_parameters():
        np.testing.assert_array_equal(grads[name], p.grad, err_msg=name)
    assert model.eval()(x).shape == (4, 3)


def test_first_layer_skips_its_input_gradient_and_names_follow_layer_indices():
    model = small_model()
    assert model[0].need_input_grad is False
    assert all(layer.need_input_grad for layer in model.layers[1:])
    assert [name for name, _ in model.named_parameters()] == [
        "0.weight",
        "0.bias",
        "4.weight",
        "4.bias",
        "6.weight",
        "6.bias",
    ]
    assert len(model) == 7 and list(model) == model.layers
    assert model.num_parameters() == (2 * 9 + 2) + (18 * 5 + 5) + (5 * 3 + 3)
    # a first Conv2D really returns no input gradient (and so skips the col2im work)
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    out = model[0].forward(x)
    assert model[0].backward(np.ones_like(out)) is None
    assert Sequential([ReLU(), Flatten()]).layers[0].need_input_grad is False
    with pytest.raises(ValueError, match="at least one layer"):
        Sequential()
    with pytest.raises(TypeError, match="layer 1 is int"):
        Sequential(ReLU(), 3)
    assert "(4): Dense(18, 5, bias=True)" in repr(model)


def test_predict_in_batches_equals_one_inference_pass_and_astype():
    model = small_model(dtype=np.float32)
    x = np.random.default_rng(3).standard_normal((10, 1, 6, 6)).astype(np.float32)
    full = model.eval().forward(x)
    assert full.dtype == np.float32
    np.testing.assert_allclose(model.predict(x, batch_size=3), full, rtol=1e-6, atol=1e-7)
    model.astype(np.float64)
    assert all(p.data.dtype == np.float64 and p.grad is None for p in model.parameters())
    assert model.predict(x.astype(np.float64)).dtype == np.float64


# ----------------------------------------------------------------------------------------------
# Nesting: a Sequential is a Layer
# ----------------------------------------------------------------------------------------------


def nested_model(seed=0, dtype=np.float64):
    """``small_model``'s layers with the middle grouped into two levels of nested Sequentials."""
    flat = small_model(seed, dtype)
    conv, relu, pool, flatten, d1, tanh, d2 = flat.layers
    return Sequential(conv, Sequential(relu, pool, Sequential(flatten, d1, tanh)), d2)


def test_nested_sequential_names_walk_and_shapes():
    model = nested_model()
    assert [name for name, _ in model.named_parameters()] == [
        "0.weight",
        "0.bias",
        "1.2.1.weight",
        "1.2.1.bias",
        "2.weight",
        "2.bias",
    ]
    assert [p.name for p in model.parameters()] == [n for n, _ in model.named_parameters()]
    kinds = [type(layer).__name__ for layer in walk(model)]
    assert kinds == [
        "Sequential",
        "Conv2D",
        "Sequential",
        "ReLU",
        "MaxPool2D",
        "Sequential",
        "Flatten",
        "Dense",
        "Tanh",
        "Dense",
    ]
    assert model.output_shape((1, 6, 6)) == (3,) and model[1].output_shape((2, 6, 6)) == (5,)
    # only the network's first layer skips its input gradient, however deep it sits
    assert model.need_input_grad is False and model[0].need_input_grad is False
    assert all(layer.need_input_grad for layer in list(walk(model))[2:])
    first_nested = Sequential(Sequential(Conv2D(1, 1, 3, rng=0), ReLU()), Flatten())
    assert first_nested[0][0].need_input_grad is False and first_nested[0][1].need_input_grad
    assert "(1): Sequential(\n    (0): ReLU()" in repr(model)


def test_nested_sequential_computes_what_the_flat_one_does():
    flat, nested = small_model(), nested_model()
    x = np.random.default_rng(1).standard_normal((4, 1, 6, 6))
    g = np.random.default_rng(2).standard_normal((4, 3))
    np.testing.assert_array_equal(nested.forward(x), flat.forward(x))
    flat.backward(g)
    assert nested.backward(g) is None  # the first layer skips its input gradient
    for a, b in zip(flat.parameters(), nested.parameters(), strict=True):
        np.testing.assert_array_equal(a.grad, b.grad)
    # an inner Sequential returns its input gradient to the layer before it
    inner = nested[1]
    out = inner.forward(x.repeat(2, axis=1))
    assert inner.backward(np.ones_like(out)).shape == (4, 2, 6, 6)


def test_nested_sequential_gradients_match_finite_differences():
    model = nested_model()
    x = np.random.default_rng(3).standard_normal((3, 1, 6, 6))
    y = np.array([0, 2, 1])

    def loss() -> float:
        return softmax_cross_entropy(model.forward(x), y)[0]

    _, dlogits = softmax_cross_entropy(model.forward(x), y)
    model.backward(dlogits)
    # "0.weight" sits before the nested Sequential: right only if its input gradient is
    for name, p in model.named_parameters():
        idx, num = numerical_gradient(loss, p.data, max_entries=20)
        assert relative_error(p.grad.reshape(-1)[idx], num) < 1e-6, name


def test_nested_state_dict_round_trip_and_flat_names_unchanged(tmp_path):
    flat, nested = small_model(1), nested_model(1)
    assert list(flat.state_dict()) == [
        "0.weight",
        "0.bias",
        "4.weight",
        "4.bias",
        "6.weight",
        "6.bias",
    ]
    nested.save(tmp_path / "nested.npz")
    other = nested_model(2)
    other.load(tmp_path / "nested.npz")
    for a, b in zip(nested.parameters(), other.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(ValueError, match="mismatch"):
        flat.load(tmp_path / "nested.npz")


# ----------------------------------------------------------------------------------------------
# Persistence
# ----------------------------------------------------------------------------------------------


def test_save_load_round_trip_is_exact_and_atomic(tmp_path):
    model = paper_cnn(seed=3)
    path = tmp_path / "weights.npz"
    model.save(path)
    assert os.listdir(tmp_path) == ["weights.npz"]  # no temporary file left behind
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted(f"{name}.npy" for name in model.state_dict())
    other = paper_cnn(seed=4)
    other.load(path)
    for (name, p), (name2, q) in zip(
        model.named_parameters(), other.named_parameters(), strict=True
    ):
        assert name == name2 and q.data.dtype == np.float32
        np.testing.assert_array_equal(p.data, q.data)
    # overwriting an existing file replaces it atomically, still without leftovers
    paper_cnn(seed=5).save(path)
    assert os.listdir(tmp_path) == ["weights.npz"]
    other.load(path)
    np.testing.assert_array_equal(other[0].weight.data, paper_cnn(seed=5)[0].weight.data)
    # state_dict returns copies
    state = model.state_dict()
    state["0.weight"][...] = 0
    assert np.any(model[0].weight.data != 0)


def test_load_rejects_wrong_names_and_shapes(tmp_path):
    path = tmp_path / "w.npz"
    small_model().save(path)
    wider = Sequential(
        Conv2D(1, 3, 3, padding=1, rng=0, dtype=np.float64),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(27, 5, rng=1, dtype=np.float64),
        Tanh(),
        Dense(5, 3, rng=2, dtype=np.float64),
    )
    with pytest.raises(
        ValueError, match=r"parameter 0.weight: expected shape \(3, 1, 3, 3\), got \(2, 1, 3, 3\)"
    ):
        wider.load(path)
    deeper = Sequential(
        *small_model().layers[:-1], Dense(5, 3, bias=False, rng=0, dtype=np.float64)
    )
    with pytest.raises(ValueError, match=r"missing \[\], unexpected \['6.bias'\]"):
        deeper.load(path)
    shifted = Sequential(ReLU(), *small_model().layers)  # same shapes, different names
    with pytest.raises(ValueError, match=r"missing \['1.bias'.*unexpected \['0.bias'"):
        shifted.load(path)
    state = small_model().state_dict()
    state["4.weight"] = state["4.weight"].astype(np.int64)
    with pytest.raises(ValueError, match="expected floating point"):
        small_model().load_state_dict(state)
    partial = {"0.weight": np.zeros((2, 1, 3, 3))}
    model = small_model()
    model.load_state_dict(partial, strict=False)
    assert np.all(model[0].weight.data == 0) and np.any(model[4].weight.data != 0)


def test_failed_load_leaves_the_model_unchanged():
    model = small_model(seed=1)
    before = model.state_dict()
    state = small_model(seed=2).state_dict()
    state["6.weight"] = np.zeros((4, 5))  # the last parameter has the wrong shape
    with pytest.raises(ValueError, match="6.weight"):
        model.load_state_dict(state)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_load_rejects_corrupt_files_and_pickles_with_a_clear_error(tmp_path):
    good = tmp_path / "good.npz"
    small_model().save(good)
    data = good.read_bytes()
    cases = {
        "garbage.npz": b"this is not a zip file at all" * 10,
        "truncated.npz": data[: len(data) // 2],
        "empty.npz": b"",
    }
    flipped = bytearray(data)
    offset = data.index(b"\x93NUMPY") + 200  # inside the first array's payload
    flipped[offset : offset + 8] = b"\xff" * 8
    cases["bitflip.npz"] = bytes(flipped)
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    # an object array, which np.load could only read by unpickling
    state = small_model().state_dict()
    state["0.bias"] = np.array([{"evil": 1}, None], dtype=object)
    np.savez(tmp_path / "pickle.npz", **state)
    for name in [*cases, "pickle.npz"]:
        with pytest.raises(ValueError, match="cannot read .* as a numpy .npz file") as info:
            small_model().load(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(FileNotFoundError):
        load_npz_strict(tmp_path / "missing.npz")


# ----------------------------------------------------------------------------------------------
# Seeded construction and determinism
# ----------------------------------------------------------------------------------------------


def test_paper_cnn_structure():
    model = paper_cnn(seed=1)
    shape = (1, 28, 28)
    shapes = []
    for layer in model.layers:
        shape = layer.output_shape(shape)
        shapes.append(shape)
    assert shapes[0] == (5, 22, 22) and shapes[2] == (10, 16, 16) and shapes[-1] == (10,)
    expected = (
        (5 * 49 + 5) + (10 * 5 * 49 + 10) + (2560 * 300 + 300) + (300 * 50 + 50) + (50 * 10 + 10)
    )
    assert model.num_parameters() == expected == 786570
    out = model.forward(np.zeros((2, 1, 28, 28), np.float32))
    assert out.shape == (2, 10) and out.dtype == np.float32
    assert lenet5(seed=1).forward(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)


@pytest.mark.parametrize("builder", [paper_cnn, lenet5])
def test_same_seed_same_weights_different_seed_different(builder):
    a, b, c = builder(seed=7), builder(seed=7), builder(seed=8)
    for (name, p), (_, q), (_, r) in zip(
        a.named_parameters(), b.named_parameters(), c.named_parameters(), strict=True
    ):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
        assert not np.array_equal(p.data, r.data), name
    # every layer draws from its own stream: no two layers start with the same numbers
    firsts = [p.data.ravel()[0] for name, p in a.named_parameters() if name.endswith("weight")]
    assert len(set(firsts)) == len(firsts)
    # an int seed and its SeedSequence are the same seed
    d = builder(np.random.SeedSequence(7))
    np.testing.assert_array_equal(d[0].weight.data, a[0].weight.data)


def single_threaded_blas():
    """Small GEMMs run far faster on one BLAS thread when the cores are shared (CI, -n auto)."""
    from qcnn.nn.parallel import one_blas_thread

    return one_blas_thread()


def train_steps(seed, steps=20):
    model = paper_cnn(seed=seed)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(100)  # the data is the same for every seed
    for _ in range(steps):
        x = rng.random((8, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, 8)
        loss, dlogits = softmax_cross_entropy(model.forward(x), y)
        model.backward(dlogits)
        opt.step()
    return model.state_dict(), loss


def test_training_is_deterministic_for_a_seed():
    with single_threaded_blas():
        a, loss_a = train_steps(seed=11)
        b, loss_b = train_steps(seed=11)
        c, _ = train_steps(seed=12)
    assert loss_a == loss_b and np.isfinite(loss_a)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        assert not np.array_equal(a[name], c[name]), name
    assert not np.array_equal(a["0.weight"], paper_cnn(seed=11)[0].weight.data)  # it trained


# ----------------------------------------------------------------------------------------------
# Equivalence with PyTorch
# ----------------------------------------------------------------------------------------------


def torch_twin(model, torch):
    """The same network in torch.nn, with the weights copied."""
    mods = []
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            m = torch.nn.Conv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size,
                stride=layer.stride,
                padding=layer.padding,
                dtype=torch.float64,
            )
        elif isinstance(layer, Dense):
            m = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
        elif isinstance(layer, ReLU):
            m = torch.nn.ReLU()
        elif isinstance(layer, Flatten):
            m = torch.nn.Flatten()
        elif isinstance(layer, MaxPool2D):
            m = torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
        else:
            raise TypeError(layer)
        for name, p in layer.params.items():
            getattr(m, name).data = torch.from_numpy(p.data.copy())
        mods.append(m)
    return torch.nn.Sequential(*mods)


@pytest.mark.parametrize("builder", [paper_cnn, lenet5])
def test_forward_backward_and_sgd_step_equal_torch(builder):
    torch = pytest.importorskip("torch")
    model = builder(seed=2, dtype=np.float64)
    twin = torch_twin(model, torch)
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 28, 28))
    y = rng.integers(0, 10, 4)

    logits = model.forward(x)
    loss, dlogits = softmax_cross_entropy(logits, y)
    model.backward(dlogits)
    tlogits = twin(torch.from_numpy(x))
    tloss = torch.nn.functional.cross_entropy(tlogits, torch.from_numpy(y))
    tloss.backward()
    np.testing.assert_allclose(logits, tlogits.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    tparams = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        tg = tparams[name].grad.numpy()
        np.testing.assert_allclose(
            p.grad, tg, rtol=1e-10, atol=1e-10 * np.abs(tg).max(), err_msg=name
        )

    SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3).step()
    torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3).step()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(
            p.data, tparams[name].detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=name
        )
