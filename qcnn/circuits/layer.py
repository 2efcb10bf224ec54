"""``CircuitExecutor``: the quantum steps of a convolution layer performed by circuits.

Implements the :class:`qcnn.quantum.executor.Executor` protocol, so
``QuantumConv2D(..., executor=make_executor("circuits", backend=...))`` runs a layer's
forward pass with Qiskit circuits instead of the emulator's error models:

- :meth:`CircuitExecutor.inner_products`: every ``Y[n, q, p] = <A_p(n), F_q>`` by its own IPE
  circuit (Hadamard test + amplitude estimation, or the Hadamard test alone), the patches taken
  from ``problem.cols`` and the kernels from ``problem.weight2d``; the norms are restored
  classically as the QRAM stores them. A pair with a zero-norm patch or kernel is exactly 0 and
  runs no circuit. All pairs share one transpiled template (angles bound per pair), so a layer
  is one ``backend.run`` call per ``max_batch`` circuits.
- :meth:`CircuitExecutor.sample`: the output-state measurement of
  :func:`qcnn.circuits.sampling.sample_pixels_circuit`.
- :meth:`CircuitExecutor.sample_per_shot` and :meth:`CircuitExecutor.normaliser` (noise per shot,
  the amplitude-estimated tomography normaliser) have no circuit yet and raise
  :class:`NotImplementedError`.

The cap, the noise order, pooling and the bookkeeping stay in the layer. With a config whose
``ipe`` is ``'exact'`` the layer never asks for inner products (only the sampling then runs as
circuits).

Norms: the circuits always use each image's own patch norms (what the QRAM holds); the
notebook's ``norms='first_image'`` shortcut only exists in the emulator's error models.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from qiskit.providers import BackendV2

from qcnn.checks import check_int
from qcnn.circuits.backend import CircuitRunner, as_seed_sequence, circuit_stats
from qcnn.circuits.encoding import normalise_rows
from qcnn.circuits.inner_product import (
    DEFAULT_AE_BITS,
    DEFAULT_SHOTS,
    MAX_AE_BITS,
    METHODS,
    InnerProductEstimator,
    Method,
)
from qcnn.circuits.sampling import output_state_circuit, sample_pixels_circuit
from qcnn.quantum.config import QuantumConfig
from qcnn.quantum.executor import ConvProblem, register_executor
from qcnn.quantum.per_shot import PerShot, ShotProblem

__all__ = ["CircuitExecutor"]


class CircuitExecutor:
    """Runs a quantum convolution layer's IPE and sampling steps as circuits.

    Args:
        backend: any Qiskit ``BackendV2`` (default ``AerSimulator()``).
        shots: shots per Hadamard test (``method='hadamard'``); None = exact probabilities
            (noise-free statevector, for checks). Not used by amplitude estimation, where each
            of the k runs of the median is one shot.
        method: ``'amplitude_estimation'`` (default) or ``'hadamard'``.
        ae_bits: m; default ``config.resolved_ae_bits`` when the config's ``ipe`` is
            ``'amplitude_estimation'``, else :data:`~qcnn.circuits.inner_product.DEFAULT_AE_BITS`
            (the Gaussian model's eps is not translated: m >= 8 circuits are slow).
        median_of: k; default ``config.ae_median``.
        sample_shots: if set, the number of measurements of each image's output state,
            replacing the layer's N (from ``config.sigma`` / ``config.eta``); the layer's
            ``stats`` report the N that actually ran.
        max_batch: circuits per ``backend.run`` call.
        max_circuits: refuse a forward pass that needs more IPE circuits than this (the
            executor is meant for single images and small layers; the emulator does datasets).

    After each call, ``report`` describes what ran (circuits, shots, seconds, circuit sizes)
    and ``last_inner_products`` / ``last_counts`` hold the step's output.
    """

    # one runner, report and estimator cache per executor: two shards must not share it
    thread_safe = False

    def __init__(
        self,
        backend: BackendV2 | None = None,
        shots: int | None = DEFAULT_SHOTS,
        method: Method = "amplitude_estimation",
        ae_bits: int | None = None,
        median_of: int | None = None,
        sample_shots: int | None = None,
        max_batch: int = 1024,
        max_circuits: int = 50_000,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be 'hadamard' or 'amplitude_estimation', got {method!r}")
        # numpy integers are accepted and stored as int (see qcnn.checks)
        if shots is not None:
            shots = check_int(shots, "shots (None or)", min=1)
        if ae_bits is not None:
            ae_bits = check_int(ae_bits, "ae_bits (None or)", min=1, max=MAX_AE_BITS)
        if median_of is not None:
            median_of = check_int(median_of, "median_of (None or)", min=1, odd=True)
        if sample_shots is not None:
            sample_shots = check_int(sample_shots, "sample_shots (None or)", min=0)
        max_batch = check_int(max_batch, "max_batch", min=1)
        max_circuits = check_int(max_circuits, "max_circuits", min=1)
        self.runner = CircuitRunner(backend, max_batch=max_batch)
        self.sample_shots = sample_shots
        self.shots = shots
        self.method = method
        self.ae_bits = ae_bits
        self.median_of = median_of
        self.max_circuits = max_circuits
        self._estimators: dict[tuple[int, int | None], InnerProductEstimator] = {}
        self.report: dict[str, dict[str, Any]] = {}
        self.last_inner_products: np.ndarray | None = None
        self.last_counts: np.ndarray | None = None

    @property
    def backend(self) -> BackendV2:
        return self.runner.backend

    def __repr__(self) -> str:
        return (
            f"CircuitExecutor(backend={self.backend.name}, method={self.method!r}, "
            f"ae_bits={self.ae_bits}, shots={self.shots})"
        )

    # -- settings -----------------------------------------------------------------------------
    def resolved_ae_bits(self, config: QuantumConfig) -> int | None:
        """m used for ``config`` (None for the Hadamard method)."""
        if self.method == "hadamard":
            return None
        if self.ae_bits is not None:
            return self.ae_bits
        return config.resolved_ae_bits or DEFAULT_AE_BITS

    def estimator(self, dim: int, config: QuantumConfig) -> InnerProductEstimator:
        """The (cached) estimator for vectors of length ``dim`` under ``config``."""
        m = self.resolved_ae_bits(config)
        key = (dim, m)
        if key not in self._estimators:
            self._estimators[key] = InnerProductEstimator(dim, self.method, m, runner=self.runner)
        return self._estimators[key]

    # -- Executor protocol --------------------------------------------------------------------
    def inner_products(
        self, problem: ConvProblem, config: QuantumConfig, rng: np.random.Generator
    ) -> np.ndarray:
        """``Ybar`` ``(N, O, H', W')``: every inner product estimated by its own circuit."""
        n_img, n_out, ho, wo = problem.y.shape
        cols = np.asarray(problem.cols)
        weights = np.asarray(problem.weight2d)
        k = cols.shape[0]
        if cols.shape[1] != n_img * ho * wo or weights.shape != (n_out, k):
            raise ValueError(
                f"inconsistent problem: cols {cols.shape}, weight2d {weights.shape}, "
                f"y {problem.y.shape}"
            )
        est = self.estimator(k, config)
        n = est.num_data_qubits
        patch_states, patch_norms = normalise_rows(cols.T, n)  # (N H'W', 2^n), column (n, p)
        kernel_states, kernel_norms = normalise_rows(weights, n)  # (O, 2^n)
        live_p = np.flatnonzero(patch_norms > 0)
        live_q = np.flatnonzero(kernel_norms > 0)
        pi = np.repeat(live_p, live_q.size)
        qi = np.tile(live_q, live_p.size)
        if pi.size > self.max_circuits:
            raise ValueError(
                f"this forward pass needs {pi.size} IPE circuits (> max_circuits="
                f"{self.max_circuits}); use the emulator for batches, or raise max_circuits"
            )
        median_of = self.median_of or config.ae_median
        start = time.perf_counter()
        calls0 = self.runner.log.calls
        a_hat, _ = est.estimate_probability(
            patch_states[pi],
            kernel_states[qi],
            shots=self.shots,
            median_of=median_of,
            seed=as_seed_sequence(rng),
        )
        flat = np.zeros((n_img * ho * wo, n_out))
        flat[pi, qi] = patch_norms[pi] * kernel_norms[qi] * (1.0 - 2.0 * a_hat)
        y_bar = flat.reshape(n_img, ho, wo, n_out).transpose(0, 3, 1, 2)
        y_bar = np.ascontiguousarray(y_bar).astype(problem.y.dtype, copy=False)

        res = est.resources()
        per_circuit = median_of if self.method == "amplitude_estimation" else self.shots
        self.report["ipe"] = {
            "method": self.method,
            "ae_bits": est.ae_bits,
            "median_of": median_of if self.method == "amplitude_estimation" else None,
            "circuits": int(pi.size),
            "skipped_zero_pairs": int(n_img * ho * wo * n_out - pi.size),
            "shots_per_circuit": per_circuit,
            "backend_calls": self.runner.log.calls - calls0,
            "seconds": time.perf_counter() - start,
            "native": res["native"],
            "cx_u": res["cx_u"],
        }
        self.last_inner_products = y_bar
        return y_bar

    def sample(
        self, values: np.ndarray, shots: int, config: QuantumConfig, rng: np.random.Generator
    ) -> np.ndarray:
        """Counts ``(B, d)`` of ``shots`` (or ``sample_shots``) measurements of each row's
        output state."""
        if self.sample_shots is not None:
            shots = self.sample_shots
        start = time.perf_counter()
        calls0 = self.runner.log.calls
        counts = sample_pixels_circuit(
            values, shots, power=config.sampling_power, runner=self.runner, seed=rng
        )
        live = np.flatnonzero(np.asarray(values).max(axis=1, initial=0) > 0)
        stats = None
        if live.size and shots:
            qc, _ = output_state_circuit(np.asarray(values[live[0]]), config.sampling_power)
            stats = circuit_stats(self.runner.transpile(qc))
        self.report["sampling"] = {
            "circuits": int(live.size) if shots else 0,
            "shots_per_circuit": int(shots),
            "backend_calls": self.runner.log.calls - calls0,
            "seconds": time.perf_counter() - start,
            "native": stats,
        }
        self.last_counts = counts
        return counts

    def sample_per_shot(
        self, problem: ShotProblem, shots: int, config: QuantumConfig, rng: np.random.Generator
    ) -> PerShot:
        """Not available as circuits: the per-shot model keeps the estimate register in
        superposition while the output state is measured, and no circuit here builds that
        joint state yet."""
        raise NotImplementedError(
            "CircuitExecutor has no circuit for noise per shot (QuantumConfig.noise_per_shot): "
            "use the emulator executor"
        )

    def normaliser(
        self, mean_f: np.ndarray, d: int, config: QuantumConfig, rng: np.random.Generator
    ) -> np.ndarray:
        """Not available as circuits: estimating ``sum f`` needs the output state's ancilla
        amplitude, which no circuit here prepares yet."""
        raise NotImplementedError(
            "CircuitExecutor has no circuit for the tomography normaliser "
            "(QuantumConfig.tomography_normaliser='amplitude_estimation'): use the emulator "
            "executor or tomography_normaliser='exact'"
        )


# ``QuantumConv2D(executor="circuits")``; pyproject.toml declares the same name as an entry point
# (group ``qcnn.executors``) so that it resolves before this package is imported.
register_executor("circuits", CircuitExecutor)
