"""The one definition of a sweep result row, and the only code that reads or writes results.

A row is one finished training run: one (n_att, seed) pair of a sweep. The table is Parquet
(CSV on request); it is rewritten atomically, so a reader sees the old table or the new one.
Its columns have real types (lists, structs, a UTC time: docs/tables.md); a table of an older
version, which held them as JSON text, reads as this version's values, so every consumer sees
one shape, and reads them through the accessors below (configs, fold_uars, ...).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import socket
import typing

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sertune import fsutil, locks
from sertune.audio.labels import EMOTIONS
from sertune.config import FeatureConfig, TrainConfig
from sertune.errors import ResultsError

# Before results/3 every store was RAVDESS's and per-class recall had a column per emotion.
RECALL_COLUMNS = tuple(f"recall_{e}" for e in EMOTIONS)

SCHEMA_VERSION = "3"  # 1: nested columns as JSON text, finished_at as text (no version key); 2: typed, recall_<emotion> columns
SCHEMA_KEY = b"sertune.schema"
_ARROW = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}


def struct_of(cls) -> pa.StructType:
    """An Arrow struct with one field per dataclass field, typed from its annotation: the one
    place a configuration's shape becomes a column's, so a new field is a new struct field."""
    hints = typing.get_type_hints(cls)
    untyped = [f.name for f in dataclasses.fields(cls) if hints[f.name] not in _ARROW]
    if untyped:
        raise TypeError(f"{cls.__name__}: no Arrow type for field(s) {', '.join(untyped)}")
    return pa.struct([(f.name, _ARROW[hints[f.name]]) for f in dataclasses.fields(cls)])


_ACTORS = pa.list_(pa.int64())
# TrainResult.protocol (training/loop.py) with one Split.describe() (training/splits.py) per fold.
# That code fixes its shape, so it is a struct; a key it gains later is refused by validate (Arrow
# would drop it without a word) until it is added here.
PROTOCOL_TYPE = pa.struct([
    ("split", pa.string()), ("norm", pa.string()), ("uar", pa.string()),
    ("folds", pa.list_(pa.struct([
        ("kind", pa.string()), ("fold", pa.int64()),
        ("train_actors", _ACTORS), ("val_actors", _ACTORS), ("test_actors", _ACTORS),
        ("n_train", pa.int64()), ("n_val", pa.int64()), ("n_test", pa.int64()),
    ]))),
])

RESULTS_SCHEMA = pa.schema(
    [
        ("n_att", pa.int64()),
        ("seed", pa.int64()),
        ("uar", pa.float64()),  # test UAR at the best-validation epoch; K folds: pooled out-of-fold
        ("fold_uar", pa.list_(pa.float64())),  # each fold's own test UAR (one entry for a single split)
        ("val_uar", pa.float64()),
        ("best_epoch", pa.int64()),
        ("epochs", pa.int64()),
        ("corpus", pa.string()),  # the store's corpus: its layout (ravdess, crema-d, emodb) or "manifest"
        ("classes", pa.list_(pa.string())),  # the label set, in the order of recall and of confusion's rows and columns
        ("recall", pa.list_(pa.float64())),  # test recall per class (NaN: class absent from the test set)
        ("confusion", pa.list_(pa.list_(pa.int64()))),  # rows = true class, cols = predicted, classes order
        ("config", struct_of(TrainConfig)),  # null field: the row predates that option
        ("protocol", PROTOCOL_TYPE),  # split kind, actors per part, folds
        ("store_hash", pa.string()),
        ("features", struct_of(FeatureConfig)),  # the store's feature parameters (what its hash stands for)
        ("code_version", pa.string()),
        ("node", pa.string()),
        ("wall_time_s", pa.float64()),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ],
    metadata={SCHEMA_KEY: f"results/{SCHEMA_VERSION}".encode()},
)
RESULT_COLUMNS = tuple(RESULTS_SCHEMA.names)
# Lists and structs: JSON text in v1 tables and in CSV, which has no nested values.
NESTED = ("fold_uar", "classes", "recall", "confusion", "config", "protocol", "features")
# Read as text from CSV: the strings, the JSON of nested columns, the ISO 8601 time.
TEXT_COLUMNS = tuple(f.name for f in RESULTS_SCHEMA if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)))
KEY = ("n_att", "seed")
# What `sertune report` needs from any table, ours or someone else's.
REPORT_COLUMNS = ("n_att", "seed", "uar")


def empty() -> pd.DataFrame:
    return _frame(RESULTS_SCHEMA.empty_table())


def validate(df: pd.DataFrame, columns=RESULT_COLUMNS, source: str = "results") -> pd.DataFrame:
    """Check columns, types and keys; return the frame with canonical dtypes and values."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ResultsError(f"{source}: missing column(s) {', '.join(missing)}")
    df = _typed(df.reset_index(drop=True), source)  # "row i" is the i-th row, whatever index the frame came with
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


