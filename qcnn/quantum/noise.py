"""Fast Gaussian noise for the error models: large draws are split over two threads.

numpy's ziggurat sampler releases the GIL while it fills an array, so two generators can fill
two halves of one array at the same time. The two generators are seeded per call from entropy
drawn from the caller's generator (through ``SeedSequence``), so the numbers depend only on that
generator's state, never on timing or on the number of cores: same seed, same noise.
"""

from __future__ import annotations

import atexit
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["standard_normal"]

_SPLIT = 2
_MIN_PARALLEL = 1 << 16  # below this the thread hand-off costs more than it saves
_pool: ThreadPoolExecutor | None = None


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_SPLIT, thread_name_prefix="qcnn-noise")
        atexit.register(_pool.shutdown, wait=False)
    return _pool


def standard_normal(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype = np.float32
) -> np.ndarray:
    """``N(0, 1)`` samples of ``shape`` and ``dtype`` (float32 or float64) drawn from ``rng``."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    if size < _MIN_PARALLEL:
        return rng.standard_normal(shape, dtype=dtype)
    out = np.empty(size, dtype=dtype)
    entropy = rng.integers(0, 2**63, size=_SPLIT, dtype=np.int64)
    gens = [
        np.random.default_rng(s) for s in np.random.SeedSequence(entropy.tolist()).spawn(_SPLIT)
    ]
    bounds = np.linspace(0, size, _SPLIT + 1).astype(int)
    futures = [
        _get_pool().submit(g.standard_normal, dtype=dtype, out=out[a:b])
        for g, a, b in zip(gens, bounds[:-1], bounds[1:], strict=True)
    ]
    for f in futures:
        f.result()
    return out.reshape(shape)
