"""The report's tables: Markdown, LaTeX, CSV and stats.json, all rendered from a summary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sertune.report.components import per_fold
from sertune.report.summary import BASELINE, CONFIDENCE, TABLE_COLUMNS, model_name, report_warnings
from sertune.report.trend import Trend, trend_line

NC = "n/c"  # how a statistic the data cannot support is shown, instead of a bare NaN


def _num(x: float, digits: int, sign: bool = False, latex: bool = False) -> str:
    s = f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"
    return s.replace("-", "$-$") if latex else s


def _pval(p: float, latex: bool = False) -> str:
    # Two significant digits at least, so that p = 0.0087 does not read as 0.009.
    if p >= 0.01:
        return f"{p:.3f}"
    if p >= 0.001:
        return f"{p:.4f}"
    mant, exp = f"{p:.1e}".split("e")
    return f"${mant}\\times 10^{{{int(exp)}}}$" if latex else f"{mant}e{int(exp)}"


def _cells(r, latex: bool) -> list[str]:
    """One row's cells; the same text for Markdown and LaTeX except for markup."""
    def bold(s: str, on: bool) -> str:
        return (f"\\textbf{{{s}}}" if latex else f"**{s}**") if on else s

    pm = " $\\pm$ " if latex else " ± "
    dash = "--" if latex else "—"
    std = _num(r.uar_std, 4) if not math.isnan(r.uar_std) else NC
    cells = [
        r.model,
        str(r.n),
        bold(_num(r.uar_mean, 4), r.best_mean) + pm + std,
        bold(_num(r.uar_max, 4), r.best_max),
    ]
    if r.n_att == BASELINE:
        return cells + [dash] * 5
    if math.isnan(r.p):
        return cells + [NC] * 5
    ci = (
        f"{_num(r.diff, 4, True, latex)} "
        f"[{_num(r.ci_low, 4, True, latex)}, {_num(r.ci_high, 4, True, latex)}]"
    )
    return cells + [
        _num(r.t, 2, latex=latex),
        _pval(r.p, latex),
        _pval(r.p_holm, latex),
        _num(r.hedges_g, 2, latex=latex),
        ci,
    ]


def _legend(summary: pd.DataFrame) -> str:
    m = int(summary["p"].notna().sum())
    return (
        f"Test UAR over seeds (std with ddof = 1). Bold: best mean and best max. "
        f"t, p: Welch's two-sided t-test against {model_name(BASELINE)}; "
        f"p (Holm): Holm-corrected over {m} comparison{'s' if m != 1 else ''}; "
        f"g: Hedges' g; Δ: mean difference to {model_name(BASELINE)} with its "
        f"{CONFIDENCE * 100:g} % Welch confidence interval. {NC}: not computable."
    )


def markdown_table(summary: pd.DataFrame, trend: tuple[Trend | None, str] = (None, ""),
                   beyond: list[str] = ()) -> str:
    """The table, its legend, warnings, the design table, ``beyond`` (report/evidence.py: paired,
    speaker-clustered, variance components, verdict) and (three N_att or more) the trend line."""
    head = ["Model", "n", "UAR mean ± std", "UAR max", "t", "p", "p (Holm)", "Hedges' g", "Δ mean [95 % CI]"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|:--|" + "--:|" * (len(head) - 1),
        *("| " + " | ".join(_cells(r, latex=False)) + " |" for r in summary.itertuples()),
        "",
        _legend(summary),
    ]
    notes = report_warnings(summary)
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    lines += design_markdown(summary)
    lines += list(beyond)
    if trend[0] is not None:
        lines += ["", trend_line(trend[0])]
    return "\n".join(lines) + "\n"


