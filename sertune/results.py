"""The one definition of a sweep result row, and the only code that reads or writes results.

A row is one finished training run: one (n_att, seed) pair of a sweep. The table is Parquet
(CSV on request); it is rewritten atomically, so a reader sees the old table or the new one.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import socket

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sertune import fsutil, locks
from sertune.audio.labels import EMOTIONS
from sertune.errors import ResultsError

RECALL_COLUMNS = tuple(f"recall_{e}" for e in EMOTIONS)

RESULTS_SCHEMA = pa.schema(
    [
        ("n_att", pa.int64()),
        ("seed", pa.int64()),
        ("uar", pa.float64()),  # test UAR at the best-validation epoch; K folds: pooled out-of-fold
        ("fold_uar", pa.string()),  # JSON list: each fold's own test UAR (one entry for a single split)
        ("val_uar", pa.float64()),
        ("best_epoch", pa.int64()),
        ("epochs", pa.int64()),
        *[(c, pa.float64()) for c in RECALL_COLUMNS],
        ("confusion", pa.string()),  # JSON, rows = true class, cols = predicted
        ("config", pa.string()),  # JSON of the TrainConfig
        ("protocol", pa.string()),  # JSON: split kind, actors per part, folds
        ("store_hash", pa.string()),
        ("features", pa.string()),  # JSON: the store's feature parameters (what its hash stands for)
        ("code_version", pa.string()),
        ("node", pa.string()),
        ("wall_time_s", pa.float64()),
        ("finished_at", pa.string()),
    ]
)
RESULT_COLUMNS = tuple(RESULTS_SCHEMA.names)
KEY = ("n_att", "seed")
# What `sertune report` needs from any table, ours or someone else's.
REPORT_COLUMNS = ("n_att", "seed", "uar")


def empty() -> pd.DataFrame:
    return RESULTS_SCHEMA.empty_table().to_pandas()


def validate(df: pd.DataFrame, columns=RESULT_COLUMNS, source: str = "results") -> pd.DataFrame:
    """Check columns, types and keys; return the frame with canonical dtypes."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ResultsError(f"{source}: missing column(s) {', '.join(missing)}")
    df = df.reset_index(drop=True)  # "row i" is the i-th row, whatever index the frame came with
    for col in ("n_att", "seed"):
        df[col] = _as_int(df[col], col, source)
    df["uar"] = _as_float(df["uar"], "uar", source)
    bad = df.index[(df["uar"] < 0) | (df["uar"] > 1)]
    if len(bad):
        raise ResultsError(f"{source}: row {bad[0]}: uar {df.loc[bad[0], 'uar']} is not in [0, 1]")
    bad = df.index[df["n_att"] < 1]
    if len(bad):
        raise ResultsError(f"{source}: row {bad[0]}: n_att must be >= 1")
    dup = df.duplicated(list(KEY), keep=False)
    if dup.any():
        i = df.index[dup][0]
        raise ResultsError(
            f"{source}: row {i}: duplicate pair n_att={df.loc[i, 'n_att']} seed={df.loc[i, 'seed']}"
        )
    return df


def _as_int(col: pd.Series, name: str, source: str) -> pd.Series:
    num = pd.to_numeric(col, errors="coerce")
    bad = col.index[num.isna() | (num != num.round())]
    if len(bad):
        raise ResultsError(f"{source}: row {bad[0]}: column {name} has non-integer value {col[bad[0]]!r}")
    return num.astype("int64")


def _as_float(col: pd.Series, name: str, source: str) -> pd.Series:
    num = pd.to_numeric(col, errors="coerce")
    bad = col.index[num.isna()]
    if len(bad):
        raise ResultsError(f"{source}: row {bad[0]}: column {name} has non-numeric value {col[bad[0]]!r}")
    return num.astype("float64")


def read_table(location: str) -> pd.DataFrame:
    """Read a Parquet or CSV file as a DataFrame, with one-line errors."""
    if not fsutil.exists(location):
        raise ResultsError(f"{location}: no such results file")
    data = fsutil.read_bytes(location)
    try:
        if str(location).lower().endswith(".csv"):
            text_columns = [f.name for f in RESULTS_SCHEMA if f.type == pa.string()]
            return pd.read_csv(io.BytesIO(data), dtype={c: str for c in text_columns})
        return pq.read_table(io.BytesIO(data)).to_pandas()
    except Exception as e:  # pyarrow and pandas raise many types for a bad file
        raise ResultsError(f"{location}: not a readable {'CSV' if str(location).endswith('.csv') else 'Parquet'} file ({type(e).__name__}: {str(e).splitlines()[0]})") from None


