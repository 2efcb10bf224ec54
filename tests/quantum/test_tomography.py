"""Tests of the emulated l-infinity tomography (``qcnn.quantum.tomography``) and of the exact
multinomial sampler behind it (``qcnn.quantum.multinomial``).

References are independent of the code under test: the multinomial pmf written out by hand
(chi-square, scipy.stats), the binomial law of the sign step computed by summation, the
theorem's guarantee, and the Qiskit circuits of ``qcnn.circuits.tomography`` (slow test).

Tolerances: chi-square p > 1e-3 (fixed seeds); the l-inf bound must hold in at least the
theorem's fraction ``1 - d^-0.83`` of the trials minus three binomial standard errors; the sign
step's wrong-sign frequency within 4 standard errors of its exact probability.
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
from scipy import stats

from qcnn.quantum import QuantumConfig, tomography_estimate
from qcnn.quantum.multinomial import multinomial_counts
from qcnn.quantum.sampling import tomography_shots
from qcnn.quantum.tomography import (
    SIGN_THRESHOLD,
    kp_signs,
    sign_step_probabilities,
    theorem_success_probability,
)

P_MIN = 1e-3


def _multinomial_pmf_table(n: int, p: np.ndarray) -> tuple[list[tuple[int, ...]], np.ndarray]:
    cells = [c for c in product(range(n + 1), repeat=len(p)) if sum(c) == n]
    probs = [
        math.factorial(n)
        * math.prod(pi**ci / math.factorial(ci) for pi, ci in zip(p, c, strict=True))
        for c in cells
    ]
    return cells, np.array(probs)


def _chi2_p(counts: np.ndarray, p: np.ndarray, n: int) -> float:
    """Pearson chi-square p-value of the observed count vectors (rows) against Multinomial(n, p),
    cells with expected frequency < 5 pooled."""
    cells, probs = _multinomial_pmf_table(n, p)
    index = {c: i for i, c in enumerate(cells)}
    observed = np.bincount([index[tuple(r)] for r in counts], minlength=len(cells))
    expected = probs * len(counts)
    big = expected >= 5
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


# -- the multinomial sampler ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "n"),
    [
        (np.array([0.6, 0.3, 0.1]), 4),  # every mean >= 1: numpy's binomials only
        (np.array([0.9, 0.05, 0.03, 0.02]), 20),  # small means lumped, drawn shot by shot
        (np.array([0.5, 0.0, 0.3, 0.0, 0.2]), 6),  # zeros are never drawn
    ],
)
def test_multinomial_counts_follow_the_multinomial_law(p, n):
    rng = np.random.default_rng(11)
    many = multinomial_counts(n, np.tile(p, (20_000, 1)), rng)  # one call, many rows
    assert (many.sum(axis=1) == n).all()
    assert (many[:, p == 0] == 0).all()
    assert _chi2_p(many, p, n) > P_MIN
    single = np.concatenate([multinomial_counts(n, p[None], rng) for _ in range(1500)])  # 1 row
    assert _chi2_p(single, p, n) > P_MIN


def test_multinomial_counts_large_row_marginals_and_totals():
    """A long row (the lumped and the two-thread paths): totals exact, zero weights never drawn,
    entries with a large mean have the binomial mean and variance, and the small-mean entries
    get their share of the shots and are hit as often as the multinomial says."""
    rng = np.random.default_rng(3)
    d, n, reps = 50_000, 200_000, 40
    w = np.exp(1.5 * rng.standard_normal(d))  # means n p_i from ~0.01 to ~100
    w[::7] = 0.0
    p = w / w.sum()
    counts = np.stack([multinomial_counts(n, p[None], rng)[0] for _ in range(reps)])
    assert (counts.sum(axis=1) == n).all()
    assert (counts[:, w == 0] == 0).all()
    mean, var = n * p, n * p * (1 - p)
    big = mean >= 5
    z = (counts[:, big] - mean[big]) / np.sqrt(var[big])
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    assert abs(z.var() - 1) < 4 * math.sqrt(2 / z.size)
    small = (mean < 1) & (p > 0)
    share = counts[:, small].sum(axis=1)
    assert abs(share.mean() - mean[small].sum()) < 4 * math.sqrt(var[small].sum() / reps)
    hit = (counts[:, small] > 0).sum(axis=1).mean()
    expect = (1 - (1 - p[small]) ** n).sum()
    assert abs(hit - expect) < 4 * math.sqrt(expect / reps)


def test_multinomial_counts_rows_edge_cases():
    rng = np.random.default_rng(0)
    out = multinomial_counts(
        np.array([5, 0, 7]), np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]), rng
    )
    assert out.tolist()[1] == [0, 0] and out.tolist()[2] == [0, 0] and out[0].sum() == 5
    assert multinomial_counts(3, np.zeros((2, 0)), rng).shape == (2, 0)
    for bad in (np.array([[0.5, -0.1]]), np.array([[np.nan, 1.0]]), np.ones(3)):
        with pytest.raises(ValueError):
            multinomial_counts(3, bad, rng)
    with pytest.raises(ValueError, match="shots"):
        multinomial_counts(-1, np.ones((1, 2)), rng)
    a = multinomial_counts(1000, np.ones((3, 40)), np.random.default_rng(5))
    b = multinomial_counts(1000, np.ones((3, 40)), np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)  # same seed, same counts


# -- the guarantee -------------------------------------------------------------------------------


def _vectors(d: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    spiky = rng.standard_normal(d) * 0.01
    spiky[rng.integers(d)] = 5.0
    sparse = np.zeros(d)
    sparse[rng.choice(d, max(1, d // 10), replace=False)] = rng.standard_normal(max(1, d // 10))
    return {
        "normal": rng.standard_normal(d),
        "heavy_tailed": rng.standard_cauchy(d),
        "spiky": spiky,
        "sparse": sparse,
        "negative": -np.abs(rng.standard_normal(d)),
    }


@pytest.mark.parametrize(("d", "delta"), [(4, 0.3), (64, 0.1), (1000, 0.1), (300, 0.05)])
def test_linf_bound_holds_in_at_least_the_theorems_fraction(d, delta):
    rng = np.random.default_rng(d)
    trials = 200
    need = theorem_success_probability(d)
    for name, v in _vectors(d, rng).items():
        est = tomography_estimate(np.tile(v, (trials, 1)), delta, rng, batch_dims=1)
        err = np.abs(est - v).max(axis=1) / np.linalg.norm(v)
        ok = (err <= delta).mean()
        slack = 3 * math.sqrt(need * (1 - need) / trials)
        assert ok >= need - slack, f"{name}: bound held in {ok:.3f} of trials, theorem {need:.3f}"
        assert (est[:, v == 0] == 0).all(), name  # unobserved entries come back as 0


def test_shots_follow_the_kp_formula_and_errors_shrink_with_delta():
    rng = np.random.default_rng(2)
    v = rng.standard_normal(500)
    assert tomography_shots(500, 0.1) == math.ceil(36 * math.log(500) / 0.01)
    errs = []
    for delta in (0.2, 0.05):
        est = tomography_estimate(np.tile(v, (20, 1)), delta, rng, batch_dims=1)
        errs.append(np.abs(est - v).max() / np.linalg.norm(v))
    assert errs[1] < errs[0] < 0.2


def test_small_entries_are_biased_toward_zero():
    """An entry far below delta ||v|| is usually never observed: the estimate is 0, unlike the
    Gaussian model's unbiased noise."""
    v = np.array([1.0, 1.0, 1e-4, -1e-4])
    est = tomography_estimate(np.tile(v, (300, 1)), 0.1, np.random.default_rng(1), batch_dims=1)
    assert (est[:, 2:] == 0).mean() > 0.99