def design_markdown(summary: pd.DataFrame) -> list[str]:
    """What the comparison can carry, beside the test: the smallest difference these seeds detect,
    the seeds per arm the observed difference would need, bootstrap intervals."""
    rows = summary[summary["mdd"].notna()]
    if rows.empty:
        return []
    head = ["Model", "detectable Δ (80 % power)", "seeds/arm for observed Δ", "Δ bootstrap 95 % CI",
            f"P(beats {model_name(BASELINE)}) [95 % CI]"]
    lines = ["", "| " + " | ".join(head) + " |", "|:--|" + "--:|" * (len(head) - 1)]
    for r in rows.itertuples():
        need = str(int(r.seeds_needed)) if not math.isnan(r.seeds_needed) else "never"
        lines.append(f"| {r.model} | {r.mdd:.4f} | {need} | [{_num(r.boot_low, 4, True)}, {_num(r.boot_high, 4, True)}] | "
                     f"{r.p_sup:.2f} [{r.p_sup_low:.2f}, {r.p_sup_high:.2f}] |")
    lines += ["", "Detectable Δ: the smallest |mean difference| Welch's test (α = 0.05, two-sided) finds with "
                  "80 % power at these seeds and spreads; seeds/arm: equal arms needed for the observed Δ "
                  "(never: more than 100 000). Bootstrap: 10 000 percentile resamples of the seeds, fixed seed. "
                  "P(beats): the chance a seed of the model scores above a seed of the baseline (ties half)."]
    return lines


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        s = s.replace(a, b)
    return s


def latex_table(summary: pd.DataFrame) -> str:
    head = [
        "Model", "$n$", "UAR mean $\\pm$ std", "UAR max", "$t$", "$p$",
        "$p_{\\mathrm{Holm}}$", "$g$", "$\\Delta$ mean [95\\,\\% CI]",
    ]  # fmt: skip
    body = [" & ".join(_cells(r, latex=True)) + " \\\\" for r in summary.itertuples()]
    legend = _tex_escape(_legend(summary)).replace("Δ", "$\\Delta$").replace("±", "$\\pm$")
    notes = " ".join(_tex_escape(n).rstrip(".") + "." for n in report_warnings(summary))
    return "\n".join(
        [
            "% sertune report; needs \\usepackage{booktabs}",
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{legend}{' ' + notes if notes else ''}}}",
            "\\label{tab:uar-natt}",
            "\\begin{tabular}{lrrrrrrrr}",
            "\\toprule",
            " & ".join(head) + " \\\\",
            "\\midrule",
            *body,
            "\\bottomrule",
            "\\end{tabular}",
            "\\end{table}",
            "",
        ]
    )


def csv_table(summary: pd.DataFrame) -> str:
    return summary[list(TABLE_COLUMNS)].to_csv(index=False, na_rep="")


