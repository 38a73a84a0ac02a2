"""`sertune report`: the paper's table and figures from a sweep's per-seed test UARs.

One row per N_att (``LSTM-v-<N_att>``), each N_att != 1 tested against N_att = 1 with
Welch's t-test, Holm-corrected over all comparisons. Everything is rendered in memory
first and then written file by file atomically, so a failure leaves no half-written report.
"""

from __future__ import annotations

import io
import json
import math

import click
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from scipy.stats import gaussian_kde

from sertune import fsutil, paths, results
from sertune.errors import BaselineMissingError, ResultsError
from sertune.stats import NotComputable, hedges_g, holm, welch

BASELINE = 1
CONFIDENCE = 0.95
TABLE_COLUMNS = (
    "model", "n_att", "n", "uar_mean", "uar_std", "uar_max",
    "t", "p", "p_holm", "hedges_g", "diff", "ci_low", "ci_high",
)  # fmt: skip
TEST_COLUMNS = ("t", "p", "p_holm", "hedges_g", "diff", "ci_low", "ci_high")
# Columns of summarize() beyond table.csv: kept out of the CSV, whose columns are fixed.
EXTRA_COLUMNS = ("welch_df", "best_mean", "best_max", "note")
FILES = ("table.md", "table.tex", "table.csv", "stats.json", "uar_kde.png", "uar_vs_natt.png")
NC = "n/c"  # how a statistic the data cannot support is shown, instead of a bare NaN
FIGSIZE = (6.0, 4.0)
DPI = 100


def model_name(n_att: int) -> str:
    return f"LSTM-v-{int(n_att)}"


# --------------------------------------------------------------------------- statistics


def _groups(df: pd.DataFrame) -> dict[int, np.ndarray]:
    return {
        int(k): g.sort_values("seed")["uar"].to_numpy(dtype=float)
        for k, g in df.groupby("n_att", sort=True)
    }


def _checked(df: pd.DataFrame, source: str) -> pd.DataFrame:
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
    """The table rows, sorted by n_att: TABLE_COLUMNS, then EXTRA_COLUMNS.

    Test columns are NaN for the baseline row and for comparisons that cannot be computed;
    ``note`` then says why (empty when everything was computed).
    """
    groups = _groups(_checked(df, source))
    base = groups[BASELINE]
    rows = []
    for n_att, x in groups.items():
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
        elif len(x) < 2:
            notes.append("no test against it is computable")
        row["note"] = "; ".join(notes)
        rows.append(row)

    summary = pd.DataFrame(rows, columns=[*TABLE_COLUMNS, *EXTRA_COLUMNS])
    tested = summary["p"].notna()
    # The family is the comparisons actually made: a test that could not be run has no p.
    summary.loc[tested, "p_holm"] = holm(summary.loc[tested, "p"].to_numpy())
    summary["best_mean"] = np.isclose(summary["uar_mean"], summary["uar_mean"].max(), rtol=0, atol=1e-12)
    summary["best_max"] = np.isclose(summary["uar_max"], summary["uar_max"].max(), rtol=0, atol=1e-12)
    return summary.reset_index(drop=True)


def report_warnings(summary: pd.DataFrame) -> list[str]:
    return [f"{r.model}: {r.note}" for r in summary.itertuples() if r.note]


# --------------------------------------------------------------------------- tables


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


def markdown_table(summary: pd.DataFrame) -> str:
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
    return "\n".join(lines) + "\n"


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


# --------------------------------------------------------------------------- stats.json


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
            },
            "configs": configs,
            "comparisons": comparisons,
            "warnings": report_warnings(summary),
        }
    )


# --------------------------------------------------------------------------- figures


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def kde_selection(summary: pd.DataFrame, kde_n_att: list[int] | None = None) -> list[int]:
    """N_att = 1, the largest N_att, then any requested extras (each once, in that order)."""
    present = [int(n) for n in summary["n_att"]]
    missing = [n for n in (kde_n_att or []) if n not in present]
    if missing:
        raise ValueError(
            f"no rows with N_att = {', '.join(map(str, missing))} "
            f"(present: {', '.join(map(str, present))})"
        )
    chosen = [BASELINE, max(present), *(kde_n_att or [])]
    return list(dict.fromkeys(chosen))


