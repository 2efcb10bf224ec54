"""The coherent circuit of a quantum convolution layer (``qcnn.circuits.coherent``) is the
emulator's algorithm: exact checks from the statevector, a chi-square check of shots, mutations.

Exact (tolerance 1e-9), on 8x8 digits (``--dataset digits``) with 3x3 kernels, 2-4 kernels,
m = 3..5, several seeds, with a bias:

- the evaluation register's law given (p, q) equals ``ae_outcome_probabilities`` (every pair
  whose patch is not zero; a zero patch has no Hadamard-test state and its value is the bias);
- ``P(p, q | flag = 1)`` equals the emulator's per-shot pixel law
  (:func:`qcnn.quantum.output_law.ae_output_law`: ``E[f] / sum E[f]``), and so does the joint
  law of ``(p, q, J)`` given flag = 1, folded as the emulator's J;
- the sampler of the emulator (``sample_per_shot``) reads its estimate map from the same module.

Mutations that must fail the exact check: a wrong angle in one loader level, swapped p/q
registers, one Grover power without its control, the paper noise order.

Statistical: 20,000 shots of the emulator's per-shot sampler against the circuit's exact law,
chi-square at alpha = 1e-3; the test states its power against the paper-order law (computed from
the noncentral chi-square, asserted >= 0.99) and checks that it rejects shots of that law.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qiskit")
pytest.importorskip("qiskit_aer")
stats = pytest.importorskip("scipy.stats")

from qcnn.circuits.coherent import (  # noqa: E402
    LOADERS,
    MUTATIONS,
    amplified_circuit,
    build_coherent_circuit,
    coherent_law,
    coherent_output_distribution,
)
from qcnn.quantum import QuantumConfig, ae_outcome_probabilities  # noqa: E402
from qcnn.quantum.output_law import ae_output_law, conv_products  # noqa: E402
from qcnn.quantum.per_shot import ShotProblem, sample_per_shot  # noqa: E402

pytestmark = pytest.mark.circuits
TOL = 1e-9


def _digit(index: int) -> np.ndarray:
    pytest.importorskip("sklearn")
    from qcnn.data.registry import load_dataset

    data = load_dataset("digits", train_size=8, test_size=1, dtype=np.float64)
    return np.asarray(data.x_train[index], dtype=np.float64)  # (1, 8, 8), normalised


def _case(kernels: int, seed: int, index: int = 0):
    rng = np.random.default_rng(seed)
    x = _digit(index)
    weight = rng.normal(size=(kernels, 1, 3, 3)) / 3.0
    bias = rng.normal(size=kernels) * 0.5
    return x, weight, bias


def _config(m: int, cap: float = 2.0, **kw) -> QuantumConfig:
    return QuantumConfig(ipe="amplitude_estimation", noise_order="theory", ae_bits=m, cap=cap, **kw)


def _reference(x, weight, bias, m, cap, shift_extra=None):
    y_nb, scale, hw = conv_products(x, weight)
    shift = np.broadcast_to(bias[:, None], y_nb.shape).astype(np.float64)
    if shift_extra is not None:
        shift = shift + shift_extra
    return ae_output_law(y_nb, scale, shift, cap, m), y_nb, scale, hw


def _exact_errors(law, x, weight, bias, m, cap) -> dict[str, float]:
    ref, y_nb, scale, hw = _reference(x, weight, bias, m, cap)
    o = weight.shape[0]
    cos_sim = np.divide(y_nb, scale, out=np.zeros_like(y_nb), where=scale > 0)
    theta = np.arcsin(np.sqrt(np.clip((1.0 - cos_sim) / 2.0, 0.0, 1.0))) / np.pi
    live = scale > 0
    ae = ae_outcome_probabilities(theta, m)
    return {
        "ae": float(np.abs(law.ae_law()[live] - ae[live]).max()),
        "pixels": float(np.abs(law.output_distribution() - ref.pixel_law().reshape(o, *hw)).max()),
        "joint": float(
            np.abs(
                law.folded_joint_given_flag() - ref.joint().reshape(o, -1, ref.joint().shape[-1])
            ).max()
        ),
    }


@pytest.mark.parametrize(
    ("kernels", "m", "seed", "index", "loader"),
    [
        (2, 3, 0, 0, "joint"),
        (3, 3, 8, 4, "split"),
        pytest.param(3, 4, 1, 3, "joint", marks=pytest.mark.slow),
        pytest.param(4, 5, 2, 5, "joint", marks=pytest.mark.slow),
        pytest.param(4, 4, 9, 6, "split", marks=pytest.mark.slow),
        (4, 4, 3, 7, "joint"),
    ],
)
def test_circuit_law_equals_emulator_law(kernels, m, seed, index, loader):
    x, weight, bias = _case(kernels, seed, index)
    cap = 2.0
    cc = build_coherent_circuit(x, weight, bias, _config(m, cap), loader=loader)
    assert cc.layout.num_qubits == 6 + (kernels - 1).bit_length() + 1 + 4 + m + 1
    law = coherent_law(cc)
    err = _exact_errors(law, x, weight, bias, m, cap)
    assert max(err.values()) < TOL, err
    dist = law.output_distribution()
    assert dist.shape == (kernels, 6, 6)
    assert dist.sum() == pytest.approx(1.0, abs=1e-12)
    # the flag's success probability is the mean of E[f] / C over every index state
    ref = _reference(x, weight, bias, m, cap)[0]
    n_idx = 1 << (cc.layout.size("p") + cc.layout.size("q"))
    assert law.flag_probability == pytest.approx(ref.mean_f.sum() / cap / n_idx, abs=TOL)


def test_public_entry_point_and_eps_derived_bits():
    x, weight, bias = _case(2, 4)
    cfg = QuantumConfig(ipe="amplitude_estimation", noise_order="theory", eps=0.4, cap=10.0)
    m = cfg.resolved_ae_bits
    assert m == 3
    dist = coherent_output_distribution(x, weight, bias, cfg)
    ref = _reference(x, weight, bias, m, 10.0)[0]
    assert np.abs(dist - ref.pixel_law().reshape(dist.shape)).max() < TOL


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (dict(ipe="gaussian"), "ipe"),
        (dict(noise_order="paper"), "noise_order"),
        (dict(ae_median=3), "ae_median"),
        (dict(failure_prob=0.01, eps=0.3), "failure_prob"),
    ],
)
def test_refuses_other_models(change, field):
    x, weight, bias = _case(2, 0)
    base = dict(ipe="amplitude_estimation", noise_order="theory", ae_bits=3)
    cfg = QuantumConfig(**{**base, **change, **({"ae_bits": None} if "eps" in change else {})})
    with pytest.raises(ValueError, match=field):
        coherent_output_distribution(x, weight, bias, cfg)


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_mutations_fail_the_exact_check(mutation, loader):
    x, weight, bias = _case(2, 5, 2)
    m, cap = 3, 2.0
    cc = build_coherent_circuit(x, weight, bias, _config(m, cap), loader=loader, mutation=mutation)
    law = coherent_law(cc)
    err = _exact_errors(law, x, weight, bias, m, cap)
    assert max(err.values()) > 1e-4, (mutation, err)


def _paper_shift(x, weight, bias, cap):
    y_nb, _, _ = conv_products(x, weight)
    y = y_nb + bias[:, None]
    return np.clip(y, 0.0, cap) - y


def test_sampler_shots_agree_with_circuit_law_chi_square():
    """20,000 shots of ``sample_per_shot`` vs the circuit's exact pixel law (chi-square on the
    pixels with expected count >= 5, the rest pooled), alpha = 1e-3. Power: against the paper-
    order law the noncentral chi-square gives power >= 0.99 at this N (asserted), and shots of
    that law are rejected."""
    x, weight, bias = _case(2, 6, 1)
    m, cap, shots = 3, 2.0, 20_000
    cfg = _config(m, cap, noise_per_shot=True)
    p_circ = (
        coherent_law(build_coherent_circuit(x, weight, bias, cfg)).output_distribution().ravel()
    )
    y_nb, scale, _ = conv_products(x, weight)
    b = np.broadcast_to(bias[:, None], y_nb.shape)
    problem = ShotProblem(y_nb.reshape(1, -1), b.reshape(1, -1), scale.reshape(1, -1))
    ps = sample_per_shot(problem, cfg, shots, np.random.default_rng(np.random.SeedSequence(15)))
    counts = ps.counts[0]
    assert counts.sum() == shots

    def chi2_p(obs: np.ndarray, p: np.ndarray) -> float:
        big = p * shots >= 5
        o = np.append(obs[big], obs[~big].sum())
        e = np.append(p[big], p[~big].sum()) * shots
        keep = e > 0
        return float(stats.chisquare(o[keep], e[keep]).pvalue)

    alpha = 1e-3
    assert chi2_p(counts, p_circ) > alpha
    # power against the paper-order law
    alt = ae_output_law(y_nb, scale, b + _paper_shift(x, weight, bias, cap), cap, m).pixel_law()
    big = p_circ * shots >= 5
    pe, pa = np.append(p_circ[big], p_circ[~big].sum()), np.append(alt[big], alt[~big].sum())
    dof = int((pe > 0).sum()) - 1
    lam = shots * float(((pa - pe)[pe > 0] ** 2 / pe[pe > 0]).sum())
    power = float(stats.ncx2.sf(stats.chi2.isf(alpha, dof), dof, lam))
    assert power >= 0.99, power
    alt_counts = np.random.default_rng(16).multinomial(shots, alt)
    assert chi2_p(alt_counts, p_circ) < alpha


def test_amplitude_amplification_keeps_the_law():
    """A real amplitude amplification on a small instance (6x6 input, 16 patches, 2 kernels,
    m = 3; 14 qubits): P(flag = 1) becomes sin^2((2r + 1) theta) and the law of the pixels given
    flag = 1 is unchanged."""
    rng = np.random.default_rng(7)
    x = rng.random((1, 6, 6))
    weight = rng.normal(size=(2, 1, 3, 3)) / 3.0
    bias = np.array([0.1, -0.2])
    cc = build_coherent_circuit(x, weight, bias, _config(3, 4.0))
    law = coherent_law(cc)
    rounds = law.amplification_rounds
    assert rounds >= 1
    from qiskit_aer import AerSimulator
    from qiskit_aer.library import SaveProbabilities

    from qcnn.circuits.coherent import CoherentCircuit, CoherentLaw

    amp = amplified_circuit(cc, rounds)
    law2 = coherent_law(CoherentCircuit(amp, cc.layout, cc.values, cc.loader), AerSimulator())
    assert isinstance(law2, CoherentLaw) and SaveProbabilities is not None
    theta = np.arcsin(np.sqrt(law.flag_probability))
    assert law2.flag_probability == pytest.approx(np.sin((2 * rounds + 1) * theta) ** 2, abs=TOL)
    assert law2.flag_probability > 0.5
    assert np.abs(law2.output_distribution() - law.output_distribution()).max() < TOL


def test_stats_report_sizes():
    x, weight, bias = _case(4, 0)
    cc = build_coherent_circuit(x, weight, bias, _config(4), loader="joint")
    s = cc.stats()
    assert s["qubits"] == 18
    # U: 4 levels; 15 Grover iterations with U and U^dagger; the first U; the flag
    assert s["ops"]["multiplexer"] == 4 + 15 * 2 * 4 + 1
    assert s["ops"]["diagonal"] == 15 and s["ops"]["cz"] == 15 and s["ops"]["h"] == 78
    assert cc.cx_count() == 243_139  # the formulas of docs/circuits.md
    split = build_coherent_circuit(x, weight, bias, _config(4))  # the default loader
    assert split.stats()["ops"]["multiplexer"] == 2 * 4 * 31 + 1
    assert split.cx_count() == 68_299
    assert split.stats()["multiplexer_branches"] < s["multiplexer_branches"]
    assert "p: qubits 0..5" in cc.layout.describe()