# Columns added after tables were first written, with what an older table's rows mean.
LATER_COLUMNS = {"fold_uar": "[]", "features": "{}"}  # "{}": not recorded


def with_later_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A table or rows from before a column existed, with what that column means for them."""
    missing = {col: value for col, value in LATER_COLUMNS.items() if col not in df.columns}
    return df.assign(**missing) if missing else df


def _as_row(record: dict) -> dict:
    """A row of the table from a record holding at least its columns (a later column may be missing)."""
    return {c: record.get(c, LATER_COLUMNS.get(c)) for c in RESULT_COLUMNS}


def read_results(location: str) -> pd.DataFrame:
    """A full sweep results table, schema-checked."""
    return validate(with_later_columns(read_table(location)), RESULT_COLUMNS, str(location))


def read_train_results(location: str) -> pd.DataFrame:
    """The rows of the `sertune train` runs under a folder (each run's ``result.json``, at any
    depth): several runs of one configuration read as one table."""
    import pyarrow.fs as pafs

    fs, path = fsutil.resolve(location)
    found = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                   if i.base_name == "result.json" and i.type == pafs.FileType.File)
    if not found:
        raise ResultsError(f"{location}: no result.json of `sertune train` in this folder")
    rows = []
    for f in found:
        with fs.open_input_stream(f) as stream:
            try:
                row = json.loads(stream.read())
            except ValueError as e:
                raise ResultsError(f"{f}: not a JSON result ({e})") from None
        rows.append(_as_row(row))
    return validate(pd.DataFrame(rows), RESULT_COLUMNS, str(location))


def read_uar_table(location: str) -> pd.DataFrame:
    """Any table with at least n_att, seed, uar (what a report needs)."""
    return validate(read_table(location), REPORT_COLUMNS, str(location))


def to_table(df: pd.DataFrame) -> pa.Table:
    df = df.sort_values(list(KEY)).reset_index(drop=True)
    return pa.Table.from_pandas(df[list(RESULT_COLUMNS)], schema=RESULTS_SCHEMA, preserve_index=False)


def write_results(df: pd.DataFrame, location: str) -> None:
    df = validate(with_later_columns(df), RESULT_COLUMNS, str(location))
    buf = io.BytesIO()
    if str(location).lower().endswith(".csv"):
        df.sort_values(list(KEY))[list(RESULT_COLUMNS)].to_csv(buf, index=False)
    else:
        pq.write_table(to_table(df), buf)
    fsutil.write_bytes_atomic(location, buf.getvalue())


APPEND_WAIT_S = 120.0  # an append holds the lock for one read and one write: seconds at most


def append_rows(location: str, rows: list[dict]) -> pd.DataFrame:
    """Add rows, replacing none: a pair already present keeps its first result. Read, modify
    and write happen under the table's lock, so two writers cannot lose each other's rows."""
    with locks.hold(location, "the results table", ResultsError, wait_s=APPEND_WAIT_S):
        return _append_unlocked(location, rows)


def _append_unlocked(location: str, rows: list[dict]) -> pd.DataFrame:
    old = read_results(location) if fsutil.exists(location) else empty()
    new = pd.DataFrame([_as_row(r) for r in rows])
    keys = set(zip(old["n_att"], old["seed"]))
    new = new[[(a, s) not in keys for a, s in zip(new["n_att"], new["seed"])]]
    new = new.drop_duplicates(list(KEY))
    df = pd.concat([old, new], ignore_index=True) if len(old) else new
    write_results(df, location)
    return df


def done_pairs(location: str) -> set[tuple[int, int]]:
    if not fsutil.exists(location):
        return set()
    df = read_results(location)
    return set(zip(df["n_att"].astype(int), df["seed"].astype(int)))


def result_row(cfg, r, store: dict, code_version: str, node_ip: str = "local") -> dict:
    """The results row of one finished run (``cfg``: TrainConfig, ``r``: TrainResult, ``store``:
    the store's manifest); the same for a sweep trial (``node_ip``: its Ray node) and for
    `sertune train` (no Ray: "local")."""
    row = {
        "n_att": cfg.n_att, "seed": cfg.seed, "uar": r.uar, "fold_uar": json.dumps(r.fold_uars), "val_uar": r.val_uar,
        "best_epoch": r.best_epoch, "epochs": r.epochs,
        "confusion": json.dumps(r.confusion),
        "config": cfg.to_json(), "protocol": json.dumps(r.protocol, sort_keys=True),
        "store_hash": store["store_hash"], "features": json.dumps(store["features"], sort_keys=True),
        "code_version": code_version,
        "node": socket.gethostname() + "/" + node_ip, "wall_time_s": r.wall_time_s,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    row.update(dict(zip(RECALL_COLUMNS, r.recall)))
    return row
