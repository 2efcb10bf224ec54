"""Logical cost counts of a KLP19 quantum convolution layer, from its construction (model §4).

:mod:`qcnn.quantum.resources` holds the paper's big-O formula; this module counts what the
algorithm, built the way qcnn builds it, executes: every amplitude-estimation run, Grover
iteration, amplitude-amplification round, tomography shot and QRAM query, so that no constant can
drop out unnoticed. Each count is a product of named factors (returned beside the totals), and
the tests compare them with hand counts and with the gate counts of the circuits package's
circuits (which this module does not import: the emulator never depends on Qiskit).

**The construction counted** (model §2, §4; ``P`` patches, ``Q`` kernels, kernel volume ``V``,
``d = P Q`` output pixels; ``n = max(1, ceil log2 V)`` data qubits, ``n_p = ceil log2 P`` and
``n_q = ceil log2 Q`` index qubits):

- ``A``, the Hadamard-test preparation ``(|0>|A_p> + |1>|F_q>) / sqrt 2`` for every (p, q) at
  once: H on the control, then the RY tree of the data register, level ``l`` a rotation
  uniformly controlled by the control, the index registers and the ``l`` data qubits above it
  (the coherent circuit's default splits each level into a patch multiplexer over
  ``(prefix, p, ctrl)`` and a kernel multiplexer over ``(prefix, q, ctrl)``:
  ``Assumptions.circuit_loader``), then H on the control (the circuits package's
  ``HadamardTestTemplate`` is the one-pair case of the joint form);
- the Grover iterate ``A S_0 A^dagger S_chi`` with only its two reflections controlled by the
  evaluation qubit: ``S_chi`` a CZ, ``S_0`` a multi-controlled X with ``1 + n`` controls
  (the circuits package's ``controlled_grover_operator``);
- one AE run with m bits: ``A``, ``2^m - 1`` controlled Grover iterates, an inverse QFT on m
  qubits, so ``2^(m+1) - 1`` applications of ``A``;
- ``k`` runs and their coherent median (``k = 1`` in notebook mode; theory mode derives k from
  the failure probability: 11 at Delta = 0.01);
- the flag rotation ``P(flag = 1 | p, q, j) = f(Ybar_pq(j)) / C``;
- ``U`` = index superposition + k AE runs + median + flag rotation: one coherent run. Amplitude
  amplification on the flag (success amplitude ``sin^2 theta = fill E[f] / C``, ``fill`` the
  share of the index registers' states that are pixels, :func:`index_fill`) takes
  ``r = floor(pi / (4 theta))`` rounds (about ``(pi / 4) sqrt(C / E[f])``), each ``U^dagger`` and
  ``U`` and a reflection about the initial state; one attempt succeeds with probability
  ``sin^2((2r + 1) theta)``, so a shot costs ``(2r + 1) / sin^2((2r + 1) theta)`` runs of U on
  average;
- the forward tomography draws ``N`` shots per image: ``sigma d`` as the emulator runs it (the
  heuristic), and ``36 ln d / eta^2`` for the eta guarantee (:func:`tomography_shots`); theory
  mode's estimated normaliser adds one more AE (k runs of m bits) of the flag's amplitude, whose
  Grover iterate is ``U^dagger`` and ``U``;
- the backward pass reads each gradient tensor by l-infinity tomography: ``36 ln d / delta^2``
  shots, twice that with the Kerenidis-Prakash sign step, each shot one state of the quantum
  matrix multiplication at ``(mu(X) + mu(Y)) kappa(X Y)`` QRAM queries (KLP19's backward
  theorem, its polylogs not counted); **the kernel gradient is read once per batch** (the
  batch's stacked matrices), the gradient passed back once per image.

**Two readings of QRAM**, both counted, always labelled:

- ``'paper'`` (the headline): a QRAM query is one call of stated cost. The data structure of
  Kerenidis and Prakash (2017) prepares a stored vector in ``O(log^2 N)`` time for N stored
  numbers; we count one query as ``ceil(log2 N)^2`` Toffolis (``qram_query_toffoli_power``, the
  routing of a bucket-brigade read, one controlled swap per router) and ``ceil(log2 V)``
  rotations (one per level of the tree); the flag needs the norms (two queries) and arithmetic
  on ``fixed_point_bits``-bit registers (:func:`flag_arithmetic`).
- ``'circuit'``: QRAM realised as the coherent circuit's multiplexed RY-tree loaders (issue 15,
  the circuits package's ``coherent`` module): a uniformly controlled RY with c controls is
  ``2^c`` RY and ``2^c`` CNOT (Mottonen et al. 2004), so loading costs about ``2 (P + Q) V``
  rotations per application of ``A`` with the split loader (``2 P Q V`` joint): a gate count
  that grows with the data it loads. The flag rotation is one
  multiplexer over (p, q, j).

**Gate costs** for the estimator (named, with sources): a k-controlled X is ``k - 1`` logical AND
gates (ccix, Gidney 2018, uncomputed by measurement: ``k - 1`` measurements, ``k - 2`` ancillas);
a controlled phase of the inverse QFT is three rotations; a compare-exchange of the median
network is ``3 m`` Toffolis (comparator, controlled swap, uncomputation) and the network is
odd-even transposition sort (``k (k - 1) / 2`` compare-exchanges); rotations are all counted as
arbitrary angles and as sequential (``rotation_depth = rotations``: the tree's levels act on one
target after another). The T count of a rotation of accuracy a is ``ceil(3 log2(1 / a))``
(Ross and Selinger 2016), and the accuracy each rotation needs is the IPE precision eps divided
by the rotations of one shot (the synthesis errors add in operator norm); a Toffoli is 7 T, an
AND 4 T. The QRAM's own memory qubits are not counted (the paper treats QRAM as a device).

Shapes: every count is a float (some exceed 2^53 only in the circuit reading of large layers;
they stay finite); ``Counts`` adds and scales like a vector, qubits combine by max.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from qcnn.quantum.config import QuantumConfig
from qcnn.quantum.sampling import tomography_shots

__all__ = [
    "READINGS",
    "Reading",
    "Assumptions",
    "Counts",
    "LayerShape",
    "AEPlan",
    "ae_plan",
    "index_qubits",
    "data_qubits",
    "multiplexer",
    "mcx",
    "qram_query",
    "hadamard_test",
    "grover_iteration",
    "ae_run",
    "inverse_qft",
    "median_network",
    "flag_arithmetic",
    "flag_rotation",
    "coherent_run",
    "index_fill",
    "aa_rounds",
    "aa_success_probability",
    "forward_costs",
    "backward_costs",
    "rotation_t_count",
]

Reading = Literal["paper", "circuit"]
READINGS: tuple[Reading, ...] = ("paper", "circuit")


@dataclass(frozen=True)
class Assumptions:
    """What the paper leaves open, as named parameters (defaults and sources in the module doc).

    Attributes:
        qram_query_toffoli_power: a QRAM query over N numbers costs ``ceil(log2 N)^power``
            Toffolis (Kerenidis & Prakash 2017: ``O(log^2 N)`` time) [paper reading].
        qram_rotations_per_level: rotations per level of the vector's tree in one query.
        fixed_point_bits: b, the registers of the flag's arithmetic (``Ybar`` from j, the norms
            and the bias; the cap; the angle) [paper reading].
        eta_reference: the eta whose ``36 ln d / eta^2`` shots are reported beside sigma d.
        t_per_toffoli: T gates per Toffoli (7: Amy et al. 2013); t_per_and: per AND (4: Gidney 2018).
        rotation_t_factor: T per rotation ``= ceil(factor log2(1 / accuracy))`` (Ross & Selinger).
        circuit_loader: the coherent circuit's loader [circuit reading]: ``'split'`` (its
            default: per tree level one multiplexer over (prefix, p, ctrl) for the patches and one
            over (prefix, q, ctrl) for the kernels) or ``'joint'`` (one over (prefix, p, q, ctrl)).
    """

    qram_query_toffoli_power: float = 2.0
    qram_rotations_per_level: int = 1
    fixed_point_bits: int = 16
    eta_reference: float = 0.1
    t_per_toffoli: int = 7
    t_per_and: int = 4
    rotation_t_factor: float = 3.0
    circuit_loader: Literal["split", "joint"] = "split"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Counts:
    """Logical resources of a circuit (or of many runs of one): additive, qubits by max.

    ``qram_queries`` counts calls (paper reading; their Toffolis and rotations are already in
    ``toffoli`` and ``rotations``); ``cx`` and ``h`` are Cliffords, kept for the cross-checks
    against built circuits (the estimator does not charge them).
    """

    qubits: float = 0.0
    qram_queries: float = 0.0
    rotations: float = 0.0
    rotation_depth: float = 0.0
    toffoli: float = 0.0
    ands: float = 0.0
    measurements: float = 0.0
    cx: float = 0.0
    h: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        values = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        values["qubits"] = max(self.qubits, other.qubits)
        return Counts(**values)

    def times(self, k: float) -> Counts:
        """``k`` runs of this circuit one after another (qubits unchanged)."""
        values = {f.name: getattr(self, f.name) * k for f in fields(self)}
        values["qubits"] = self.qubits
        return Counts(**values)

    def with_qubits(self, qubits: float) -> Counts:
        return Counts(**{**asdict(self), "qubits": float(qubits)})

    def t_count(self, rotation_accuracy: float, assumptions: Assumptions | None = None) -> float:
        """T gates: rotations at ``rotation_accuracy``, Toffolis and ANDs (module doc)."""
        a = assumptions or Assumptions()
        return (
            self.rotations * rotation_t_count(rotation_accuracy, a)
            + self.toffoli * a.t_per_toffoli
            + self.ands * a.t_per_and
        )

    def estimator_counts(self) -> dict[str, int]:
        """The ``LogicalCounts`` dict of Microsoft's resource estimator (integers)."""
        return {
            "numQubits": int(math.ceil(self.qubits)),
            "rotationCount": int(math.ceil(self.rotations)),
            "rotationDepth": int(math.ceil(self.rotation_depth)),
            "cczCount": int(math.ceil(self.toffoli)),
            "ccixCount": int(math.ceil(self.ands)),
            "measurementCount": int(math.ceil(self.measurements)),
            "tCount": 0,
        }

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def rotation_t_count(accuracy: float, assumptions: Assumptions | None = None) -> int:
    """T gates of one arbitrary rotation synthesised to ``accuracy``: ``ceil(3 log2(1/a))``."""
    if not 0 < accuracy < 1:
        raise ValueError(f"rotation accuracy must be in (0, 1), got {accuracy!r}")
    a = assumptions or Assumptions()
    return math.ceil(a.rotation_t_factor * math.log2(1.0 / accuracy))