# -- the sign step -------------------------------------------------------------------------------


def test_sign_step_probabilities_and_rule():
    x = np.array([0.6, -0.6, 0.8, 0.0])
    sp = np.abs(x)
    q = sign_step_probabilities(x, sp)
    np.testing.assert_allclose(q, [0.36, 0.0, 0.64, 0.0])
    # outcome (1, i) carries the rest: the two halves sum to (x^2 + p) / 2 per i
    np.testing.assert_allclose(q + (x - sp) ** 2 / 4, (x**2 + sp**2) / 2)
    assert SIGN_THRESHOLD == 0.4
    signs = kp_signs(np.array([5, 4, 0, 3]), np.array([10, 10, 0, 7]))
    np.testing.assert_array_equal(signs, [1, -1, 1, 1])  # 5 > 4; 4 = 4 is not > 4; unseen: +1


def test_signs_are_recovered_for_entries_above_delta():
    rng = np.random.default_rng(8)
    v = rng.standard_normal(400)
    delta = 0.05
    est = tomography_estimate(np.tile(v, (50, 1)), delta, rng, batch_dims=1)
    big = np.abs(v) / np.linalg.norm(v) > delta
    assert big.sum() > 20
    assert (np.sign(est[:, big]) == np.sign(v[big])).all()


