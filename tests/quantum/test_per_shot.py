"""Tests of noise per shot (``qcnn.quantum.per_shot``) and of the windowed law of the median of
k amplitude-estimation runs (``qcnn.quantum.ae_law``).

References, independent of the code under test:

- the exact AE outcome distribution (``ae_outcome_probabilities``) summed term by term, for the
  window's CDF and its error bound;
- the median of k draws of the existing AE sampler (``sample_ae_outcomes``), for the one-step
  median sampler (chi-square);
- a brute-force Monte Carlo of the algorithm itself for the per-shot law: pick a pixel uniformly,
  run the estimation (a Gaussian draw, or k AE runs and their median), keep the shot with
  probability f/C (the ancilla of the conditional rotation) -- amplitude amplification only
  changes how many tries it takes, not the law of the kept shots. The joint law of (pixel, value)
  must match (chi-square contingency, p > 1e-3, fixed seeds);
- the closed form of the clipped-Gaussian mean against numerical integration.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from qcnn.quantum import QuantumConfig, QuantumConv2D
from qcnn.quantum.ae_law import (
    ae_phase,
    full_cdf,
    lower_tail_bound,
    median_cdf_map,
    median_window_law,
    sample_ae_outcomes,
    sample_median_j,
    window,
)
from qcnn.quantum.layer_stats import watch_statistics
from qcnn.quantum.per_shot import ShotProblem, gaussian_mean_f, normal_cdf, sample_per_shot

P_MIN = 1e-3


def _contingency_p(a: np.ndarray, b: np.ndarray) -> float:
    """Chi-square p-value that two label samples come from one law (cells < 10 pooled)."""
    labels = np.union1d(a, b)
    ca = np.array([(a == v).sum() for v in labels])
    cb = np.array([(b == v).sum() for v in labels])
    keep = (ca + cb) >= 10
    table = np.array([np.append(ca[keep], ca[~keep].sum()), np.append(cb[keep], cb[~keep].sum())])
    table = table[:, table.sum(axis=0) > 0]
    return float(stats.chi2_contingency(table).pvalue)


# -- the window of the AE law --------------------------------------------------------------------


@pytest.mark.parametrize("m", [3, 5, 9, 12])
def test_window_cdf_matches_the_exact_law_within_its_bound(m):
    rng = np.random.default_rng(m)
    big_m = 1 << m
    half = big_m // 2
    x = np.concatenate(
        [
            rng.uniform(0, half, 4000 if m < 12 else 600),
            rng.uniform(half - 6, half, 500),  # the folded branch matters near both ends
            rng.uniform(0, 6, 500),
            rng.integers(0, half, 300) + rng.uniform(0, 1e-7, 300),  # phases next to the grid
            np.arange(0, half + 1, max(1, half // 8)).astype(float),  # exactly on the grid
        ]
    )
    win = window(x, m)
    full = full_cdf(x, m)
    j = win.lo[:, None] + np.arange(-1, win.cdf.shape[1] - 1)
    ref = np.where(j >= 0, np.take_along_axis(full, np.clip(j, 0, half), axis=1), 0.0)
    ref = np.where(j > half, 1.0, ref)
    err = np.abs(win.cdf - ref).max(axis=1)
    assert (err <= win.tol + 1e-20).all(), float((err - win.tol).max())
    assert win.tol.max() < 1e-5
    # the bound on the mass below the window holds everywhere
    if big_m > 16:
        assert (win.cdf[:, 0] <= lower_tail_bound(m)).all()


def test_median_cdf_map_is_the_binomial_tail():
    u = np.linspace(0, 1, 101)
    for k in (1, 3, 11):
        ref = stats.binom.sf((k + 1) // 2 - 1, k, u)
        np.testing.assert_allclose(median_cdf_map(u, k), ref, atol=1e-14)


@pytest.mark.parametrize(("m", "k", "a"), [(4, 3, 0.3), (6, 5, 0.2317), (9, 11, 0.51)])
def test_one_step_median_sampler_matches_k_runs(m, k, a):
    rng = np.random.default_rng(7)
    n = 60_000
    x = np.full(n, ae_phase(np.array([a]), m)[0])
    fast = sample_median_j(window(x, m), k, rng, x=x)
    theta = np.full(n, math.asin(math.sqrt(a)) / math.pi)
    runs = np.stack([sample_ae_outcomes(theta, m, rng) for _ in range(k)])
    slow = np.median(np.minimum(runs, (1 << m) - runs), axis=0).astype(np.int64)
    assert _contingency_p(fast, slow) > P_MIN
    # and both follow the exact law G(F(j)) - G(F(j - 1))
    g = median_cdf_map(full_cdf(x[:1], m)[0], k)
    p = np.diff(np.concatenate([[0.0], g]))
    observed = np.bincount(fast, minlength=p.size)
    keep = p * n >= 5
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(p[keep], p[~keep].sum()) * n
    assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > P_MIN


def test_median_window_law_sums_to_one_and_bounds_hold():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 256, 2000)
    win = window(x, 9)
    probs, below, above, err = median_window_law(win, 11)
    np.testing.assert_allclose(probs.sum(axis=1) + below + above, 1.0, atol=1e-12)
    exact = median_cdf_map(full_cdf(x, 9), 11)
    j = win.lo[:, None] + np.arange(probs.shape[1])
    below_lo = np.where(win.lo > 0, exact[np.arange(x.size), np.maximum(win.lo - 1, 0)], 0.0)
    ref = np.diff(np.concatenate([below_lo[:, None], np.take_along_axis(exact, j, axis=1)], 1), 1)
    assert (np.abs(probs - ref) <= err[:, None] + 1e-15).all()


# -- the Gaussian closed forms -------------------------------------------------------------------


def test_normal_cdf_and_clipped_gaussian_mean():
    x = np.linspace(-8, 8, 161)
    np.testing.assert_allclose(normal_cdf(x), stats.norm.cdf(x), rtol=2e-7, atol=1e-15)
    cap = 10.0
    for mu, sd in [(0.3, 0.5), (-1.0, 2.0), (9.5, 1.0), (4.0, 0.0), (-3.0, 0.0), (12.0, 0.0)]:
        if sd == 0:
            ref = min(max(mu, 0.0), cap)
        else:
            density = stats.norm(mu, sd).pdf
            ref = integrate.quad(
                lambda z, p=density: min(max(z, 0.0), cap) * p(z),
                mu - 12 * sd,
                mu + 12 * sd,
                points=[0.0, cap],
                limit=200,
            )[0]
        got = gaussian_mean_f(np.array([mu]), np.array([sd]), cap)[0]
        assert got == pytest.approx(ref, rel=1e-6, abs=1e-9), (mu, sd)


# -- the per-shot law against a brute-force Monte Carlo ------------------------------------------


def _tiny_layer(model: str, order: str):
    """A 'layer' of 5 pixels with exact products, norms and biases chosen so that the cap, the
    zero and the noise all matter."""
    y_nb = np.array([[0.9, -0.4, 2.6, 0.05, 1.7]])
    scale = np.array([[3.0, 2.0, 4.0, 0.0, 2.5]])  # pixel 3 has a zero patch: no noise
    bias = np.array([[0.2, 0.1, 0.0, 0.4, -0.3]])
    eps = 0.12 if model == "gaussian" else 0.25
    cfg = QuantumConfig(
        eps=eps,
        cap=2.5,
        sigma=1.0,
        ipe=model,
        noise_order=order,
        noise_per_shot=True,
        failure_prob=0.2 if model != "gaussian" else None,
    )
    return y_nb, scale, bias, cfg


def _brute_force(y_nb, scale, bias, cfg, n, rng):
    """(pixel, value) of n shots of the algorithm: uniform pixel, fresh estimate, kept with
    probability f / C."""
    cap = cfg.cap
    y = y_nb + bias
    pixels, values = [], []
    while sum(len(p) for p in pixels) < n:
        p = rng.integers(0, y.shape[1], 4 * n)
        if cfg.ipe == "gaussian":
            ybar = y_nb[0, p] + 2 * cfg.eps * scale[0, p] * rng.standard_normal(p.size)
        else:
            m, k = cfg.resolved_ae_bits, cfg.resolved_ae_median
            a = (
                1 - np.divide(y_nb[0, p], scale[0, p], out=np.zeros(p.size), where=scale[0, p] > 0)
            ) / 2
            theta = np.arcsin(np.sqrt(np.clip(a, 0, 1))) / np.pi
            runs = np.stack([sample_ae_outcomes(theta, m, rng) for _ in range(k)])
            a_hat = np.median(np.sin(np.pi * runs / (1 << m)) ** 2, axis=0)
            ybar = np.where(scale[0, p] > 0, scale[0, p] * (1 - 2 * a_hat), 0.0)
        ybar = ybar + bias[0, p]
        yy = y[0, p]
        z = ybar if cfg.noise_order == "theory" else np.clip(yy, 0, cap) + (ybar - yy)
        f = np.clip(z, 0, cap)
        keep = rng.random(p.size) * cap < f
        pixels.append(p[keep])
        values.append(f[keep])
    return np.concatenate(pixels)[:n], np.concatenate(values)[:n]


@pytest.mark.parametrize(
    ("model", "order"),
    [("gaussian", "theory"), ("gaussian", "paper"), ("amplitude_estimation", "theory")],
)
def test_per_shot_law_matches_brute_force_monte_carlo(model, order):
    """One shot per row and many rows: each row's single shot is a (pixel, value) draw of the
    per-shot sampler; its joint law must be the algorithm's (value binned for the Gaussian)."""
    y_nb, scale, bias, cfg = _tiny_layer(model, order)
    n = 30_000
    reps = lambda a: np.repeat(a, n, axis=0)  # noqa: E731
    y = y_nb + bias
    ps = sample_per_shot(
        ShotProblem(reps(y_nb), reps(bias), reps(scale)), cfg, 1, np.random.default_rng(3)
    )
    assert (ps.counts.sum(axis=1) == 1).all()
    pix = ps.counts.argmax(axis=1)
    val = ps.value_sum[np.arange(n), pix]
    bp, bv = _brute_force(y_nb, scale, bias, cfg, n, np.random.default_rng(4))
    edges = np.array([1e-9, 0.25, 0.5, 1.0, 1.5, 2.0, 2.4, cfg.cap - 1e-9])
    label = lambda p, v: p * 100 + np.searchsorted(edges, v)  # noqa: E731
    assert _contingency_p(label(pix, val), label(bp, bv)) > P_MIN
    # the pixel law alone is proportional to E[f(Ybar_p)] (computed independently, Gaussian)
    if model == "gaussian":
        mu = y if order == "theory" else np.clip(y, 0, cfg.cap)
        ef = gaussian_mean_f(mu, 2 * cfg.eps * scale, cfg.cap)[0]
        observed = np.bincount(pix, minlength=5)
        assert stats.chisquare(observed, ef / ef.sum() * n).pvalue > P_MIN


