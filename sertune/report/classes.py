"""Per-class results of a sweep: recall per class (mean and std over seeds, per N_att) and
confusion matrices summed over seeds, over the rows' label set (RAVDESS's eight emotions, CREMA-D's
six, EmoDB's seven, a manifest's own). Only tables that carry ``classes``, ``recall`` and
``confusion`` (sertune's own results) have them; others get a note instead."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sertune import results
from sertune.errors import ResultsError


def label_set(df: pd.DataFrame, source: str = "results") -> tuple[str, ...] | None:
    """The rows' one label set; None where they carry none (another tool's table). Rows of two
    corpora, or of two label sets, are refused: one report never mixes corpora."""
    if "corpus" in df.columns:
        corpora = sorted({str(c) for c in df["corpus"] if isinstance(c, str)})
        if len(corpora) > 1:
            counts = ", ".join(f"{c}: {int((df['corpus'] == c).sum())} rows" for c in corpora)
            raise ResultsError(f"{source}: rows of {len(corpora)} corpora ({counts}): one report is of one corpus")
    if "classes" not in df.columns:
        return None
    found = {tuple(c) for c in results.classes(df, source) if c}
    if len(found) > 1:
        shown = " vs ".join("(" + ", ".join(c) + ")" for c in sorted(found))
        raise ResultsError(f"{source}: rows of {len(found)} label sets {shown}: one report is of one corpus")
    return found.pop() if found else None


def class_columns(classes: tuple[str, ...]) -> list[str]:
    return ["model", "n_att", "n", *(f"{c}_{s}" for c in classes for s in ("mean", "std"))]


def recall_table(df: pd.DataFrame, classes: tuple[str, ...] | None, source: str = "results") -> pd.DataFrame | None:
    """One row per N_att: n, and per class the mean and std (ddof = 1) of recall over seeds;
    None when the rows have no per-class recall. A NaN recall (class absent from a test set)
    is left out of that class's mean."""
    from sertune.report.summary import model_name

    if classes is None or "recall" not in df.columns:
        return None
    values = results.recalls(df, source)
    if any(v is None for v in values):
        return None
    for i, v in enumerate(values):
        if len(v) != len(classes):
            raise ResultsError(f"{source}: row {df.index[i]}: recall has {len(v)} values for {len(classes)} classes")
    recall = pd.DataFrame(np.asarray(values, dtype=float), columns=list(classes), index=df.index)
    rows = []
    for n_att, g in recall.groupby(df["n_att"], sort=True):
        row = {"model": model_name(n_att), "n_att": int(n_att), "n": len(g)}
        for c in classes:
            x = g[c].dropna().to_numpy(dtype=float)
            row[f"{c}_mean"] = float(x.mean()) if len(x) else np.nan
            row[f"{c}_std"] = float(x.std(ddof=1)) if len(x) >= 2 else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=class_columns(classes))


def confusion_sums(df: pd.DataFrame, classes: tuple[str, ...] | None,
                   source: str = "results") -> dict[int, np.ndarray] | None:
    """N_att -> confusion matrix (rows: true, columns: predicted) summed over seeds; None when
    the rows have no ``confusion`` column or no label set."""
    if "confusion" not in df.columns or classes is None:
        return None
    k = len(classes)
    sums: dict[int, np.ndarray] = {}
    for i, (n_att, cells) in enumerate(zip(df["n_att"], results.confusions(df, source))):
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
