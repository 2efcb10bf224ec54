"""Fast Gaussian noise for the error models.

Two choices make the noise about 4x cheaper than ``Generator.standard_normal`` here, without
changing its distribution:

- the Box-Muller transform ``sqrt(-2 ln U1) (cos, sin)(2 pi U2)`` on uniform numbers (exact, not
  an approximation; numpy's vectorised ``log``/``sin``/``cos`` beat the scalar ziggurat loop). For
  float32 the uniforms have 24 bits, which cuts the tails at 5.8 sigma (probability 7e-9);
  float64 cuts them at 8.5 sigma;
- large draws are split over two threads (numpy releases the GIL inside these loops), each
  half from its own generator seeded from entropy drawn from the caller's generator through
  ``SeedSequence``. The numbers depend only on the caller's generator state, never on timing or
  on the number of cores: same seed, same noise.
"""

from __future__ import annotations

import atexit
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["standard_normal", "box_muller"]

_SPLIT = 2
_MIN_PARALLEL = (
    1 << 19
)  # measured: below ~500k numbers the thread hand-off costs more than it saves
_pool: ThreadPoolExecutor | None = None


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_SPLIT, thread_name_prefix="qcnn-noise")
        atexit.register(_pool.shutdown, wait=False)
    return _pool


def box_muller(rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    """Fill the 1-D array ``out`` (float32 or float64) with independent N(0, 1) samples."""
    n = out.size
    half = (n + 1) // 2
    u = rng.random(2 * half, dtype=out.dtype)
    radius = np.log1p(-u[:half])  # ln(1 - U) with 1 - U in (0, 1]: never ln 0
    radius *= -2
    np.sqrt(radius, out=radius)
    angle = u[half:]
    angle *= 2 * np.pi
    np.multiply(radius[: n - half], np.sin(angle[: n - half]), out=out[half:])
    np.cos(angle, out=angle)
    np.multiply(radius, angle, out=out[:half])
    return out


def standard_normal(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: DTypeLike = np.float32
) -> np.ndarray:
    """``N(0, 1)`` samples of ``shape`` and ``dtype`` (float32 or float64) drawn from ``rng``."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"standard_normal supports float32 and float64, got {dtype}")
    size = int(np.prod(shape))
    out = np.empty(size, dtype=dtype)
    if size < _MIN_PARALLEL:
        return box_muller(rng, out).reshape(shape)
    entropy = rng.integers(0, 2**63, size=_SPLIT, dtype=np.int64)
    gens = [
        np.random.default_rng(s) for s in np.random.SeedSequence(entropy.tolist()).spawn(_SPLIT)
    ]
    bounds = np.linspace(0, size, _SPLIT + 1).astype(int)
    futures = [
        _get_pool().submit(box_muller, g, out[a:b])
        for g, a, b in zip(gens, bounds[:-1], bounds[1:], strict=True)
    ]
    for f in futures:
        f.result()
    return out.reshape(shape)