def kde_png(df: pd.DataFrame, n_atts: list[int]) -> bytes:
    return _png(kde_figure(df, n_atts))


def kde_figure(df: pd.DataFrame, n_atts: list[int]) -> Figure:
    """Smoothed UAR distributions of the given N_att values (the paper's Fig. 2)."""
    groups = _groups(df)
    every = np.concatenate([groups[n] for n in n_atts])
    spread = max(float(every.max() - every.min()), 0.01)
    grid = np.linspace(every.min() - 0.5 * spread, every.max() + 0.5 * spread, 512)

    fig = Figure(figsize=FIGSIZE)
    FigureCanvasAgg(fig)  # no pyplot: no global backend, no figure left open between calls
    ax = fig.add_subplot()
    for i, n in enumerate(n_atts):
        x = groups[n]
        color = f"C{i}"
        label = f"{model_name(n)} (n={len(x)}, mean {x.mean():.4f})"
        density = None
        if len(np.unique(x)) >= 2:
            try:
                density = gaussian_kde(x)(grid)
            except np.linalg.LinAlgError:  # near-singular data a unique() check can miss
                density = None
        if density is not None:
            ax.plot(grid, density, color=color, lw=2, label=label)
            ax.fill_between(grid, density, color=color, alpha=0.15)
        else:
            label = f"{model_name(n)} (n={len(x)}): no KDE, < 2 distinct values"
            ax.axvline(x[0], color=color, lw=2, ls="--", label=label)
        # One tick per seed along the bottom, so the raw values stay visible under the smoothing.
        ax.plot(x, np.full(len(x), 0.03), "|", color=color, ms=12, mew=1.5, transform=ax.get_xaxis_transform())
    ax.set_xlim(grid[0], grid[-1])
    # Headroom above the highest curve, so the legend in the corner covers no data.
    ax.set_ylim(0, max(ax.get_ylim()[1], 1.0) * (1.1 + 0.08 * len(n_atts)))
    ax.set_xlabel("Test UAR")
    ax.set_ylabel("Density")
    ax.set_title("UAR over seeds (Gaussian KDE; ticks: single seeds)", fontsize=11)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def uar_vs_natt_png(df: pd.DataFrame, summary: pd.DataFrame) -> bytes:
    return _png(uar_vs_natt_figure(df, summary))


