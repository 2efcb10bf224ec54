"""Executors: who performs the two quantum steps of a layer's forward pass.

A quantum convolution layer's forward pass has two steps that a quantum computer performs:
inner-product estimation (model §2.2) and the measurement of the output state (§2.4-2.5). The
rest (cap, pooling, bookkeeping) is the same whoever performs them. An *executor* implements
those two steps:

- :class:`EmulatorExecutor` (default): the error models of :mod:`qcnn.quantum.ipe` and
  :func:`qcnn.quantum.sampling.sample_pixels`, vectorised over the batch;
- ``qcnn.circuits.layer.CircuitExecutor``: real Qiskit circuits, for small inputs. It is imported
  only when asked for, so the emulator never imports Qiskit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from qcnn.quantum.config import QuantumConfig
from qcnn.quantum.ipe import estimate_inner_products
from qcnn.quantum.sampling import sample_pixels

__all__ = ["ConvProblem", "Executor", "EmulatorExecutor", "make_executor"]


@dataclass(frozen=True)
class ConvProblem:
    """Everything about one layer's inner products ``Y[n, q, p] = <A_p(n), F_q>``.

    Attributes:
        cols: ``(K, N * H' * W')`` im2col matrix: column ``(n, p)`` is the patch ``A_p`` of image n.
        weight2d: ``(O, K)``: row q is the kernel ``F_q``.
        y: ``(N, O, H', W')`` exact inner products (no bias).
        scale: ``(N, O, H', W')`` (or broadcastable) norm products ``||A_p|| ||F_q||``.
    """

    cols: np.ndarray
    weight2d: np.ndarray
    y: np.ndarray
    scale: np.ndarray


@runtime_checkable
class Executor(Protocol):
    """Performs the quantum steps of a quantum convolution layer.

    An executor may also set ``thread_safe = True`` when replicas of a layer may call it from
    several threads at once (data parallelism); without it the layer is not thread-safe.
    """

    def inner_products(
        self, problem: ConvProblem, config: QuantumConfig, rng: np.random.Generator
    ) -> np.ndarray:
        """Estimates ``Ybar`` ``(N, O, H', W')`` of ``problem.y``."""
        ...

    def sample(
        self, values: np.ndarray, shots: int, config: QuantumConfig, rng: np.random.Generator
    ) -> np.ndarray:
        """Counts ``(B, d)`` of ``shots`` measurements of the states ``sum_i sqrt(values_i) |i>``."""
        ...


class EmulatorExecutor:
    """The error models, vectorised over the batch (numpy only)."""

    thread_safe = True  # stateless: every call draws from the generator it is given

    def inner_products(
        self, problem: ConvProblem, config: QuantumConfig, rng: np.random.Generator
    ) -> np.ndarray:
        return estimate_inner_products(problem.y, problem.scale, config, rng)

    def sample(
        self, values: np.ndarray, shots: int, config: QuantumConfig, rng: np.random.Generator
    ) -> np.ndarray:
        return sample_pixels(values, shots, rng, power=config.sampling_power)

    def __repr__(self) -> str:
        return "EmulatorExecutor()"


def make_executor(executor: str | Executor = "emulator", **options) -> Executor:
    """``'emulator'``, ``'circuits'`` (Qiskit/Aer; ``options`` go to ``CircuitExecutor``) or an
    object implementing :class:`Executor`."""
    if isinstance(executor, str):
        if executor == "emulator":
            if options:
                raise TypeError(f"the emulator executor takes no options, got {sorted(options)}")
            return EmulatorExecutor()
        if executor == "circuits":
            from qcnn.circuits.layer import CircuitExecutor  # lazy: only this path needs Qiskit

            return CircuitExecutor(**options)
        raise ValueError(
            f"executor must be 'emulator', 'circuits' or an Executor, got {executor!r}"
        )
    if not isinstance(executor, Executor):
        raise TypeError(f"{executor!r} does not implement inner_products() and sample()")
    return executor
