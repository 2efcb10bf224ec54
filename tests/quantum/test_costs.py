"""Logical cost counts (qcnn.quantum.costs): hand counts on tiny instances, and one test per
factor the first cost model missed, each failing if that factor is dropped.

Independent references: counts written out by hand for P = Q = 2, V = 4 (no formula of the
module reused), ``math`` for the shot and round laws. The cross-checks against Qiskit circuits
are in tests/circuits/test_costs_circuits.py.
"""

from __future__ import annotations

import math

import pytest

from qcnn.quantum import QuantumConfig
from qcnn.quantum.costs import (
    Assumptions,
    Counts,
    LayerShape,
    aa_rounds,
    ae_plan,
    ae_run,
    backward_costs,
    coherent_run,
    data_qubits,
    forward_costs,
    hadamard_test,
    index_qubits,
    mcx,
    median_network,
    multiplexer,
    rotation_t_count,
)

TINY = LayerShape(patches=2, kernels=2, volume=4, input_size=9)
A0 = Assumptions()


def test_register_sizes():
    assert [index_qubits(s) for s in (1, 2, 3, 4, 5, 484)] == [0, 1, 2, 2, 3, 9]
    assert [data_qubits(v) for v in (1, 2, 4, 5, 49, 245)] == [1, 1, 2, 3, 6, 8]


def test_hadamard_test_by_hand_circuit_reading():
    # data qubits 2, index qubits 1 + 1; level 0: controls ctrl + p + q = 3 -> 8 RY, 8 CX;
    # level 1: + one data qubit = 4 controls -> 16 RY, 16 CX; 2 H; qubits 1 + 2 + 2 = 5
    c = hadamard_test(TINY, "circuit", A0)
    assert (c.rotations, c.cx, c.h, c.qubits, c.qram_queries) == (24, 24, 2, 5, 0)


def test_split_and_joint_loaders_by_hand():
    # P = 4 (2 index qubits), Q = 2 (1), V = 4 (2 data qubits)
    shape = LayerShape(patches=4, kernels=2, volume=4)
    # joint: level 0 over ctrl + p + q = 4 controls -> 16 RY, level 1: 5 controls -> 32
    assert hadamard_test(shape, "circuit", Assumptions(circuit_loader="joint")).rotations == 48
    # split: level 0: ctrl + p (3) -> 8 and ctrl + q (2) -> 4; level 1: 16 and 8
    assert hadamard_test(shape, "circuit", Assumptions(circuit_loader="split")).rotations == 36
    assert Assumptions().circuit_loader == "split"  # the coherent circuit's default


def test_hadamard_test_by_hand_paper_reading():
    # two queries: A (P V = 8 numbers: log2 = 3 -> 9 Toffolis), F (V Q = 8: 9); 2 rotations each
    c = hadamard_test(TINY, "paper", A0)
    assert (c.qram_queries, c.toffoli, c.rotations, c.h) == (2, 18, 4, 2)


def test_ae_run_by_hand():
    # m = 2: A, then 3 controlled Grover iterates (2 A each and an MCX with 1 + 2 controls = 2
    # ANDs), inverse QFT on 2 qubits: one controlled phase = 3 rotations
    c = ae_run(hadamard_test(TINY, "circuit", A0), 2, data_qubits(4))
    assert c.rotations == 7 * 24 + 3
    assert c.ands == 3 * 2 and c.measurements == 6
    assert c.qubits == 5 + 2


def test_building_blocks_by_hand():
    assert multiplexer(0) == Counts(rotations=1, rotation_depth=1)
    assert multiplexer(3).rotations == 8 and multiplexer(3).cx == 8
    assert mcx(1) == Counts(cx=1) and mcx(5).ands == 4 and mcx(5).qubits == 3
    assert median_network(1, 9) == Counts()
    assert median_network(3, 4).toffoli == 3 * 3 * 4  # 3 compare-exchanges of 3 m Toffolis
    assert rotation_t_count(2**-10) == 30


def test_coherent_run_by_hand_circuit_reading():
    # U = H on 2 index qubits + one AE run (m = 2, k = 1) + flag multiplexer over (p, q, j):
    # 2 + 2 = 4 controls -> 16 RY
    c = coherent_run(TINY, 2, 1, "circuit", A0)
    assert c.rotations == 7 * 24 + 3 + 16
    # qubits: 2 index + ctrl + 2 data + m + flag = 8, + the MCX's 1 ancilla
    assert c.qubits == 9


def _paper_queries_per_shot(m: int, k: int) -> float:
    # per run of U: k AE runs of 2^(m+1) - 1 preparations of 2 queries each, + 2 norm queries
    return k * (2 ** (m + 1) - 1) * 2 + 2


