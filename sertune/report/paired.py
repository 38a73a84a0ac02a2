"""Paired statistics where two arms share seeds: Δ per seed, its t CI, a sign-flip permutation p.

A seed fixes the batch order, the dropout masks and every initial weight but the attention
vectors' (training/model.py), so runs of two N_att with one seed are common random numbers:
if they correlate, the per-seed differences spread less than the arms do and pairing narrows the
CI. ``r`` says whether they do; the unpaired (Welch) figures stay beside these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from sertune.report.stats import NotComputable

N_PERMUTATIONS = 10_000  # beyond 2**n pairs scipy enumerates every sign pattern exactly


@dataclass(frozen=True)
class PairedResult:
    n_pairs: int
    diff: float  # mean over shared seeds of b - a
    sd: float  # sd of the per-seed differences
    ci_low: float
    ci_high: float
    p_t: float  # ttest_rel, two-sided
    p_perm: float  # sign-flip permutation, two-sided
    r: float  # Pearson correlation of the arms over shared seeds


def shared(seeds_a, uar_a, seeds_b, uar_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seeds both arms ran, and each arm's UAR at them, in seed order."""
    a = dict(zip((int(s) for s in seeds_a), uar_a))
    b = dict(zip((int(s) for s in seeds_b), uar_b))
    common = np.array(sorted(set(a) & set(b)), dtype=int)
    return common, np.array([a[s] for s in common], float), np.array([b[s] for s in common], float)


def paired(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> PairedResult:
    """``a``, ``b``: the two arms' UAR at the same seeds, in the same order."""
    if len(a) < 3:
        raise NotComputable(f"{len(a)} shared seed(s); a paired test needs at least 3")
    d = b - a
    if np.ptp(d) == 0 or np.ptp(a) == 0 or np.ptp(b) == 0:
        raise NotComputable("the per-seed differences or an arm are constant")
    t = sps.ttest_rel(b, a)
    ci = t.confidence_interval(confidence)
    perm = sps.permutation_test((b, a), lambda x, y, axis=-1: np.mean(x - y, axis=axis), vectorized=True,
                                permutation_type="samples", n_resamples=N_PERMUTATIONS,
                                rng=np.random.default_rng(0))
    return PairedResult(n_pairs=len(d), diff=float(d.mean()), sd=float(d.std(ddof=1)), ci_low=float(ci.low),
                        ci_high=float(ci.high), p_t=float(t.pvalue), p_perm=float(perm.pvalue),
                        r=float(sps.pearsonr(a, b).statistic))
