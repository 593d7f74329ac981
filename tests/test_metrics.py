"""error_rate_ci: the exact binomial (Clopper-Pearson) interval against its closed forms and its
defining tail equations."""

import numpy as np
import pytest
from scipy.stats import binom

from spikejax.metrics import error_rate_ci


@pytest.mark.parametrize("n", [1, 20, 10000])
def test_zero_and_all_errors_have_closed_forms(n):
    a = 0.05
    lo, hi = error_rate_ci(0, n, 0.95)
    assert lo == 0.0
    np.testing.assert_allclose(hi, 1 - (a / 2) ** (1 / n), rtol=1e-9)
    lo, hi = error_rate_ci(n, n, 0.95)
    assert hi == 1.0
    np.testing.assert_allclose(lo, (a / 2) ** (1 / n), rtol=1e-9)


@pytest.mark.parametrize("k,n,level", [(281, 10000, 0.95), (3, 50, 0.9), (410, 10000, 0.99)])
def test_bounds_solve_the_tail_equations(k, n, level):
    # Clopper-Pearson: P(X >= k | p_low) = P(X <= k | p_high) = (1 - level) / 2
    lo, hi = error_rate_ci(k, n, level)
    a2 = (1 - level) / 2
    np.testing.assert_allclose(binom.sf(k - 1, n, lo), a2, rtol=1e-6)
    np.testing.assert_allclose(binom.cdf(k, n, hi), a2, rtol=1e-6)
    assert lo < k / n < hi


def test_mnist_sized_interval_is_about_a_third_of_a_point():
    # 2.81% on 10,000 digits: the normal approximation gives +-1.96 * sqrt(p (1 - p) / n) = +-0.32 points
    lo, hi = error_rate_ci(281, 10000)
    half = 1.96 * np.sqrt(0.0281 * 0.9719 / 10000)
    np.testing.assert_allclose([lo, hi], [0.0281 - half, 0.0281 + half], atol=3e-4)


@pytest.mark.parametrize(
    "args,msg",
    [((11, 10), "n_errors must lie in"), ((-1, 10), "n_errors must lie in"), ((0, 0), "n \\(number of samples\\)"),
     ((2.5, 10), "whole number"), ((1, 10, 1.0), "level"), ((1, 10, 0.0), "level")],
)
def test_bad_input_is_named(args, msg):
    with pytest.raises(ValueError, match=msg):
        error_rate_ci(*args)
