"""Tests of l-infinity tomography as pixel sampling (model §2.4-2.5), ``qcnn.quantum.sampling``.

Statistical checks use fixed seeds and state their tolerance: chi-square goodness of fit at
p > 1e-3, and means compared within 5 standard errors (each derived in the test).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from qcnn.quantum import (
    expected_distinct_fraction,
    implied_eta,
    sample_pixels,
    sampled_values,
    shots_from_sigma,
    tomography_shots,
)

P_MIN = 1e-3


def _rows() -> np.ndarray:
    """Three rows with zeros, a dominant pixel, and very different overall scales."""
    rng = np.random.default_rng(11)
    a = rng.uniform(0.0, 1.0, 12)
    a[[2, 7]] = 0.0
    b = np.array([5.0, 0.1, 0.1, 0.0, 2.0, 0.3, 0.0, 0.0, 1.0, 0.5, 0.05, 0.0])
    c = 1e3 * rng.uniform(0.0, 1.0, 12)  # scale must not matter
    c[0] = 0.0
    return np.stack([a, b, c])


@pytest.mark.parametrize("power", [1, 2])
def test_frequencies_are_value_proportional(power):
    values = _rows()
    shots = 40_000
    counts = sample_pixels(values, shots, np.random.default_rng(2024), power=power)
    assert counts.dtype == np.int64 and counts.shape == values.shape
    for row, cnt in zip(values, counts, strict=True):
        w = row**power
        live = w > 0
        assert cnt[~live].sum() == 0  # zero-valued pixels are never drawn
        expected = shots * w[live] / w.sum()
        chi = stats.chisquare(cnt[live], expected)
        assert chi.pvalue > P_MIN, (power, chi)


def test_power_two_differs_from_power_one():
    """The ablation must really change the distribution (a chi-square test can tell them apart)."""
    values = _rows()[1:2]
    counts = sample_pixels(values, 40_000, np.random.default_rng(5), power=2)
    live = values[0] > 0
    expected_p1 = 40_000 * values[0, live] / values[0].sum()
    assert stats.chisquare(counts[0, live], expected_p1).pvalue < 1e-12


def test_joint_sampling_over_the_whole_row():
    """One pixel holding 90 % of the mass gets about 90 % of the shots, whatever its position."""
    values = np.ones((1, 100))
    values[0, 57] = 9 * 99  # 90 % of the total
    shots = 10_000
    counts = sample_pixels(values, shots, np.random.default_rng(0))
    p = values[0, 57] / values.sum()
    assert p == pytest.approx(0.9)
    se = math.sqrt(p * (1 - p) / shots)
    assert abs(counts[0, 57] / shots - p) < 5 * se


def test_live_rows_sum_to_shots_and_zero_rows_give_zeros_without_warnings():
    rng = np.random.default_rng(3)
    values = rng.exponential(size=(50, 37)) * (rng.random((50, 37)) < 0.3)
    values[[0, 13, 49]] = 0.0  # dead rows, including first and last
    values[5] = 0.0
    values[5, -1] = 1e-12  # a row with one tiny pixel, at the end
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            counts = sample_pixels(values, 17, np.random.default_rng(1))
    live = values.sum(axis=1) > 0
    assert np.all(counts[live].sum(axis=1) == 17)
    assert np.all(counts[~live] == 0)
    assert counts[5, -1] == 17  # all shots on the only non-zero pixel
    assert np.all(counts[values == 0] == 0)
    assert np.all(counts >= 0)


def test_all_zero_batch_and_zero_shots():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            z = sample_pixels(np.zeros((4, 6)), 10, np.random.default_rng(0))
            assert z.shape == (4, 6) and not z.any()
            e = sample_pixels(np.zeros((0, 6)), 10, np.random.default_rng(0))
            assert e.shape == (0, 6)
            n = sample_pixels(np.ones((3, 5)), 0, np.random.default_rng(0))
            assert n.shape == (3, 5) and not n.any()
            assert sampled_values(np.zeros((4, 6)), z, "tomography").sum() == 0
            assert expected_distinct_fraction(np.zeros((2, 3)), 10).tolist() == [0.0, 0.0]


def test_same_seed_same_counts_and_rows_are_independent_of_batching():
    values = _rows()
    a = sample_pixels(values, 100, np.random.default_rng(9))
    b = sample_pixels(values, 100, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    c = sample_pixels(values, 100, np.random.default_rng(10))
    assert not np.array_equal(a, c)


def test_integer_and_float32_inputs():
    counts = sample_pixels(np.array([[0, 3, 1]], dtype=np.int32), 1000, np.random.default_rng(0))
    assert counts.sum() == 1000 and counts[0, 0] == 0
    f32 = sample_pixels(np.array([[0.5, 0.0, 0.5]], np.float32), 7, np.random.default_rng(0))
    assert f32.sum() == 7 and f32[0, 1] == 0


@pytest.mark.parametrize(
    ("values", "shots", "power", "match"),
    [
        (np.array([[1.0, -0.1]]), 5, 1, "non-negative"),
        (np.array([[1.0, 2.0]]), -1, 1, "shots"),
        (np.array([[1.0, 2.0]]), 2.5, 1, "shots"),
        (np.array([[1.0, 2.0]]), "3", 1, "shots"),
        (np.array([1.0, 2.0]), 5, 1, "shape"),
        (np.ones((2, 2, 2)), 5, 1, "shape"),
        (np.array([[1.0, 2.0]]), 5, 3, "power"),
        (np.array([[1.0, 2.0]]), 5, 0, "power"),
    ],
)
def test_sample_pixels_validates_its_inputs(values, shots, power, match):
    with pytest.raises(ValueError, match=match):
        sample_pixels(values, shots, np.random.default_rng(0), power=power)


# -- distinct pixels ----------------------------------------------------------------------------


def test_expected_distinct_fraction_closed_form():
    values = _rows()
    for power in (1, 2):
        for shots in (1, 5, 40):
            got = expected_distinct_fraction(values, shots, power)
            for row, g in zip(values, got, strict=True):
                p = row**power / (row**power).sum()
                want = sum(1.0 - (1.0 - pi) ** shots for pi in p) / row.size
                assert g == pytest.approx(want, rel=1e-12)
    # one shot draws exactly one pixel
    assert expected_distinct_fraction(values, 1) == pytest.approx(1.0 / values.shape[1])


def test_expected_distinct_fraction_matches_simulation():
    row = _rows()[1]
    shots, reps = 6, 20_000
    counts = sample_pixels(np.tile(row, (reps, 1)), shots, np.random.default_rng(77))
    distinct = (counts > 0).mean(axis=1)
    want = expected_distinct_fraction(row[None], shots)[0]
    se = distinct.std(ddof=1) / math.sqrt(reps)
    assert abs(distinct.mean() - want) < 5 * se
    # and per pixel: P(drawn) = 1 - (1 - p)^N
    p = row / row.sum()
    hit = (counts > 0).mean(axis=0)
    se_pix = np.sqrt(np.maximum(hit * (1 - hit), 1e-12) / reps)
    np.testing.assert_array_less(np.abs(hit - (1 - (1 - p) ** shots)), 5 * se_pix + 1e-12)


# -- shot counts --------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 3, 10, 484 * 5, 2560, 10**6])
@pytest.mark.parametrize("eta", [0.05, 0.1, 0.3, 1.0, 2.5])
def test_tomography_shots_formula(d, eta):
    assert tomography_shots(d, eta) == math.ceil(36 * math.log(d) / eta**2)
    assert tomography_shots(np.int64(d), eta) == tomography_shots(d, eta)


def test_tomography_shots_values_and_edge_cases():
    assert tomography_shots(2560, 0.1) == 28_252  # 36 ln 2560 / 0.01 = 28251.9
    assert tomography_shots(1, 0.1) == 1  # ln 1 = 0: one shot still measures the state
    assert tomography_shots(2, 100.0) == 1
    # smaller eta, more shots
    assert tomography_shots(100, 0.05) > tomography_shots(100, 0.1)


@pytest.mark.parametrize(
    ("d", "eta"),
    [(0, 0.1), (-3, 0.1), (2.0, 0.1), (10, 0.0), (10, -0.1), (10, float("nan")), (10, math.inf)],
)
def test_tomography_shots_rejects_bad_arguments(d, eta):
    with pytest.raises(ValueError):
        tomography_shots(d, eta)


def test_shots_from_sigma_and_implied_eta():
    assert shots_from_sigma(2420, 0.5) == 1210
    assert shots_from_sigma(2560, 0.1) == int(0.1 * 2560)
    assert shots_from_sigma(3, 0.1) == 1  # at least one shot
    assert shots_from_sigma(10, 1.0) == 10
    for bad in (0.0, -0.5, 1.01):
        with pytest.raises(ValueError, match="sigma"):
            shots_from_sigma(10, bad)
    for d in (10, 2560):
        for n in (1, 50, 1280, 99_999):
            eta = implied_eta(d, n)
            assert eta == pytest.approx(math.sqrt(36 * math.log(d) / n))
            assert tomography_shots(d, eta) in (n, n + 1)  # inverse up to the ceil's rounding
    assert implied_eta(1, 10) == 0.0


# -- values written back ------------------------------------------------------------------------


def test_sampled_values_exact_keeps_drawn_values():
    values = np.array([[0.5, 2.0, 0.0, 1.0], [3.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    counts = np.array([[2, 0, 0, 1], [3, 0, 0, 0]])
    out = sampled_values(values, counts, "exact")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0.5, 0.0, 0.0, 1.0], [3.0, 0.0, 0.0, 0.0]])


def test_sampled_values_tomography_formula():
    values = np.array([[0.5, 2.0, 0.0, 1.5], [0.0, 0.0, 0.0, 0.0]])
    counts = np.array([[1, 2, 0, 1], [0, 0, 0, 0]])
    out = sampled_values(values, counts, "tomography")
    np.testing.assert_allclose(out[0], np.array([1, 2, 0, 1]) / 4 * 4.0)
    assert not out[1].any()
    # power 2: (n/N)^(1/2) ||f||_2
    out2 = sampled_values(values, counts, "tomography", power=2)
    np.testing.assert_allclose(out2[0], np.sqrt(np.array([1, 2, 0, 1]) / 4) * np.sqrt(6.5))
    with pytest.raises(ValueError, match="mode"):
        sampled_values(values, counts, "median")


def test_tomography_estimate_is_unbiased_and_exact_mode_is_not():
    """E[(n/N) sum f] = f; E[exact mode] = f P(drawn) = f (1 - (1 - p)^N)."""
    row = np.array([3.0, 1.0, 0.5, 0.25, 0.0, 2.0, 0.1])
    shots, reps = 8, 40_000
    vals = np.tile(row, (reps, 1))
    counts = sample_pixels(vals, shots, np.random.default_rng(123))
    tomo = sampled_values(vals, counts, "tomography")
    exact = sampled_values(vals, counts, "exact")
    se_t = tomo.std(axis=0, ddof=1) / math.sqrt(reps) + 1e-12
    assert np.all(np.abs(tomo.mean(axis=0) - row) < 5 * se_t)
    np.testing.assert_allclose(tomo.sum(axis=1), row.sum())  # every image keeps its total
    p = row / row.sum()
    want_exact = row * (1 - (1 - p) ** shots)
    se_e = exact.std(axis=0, ddof=1) / math.sqrt(reps) + 1e-12
    assert np.all(np.abs(exact.mean(axis=0) - want_exact) < 5 * se_e)
    # the difference is real for the small pixels (bias >> standard error)
    assert row[6] - exact.mean(axis=0)[6] > 20 * se_e[6]
