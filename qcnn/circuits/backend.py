"""Backends, seeds and batched execution of circuits.

- Any Qiskit ``BackendV2`` works; the default is ``AerSimulator()``. Circuits are transpiled for
  the backend with ``optimization_level=0`` (no rewriting: what runs is the circuit we built,
  decomposed only as far as the backend requires).
- Many circuits go into one ``backend.run`` call. For Aer, a *template* circuit with parameters
  is transpiled once and all its instances run through Aer's ``parameter_binds`` (the circuit is
  converted to Aer's internal form once; binding happens in C++), which is what makes a layer's
  hundreds of inner-product circuits fast. Other backends get the bound circuits as a list.
- Seeds: one root ``numpy.random.SeedSequence`` per logical operation; every ``backend.run`` call
  gets its own ``seed_simulator`` from a spawned child (never ``seed + i``). Within one Aer call
  Aer derives a distinct seed for each experiment itself. Results are reproducible for a given
  root seed, backend and batch size (``max_batch``).
- ``shots=None`` asks for exact outcome probabilities instead of samples: Aer's
  ``save_probabilities`` (statevector), or ``qiskit.quantum_info.Statevector`` for backends that
  cannot save them. Used by checks that must be free of shot noise.
- :func:`depolarizing_noise_model` builds an Aer noise model (depolarizing errors on one- and
  two-qubit gates) to show what gate noise does to the sub-routines.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter
from qiskit.providers import BackendV2
from qiskit.transpiler import generate_preset_pass_manager

__all__ = [
    "SeedLike",
    "default_backend",
    "aer_backend",
    "depolarizing_noise_model",
    "is_aer",
    "as_seed_sequence",
    "simulator_seeds",
    "CircuitStats",
    "circuit_stats",
    "RunLog",
    "CircuitRunner",
]

SeedLike = int | np.random.SeedSequence | np.random.Generator | None

# Aer methods that run these circuits (all exact up to sampling at these sizes). The others
# cannot: 'stabilizer' / 'extended_stabilizer' reject parameterised non-Clifford circuits,
# 'unitary' / 'superop' do not measure, 'tensor_network' needs Aer's GPU build.
AER_METHODS = ("automatic", "statevector", "density_matrix", "matrix_product_state")
# Gates counted as two-qubit gates in the resource tables.
_ONE_QUBIT_NON_GATES = {"measure", "barrier", "reset", "delay", "save_probabilities"}


# Our circuits are small (<= ~15 qubits) and come many per call: parallelising over experiments
# is faster than Aer's default, which may split one experiment's shots over threads (measured
# in docs/benchmarks.md). Results do not depend on it (every experiment has its own seed).
AER_DEFAULT_OPTIONS = {"max_parallel_experiments": 0, "max_parallel_shots": 1}


def default_backend() -> BackendV2:
    """``AerSimulator()`` (automatic method) with :data:`AER_DEFAULT_OPTIONS`."""
    return aer_backend()


def aer_backend(method: str = "automatic", noise_model: Any = None, **options: Any) -> BackendV2:
    """``AerSimulator(method=..., noise_model=..., **options)``; ``method`` is checked first.

    ``options`` override :data:`AER_DEFAULT_OPTIONS`.
    """
    from qiskit_aer import AerSimulator

    if method not in AER_METHODS:
        raise ValueError(
            f"Aer method {method!r} cannot run these circuits; choose one of {', '.join(AER_METHODS)}"
        )
    if noise_model is not None:
        options["noise_model"] = noise_model
    return AerSimulator(method=method, **{**AER_DEFAULT_OPTIONS, **options})


def depolarizing_noise_model(
    p1: float,
    p2: float,
    one_qubit_gates: Sequence[str] = ("u", "ry", "rz", "sx", "x", "h"),
    two_qubit_gates: Sequence[str] = ("cx",),
) -> Any:
    """Aer ``NoiseModel``: depolarizing error ``p1`` after every listed 1-qubit gate, ``p2``
    after every listed 2-qubit gate.

    A backend with this model (``aer_backend(noise_model=...)``) makes the transpiler decompose
    every circuit into exactly these gates, so the noise really hits every gate (multi-controlled
    gates are not left as noiseless Aer-native blocks).
    """
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    for name, p in (("p1", p1), ("p2", p2)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    model = NoiseModel(basis_gates=list(one_qubit_gates) + list(two_qubit_gates))
    if p1 > 0:
        model.add_all_qubit_quantum_error(depolarizing_error(p1, 1), list(one_qubit_gates))
    if p2 > 0:
        model.add_all_qubit_quantum_error(depolarizing_error(p2, 2), list(two_qubit_gates))
    return model


def is_aer(backend: BackendV2) -> bool:
    """Whether ``backend`` is an Aer simulator (supports ``parameter_binds`` and save instructions)."""
    return type(backend).__module__.startswith("qiskit_aer")


def as_seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    """The root ``SeedSequence`` of an operation.

    - ``int``: ``SeedSequence(seed)``; ``SeedSequence``: itself;
    - ``Generator`` (what a layer passes): a fresh ``SeedSequence`` from 128 bits drawn from it,
      so the generator's stream advances and successive calls get independent roots;
    - ``None``: OS entropy (not reproducible).
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**32, size=4, dtype=np.uint64).tolist())
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            f"seed must be a non-negative integer, SeedSequence or Generator, got {seed!r}"
        )
    return np.random.SeedSequence(int(seed))


