"""The verdict against a margin m: is a gain of at least m shown, excluded, or neither?

Two one-sided tests at level 0.05 decide, which is the same as asking where a 90 % interval
lies: above m, *gain of at least m shown*; below m, *gain of m or more excluded*; across m,
*undecided*. TOST's "|Δ| < m" (equivalence) is reported beside them. The seed-only tests are
statsmodels' Welch t-tests; the speaker-clustered verdict reads the same rule off the two-level
bootstrap's 90 % interval (report/speakers.py), which also holds the seeds' uncertainty, so when
predictions exist it is the one stated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind, ttost_ind

ALPHA = 0.05
SHOWN, EXCLUDED, UNDECIDED = "gain of at least m shown", "gain of m or more excluded", "undecided"


def words(verdict: str, margin: float) -> str:
    return verdict.replace(" m ", f" {margin:g} ")


def from_interval(low: float, high: float, margin: float) -> str:
    """The verdict of a (1 - 2 alpha) interval: each bound is a one-sided alpha test against m."""
    if low > margin:
        return SHOWN
    if high < margin:
        return EXCLUDED
    return UNDECIDED


@dataclass(frozen=True)
class SeedVerdict:
    margin: float
    verdict: str
    low90: float  # Welch 90 % interval of Δ: the interval that decides
    high90: float
    p_gain: float  # H0 Δ <= m against Δ > m
    p_below: float  # H0 Δ >= m against Δ < m
    p_equivalent: float  # TOST, H0 |Δ| >= m


def seed_verdict(a: np.ndarray, b: np.ndarray, margin: float) -> SeedVerdict:
    """Δ = mean(b) − mean(a) over seeds (Welch: unequal variances, unpaired)."""
    _, p_gain, _ = ttest_ind(b, a, alternative="larger", usevar="unequal", value=margin)
    _, p_below, _ = ttest_ind(b, a, alternative="smaller", usevar="unequal", value=margin)
    p_eq, _, _ = ttost_ind(b, a, -margin, margin, usevar="unequal")
    low, high = CompareMeans(DescrStatsW(b), DescrStatsW(a)).tconfint_diff(alpha=2 * ALPHA, usevar="unequal")
    verdict = SHOWN if p_gain < ALPHA else EXCLUDED if p_below < ALPHA else UNDECIDED
    return SeedVerdict(margin, verdict, float(low), float(high), float(p_gain), float(p_below), float(p_eq))
