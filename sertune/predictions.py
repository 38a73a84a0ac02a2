"""Per-utterance test predictions of every run: the one definition of the predictions table.

A run (one n_att, seed pair) predicts each test utterance once: with --folds or --actor-folds,
out of fold. Its predictions are one Parquet file, written before the run's results row, so a row
always has them; the files of a results table sit in one folder beside it, named for the table
(``sweep/results.parquet`` -> ``sweep/results.predictions/n_att-1_seed-3.parquet``), and read as
one table with pandas, DuckDB (``read_parquet('…/results.predictions/*.parquet')``), polars or
Spark. Statistics that resample speakers or utterances (sertune report --margin) read them.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sertune import fsutil
from sertune.audio.labels import EMOTIONS
from sertune.errors import ResultsError

SCHEMA_VERSION = "1"
PREDICTIONS_SCHEMA = pa.schema(
    [
        ("n_att", pa.int64()),
        ("seed", pa.int64()),
        ("utt_id", pa.string()),  # the store's utterance id (RAVDESS: the file name's stem)
        ("actor", pa.int64()),
        ("fold", pa.int64()),  # 0-based index of the fold that tested it (0 for one split)
        ("label", pa.string()),  # true class name
        ("pred", pa.string()),  # predicted class name: the argmax of probs
        ("label_id", pa.int16()),  # index of label in the file's ``classes`` (metadata)
        ("pred_id", pa.int16()),
        ("probs", pa.list_(pa.float32())),  # softmax of the model's logits, in ``classes`` order
    ]
)
COLUMNS = tuple(PREDICTIONS_SCHEMA.names)


def default_location(results_location: str) -> str:
    """The predictions of a results table: the folder beside it, named for it. A folder of
    `sertune train` runs (each with its predictions/ beside result.json) is its own."""
    base, query = fsutil.split_query(results_location)
    if not base.lower().endswith((".parquet", ".csv")):
        return results_location
    return base.rsplit(".", 1)[0] + ".predictions" + query


def _is_run_file(name: str) -> bool:
    return re.fullmatch(r"n_att-\d+_seed-\d+\.parquet", name) is not None


def file_name(n_att: int, seed: int) -> str:
    return f"n_att-{int(n_att)}_seed-{int(seed)}.parquet"


def run_table(n_att: int, seed: int, p: dict) -> pa.Table:
    """One run's table from ``TrainResult.predictions`` (utt_id, actor, fold, label_id, probs, and
    the store's ``classes``: RAVDESS's where a caller has none)."""
    classes = tuple(p.get("classes", EMOTIONS))
    probs = np.asarray(p["probs"], dtype=np.float32)
    label_id = np.asarray(p["label_id"], dtype=np.int16)
    pred_id = probs.argmax(1).astype(np.int16)
    names = np.asarray(classes, dtype=object)
    n = len(label_id)
    columns = {
        "n_att": pa.array(np.full(n, n_att, dtype=np.int64)), "seed": pa.array(np.full(n, seed, dtype=np.int64)),
        "utt_id": pa.array(list(p["utt_id"]), pa.string()), "actor": pa.array(np.asarray(p["actor"], dtype=np.int64)),
        "fold": pa.array(np.asarray(p["fold"], dtype=np.int64)),
        "label": pa.array(names[label_id].tolist(), pa.string()), "pred": pa.array(names[pred_id].tolist(), pa.string()),
        "label_id": pa.array(label_id), "pred_id": pa.array(pred_id),
        "probs": pa.ListArray.from_arrays(pa.array(np.arange(0, probs.size + 1, probs.shape[1], dtype=np.int32)),
                                          pa.array(probs.reshape(-1))),
    }
    meta = {b"sertune.schema": f"predictions/{SCHEMA_VERSION}".encode(), b"classes": json.dumps(list(classes)).encode()}
    return pa.table(columns, schema=PREDICTIONS_SCHEMA.with_metadata(meta))


def write_run(folder: str, n_att: int, seed: int, p: dict) -> str:
    """Write one run's predictions (atomically: a reader never sees half a file); return its location."""
    buf = io.BytesIO()
    pq.write_table(run_table(n_att, seed, p), buf)
    location = fsutil.join(folder, file_name(n_att, seed))
    fsutil.write_bytes_atomic(location, buf.getvalue())
    return location


def read_predictions(location: str) -> pd.DataFrame:
    """Every run's predictions under a folder (or one file), as one frame; one-line errors."""
    if not fsutil.exists(location):
        raise ResultsError(f"{location}: no predictions (a table written before sertune kept them has none)")
    fs, path = fsutil.resolve(location)
    if fs.get_file_info(path).type == pafs.FileType.Directory:  # at any depth: a folder of `sertune train` runs
        files = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                       if i.type == pafs.FileType.File and _is_run_file(i.base_name))
    else:
        files = [path]
    if not files:
        raise ResultsError(f"{location}: no predictions file (n_att-N_seed-S.parquet) in this folder")
    tables = []
    for f in files:
        with fs.open_input_file(f) as stream:
            try:
                table = pq.read_table(stream)
            except (OSError, pa.ArrowInvalid) as e:
                raise ResultsError(f"{f}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise ResultsError(f"{f}: not a sertune predictions file (missing column(s) {', '.join(missing)})")
        tables.append(table.select(list(COLUMNS)).cast(PREDICTIONS_SCHEMA))
    df = pa.concat_tables(tables).to_pandas()
    dup = df.duplicated(["n_att", "seed", "utt_id"])
    if dup.any():
        r = df[dup].iloc[0]
        raise ResultsError(f"{location}: utterance {r.utt_id} predicted twice for n_att={r.n_att} seed={r.seed}")
    return df


def confusion(df: pd.DataFrame, n_classes: int) -> np.ndarray:
    """The confusion matrix (rows true, columns predicted) of one run's predictions."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (df["label_id"].to_numpy(int), df["pred_id"].to_numpy(int)), 1)
    return cm
