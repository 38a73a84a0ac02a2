"""The statistics that decide the paper's question (report/verdict.py, paired.py, speakers.py,
components.py), each against a value worked out here another way, and `sertune report --margin`
on a real sweep's rows and per-utterance predictions."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from sertune import predictions
from sertune.cli import cli
from sertune.report import components, paired, speakers, verdict
from sertune.report.stats import NotComputable


def _welch_by_hand(a, b):
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return b.mean() - a.mean(), se, df


@pytest.mark.parametrize("shift, expected", [(0.030, verdict.SHOWN), (-0.010, verdict.EXCLUDED),
                                             (0.009, verdict.UNDECIDED)])
def test_seed_verdict_is_two_one_sided_welch_tests(shift, expected):
    rng = np.random.default_rng(1)
    a = 0.55 + 0.008 * rng.standard_normal(40)
    b = 0.55 + shift + 0.012 * rng.standard_normal(30)
    m = 0.009
    v = verdict.seed_verdict(a, b, m)
    diff, se, df = _welch_by_hand(a, b)
    assert v.p_gain == pytest.approx(sps.t.sf((diff - m) / se, df), rel=1e-9)
    assert v.p_below == pytest.approx(sps.t.cdf((diff - m) / se, df), rel=1e-9)
    # TOST: the larger of the two one-sided p's at -m and +m.
    tost = max(sps.t.sf((diff + m) / se, df), sps.t.cdf((diff - m) / se, df))
    assert v.p_equivalent == pytest.approx(tost, rel=1e-9)
    half = sps.t.ppf(0.95, df) * se
    assert (v.low90, v.high90) == pytest.approx((diff - half, diff + half), rel=1e-9)
    assert v.verdict == expected == verdict.from_interval(v.low90, v.high90, m)


def test_paired_figures_match_their_definitions():
    rng = np.random.default_rng(2)
    common = rng.standard_normal(8) * 0.01  # what a seed shares between the arms: r > 0
    a = 0.55 + common + 0.004 * rng.standard_normal(8)
    b = 0.56 + common + 0.004 * rng.standard_normal(8)
    r = paired.paired(a, b)
    d = b - a
    half = sps.t.ppf(0.975, 7) * d.std(ddof=1) / np.sqrt(8)
    assert (r.diff, r.sd) == pytest.approx((d.mean(), d.std(ddof=1)))
    assert (r.ci_low, r.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    # Every one of the 2**8 sign patterns, counted here: scipy's exact sign-flip p.
    flips = [abs(np.mean(d * s)) >= abs(d.mean()) - 1e-15 for s in itertools.product([1, -1], repeat=8)]
    assert r.p_perm == pytest.approx(np.mean(flips))
    assert r.r == pytest.approx(np.corrcoef(a, b)[0, 1]) and r.r > 0.5
    seeds, x, y = paired.shared([3, 1, 2, 7], [0.3, 0.1, 0.2, 0.7], [2, 1, 9], [0.25, 0.15, 0.9])
    assert seeds.tolist() == [1, 2] and x.tolist() == [0.1, 0.2] and y.tolist() == [0.15, 0.25]
    with pytest.raises(NotComputable):
        paired.paired(x, y)


def test_components_equal_the_anova_estimates_of_a_balanced_table():
    """On a balanced seeds × folds table REML's components are the ANOVA (method of moments) ones
    when those are positive: worked out here from the mean squares."""
    rng = np.random.default_rng(3)
    S, F = 40, 5
    u = (0.5 + 0.01 * rng.standard_normal((S, 1)) + 0.03 * rng.standard_normal((1, F))
         + 0.02 * rng.standard_normal((S, F)))
    rows = pd.DataFrame({"seed": range(S), "uar": u.mean(1), "fold_uar": [json.dumps(r.tolist()) for r in u]})
    c = components.components(rows)
    g = u.mean()
    ms_seed = F * ((u.mean(1) - g) ** 2).sum() / (S - 1)
    ms_fold = S * ((u.mean(0) - g) ** 2).sum() / (F - 1)
    resid = u - u.mean(1, keepdims=True) - u.mean(0, keepdims=True) + g
    ms_res = (resid**2).sum() / ((S - 1) * (F - 1))
    assert c.residual_var == pytest.approx(ms_res, rel=1e-3)
    assert c.seed_var == pytest.approx((ms_seed - ms_res) / F, rel=1e-2)
    assert c.fold_var == pytest.approx((ms_fold - ms_res) / S, rel=1e-2)
    assert c.run_var == pytest.approx(u.mean(1).var(ddof=1))
    with pytest.raises(NotComputable):
        components.components(rows.assign(fold_uar="[0.5]"))


def _fake_predictions(n_seeds=6, n_actors=12, seed=4):
    """Runs of two arms where speakers differ a lot in difficulty (what the bootstrap must see)."""
    rng = np.random.default_rng(seed)
    skill = rng.uniform(0.2, 0.9, n_actors)
    rows = []
    for n_att, gain in ((1, 0.0), (64, 0.05)):
        for s in range(n_seeds):
            for a in range(n_actors):
                for c in range(8):
                    for k in range(2 if c == 0 else 4):
                        label = c
                        ok = rng.random() < min(skill[a] + gain, 1.0)
                        pred = label if ok else (label + 1 + rng.integers(7)) % 8
                        rows.append((n_att, s, f"u{a}-{c}-{k}", a + 1, 0, label, pred))
    return pd.DataFrame(rows, columns=["n_att", "seed", "utt_id", "actor", "fold", "label_id", "pred_id"])


def _uar(df):
    return df.assign(ok=df.label_id == df.pred_id).groupby("label_id").ok.mean().mean()


def test_speaker_bootstrap_against_a_loop_over_resampled_rows():
    pred = _fake_predictions()
    seeds = list(range(6))
    res = speakers.for_pair(pred, seeds, seeds, 64, 1, 8, n_resamples=4000)
    runs = {k: _uar(g) for k, g in pred.groupby(["n_att", "seed"])}
    assert res.diff == pytest.approx(np.mean([runs[64, s] for s in seeds]) - np.mean([runs[1, s] for s in seeds]))
    assert res.paired
    # The speaker-only bootstrap, done the slow way: redraw actors, regroup their rows, recompute.
    rng = np.random.default_rng(10)
    by_actor = dict(tuple(pred.groupby("actor")))
    draws = []
    for _ in range(300):
        picked = pd.concat([by_actor[a] for a in rng.choice(list(by_actor), len(by_actor))])
        u = {k: _uar(g) for k, g in picked.groupby(["n_att", "seed"])}
        draws.append(np.mean([u[64, s] for s in seeds]) - np.mean([u[1, s] for s in seeds]))
    assert res.se_speakers == pytest.approx(np.std(draws, ddof=1), rel=0.2)
    # Speakers differ far more than these seeds do: they dominate, and the clustered CI holds both.
    assert res.dominant == "speakers" and res.se_clustered >= res.se_speakers
    assert res.clustered_low < res.clustered_low90 < res.diff < res.clustered_high90 < res.clustered_high
    assert res.clustered_high - res.clustered_low > 2 * 1.96 * res.se_seeds


def test_speaker_bootstrap_needs_every_rows_predictions():
    pred = _fake_predictions(n_seeds=2)
    with pytest.raises(Exception, match="n_att=64 seed=5"):
        speakers.for_pair(pred, [0, 1], [0, 5], 64, 1, 8)


# --- end to end: a real sweep (3 folds, 3 seeds per arm), its predictions, `sertune report --margin`.

def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


@pytest.fixture(scope="module")
def sweep(synth_store, ray_local, tmp_path_factory):
    work = tmp_path_factory.mktemp("verdict")
    r = run("sweep", "--store", synth_store, "--experiment-dir", work / "exp", "--no-tuned", "--n-att", "1,4",
            "--seeds", 3, "--epochs", 1, "--folds", 3, "--cpus-per-trial", 1)
    assert r.exit_code == 0, r.output
    return work / "exp"


def test_report_margin_prints_the_verdict_clustered_ci_components_and_paired(sweep):
    r = run("report", "--experiment-dir", sweep, "--margin", 0.009)
    assert r.exit_code == 0, r.output
    doc = json.loads((sweep / "report" / "stats.json").read_text())["evidence"]
    (k,) = doc["comparisons"]
    v, s, p = k["verdict"], k["speaker_clustered"], k["paired"]
    assert v["decided_by"] == "speaker_clustered" and v["margin"] == 0.009
    assert v["verdict"] == verdict.from_interval(*s["ci90"], 0.009)
    assert f"**LSTM-v-4 − LSTM-v-1, margin 0.009: {verdict.words(v['verdict'], 0.009)}**" in r.output
    assert f"[{s['ci'][0]:+.4f}, {s['ci'][1]:+.4f}]" in r.output
    assert p["n_pairs"] == 3 and f"(n = 3)" in r.output
    rows = pd.read_parquet(sweep / "sweep" / "results.parquet").sort_values("seed")
    a, b = rows[rows.n_att == 1].uar.to_numpy(), rows[rows.n_att == 4].uar.to_numpy()
    assert p["diff"] == pytest.approx((b - a).mean()) and s["diff"] == pytest.approx(b.mean() - a.mean())
    comps = {c["n_att"]: c for c in doc["components"]}
    assert comps[1]["fold_components"]["n_folds"] == 3 and "sd_speakers_one_run" in comps[4]
    assert "| LSTM-v-1 | " in r.output.split("seed × fold")[1]


def test_report_margin_without_predictions_is_seed_only_and_says_so(sweep, tmp_path):
    results = tmp_path / "results.parquet"
    results.write_bytes((sweep / "sweep" / "results.parquet").read_bytes())
    r = CliRunner().invoke(cli, ["report", "--results", str(results), "--out", str(tmp_path / "r"),
                               "--margin", "0.05"])
    assert r.exit_code == 0, r.output
    assert "speakers not resampled" in r.stderr
    (k,) = json.loads((tmp_path / "r" / "stats.json").read_text())["evidence"]["comparisons"]
    assert k["verdict"]["decided_by"] == "seed_only" and k["speaker_clustered"] is None


@pytest.mark.parametrize("args, code, message", [
    (["--margin", "0"], 2, "Invalid value for '--margin'"),
    (["--predictions", "nowhere"], 2, "Invalid value for --predictions: "),
])
def test_report_bad_margin_or_predictions(sweep, args, code, message):
    r = run("report", "--experiment-dir", sweep, "--out", sweep / "other-report", *args)
    assert r.exit_code == code and message in r.output, r.output
    assert len(r.output.strip().splitlines()[-1]) < 200 and "nowhere: no predictions" in r.output or "--margin" in args
    assert not (sweep / "other-report").exists()


def test_report_refuses_rows_without_their_predictions(sweep, tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    for f in (sweep / "sweep" / "results.predictions").iterdir():
        if f.name != predictions.file_name(4, 2):
            (pred / f.name).write_bytes(f.read_bytes())
    r = run("report", "--experiment-dir", sweep, "--out", tmp_path / "r", "--predictions", pred)
    assert r.exit_code == 5 and "no predictions for the row n_att=4 seed=2" in r.output, r.output
    assert not (tmp_path / "r").exists()
