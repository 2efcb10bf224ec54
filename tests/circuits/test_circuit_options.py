"""The circuit functions validate their options, report what they ran, and work by scale.

Misuse class (docs/reliability.md, "API misuse"): an unknown loader, ``ae_bits`` < 1 or beyond
what a simulator holds, an even ``median_of``, an option the method does not use, and numpy
integer types where a Python int is accepted. Scale class: vectors whose entries are ~1e-200
(whose squared norm underflows) or ~1e200 (overflows) are encoded exactly like the same vectors
at unit scale.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qiskit")
pytest.importorskip("qiskit_aer")

from qcnn.circuits import (  # noqa: E402
    CircuitExecutor,
    InnerProductEstimator,
    amplitude_encode,
    estimate_inner_product,
    hadamard_test_circuit,
    sample_pixels_circuit,
)
from qcnn.circuits.encoding import normalise_rows  # noqa: E402
from qcnn.circuits.sampling import output_state_circuit  # noqa: E402

pytestmark = pytest.mark.circuits

A = np.array([0.3, -1.2, 0.5, 2.0, 0.1])
B = np.array([1.0, 0.4, -0.7, 0.2, 0.9])


BAD_OPTIONS = {
    "unknown loader": (dict(loader="qram"), "loader"),
    "unknown method": (dict(method="swap_test"), "method"),
    "ae_bits 0": (dict(method="amplitude_estimation", ae_bits=0), "ae_bits"),
    "ae_bits -3": (dict(method="amplitude_estimation", ae_bits=-3), "ae_bits"),
    "ae_bits 17": (dict(method="amplitude_estimation", ae_bits=17), "ae_bits"),
    "ae_bits 2.5": (dict(method="amplitude_estimation", ae_bits=2.5), "ae_bits"),
    "ae_bits True": (dict(method="amplitude_estimation", ae_bits=True), "ae_bits"),
    "median_of 2": (dict(method="amplitude_estimation", median_of=2), "median_of"),
    "median_of 0": (dict(method="amplitude_estimation", median_of=0), "median_of"),
    "median_of -1": (dict(method="amplitude_estimation", median_of=-1), "median_of"),
    "ae_bits with hadamard": (dict(method="hadamard", ae_bits=5), "ae_bits"),
    "median_of with hadamard": (dict(method="hadamard", median_of=3), "median_of"),
    "shots 0": (dict(method="hadamard", shots=0), "shots"),
    "shots 2.5": (dict(method="hadamard", shots=2.5), "shots"),
    "shots with AE": (dict(method="amplitude_estimation", shots=100), "median_of"),
}


@pytest.mark.parametrize("name", sorted(BAD_OPTIONS))
def test_estimate_inner_product_refuses_bad_options(name):
    kwargs, word = BAD_OPTIONS[name]
    with pytest.raises(ValueError, match=word):
        estimate_inner_product(A, B, seed=0, decompose=False, **kwargs)


def test_bad_loader_is_refused_before_any_circuit_is_built():
    with pytest.raises(ValueError, match="loader"):
        hadamard_test_circuit(A, B, loader="qram")


def test_estimator_does_not_turn_ae_bits_0_into_the_default():
    with pytest.raises(ValueError, match="ae_bits"):
        InnerProductEstimator(9, "amplitude_estimation", 0)
    with pytest.raises(ValueError, match="median_of"):
        InnerProductEstimator(9, "amplitude_estimation", 3).estimate_probability(
            np.eye(16)[:1], np.eye(16)[:1], median_of=4
        )


def test_result_reports_the_settings_that_ran():
    r = estimate_inner_product(A, B, seed=0, decompose=False)
    assert (r.method, r.shots, r.ae_bits, r.median_of, r.loader) == (
        "hadamard",
        1024,
        None,
        1,
        "ry_tree",
    )
    assert sum(r.counts.values()) == 1024
    r = estimate_inner_product(A, B, method="amplitude_estimation", seed=0, decompose=False)
    assert (r.shots, r.ae_bits, r.median_of) == (1, 4, 1)
    assert r.qubits == 4 + 1 + 3


def test_numpy_integers_are_accepted_and_reported_as_int():
    r = estimate_inner_product(
        A,
        B,
        method="amplitude_estimation",
        ae_bits=np.int64(3),
        median_of=np.int32(3),
        seed=0,
        decompose=False,
    )
    assert r.ae_bits == 3 and type(r.ae_bits) is int
    assert r.median_of == 3 and type(r.median_of) is int
    r = estimate_inner_product(A, B, shots=np.int64(100), seed=0, decompose=False)
    assert r.shots == 100 and type(r.shots) is int
    ex = CircuitExecutor(
        shots=np.int64(64), ae_bits=np.int16(3), median_of=np.int64(1), sample_shots=np.uint8(5)
    )
    assert (ex.shots, ex.ae_bits, ex.median_of, ex.sample_shots) == (64, 3, 1, 5)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(median_of=2), "median_of"),
        (dict(ae_bits=0), "ae_bits"),
        (dict(shots=0), "shots"),
        (dict(sample_shots=-1), "sample_shots"),
        (dict(max_batch=0), "max_batch"),
        (dict(method="swap"), "method"),
    ],
)
def test_circuit_executor_refuses_bad_options(kwargs, word):
    with pytest.raises(ValueError, match=word):
        CircuitExecutor(**kwargs)


@pytest.mark.parametrize("scale", [1e-200, 1e-170, 1e170, 1e200])
def test_tiny_and_huge_vectors_are_encoded_by_scale(scale):
    ref = amplitude_encode(A)
    enc = amplitude_encode(A * scale)
    np.testing.assert_allclose(enc.state, ref.state, rtol=1e-14, atol=1e-16)
    assert enc.norm == pytest.approx(ref.norm * scale, rel=1e-14)
    states, norms = normalise_rows(np.stack([A * scale, np.zeros(5), A]))
    np.testing.assert_allclose(states[0], ref.state, rtol=1e-14, atol=1e-16)
    assert norms[0] == pytest.approx(ref.norm * scale, rel=1e-14)
    assert norms[1] == 0.0 and not states[1].any()  # only an exact zero row is zero


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_estimate_inner_product_of_tiny_or_huge_vectors(scale):
    ref = estimate_inner_product(A, B, seed=3, decompose=False)
    r = estimate_inner_product(A * scale, B, seed=3, decompose=False)
    assert r.probability == pytest.approx(ref.probability, abs=1e-12)
    assert r.a_hat == ref.a_hat  # same state, same seed: same counts
    assert r.norm_a == pytest.approx(ref.norm_a * scale, rel=1e-12)
    assert np.isfinite(r.estimate) and r.estimate == pytest.approx(ref.estimate * scale, rel=1e-9)


def test_tiny_output_states_are_sampled_not_taken_for_zero():
    values = np.array([[0.0, 1e-200, 3e-200, 0.0]])
    counts = sample_pixels_circuit(values, 400, power=2, seed=1)
    assert counts.sum() == 400 and counts[0, 0] == counts[0, 3] == 0
    assert counts[0, 2] > counts[0, 1]  # 9:1 odds
    qc, total = output_state_circuit(values[0] * 1e100, power=1)
    assert total == pytest.approx(4e-100)
