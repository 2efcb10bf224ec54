"""Executors: who performs the quantum steps of a layer's forward pass.

A quantum convolution layer's forward pass has steps that a quantum computer performs; the rest
(cap, values, pooling, bookkeeping) is the same whoever performs them. An *executor* implements
each quantum step as one method (the :class:`Executor` protocol), and the layer
(:class:`~qcnn.quantum.layer.QuantumConv2D`) calls them without knowing who answers:

- :meth:`~Executor.inner_products`: inner-product estimation (model §2.2);
- :meth:`~Executor.sample`: the measurement of the output state with one estimate per pixel
  (§2.4-2.5, the notebook's model);
- :meth:`~Executor.sample_per_shot`: the same measurement with a fresh estimate in every shot
  (``QuantumConfig.noise_per_shot``, docs/theory.md);
- :meth:`~Executor.normaliser`: amplitude estimation of ``sum f``, the scale of tomography values
  (``QuantumConfig.tomography_normaliser``).

An executor that has no implementation of a step raises :class:`NotImplementedError` saying so.

- :class:`EmulatorExecutor` (``"emulator"``, the default): the error models of
  :mod:`qcnn.quantum.ipe`, :func:`qcnn.quantum.sampling.sample_pixels`,
  :func:`qcnn.quantum.per_shot.sample_per_shot` and :mod:`qcnn.quantum.ae_law`, vectorised over
  the batch;
- other executors (e.g. real circuits, for small inputs) live in packages built on this one and
  are found by name in a registry: a package registers its executor when imported
  (:func:`register_executor`) and declares it in the ``qcnn.executors`` entry-point group of its
  distribution, so that ``QuantumConv2D(executor=name)`` also finds it before that package has
  been imported. The emulator itself refers to no executor package (it never imports Qiskit).

A caller can always pass an executor instance instead of a name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import numpy as np

from qcnn.quantum.ae_law import median_ae_estimate
from qcnn.quantum.config import QuantumConfig
from qcnn.quantum.ipe import estimate_inner_products
from qcnn.quantum.per_shot import PerShot, ShotProblem, sample_per_shot
from qcnn.quantum.sampling import sample_pixels

__all__ = [
    "ConvProblem",
    "ShotProblem",
    "Executor",
    "EmulatorExecutor",
    "make_executor",
    "register_executor",
    "executor_names",
    "ENTRY_POINT_GROUP",
]

ENTRY_POINT_GROUP = "qcnn.executors"  # entry points: name = "module:factory"


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

    def sample_per_shot(
        self, problem: ShotProblem, shots: int, config: QuantumConfig, rng: np.random.Generator
    ) -> PerShot:
        """``shots`` measurements per image of the output state with the estimate in
        superposition: every shot a (pixel, value) pair from a fresh estimate
        (:mod:`qcnn.quantum.per_shot`)."""
        ...

    def normaliser(
        self, mean_f: np.ndarray, d: int, config: QuantumConfig, rng: np.random.Generator
    ) -> np.ndarray:
        """``sum f`` per image ``(B,)`` estimated by amplitude estimation of ``E[f] / C`` (the
        ancilla's amplitude), from the exact ``mean_f`` ``(B,)`` over ``d`` pixels."""
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

    def sample_per_shot(
        self, problem: ShotProblem, shots: int, config: QuantumConfig, rng: np.random.Generator
    ) -> PerShot:
        return sample_per_shot(problem, config, shots, rng)

    def normaliser(
        self, mean_f: np.ndarray, d: int, config: QuantumConfig, rng: np.random.Generator
    ) -> np.ndarray:
        # the AE of the normaliser runs with the configured bits and median count
        a = np.clip(mean_f / config.cap, 0.0, 1.0)
        bits = config.ae_bits_any
        assert bits is not None  # validated: the normaliser's AE has eps > 0 or ae_bits
        a_hat = median_ae_estimate(a, bits, config.resolved_ae_median, rng).amplitude
        return d * config.cap * a_hat

    def __repr__(self) -> str:
        return "EmulatorExecutor()"


ExecutorFactory = Callable[..., Executor]  # keyword options -> executor
_REGISTRY: dict[str, ExecutorFactory] = {}


def register_executor(name: str, factory: ExecutorFactory) -> None:
    """Make ``make_executor(name, **options)`` return ``factory(**options)``.

    A later registration of the same name replaces the earlier one.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"executor name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"executor factory for {name!r} must be callable, got {factory!r}")
    _REGISTRY[name] = factory


def _emulator(**options: Any) -> EmulatorExecutor:
    if options:
        raise TypeError(f"the emulator executor takes no options, got {sorted(options)}")
    return EmulatorExecutor()


register_executor("emulator", _emulator)


def _declared_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def executor_names() -> list[str]:
    """Names ``make_executor`` accepts: registered ones and those declared as entry points."""
    return sorted(set(_REGISTRY) | set(_declared_entry_points()))


def _factory(name: str) -> ExecutorFactory:
    if name not in _REGISTRY:
        declared = _declared_entry_points()
        if name not in declared:
            raise ValueError(
                f"unknown executor {name!r}; known: {executor_names()} (or pass an Executor)"
            )
        factory = declared[name].load()  # imports the package, which may register it itself
        register_executor(name, _REGISTRY.get(name, factory))
    return _REGISTRY[name]


def make_executor(executor: str | Executor = "emulator", **options: Any) -> Executor:
    """An executor by registered name (``options`` go to its factory) or ``executor`` itself,
    an object implementing :class:`Executor`."""
    if isinstance(executor, str):
        made = _factory(executor)(**options)
        if not isinstance(made, Executor):
            raise TypeError(f"executor {executor!r} made {made!r}, not an Executor")
        return made
    if options:
        raise TypeError(f"options {sorted(options)} given with an executor instance")
    if not isinstance(executor, Executor):
        raise TypeError(
            f"{executor!r} does not implement inner_products(), sample(), sample_per_shot() "
            "and normaliser()"
        )
    return executor
