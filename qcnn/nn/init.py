"""Weight initialisation.

The default is PyTorch's for ``Conv2d`` and ``Linear`` (so a CNN built here starts from the same
distribution as the authors' PyTorch notebook): Kaiming-uniform with ``a = sqrt(5)``, which is
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for the weights, and the same bound for the biases.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["fan_in", "kaiming_uniform", "uniform_bias"]


def fan_in(shape: tuple[int, ...]) -> int:
    """Inputs feeding one output unit: ``C * kh * kw`` for ``(O, C, kh, kw)``, ``in`` for ``(out, in)``."""
    if len(shape) < 2:
        raise ValueError(f"fan_in needs a weight of at least 2 dimensions, got shape {shape}")
    return int(np.prod(shape[1:]))


def kaiming_uniform(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    a: float = math.sqrt(5.0),
    dtype: DTypeLike = np.float32,
) -> np.ndarray:
    """``U(-b, b)`` with ``b = gain * sqrt(3 / fan_in)``, ``gain = sqrt(2 / (1 + a^2))``.

    With the default ``a = sqrt(5)`` this is PyTorch's default layer initialisation,
    ``b = 1 / sqrt(fan_in)``.
    """
    gain = math.sqrt(2.0 / (1.0 + a * a))
    bound = gain * math.sqrt(3.0 / fan_in(shape))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def uniform_bias(
    n: int, weight_shape: tuple[int, ...], rng: np.random.Generator, dtype: DTypeLike = np.float32
) -> np.ndarray:
    """PyTorch's default bias: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1.0 / math.sqrt(fan_in(weight_shape))
    return rng.uniform(-bound, bound, size=n).astype(dtype)
