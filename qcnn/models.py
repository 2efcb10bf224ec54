"""The networks of the experiments, classical and quantum, built from one seed.

- :func:`paper_cnn` / :func:`paper_qcnn`: the KLP19 network (model §5): conv 1->5 7x7,
  conv 5->10 7x7, dense 2560-300-50-10, no pooling; ReLU, or quantum layers with cap C.
- :func:`lenet5` / :func:`lenet5_quantum`: LeNet-style, with pooling (during the quantum write).
- :func:`make_optimizer`: SGD with the quantum backprop noise hook when a config is given.
- :func:`transfer_weights`: load a CNN's weights into its QCNN twin (the paper's "CNN weights
  with the quantum forward pass"), or back.

The classical and quantum versions of a network have the same parameters in the same order
(the quantum layer absorbs the ReLU), and with the same seed they start from the same weights.
"""

from __future__ import annotations

import numpy as np

from qcnn.nn import SGD, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from qcnn.nn.layers import Layer, walk
from qcnn.quantum import QuantumConfig, QuantumConv2D, QuantumGradientNoise
from qcnn.seeding import seed_stream, spawn_generators

__all__ = [
    "paper_cnn",
    "paper_qcnn",
    "lenet5",
    "lenet5_quantum",
    "build_model",
    "MODELS",
    "make_optimizer",
    "transfer_weights",
    "quantum_layers",
]

Seed = int | np.random.SeedSequence


def _paper(seed: Seed, dtype, config: QuantumConfig | None) -> Sequential:
    r = spawn_generators(seed_stream(seed, "init"), 5)

    def conv(i: int, c_in: int, c_out: int) -> list[Layer]:
        if config is None:
            return [Conv2D(c_in, c_out, 7, rng=r[i], dtype=dtype), ReLU()]
        return [QuantumConv2D(c_in, c_out, 7, config=config, rng=r[i], dtype=dtype)]

    return Sequential(
        *conv(0, 1, 5),
        *conv(1, 5, 10),
        Flatten(),
        Dense(2560, 300, rng=r[2], dtype=dtype),
        ReLU(),
        Dense(300, 50, rng=r[3], dtype=dtype),
        ReLU(),
        Dense(50, 10, rng=r[4], dtype=dtype),
    )


def paper_cnn(seed: Seed = 1, dtype: np.dtype = np.float32) -> Sequential:
    """KLP19's classical CNN on ``(N, 1, 28, 28)``: 28 -> 22 -> 16, 2560 -> 300 -> 50 -> 10."""
    return _paper(seed, dtype, None)


def paper_qcnn(config: QuantumConfig, seed: Seed = 1, dtype: np.dtype = np.float32) -> Sequential:
    """KLP19's QCNN: :func:`paper_cnn` with both conv + ReLU replaced by :class:`QuantumConv2D`."""
    return _paper(seed, dtype, config)


def _lenet(seed: Seed, dtype, config: QuantumConfig | None) -> Sequential:
    r = spawn_generators(seed_stream(seed, "init"), 5)

    def conv(i: int, c_in: int, c_out: int, padding) -> list[Layer]:
        if config is None:
            return [
                Conv2D(c_in, c_out, 5, padding=padding, rng=r[i], dtype=dtype),
                ReLU(),
                MaxPool2D(2),
            ]
        return [
            QuantumConv2D(
                c_in, c_out, 5, padding=padding, config=config, pool="max", rng=r[i], dtype=dtype
            )
        ]

    return Sequential(
        *conv(0, 1, 6, "same"),
        *conv(1, 6, 16, 0),
        Flatten(),
        Dense(400, 120, rng=r[2], dtype=dtype),
        ReLU(),
        Dense(120, 84, rng=r[3], dtype=dtype),
        ReLU(),
        Dense(84, 10, rng=r[4], dtype=dtype),
    )


def lenet5(seed: Seed = 1, dtype: np.dtype = np.float32) -> Sequential:
    """LeNet-5 style: conv 1->6 5x5 'same', pool 2, conv 6->16 5x5, pool 2, dense 400-120-84-10."""
    return _lenet(seed, dtype, None)


def lenet5_quantum(
    config: QuantumConfig, seed: Seed = 1, dtype: np.dtype = np.float32
) -> Sequential:
    """:func:`lenet5` with quantum conv layers that max-pool during the write."""
    return _lenet(seed, dtype, config)


MODELS = {"paper": (paper_cnn, paper_qcnn), "lenet5": (lenet5, lenet5_quantum)}


def build_model(
    arch: str, config: QuantumConfig | None = None, seed: Seed = 1, dtype: np.dtype = np.float32
) -> Sequential:
    """``arch`` in :data:`MODELS`; quantum when ``config`` is given."""
    if arch not in MODELS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(MODELS)}")
    classical, quantum = MODELS[arch]
    return classical(seed, dtype) if config is None else quantum(config, seed, dtype)


def quantum_layers(model: Layer) -> list[QuantumConv2D]:
    """The quantum layers of ``model``, nested ones included, in :func:`qcnn.nn.walk` order."""
    return [layer for layer in walk(model) if isinstance(layer, QuantumConv2D)]


def make_optimizer(
    model: Sequential,
    lr: float = 0.01,
    momentum: float = 0.0,
    config: QuantumConfig | None = None,
    seed: Seed = 1,
) -> SGD:
    """SGD; with ``config`` (delta > 0) the quantum backprop noise hook is attached."""
    hooks = []
    if config is not None and config.delta > 0:
        rng = np.random.default_rng(seed_stream(seed, "gradient_noise"))
        hooks.append(QuantumGradientNoise(config.delta, rng, on=config.gradient_noise_on))
    return SGD(model.parameters(), lr=lr, momentum=momentum, grad_hooks=hooks)


def transfer_weights(source: Sequential, target: Sequential) -> None:
    """Copy every parameter of ``source`` into ``target``, matched in order.

    A CNN and its QCNN twin list the same parameters in the same order (the quantum layer
    absorbs the ReLU, so layer indices and hence names differ); shapes must match one to one.
    """
    src, dst = source.parameters(), target.parameters()
    if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst, strict=False)):
        raise ValueError(
            "cannot transfer weights: parameter shapes differ: "
            f"{[p.shape for p in src]} vs {[p.shape for p in dst]}"
        )
    for a, b in zip(src, dst, strict=True):
        b.data = a.data.astype(b.data.dtype, copy=True)
