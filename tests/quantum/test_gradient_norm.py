"""The tomography's norm ``||g||_2`` estimated by amplitude estimation (issue 17, item 5):
``QuantumConfig.gradient_norm='amplitude_estimation'``, in the theory preset since its version 2.

Independent references: the amplitude ``||v||^2 / (d max v_i^2)`` written out by hand, the
exact AE outcome law (:func:`qcnn.quantum.ae_law.ae_outcome_probabilities`, a sum over outcomes),
and the AE bound with the median count of :func:`qcnn.quantum.config.median_count`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from qcnn.experiments.runner import config_tags
from qcnn.models import make_optimizer, paper_qcnn
from qcnn.quantum import QuantumConfig, noisy_gradient, tomography_estimate
from qcnn.quantum.ae_law import ae_outcome_probabilities, median_ae_estimate
from qcnn.quantum.config import THEORY_PRESET_VERSION, ae_bound, median_count
from qcnn.quantum.tomography import norm_amplitude


def heavy_tailed(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_t(2.5, size=shape) * rng.random(shape) ** 3


def test_norm_amplitude_is_the_flag_probability():
    rng = np.random.default_rng(0)
    v = heavy_tailed(rng, (4, 300))
    by_hand = [
        sum(x * x for x in row) / (len(row) * max(abs(x) for x in row) ** 2) for row in v.tolist()
    ]
    a = norm_amplitude(v)
    np.testing.assert_allclose(a, by_hand, rtol=1e-12)
    # ||v|| = max|v| sqrt(d a), and a is in [1/d, 1]
    np.testing.assert_allclose(np.abs(v).max(axis=1) * np.sqrt(300 * a), np.linalg.norm(v, axis=1))
    assert (a >= 1 / 300 - 1e-15).all() and (a <= 1).all()
    assert norm_amplitude(np.zeros((2, 5))).tolist() == [0.0, 0.0]


def test_one_run_follows_the_exact_ae_outcome_law():
    """k = 1: the estimate sin^2(pi y / M) has the canonical AE outcome law (chi-square)."""
    m, a = 5, 0.0371
    rng = np.random.default_rng(1)
    est = median_ae_estimate(np.full(40_000, a), m, 1, rng).amplitude
    big_m = 1 << m
    theta = math.asin(math.sqrt(a)) / math.pi
    probs = ae_outcome_probabilities(theta, m)  # over y = 0..M-1
    # the estimate depends on J = min(y, M - y)
    law = np.zeros(big_m // 2 + 1)
    for y in range(big_m):
        law[min(y, big_m - y)] += probs[y]
    j = np.rint(np.arcsin(np.sqrt(est)) * big_m / np.pi).astype(int)
    observed = np.bincount(j, minlength=law.size)
    keep = law * est.size > 5
    expected = law[keep] * est.size
    chi2 = float((((observed[keep] - expected) ** 2) / expected).sum())
    assert observed[~keep].sum() <= 5 + 3 * math.sqrt(5)
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof)


@pytest.mark.parametrize("eps", [0.01, 0.1])
def test_the_median_meets_the_bound_with_probability_1_minus_delta(eps):
    cfg = QuantumConfig(
        gradient_model="linf_tomography",
        gradient_norm="amplitude_estimation",
        eps=eps,
        failure_prob=0.01,
    )
    m, k = cfg.gradient_norm_ae
    assert k == median_count(0.01) == 11 and ae_bound(m) <= eps
    rng = np.random.default_rng(2)
    a = rng.random(20_000) * 0.2
    est = median_ae_estimate(a, m, k, rng).amplitude
    assert np.mean(np.abs(est - a) > ae_bound(m)) <= 0.01


def test_the_estimate_rescales_the_exact_norm_read_out():
    """Same generator: the same counts and signs as with the exact norm, rescaled per vector by
    ``sqrt(a~ / a)``; a~ is the next draw of the generator after the tomography's."""
    rng = np.random.default_rng(3)
    for shape, batch_dims in (((40, 30), 0), ((6, 3, 8, 8), 1)):
        v = heavy_tailed(rng, shape)
        exact = tomography_estimate(v, 0.1, np.random.default_rng(7), batch_dims=batch_dims)
        g = np.random.default_rng(7)
        est = tomography_estimate(v, 0.1, g, batch_dims=batch_dims, norm_ae=(6, 3))
        rows = v.reshape(int(np.prod(shape[:batch_dims])), -1)
        # replay: the exact read-out's draws, then the AE draw on the amplitude
        replay = np.random.default_rng(7)
        tomography_estimate(v, 0.1, replay, batch_dims=batch_dims)
        a = norm_amplitude(rows)
        ratio = np.sqrt(median_ae_estimate(a, 6, 3, replay).amplitude / a)
        want = exact.reshape(rows.shape) * ratio[:, None]
        np.testing.assert_allclose(est.reshape(rows.shape), want, rtol=1e-12)
        assert g.random() == replay.random()  # nothing else was drawn


def test_norm_estimate_through_the_optimizer_and_the_layer():
    cfg = QuantumConfig.theory()
    assert cfg.gradient_norm == "amplitude_estimation" and cfg.gradient_norm_ae == (9, 11)
    opt = make_optimizer(paper_qcnn(cfg, seed=1), config=cfg, seed=1)
    assert opt.grad_hooks[0].norm_ae == (9, 11)
    assert paper_qcnn(cfg, seed=1).layers[0].config.gradient_norm_ae == (9, 11)
    with pytest.raises(ValueError, match="linf_tomography"):
        noisy_gradient(np.ones(4), 0.1, np.random.default_rng(0), "gaussian", norm_ae=(6, 1))


def test_config_validation_and_preset_versions():
    with pytest.raises(ValueError, match="gradient_norm"):
        QuantumConfig(gradient_norm="amplitude_estimation")  # gaussian gradient model
    with pytest.raises(ValueError, match="gradient_norm"):
        QuantumConfig(
            gradient_model="linf_tomography", gradient_norm="amplitude_estimation", eps=0.0
        )
    with pytest.raises(ValueError, match="gradient_norm"):
        QuantumConfig(gradient_model="linf_tomography", gradient_norm="sampled")
    # failure_prob is accepted with the gradient norm as the only AE, and derives m and k
    cfg = QuantumConfig(
        gradient_model="linf_tomography",
        gradient_norm="amplitude_estimation",
        failure_prob=0.01,
        eps=0.1,
    )
    assert cfg.uses_ae and cfg.gradient_norm_ae == (6, 11) and cfg.resolved_ae_bits is None
    assert QuantumConfig(gradient_model="linf_tomography").gradient_norm_ae is None
    assert THEORY_PRESET_VERSION == 2
    v1, v2 = QuantumConfig.theory(version=1), QuantumConfig.theory()
    assert v2 == v1.replace(gradient_norm="amplitude_estimation")
    assert config_tags(v2) == ["theory"] and config_tags(v1) == ["theory-v1"]
    assert config_tags(QuantumConfig.theory(eps=0.1, delta=0.1, version=1)) == ["theory-v1"]
    with pytest.raises(ValueError, match="version"):
        QuantumConfig.theory(version=3)
    # records written before the field existed read as the exact norm
    old = v1.to_dict()
    del old["gradient_norm"]
    assert QuantumConfig.from_dict(old) == v1