# -- geometry ---------------------------------------------------------------------------------


def index_qubits(size: int) -> int:
    """Qubits of an index register over ``size`` values: ``ceil(log2 size)`` (0 for one value)."""
    if size < 1:
        raise ValueError(f"an index register needs size >= 1, got {size}")
    return (size - 1).bit_length()


def data_qubits(volume: int) -> int:
    """Qubits of the data register of a vector of length V: ``max(1, ceil(log2 V))``."""
    return max(1, index_qubits(volume))


@dataclass(frozen=True)
class LayerShape:
    """One quantum layer as the algorithm sees one image: ``P`` patches (``H'W'``), ``Q``
    kernels (``D'``), kernel volume ``V = kh kw D``, input size (``D H W``, for the gradient
    passed back)."""

    patches: int
    kernels: int
    volume: int
    input_size: int = 0
    bias: bool = True

    @property
    def out_pixels(self) -> int:
        return self.patches * self.kernels

    @property
    def classical_forward(self) -> float:
        """Multiply-adds of the classical convolution of one image: ``H'W'D' V``."""
        return float(self.out_pixels * self.volume)

    def classical_backward(self, input_gradient: bool = True) -> float:
        """``dL/dF = A^T dY`` (``H'W'D' V``) and, if needed, ``dL/dX = dY F^T`` (as many)."""
        return float(self.out_pixels * self.volume) * (2 if input_gradient else 1)


