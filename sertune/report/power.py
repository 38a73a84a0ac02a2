"""What a comparison of seeds can carry: the smallest difference the design detects, the seeds
an observed difference would need, and bootstrap intervals for the difference and for
P(N_att = k beats N_att = 1).

Pure functions of the per-seed UARs of the baseline ``a`` and a configuration ``b``. Power is
that of the report's own test, Welch's two-sided t-test: under a true difference d its statistic
follows a noncentral t with Welch's degrees of freedom and noncentrality d / se.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

ALPHA, POWER = 0.05, 0.80
MAX_SEEDS = 100_000  # beyond this, "needs more seeds than anyone will run"


def welch_power(diff: float, sd_a: float, sd_b: float, n_a: int, n_b: int, alpha: float = ALPHA) -> float:
    """Probability that Welch's two-sided test at level alpha rejects when the true difference is ``diff``."""
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    crit = sps.t.ppf(1 - alpha / 2, df)
    nc = abs(diff) / se
    # The far tail (rejecting in the wrong direction) is tiny; scipy returns NaN for it at large nc.
    wrong_tail = float(np.nan_to_num(sps.nct.cdf(-crit, df, nc)))
    return float(min(1.0, sps.nct.sf(crit, df, nc) + wrong_tail))


def min_detectable_difference(sd_a: float, sd_b: float, n_a: int, n_b: int,
                              alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest |difference| that the design detects with probability ``power``."""
    se = math.sqrt(sd_a**2 / n_a + sd_b**2 / n_b)
    hi = se  # widen until the power is reached: with 2-3 seeds the critical t is large (12.7 at df 1)
    while welch_power(hi, sd_a, sd_b, n_a, n_b, alpha) < power:
        hi *= 2
        if hi > 1e6 * se:
            return math.inf
    return float(optimize.brentq(lambda d: welch_power(d, sd_a, sd_b, n_a, n_b, alpha) - power, 0.0, hi))


def seeds_needed(diff: float, sd_a: float, sd_b: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Seeds per arm (equal arms) for Welch's test to detect ``diff`` with probability ``power``;
    None when no number of seeds up to MAX_SEEDS would (a zero difference never is)."""
    if diff == 0 or welch_power(diff, sd_a, sd_b, MAX_SEEDS, MAX_SEEDS, alpha) < power:
        return None
    lo, hi = 2, MAX_SEEDS  # power grows with n: bisect for the first n that reaches it
    while lo < hi:
        mid = (lo + hi) // 2
        if welch_power(diff, sd_a, sd_b, mid, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return lo


def superiority(a: np.ndarray, b: np.ndarray) -> float:
    """P(a seed of b scores above a seed of a), ties counting one half (the common-language
    effect size: the AUC of b against a)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = b[:, None] - a[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def _superiority_rows(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """``superiority`` of each resample (row), in blocks: resamples x n_b x n_a comparisons."""
    d = rb[:, :, None] - ra[:, None, :]
    return (d > 0).mean((1, 2)) + 0.5 * (d == 0).mean((1, 2))


@dataclass(frozen=True)
class Bootstrap:
    diff_ci: tuple[float, float]  # 95 % percentile interval of mean(b) - mean(a)
    superiority: float
    superiority_ci: tuple[float, float]
    resamples: int


def bootstrap(a, b, resamples: int = 10_000, confidence: float = 0.95, seed: int = 0) -> Bootstrap:
    """Percentile bootstrap, each group resampled with replacement on its own (seeds are
    independent runs); a fixed seed makes the report reproducible."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    ra = a[rng.integers(len(a), size=(resamples, len(a)))]
    rb = b[rng.integers(len(b), size=(resamples, len(b)))]
    diffs = rb.mean(1) - ra.mean(1)
    gt = np.concatenate([_superiority_rows(ra[i : i + 1000], rb[i : i + 1000]) for i in range(0, resamples, 1000)])
    q = [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100]
    lo, hi = np.percentile(diffs, q)
    slo, shi = np.percentile(gt, q)
    return Bootstrap((float(lo), float(hi)), superiority(a, b), (float(slo), float(shi)), resamples)


def design(a, b, alpha: float = ALPHA, power: float = POWER) -> dict:
    """Everything above for one comparison, as the report's stats.json records it."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    sd_a, sd_b = a.std(ddof=1), b.std(ddof=1)
    boot = bootstrap(a, b)
    diff = float(b.mean() - a.mean())
    return {
        "alpha": alpha, "power": power,
        "min_detectable_diff": min_detectable_difference(sd_a, sd_b, len(a), len(b), alpha, power),
        "seeds_needed_per_arm": seeds_needed(diff, sd_a, sd_b, alpha, power),
        "bootstrap_diff_ci": list(boot.diff_ci),
        "p_superiority": boot.superiority,
        "p_superiority_ci": list(boot.superiority_ci),
        "bootstrap_resamples": boot.resamples,
    }
