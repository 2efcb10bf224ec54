"""One seed drives everything: named, independent random streams derived from it.

Every consumer of randomness gets its own ``SeedSequence`` child of the run's seed, chosen by
purpose (never ``seed + i``, whose streams are not guaranteed independent):

- ``'init'``: model weights (each layer spawns its own child) and quantum layers' noise;
- ``'shuffle'``: the order of the training batches;
- ``'gradient_noise'``: quantum backprop noise;
- ``'circuits'``: simulator seeds of circuit runs;
- ``'quantum_noise'``: the quantum layers' noise when ``qcnn.quantum.quantize`` is given a seed;
- ``'augment'``: data augmentation's random shifts (one child per epoch).
"""

from __future__ import annotations

import numpy as np

__all__ = ["STREAMS", "seed_stream", "spawn_generators"]

STREAMS = {
    "init": 0,
    "shuffle": 1,
    "gradient_noise": 2,
    "circuits": 3,
    "quantum_noise": 4,
    "augment": 5,
}


def seed_stream(seed: int | np.random.SeedSequence, purpose: str) -> np.random.SeedSequence:
    """The ``SeedSequence`` of ``purpose`` under the run seed ``seed``."""
    if purpose not in STREAMS:
        raise ValueError(f"unknown random stream {purpose!r}; known: {sorted(STREAMS)}")
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, STREAMS[purpose]))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(int(seed), spawn_key=(STREAMS[purpose],))


def spawn_generators(seq: np.random.SeedSequence, n: int) -> list[np.random.Generator]:
    """``n`` independent generators, children of ``seq``."""
    return [np.random.default_rng(child) for child in seq.spawn(n)]