# -- building blocks ----------------------------------------------------------------------------


def multiplexer(controls: int) -> Counts:
    """A uniformly controlled RY with ``controls`` controls: ``2^c`` RY and ``2^c`` CNOT (none
    for c = 0), Mottonen et al. 2004 (``append_uniformly_controlled_ry`` of the circuits package)."""
    branches = float(2**controls)
    return Counts(rotations=branches, rotation_depth=branches, cx=branches if controls else 0.0)


def mcx(controls: int) -> Counts:
    """A multi-controlled X: a CNOT for one control, else ``c - 1`` ANDs (Gidney 2018) computed
    and uncomputed by measurement, with ``c - 2`` ancillas (in ``qubits``)."""
    if controls <= 1:
        return Counts(cx=float(controls))
    return Counts(
        ands=float(controls - 1), measurements=float(controls - 1), qubits=float(controls - 2)
    )


def qram_query(entries: int, length: int, assumptions: Assumptions) -> Counts:
    """One QRAM query (paper reading) of a vector of ``length`` out of ``entries`` numbers."""
    log_n = max(1, index_qubits(entries))
    rotations = float(assumptions.qram_rotations_per_level * data_qubits(length))
    return Counts(
        qram_queries=1.0,
        toffoli=float(math.ceil(log_n**assumptions.qram_query_toffoli_power)),
        rotations=rotations,
        rotation_depth=rotations,
    )


