"""The authors' two leaks as explicit choices, and how a table says it holds them.

Their code tunes on the pooled test UAR and re-seeds every fold with one fixed seed. sertune
never does either by default (TrainConfig: ``selected_on="validation"``, ``fixed_fold_seed=-1``);
a run that asks for one records it in its configuration, so every row says what it was made with,
and `sertune report` / `sertune compare` say so above any table that holds such rows.
"""

from __future__ import annotations

import pandas as pd

from sertune import results
from sertune.config import TrainConfig


def of_config(cfg: TrainConfig | dict) -> list[str]:
    """The leaks a configuration has, in words (empty: an honest run)."""
    c = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(cfg)
    out = []
    if c.selected_on == "test":
        out.append("configuration selected on test UAR")
    if c.fixed_fold_seed >= 0:
        out.append(f"every fold seeded with {c.fixed_fold_seed} (runs differ only by nondeterminism)")
    return out


def of_rows(df: pd.DataFrame) -> pd.Series:
    """Per row, its leaks joined ("" for an honest row; rows without a config column are honest
    as far as anyone can tell, and so counted)."""
    if "config" not in df:
        return pd.Series([""] * len(df), index=df.index)
    return pd.Series(["; ".join(of_config(c)) for c in results.configs(df)], index=df.index)


def banner(df: pd.DataFrame) -> str | None:
    """One line to print above a table holding leaky rows; None when it holds none."""
    leaks = of_rows(df)
    leaky = leaks != ""
    if not leaky.any():
        return None
    kinds = "; ".join(sorted(set("; ".join(leaks[leaky]).split("; "))))
    mixed = f", mixed with {int((~leaky).sum())} honest row(s): the comparison is not like for like" if not leaky.all() else ""
    return (f"LEAK: {int(leaky.sum())} of {len(df)} row(s) were made with the authors' leaks ({kinds}){mixed}; "
            "their test UAR is not an estimate for unseen speakers")
