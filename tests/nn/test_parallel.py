"""Data parallelism over batch shards (qcnn.nn.parallel.DataParallel) and fit(..., shards=N)."""

import numpy as np
import pytest

from qcnn.models import make_optimizer, paper_cnn, paper_qcnn
from qcnn.nn import softmax_cross_entropy
from qcnn.nn.parallel import DataParallel
from qcnn.quantum import QuantumConfig, QuantumConv2D
from qcnn.train import fit
from tests.conftest import stop_after

RNG = np.random.default_rng(42)
X = RNG.standard_normal((40, 1, 28, 28))
Y = RNG.integers(0, 10, 40)


def grads_of(model):
    return [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("shards", [2, 3])
def test_sharded_step_equals_full_batch_step_for_a_deterministic_network(shards):
    model = paper_cnn(1, dtype=np.float64)
    loss1, logits1 = DataParallel(model, 1).train_step(X, Y, softmax_cross_entropy)
    g1 = grads_of(model)
    loss2, logits2 = DataParallel(model, shards).train_step(X, Y, softmax_cross_entropy)
    g2 = grads_of(model)
    assert loss2 == pytest.approx(loss1, rel=1e-12)
    np.testing.assert_allclose(logits2, logits1, rtol=0, atol=1e-12)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_batch_smaller_than_shards_and_uneven_split():
    model = paper_cnn(1, dtype=np.float64)
    loss1, _ = DataParallel(model, 1).train_step(X[:1], Y[:1], softmax_cross_entropy)
    g1 = grads_of(model)
    loss2, logits = DataParallel(model, 4).train_step(X[:1], Y[:1], softmax_cross_entropy)
    assert logits.shape == (1, 10) and loss2 == pytest.approx(loss1)
    for a, b in zip(g1, grads_of(model), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-12)
    DataParallel(model, 3).train_step(X[:7], Y[:7], softmax_cross_entropy)  # 2 + 2 + 3


def test_replicas_follow_the_master_weights():
    model = paper_cnn(1, dtype=np.float64)
    dp = DataParallel(model, 2)
    other = paper_cnn(7, dtype=np.float64)
    model.load_state_dict(other.state_dict())  # replaces the master's arrays
    _, logits = dp.train_step(X, Y, softmax_cross_entropy)
    np.testing.assert_allclose(logits, other.eval().forward(X), atol=1e-12)


def _train_qcnn(shards, batches=4, seed=5):
    cfg = QuantumConfig.paper()
    model = paper_qcnn(cfg, seed=seed)
    fit(
        model,
        make_optimizer(model, config=cfg, seed=seed),
        (X.astype(np.float32), Y),
        epochs=1,
        batch_size=10,
        seed=seed,
        shards=shards,
        callbacks=[stop_after(batches)],
    )
    return model.state_dict()


def test_quantum_training_is_reproducible_for_fixed_shards_and_differs_across_shards():
    a, b = _train_qcnn(2), _train_qcnn(2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = _train_qcnn(1)
    assert any(not np.array_equal(a[k], c[k]) for k in a)  # other noise streams, as documented


def test_sharded_resume_equals_uninterrupted(tmp_path):
    cfg = QuantumConfig.paper()
    x32 = X.astype(np.float32)

    def run(out, **kw):
        model = paper_qcnn(cfg, seed=2)
        fit(
            model,
            make_optimizer(model, config=cfg, seed=2),
            (x32, Y),
            epochs=2,
            batch_size=10,
            seed=2,
            shards=2,
            checkpoint_dir=out,
            **kw,
        )
        return model.state_dict()

    full = run(tmp_path / "a")
    run(tmp_path / "b", callbacks=[stop_after(6)])  # killed in epoch 2
    resumed = run(tmp_path / "b", resume=True)
    assert all(np.array_equal(full[k], resumed[k]) for k in full)


def test_resume_refuses_other_shards(tmp_path):
    cfg = QuantumConfig.paper()
    model = paper_qcnn(cfg, seed=2)
    fit(
        model,
        make_optimizer(model, config=cfg),
        (X.astype(np.float32), Y),
        epochs=1,
        batch_size=10,
        shards=2,
        checkpoint_dir=tmp_path,
    )
    with pytest.raises(ValueError, match="other settings: shards: checkpoint 2, this run 1"):
        fit(
            model,
            make_optimizer(model, config=cfg),
            (X.astype(np.float32), Y),
            epochs=2,
            batch_size=10,
            shards=1,
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_rejects_bad_shards_and_circuit_layers():
    with pytest.raises(ValueError, match="shards"):
        DataParallel(paper_cnn(1), 0)

    class FakeCircuits:
        def inner_products(self, problem, config, rng): ...
        def sample(self, values, shots, config, rng): ...
        def sample_per_shot(self, problem, shots, config, rng): ...
        def normaliser(self, mean_f, d, config, rng): ...

    layer = QuantumConv2D(1, 2, 3, config=QuantumConfig.paper(), executor=FakeCircuits())
    from qcnn.nn import Flatten, Sequential

    assert not layer.thread_safe  # an executor that does not declare itself thread-safe
    with pytest.raises(ValueError, match="thread-safe"):
        DataParallel(Sequential(layer, Flatten()), 2)
    with pytest.raises(ValueError, match="thread-safe"):  # found inside a nested container too
        DataParallel(Sequential(Flatten(), Sequential(layer, Flatten())), 2)
    DataParallel(Sequential(layer, Flatten()), 1)  # one shard runs the master itself: allowed
    assert QuantumConv2D(1, 2, 3, config=QuantumConfig.paper()).thread_safe  # the emulator is