def test_pixel_drawn_n_times_is_the_mean_of_n_independent_values():
    """With many shots on two pixels, the written value is the mean of that many tilted draws:
    its spread shrinks like 1/sqrt(n) (not frozen, unlike the notebook model)."""
    y_nb = np.array([[1.0, 1.0]])
    scale = np.array([[5.0, 5.0]])
    cfg = QuantumConfig(eps=0.1, cap=10.0, sigma=1.0, noise_per_shot=True, noise_order="theory")
    rows = 4000
    for shots in (2, 32):
        problem = ShotProblem(
            np.repeat(y_nb, rows, 0), np.zeros((rows, 2)), np.repeat(scale, rows, 0)
        )
        ps = sample_per_shot(problem, cfg, shots, np.random.default_rng(shots))
        mean = ps.value_sum / np.maximum(ps.counts, 1)
        spread = mean[ps.counts == shots // 2].std() if (ps.counts == shots // 2).any() else None
        if spread is not None:
            one = 2 * 0.1 * 5.0  # one draw's standard deviation, roughly (little clipping)
            assert spread == pytest.approx(one / math.sqrt(shots // 2), rel=0.25)


# -- through the layer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [
        QuantumConfig(noise_per_shot=True),
        QuantumConfig.theory(),
        QuantumConfig(
            noise_per_shot=True,
            ipe="amplitude_estimation",
            failure_prob=0.1,
            sampled_value="tomography",
        ),
        QuantumConfig(sampled_value="tomography", tomography_normaliser="amplitude_estimation"),
    ],
    ids=["gauss-per-shot", "theory", "ae-per-shot-tomography", "normaliser-only"],
)
def test_layer_with_theory_options_runs_and_reports(cfg):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 12, 12)).astype(np.float32)
    layer = QuantumConv2D(2, 4, 5, config=cfg, rng=1)
    stats = watch_statistics(layer)[layer]
    out = layer.forward(x)
    assert out.shape == (6, 4, 8, 8) and out.dtype == np.float32 and np.isfinite(out).all()
    s = stats.last
    d = 4 * 8 * 8
    assert s["shots"] == int(0.5 * d) and s["implied_eta"] == pytest.approx(
        math.sqrt(36 * math.log(d) / int(0.5 * d))
    )
    assert s["shots_for_eta_reference"] == math.ceil(36 * math.log(d) / 0.1**2)
    if cfg.sampled_value == "tomography" and cfg.tomography_normaliser != "exact":
        assert 0 <= s["normaliser_rel_error_rms"] < 1
    layer.backward(np.ones_like(out))
    assert np.isfinite(layer.weight.grad).all()
    # same seed, same numbers
    again = QuantumConv2D(2, 4, 5, config=cfg, rng=1).forward(x)
    np.testing.assert_array_equal(out, again)