def simulator_seeds(root: np.random.SeedSequence, k: int) -> list[int]:
    """``k`` simulator seeds (63-bit ints) from ``k`` spawned children of ``root``."""
    return [int(child.generate_state(1, np.uint64)[0] >> np.uint64(1)) for child in root.spawn(k)]


@dataclass(frozen=True)
class CircuitStats:
    """Size of a circuit: qubits, depth, two-qubit gates, all gates (measurements excluded)."""

    qubits: int
    depth: int
    two_qubit_gates: int
    gates: int
    ops: dict[str, int] = field(default_factory=dict)


def circuit_stats(qc: QuantumCircuit) -> CircuitStats:
    """Count ``qc``'s gates as they stand (no decomposition). Gates on more than two qubits
    (e.g. Aer-native ``mcx``) are not counted as two-qubit gates; decompose first to compare."""
    ops = {k: int(v) for k, v in qc.count_ops().items()}
    two = sum(
        1
        for inst in qc.data
        if len(inst.qubits) == 2 and inst.operation.name not in _ONE_QUBIT_NON_GATES
    )
    gates = sum(v for k, v in ops.items() if k not in _ONE_QUBIT_NON_GATES)
    depth = qc.depth(lambda inst: inst.operation.name not in ("barrier", "measure"))
    return CircuitStats(qc.num_qubits, int(depth), two, gates, ops)


@dataclass
class RunLog:
    """What a runner did: backend calls, experiments (circuits run), shots, seconds."""

    calls: int = 0
    experiments: int = 0
    shots: int = 0
    seconds: float = 0.0

    def add(self, other: RunLog) -> None:
        self.calls += other.calls
        self.experiments += other.experiments
        self.shots += other.shots
        self.seconds += other.seconds


