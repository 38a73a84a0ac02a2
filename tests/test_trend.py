"""The trend over N_att, checked against values worked out independently: a case done by hand
(one degree of freedom, where t is Cauchy and p has a closed form), scipy's linregress, and a
simulation of its error rate and interval coverage on the paper's grid."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from sertune.report.stats import NotComputable
from sertune.report.trend import log2_trend

GRID = (1, 2, 4, 8, 16, 32, 64)


def test_by_hand():
    t = log2_trend([1, 2, 4], [1.0, 2.0, 4.0])  # log2 x = 0, 1, 2
    assert t.slope == pytest.approx(1.5) and t.intercept == pytest.approx(5 / 6)
    se = math.sqrt((1 / 36 + 1 / 9 + 1 / 36) / 1 / 2)  # residuals 1/6, -1/3, 1/6; n - 2 = 1; Sxx = 2
    assert t.p == pytest.approx(1 - 2 / math.pi * math.atan(1.5 / se))  # t with 1 df is Cauchy
    assert t.ci_high - t.slope == pytest.approx(math.tan(math.pi * 0.475) * se)  # its 97.5 % point
    assert (t.n, t.levels) == (3, 3)


def test_matches_scipy_linregress_with_unequal_seeds_per_n_att():
    rng = np.random.default_rng(3)
    n_att = np.repeat(GRID, [18, 10, 10, 10, 10, 10, 18])
    uar = 0.46 + 0.001 * np.log2(n_att) + rng.normal(0, 0.014, len(n_att))
    t, ref = log2_trend(n_att, uar), sps.linregress(np.log2(n_att), uar)
    assert t.slope == pytest.approx(ref.slope) and t.intercept == pytest.approx(ref.intercept)
    assert t.p == pytest.approx(ref.pvalue)
    half = sps.t.ppf(0.975, len(uar) - 2) * ref.stderr
    assert (t.ci_low, t.ci_high) == pytest.approx((ref.slope - half, ref.slope + half))


def test_false_positive_rate_and_coverage_by_simulation():
    rng = np.random.default_rng(0)
    n_att = np.repeat(GRID, 10)
    reps, true_slope = 2000, 0.002
    null_hits = covered = 0
    for _ in range(reps):
        noise = rng.normal(0, 0.015, len(n_att))
        null_hits += log2_trend(n_att, 0.46 + noise).p < 0.05
        t = log2_trend(n_att, 0.46 + true_slope * np.log2(n_att) + noise)
        covered += t.ci_low <= true_slope <= t.ci_high
    assert null_hits / reps == pytest.approx(0.05, abs=0.015)
    assert covered / reps == pytest.approx(0.95, abs=0.015)


def test_two_n_att_or_a_perfect_line_is_not_a_trend():
    with pytest.raises(NotComputable, match="2 N_att value"):
        log2_trend([1, 1, 64, 64], [0.4, 0.5, 0.45, 0.5])
    with pytest.raises(NotComputable, match="no residual"):  # a line that floating point does not hit exactly
        log2_trend(np.repeat(GRID, 2), 0.41 + 0.0037 * np.log2(np.repeat(GRID, 2)))
    with pytest.raises(NotComputable, match="no residual"):  # a collapsed model: the same UAR every run
        log2_trend(np.repeat(GRID, 3), np.full(21, 0.125))
