"""qcnn.quantum.quantize: every builder made quantum equals its classical network under the exact
configuration (forward and gradients), the plan (what becomes quantum, what stays classical),
pooling merged into the write (including stride != size and padding), and the seeding of the
quantum layers' noise streams."""

from __future__ import annotations

import numpy as np
import pytest

from qcnn.models import MODELS, build_model, lenet5_1998, paper_cnn, quantum_layers
from qcnn.nn import AvgPool2D, Conv2D, MaxPool2D, ReLU, Sequential, softmax_cross_entropy, walk
from qcnn.quantum import EmulatorExecutor, QuantumConfig, QuantumConv2D, quantization_plan, quantize
from qcnn.seeding import seed_stream

EXACT = QuantumConfig.exact()
# quantum layers each builder has once quantized (lenet5-1998 feeds its convs to tanh: none)
QUANTUM_LAYERS = {
    "paper": 2,
    "lenet5": 2,
    "lenet5-1998": 0,
    "alexnet-small": 5,
    "inception-small": 13,
}


@pytest.mark.parametrize("arch", list(MODELS))
def test_exact_quantized_model_equals_the_classical_one(arch):
    cnn = build_model(arch, None, seed=3, dtype=np.float64)
    qcnn = quantize(cnn, EXACT)
    assert len(quantum_layers(qcnn)) == QUANTUM_LAYERS[arch]
    p_c, p_q = cnn.parameters(), qcnn.parameters()
    assert [p.shape for p in p_c] == [p.shape for p in p_q]
    for a, b in zip(p_c, p_q, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
        assert a.data is not b.data  # a copy: the classical model is left alone
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 1, 28, 28))
    y = np.array([1, 7, 3])
    logits_c, logits_q = cnn.train().forward(x), qcnn.train().forward(x)
    if arch == "alexnet-small":  # dropout: both copies drew the same masks
        assert np.abs(logits_c).max() > 0
    np.testing.assert_allclose(logits_q, logits_c, rtol=0, atol=1e-6)
    _, d = softmax_cross_entropy(logits_c, y)
    cnn.backward(d)
    qcnn.backward(d)
    for a, b in zip(p_c, p_q, strict=True):
        np.testing.assert_allclose(b.grad, a.grad, rtol=1e-6, atol=1e-6, err_msg=a.name)
    np.testing.assert_allclose(qcnn.predict(x), cnn.predict(x), rtol=0, atol=1e-6)


def test_lenet5_1998_relu_variant_quantizes_its_convolutions_and_keeps_the_table():
    cnn = lenet5_1998(2, np.float64, activation="relu")
    qcnn = quantize(cnn, EXACT)
    layers = quantum_layers(qcnn)
    assert len(layers) == 3 and layers[1].connections is not None
    x = np.random.default_rng(5).standard_normal((2, 1, 28, 28))
    np.testing.assert_allclose(qcnn.predict(x), cnn.predict(x), atol=1e-6)
    # a noisy quantum forward pass never uses the disconnected kernel entries
    noisy = quantize(cnn, QuantumConfig.paper(), seed=1)
    quantum_layers(noisy)[1].weight.data[~cnn[4].connections] = 1e6  # C3
    assert np.all(np.isfinite(noisy.predict(x))) and np.abs(noisy.predict(x)).max() < 1e3


def paths(plan, action):
    return [n.path for n in plan if n.action == action]


def test_plan_says_what_becomes_quantum_and_what_stays_classical():
    alex = quantization_plan(build_model("alexnet-small"))
    assert paths(alex, "quantum") == ["0", "4", "8", "10", "12"]
    assert paths(alex, "merged") == ["2", "6", "14"]  # the three max pools
    lrn = [n for n in alex if "LocalResponseNorm" in n.layer]
    assert [n.action for n in lrn] == ["classical"] * 2 and "no quantum counterpart" in lrn[
        0
    ].detail
    inc = quantization_plan(build_model("inception-small"))
    assert "3.3.0" in paths(inc, "classical")  # the branch's 3x3/1 max pool comes first
    assert {"0", "3.0.0", "3.1.0", "3.1.2", "3.3.1", "5.2.2"} <= set(paths(inc, "quantum"))
    assert paths(inc, "container") == [
        "3",
        "3.0",
        "3.1",
        "3.2",
        "3.3",
        "5",
        "5.0",
        "5.1",
        "5.2",
        "5.3",
    ]
    lenet = quantization_plan(lenet5_1998())
    convs = [n for n in lenet if n.layer.startswith("Conv2D")]
    assert all(n.action == "classical" and "not followed by a ReLU" in n.detail for n in convs)
    sub = [n for n in lenet if n.layer.startswith("Subsampling2D")]
    assert sub and all(n.action == "classical" for n in sub)


