"""Tests of the inner-product estimation (IPE) error models (model §2.2), ``qcnn.quantum.ipe``.

- Gaussian model: the error ``Ybar - Y`` has std ``2 eps ||A_p|| ||F_q||``, checked directly and
  through ``QuantumConv2D`` against norms recomputed here from the patches.
- Amplitude-estimation model: the closed-form outcome distribution is checked against an
  independent implementation of the formula and against a brute-force simulation of phase
  estimation (state vectors and gate matrices); the sampler against that distribution (total
  variation); the median-of-k boost and the canonical AE error guarantee (probability >= 8/pi^2).

Statistical tolerances are stated where used; seeds are fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import stats

from qcnn.quantum import (
    QuantumConfig,
    QuantumConv2D,
    ae_estimate,
    ae_outcome_probabilities,
    amplitude_estimation_ipe,
    amplitude_estimation_median_ipe,
    estimate_inner_products,
    gaussian_ipe,
    sample_ae_outcomes,
)
from qcnn.quantum.ipe import hadamard_test_probability
from qcnn.quantum.layer_stats import LayerStatistics

P_MIN = 1e-3


# -- references written independently of the library --------------------------------------------


def direct_ae_probabilities(theta: float, m: int) -> np.ndarray:
    """``P(y) = 1/2 [F(y/M - theta) + F(y/M + theta)]`` term by term, with the F = 1 limit."""
    big_m = 2**m

    def fejer(d: float) -> float:
        s = math.sin(math.pi * d)
        if abs(s) < 1e-13:
            return 1.0
        return (math.sin(big_m * math.pi * d) / (big_m * s)) ** 2

    return np.array(
        [0.5 * (fejer(y / big_m - theta) + fejer(y / big_m + theta)) for y in range(big_m)]
    )


def qpe_distribution(theta: float, m: int) -> np.ndarray:
    """Outcome distribution of canonical amplitude estimation, simulated gate by gate.

    One target qubit holds ``A|0> = cos(phi)|bad> + sin(phi)|good>`` with ``a = sin^2(phi)``,
    ``phi = pi theta``. The Grover operator ``Q = -A S_0 A^dagger S_good`` is built from its
    reflections; m counting qubits get Hadamards, counting qubit j controls ``Q^(2^j)``, then the
    inverse QFT; the result is the probability of each counting-register value.
    """
    phi = math.pi * theta
    a_op = np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    s_good = np.diag([1.0, -1.0])  # flips the sign of |good> (index 1)
    s_0 = np.eye(2) - 2 * np.outer([1, 0], [1, 0])  # I - 2|0><0|
    q_op = -a_op @ s_0 @ a_op.T @ s_good
    big_m = 2**m
    psi = a_op @ np.array([1.0, 0.0])
    assert psi[1] ** 2 == pytest.approx(math.sin(phi) ** 2)
    state = np.kron(np.ones(big_m) / math.sqrt(big_m), psi).astype(complex)  # H^m |0> (x) psi
    for j in range(m):
        power = np.linalg.matrix_power(q_op, 2**j)
        bit = (np.arange(big_m) >> j) & 1
        controlled = np.kron(np.diag(1 - bit), np.eye(2)) + np.kron(np.diag(bit), power)
        state = controlled @ state
    k = np.arange(big_m)
    iqft = np.exp(-2j * np.pi * np.outer(k, k) / big_m) / math.sqrt(big_m)
    state = np.kron(iqft, np.eye(2)) @ state
    return (np.abs(state.reshape(big_m, 2)) ** 2).sum(axis=1)


THETAS = [0.0, 0.5, 0.25, 0.1234, 0.3, 0.0625, 0.4999, 1.0 / 3.0]


# -- Gaussian model -----------------------------------------------------------------------------


def test_gaussian_ipe_error_has_the_stated_std():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(50_000)
    scale = rng.uniform(0.5, 3.0, 50_000)
    eps = 0.05
    out = gaussian_ipe(y, scale, eps, np.random.default_rng(1))
    z = (out - y) / (2 * eps * scale)
    assert stats.kstest(z, "norm").pvalue > P_MIN
    assert abs(z.std() - 1.0) < 5 / math.sqrt(2 * z.size)  # 5 standard errors of a std


def test_gaussian_ipe_eps_zero_dtype_and_validation():
    y = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = gaussian_ipe(y, np.ones((2, 3)), 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(out, y)
    assert out is not y
    noisy = gaussian_ipe(y, np.float32(2.0), 0.1, np.random.default_rng(0))
    assert noisy.dtype == np.float32 and noisy.shape == y.shape
    with pytest.raises(ValueError, match="eps"):
        gaussian_ipe(y, 1.0, -0.1, np.random.default_rng(0))
    # scale broadcasts (one norm per kernel)
    b = gaussian_ipe(np.zeros((4, 3)), np.array([0.0, 1.0, 2.0]), 0.5, np.random.default_rng(2))
    assert np.all(b[:, 0] == 0) and np.all(b[:, 1:] != 0)


def _patch_norms(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    """``||A_p||`` over all channels, ``(N, H', W')``, from explicit windows."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.sqrt((win.astype(np.float64) ** 2).sum(axis=(1, 4, 5)))


