"""Argument checks shared by every layer of the package: scalars and arrays.

A Python number and a numpy scalar of the same value are the same argument: ``np.int64(3)``
and ``np.float32(0.5)`` (what indexing an array or reading a JSON/npz file gives) are accepted
wherever ``3`` and ``0.5`` are, and come back as plain ``int`` / ``float``. Booleans are not
numbers here (``True`` as a kernel size is a bug, not a 1). Every failure is a ``ValueError``
(or ``TypeError`` for a wrong kind) whose message names the argument and the allowed range.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = ["is_integer", "is_real", "check_int", "check_float", "check_finite"]


def is_integer(value: Any) -> bool:
    """True for ``int`` and numpy integers, False for ``bool`` and everything else."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def is_real(value: Any) -> bool:
    """True for finite or non-finite real numbers (Python or numpy), False for ``bool``."""
    return isinstance(value, (numbers.Real, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    return " and ".join(parts)


def check_int(
    value: Any,
    name: str,
    *,
    min: int | None = None,  # noqa: A002 - reads as the range it is
    max: int | None = None,  # noqa: A002
    odd: bool = False,
) -> int:
    """``value`` as a plain ``int`` if it is an integer in ``[min, max]`` (and odd if asked)."""
    what = "an odd integer" if odd else "an integer"
    rng = _range_text(min, max, False, False)
    allowed = f"{what} {rng}".strip()
    if not is_integer(value):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    v = int(value)
    if (min is not None and v < min) or (max is not None and v > max) or (odd and v % 2 == 0):
        raise ValueError(f"{name} must be {allowed}, got {v}")
    return v


def check_float(
    value: Any,
    name: str,
    *,
    min: float | None = None,  # noqa: A002
    max: float | None = None,  # noqa: A002
    min_open: bool = False,
    max_open: bool = False,
) -> float:
    """``value`` as a plain finite ``float`` in the range (open or closed ends as asked)."""
    rng = _range_text(min, max, min_open, max_open)
    allowed = f"a finite number {rng}".strip()
    if not is_real(value):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be {allowed}, got {v}")
    if min is not None and (v < min or (min_open and v == min)):
        raise ValueError(f"{name} must be {allowed}, got {v:g}")
    if max is not None and (v > max or (max_open and v == max)):
        raise ValueError(f"{name} must be {allowed}, got {v:g}")
    return v


def check_finite(x: np.ndarray, what: str) -> None:
    """Raise ValueError naming ``what`` if the float array ``x`` holds NaN or infinity.

    ``np.isfinite(x).all()``: one vectorised pass (faster than a sum on this machine, and it
    cannot overflow); the position of the first bad value is only looked up on failure.
    """
    if x.dtype.kind not in "fc" or x.size == 0:
        return
    finite = np.isfinite(x)
    if finite.all():
        return
    bad = ~finite
    n_bad = int(np.count_nonzero(bad))
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise ValueError(
        f"{what} contains {n_bad} non-finite value(s) (NaN or infinity), the first at index "
        f"{first}: {x[first]!r}; check the data and, during training, the learning rate"
    )
