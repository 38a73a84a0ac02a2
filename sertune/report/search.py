"""The tune's search, drawn: every trial's running-best validation UAR per epoch (where ASHA
stopped it), each trial's result by its number (the order Tune made the trials: the number the
console, trials.parquet and the Optuna study give it), and the result against the most important
knob, each point labelled with its trial's number. What `sertune tune` writes as EXP/tune/search.png."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from sertune.report.figures import png_bytes


def asha_rungs(grace_period: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """The epochs at which ASHA compares trials: grace·rf^k below the full budget."""
    rungs, r = [], grace_period
    while r < max_epochs:
        rungs.append(r)
        r *= reduction_factor
    return rungs


def pick_knob(importances: dict | None, trials: pd.DataFrame) -> tuple[str | None, str]:
    """The knob for the third panel and why: the most important numeric one by Optuna's
    importances, else lr if it was searched; (None, "") when neither."""
    numeric = [k for k in (importances or {}) if pd.api.types.is_numeric_dtype(trials.get(f"config/{k}", pd.Series(dtype=object)))]
    if numeric:
        return numeric[0], "the most important knob"
    if "config/lr" in trials and trials["config/lr"].nunique() > 1:
        return "lr", "importances not computable"
    return None, ""


LABELLED = 60  # the third panel labels its points with trial numbers up to this many trials


def trial_numbers(curves: pd.DataFrame, by_trial: dict) -> dict:
    """Ray trial id -> the trial's number (curves' ``trial``; a tune begun before trials had
    numbers has none: then by first epoch's time, from 0)."""
    if "trial" in curves and curves["trial"].notna().all():
        return {tid: int(c["trial"].iloc[0]) for tid, c in by_trial.items()}
    return {tid: i for i, tid in enumerate(sorted(by_trial, key=lambda t: by_trial[t]["timestamp"].min()))}


def search_png(curves: pd.DataFrame, trials: pd.DataFrame, best_trial: str, max_epochs: int,
               rungs: list[int], knob: str | None = None, why: str = "") -> bytes:
    return png_bytes(search_figure(curves, trials, best_trial, max_epochs, rungs, knob, why))


def search_figure(curves: pd.DataFrame, trials: pd.DataFrame, best_trial: str, max_epochs: int,
                  rungs: list[int], knob: str | None = None, why: str = "") -> Figure:
    """``curves``: trial, trial_id, epoch, best_val_uar, timestamp (tune's curves.parquet; without
    ``trial``, as before numbers, trials are numbered by their first epoch's time); ``trials``:
    Tune's per-trial frame (trials.parquet); ``knob``: a searched numeric knob for the third
    panel, ``why`` it was chosen."""
    knob_col = f"config/{knob}" if knob else None
    third = knob_col is not None and knob_col in trials and trials[knob_col].nunique() > 1
    fig = Figure(figsize=(15.0 if third else 10.5, 4.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3 if third else 2)
    by_trial = {tid: c.sort_values("epoch") for tid, c in curves.groupby("trial_id")}
    number = trial_numbers(curves, by_trial)
    full = {tid for tid, c in by_trial.items() if c["epoch"].max() >= max_epochs}
    last = {tid: c["best_val_uar"].iloc[-1] for tid, c in by_trial.items()}  # each trial's result

    ax = axes[0]
    for tid, c in by_trial.items():
        if tid != best_trial:
            ax.plot(c["epoch"], c["best_val_uar"], lw=0.8, color="C0" if tid in full else "0.7",
                    alpha=0.9 if tid in full else 0.7)
            if tid not in full:  # where ASHA stopped it (a trial stopped at its first epoch is only this mark)
                ax.plot(c["epoch"].iloc[-1], last[tid], "x", color="0.55", ms=4)
    if best_trial in by_trial:
        c = by_trial[best_trial]
        ax.plot(c["epoch"], c["best_val_uar"], lw=2.2, color="C3", label=f"best: trial {number[best_trial]}")
        ax.legend(loc="best", fontsize=8)
    for r in rungs:
        ax.axvline(r, ls=":", lw=0.8, color="0.4")
    ax.set(xlabel="epoch (dotted: ASHA rungs)", ylabel="best validation UAR so far",
           title=f"{len(by_trial)} trials ({len(full)} full budget, grey: stopped by ASHA)")
    ax.title.set_fontsize(10)

    ax = axes[1]
    order = sorted(by_trial, key=number.get)
    final = np.array([last[t] for t in order])
    x = np.array([number[t] for t in order])
    is_full = np.array([t in full for t in order])
    ax.scatter(x[~is_full], final[~is_full], marker="x", color="0.55", s=22, label="stopped by ASHA (at its last epoch)")
    ax.scatter(x[is_full], final[is_full], color="C0", s=26, label="full budget")
    running = np.maximum.accumulate(np.where(is_full, final, -np.inf))
    shown = np.isfinite(running)
    if shown.any():
        ax.step(x[shown], running[shown], where="post", color="C3", lw=1.2, label="best full-budget so far")
    ax.set(xlabel="trial number (the order the trials were made)", ylabel="best validation UAR", title="The search")
    ax.title.set_fontsize(10)
    ax.legend(loc="best", fontsize=8)

    if third:
        ax = axes[2]
        t = trials.set_index(trials["trial_id"].astype(str))
        ids = [i for i in order if i in t.index]
        v = t.loc[ids, knob_col].astype(float).to_numpy()
        y = np.array([last[i] for i in ids])
        f = np.array([i in full for i in ids])
        ax.scatter(v[~f], y[~f], marker="x", color="0.55", s=22)
        ax.scatter(v[f], y[f], color="C0", s=26)
        if len(ids) <= LABELLED:
            for i, vi, yi in zip(ids, v, y):
                ax.annotate(str(number[i]), (vi, yi), xytext=(3, 3), textcoords="offset points", fontsize=6, color="0.3")
        if (v > 0).all() and v.max() / v.min() > 20:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks run into each other
        ax.set(xlabel=knob, ylabel="best validation UAR", title=f"against {knob}" + (f" ({why})" if why else ""))
        ax.title.set_fontsize(10)
    fig.tight_layout()
    return fig
