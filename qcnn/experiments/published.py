"""The authors' published numbers (KLP19, section "numerical simulations"; model §5), which the
sweep's ``paper_comparison.md`` sets ours beside."""

from __future__ import annotations

from typing import Any

__all__ = ["PAPER_TABLE", "PAPER_FINAL_LOSS", "PAPER_CNN_FINAL_LOSS"]

# The authors' numbers (model §5): test accuracy at sigma 0.5, C 10, and final training losses.
PAPER_TABLE: list[dict[str, Any]] = [
    {"model": "cnn", "eps": None, "delta": None, "test_accuracy": 0.9687},
    {"model": "qcnn", "eps": 0.01, "delta": 0.01, "test_accuracy": 0.9537},
    {"model": "qcnn", "eps": 0.01, "delta": 0.1, "test_accuracy": 0.9353},
    {"model": "qcnn", "eps": 0.1, "delta": 0.01, "test_accuracy": 0.8922},
    {"model": "qcnn", "eps": 0.1, "delta": 0.1, "test_accuracy": 0.5279},
    {"model": "cnn-weights-quantum-forward", "eps": 0.01, "delta": None, "test_accuracy": 0.9589},
    {"model": "cnn-weights-quantum-forward", "eps": 0.1, "delta": None, "test_accuracy": 0.9355},
]
PAPER_FINAL_LOSS = {
    0.1: 0.707,
    0.2: 0.296,
    0.3: 0.251,
    0.4: 0.189,
    0.5: 0.157,
}  # eps .01, C 10, delta .01
PAPER_CNN_FINAL_LOSS = 0.090