class CircuitRunner:
    """Runs circuits on one backend in batches and returns outcome counts as arrays.

    Args:
        backend: any ``BackendV2``; default ``AerSimulator()``.
        max_batch: experiments per ``backend.run`` call.
    """

    def __init__(self, backend: BackendV2 | None = None, *, max_batch: int = 1024) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.backend = default_backend() if backend is None else backend
        if not isinstance(self.backend, BackendV2):
            raise TypeError(
                f"backend must be a Qiskit BackendV2, got {type(self.backend).__name__}"
            )
        self.max_batch = max_batch
        self.aer = is_aer(self.backend)
        self.log = RunLog()
        self._pass_manager: Any = None
        opts = getattr(self.backend, "options", None)
        self._takes_seed = opts is not None and hasattr(opts, "seed_simulator")

    def __repr__(self) -> str:
        return f"CircuitRunner({self.backend.name}, max_batch={self.max_batch})"

    def transpile(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """Transpile for the backend at ``optimization_level=0`` (parameters survive).

        Same passes as ``transpile(circuit, backend, optimization_level=0)``, but the pass
        manager is built once per runner: building it costs more than transpiling one of our
        small circuits (docs/benchmarks.md), and the sampling step transpiles one circuit per image. Circuits
        go through it one at a time (a list would start worker processes).
        """
        if self._pass_manager is None:
            self._pass_manager = generate_preset_pass_manager(
                optimization_level=0, backend=self.backend
            )
        return self._pass_manager.run(circuit)

    # -- execution ----------------------------------------------------------------------------
    def run(
        self,
        circuit: QuantumCircuit,
        measured: int,
        shots: int | None,
        seed: SeedLike,
        parameters: Sequence[Parameter] = (),
        values: np.ndarray | None = None,
    ) -> np.ndarray:
        """Run instances of one *transpiled* template; return ``(B, 2^measured)`` outcomes.

        Args:
            circuit: transpiled circuit whose classical bits ``0..measured-1`` hold the outcome
                (read as an integer, bit k = clbit k); for ``shots=None`` instead the *logical*
                circuit without measurements, whose qubits ``0..measured-1`` form the outcome.
            measured: number of classical bits that form the outcome.
            shots: shots per instance (>= 1), or None for exact probabilities.
            seed: root of the simulator seeds (see :func:`as_seed_sequence`).
            parameters: the template's parameters, in the column order of ``values``.
            values: ``(B, P)`` parameter values, one row per instance; None: one instance.

        Returns:
            int64 counts ``(B, 2^measured)`` (each row sums to ``shots``) or float64
            probabilities for ``shots=None``.
        """
        if shots is not None and (not isinstance(shots, (int, np.integer)) or shots < 1):
            raise ValueError(f"shots must be a positive integer or None, got {shots!r}")
        if values is None:
            values = np.zeros((1, 0))
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(parameters):
            raise ValueError(
                f"values must be (B, {len(parameters)}) for {len(parameters)} parameters, "
                f"got {values.shape}"
            )
        b = values.shape[0]
        out = np.zeros((b, 1 << measured), dtype=np.float64 if shots is None else np.int64)
        if b == 0:
            return out
        chunks, seeds = self._chunks_and_seeds(b, seed)
        start = time.perf_counter()
        for sl, s in zip(chunks, seeds, strict=True):
            vals = values[sl]
            if shots is None:
                out[sl] = self._exact(circuit, measured, parameters, vals)
            else:
                out[sl] = self._sample(circuit, measured, shots, s, parameters, vals)
        self.log.add(
            RunLog(
                len(chunks), b, 0 if shots is None else b * int(shots), time.perf_counter() - start
            )
        )
        return out

    def _chunks_and_seeds(self, n: int, seed: SeedLike) -> tuple[list[slice], list[int]]:
        """Slices of at most ``max_batch`` circuits, one simulator seed per ``backend.run``."""
        chunks = [slice(i, min(i + self.max_batch, n)) for i in range(0, n, self.max_batch)]
        return chunks, simulator_seeds(as_seed_sequence(seed), len(chunks))

    def run_circuits(
        self, circuits: Sequence[QuantumCircuit], measured: int, shots: int, seed: SeedLike
    ) -> np.ndarray:
        """Run distinct transpiled circuits (no parameters): ``(len(circuits), 2^measured)`` counts."""
        if not isinstance(shots, (int, np.integer)) or shots < 1:
            raise ValueError(f"shots must be a positive integer, got {shots!r}")
        n = len(circuits)
        out = np.zeros((n, 1 << measured), dtype=np.int64)
        if n == 0:
            return out
        chunks, seeds = self._chunks_and_seeds(n, seed)
        start = time.perf_counter()
        for sl, s in zip(chunks, seeds, strict=True):
            result = self.backend.run(
                list(circuits[sl]), shots=int(shots), **self._seed_kw(s)
            ).result()
            for i, row in enumerate(range(sl.start, sl.stop)):
                out[row] = _counts_to_array(result.get_counts(i), measured)
        self.log.add(RunLog(len(chunks), n, n * int(shots), time.perf_counter() - start))
        return out

    def _seed_kw(self, seed: int) -> dict[str, int]:
        return {"seed_simulator": seed} if self._takes_seed else {}

    def _sample(self, circuit, measured, shots, seed, parameters, values) -> np.ndarray:
        b = values.shape[0]
        if self.aer and len(parameters):
            binds = [{p: values[:, j].tolist() for j, p in enumerate(parameters)}]
            result = self.backend.run(
                circuit, shots=int(shots), parameter_binds=binds, seed_simulator=seed
            ).result()
        else:
            bound = [self._bind(circuit, parameters, row) for row in values]
            result = self.backend.run(bound, shots=int(shots), **self._seed_kw(seed)).result()
        out = np.zeros((b, 1 << measured), dtype=np.int64)
        for i in range(b):
            out[i] = _counts_to_array(result.get_counts(i), measured)
        return out

    def _exact(self, circuit, measured, parameters, values) -> np.ndarray:
        """Exact, noiseless probabilities of qubits ``0..measured-1`` of the *logical* circuit
        ``circuit`` (no measurements): an Aer statevector run with ``save_probabilities`` when
        the backend is Aer, ``qiskit.quantum_info.Statevector`` otherwise."""
        b = values.shape[0]
        out = np.zeros((b, 1 << measured))
        qubits = list(range(measured))
        if self.aer:
            from qiskit_aer import AerSimulator

            sim = AerSimulator(method="statevector")  # the backend's own method may not save
            qc = circuit.copy()
            qc.save_probabilities(qubits, label="p")
            qc = transpile(qc, sim, optimization_level=0)
            if len(parameters):
                binds = [{p: values[:, j].tolist() for j, p in enumerate(parameters)}]
                result = sim.run(qc, shots=1, parameter_binds=binds).result()
            else:
                result = sim.run([qc] * b, shots=1).result()
            for i in range(b):
                out[i] = np.asarray(result.data(i)["p"])
        else:
            from qiskit.quantum_info import Statevector

            for i, row in enumerate(values):
                out[i] = Statevector(self._bind(circuit, parameters, row)).probabilities(qubits)
        return out

    @staticmethod
    def _bind(circuit: QuantumCircuit, parameters: Sequence[Parameter], row: np.ndarray):
        if not len(parameters):
            return circuit
        return circuit.assign_parameters(dict(zip(parameters, row.tolist(), strict=True)))


def _counts_to_array(counts: dict[str, int], measured: int) -> np.ndarray:
    """Counts dict (bitstrings, clbit 0 rightmost) -> ``(2^measured,)`` array indexed by value."""
    arr = np.zeros(1 << measured, dtype=np.int64)
    for key, n in counts.items():
        # Keys may contain spaces between registers; only the first ``measured`` clbits count.
        bits = key.replace(" ", "")
        arr[int(bits[-measured:], 2)] += n
    return arr
