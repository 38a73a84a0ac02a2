"""Does UAR rise with the number of attention vectors? One test over every run of the grid.

The pairwise tests ask, N_att by N_att, whether 10 seeds tell k apart from 1; with seven N_att
they also pay Holm's correction. The paper's claim is a direction — more vectors, better UAR —
and a least-squares line of UAR on log2(N_att) through every run asks exactly that, with all
runs behind one slope: the change in UAR per doubling of N_att, its confidence interval and
the two-sided p of slope = 0 (t with n - 2 degrees of freedom). Runs are independent seeds;
the line assumes the trend is linear in log2(N_att), as the paper's grid of doublings suggests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from sertune.report.stats import ArrayLike, NotComputable

MIN_LEVELS = 3  # with two N_att the slope is the pairwise difference again


@dataclass(frozen=True)
class Trend:
    slope: float  # UAR per doubling of N_att
    ci_low: float
    ci_high: float
    p: float  # two-sided, slope = 0
    intercept: float  # fitted UAR at N_att = 1
    n: int  # runs
    levels: int  # distinct N_att
    confidence: float  # of the interval


def log2_trend(n_att: ArrayLike, uar: ArrayLike, confidence: float = 0.95) -> Trend:
    x, y = np.log2(np.asarray(n_att, dtype=float)), np.asarray(uar, dtype=float)
    levels = len(np.unique(x))
    if levels < MIN_LEVELS:
        raise NotComputable(f"{levels} N_att value(s); a trend needs at least {MIN_LEVELS}")
    dx = x - x.mean()
    slope = float(dx @ (y - y.mean()) / (dx @ dx))
    intercept = float(y.mean() - slope * x.mean())
    dof = len(x) - 2
    residual_var = float(((y - intercept - slope * x) ** 2).sum() / dof)
    if residual_var <= (1e-9 * max(float(np.abs(y).max()), 1.0)) ** 2:  # rounding, not spread
        raise NotComputable("every run lies on the line: no residual variance")
    se = (residual_var / (dx @ dx)) ** 0.5
    half = float(sps.t.ppf(0.5 + confidence / 2, dof)) * se
    p = float(2 * sps.t.sf(abs(slope) / se, dof))
    return Trend(slope, slope - half, slope + half, p, intercept, len(x), levels, confidence)


def grid_trend(df) -> tuple[Trend | None, str]:
    """The trend of a report's validated rows, or None and why not."""
    try:
        return log2_trend(df["n_att"].to_numpy(), df["uar"].to_numpy()), ""
    except NotComputable as e:
        return None, str(e)


def trend_line(t: Trend) -> str:
    p = f"{t.p:.3f}" if t.p >= 0.001 else f"{t.p:.1e}"
    return (f"Trend over N_att: {t.slope:+.4f} UAR per doubling [{t.confidence * 100:g} % CI {t.ci_low:+.4f}, "
            f"{t.ci_high:+.4f}], "
            f"p = {p} (least squares of UAR on log2 N_att over all {t.n} runs, {t.levels} N_att).")


def trend_document(t: Trend | None, why: str) -> dict:
    if t is None:
        return {"computable": False, "note": why}
    return {"computable": True, "slope_per_doubling": t.slope, "ci_low": t.ci_low, "ci_high": t.ci_high,
            "confidence": t.confidence, "p": t.p, "intercept": t.intercept, "n_runs": t.n, "n_att_levels": t.levels}