def test_an_executor_without_a_step_says_so():
    """The layer asks the executor for every quantum step and checks no executor's type: one
    with no per-shot sampler (or no normaliser) raises its own NotImplementedError."""

    class PerPixelOnly:
        thread_safe = True

        def inner_products(self, problem, config, rng):
            return problem.y

        def sample(self, values, shots, config, rng):
            return np.ones(values.shape, dtype=np.int64)

        def sample_per_shot(self, problem, shots, config, rng):
            raise NotImplementedError("PerPixelOnly: no per-shot sampler")

        def normaliser(self, mean_f, d, config, rng):
            raise NotImplementedError("PerPixelOnly: no normaliser")

    x = np.ones((1, 1, 5, 5), np.float32)
    per_shot = QuantumConfig(noise_per_shot=True)
    layer = QuantumConv2D(1, 2, 3, config=per_shot, rng=0, executor=PerPixelOnly())
    with pytest.raises(NotImplementedError, match="per-shot"):
        layer.forward(x)
    aenorm = QuantumConfig(sampled_value="tomography", tomography_normaliser="amplitude_estimation")
    layer = QuantumConv2D(1, 2, 3, config=aenorm, rng=0, executor=PerPixelOnly())
    with pytest.raises(NotImplementedError, match="normaliser"):
        layer.forward(x)
    # the steps it has run: the notebook's model
    layer = QuantumConv2D(1, 2, 3, config=QuantumConfig(), rng=0, executor=PerPixelOnly())
    assert layer.forward(x).shape == (1, 2, 3, 3)