def _clean(x):
    """JSON-safe: numpy scalars to Python, NaN to null (json.dumps would write bare NaN)."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(x) else float(x)
    return x


def stats_document(df: pd.DataFrame, summary: pd.DataFrame, source: str | None = None) -> dict:
    seeds = {int(k): g.sort_values("seed") for k, g in df.groupby("n_att")}
    configs, comparisons = [], []
    for r in summary.itertuples():
        g = seeds[r.n_att]
        configs.append(
            {
                "model": r.model,
                "n_att": r.n_att,
                "n": r.n,
                "seeds": g["seed"].tolist(),
                "uar": g["uar"].tolist(),
                "uar_mean": r.uar_mean,
                "uar_std": r.uar_std,
                "uar_max": r.uar_max,
                "std_computable": not math.isnan(r.uar_std),
                "best_mean": r.best_mean,
                "best_max": r.best_max,
                **_folds(g),
                "note": r.note or None,
            }
        )
        if r.n_att != BASELINE:
            comparisons.append(
                {
                    "model": r.model,
                    "n_att": r.n_att,
                    "baseline": model_name(BASELINE),
                    "computable": not math.isnan(r.p),
                    "t": r.t,
                    "df": r.welch_df,
                    "p": r.p,
                    "p_holm": r.p_holm,
                    "hedges_g": r.hedges_g,
                    "diff": r.diff,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "design": None if math.isnan(r.mdd) else {
                        "min_detectable_diff": r.mdd,
                        "seeds_needed_per_arm": None if math.isnan(r.seeds_needed) else int(r.seeds_needed),
                        "bootstrap_diff_ci": [r.boot_low, r.boot_high],
                        "p_superiority": r.p_sup,
                        "p_superiority_ci": [r.p_sup_low, r.p_sup_high],
                    },
                    "note": r.note or None,
                }
            )
    return _clean(
        {
            "input": source,
            "n_rows": len(df),
            "baseline": {"model": model_name(BASELINE), "n_att": BASELINE},
            "methods": {
                "std": "sample standard deviation (ddof = 1)",
                "test": "Welch's two-sided t-test (unequal variances) against the baseline",
                "multiple_comparisons": "Holm step-down over the computable comparisons",
                "holm_family_size": int(summary["p"].notna().sum()),
                "effect_size": "Hedges' g (pooled-sd Cohen's d times J = 1 - 3/(4(n1+n2)-9))",
                "diff": "mean(N_att) - mean(baseline)",
                "confidence": CONFIDENCE,
                "design": "min_detectable_diff: smallest |diff| Welch's two-sided test at alpha 0.05 detects with "
                          "power 0.8 (noncentral t at the observed spreads and seeds); seeds_needed_per_arm: equal "
                          "arms for power 0.8 at the observed diff (null: never, or more than 100000); "
                          "bootstrap_diff_ci: 95 % percentile interval, 10000 resamples of each group, seed 0; "
                          "p_superiority: P(a seed of N_att beats a seed of the baseline), ties half, with its "
                          "bootstrap interval",
                "uar": "pooled out-of-fold UAR for K-fold rows (one confusion matrix over all folds); "
                       "fold_uar_mean/std: each fold's own test UAR over seeds",
            },
            "configs": configs,
            "comparisons": comparisons,
            "warnings": report_warnings(summary),
        }
    )




def _folds(g: pd.DataFrame) -> dict:
    """Per-fold test UAR over seeds, for rows of a K-fold protocol (fold_uar holds > 1 entry)."""
    folds = per_fold(g)  # seeds x folds
    if folds is None:
        return {}
    std = folds.std(0, ddof=1) if len(folds) >= 2 else np.full(folds.shape[1], np.nan)
    return {"fold_uar_mean": folds.mean(0).tolist(), "fold_uar_std": std.tolist(), "fold_uar": folds.tolist()}


def _class_cell(mean: float, std: float, pm: str) -> str:
    if math.isnan(mean):
        return NC
    return f"{mean:.3f}{pm}{std:.3f}" if not math.isnan(std) else f"{mean:.3f}{pm}{NC}"


def class_markdown(recall: pd.DataFrame, classes: tuple[str, ...]) -> str:
    head = ["Model", "n", *classes]
    lines = ["| " + " | ".join(head) + " |", "|:--|" + "--:|" * (len(head) - 1)]
    for r in recall.to_dict("records"):
        cells = [r["model"], str(r["n"]), *(_class_cell(r[f"{e}_mean"], r[f"{e}_std"], " ± ") for e in classes)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Test recall per class over seeds: mean ± std (ddof = 1). {NC}: not computable."]
    return "\n".join(lines) + "\n"


def class_latex(recall: pd.DataFrame, classes: tuple[str, ...]) -> str:
    body = [" & ".join([r["model"], str(r["n"]), *(_class_cell(r[f"{e}_mean"], r[f"{e}_std"], " $\\pm$ ")
                                                    for e in classes)]) + " \\\\"
            for r in recall.to_dict("records")]
    return "\n".join([
        "% sertune report; needs \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{Test recall per class over seeds: mean $\\pm$ std (ddof = 1). {NC}: not computable.}}",
        "\\label{tab:recall-per-class}",
        "\\begin{tabular}{l" + "r" * (1 + len(classes)) + "}",
        "\\toprule",
        " & ".join(["Model", "$n$", *map(_tex_escape, classes)]) + " \\\\",
        "\\midrule",
        *body,
        "\\bottomrule",
        "\\end{tabular}",
        "\\end{table}",
        "",
    ])


def class_csv(recall: pd.DataFrame) -> str:
    return recall.to_csv(index=False, na_rep="")


def class_document(recall: pd.DataFrame | None, confusion: dict | None, confusion_n_att: list[int],
                   classes: tuple[str, ...] | None) -> dict:
    """The per-class part of stats.json (or why it is missing)."""
    doc: dict = {"classes": list(classes) if classes else None}
    if recall is None:
        doc["note"] = "skipped: the results have no per-class recall (classes and recall columns)"
    else:
        doc["recall"] = [
            {"model": r["model"], "n_att": r["n_att"], "n": r["n"],
             "mean": {e: r[f"{e}_mean"] for e in classes}, "std": {e: r[f"{e}_std"] for e in classes}}
            for r in recall.to_dict("records")
        ]
    if confusion is None:
        doc["confusion_note"] = "skipped: the results have no confusion column"
    else:
        doc["confusion_summed_over_seeds"] = {str(n): confusion[n].astype(int).tolist() for n in confusion_n_att}
    return _clean(doc)