@pytest.mark.parametrize(("stride", "pad"), [(1, 0), (2, 1)])
def test_gaussian_error_through_the_layer(stride, pad):
    """estimated - exact == 2 eps ||A_p|| ||F_q|| N(0, 1), norms recomputed from the patches."""
    eps = 0.1
    cfg = QuantumConfig(eps=eps, cap=1e30, sigma=None, noise_order="theory", delta=0.0)
    layer = QuantumConv2D(3, 4, 3, stride, pad, config=cfg, rng=5, dtype=np.float64)
    observed = layer.observe(LayerStatistics())
    x = np.random.default_rng(6).standard_normal((40, 3, 15, 15))
    stages = layer.forward_stages(x)
    a_norm = _patch_norms(x, 3, stride, pad)
    f_norm = np.linalg.norm(layer.weight.data.reshape(4, -1), axis=1)
    scale = a_norm[:, None] * f_norm[None, :, None, None]
    assert stages["estimated"].shape == scale.shape
    z = (stages["estimated"] - stages["exact"]) / (2 * eps * scale)
    assert stats.kstest(z.ravel(), "norm").pvalue > P_MIN
    assert abs(z.std() - 1.0) < 5 / math.sqrt(2 * z.size)
    assert abs(z.mean()) < 5 / math.sqrt(z.size)
    # per kernel too: the kernel norm really enters per output channel
    for q in range(4):
        assert abs(z[:, q].std() - 1.0) < 5 / math.sqrt(2 * z[:, q].size)
    # no cap in reach, no sampling: the output is the noisy ReLU
    np.testing.assert_allclose(stages["output"], np.maximum(stages["estimated"], 0.0))
    assert observed.last["ipe_error_rms"] == pytest.approx(
        float(np.sqrt(np.mean((stages["estimated"] - stages["exact"]) ** 2)))
    )


# -- amplitude estimation: the outcome distribution ---------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("theta", THETAS)
def test_ae_probabilities_match_the_formula(m, theta):
    p = ae_outcome_probabilities(theta, m)
    assert p.shape == (2**m,)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(p >= 0)
    direct = direct_ae_probabilities(theta, m)
    assert direct.sum() == pytest.approx(1.0, abs=1e-9)  # the formula itself is normalised
    np.testing.assert_allclose(p, direct, atol=1e-10)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("theta", THETAS)
def test_ae_probabilities_match_brute_force_phase_estimation(m, theta):
    np.testing.assert_allclose(
        ae_outcome_probabilities(theta, m), qpe_distribution(theta, m), atol=1e-10
    )


def test_ae_probabilities_vectorised_over_theta_shape():
    theta = np.array([[0.0, 0.1], [0.3, 0.5], [0.25, 0.45]])
    p = ae_outcome_probabilities(theta, 4)
    assert p.shape == (3, 2, 16)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    for idx in np.ndindex(theta.shape):
        np.testing.assert_allclose(p[idx], ae_outcome_probabilities(theta[idx], 4))


def test_on_grid_phase_is_certain():
    m = 4
    for k in range(9):  # theta in [0, 1/2] on the grid: y = k or M - k
        p = ae_outcome_probabilities(k / 16, m)
        support = sorted({k, (16 - k) % 16})
        assert p[support].sum() == pytest.approx(1.0)
        y = sample_ae_outcomes(np.full(1000, k / 16), m, np.random.default_rng(k))
        assert set(np.unique(y)) <= set(support)


# -- amplitude estimation: the sampler ----------------------------------------------------------


def _tv(counts: np.ndarray, p: np.ndarray) -> float:
    return 0.5 * float(np.abs(counts / counts.sum() - p).sum())


