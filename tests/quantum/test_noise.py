"""The fast Gaussian noise source: distribution, determinism, dtypes (qcnn.quantum.noise)."""

import numpy as np
import pytest
from scipy import stats

from qcnn.quantum import noise


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 2, 7, 1001, 300_001, 700_001])  # odd sizes, both code paths
def test_standard_normal_is_standard_normal(dtype, size):
    x = noise.standard_normal(np.random.default_rng(123), (size,), dtype)
    assert x.shape == (size,) and x.dtype == dtype and np.isfinite(x).all()
    if size >= 1000:
        # Kolmogorov-Smirnov against N(0, 1): a wrong scale (e.g. sqrt(-ln U)) or a missing
        # half (cos only, sin part left uninitialised) fails at these sizes.
        assert stats.kstest(x.astype(np.float64), "norm").pvalue > 1e-3
        # the two Box-Muller halves are independent: no correlation between x[i] and x[i + n/2]
        half = size // 2
        r = np.corrcoef(x[:half], x[size - half :])[0, 1]
        assert abs(r) < 5 / np.sqrt(half)


def test_parallel_path_is_used_and_distribution_holds(monkeypatch):
    monkeypatch.setattr(noise, "_MIN_PARALLEL", 1000)
    x = noise.standard_normal(np.random.default_rng(5), (200_000,), np.float32)
    assert stats.kstest(x.astype(np.float64), "norm").pvalue > 1e-3
    # the two threads' halves are different streams, not copies of one another
    assert not np.array_equal(x[:100_000], x[100_000:])


def test_same_generator_state_same_numbers_and_shape():
    a = noise.standard_normal(np.random.default_rng(9), (600, 1000))
    b = noise.standard_normal(np.random.default_rng(9), (600, 1000))
    c = noise.standard_normal(np.random.default_rng(10), (600, 1000))
    assert a.shape == (600, 1000)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_generator_advances_between_calls():
    rng = np.random.default_rng(0)
    assert not np.array_equal(
        noise.standard_normal(rng, (5000,)), noise.standard_normal(rng, (5000,))
    )


def test_rejects_integer_dtype():
    with pytest.raises(TypeError, match="float32 and float64"):
        noise.standard_normal(np.random.default_rng(0), (3,), np.int64)
