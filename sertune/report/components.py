"""Where a run's UAR noise comes from: seed, fold and seed × fold, from the per-fold test UARs.

A K-fold run trains one model per fold with the same seed and pools the folds' predictions.
Its per-fold UARs are a seeds × folds table; a mixed model with crossed random effects (statsmodels'
MixedLM, REML) splits their variance into
  seed: what one seed shares across its folds,
  fold: how far the folds' speakers differ in difficulty (the same in every run),
  seed × fold (residual): training noise of each fold's model on its own.
The pooled UAR's spread over seeds is seed + about residual / K; the fold part never moves
between runs of one protocol, and belongs with the speakers (report/speakers.py).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm

from sertune.report.stats import NotComputable
from sertune.results import fold_uars


@dataclass(frozen=True)
class Components:
    n_seeds: int
    n_folds: int
    seed_var: float
    fold_var: float
    residual_var: float
    run_var: float  # observed variance of the pooled UAR over seeds


def per_fold(rows: pd.DataFrame) -> np.ndarray | None:
    """The rows' fold_uar lists as a seeds × folds array; None unless every row has the same K >= 2."""
    if "fold_uar" not in rows:
        return None
    per_seed = fold_uars(rows)
    if not per_seed or any(len(f) != len(per_seed[0]) or len(f) < 2 for f in per_seed):
        return None
    return np.array(per_seed, dtype=float)


def fold_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Long table (seed, fold, uar) of per_fold; empty where there is none."""
    folds = per_fold(rows)
    if folds is None:
        return pd.DataFrame(columns=["seed", "fold", "uar"])
    seeds = np.repeat(rows["seed"].to_numpy(int), folds.shape[1])
    return pd.DataFrame({"seed": seeds, "fold": np.tile(np.arange(folds.shape[1]), len(folds)), "uar": folds.ravel()})


def components(rows: pd.DataFrame) -> Components:
    """Variance components of one arm's rows (one row per seed, with fold_uar)."""
    long = fold_table(rows)
    if long.empty:
        raise NotComputable("the rows have no per-fold UARs (fold_uar with 2 or more folds)")
    n_seeds, n_folds = long["seed"].nunique(), long["fold"].nunique()
    if n_seeds < 3:
        raise NotComputable(f"{n_seeds} seed(s); variance components need at least 3")
    long = long.assign(group=0)
    model = sm.MixedLM.from_formula("uar ~ 1", groups="group", re_formula="0", data=long,
                                    vc_formula={"seed": "0 + C(seed)", "fold": "0 + C(fold)"})
    with warnings.catch_warnings():
        # A component at the boundary (0) is an answer, not a failure: statsmodels warns for it.
        warnings.simplefilter("ignore")
        fit = model.fit(reml=True, method=["lbfgs", "powell"])
    vc = dict(zip(model.exog_vc.names, np.asarray(fit.vcomp, float)))
    return Components(n_seeds=n_seeds, n_folds=n_folds, seed_var=float(vc["seed"]), fold_var=float(vc["fold"]),
                      residual_var=float(fit.scale), run_var=float(np.var(rows["uar"].to_numpy(float), ddof=1)))
