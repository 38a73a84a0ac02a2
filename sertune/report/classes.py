"""Per-class results of a sweep: recall per emotion (mean and std over seeds, per N_att) and
confusion matrices summed over seeds. Only tables that carry ``recall_<emotion>`` columns and
a ``confusion`` column (sertune's own results) have them; others get a note instead."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sertune.audio.labels import EMOTIONS
from sertune.errors import ResultsError
from sertune.results import RECALL_COLUMNS, confusions

CLASS_COLUMNS = ("model", "n_att", "n", *(f"{e}_{s}" for e in EMOTIONS for s in ("mean", "std")))


def recall_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """One row per N_att: n, and per emotion the mean and std (ddof = 1) of recall over seeds;
    None when the rows have no per-class recall. A NaN recall (class absent from a test set)
    is left out of that class's mean."""
    from sertune.report.summary import model_name

    if not all(c in df.columns for c in RECALL_COLUMNS):
        return None
    rows = []
    for n_att, g in df.groupby("n_att", sort=True):
        row = {"model": model_name(n_att), "n_att": int(n_att), "n": len(g)}
        for e, c in zip(EMOTIONS, RECALL_COLUMNS):
            x = pd.to_numeric(g[c], errors="coerce").dropna().to_numpy(dtype=float)
            row[f"{e}_mean"] = float(x.mean()) if len(x) else np.nan
            row[f"{e}_std"] = float(x.std(ddof=1)) if len(x) >= 2 else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CLASS_COLUMNS))


def confusion_sums(df: pd.DataFrame, source: str = "results") -> dict[int, np.ndarray] | None:
    """N_att -> confusion matrix (rows: true, columns: predicted) summed over seeds; None when
    the rows have no ``confusion`` column."""
    if "confusion" not in df.columns:
        return None
    k = len(EMOTIONS)
    sums: dict[int, np.ndarray] = {}
    for i, (n_att, cells) in enumerate(zip(df["n_att"], confusions(df, source))):
        try:
            cm = np.asarray(cells, dtype=float)
        except (TypeError, ValueError):  # ragged rows, or none
            raise ResultsError(f"{source}: row {df.index[i]}: confusion is not a matrix") from None
        if cm.shape != (k, k):
            raise ResultsError(f"{source}: row {df.index[i]}: confusion has shape {cm.shape}, not {k}x{k}")
        sums[int(n_att)] = sums.get(int(n_att), np.zeros((k, k))) + cm
    return dict(sorted(sums.items()))


def row_normalised(cm: np.ndarray) -> np.ndarray:
    support = cm.sum(1, keepdims=True)
    return np.divide(cm, support, out=np.zeros_like(cm), where=support > 0)