@pytest.mark.parametrize(
    "pool", [MaxPool2D(3, 2), MaxPool2D(2, 1, "same"), AvgPool2D(3, 2, 1), AvgPool2D(3)]
)
def test_pooling_merged_into_the_write_equals_the_classical_pool(pool):
    rng = np.random.default_rng(6)
    conv = Conv2D(2, 3, 3, rng=1, dtype=np.float64)
    cnn = Sequential(conv, ReLU(), pool)
    cnn.need_input_grad = True
    qcnn = quantize(cnn, EXACT)
    qcnn.need_input_grad = True
    (q,) = qcnn.layers
    assert isinstance(q, QuantumConv2D) and q.pool is not None and q.pool.kind in ("max", "avg")
    assert q.pool.stride == pool.stride and q.pool.padding == pool.padding
    x = rng.standard_normal((2, 2, 11, 11))
    out_c, out_q = cnn.forward(x), qcnn.forward(x)
    assert out_q.shape == out_c.shape and q.output_shape((2, 11, 11)) == out_c.shape[1:]
    np.testing.assert_allclose(out_q, out_c, atol=1e-12)
    dout = rng.standard_normal(out_c.shape)
    np.testing.assert_allclose(qcnn.backward(dout), cnn.backward(dout), atol=1e-12)
    np.testing.assert_allclose(q.weight.grad, conv.weight.grad, atol=1e-12)


def test_noise_streams_follow_the_classical_twin_or_the_given_seed():
    cfg = QuantumConfig.paper()
    cnn = paper_cnn(7)
    a, b = quantize(cnn, cfg), quantize(cnn, cfg)
    x = np.random.default_rng(8).standard_normal((4, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))  # deterministic
    # default: the stream the classical conv reserved when it was built ...
    convs = [layer for layer in walk(cnn) if isinstance(layer, Conv2D)]
    for conv, q in zip(convs, quantum_layers(quantize(cnn, cfg)), strict=True):
        expect = np.random.default_rng(conv.derived_seed).random(3)
        np.testing.assert_array_equal(q.rng.random(3), expect)
    # ... which is what a QuantumConv2D built from the same generator draws from
    g1, g2 = (np.random.default_rng(np.random.SeedSequence(11)) for _ in range(2))
    direct = QuantumConv2D(1, 2, 3, config=cfg, rng=g1)
    twin = quantize(Sequential(Conv2D(1, 2, 3, rng=g2), ReLU()), cfg)[0]
    np.testing.assert_array_equal(direct.weight.data, twin.weight.data)
    np.testing.assert_array_equal(direct.rng.random(4), twin.rng.random(4))
    # seed=s: the k-th quantum layer draws from the k-th child of the 'quantum_noise' stream
    seeded = quantum_layers(quantize(cnn, cfg, seed=5))
    children = seed_stream(5, "quantum_noise").spawn(2)
    for q, child in zip(seeded, children, strict=True):
        np.testing.assert_array_equal(q.rng.random(3), np.random.default_rng(child).random(3))
    assert not np.array_equal(quantize(cnn, cfg, seed=5).predict(x), a.predict(x))


def test_quantize_validation_and_options():
    with pytest.raises(TypeError, match="QuantumConfig"):
        quantize(paper_cnn(), {"eps": 0.01})
    with pytest.raises(TypeError, match="Layer"):
        quantize("paper", EXACT)
    q = quantize(paper_cnn(), EXACT, executor=EmulatorExecutor())
    assert all(isinstance(layer.executor, EmulatorExecutor) for layer in quantum_layers(q))
    single = quantize(Conv2D(1, 2, 3), EXACT)  # a lone conv has no ReLU: stays classical
    assert isinstance(single, Sequential) and not quantum_layers(single)


def test_grouped_convolutions_stay_classical_and_the_quantum_layer_refuses_them():
    from qcnn.models import alexnet_small
    from qcnn.nn.functional import group_table

    cnn = alexnet_small(3, np.float64, groups=2)
    plan = quantization_plan(cnn)
    # conv1 (one input map) and conv3 (AlexNet's cross-GPU layer) become quantum; the grouped
    # conv2, conv4 and conv5 stay classical with their ReLU and pooling, and the plan says why
    assert paths(plan, "quantum") == ["0", "8"]
    grouped = [n for n in plan if "groups=2" in n.layer]
    assert [n.path for n in grouped] == ["4", "10", "12"]
    assert all(n.action == "classical" and "grouped convolution" in n.detail for n in grouped)
    qcnn = quantize(cnn, EXACT)
    assert len(quantum_layers(qcnn)) == 2
    x = np.random.default_rng(6).standard_normal((2, 1, 28, 28))
    np.testing.assert_allclose(qcnn.predict(x), cnn.predict(x), atol=1e-6)
    with pytest.raises(ValueError, match="grouped convolution"):
        QuantumConv2D(4, 4, 3, config=EXACT, connections=group_table(4, 4, 2))