@pytest.mark.parametrize("mean_f", [0.3, 1.0, 4.0])
def test_forward_queries_equal_the_product_of_every_factor(mean_f):
    cfg = QuantumConfig.paper(eps=0.1, cap=10.0, sigma=0.5)
    out = forward_costs(TINY, cfg, mean_f, "paper", batch=3)
    fac = out["factors"]
    theta = math.asin(math.sqrt(mean_f / 10.0))
    r = math.floor(math.pi / (4 * theta))
    runs = (2 * r + 1) / math.sin((2 * r + 1) * theta) ** 2
    m = next(b for b in range(1, 30) if math.pi / 2**b <= 0.1)
    shots = int(0.5 * 4)
    assert fac["ae_bits"] == m and fac["aa_rounds"] == r and fac["shots_used"] == shots
    expected = shots * runs * _paper_queries_per_shot(m, 1)
    assert out["per_image"]["qram_queries"] == pytest.approx(expected, rel=1e-12)
    assert out["per_batch"]["qram_queries"] == pytest.approx(3 * expected, rel=1e-12)


def test_factor_2_to_the_m_queries_per_ae_run():
    """One more AE bit doubles the queries (2^(m+1) - 1 preparations per run), not 1/eps."""
    q = [
        forward_costs(TINY, QuantumConfig.paper().replace(ae_bits=None, eps=e), 1.0, "paper")
        for e in (0.1, 0.05)
    ]
    m0, m1 = q[0]["factors"]["ae_bits"], q[1]["factors"]["ae_bits"]
    assert m1 == m0 + 1
    per = [x["per_image"]["qram_queries"] / x["factors"]["coherent_runs_per_shot"] for x in q]
    assert per[1] / per[0] == pytest.approx(
        _paper_queries_per_shot(m1, 1) / _paper_queries_per_shot(m0, 1)
    )


def test_factor_median_k():
    """Theory mode: k AE runs per coherent run (k = 11 at Delta = 0.01)."""
    theory = QuantumConfig.theory()
    plan = ae_plan(theory)
    assert plan.median == 11 and plan.bits == 9
    out = forward_costs(TINY, theory, 1.0, "paper")
    shot = out["shot"]["qram_queries"] / out["factors"]["coherent_runs_per_shot"]
    assert shot == pytest.approx(_paper_queries_per_shot(9, 11))
    assert out["factors"]["ae_runs_per_image"] == pytest.approx(
        11 * out["factors"]["coherent_runs_per_shot"] * out["factors"]["shots_used"]
    )


def test_factor_amplitude_amplification_rounds():
    """A shot costs (2r + 1) / sin^2((2r + 1) theta) runs of U, r ~ (pi/4) sqrt(C / E[f])."""
    assert aa_rounds(10.0, 10.0) == 0
    assert aa_rounds(0.01, 10.0) == math.floor(math.pi / (4 * math.asin(math.sqrt(0.001))))
    assert aa_rounds(0.01, 10.0) == pytest.approx((math.pi / 4) * math.sqrt(1000), abs=1)
    cfg = QuantumConfig.paper()
    lo, hi = (forward_costs(TINY, cfg, f, "paper")["shot"]["qram_queries"] for f in (0.01, 2.5))
    assert lo / hi > 10  # ~ sqrt(250) more rounds at E[f] = 0.01 than at 2.5


def test_factor_shots_for_eta():
    """36 ln d / eta^2 shots for the eta guarantee, beside the sigma d the emulator draws."""
    shape = LayerShape(256, 10, 245, 2420)
    out = forward_costs(shape, QuantumConfig.paper(), 1.7, "paper")
    assert out["factors"]["shots_used"] == 1280
    assert out["factors"]["shots_for_eta"] == math.ceil(36 * math.log(2560) / 0.01)
    ratio = out["per_image_eta"]["qram_queries"] / out["per_image"]["qram_queries"]
    assert ratio == pytest.approx(math.ceil(36 * math.log(2560) / 0.01) / 1280)


def test_theory_normaliser_adds_one_amplitude_estimation_of_the_flag():
    cfg = QuantumConfig.theory()
    out = forward_costs(TINY, cfg, 1.0, "paper")
    u = out["coherent_run"]["qram_queries"]
    # k runs of 2^(m+1) - 1 applications of U
    assert out["normaliser"]["qram_queries"] == pytest.approx(11 * (2**10 - 1) * u)
    no_norm = cfg.replace(tomography_normaliser="exact")
    assert forward_costs(TINY, no_norm, 1.0, "paper")["normaliser"]["qram_queries"] == 0


def _params(mu: float, kappa: float) -> dict[str, float]:
    return {"mu": mu, "kappa": kappa}


BATCH = {"A": _params(2.0, 5.0), "dY": _params(1.5, 3.0), "dF": _params(1.0, 4.0)}
IMAGE = {
    "A": _params(2.0, 5.0),
    "dY": _params(1.2, 3.0),
    "F": _params(1.1, 2.0),
    "dF": _params(1.0, 3.0),
    "dX": _params(1.0, 6.0),
}


