"""The commands' sampling-memory check sees every quantum layer and the real evaluation batch.

Two bugs of issue 18: ``check_sampling_memory`` walked only the top-level layers (for
inception-small it checked 1 of its 13 quantum layers), and the evaluation batch it was given
was a literal 1000 in mnist.py while ``cli.EVAL_BATCH`` stood unused beside it.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import qcnn.quantum.layer as qlayer
from qcnn.experiments import cli, mnist
from qcnn.models import build_model, quantum_layers
from qcnn.nn import walk
from qcnn.nn.model import input_shapes
from qcnn.quantum import QuantumConfig
from qcnn.train import EVAL_BATCH, evaluate


def _pixels_after_forward(arch: str, config: QuantumConfig) -> list[int]:
    """Each quantum layer's output pixels (before pooling), from a real forward pass: the input
    shape each layer saw, independent of the shape arithmetic under test."""
    model = build_model(arch, config, seed=0, input_shape=(1, 28, 28), classes=10)
    model.eval()(np.zeros((1, 1, 28, 28), np.float32))
    out = []
    for layer in quantum_layers(model):
        assert layer.last_input_shape is not None
        out.append(math.prod(layer.conv_output_shape(layer.last_input_shape)))
    return out


@pytest.mark.parametrize("arch", ["inception-small", "paper"])
def test_check_sampling_memory_sees_every_quantum_layer(arch, monkeypatch):
    config = QuantumConfig.paper()
    expected = _pixels_after_forward(arch, config)
    seen: list[int] = []
    real = qlayer.layer_shots

    def recording(cfg, d):
        seen.append(d)
        return real(cfg, d)

    monkeypatch.setattr(qlayer, "layer_shots", recording)
    cli.check_sampling_memory(config, arch, (64,))
    assert seen == expected
    if arch == "inception-small":
        assert len(seen) == 13  # the stem conv and the 12 convolutions inside two Concat blocks


def test_a_nested_layer_too_large_to_sample_is_refused(monkeypatch):
    """Only the nested layers' shot counts are made too large: refused all the same."""
    config = QuantumConfig(sigma=None, eta=0.5)
    first = _pixels_after_forward("inception-small", config)[0]
    real = qlayer.layer_shots
    monkeypatch.setattr(qlayer, "layer_shots", lambda cfg, d: real(cfg, d) if d == first else 10**9)
    with pytest.raises(ValueError, match="shots per image"):
        cli.check_sampling_memory(config, "inception-small", (64,))


def test_input_shapes_chain_sequentials_and_fan_out_in_concats():
    model = build_model("inception-small", None, seed=0, input_shape=(1, 28, 28), classes=10)
    shapes = dict((id(layer), shape) for layer, shape in input_shapes(model, (1, 28, 28)))
    h = np.zeros((1, 1, 28, 28), np.float32)
    seen = {}

    def record(layer, inputs, out):  # returns None: the output stays as it is
        seen[id(layer)] = inputs[0].shape[1:]

    # every layer, those inside the Concat blocks too
    handles = [layer.register_forward_hook(record) for layer in walk(model)]
    model.eval()(h)
    for handle in handles:
        handle.remove()
    assert len(seen) == len(shapes) > 30
    assert all(shapes[k] == v for k, v in seen.items())


def test_the_evaluation_batch_is_one_constant(monkeypatch):
    assert inspect.signature(evaluate).parameters["batch_size"].default == EVAL_BATCH
    batches = []

    class Stop(Exception):
        pass

    def capture(config, arch, batch_sizes, *args):
        batches.append(tuple(batch_sizes))
        raise Stop

    monkeypatch.setattr(mnist, "EVAL_BATCH", 7)
    monkeypatch.setattr(mnist, "check_sampling_memory", capture)
    with pytest.raises(Stop):
        mnist.main(["--epochs", "1", "--batch-size", "32"])
    assert batches == [(32, 7)]