def _typed(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """The results columns ``df`` has, as this version's values whatever version wrote them:
    nested cells as plain lists and dicts, finished_at as UTC time."""
    for name in NESTED:
        if name in df.columns:
            df[name] = _nested(df[name], name, source)
    if "finished_at" in df.columns:
        df["finished_at"] = _as_time(df["finished_at"], source)
    return df


def _nested(col: pd.Series, name: str, source: str) -> pd.Series:
    """A nested column's cells in their Arrow type and back: what the table will hold, checked."""
    kind = RESULTS_SCHEMA.field(name).type
    given = [_cell(v, name, i, source) for i, v in col.items()]
    try:
        stored = pa.array(given, kind).to_pylist()
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        stored = [_one_cell(v, kind, name, i, source) for i, v in zip(col.index, given)]  # which row
    for i, g, s in zip(col.index, given, stored):
        changed = _mismatch(g, s)
        if changed:
            raise ResultsError(f"{source}: row {i}: {name} does not fit the results schema ({changed})")
    return pd.Series(stored, index=col.index, dtype=object)


def _cell(v, name: str, i, source: str):
    """One cell as plain Python: JSON text (a v1 table, CSV) parsed, a missing value None."""
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError as e:
            raise ResultsError(f"{source}: row {i}: {name} is not valid JSON ({e})") from None
    elif pd.api.types.is_scalar(v) and pd.isna(v):
        return None
    v = _plain(v)
    return None if name == "features" and v == {} else v  # {}: a v1 row from before features were recorded


def _plain(v):
    """numpy arrays and scalars (a frame built by hand, pandas' view of a list) as lists and numbers."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in v]
    return v.item() if isinstance(v, np.generic) else v


def _one_cell(v, kind: pa.DataType, name: str, i, source: str):
    try:
        return pa.array([v], kind).to_pylist()[0]
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
        raise ResultsError(f"{source}: row {i}: {name} does not fit the results schema "
                           f"({type(e).__name__}: {str(e).splitlines()[0]})") from None


def _mismatch(given, stored, path: str = "") -> str | None:
    """Where a cell lost or changed part of itself in its Arrow type, None where nothing did:
    Arrow drops a struct field it does not know and truncates 2.5 to an integer without a word."""
    if isinstance(given, dict) and isinstance(stored, dict):
        unknown = sorted(map(str, set(given) - set(stored)))
        if unknown:
            return f"{path}{unknown[0]}: no such field"
        return next(filter(None, (_mismatch(given.get(k), v, f"{path}{k}.") for k, v in stored.items())), None)
    if isinstance(given, list) and isinstance(stored, list) and len(given) == len(stored):
        return next(filter(None, (_mismatch(g, s, f"{path}{j}.") for j, (g, s) in enumerate(zip(given, stored)))), None)
    if given == stored or (given != given and stored != stored):  # NaN stays NaN
        return None
    return f"{path.rstrip('.') or 'value'}: {given!r} reads as {stored!r}"


def _as_time(col: pd.Series, source: str) -> pd.Series:
    """finished_at as UTC time (v1 tables and CSV hold ISO 8601 text with its offset)."""
    t = pd.to_datetime(col, utc=True, format="ISO8601", errors="coerce")
    bad = col.index[t.isna() & col.notna()]
    if len(bad):
        raise ResultsError(f"{source}: row {bad[0]}: finished_at {col[bad[0]]!r} is not an ISO 8601 time")
    return t.astype("datetime64[us, UTC]")


def read_table(location: str) -> pd.DataFrame:
    """Read a Parquet or CSV file as a DataFrame, with one-line errors."""
    if not fsutil.exists(location):
        raise ResultsError(f"{location}: no such results file")
    data = fsutil.read_bytes(location)
    csv = str(location).lower().endswith(".csv")
    try:
        if csv:
            return pd.read_csv(io.BytesIO(data), dtype={c: str for c in TEXT_COLUMNS})
        table = pq.read_table(io.BytesIO(data))
    except Exception as e:  # pyarrow and pandas raise many types for a bad file
        raise ResultsError(f"{location}: not a readable {'CSV' if csv else 'Parquet'} file ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    _check_version(table.schema.metadata or {}, location)
    return _frame(table)


def _check_version(meta: dict, location: str) -> None:
    """Refuse a results table newer than this code (v1 tables have no version key)."""
    kind, _, version = meta.get(SCHEMA_KEY, b"").decode(errors="replace").partition("/")
    if kind == "results" and not (version.isdigit() and int(version) <= int(SCHEMA_VERSION)):
        raise ResultsError(f"{location}: a results/{version} table; this sertune reads results/1 to "
                           f"results/{SCHEMA_VERSION} (upgrade sertune)")


def _frame(table: pa.Table) -> pd.DataFrame:
    """A table as a frame whose nested cells are plain lists and dicts (pandas makes numpy arrays of them)."""
    df = table.to_pandas()
    for field in table.schema:
        if pa.types.is_nested(field.type):
            df[field.name] = pd.Series(table.column(field.name).to_pylist(), index=df.index, dtype=object)
    return df


# Columns added after tables were first written, with what an older table's rows mean: every
# store before results/3 was RAVDESS's.
LATER_COLUMNS = {"fold_uar": [], "features": None,  # []: no per-fold UARs; None: not recorded
                 "corpus": "ravdess", "classes": list(EMOTIONS)}


def with_classes(df: pd.DataFrame) -> pd.DataFrame:
    """Rows from before label sets (results/1-2, or another tool's table with the same
    recall_<emotion> columns): RAVDESS's classes, and their recall as one list."""
    if "recall" in df.columns or not all(c in df.columns for c in RECALL_COLUMNS):
        return df
    extra = {"recall": _recall_lists(df)}
    for col in ("corpus", "classes"):
        if col not in df.columns:
            extra[col] = pd.Series([LATER_COLUMNS[col]] * len(df), index=df.index, dtype=object)
    return df.assign(**extra)


def with_later_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A table or rows from before a column existed, with what that column means for them;
    results/1-2's recall_<emotion> columns become the recall list."""
    df = with_classes(df)
    if "recall" not in df.columns:
        df = df.assign(recall=pd.Series([None] * len(df), index=df.index, dtype=object))
    missing = {col: pd.Series([value] * len(df), index=df.index, dtype=object)
               for col, value in LATER_COLUMNS.items() if col not in df.columns}
    return df.assign(**missing) if missing else df


def _recall_lists(df: pd.DataFrame) -> pd.Series:
    """An older table's per-emotion recall columns as one list per row."""
    values = df[list(RECALL_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return pd.Series([list(map(float, v)) for v in values], index=df.index, dtype=object)


def _as_row(record: dict) -> dict:
    """A row of the table from a record holding at least its columns (a later column may be
    missing: a result.json of an older `sertune train`)."""
    if "recall" not in record:
        record = {**record, "recall": [record[c] for c in RECALL_COLUMNS] if all(c in record for c in RECALL_COLUMNS) else None}
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
    """Validated rows as the Parquet table: sorted by key, the schema version in its metadata."""
    df = df.sort_values(list(KEY)).reset_index(drop=True)
    table = pa.Table.from_pandas(df[list(RESULT_COLUMNS)], schema=RESULTS_SCHEMA, preserve_index=False)
    return table.replace_schema_metadata(RESULTS_SCHEMA.metadata)  # ours only: no pandas index to restore


def to_text(df: pd.DataFrame) -> pd.DataFrame:
    """Validated rows for CSV, which has no lists or structs: nested cells as JSON text (as v1
    tables held them), finished_at as ISO 8601; read_results reads them back as the same values."""
    out = df.copy()
    for name in NESTED:
        out[name] = [None if v is None else json.dumps(v, sort_keys=True) for v in df[name]]
    out["finished_at"] = [None if pd.isna(t) else t.isoformat() for t in df["finished_at"]]
    return out


def write_results(df: pd.DataFrame, location: str) -> None:
    df = validate(with_later_columns(df), RESULT_COLUMNS, str(location))
    buf = io.BytesIO()
    if str(location).lower().endswith(".csv"):
        to_text(df).sort_values(list(KEY))[list(RESULT_COLUMNS)].to_csv(buf, index=False)
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
    `sertune train` (no Ray: "local"). Plain JSON values (lists, dicts, ISO 8601 time): the row
    travels as JSON (Tune's result, result.json); to_table gives the columns their types."""
    row = {
        "n_att": cfg.n_att, "seed": cfg.seed, "uar": r.uar, "fold_uar": list(r.fold_uars), "val_uar": r.val_uar,
        "best_epoch": r.best_epoch, "epochs": r.epochs,
        "corpus": store.get("corpus", {}).get("name", "ravdess"), "classes": list(r.classes),
        "recall": list(r.recall), "confusion": r.confusion,
        "config": cfg.to_dict(), "protocol": r.protocol,
        "store_hash": store["store_hash"], "features": store["features"],
        "code_version": code_version,
        "node": socket.gethostname() + "/" + node_ip, "wall_time_s": r.wall_time_s,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return row


# The nested columns' values, one accessor each: what consumers read instead of parsing cells.
# Any frame will do (a table read here, rows built by hand, JSON text of a v1 table).

def configs(df: pd.DataFrame, source: str = "results") -> list[dict]:
    """Each row's TrainConfig fields as recorded: a field the row predates is left out, so
    TrainConfig.from_dict reads it as its default."""
    return [{k: v for k, v in (c or {}).items() if v is not None} for c in _nested(df["config"], "config", source)]


def fold_uars(df: pd.DataFrame, source: str = "results") -> list[list[float]]:
    """Each row's per-fold test UARs ([] for a row from before they were recorded)."""
    return [v or [] for v in _nested(df["fold_uar"], "fold_uar", source)]


def classes(df: pd.DataFrame, source: str = "results") -> list[list[str] | None]:
    """Each row's label set (None where the row has none: another tool's table)."""
    return list(_nested(df["classes"], "classes", source))


def recalls(df: pd.DataFrame, source: str = "results") -> list[list[float] | None]:
    """Each row's per-class test recall, in its classes' order (None where missing)."""
    return list(_nested(df["recall"], "recall", source))


def confusions(df: pd.DataFrame, source: str = "results") -> list[list[list[int]] | None]:
    """Each row's test confusion matrix (rows true class, columns predicted; None where missing)."""
    return list(_nested(df["confusion"], "confusion", source))


def protocols(df: pd.DataFrame, source: str = "results") -> list[dict]:
    """Each row's protocol: split, norm, uar (how it was pooled; None in older rows), folds."""
    return [v or {} for v in _nested(df["protocol"], "protocol", source)]


def features(df: pd.DataFrame, source: str = "results") -> list[dict]:
    """Each row's store feature parameters ({} for a row from before they were recorded)."""
    return [v or {} for v in _nested(df["features"], "features", source)]