def test_sign_step_statistics_match_the_exact_binomial_law():
    """d = 2, few shots: P(sign of entry 0 comes out wrong) computed exactly by summing over the
    magnitude count n0 ~ Bin(N, p0) and the sign count n(0, 0) ~ Bin(N, q0(n0))."""
    v = np.array([-0.35, 0.95])  # entry 0 is negative
    x = v / np.linalg.norm(v)
    n_shots = 6
    p0 = x[0] ** 2
    exact_plus = 0.0  # P(estimated sign of entry 0 = +1 and entry 0 observed)
    for n0 in range(1, n_shots + 1):
        q0 = sign_step_probabilities(x[0], math.sqrt(n0 / n_shots))
        thr = math.floor(SIGN_THRESHOLD * n0)  # +1 iff n(0,0) > 0.4 n0
        p_plus = 1 - stats.binom.cdf(thr, n_shots, q0)
        exact_plus += stats.binom.pmf(n0, n_shots, p0) * p_plus
    trials = 100_000
    est = tomography_estimate(
        np.tile(v, (trials, 1)), 1.0, np.random.default_rng(4), shots=n_shots, batch_dims=1
    )
    got = (est[:, 0] > 0).mean()
    se = math.sqrt(exact_plus * (1 - exact_plus) / trials)
    assert abs(got - exact_plus) < 4 * se, (got, exact_plus)
    assert exact_plus > 0.01  # the test can see wrong signs at all


def test_exact_signs_ablation():
    rng = np.random.default_rng(3)
    v = rng.standard_normal(200)
    est = tomography_estimate(v, 0.3, rng, signs="exact")
    seen = est != 0
    assert (np.sign(est[seen]) == np.sign(v[seen])).all()
    with pytest.raises(ValueError, match="signs"):
        tomography_estimate(v, 0.3, rng, signs="random")  # type: ignore[arg-type]


# -- shapes, dtypes, scale -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_and_dtype_are_kept(dtype):
    rng = np.random.default_rng(0)
    v = rng.standard_normal((3, 4, 5)).astype(dtype)
    for b in (0, 1, 2, 3):
        est = tomography_estimate(v, 0.2, rng, batch_dims=b)
        assert est.shape == v.shape and est.dtype == dtype
    ints = tomography_estimate(np.array([3, -4, 0]), 0.1, rng)
    assert ints.dtype == np.float64 and ints[2] == 0
    assert tomography_estimate(np.zeros((0, 3)), 0.1, rng).shape == (0, 3)


def test_zero_tiny_and_huge_vectors_are_handled_by_scale():
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(tomography_estimate(np.zeros(7), 0.1, rng), np.zeros(7))
    rows = np.zeros((3, 5), dtype=np.float32)
    rows[1] = [1, -2, 3, 0, 0.5]
    out = tomography_estimate(rows, 0.1, rng, batch_dims=1)
    assert (out[0] == 0).all() and (out[2] == 0).all() and (out[1] != 0).any()
    base = rng.standard_normal(50)
    for scale, dtype in (
        (1e-30, np.float32),
        (1e-300, np.float64),
        (1e-160, np.float64),
        (1e150, np.float64),
        (1e-42, np.float32),
    ):
        v = (base * scale).astype(dtype)
        est = tomography_estimate(v, 0.1, rng)
        assert np.isfinite(est).all() and est.dtype == dtype
        top = np.abs(v.astype(np.float64)).max()
        norm = top * np.linalg.norm(v.astype(np.float64) / top)  # without underflow
        assert norm > 0
        assert np.abs(est.astype(np.float64) - v).max() <= 0.1 * norm * (1 + 1e-5)
        assert (np.sign(est[est != 0]) == np.sign(v[est != 0])).mean() > 0.9