def hadamard_test(shape: LayerShape, reading: Reading, assumptions: Assumptions) -> Counts:
    """``A`` for every (p, q): the Hadamard-test preparation on (control, data), loaded
    conditioned on the index registers. Qubits: control + data + index registers."""
    n = data_qubits(shape.volume)
    n_idx = index_qubits(shape.patches) + index_qubits(shape.kernels)
    qubits = float(1 + n + n_idx)
    h = Counts(h=2.0)  # H on the control before and after the loaders (the tree's root)
    if reading == "circuit":
        total = h
        for level in range(n):
            if assumptions.circuit_loader == "joint":
                total = total + multiplexer(1 + n_idx + level)
            elif assumptions.circuit_loader == "split":
                total = total + multiplexer(1 + index_qubits(shape.patches) + level)
                total = total + multiplexer(1 + index_qubits(shape.kernels) + level)
            else:
                raise ValueError(
                    f"circuit_loader must be 'split' or 'joint', got {assumptions.circuit_loader!r}"
                )
        return total.with_qubits(qubits)
    if reading != "paper":
        raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")
    a = qram_query(shape.patches * shape.volume, shape.volume, assumptions)  # |A_p> given p
    f = qram_query(shape.volume * shape.kernels, shape.volume, assumptions)  # |F_q> given q
    return (h + a + f).with_qubits(qubits)


def grover_iteration(prep: Counts, data: int) -> Counts:
    """``A S_0 A^dagger S_chi`` controlled by one evaluation qubit (only the reflections are):
    two applications of ``A``, ``S_0`` a multi-controlled X over the evaluation qubit and
    ``data`` of (control, data)'s ``1 + data`` qubits, ``S_chi`` a CZ (Clifford)."""
    return prep + prep + mcx(1 + data)


