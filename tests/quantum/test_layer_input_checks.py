"""API misuse of the layers (docs/reliability.md): non-finite inputs, numpy scalar arguments,
empty batches.

- ``Conv2D`` and ``QuantumConv2D`` refuse NaN / inf inputs with a ValueError that names the
  layer (before, the quantum layer's sampling turned a NaN pixel into a silent zero image);
- numpy scalars (``np.float32``, ``np.int64``, ...) are accepted wherever a Python number is
  (QuantumConfig fields, layer and training arguments) and give the same results;
- an empty batch gives an empty output of the right shape, forward and backward;
- the check never changes a number: outputs with finite inputs are bit-identical to the
  unchecked convolution (``qcnn.nn.functional.conv2d_forward``).
"""

from __future__ import annotations

import numpy as np
import pytest

from qcnn.models import make_optimizer, paper_qcnn
from qcnn.nn import Conv2D, Dense, Dropout, MaxPool2D
from qcnn.nn import functional as F
from qcnn.quantum import PoolOnWrite, QuantumConfig, QuantumConv2D
from qcnn.train import fit

CFG = QuantumConfig.paper()


def _layers():
    return {
        "Conv2D": Conv2D(2, 3, 3, rng=0),
        "QuantumConv2D": QuantumConv2D(2, 3, 3, config=CFG, rng=0),
        "QuantumConv2D-pool": QuantumConv2D(2, 3, 3, config=CFG, rng=0, pool="max"),
    }


def _x(n=2, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=(n, 2, 8, 8)).astype(dtype)


@pytest.mark.parametrize("name", ["Conv2D", "QuantumConv2D", "QuantumConv2D-pool"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("training", [True, False])
def test_non_finite_inputs_are_refused(name, bad, training):
    layer = _layers()[name]
    x = _x()
    x[1, 1, 4, 5] = bad
    with pytest.raises(ValueError, match=r"non-finite.*\(1, 1, 4, 5\)") as info:
        layer.train(training).forward(x)
    assert type(layer).__name__ in str(info.value)


def test_huge_but_finite_inputs_are_not_refused():
    x = np.full((1, 2, 8, 8), 1e300)  # the float64 sum overflows; every value is finite
    out = Conv2D(2, 3, 3, rng=0, dtype=np.float64).eval().forward(x)
    assert out.shape == (1, 3, 6, 6)


@pytest.mark.parametrize("name", ["Conv2D", "QuantumConv2D", "QuantumConv2D-pool"])
def test_empty_batch_gives_empty_output_forward_and_backward(name):
    layer = _layers()[name]
    full = layer.eval().forward(_x(1))
    out = layer.train().forward(np.zeros((0, 2, 8, 8), np.float32))
    assert out.shape == (0, *full.shape[1:]) and out.dtype == full.dtype
    dx = layer.backward(np.zeros_like(out))
    assert dx.shape == (0, 2, 8, 8)
    assert not layer.weight.grad.any() and layer.weight.grad.shape == layer.weight.data.shape


def test_empty_batch_through_a_whole_qcnn():
    model = paper_qcnn(CFG, seed=1)
    logits = model.eval().forward(np.zeros((0, 1, 28, 28), np.float32))
    assert logits.shape == (0, 10)


def test_the_check_changes_no_number():
    layer = Conv2D(2, 3, 3, rng=0)
    x = _x(4)
    ref, _ = F.conv2d_forward(x, layer.weight.data, layer.bias.data)
    np.testing.assert_array_equal(layer.forward(x), ref)


def test_numpy_scalars_are_accepted_in_quantum_config():
    cfg = QuantumConfig(
        eps=np.float32(0.25),
        cap=np.int64(10),
        sigma=np.float64(0.5),
        delta=np.float32(0.125),
        ae_median=np.int32(3),
        sampling_power=np.int8(1),
        noise_order=np.str_("theory"),
    )
    assert cfg == QuantumConfig(
        eps=0.25, cap=10, sigma=0.5, delta=0.125, ae_median=3, noise_order="theory"
    )
    assert type(cfg.cap) is int and type(cfg.eps) is float and type(cfg.noise_order) is str
    assert QuantumConfig.from_json(cfg.to_json()) == cfg
    ae = QuantumConfig(ipe="amplitude_estimation", ae_bits=np.int64(5))
    assert ae.resolved_ae_bits == 5
    for bad in (
        dict(eps=np.float32(np.nan)),
        dict(ae_bits=np.int64(0)),
        dict(ae_median=np.int64(2)),
        dict(sigma=np.float32(1.5)),
        dict(cap=np.bool_(True)),
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            QuantumConfig(**{"ipe": "amplitude_estimation", "ae_bits": 3, **bad})


def test_numpy_scalars_are_accepted_as_layer_and_training_arguments():
    a = QuantumConv2D(
        np.int64(2),
        np.int32(3),
        np.int64(3),
        stride=np.int64(1),
        padding=np.int64(1),
        config=CFG,
        rng=np.int64(0),
        pool=PoolOnWrite("max", np.int64(2)),
    )
    b = QuantumConv2D(2, 3, 3, stride=1, padding=1, config=CFG, rng=0, pool=PoolOnWrite("max", 2))
    assert repr(a) == repr(b)
    np.testing.assert_array_equal(a.eval().forward(_x()), b.eval().forward(_x()))
    d = Dense(np.int64(4), np.uint16(2), rng=0)
    assert (d.in_features, d.out_features) == (4, 2) and type(d.in_features) is int
    assert Dropout(np.float32(0.5)).p == 0.5
    assert MaxPool2D(np.int64(2)).eval().forward(_x()).shape == (2, 2, 4, 4)
    # fit: the same run with numpy integers gives the same history
    runs = []
    for cast in (int, np.int64):
        model = paper_qcnn(CFG, seed=1)
        opt = make_optimizer(model, lr=np.float32(0.01), config=CFG, seed=1)
        x = np.random.default_rng(3).normal(size=(8, 1, 28, 28)).astype(np.float32)
        y = np.arange(8) % 10
        h = fit(
            model,
            opt,
            (x, y),
            epochs=cast(1),
            batch_size=cast(4),
            log_every=cast(1),
            shards=cast(1),
            seed=cast(2),
        )
        runs.append([s.loss for s in h.steps])
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    "make, word",
    [
        (lambda: Conv2D(0, 3, 3), "in_channels"),
        (lambda: Conv2D(2.0, 3, 3), "in_channels"),
        (lambda: Conv2D(True, 3, 3), "in_channels"),
        (lambda: QuantumConv2D(2, -1, 3, config=CFG), "out_channels"),
        (lambda: Dense(3, 0), "out_features"),
        (lambda: Dense(np.float64(3.0), 2), "in_features"),
    ],
)
def test_bad_layer_sizes_are_refused(make, word):
    with pytest.raises(ValueError, match=word):
        make()
