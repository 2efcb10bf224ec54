"""Shared command-line pieces: argparse value types that reject bad values with a clear message,
and the early check that the output folder can be written (before any training starts)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

__all__ = ["nonneg_int", "pos_int", "pos_float", "nonneg_float", "probability", "check_output_dir"]


def _number(text: str, kind: type, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def nonneg_int(text: str) -> int:
    v = _number(text, int, "a non-negative integer")
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v}")
    return v


def pos_int(text: str) -> int:
    v = _number(text, int, "a positive integer")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def pos_float(text: str) -> float:
    v = _number(text, float, "a number")
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return v


def nonneg_float(text: str) -> float:
    v = _number(text, float, "a number")
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return v


def probability(text: str) -> float:
    v = _number(text, float, "a probability")
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text}")
    return v


def check_output_dir(out: Path, resume: bool = False) -> None:
    """Fail early (before any training) if ``out`` cannot be written; raises ValueError."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    if resume and not out.is_dir():
        raise ValueError(f"--resume: {str(out)!r} does not exist; nothing to resume")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--out {str(out)!r} is not writable: {exc.strerror or exc}") from None
