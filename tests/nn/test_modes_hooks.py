"""Training/inference as module state and forward hooks, as PyTorch users know them."""

from __future__ import annotations

import numpy as np
import pytest

from qcnn.nn import (
    Concat,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    ReLU,
    Sequential,
    inference,
    softmax_cross_entropy,
    walk,
)
from qcnn.nn.parallel import DataParallel
from qcnn.train import evaluate


def inception_like() -> Sequential:
    """Conv, a Concat of two branches (one with dropout), pooling, dense: nesting two deep."""
    branch = Sequential(Conv2D(2, 3, 3, padding=1, rng=2, dtype=np.float64), ReLU())
    return Sequential(
        Conv2D(1, 2, 3, padding=1, rng=1, dtype=np.float64),
        Concat(branch, Sequential(Dropout(0.5, rng=3), Conv2D(2, 1, 1, rng=4, dtype=np.float64))),
        GlobalAvgPool2D(),
        Dense(4, 3, rng=5, dtype=np.float64),
    )


X = np.random.default_rng(0).standard_normal((6, 1, 5, 5))
Y = np.array([0, 1, 2, 0, 1, 2])


def modes(model) -> list[bool]:
    return [layer.training for layer in walk(model)]


def test_a_new_model_trains_and_eval_train_reach_every_nested_layer():
    model = inception_like()
    assert all(modes(model))  # PyTorch's default: training mode
    assert model.eval() is model  # returns the model, so model.eval()(x) reads as in PyTorch
    assert not any(modes(model)) and len(modes(model)) == 11
    assert model.train() is model and all(modes(model))
    model.train(False)
    assert not any(modes(model))
    with pytest.raises(TypeError, match="bool"):
        model.train("no")  # type: ignore[arg-type]


def test_the_mode_decides_dropout_and_the_cache_not_an_argument():
    drop = Dropout(0.5, rng=0)
    x = np.ones((4, 8))
    assert not np.array_equal(drop(x), x)  # training: units dropped
    drop.eval()
    assert drop(x) is x  # inference: the identity, nothing drawn
    state = drop.rng.bit_generator.state
    drop(x)
    assert drop.rng.bit_generator.state == state

    model = inception_like().eval()
    model(X)
    with pytest.raises(RuntimeError, match="without a training forward"):
        model.backward(np.ones((6, 3)))  # inference kept no cache
    model.train()
    _, dlogits = softmax_cross_entropy(model(X), Y)
    model.backward(dlogits)
    assert all(p.grad is not None for p in model.parameters())


def test_inference_predict_and_evaluate_restore_every_layers_mode():
    model = inception_like()
    dropout = model[1].branches[1][0]
    dropout.eval()  # a mixed state: only the dropout in inference mode
    before = modes(model)
    with inference(model) as m:
        assert m is model and not any(modes(model))
    assert modes(model) == before
    model.predict(X)
    model.features(X, "1")
    evaluate(model, X, Y)
    assert modes(model) == before
    with pytest.raises(ValueError), inference(model):
        raise ValueError("restored on errors too")
    assert modes(model) == before


def test_predict_equals_eval_mode_forward_and_differs_from_training_with_dropout():
    model = inception_like()
    logits_eval = model.eval()(X)
    model.train()
    np.testing.assert_array_equal(model.predict(X), logits_eval)
    assert not np.allclose(model(X), logits_eval)  # training mode: dropout active


def test_forward_hook_sees_layer_inputs_output_and_may_replace_the_output():
    model = inception_like().eval()
    conv = model[1].branches[0][0]  # nested two deep, inside the Concat
    seen = []

    def record(layer, inputs, output):
        seen.append((layer, inputs, output.copy()))

    handle = model[1].branches[0][0].register_forward_hook(record)
    ref = model(X)
    assert len(seen) == 1
    layer, inputs, output = seen[0]
    assert layer is conv and isinstance(inputs, tuple) and len(inputs) == 1
    np.testing.assert_array_equal(output, conv.forward(inputs[0]))

    # a hook that returns an array replaces the output: zeroing the pooled features leaves the
    # dense layer's bias as the logits
    with model[2].register_forward_hook(lambda layer, inputs, out: np.zeros_like(out)):
        np.testing.assert_array_equal(model(X), np.broadcast_to(model[3].bias.data, (6, 3)))
    np.testing.assert_array_equal(model(X), ref)  # the context manager removed it
    assert len(seen) == 3
    handle.remove()
    handle.remove()  # idempotent
    model(X)
    assert len(seen) == 3
    with pytest.raises(TypeError, match="callable"):
        conv.register_forward_hook("not a function")  # type: ignore[arg-type]


def test_hooks_run_in_registration_order_and_may_remove_themselves():
    layer = Flatten()
    calls = []
    handles = []

    def first(module, inputs, out):
        calls.append("first")
        handles[0].remove()
        return out + 1

    def second(module, inputs, out):
        calls.append("second")
        return out * 10

    handles += [layer.register_forward_hook(first), layer.register_forward_hook(second)]
    np.testing.assert_array_equal(layer(np.zeros((1, 2))), [[10.0, 10.0]])
    np.testing.assert_array_equal(layer(np.zeros((1, 2))), [[0.0, 0.0]])
    assert calls == ["first", "second", "second"]
    assert layer.forward(np.ones((1, 2))).sum() == 2  # forward itself runs no hook


def test_data_parallel_replicas_share_the_masters_hooks_and_modes():
    model = inception_like()
    dense = model[3]
    batches = []
    handle = dense.register_forward_hook(lambda layer, inputs, out: batches.append(len(out)))
    parallel = DataParallel(model, 2)
    model.eval()  # train_step trains: it sets training mode on the master and its replicas
    parallel.train_step(X, Y, softmax_cross_entropy)
    assert sorted(batches) == [3, 3] and all(modes(model))
    assert all(all(modes(r)) for r in parallel.replicas)
    handle.remove()
    parallel.train_step(X, Y, softmax_cross_entropy)
    assert sorted(batches) == [3, 3]