def test_bad_arguments_are_rejected():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="finite"):
        tomography_estimate(np.array([1.0, np.inf]), 0.1, rng)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="delta"):
            tomography_estimate(np.ones(3), bad, rng)
    with pytest.raises(ValueError, match="shots"):
        tomography_estimate(np.ones(3), 0.1, rng, shots=0)
    with pytest.raises(ValueError, match="batch_dims"):
        tomography_estimate(np.ones(3), 0.1, rng, batch_dims=2)
    with pytest.raises(TypeError):
        tomography_estimate(np.ones(3, dtype=complex), 0.1, rng)


def test_gradient_model_through_make_optimizer():
    """QuantumConfig(gradient_model='linf_tomography') puts the tomography into the optimizer:
    each gradient replaced by its estimate, within delta ||g|| of it entrywise."""
    from qcnn.models import make_optimizer, paper_qcnn

    delta, lr = 0.05, 1.0
    for on in ("all", "quantum"):
        cfg = QuantumConfig(delta=delta, gradient_model="linf_tomography", gradient_on=on)
        model = paper_qcnn(cfg, seed=1, dtype=np.float64)
        opt = make_optimizer(model, lr=lr, config=cfg, seed=1)
        rng = np.random.default_rng(0)
        params = model.parameters()
        grads = [rng.standard_normal(p.shape) for p in params]
        before = [p.data.copy() for p in params]
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
        for p, g, b in zip(params, grads, before, strict=True):
            applied = b - p.data
            if on == "all" or p.name.startswith(("0.", "1.")) and p.name.endswith("weight"):
                assert not np.array_equal(applied, g), p.name
                assert np.abs(applied - g).max() <= delta * np.linalg.norm(g) + 1e-12, p.name
            else:
                np.testing.assert_allclose(applied, g, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("model", ["gaussian", "linf_tomography"])
def test_input_gradient_noise_applies_the_model_per_image(model):
    """QuantumConfig(input_gradient_noise=True): the gradient a quantum layer passes back is the
    gradient model applied to each image's dL/dX (its own norm); parameter gradients untouched."""
    from qcnn.quantum import QuantumConv2D

    delta = 0.1
    base = QuantumConfig(eps=0.01, sigma=None, delta=delta, gradient_model=model)
    x = np.random.default_rng(0).standard_normal((6, 2, 9, 9))
    dout = np.random.default_rng(1).standard_normal((6, 3, 5, 5))
    out = {}
    for flag in (False, True):
        layer = QuantumConv2D(
            2, 3, 5, config=base.replace(input_gradient_noise=flag), rng=7, dtype=np.float64
        )
        layer.forward(x)
        out[flag] = (layer.backward(dout), layer.weight.grad.copy())
    (dx, dw), (dx_q, dw_q) = out[False], out[True]
    np.testing.assert_array_equal(dw, dw_q)
    norms = np.linalg.norm(dx.reshape(6, -1), axis=1)
    err = (dx_q - dx).reshape(6, -1) / (delta * norms[:, None])
    assert np.abs(err).max() > 0.01
    if model == "linf_tomography":
        assert np.abs(err).max() <= 1.0  # the bound, per image
    else:
        assert abs(err.std() - 1) < 0.1  # standard deviation delta ||dx_n||, per image


@pytest.mark.slow
@pytest.mark.circuits
def test_emulator_and_circuit_tomography_agree_in_law():
    """Same vector, same N: the circuit version (qcnn.circuits.tomography, Aer) and the emulator
    give the same law of the estimate of each entry (chi-square on the binned estimates)."""
    pytest.importorskip("qiskit_aer")
    from qcnn.circuits import linf_tomography

    x = np.array([0.5, -0.3, 0.2, -0.6, 0.1, 0.35, -0.25, 0.05])
    unit = x / np.linalg.norm(x)
    shots, reps = 30, 400
    circ = linf_tomography(x, shots=shots, repeats=reps, seed=5).estimate  # (reps, 8)
    emu = tomography_estimate(
        np.tile(unit, (reps, 1)), 1.0, np.random.default_rng(6), shots=shots, batch_dims=1
    )
    for i in range(len(x)):
        values = np.unique(np.concatenate([circ[:, i], emu[:, i]]).round(9))
        a = np.array([(circ[:, i].round(9) == v).sum() for v in values])
        b = np.array([(emu[:, i].round(9) == v).sum() for v in values])
        keep = (a + b) >= 10
        table = np.array([np.append(a[keep], a[~keep].sum()), np.append(b[keep], b[~keep].sum())])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] > 1:
            assert stats.chi2_contingency(table).pvalue > P_MIN, i


