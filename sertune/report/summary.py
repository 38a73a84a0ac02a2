"""The report's numbers: one row per N_att (``LSTM-v-<N_att>``), each N_att != 1 tested
against N_att = 1 with Welch's t-test, Holm-corrected over all comparisons.

``summarize`` validates its input once; tables and figures render from its result.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sertune import results
from sertune.errors import BaselineMissingError, ResultsError
from sertune.report.power import design
from sertune.report.stats import NotComputable, hedges_g, holm, welch

BASELINE = 1
CONFIDENCE = 0.95
TABLE_COLUMNS = (
    "model", "n_att", "n", "uar_mean", "uar_std", "uar_max",
    "t", "p", "p_holm", "hedges_g", "diff", "ci_low", "ci_high",
)  # fmt: skip
TEST_COLUMNS = ("t", "p", "p_holm", "hedges_g", "diff", "ci_low", "ci_high")
# Columns of summarize() beyond table.csv: kept out of the CSV, whose columns are fixed.
EXTRA_COLUMNS = ("welch_df", "best_mean", "best_max", "note")
# What the design can carry (report/power.py), per comparison: kept out of table.csv too.
DESIGN_COLUMNS = ("mdd", "seeds_needed", "boot_low", "boot_high", "p_sup", "p_sup_low", "p_sup_high")


def model_name(n_att: int) -> str:
    return f"LSTM-v-{int(n_att)}"


def groups(df: pd.DataFrame) -> dict[int, np.ndarray]:
    return {
        int(k): g.sort_values("seed")["uar"].to_numpy(dtype=float)
        for k, g in df.groupby("n_att", sort=True)
    }


def checked(df: pd.DataFrame, source: str = "results") -> pd.DataFrame:
    """The per-seed rows, validated (columns, types, keys), non-empty and with a baseline."""
    df = results.validate(df, results.REPORT_COLUMNS, source)
    if df.empty:
        raise ResultsError(f"{source}: no result rows to report")
    if not (df["n_att"] == BASELINE).any():
        found = ", ".join(str(n) for n in sorted(df["n_att"].unique()))
        raise BaselineMissingError(
            f"{source}: no N_att = {BASELINE} rows (found N_att = {found}); "
            f"every test is against {model_name(BASELINE)}"
        )
    return df


def summarize(df: pd.DataFrame, source: str = "results") -> pd.DataFrame:
    """``table(checked(df))``: for callers holding unvalidated rows."""
    return table(checked(df, source))


def table(df: pd.DataFrame) -> pd.DataFrame:
    """The table rows of validated per-seed rows, sorted by n_att: TABLE_COLUMNS, then EXTRA_COLUMNS.

    Test columns are NaN for the baseline row and for comparisons that cannot be computed;
    ``note`` then says why (empty when everything was computed).
    """
    by_n_att = groups(df)
    base = by_n_att[BASELINE]
    rows = []
    for n_att, x in by_n_att.items():
        row = {
            "model": model_name(n_att),
            "n_att": n_att,
            "n": len(x),
            "uar_mean": float(x.mean()),
            "uar_std": float(x.std(ddof=1)) if len(x) >= 2 else math.nan,
            "uar_max": float(x.max()),
            **{c: math.nan for c in TEST_COLUMNS},
            "welch_df": math.nan,
            "note": "",
            **{c: math.nan for c in DESIGN_COLUMNS},
        }
        notes = []
        if len(x) < 2:
            notes.append(f"only {len(x)} seed, std not computable")
        if n_att != BASELINE:
            try:
                w = welch(base, x, CONFIDENCE)
                g = hedges_g(base, x)
            except NotComputable as e:
                if len(base) < 2:
                    why = f"{model_name(BASELINE)} has fewer than 2 seeds"
                elif len(x) < 2:
                    why = "fewer than 2 seeds"
                else:
                    why = str(e)
                notes.append(f"test against {model_name(BASELINE)} not computable ({why})")
            else:
                row.update(t=w.t, p=w.p, welch_df=w.df, hedges_g=g)
                row.update(diff=w.diff, ci_low=w.ci_low, ci_high=w.ci_high)
                row.update(_design(base, x))
        elif len(x) < 2:
            notes.append("no test against it is computable")
        row["note"] = "; ".join(notes)
        rows.append(row)

    summary = pd.DataFrame(rows, columns=[*TABLE_COLUMNS, *EXTRA_COLUMNS, *DESIGN_COLUMNS])
    tested = summary["p"].notna()
    # The family is the comparisons actually made: a test that could not be run has no p.
    summary.loc[tested, "p_holm"] = holm(summary.loc[tested, "p"].to_numpy())
    summary["best_mean"] = np.isclose(summary["uar_mean"], summary["uar_mean"].max(), rtol=0, atol=1e-12)
    summary["best_max"] = np.isclose(summary["uar_max"], summary["uar_max"].max(), rtol=0, atol=1e-12)
    return summary.reset_index(drop=True)


def _design(base: np.ndarray, x: np.ndarray) -> dict:
    d = design(base, x)
    needed = d["seeds_needed_per_arm"]
    return {"mdd": d["min_detectable_diff"], "seeds_needed": math.nan if needed is None else needed,
            "boot_low": d["bootstrap_diff_ci"][0], "boot_high": d["bootstrap_diff_ci"][1],
            "p_sup": d["p_superiority"], "p_sup_low": d["p_superiority_ci"][0], "p_sup_high": d["p_superiority_ci"][1]}


def report_warnings(summary: pd.DataFrame) -> list[str]:
    return [f"{r.model}: {r.note}" for r in summary.itertuples() if r.note]