def test_backward_tomography_shots_and_sign_step():
    """36 ln d / delta^2 shots (the factor the first model dropped), twice with KP signs."""
    cfg = QuantumConfig.paper(delta=0.1)
    kw = dict(batch_params=BATCH, image_params=IMAGE, batch=8, reading="paper")
    out = backward_costs(TINY, cfg, **kw)
    d_f = 4 * 2
    shots = 2 * math.ceil(36 * math.log(d_f) / 0.01)
    assert out["factors"]["kernel_gradient_shots_per_batch"] == shots
    per_shot = math.ceil((2.0 + 1.5) * 4.0)  # (mu(A) + mu(dY)) kappa(dF) queries
    assert out["kernel_gradient"]["qram_queries"] == shots * per_shot
    exact = backward_costs(TINY, cfg.replace(gradient_signs="exact"), **kw)
    assert exact["factors"]["kernel_gradient_shots_per_batch"] == shots // 2
    # the gradient passed back: per image, 36 ln(9) / delta^2 shots (x2), (1.2 + 1.1) * 6 queries
    shots_x = 2 * math.ceil(36 * math.log(9) / 0.01)
    assert out["input_gradient_per_image"]["qram_queries"] == shots_x * math.ceil(2.3 * 6.0)


def test_kernel_gradient_is_read_once_per_batch():
    cfg = QuantumConfig.paper(delta=0.1)
    one, many = (
        backward_costs(
            TINY,
            cfg,
            batch_params=BATCH,
            image_params=IMAGE,
            batch=b,
            reading="paper",
            input_gradient=False,
        )
        for b in (1, 64)
    )
    assert many["kernel_gradient"]["qram_queries"] == one["kernel_gradient"]["qram_queries"]
    assert many["per_image"]["qram_queries"] == pytest.approx(one["per_image"]["qram_queries"] / 64)
    assert many["classical_per_batch"] == 64 * one["classical_per_batch"]
    with_x = backward_costs(
        TINY, cfg, batch_params=BATCH, image_params=IMAGE, batch=64, reading="paper"
    )
    extra = with_x["per_batch"]["qram_queries"] - many["per_batch"]["qram_queries"]
    assert extra == 64 * with_x["input_gradient_per_image"]["qram_queries"]


def test_circuit_reading_grows_with_the_data_paper_reading_does_not():
    cfg = QuantumConfig.paper()
    small, big = LayerShape(256, 10, 64), LayerShape(256, 10, 64 * 1024)
    rot = {
        r: [forward_costs(s, cfg, 1.0, r)["per_image"]["rotations"] for s in (small, big)]
        for r in ("paper", "circuit")
    }
    # the loaders' 2^c branches: (2^16 - 1) / (2^6 - 1) more rotations per preparation; the
    # flag multiplexer and the inverse QFT do not grow
    assert rot["circuit"][1] / rot["circuit"][0] == pytest.approx(1024, rel=0.1)
    assert rot["paper"][1] / rot["paper"][0] < 16 / 6  # only log2 V (6 -> 16 tree levels)


def test_refuses_what_it_cannot_count():
    with pytest.raises(ValueError, match="sampling"):
        forward_costs(TINY, QuantumConfig.paper().replace(sigma=None), 1.0, "paper")
    with pytest.raises(ValueError, match="precision"):
        forward_costs(TINY, QuantumConfig.exact(), 1.0, "paper")
    with pytest.raises(ValueError, match="E\\[f\\]"):
        forward_costs(TINY, QuantumConfig.paper(), 0.0, "paper")
    with pytest.raises(ValueError, match="reading"):
        hadamard_test(TINY, "qpu", A0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delta"):
        backward_costs(
            TINY,
            QuantumConfig.paper(delta=0.0),
            batch_params=BATCH,
            image_params=IMAGE,
            batch=1,
            reading="paper",
        )


def test_estimator_counts_are_integers_for_the_estimator():
    c = forward_costs(TINY, QuantumConfig.theory(), 1.0, "circuit")["shot"]
    d = Counts(**c).estimator_counts()
    assert set(d) == {
        "numQubits",
        "rotationCount",
        "rotationDepth",
        "cczCount",
        "ccixCount",
        "measurementCount",
        "tCount",
    }
    assert all(isinstance(v, int) and v >= 0 for v in d.values())


def test_gradient_norm_amplitude_estimation_adds_k_runs_per_tensor():
    """Theory v2 estimates each gradient's norm by AE: k (2^(m+1) - 1) more states a tensor."""
    cfg = QuantumConfig.paper(delta=0.1)
    with_ae = QuantumConfig.theory().replace(delta=0.1)
    assert with_ae.gradient_norm_ae == (9, 11)
    kw = dict(batch_params=BATCH, image_params=IMAGE, batch=1, reading="paper")
    exact = backward_costs(TINY, with_ae.replace(gradient_norm="exact"), **kw)
    est = backward_costs(TINY, with_ae, **kw)
    states = 11 * (2**10 - 1)
    assert est["factors"]["norm_ae_states_per_tensor"] == states
    per_state = math.ceil((2.0 + 1.5) * 4.0)
    extra = est["kernel_gradient"]["qram_queries"] - exact["kernel_gradient"]["qram_queries"]
    assert extra == states * per_state
    assert backward_costs(TINY, cfg, **kw)["factors"]["norm_ae_states_per_tensor"] == 0