def inverse_qft(m: int) -> Counts:
    """``m (m - 1) / 2`` controlled phases (3 rotations, 2 CNOT each) and m H; no swaps."""
    pairs = float(m * (m - 1) // 2)
    return Counts(rotations=3 * pairs, rotation_depth=3 * pairs, cx=2 * pairs, h=float(m))


def ae_run(prep: Counts, m: int, data: int) -> Counts:
    """One canonical AE run with m evaluation qubits: ``A``, H on the m qubits, ``2^m - 1``
    controlled Grover iterates, the inverse QFT (unmeasured: the run stays coherent)."""
    iterations = grover_iteration(prep, data).times(2**m - 1)
    return (prep + Counts(h=float(m)) + iterations + inverse_qft(m)).with_qubits(prep.qubits + m)


def median_network(k: int, m: int) -> Counts:
    """Coherent median of k m-bit registers: odd-even transposition sort, ``k (k - 1) / 2``
    compare-exchanges of ``3 m`` Toffolis and one ancilla each (kept until uncomputed)."""
    if k == 1:
        return Counts()
    exchanges = float(k * (k - 1) // 2)
    return Counts(toffoli=3 * m * exchanges, qubits=exchanges)


def flag_arithmetic(m: int, assumptions: Assumptions) -> Counts:
    """The flag in the paper reading: two queries for the norms and the bias, ``Ybar`` from j
    (a table of ``sin^2(pi j / 2^m)``: ``2^m - 1`` Toffolis, Babbush et al. 2018), two products
    and the bias (``2 b^2 + b``), the cap (two comparators, ``2 b``), the angle
    ``arcsin sqrt(f / C)`` (a polynomial: four products, ``4 b^2``), then b controlled rotations
    (2 rotations each) by the angle's bits; the arithmetic is uncomputed (twice the Toffolis).
    Ancillas: five b-bit registers."""
    b = assumptions.fixed_point_bits
    toffoli = 2.0 * ((2**m - 1) + 6 * b * b + 3 * b)
    rot = float(2 * b)
    return Counts(toffoli=toffoli, rotations=rot, rotation_depth=rot, cx=rot, qubits=5.0 * b)


def flag_rotation(shape: LayerShape, m: int, reading: Reading, assumptions: Assumptions) -> Counts:
    """``P(flag = 1 | p, q, j) = f(Ybar_pq(j)) / C``: in the circuit reading one multiplexer
    over (p, q, j); in the paper reading the norm queries and :func:`flag_arithmetic`."""
    n_idx = index_qubits(shape.patches) + index_qubits(shape.kernels)
    if reading == "circuit":
        return multiplexer(n_idx + m)
    norms = qram_query(shape.patches, 1, assumptions) + qram_query(
        2 * shape.kernels, 1, assumptions
    )
    return norms + flag_arithmetic(m, assumptions)


def coherent_run(
    shape: LayerShape, m: int, k: int, reading: Reading, assumptions: Assumptions
) -> Counts:
    """``U``: H on the index registers, k AE runs (k evaluation registers), their median, the
    flag rotation. Qubits: index + control + data + k m + flag (+ ancillas of its parts)."""
    n = data_qubits(shape.volume)
    n_idx = index_qubits(shape.patches) + index_qubits(shape.kernels)
    prep = hadamard_test(shape, reading, assumptions)
    run = ae_run(prep, m, n)
    base = float(n_idx + 1 + n + k * m + 1)
    anc = max(
        mcx(1 + n).qubits,
        median_network(k, m).qubits,
        flag_rotation(shape, m, reading, assumptions).qubits,
    )
    body = Counts(h=float(n_idx)) + run.times(k).with_qubits(0.0) + median_network(k, m)
    body = body + flag_rotation(shape, m, reading, assumptions)
    return body.with_qubits(base + anc)


def index_fill(shape: LayerShape, reading: Reading) -> float:
    """The fraction of the index registers' basis states that are pixels: the flag's success
    probability is ``fill E[f] / C``. The circuit puts H on ``ceil log2`` qubits, so the padding
    indices (zero flag amplitude) dilute it: ``P Q / 2^(n_p + n_q)``; the paper's QRAM is taken
    to prepare the uniform superposition over exactly the ``P Q`` pixels (fill 1)."""
    if reading == "paper":
        return 1.0
    return shape.out_pixels / float(
        2 ** (index_qubits(shape.patches) + index_qubits(shape.kernels))
    )


def aa_rounds(mean_f: float, cap: float) -> int:
    """Rounds of amplitude amplification on a flag of amplitude ``E[f] / C``:
    ``floor(pi / (4 theta))`` with ``sin^2 theta = E[f] / C`` (about ``(pi/4) sqrt(C/E[f])``)."""
    if not 0 < mean_f <= cap:
        raise ValueError(f"E[f] must be in (0, C = {cap}], got {mean_f!r}")
    theta = math.asin(math.sqrt(mean_f / cap))
    return int(math.floor(math.pi / (4.0 * theta))) if theta < math.pi / 2 else 0


def aa_success_probability(mean_f: float, cap: float, rounds: int) -> float:
    """``sin^2((2r + 1) theta)``: one attempt of r rounds returns the flag."""
    theta = math.asin(math.sqrt(mean_f / cap))
    return math.sin((2 * rounds + 1) * theta) ** 2


@dataclass(frozen=True)
class AEPlan:
    """m and k of the layer's amplitude estimation, and where they come from."""

    bits: int  # m
    median: int  # k
    eps: float  # the IPE precision on a the bits give (pi / 2^m, or the bound)
    source: str


def ae_plan(config: QuantumConfig) -> AEPlan:
    """m and k as the config runs them: the AE model's (theory), or for the Gaussian model the
    AE that reaches its eps (the smallest m with ``pi / 2^m <= eps``, k = ``ae_median``)."""
    if config.ipe == "exact" or (config.effective_eps <= 0 and config.ae_bits is None):
        raise ValueError("the cost model needs an inner-product precision (eps > 0 or ae_bits)")
    if config.ipe == "amplitude_estimation":
        m = config.resolved_ae_bits
        assert m is not None  # validated by QuantumConfig
        return AEPlan(m, config.resolved_ae_median, config.effective_eps, "config (AE model)")
    as_ae = config.replace(ipe="amplitude_estimation")
    m = as_ae.resolved_ae_bits
    assert m is not None
    return AEPlan(m, as_ae.resolved_ae_median, as_ae.effective_eps, "AE reaching the Gaussian eps")


# -- the forward and backward pass --------------------------------------------------------------


def _rotation_accuracy(eps: float, rotations: float) -> float:
    return min(0.5, eps / max(rotations, 1.0))


def forward_costs(
    shape: LayerShape,
    config: QuantumConfig,
    mean_f: float,
    reading: Reading,
    *,
    batch: int = 64,
    assumptions: Assumptions | None = None,
) -> dict[str, Any]:
    """Counts of one forward pass of the layer: per shot, per image (shots as the emulator
    draws them, and ``36 ln d / eta^2`` for the eta guarantee) and per batch of ``batch``
    images, with every factor named. ``mean_f``: the layer's measured E[f] (per pixel)."""
    a = assumptions or Assumptions()
    plan = ae_plan(config)
    if not config.samples:
        raise ValueError(
            "the cost model needs sampling (sigma or eta): the output is read by shots"
        )
    m, k = plan.bits, plan.median
    d = shape.out_pixels
    run = coherent_run(shape, m, k, reading, a)
    fill = index_fill(shape, reading)
    rounds = aa_rounds(mean_f * fill, config.cap)
    p_ok = aa_success_probability(mean_f * fill, config.cap, rounds)
    runs_per_shot = (2 * rounds + 1) / p_ok
    # each round: U^dagger, U and the reflection about the initial state (an MCX over U's qubits)
    reflect = mcx(int(run.qubits) - 1).with_qubits(0.0)
    shot = run.times(runs_per_shot) + reflect.times(rounds / p_ok)
    n_idx = index_qubits(shape.patches) + index_qubits(shape.kernels)
    # measured per shot: the indices and the flag; notebook mode also reads the value register
    read = n_idx + 1 + (m if config.sampled_value == "exact" else 0)
    shot = shot + Counts(measurements=float(read))
    if config.sigma is not None:
        shots_used = max(1, int(config.sigma * d))
    else:
        assert config.eta is not None
        shots_used = tomography_shots(d, config.eta)
    eta = config.eta if config.eta is not None else a.eta_reference
    shots_eta = tomography_shots(d, eta)
    normaliser = Counts()
    if (
        config.sampled_value == "tomography"
        and config.tomography_normaliser == "amplitude_estimation"
    ):
        # AE of the flag's amplitude E[f]/C: k runs of 2^(m+1) - 1 applications of U (the
        # Grover iterate of amplitude amplification is U^dagger S_0 U S_flag), and the median
        m_n = config.ae_bits_any
        assert m_n is not None
        one = run.times(2 ** (m_n + 1) - 1) + reflect.times(2**m_n - 1)
        normaliser = one.times(k) + median_network(k, m_n)
        normaliser = normaliser.with_qubits(run.qubits + k * m_n)
    per_image = shot.times(shots_used) + normaliser
    per_image_eta = shot.times(shots_eta) + normaliser
    accuracy = _rotation_accuracy(plan.eps, shot.rotations)
    a_runs = 2 ** (m + 1) - 1
    factors = {
        "ae_bits": m,
        "ae_median_k": k,
        "ae_source": plan.source,
        "ipe_eps": plan.eps,
        "grover_iterations_per_ae_run": 2**m - 1,
        "preparations_per_ae_run": a_runs,
        "ae_runs_per_coherent_run": k,
        "aa_rounds": rounds,
        "aa_rounds_formula": (math.pi / 4) * math.sqrt(config.cap / (mean_f * fill)),
        "index_fill": fill,
        "aa_success_probability": p_ok,
        "coherent_runs_per_shot": runs_per_shot,
        "shots_used": shots_used,
        "shots_rule": "sigma d" if config.sigma is not None else "36 ln d / eta^2",
        "shots_for_eta": shots_eta,
        "eta": eta,
        "normaliser_ae": config.sampled_value == "tomography"
        and config.tomography_normaliser == "amplitude_estimation",
        "rotation_accuracy": accuracy,
        "t_per_rotation": rotation_t_count(accuracy, a),
        "ae_runs_per_image": k * runs_per_shot * shots_used,
        "grover_iterations_per_image": k * runs_per_shot * shots_used * (2**m - 1),
    }
    return {
        "reading": reading,
        "factors": factors,
        "preparation": hadamard_test(shape, reading, a).to_dict(),
        "coherent_run": run.to_dict(),
        "shot": shot.to_dict(),
        "normaliser": normaliser.to_dict(),
        "per_image": per_image.to_dict(),
        "per_image_eta": per_image_eta.to_dict(),
        "per_batch": per_image.times(batch).to_dict(),
        "batch": batch,
        "classical_per_image": shape.classical_forward,
        "classical_per_batch": shape.classical_forward * batch,
        "t_count_per_image": per_image.t_count(accuracy, a),
    }


def _qmm_state(
    mu_x: float,
    mu_y: float,
    kappa: float,
    entries: int,
    loads: float,
    reading: Reading,
    a: Assumptions,
) -> Counts:
    """One state ``|X Y>`` of the quantum matrix multiplication: ``(mu_X + mu_Y) kappa`` QRAM
    queries of rows of ``entries`` numbers (paper), or as many loads of ``loads`` amplitudes
    each as multiplexed RY trees, one RY + one CNOT per stored amplitude (circuit)."""
    calls = math.ceil((mu_x + mu_y) * kappa)
    if reading == "paper":
        return qram_query(entries, entries, a).times(calls)
    one = Counts(rotations=loads, rotation_depth=loads, cx=loads)
    return one.times(calls)


def backward_costs(
    shape: LayerShape,
    config: QuantumConfig,
    *,
    batch_params: dict[str, dict[str, float]],
    image_params: dict[str, dict[str, float]],
    batch: int,
    reading: Reading,
    input_gradient: bool = True,
    assumptions: Assumptions | None = None,
) -> dict[str, Any]:
    """Counts of the backward pass as the training loop runs it, per batch of ``batch`` images.

    ``batch_params``: mu and kappa (``matrix_parameters``) of the batch's stacked ``A``, ``dY``
    and of ``dF = A^T dY`` (the kernel gradient is read once per batch); ``image_params``: the
    per-image medians of ``dY``, ``F`` and ``dX = dY F^T`` (the gradient passed back, read per
    image when ``input_gradient``). Shots: ``36 ln d / delta^2``, doubled by the KP sign step;
    with ``gradient_norm='amplitude_estimation'`` each tensor's norm costs k AE runs of
    ``2^(m+1) - 1`` more states.
    """
    a = assumptions or Assumptions()
    if config.delta <= 0:
        raise ValueError("the backward cost model needs delta > 0 (36 ln d / delta^2 shots)")
    signs = 2 if config.gradient_signs == "kp" else 1
    # theory v2: each tensor's norm estimated by AE (k runs of 2^(m+1) - 1 state preparations)
    norm_ae = config.gradient_norm_ae
    norm_states = 0 if norm_ae is None else norm_ae[1] * (2 ** (norm_ae[0] + 1) - 1)
    v, q, pq = shape.volume, shape.kernels, shape.patches
    d_f = v * q
    shots_f = tomography_shots(d_f, config.delta) * signs
    pa, pdy, pdf = batch_params["A"], batch_params["dY"], batch_params["dF"]
    state_f = _qmm_state(
        pa["mu"], pdy["mu"], pdf["kappa"], batch * pq * v, float(batch * pq * (v + q)), reading, a
    )
    kernel = state_f.times(shots_f + norm_states)
    bias = Counts()
    shots_b = 0
    if shape.bias:  # dL/db = dY^T 1: a product with the all-ones vector (mu 1, kappa 1)
        shots_b = tomography_shots(q, config.delta) * signs
        state_b = _qmm_state(pdy["mu"], 1.0, 1.0, batch * pq * q, float(batch * pq * q), reading, a)
        bias = state_b.times(shots_b + norm_states)
    per_batch = kernel + bias
    shots_x = 0
    inputs = Counts()
    if input_gradient:
        pdy_i, pf, pdx = image_params["dY"], image_params["F"], image_params["dX"]
        shots_x = tomography_shots(max(shape.input_size, 2), config.delta) * signs
        state_x = _qmm_state(
            pdy_i["mu"], pf["mu"], pdx["kappa"], pq * q + v * q, float(pq * q + v * q), reading, a
        )
        inputs = state_x.times(shots_x + norm_states)
        per_batch = per_batch + inputs.times(batch)
    model_formula = (
        (image_params.get("A", pa)["mu"] + image_params["dY"]["mu"]) * image_params["dF"]["kappa"]
        + ((image_params["dY"]["mu"] + image_params["F"]["mu"]) * image_params["dX"]["kappa"])
    ) / config.delta**2
    return {
        "reading": reading,
        "factors": {
            "delta": config.delta,
            "sign_step_factor": signs,
            "norm_ae_states_per_tensor": norm_states,
            "kernel_gradient_entries": d_f,
            "kernel_gradient_shots_per_batch": shots_f,
            "kernel_gradient_queries_per_shot": math.ceil((pa["mu"] + pdy["mu"]) * pdf["kappa"]),
            "bias_gradient_shots_per_batch": shots_b,
            "input_gradient": input_gradient,
            "input_gradient_entries": shape.input_size,
            "input_gradient_shots_per_image": shots_x,
            "input_gradient_queries_per_shot": (
                math.ceil(
                    (image_params["dY"]["mu"] + image_params["F"]["mu"])
                    * image_params["dX"]["kappa"]
                )
                if input_gradient
                else 0
            ),
            "model_formula_per_image": model_formula,
        },
        "kernel_gradient": kernel.to_dict(),
        "bias_gradient": bias.to_dict(),
        "input_gradient_per_image": inputs.to_dict(),
        "per_batch": per_batch.to_dict(),
        "per_image": per_batch.times(1.0 / batch).to_dict(),
        "batch": batch,
        "classical_per_batch": shape.classical_backward(input_gradient) * batch,
        "classical_per_image": shape.classical_backward(input_gradient),
    }
