"""What each comparison's Δ can carry beyond Welch's test: paired figures, the speaker-clustered
bootstrap, the variance components and (given a margin) the verdict. One document for stats.json,
rendered to Markdown for table.md; each figure comes from its own module.
"""

from __future__ import annotations

import math

import pandas as pd

from sertune.report import components as comp
from sertune.report import paired as pair
from sertune.report import speakers
from sertune.report import verdict as ver
from sertune.report.stats import NotComputable
from sertune.report.summary import BASELINE, CONFIDENCE, model_name


def _arm(df: pd.DataFrame, n_att: int) -> pd.DataFrame:
    return df[df["n_att"] == n_att].sort_values("seed")


def _paired(a: pd.DataFrame, b: pd.DataFrame) -> dict | None:
    _, x, y = pair.shared(a["seed"], a["uar"], b["seed"], b["uar"])
    try:
        r = pair.paired(x, y, CONFIDENCE)
    except NotComputable:
        return None
    return {"n_pairs": r.n_pairs, "diff": r.diff, "sd": r.sd, "ci": [r.ci_low, r.ci_high], "p_t": r.p_t,
            "p_sign_flip": r.p_perm, "r": r.r}


def _speakers(pred: pd.DataFrame | None, a: pd.DataFrame, b: pd.DataFrame, n_att: int) -> dict | None:
    if pred is None or len(a) < 2 or len(b) < 2:
        return None
    n_classes = int(max(pred["label_id"].max(), pred["pred_id"].max())) + 1  # a class never seen adds no recall
    s = speakers.for_pair(pred, a["seed"], b["seed"], n_att, BASELINE, n_classes, CONFIDENCE)
    return {"diff": s.diff, "ci": [s.clustered_low, s.clustered_high], "ci90": [s.clustered_low90, s.clustered_high90],
            "se": s.se_clustered, "se_speakers": s.se_speakers, "se_seeds": s.se_seeds, "dominant": s.dominant,
            "seeds_resampled": "jointly (shared seeds)" if s.paired else "each arm on its own",
            "half_width_floor": float(1.959964 * s.se_speakers), "n_actors": s.n_actors,
            "n_resamples": s.n_resamples, "run_sd_speakers": {str(BASELINE): s.run_sd_speakers_a,
                                                              str(n_att): s.run_sd_speakers_b}}


def _verdict(a: pd.DataFrame, b: pd.DataFrame, margin: float, clustered: dict | None) -> dict | None:
    if len(a) < 2 or len(b) < 2:
        return None
    v = ver.seed_verdict(a["uar"].to_numpy(float), b["uar"].to_numpy(float), margin)
    doc = {"margin": margin, "seed_only": {"verdict": v.verdict, "ci90": [v.low90, v.high90], "p_gain": v.p_gain,
                                           "p_below": v.p_below, "p_equivalent_tost": v.p_equivalent}}
    if clustered is not None:
        doc["speaker_clustered"] = {"verdict": ver.from_interval(*clustered["ci90"], margin),
                                    "ci90": clustered["ci90"]}
    doc["verdict"] = doc.get("speaker_clustered", doc["seed_only"])["verdict"]
    doc["decided_by"] = "speaker_clustered" if clustered is not None else "seed_only"
    return doc


def _components(rows: pd.DataFrame) -> dict | None:
    try:
        c = comp.components(rows)
    except NotComputable:
        return None
    return {"n_seeds": c.n_seeds, "n_folds": c.n_folds, "sd_seed": math.sqrt(c.seed_var),
            "sd_fold": math.sqrt(c.fold_var), "sd_seed_x_fold": math.sqrt(c.residual_var),
            "sd_run_over_seeds": math.sqrt(c.run_var)}


def evidence(df: pd.DataFrame, pred: pd.DataFrame | None, margin: float | None) -> dict:
    """The document: ``comparisons`` (one per N_att != 1) and ``components`` (one per N_att)."""
    base = _arm(df, BASELINE)
    out = {"margin": margin, "predictions": pred is not None, "comparisons": [], "components": []}
    for n_att in sorted(int(n) for n in df["n_att"].unique()):
        arm = _arm(df, n_att)
        out["components"].append({"model": model_name(n_att), "n_att": n_att, "fold_components": _components(arm)})
        if n_att == BASELINE:
            continue
        clustered = _speakers(pred, base, arm, n_att)
        out["comparisons"].append({
            "model": model_name(n_att), "n_att": n_att, "paired": _paired(base, arm), "speaker_clustered": clustered,
            "verdict": _verdict(base, arm, margin, clustered) if margin is not None else None,
        })
    for c in out["components"]:  # the speaker part of one run's spread, where a bootstrap measured it
        for k in out["comparisons"]:
            sd = (k["speaker_clustered"] or {}).get("run_sd_speakers", {}).get(str(c["n_att"]))
            if sd is not None:
                c["sd_speakers_one_run"] = sd
    return out


