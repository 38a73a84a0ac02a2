"""The statistics behind `sertune report`: Welch's t-test, Holm's correction, Hedges' g.

Pure functions of arrays of per-seed UARs. Group ``a`` is always the baseline (N_att = 1)
and ``b`` the configuration compared with it, so a positive difference means ``b`` is better.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

ArrayLike = Sequence[float] | np.ndarray


class NotComputable(ValueError):
    """A statistic that the data cannot support (too few seeds, no variance at all).

    Raised instead of returning NaN so that the caller has to say why a cell is empty.
    """


@dataclass(frozen=True)
class WelchResult:
    t: float
    df: float  # Welch–Satterthwaite degrees of freedom (not an integer in general)
    p: float  # two-sided
    diff: float  # mean(b) - mean(a)
    ci_low: float
    ci_high: float


def _sample(x: ArrayLike, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if len(x) < 2:
        raise NotComputable(f"{name} has {len(x)} value(s); at least 2 are needed for a variance")
    return x


def welch(a: ArrayLike, b: ArrayLike, confidence: float = 0.95) -> WelchResult:
    """Welch's two-sided t-test of b against a, and a CI for mean(b) - mean(a).

    Unequal variances are assumed because seeds of different architectures need not spread
    alike, and group sizes may differ when some runs failed.
    """
    a, b = _sample(a, "a"), _sample(b, "b")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se2 = va + vb
    if se2 == 0:
        # Both groups constant: t is 0/0 or ±inf, neither of which is a test result.
        raise NotComputable("both groups have zero variance")
    df = se2**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    diff = float(b.mean() - a.mean())
    with warnings.catch_warnings():
        # scipy flags a constant group as "catastrophic cancellation"; its variance is an
        # exact 0 and the other group's carries the test (se2 > 0 was checked above).
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        res = sps.ttest_ind(b, a, equal_var=False)
    half = float(sps.t.ppf(0.5 + confidence / 2, df) * np.sqrt(se2))
    return WelchResult(
        t=float(res.statistic),
        df=float(df),
        p=float(res.pvalue),
        diff=diff,
        ci_low=diff - half,
        ci_high=diff + half,
    )


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the order given.

    The running maximum keeps the adjusted values monotone in the raw ones, so a
    comparison is never declared significant while a smaller raw p is not.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError("pvalues must be one-dimensional")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("pvalues must lie in [0, 1]")
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def hedges_g(a: ArrayLike, b: ArrayLike) -> float:
    """Standardised mean difference (b - a) with the small-sample bias correction.

    Cohen's d over-estimates the effect with ten-odd seeds per group; J = 1 - 3/(4N - 9)
    (N = n_a + n_b) is Hedges' approximation of the exact gamma-function correction.
    """
    a, b = _sample(a, "a"), _sample(b, "b")
    na, nb = len(a), len(b)
    pooled = np.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if pooled == 0:
        raise NotComputable("both groups have zero variance")
    d = (b.mean() - a.mean()) / pooled
    return float(d * (1 - 3 / (4 * (na + nb) - 9)))