@pytest.mark.parametrize("m", [1, 3, 5, 8])
@pytest.mark.parametrize("theta", [0.0, 0.5, "grid", 0.1234, 0.3, 0.47, 0.25])
def test_sampled_outcomes_follow_the_distribution(m, theta):
    big_m = 2**m
    if theta == "grid":
        theta = (big_m // 2 - 1) / big_m if big_m > 2 else 0.5
    n = 100_000
    y = sample_ae_outcomes(np.full(n, theta), m, np.random.default_rng(42))
    assert y.dtype.kind == "i" and y.min() >= 0 and y.max() < big_m
    counts = np.bincount(y, minlength=big_m)
    p = ae_outcome_probabilities(theta, m)
    # E[TV] <= sum_y sqrt(p (1 - p) / n) / 2 <= sqrt(M / n) / 2: 0.016 at M = 256, n = 1e5;
    # the distribution is concentrated, so the real value is a few times smaller.
    assert _tv(counts, p) < 0.012
    # and a chi-square test on the outcomes with enough expected counts
    big = p * n >= 20
    if big.sum() >= 2:
        obs = np.append(counts[big], counts[~big].sum())
        exp = np.append(p[big] * n, p[~big].sum() * n)
        keep = exp > 0
        assert stats.chisquare(obs[keep], exp[keep]).pvalue > P_MIN
    else:  # one certain outcome
        assert counts[np.argmax(p)] == n


def test_rare_outcomes_far_from_the_peak_are_drawn_too():
    """The sampler is exact in the tails (outside its window of 8 grid points around the peak)."""
    m, theta, n = 8, 0.1 + 0.5 / 256, 400_000
    y = sample_ae_outcomes(np.full(n, theta), m, np.random.default_rng(3))
    p = ae_outcome_probabilities(theta, m)
    peak = round(theta * 256)
    far = np.minimum(np.abs(np.arange(256) - peak), np.abs(np.arange(256) - (256 - peak))) > 10
    p_far = p[far].sum()
    hits = np.isin(y, np.flatnonzero(far)).sum()
    se = math.sqrt(p_far * (1 - p_far) / n)
    assert p_far > 1e-3  # about 700 expected hits
    assert abs(hits / n - p_far) < 5 * se


def test_sample_ae_outcomes_shape_and_determinism():
    theta = np.random.default_rng(0).uniform(0, 0.5, (3, 4, 5))
    a = sample_ae_outcomes(theta, 6, np.random.default_rng(1))
    b = sample_ae_outcomes(theta, 6, np.random.default_rng(1))
    assert a.shape == theta.shape
    np.testing.assert_array_equal(a, b)


# -- amplitude estimation: the estimate of a ----------------------------------------------------


def test_ae_estimate_exact_points():
    rng = np.random.default_rng(0)
    for m in (2, 5, 9):
        out = ae_estimate(np.array([0.0, 1.0, 0.5]), m, rng)
        np.testing.assert_allclose(out, [0.0, 1.0, 0.5], atol=1e-12)
    # values outside [0, 1] are clipped, not nan
    assert np.all(np.isfinite(ae_estimate(np.array([-1e-9, 1 + 1e-9]), 5, rng)))
    # a_hat takes only grid values sin^2(pi y / M)
    m = 4
    grid = np.sin(np.pi * np.arange(16) / 16) ** 2
    a_hat = ae_estimate(np.full(1000, 0.3), m, rng)
    assert np.all(np.min(np.abs(a_hat[:, None] - grid[None]), axis=1) < 1e-12)


def test_median_of_k_shrinks_the_error_tail():
    """P(|a_hat - a| > pi / 2^m) is smaller for the median of 5 runs than for one run."""
    m, n = 5, 40_000
    theta = (7 + 0.5) / 32  # half-way between grid points: the worst case
    a = math.sin(math.pi * theta) ** 2
    tol = math.pi / 2**m
    tails = {}
    for k in (1, 5):
        a_hat = ae_estimate(np.full(n, a), m, np.random.default_rng(10 + k), median_of=k)
        tails[k] = float(np.mean(np.abs(a_hat - a) > tol))
    # exact tail for k = 1 from the distribution
    p = ae_outcome_probabilities(theta, m)
    exact_tail = p[np.abs(np.sin(np.pi * np.arange(32) / 32) ** 2 - a) > tol].sum()
    assert abs(tails[1] - exact_tail) < 5 * math.sqrt(exact_tail * (1 - exact_tail) / n)
    assert exact_tail > 0.05
    assert tails[5] < 0.5 * tails[1]
    # binomial tail of the median: P(at least 3 of 5 runs fail) (a run "fails" on either side,
    # so this bounds the median's tail from above)
    bound = stats.binom.sf(2, 5, exact_tail)
    assert tails[5] <= bound + 5 * math.sqrt(bound / n)


@pytest.mark.parametrize("theta_frac", [0.5, 0.25, 0.1])
def test_canonical_ae_guarantee(theta_frac):
    """|a_hat - a| <= 2 pi sqrt(a(1-a)) / M + pi^2 / M^2 with probability >= 8 / pi^2."""
    m, n = 6, 50_000
    big_m = 2**m
    theta = (11 + theta_frac) / big_m
    a = math.sin(math.pi * theta) ** 2
    a_hat = ae_estimate(np.full(n, a), m, np.random.default_rng(7))
    bound = 2 * math.pi * math.sqrt(a * (1 - a)) / big_m + math.pi**2 / big_m**2
    ok = np.mean(np.abs(a_hat - a) <= bound + 1e-15)
    assert ok >= 8 / math.pi**2 - 5 * math.sqrt(0.19 * 0.81 / n)


def test_amplitude_estimation_ipe_error_bound_and_zeros():
    """Ybar - Y = -2 scale (a_hat - a): within 2 scale (pi/M + pi^2/M^2) w.p. >= 8/pi^2."""
    rng = np.random.default_rng(4)
    n, m = 60_000, 6
    big_m = 2**m
    scale = rng.uniform(0.1, 5.0, n)
    y = scale * rng.uniform(-1.0, 1.0, n)
    y_bar = amplitude_estimation_ipe(y, scale, m, np.random.default_rng(5))
    assert y_bar.shape == y.shape and y_bar.dtype == y.dtype
    err = np.abs(y_bar - y)
    assert np.all(err <= 2 * scale + 1e-9)  # |cos| <= 1 on both sides
    assert np.all(np.abs(y_bar) <= scale * (1 + 1e-12))
    within = np.mean(err <= 2 * scale * (math.pi / big_m + math.pi**2 / big_m**2))
    assert within >= 8 / math.pi**2
    # most of the time much better than the worst case: median error ~ pi/(2M) * scale
    assert np.median(err / scale) < 2 * math.pi / big_m
    # zero norm: exactly zero; a float32 input stays float32
    z = amplitude_estimation_ipe(np.zeros(5, np.float32), np.zeros(5), m, rng)
    assert z.dtype == np.float32 and not z.any()
    # |y| = scale (parallel / anti-parallel vectors) is exact: a in {0, 1} lies on the grid
    s = np.array([1.0, 2.0])
    np.testing.assert_allclose(amplitude_estimation_ipe(np.array([1.0, -2.0]), s, 3, rng), [1, -2])


def test_hadamard_test_probability():
    np.testing.assert_allclose(
        hadamard_test_probability(np.array([-1.0, 0.0, 1.0, 1.0 + 1e-9, -2.0])),
        [1.0, 0.5, 0.0, 0.0, 1.0],
    )


def test_estimate_inner_products_dispatch():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((2, 3, 4, 4))
    scale = np.abs(y) + rng.uniform(0.5, 1.0, y.shape)
    ex = estimate_inner_products(y, scale, QuantumConfig.exact(), rng)
    np.testing.assert_array_equal(ex, y)
    assert ex is not y
    g_cfg = QuantumConfig(eps=0.2)
    np.testing.assert_array_equal(
        estimate_inner_products(y, scale, g_cfg, np.random.default_rng(1)),
        gaussian_ipe(y, scale, 0.2, np.random.default_rng(1)),
    )
    ae_cfg = QuantumConfig(ipe="amplitude_estimation", eps=0.1)
    np.testing.assert_array_equal(
        estimate_inner_products(y, scale, ae_cfg, np.random.default_rng(2)),
        amplitude_estimation_ipe(y, scale, 5, np.random.default_rng(2)),
    )
    # a median of k > 1 runs is drawn in one step (same law: tests/quantum/test_per_shot.py)
    med_cfg = ae_cfg.replace(ae_median=3)
    np.testing.assert_array_equal(
        estimate_inner_products(y, scale, med_cfg, np.random.default_rng(2)),
        amplitude_estimation_median_ipe(y, scale, 5, 3, np.random.default_rng(2)),
    )
    out = estimate_inner_products(y, scale, med_cfg, np.random.default_rng(3))
    assert out.dtype == y.dtype and (np.abs(out) <= scale + 1e-12).all()