METHODS = {
    "paired": "arms' UAR at the seeds both ran: mean and sd of b - a, scipy ttest_rel CI and p, sign-flip "
              "permutation p (scipy permutation_test, 10000 resamples or every sign pattern), Pearson r",
    "speaker_clustered": "percentile bootstrap (scipy, 10000 resamples, fixed seed) of mean UAR(b) - mean UAR(a) "
                         "from the per-utterance predictions, resampling the actors (all their utterances, in "
                         "every run of both arms) and the seeds (jointly when the arms share every seed); "
                         "se_speakers: actors only, runs fixed; se_seeds: seeds only, actors fixed; "
                         "half_width_floor: 1.96 se_speakers, the 95 % half-width more seeds cannot go below",
    "verdict": "two one-sided tests at 0.05 against the margin m (Welch: statsmodels ttest_ind, value=m), i.e. "
               "where the 90 % interval lies: above m 'gain of at least m shown', below m 'gain of m or more "
               "excluded', across m 'undecided'; TOST p for |diff| < m; the speaker-clustered interval decides "
               "where predictions exist (it holds the seeds' uncertainty too)",
    "fold_components": "REML mixed model (statsmodels MixedLM) of the per-fold test UARs with crossed random "
                       "effects seed and fold; sd_seed_x_fold is the residual; sd_speakers_one_run: bootstrap sd "
                       "of one run's UAR over resampled actors",
}


def _ci(lo_hi) -> str:
    return f"[{lo_hi[0]:+.4f}, {lo_hi[1]:+.4f}]"


def verdict_sentences(doc: dict) -> list[str]:
    lines = []
    for k in doc["comparisons"]:
        v = k["verdict"]
        if v is None:
            continue
        m = v["margin"]
        s = (f"**{k['model']} − {model_name(BASELINE)}, margin {m:g}: {ver.words(v['verdict'], m)}** "
             f"(decided by the {v['decided_by'].replace('_', '-')} 90 % CI")
        if "speaker_clustered" in v:
            s += (f" {_ci(v['speaker_clustered']['ci90'])}; seed-only Welch 90 % CI {_ci(v['seed_only']['ci90'])}: "
                  f"{ver.words(v['seed_only']['verdict'], m)}")
        else:
            s += f" {_ci(v['seed_only']['ci90'])}; no predictions, speakers not resampled"
        s += f"; TOST |Δ| < {m:g}: p = {v['seed_only']['p_equivalent_tost']:.3f})."
        lines.append(s)
    return lines


def markdown(doc: dict, summary: pd.DataFrame) -> list[str]:
    lines = []
    rows = []
    for k in doc["comparisons"]:
        r = summary[summary["n_att"] == k["n_att"]].iloc[0]
        welch = f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]" if not math.isnan(r.ci_low) else "n/c"
        s, p = k["speaker_clustered"], k["paired"]
        rows.append([k["model"], welch,
                     _ci(s["ci"]) if s else "—", f"{s['se_seeds']:.4f} / {s['se_speakers']:.4f}" if s else "—",
                     s["dominant"] if s else "—",
                     f"{p['diff']:+.4f} {_ci(p['ci'])} (n = {p['n_pairs']})" if p else "—",
                     f"{p['p_sign_flip']:.3f}" if p else "—", f"{p['r']:+.2f}" if p else "—"])
    if rows:
        head = ["Model", "Δ seed-only 95 % CI", "Δ speaker-clustered 95 % CI", "se seeds / speakers", "dominates",
                "paired Δ [95 % CI]", "sign-flip p", "r"]
        lines += ["", "| " + " | ".join(head) + " |", "|:--|" + "--:|" * (len(head) - 1),
                  *("| " + " | ".join(x) + " |" for x in rows), "",
                  f"Speaker-clustered: actors and seeds resampled together from the per-utterance predictions "
                  f"(— : no predictions). se: bootstrap standard error of Δ with only seeds or only speakers "
                  f"resampled; more seeds shrink the first, never the second. Paired: the seeds both arms ran "
                  f"(r: their correlation; pairing pays when r > 0)."]
    comps = [c for c in doc["components"] if c["fold_components"] or "sd_speakers_one_run" in c]
    if comps:
        head = ["Model", "sd of a run (seeds)", "seed", "fold", "seed × fold", "speakers (one run)"]
        lines += ["", "| " + " | ".join(head) + " |", "|:--|" + "--:|" * (len(head) - 1)]
        for c in comps:
            f = c["fold_components"]
            cells = [f"{f['sd_run_over_seeds']:.4f}", f"{f['sd_seed']:.4f}", f"{f['sd_fold']:.4f}",
                     f"{f['sd_seed_x_fold']:.4f}"] if f else ["—"] * 4
            spk = c.get("sd_speakers_one_run")
            lines.append(f"| {c['model']} | " + " | ".join(cells) + f" | {spk:.4f} |" if spk is not None
                         else f"| {c['model']} | " + " | ".join(cells) + " | — |")
        lines += ["", "Variance components (sd) of a run's test UAR: seed, fold and seed × fold from a REML mixed "
                      "model of the per-fold UARs; speakers: how far one run's UAR moves over resampled actors."]
    sentences = verdict_sentences(doc)
    if sentences:
        lines += ["", *sentences]
        if len(sentences) > 1:
            lines += ["", "Each verdict answers its own question at level 0.05 (no multiplicity correction): "
                          "ask it of the comparison chosen in advance (the paper's: LSTM-v-64)."]
    return lines
