"""The quantum layer's non-linearity: capped ReLU applied to the noisy estimate (model §2.3).

``f(x) = min(max(x, 0), C)`` runs as a classical reversible circuit on the register that holds the
estimate ``Ybar``. Two orders are offered:

- ``'paper'`` [paper-sim]: ``clamp(f(Y) + e, 0, C)`` with ``e = Ybar - Y``, as the authors'
  notebook does (cap, add noise, cap again);
- ``'theory'``: ``f(Y + e) = f(Ybar)``.

The derivative used by backprop treats the noise ``e`` as a constant; it is 1 where every cap
applied to the pixel is in its linear range ``(0, C)`` and 0 elsewhere.
"""

from __future__ import annotations

import numpy as np

__all__ = ["noisy_cap_relu"]


def noisy_cap_relu(
    y: np.ndarray, y_bar: np.ndarray, cap: float, order: str = "paper"
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(f, df)``: the activation and its derivative with respect to ``y`` (a mask).

    ``y`` (exact pre-activation, bias included) and ``y_bar`` (its estimate) have equal shapes.
    """
    if cap <= 0:
        raise ValueError(f"cap must be > 0, got {cap!r}")
    if order == "theory":
        f = np.clip(y_bar, 0, cap)
        df = (y_bar > 0) & (y_bar < cap)
    elif order == "paper":
        inner = np.clip(y, 0, cap)
        f = inner + (y_bar - y)
        df = (y > 0) & (y < cap) & (f > 0) & (f < cap)
        np.clip(f, 0, cap, out=f)
    else:
        raise ValueError(f"order must be 'paper' or 'theory', got {order!r}")
    return f, df
