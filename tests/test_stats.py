"""sertune.stats against values worked out by hand or from the formulas themselves.

Expected values never come from scipy.stats.ttest_ind: p-values come from the Student t
CDF written as a regularised incomplete beta function (scipy.special.betainc), quantiles
from bisecting that CDF, and a few from closed forms or printed t tables.
"""

import math

import numpy as np
import pytest
from scipy.special import betainc

from sertune.report.stats import NotComputable, WelchResult, hedges_g, holm, welch


def two_sided_p(t: float, df: float) -> float:
    """P(|T| > |t|) for Student's t with df degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    return float(betainc(df / 2, 0.5, df / (df + t * t)))


def t_quantile(q: float, df: float) -> float:
    """Upper quantile by bisection on the CDF above (independent of scipy.stats.t.ppf)."""
    target = 2 * (1 - q)  # two-sided tail mass at the quantile
    lo, hi = 0.0, 1000.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if two_sided_p(mid, df) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def welch_by_formula(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    va = np.sum((a - a.mean()) ** 2) / (len(a) - 1) / len(a)
    vb = np.sum((b - b.mean()) ** 2) / (len(b) - 1) / len(b)
    se = math.sqrt(va + vb)
    diff = b.mean() - a.mean()
    t = diff / se
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile(0.975, df) * se
    return t, df, two_sided_p(t, df), diff, diff - half, diff + half


# --------------------------------------------------------------------------- welch


def test_welch_exact_hand_example():
    # mean a = 0.55, var a = 1e-4; mean b = 0.58, var b = 4e-4; n = 3 each.
    # se^2 = 5e-4/3, t^2 = 9e-4 / (5e-4/3) = 5.4, df = 25 / (17/2) = 50/17.
    a, b = [0.54, 0.55, 0.56], [0.56, 0.58, 0.60]
    r = welch(a, b)
    assert isinstance(r, WelchResult)
    assert r.t == pytest.approx(math.sqrt(5.4), rel=1e-9)
    assert r.df == pytest.approx(50 / 17, rel=1e-9)
    assert r.diff == pytest.approx(0.03, abs=1e-12)
    assert r.p == pytest.approx(two_sided_p(math.sqrt(5.4), 50 / 17), rel=1e-7)
    # The CI edge is where the test would sit exactly at p = 0.05.
    se = math.sqrt(5e-4 / 3)
    assert two_sided_p((r.ci_high - r.diff) / se, 50 / 17) == pytest.approx(0.05, rel=1e-6)
    assert r.diff - r.ci_low == pytest.approx(r.ci_high - r.diff, rel=1e-12)


def test_welch_df_two_closed_form():
    # a constant, b = (0.5, 0.6, 0.7): df = 2 exactly, t = 0.1 / sqrt(0.01/3) = sqrt(3).
    # For df = 2 the t CDF is closed-form: p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(3/5).
    # t_{0.975, 2} = 4.302653 from printed tables.
    r = welch([0.5, 0.5, 0.5], [0.5, 0.6, 0.7])
    assert r.df == pytest.approx(2.0, rel=1e-12)
    assert r.t == pytest.approx(math.sqrt(3), rel=1e-9)
    assert r.p == pytest.approx(1 - math.sqrt(3 / 5), rel=1e-7)
    half = 4.302653 * math.sqrt(0.01 / 3)
    assert r.ci_low == pytest.approx(0.1 - half, abs=1e-6)
    assert r.ci_high == pytest.approx(0.1 + half, abs=1e-6)


def test_welch_equal_variances_gives_table_quantile():
    # Two groups of 6 with the same spread: Welch df = 10, t_{0.975, 10} = 2.228139 (table).
    a = 0.5 + 0.01 * np.arange(1, 7)
    b = a + 0.02
    r = welch(a, b)
    se = math.sqrt(2 * 3.5e-4 / 6)  # var of 1..6 is 3.5, scaled by 0.01^2
    assert r.df == pytest.approx(10.0, rel=1e-9)
    assert r.t == pytest.approx(0.02 / se, rel=1e-9)
    assert (r.ci_high - r.ci_low) / 2 == pytest.approx(2.228139 * se, rel=1e-6)
    assert r.p == pytest.approx(two_sided_p(0.02 / se, 10), rel=1e-7)
    assert 0.09 < r.p < 0.1  # t = 1.85 on 10 df, two-sided


def test_welch_unequal_sizes_matches_formulas():
    a = [0.551, 0.543, 0.560, 0.548, 0.556, 0.539, 0.552, 0.547]
    b = [0.562, 0.571, 0.549, 0.566, 0.558]
    t, df, p, diff, lo, hi = welch_by_formula(a, b)
    r = welch(a, b)
    assert (r.t, r.df, r.p, r.diff, r.ci_low, r.ci_high) == pytest.approx((t, df, p, diff, lo, hi), rel=1e-6)
    assert r.t > 0 and r.diff > 0  # b is better: the sign points at b


def test_welch_direction_is_b_minus_a():
    a, b = [0.54, 0.55, 0.56], [0.56, 0.58, 0.60]
    fwd, rev = welch(a, b), welch(b, a)
    assert rev.t == pytest.approx(-fwd.t)
    assert rev.diff == pytest.approx(-fwd.diff)
    assert rev.p == pytest.approx(fwd.p)
    assert (rev.ci_low, rev.ci_high) == pytest.approx((-fwd.ci_high, -fwd.ci_low))


@pytest.mark.parametrize(
    "a, b",
    [([0.5], [0.5, 0.6]), ([0.5, 0.6], [0.55]), ([], [0.5, 0.6]), ([0.5, 0.5], [0.6, 0.6])],
)
def test_welch_not_computable(a, b):
    with pytest.raises(NotComputable):
        welch(a, b)


def test_welch_rejects_nan():
    with pytest.raises(ValueError):
        welch([0.5, float("nan")], [0.5, 0.6])


# --------------------------------------------------------------------------- holm


def test_holm_hand_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max so far 0.06
    got = holm([0.01, 0.04, 0.03, 0.005])
    assert got == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_keeps_order():
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([0.2]) == pytest.approx([0.2])
    assert len(holm([])) == 0
    got = holm([0.04, 0.001, 0.04, 0.3])
    assert got == pytest.approx([0.12, 0.004, 0.12, 0.3])


def test_holm_monotone_in_raw_p():
    p = np.array([0.001, 0.011, 0.012, 0.02, 0.3, 0.04, 0.0101])
    adj = holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)
    assert np.all(adj >= p) and np.all(adj <= 1)


def test_holm_rejects_bad_input():
    with pytest.raises(ValueError):
        holm([0.1, float("nan")])
    with pytest.raises(ValueError):
        holm([1.5])


# --------------------------------------------------------------------------- hedges' g


def test_hedges_g_hand_example():
    # pooled var = (2*1e-4 + 2*4e-4)/4 = 2.5e-4, d = 0.03/sqrt(2.5e-4) = sqrt(3.6),
    # J = 1 - 3/(4*6 - 9) = 0.8
    g = hedges_g([0.54, 0.55, 0.56], [0.56, 0.58, 0.60])
    assert g == pytest.approx(0.8 * math.sqrt(3.6), rel=1e-9)
    assert hedges_g([0.56, 0.58, 0.60], [0.54, 0.55, 0.56]) == pytest.approx(-g)


def test_hedges_g_unequal_sizes_matches_formula():
    a = np.array([0.551, 0.543, 0.560, 0.548, 0.556, 0.539, 0.552, 0.547])
    b = np.array([0.562, 0.571, 0.549, 0.566, 0.558])
    ss = np.sum((a - a.mean()) ** 2) + np.sum((b - b.mean()) ** 2)
    d = (b.mean() - a.mean()) / math.sqrt(ss / (len(a) + len(b) - 2))
    assert hedges_g(a, b) == pytest.approx(d * (1 - 3 / (4 * 13 - 9)), rel=1e-9)


def test_hedges_g_not_computable():
    with pytest.raises(NotComputable):
        hedges_g([0.5], [0.5, 0.6])
    with pytest.raises(NotComputable):
        hedges_g([0.5, 0.5], [0.6, 0.6])
