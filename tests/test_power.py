"""The report's design figures, checked against values worked out independently: a Monte-Carlo
simulation of Welch's test (scipy's ttest_ind, not the noncentral t used by the code), the normal
approximation for large samples, and hand-counted pairs."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from sertune.report.power import bootstrap, design, min_detectable_difference, seeds_needed, superiority, welch_power

# The paper's Table: LSTM-v-1 0.5510 ± 0.0071, LSTM-v-64 0.5598 ± 0.0083, 10 runs, numpy std (ddof = 0).
SD_A, SD_B = 0.0071 * math.sqrt(10 / 9), 0.0083 * math.sqrt(10 / 9)


def simulated_power(diff, sd_a, sd_b, n_a, n_b, reps=40_000, seed=1):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, sd_a, (reps, n_a))
    b = rng.normal(diff, sd_b, (reps, n_b))
    return float((sps.ttest_ind(b, a, axis=1, equal_var=False).pvalue < 0.05).mean())


def test_min_detectable_difference_has_80_percent_power_by_simulation():
    mdd = min_detectable_difference(SD_A, SD_B, 10, 10)
    assert simulated_power(mdd, SD_A, SD_B, 10, 10) == pytest.approx(0.80, abs=0.01)
    assert simulated_power(mdd / 2, SD_A, SD_B, 10, 10) < 0.4
    assert 0.0095 < mdd < 0.0120  # the paper's design detects about 0.011, above its own 0.0088


def test_large_samples_match_the_normal_approximation():
    mdd = min_detectable_difference(1.0, 1.0, 1000, 1000)
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.80)
    assert mdd == pytest.approx(z * math.sqrt(2 / 1000), rel=0.005)


def test_seeds_needed_is_the_first_n_with_enough_power():
    mdd10 = min_detectable_difference(SD_A, SD_B, 10, 10)
    assert seeds_needed(mdd10 * 1.001, SD_A, SD_B) == 10
    n = seeds_needed(0.0088, SD_A, SD_B)
    assert welch_power(0.0088, SD_A, SD_B, n, n) >= 0.8 > welch_power(0.0088, SD_A, SD_B, n - 1, n - 1)
    assert 12 <= n <= 18
    assert seeds_needed(0.0, SD_A, SD_B) is None


def test_superiority_by_hand():
    assert superiority([1, 2, 3], [2, 4]) == pytest.approx(4.5 / 6)  # 2>1, 2=2 (half), 4>1,2,3
    assert superiority([1, 2], [1, 2]) == pytest.approx(0.5)


def test_bootstrap_interval_matches_the_normal_interval_for_large_samples():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.50, 0.03, 200), rng.normal(0.51, 0.04, 200)
    boot = bootstrap(a, b)
    se = math.sqrt(a.var(ddof=1) / 200 + b.var(ddof=1) / 200)
    diff = b.mean() - a.mean()
    assert boot.diff_ci[0] == pytest.approx(diff - 1.96 * se, abs=0.15 * se)
    assert boot.diff_ci[1] == pytest.approx(diff + 1.96 * se, abs=0.15 * se)
    assert boot.superiority_ci[0] < superiority(a, b) < boot.superiority_ci[1]


def test_design_document():
    a = [0.548, 0.556, 0.551, 0.559, 0.545, 0.552, 0.547, 0.560, 0.541, 0.553]
    b = [0.560, 0.552, 0.567, 0.571, 0.558, 0.563, 0.555, 0.569, 0.561, 0.566]
    d = design(a, b)
    assert d["seeds_needed_per_arm"] <= 10 and d["p_superiority"] > 0.8
    assert d["bootstrap_diff_ci"][0] > 0 and d == design(a, b)  # reproducible: a fixed bootstrap seed


def test_the_report_carries_the_design_and_per_fold_uars():
    import json

    import pandas as pd

    from sertune.report import render_report

    a = [0.548, 0.556, 0.551, 0.559, 0.545]
    b = [0.560, 0.552, 0.567, 0.571, 0.558]
    folds = {0: [0.5, 0.6, 0.4], 1: [0.52, 0.62, 0.41], 2: [0.49, 0.58, 0.43], 3: [0.5, 0.61, 0.42], 4: [0.51, 0.6, 0.4]}
    rows = [{"n_att": n, "seed": s, "uar": u, "fold_uar": json.dumps(folds[s])}
            for n, us in ((1, a), (64, b)) for s, u in enumerate(us)]
    files = render_report(pd.DataFrame(rows))
    stats = json.loads(files["stats.json"])
    want = design(a, b)
    got = stats["comparisons"][0]["design"]
    assert got["min_detectable_diff"] == pytest.approx(want["min_detectable_diff"])
    assert got["seeds_needed_per_arm"] == want["seeds_needed_per_arm"]
    assert got["bootstrap_diff_ci"] == pytest.approx(want["bootstrap_diff_ci"])
    assert got["p_superiority"] == pytest.approx(superiority(a, b)) == pytest.approx(0.88)  # 22 of 25 pairs, counted by hand
    per_fold = np.array([folds[s] for s in range(5)])
    assert stats["configs"][0]["fold_uar_mean"] == pytest.approx(per_fold.mean(0).tolist())
    assert stats["configs"][0]["fold_uar_std"] == pytest.approx(per_fold.std(0, ddof=1).tolist())
    md = files["table.md"].decode()
    assert "| LSTM-v-64 | " + f"{want['min_detectable_diff']:.4f}" in md


def test_two_seeds_per_arm_still_give_a_detectable_difference():
    """With 2 seeds (df about 2) the critical t is large: the search widens until it finds the 80 % point."""
    mdd = min_detectable_difference(0.01, 0.01, 2, 2)
    assert math.isfinite(mdd) and welch_power(mdd, 0.01, 0.01, 2, 2) == pytest.approx(0.8, abs=1e-6)
