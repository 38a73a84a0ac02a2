"""The report's figures: UAR distributions (KDE) and UAR against N_att. No pyplot."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from scipy.stats import gaussian_kde

from sertune.report.summary import BASELINE, groups, model_name
from sertune.report.trend import Trend

FIGSIZE = (6.0, 4.0)
DPI = 100


def png_bytes(fig: Figure) -> bytes:
    """A figure as PNG bytes (every figure sertune writes: report, tune search, explain)."""
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
    return png_bytes(kde_figure(df, n_atts))


def kde_figure(df: pd.DataFrame, n_atts: list[int]) -> Figure:
    """Smoothed UAR distributions of the given N_att values (the paper's Fig. 2)."""
    by_n_att = groups(df)
    every = np.concatenate([by_n_att[n] for n in n_atts])
    spread = max(float(every.max() - every.min()), 0.01)
    grid = np.linspace(every.min() - 0.5 * spread, every.max() + 0.5 * spread, 512)

    fig = Figure(figsize=FIGSIZE)
    FigureCanvasAgg(fig)  # no pyplot: no global backend, no figure left open between calls
    ax = fig.add_subplot()
    for i, n in enumerate(n_atts):
        x = by_n_att[n]
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


def uar_vs_natt_png(df: pd.DataFrame, summary: pd.DataFrame, trend: Trend | None = None) -> bytes:
    return png_bytes(uar_vs_natt_figure(df, summary, trend))


def uar_vs_natt_figure(df: pd.DataFrame, summary: pd.DataFrame, trend: Trend | None = None) -> Figure:
    """Mean ± std per N_att over a log2 axis, each seed as a point; the fitted trend, if any."""
    by_n_att = groups(df)
    n_atts = summary["n_att"].to_numpy(dtype=float)

    fig = Figure(figsize=FIGSIZE)
    FigureCanvasAgg(fig)  # no pyplot: no global backend, no figure left open between calls
    ax = fig.add_subplot()
    # Fixed-seed jitter (in log2 units) so that equal UARs do not hide each other and the
    # figure is byte-for-byte reproducible.
    rng = np.random.default_rng(0)
    for j, (n, x) in enumerate(by_n_att.items()):
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
    if trend is not None:
        ends = np.array([n_atts.min(), n_atts.max()])
        p = f"p = {trend.p:.2g}"
        ax.plot(ends, trend.intercept + trend.slope * np.log2(ends), "--", color="C1", lw=1.4, zorder=2.5,
                label=f"trend: {trend.slope:+.4f} per doubling, {p}")

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
    wanted = ("mean ± std", "< 2 seeds: no std", "best mean", "single seed", "trend")
    order = [i for k in wanted for i, label in enumerate(labels) if label == k or label.startswith(k + ":")]
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8, loc="best", frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig




def confusion_png(sums: dict[int, np.ndarray], n_atts: list[int], classes: tuple[str, ...]) -> bytes:
    return png_bytes(confusion_figure(sums, n_atts, classes))


def confusion_figure(sums: dict[int, np.ndarray], n_atts: list[int], classes: tuple[str, ...]) -> Figure:
    """Row-normalised confusion matrices (summed over seeds) side by side, the classes on the axes."""
    from sertune.report.classes import row_normalised

    fig = Figure(figsize=(5.2 * len(n_atts) + 0.8, 5.0), layout="constrained")
    FigureCanvasAgg(fig)  # no pyplot: no global backend, no figure left open between calls
    axes = fig.subplots(1, len(n_atts), squeeze=False)[0]
    for ax, n in zip(axes, n_atts):
        cm = row_normalised(sums[n])
        im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > 0.55 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        best = " — best mean UAR" if n != BASELINE else ""
        ax.set_title(f"{model_name(n)}{best} ({int(sums[n].sum())} test utterances over seeds)", fontsize=9)
    fig.colorbar(im, ax=list(axes), fraction=0.03, pad=0.02, label="share of the true class")
    return fig