# -- the sign step's bias (issue 17, item 3; docs/theory.md §2) -------------------------------


def _heavy_tailed(rng: np.random.Generator, d: int) -> np.ndarray:
    """Student-t(2) entries times U^2: most entries small, a few large (as the gradients)."""
    return rng.standard_t(2.0, size=d) * rng.random(d) ** 2


def test_kp_signs_flip_small_positive_entries_far_more_often_than_negative_ones():
    """The KP rule (+1 iff n(0, i) > 0.4 n_i) is biased: for an observed entry the sign count
    n(0, i) ~ Bin(N, (x_i + sqrt(n_i / N))^2 / 4) (the marginal of the step's multinomial) has
    mean about n_i when x_i > 0 but about 0 when x_i < 0, so a small positive entry (n_i of a
    few) falls to or below 0.4 n_i often, a negative one almost never exceeds it. Measured flip
    counts at d = 1e4, delta = 0.1 agree with that exact law (scipy's binomial), positive flips
    are several times the negative ones, and the summed error is negative with KP signs."""
    d, delta = 10_000, 0.1
    rng = np.random.default_rng(17)
    v = _heavy_tailed(rng, d)
    norm = float(np.linalg.norm(v))
    x = v / norm
    n_shots = tomography_shots(d, delta)
    flips = {1: [0, 0.0, 0.0, 0], -1: [0, 0.0, 0.0, 0]}  # observed, expected, variance, seen
    sum_err = {"kp": [], "exact": []}
    for trial in range(8):
        seed = 1000 + trial
        for signs in ("kp", "exact"):
            est = tomography_estimate(v, delta, np.random.default_rng(seed), signs=signs)
            sum_err[signs].append(float((est - v).sum()) / norm)
        est = tomography_estimate(v, delta, np.random.default_rng(seed), signs="kp")
        seen = est != 0
        counts = np.rint((est[seen] / norm) ** 2 * n_shots).astype(np.int64)
        q = (x[seen] + np.sqrt(counts / n_shots)) ** 2 / 4
        # P(sign +1) = P(Bin(N, q) > 0.4 n_i) = 1 - cdf(floor(0.4 n_i))
        p_plus = stats.binom.sf(np.floor(SIGN_THRESHOLD * counts), n_shots, q)
        for s in (1, -1):
            mine = np.sign(v[seen]) == s
            p_flip = (1 - p_plus[mine]) if s == 1 else p_plus[mine]
            flips[s][0] += int((np.sign(est[seen][mine]) != s).sum())
            flips[s][1] += float(p_flip.sum())
            flips[s][2] += float((p_flip * (1 - p_flip)).sum())
            flips[s][3] += int(mine.sum())
    for s in (1, -1):
        observed, expected, var, _ = flips[s]
        assert abs(observed - expected) <= 5 * math.sqrt(var) + 2, (s, observed, expected)
    rate = {s: flips[s][0] / flips[s][3] for s in (1, -1)}
    assert rate[1] > 0.05 and rate[1] > 5 * rate[-1], rate
    # the bias shows in the sum: KP signs push it down, exact signs leave only the magnitudes'
    # (small entries never observed, both signs alike)
    kp, exact = np.mean(sum_err["kp"]), np.mean(sum_err["exact"])
    assert kp < -0.5 and abs(exact) < abs(kp) / 4, (kp, exact)
