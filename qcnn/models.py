"""The networks of the experiments, classical and quantum, built from one seed.

- :func:`paper_cnn`: the KLP19 network (model §5): conv 1->5 7x7, conv 5->10 7x7, dense
  2560-300-50-10, ReLU, no pooling.
- :func:`lenet5`: a LeNet-style network with pooling.

Each layer gets its own independent generator spawned from one ``SeedSequence``, so adding a
layer never shifts the initial weights of the others' streams in surprising ways and the same
seed always gives the same network.
"""

from __future__ import annotations

import numpy as np

from qcnn.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential

__all__ = ["paper_cnn", "lenet5", "layer_rngs"]


def layer_rngs(seed: int | np.random.SeedSequence, n: int) -> list[np.random.Generator]:
    """``n`` independent generators spawned from ``seed`` (never ``seed + i``)."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.default_rng(child) for child in ss.spawn(n)]


def paper_cnn(seed: int | np.random.SeedSequence = 1, dtype: np.dtype = np.float32) -> Sequential:
    """KLP19's classical CNN for ``(N, 1, 28, 28)`` MNIST: 28 -> 22 -> 16, 2560 -> 300 -> 50 -> 10."""
    r = layer_rngs(seed, 5)
    return Sequential(
        Conv2D(1, 5, 7, rng=r[0], dtype=dtype),
        ReLU(),
        Conv2D(5, 10, 7, rng=r[1], dtype=dtype),
        ReLU(),
        Flatten(),
        Dense(2560, 300, rng=r[2], dtype=dtype),
        ReLU(),
        Dense(300, 50, rng=r[3], dtype=dtype),
        ReLU(),
        Dense(50, 10, rng=r[4], dtype=dtype),
    )


def lenet5(seed: int | np.random.SeedSequence = 1, dtype: np.dtype = np.float32) -> Sequential:
    """LeNet-5 style: conv 1->6 5x5 'same', pool 2, conv 6->16 5x5, pool 2, dense 400-120-84-10."""
    r = layer_rngs(seed, 5)
    return Sequential(
        Conv2D(1, 6, 5, padding="same", rng=r[0], dtype=dtype),
        ReLU(),
        MaxPool2D(2),
        Conv2D(6, 16, 5, rng=r[1], dtype=dtype),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(400, 120, rng=r[2], dtype=dtype),
        ReLU(),
        Dense(120, 84, rng=r[3], dtype=dtype),
        ReLU(),
        Dense(84, 10, rng=r[4], dtype=dtype),
    )