def uar_vs_natt_figure(df: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Mean ± std per N_att over a log2 axis, each seed as a point."""
    groups = _groups(df)
    n_atts = summary["n_att"].to_numpy(dtype=float)

    fig = Figure(figsize=FIGSIZE)
    FigureCanvasAgg(fig)  # no pyplot: no global backend, no figure left open between calls
    ax = fig.add_subplot()
    # Fixed-seed jitter (in log2 units) so that equal UARs do not hide each other and the
    # figure is byte-for-byte reproducible.
    rng = np.random.default_rng(0)
    for j, (n, x) in enumerate(groups.items()):
        xs = n * 2.0 ** rng.uniform(-0.12, 0.12, len(x))
        ax.scatter(xs, x, s=14, color="0.45", alpha=0.6, lw=0, zorder=2, label="single seed" if j == 0 else None)
    std = summary["uar_std"].to_numpy(dtype=float)
    ax.errorbar(
        n_atts, summary["uar_mean"], yerr=np.nan_to_num(std, nan=0.0),
        fmt="o-", color="C0", ms=6, lw=1.8, capsize=4, zorder=3, label="mean ± std",
    )  # fmt: skip
    few = summary[summary["uar_std"].isna()]
    if len(few):
        # A missing std must not pass for a zero one: draw these hollow.
        ax.scatter(
            few["n_att"], few["uar_mean"], s=60, facecolor="white", edgecolor="C0", lw=1.8,
            zorder=3.5, label="< 2 seeds: no std",
        )  # fmt: skip
    best = summary[summary["best_mean"]]
    ax.scatter(best["n_att"], best["uar_mean"], s=160, marker="*", color="C3", zorder=4, label="best mean")

    ax.set_xscale("log", base=2)
    lo, hi = n_atts.min(), n_atts.max()
    powers = 2.0 ** np.arange(np.floor(np.log2(lo)), np.ceil(np.log2(hi)) + 1)
    ticks = sorted(set(powers) | set(n_atts))
    ax.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(lo / 2**0.5, hi * 2**0.5)
    ax.set_xlabel(r"$N_\mathrm{att}$ (attention vectors, log$_2$ scale)")
    ax.set_ylabel("Test UAR")
    ax.set_title("Test UAR against the number of attention vectors", fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    wanted = ("mean ± std", "< 2 seeds: no std", "best mean", "single seed")
    order = [labels.index(k) for k in wanted if k in labels]
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8, loc="best", frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- writing


def render_report(
    df: pd.DataFrame, kde_n_att: list[int] | None = None, source: str | None = None
) -> dict[str, bytes]:
    """Every output file's bytes, by file name; nothing is written."""
    df = _checked(df, source or "results")
    summary = summarize(df, source or "results")
    md = markdown_table(summary)
    return {
        "table.md": md.encode(),
        "table.tex": latex_table(summary).encode(),
        "table.csv": csv_table(summary).encode(),
        "stats.json": (json.dumps(stats_document(df, summary, source), indent=2, allow_nan=False) + "\n").encode(),
        "uar_kde.png": kde_png(df, kde_selection(summary, kde_n_att)),
        "uar_vs_natt.png": uar_vs_natt_png(df, summary),
    }


def write_report(
    df: pd.DataFrame, out_dir: str, kde_n_att: list[int] | None = None, source: str | None = None
) -> dict[str, str]:
    """Write the six report files into out_dir (local or URI); return name -> location."""
    files = render_report(df, kde_n_att, source)
    out_dir = fsutil.normalize(out_dir)
    written = {}
    for name in FILES:
        location = fsutil.join(out_dir, name)
        fsutil.write_bytes_atomic(location, files[name])
        written[name] = location
    return written


# --------------------------------------------------------------------------- command


@click.command("report")
@click.option(
    "--experiment-dir", default=None, metavar="DIR",
    help="Experiment directory (default: $SERTUNE_EXPERIMENT_DIR or ./sertune-experiment).",
)  # fmt: skip
@click.option(
    "--results", "results_file", default=None, metavar="FILE",
    help="Parquet or CSV file with at least n_att, seed, uar (default: the experiment's sweep results).",
)  # fmt: skip
@click.option(
    "--out", "out_dir", default=None, metavar="DIR", help="Output directory (default: <experiment>/report)."
)
@click.option(
    "--kde", "kde", multiple=True, type=click.IntRange(min=1), metavar="N_ATT",
    help="Also draw this N_att in the KDE plot (repeatable); N_att = 1 and the largest are always drawn.",
)  # fmt: skip
def report_command(
    experiment_dir: str | None, results_file: str | None, out_dir: str | None, kde: tuple[int, ...]
) -> None:
    """Table (Markdown, LaTeX, CSV), statistics and figures of UAR against N_att."""
    exp = paths.experiment_dir(experiment_dir)
    if results_file is None:
        source = paths.sweep_results(exp)
        if not fsutil.exists(source):
            raise ResultsError(f"{source}: no sweep results yet (run the sweep, or pass --results FILE)")
    else:
        source = fsutil.normalize(results_file)
    out = fsutil.normalize(out_dir) if out_dir else paths.report_dir(exp)

    df = results.read_uar_table(source)
    summary = summarize(df, source)
    try:
        kde_selection(summary, list(kde))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--kde") from None

    write_report(df, out, list(kde), source=source)
    click.echo(markdown_table(summary), nl=False)
    for w in report_warnings(summary):
        click.echo(f"Warning: {w}", err=True)
    click.echo(f"Report written to {out}", err=True)
