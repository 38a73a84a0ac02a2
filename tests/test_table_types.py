"""The results table describes itself: real column types (lists, structs, a UTC time) that DuckDB,
pandas or polars read without parsing strings, a schema version in its metadata, and tables of
the older versions (JSON text in strings) read as the same values; docs/tables.md."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import typing

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sertune import results
from sertune.cli import cli
from sertune.config import FeatureConfig, TrainConfig
from sertune.errors import ResultsError
from sertune.store.schema import read_manifest

# What a v2 table held (before results/3): a recall_<emotion> column per RAVDESS emotion where
# results/3 has corpus, classes and a recall list.
NEW_IN_V3 = ("corpus", "classes", "recall")
V2_FIELDS = [g for f in results.RESULTS_SCHEMA if f.name not in NEW_IN_V3[1:]
             for g in ([pa.field(c, pa.float64()) for c in results.RECALL_COLUMNS] if f.name == "corpus" else [f])]
V2_COLUMNS = [f.name for f in V2_FIELDS]
# What a v1 table held (before results/2): nested values as JSON text, the time as text.
V1_STRINGS = ("fold_uar", "confusion", "config", "protocol", "features", "finished_at")
V1_SCHEMA = pa.schema([(f.name, pa.string() if f.name in V1_STRINGS else f.type) for f in V2_FIELDS])

DUCKDB = {int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN", str: "VARCHAR"}


def _duckdb_struct(cls) -> str:
    """The DuckDB type of a struct with a field per dataclass field ("precision" is a DuckDB
    keyword: it quotes that name)."""
    hints = typing.get_type_hints(cls)
    name = lambda f: f'"{f.name}"' if f.name == "precision" else f.name  # noqa: E731
    return "STRUCT(" + ", ".join(f"{name(f)} {DUCKDB[hints[f.name]]}" for f in dataclasses.fields(cls)) + ")"


def _v1_row(n_att: int, seed: int, **changes) -> dict:
    """A row as a v1 table held it (docs/results/*: JSON text, the time as text), 3 actor folds."""
    actors = [[1, 2], [3, 4], [5, 6]]
    folds = [{"fold": k, "kind": "speaker", "n_test": 120, "n_train": 180, "n_val": 60, "test_actors": test,
              "train_actors": sorted(set(range(1, 7)) - set(test) - set(actors[(k + 1) % 3])),
              "val_actors": actors[(k + 1) % 3]} for k, test in enumerate(actors)]
    confusion = [[5 if i == j else 1 for j in range(8)] for i in range(8)]
    row = {"n_att": n_att, "seed": seed, "uar": 0.4375, "fold_uar": json.dumps([0.43125, 0.45, 0.41875]),
           "val_uar": 0.5, "best_epoch": 3, "epochs": 4, **{c: 0.4375 for c in results.RECALL_COLUMNS},
           "confusion": json.dumps(confusion), "config": TrainConfig(n_att=n_att, seed=seed, folds=3).to_json(),
           "protocol": json.dumps({"folds": folds, "norm": "global", "split": "speaker", "uar": "pooled over folds"}),
           "store_hash": "0123456789abcdef", "features": json.dumps(FeatureConfig().to_dict(), sort_keys=True),
           "code_version": "0.1.0+abc", "node": "host/127.0.0.2", "wall_time_s": 12.5,
           "finished_at": "2026-11-25T22:00:00+00:00"}
    return {**row, **changes}


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


@pytest.fixture(scope="module")
def sweep(synth_store, ray_local, tmp_path_factory):
    """A real results table: one run (N_att 2, seed 0; 3 actor folds of 1 epoch), written by `sertune sweep`."""
    work = tmp_path_factory.mktemp("types")
    started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    r = run("sweep", "--store", synth_store, "--experiment-dir", work / "exp", "--no-tuned", "--n-att", 2,
            "--seeds", 1, "--epochs", 1, "--folds", 3, "--cpus-per-trial", 1)
    assert r.exit_code == 0, r.output
    return work / "exp" / "sweep" / "results.parquet", started


def _v1(df, path):
    """``df`` (v3 values of a RAVDESS store) written as a v1 table would have been: JSON text,
    a column per emotion's recall, no version key."""
    assert df["classes"].map(list).tolist() == [list(results.EMOTIONS)] * len(df)
    text = results.to_text(df)
    recall = pd.DataFrame(df["recall"].tolist(), columns=list(results.RECALL_COLUMNS), index=text.index)
    text = pd.concat([text, recall], axis=1)
    table = pa.Table.from_pandas(text[V2_COLUMNS], schema=V1_SCHEMA, preserve_index=False)
    pq.write_table(table, path)
    assert b"sertune.schema" not in (pq.read_schema(path).metadata or {})


def test_duckdb_reads_real_types(sweep, synth_store):
    path, started = sweep
    con = duckdb.connect()
    types = dict((name, typ) for name, typ, *_ in
                 con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall())
    assert list(types) == list(results.RESULT_COLUMNS)
    assert types["fold_uar"] == "DOUBLE[]" and types["confusion"] == "BIGINT[][]"
    assert types["config"] == _duckdb_struct(TrainConfig)  # a field per TrainConfig field, by itself
    assert types["features"] == _duckdb_struct(FeatureConfig)
    assert types["protocol"] == ("STRUCT(split VARCHAR, norm VARCHAR, uar VARCHAR, folds STRUCT(kind VARCHAR, "
                                 "fold BIGINT, train_actors BIGINT[], val_actors BIGINT[], test_actors BIGINT[], "
                                 "n_train BIGINT, n_val BIGINT, n_test BIGINT)[])")
    assert types["finished_at"] == "TIMESTAMP WITH TIME ZONE"
    assert {types[c] for c in ("n_att", "seed", "best_epoch", "epochs")} == {"BIGINT"}
    assert {types[c] for c in ("uar", "val_uar", "wall_time_s")} == {"DOUBLE"}
    assert types["recall"] == "DOUBLE[]" and types["classes"] == "VARCHAR[]"
    assert {types[c] for c in ("store_hash", "code_version", "node", "corpus")} == {"VARCHAR"}
    assert pq.read_schema(path).metadata[b"sertune.schema"] == b"results/3"

    # Values: what the runs were, without a json.loads.
    rows = con.execute(f"SELECT n_att, seed, uar, fold_uar, confusion, config, protocol, features, finished_at, "
                       f"protocol.folds[1].test_actors, corpus, classes, recall[list_position(classes, 'angry')], "
                       f"recall FROM read_parquet('{path}') ORDER BY n_att").fetchall()
    features = read_manifest(synth_store)["features"]
    for n_att, seed, uar, fold_uar, confusion, config, protocol, feats, finished_at, first_test, corpus, classes, angry, recall in rows:
        assert corpus == "ravdess" and classes == list(results.EMOTIONS) and len(recall) == 8
        assert angry == confusion[4][4] / sum(confusion[4])  # recall of a class, by its name
        assert config == TrainConfig(n_att=n_att, seed=seed, epochs=1, folds=3, threads=1).to_dict()
        assert len(fold_uar) == 3 and all(0 <= u <= 1 for u in fold_uar) and 0 <= uar <= 1
        assert len(confusion) == len(confusion[0]) == 8 and sum(map(sum, confusion)) == 360  # every utterance once
        assert len(protocol["folds"]) == 3 and protocol["uar"] == "pooled over folds"
        assert sorted(a for f in protocol["folds"] for a in f["test_actors"]) == [1, 2, 3, 4, 5, 6]
        assert first_test == protocol["folds"][0]["test_actors"]
        assert feats == features
        assert 0 <= uar <= 1
        assert started <= finished_at <= dt.datetime.now(dt.timezone.utc)
    # pandas through read_results: the same values.
    df = results.read_results(str(path))
    assert results.configs(df) == [r[5] for r in rows] and results.fold_uars(df) == [r[3] for r in rows]
    assert results.confusions(df) == [r[4] for r in rows] and results.protocols(df) == [r[6] for r in rows]
    assert list(df["finished_at"]) == [r[8] for r in rows] and str(df["finished_at"].dtype) == "datetime64[us, UTC]"


def test_csv_holds_json_text_and_reads_back_the_same(sweep, tmp_path):
    df = results.read_results(str(sweep[0]))
    csv = tmp_path / "results.csv"
    results.write_results(df, str(csv))
    raw = pd.read_csv(csv, dtype=str)
    assert [json.loads(c) for c in raw["config"]] == results.configs(df)  # JSON text in the cells
    back = results.read_results(str(csv))
    for get in (results.configs, results.fold_uars, results.confusions, results.protocols, results.features,
                results.classes, results.recalls):
        assert get(back) == get(df)
    assert list(back["finished_at"]) == list(df["finished_at"])


def test_a_v1_table_reads_as_v3_values_and_an_append_rewrites_it_as_v3(sweep, tmp_path):
    df = results.read_results(str(sweep[0]))
    old = tmp_path / "v1.parquet"
    _v1(df, old)
    back = results.read_results(str(old))
    for get in (results.configs, results.fold_uars, results.confusions, results.protocols, results.features,
                results.classes, results.recalls):
        assert get(back) == get(df)
    assert back["corpus"].tolist() == ["ravdess"]  # every store before results/3 was RAVDESS's
    assert list(back["finished_at"]) == list(df["finished_at"])

    row = {**df.iloc[0].to_dict(), "seed": 7, "config": {**results.configs(df)[0], "seed": 7},
           "finished_at": "2026-12-01T10:00:00+00:00"}
    results.append_rows(str(old), [row])
    assert pq.read_schema(old).remove_metadata() == results.RESULTS_SCHEMA.remove_metadata()
    assert pq.read_schema(old).metadata == {b"sertune.schema": b"results/3"}
    again = results.read_results(str(old))
    assert sorted(zip(again.n_att, again.seed)) == [(2, 0), (2, 7)]
    kept = again[again.seed == 0].reset_index(drop=True)  # the old rows, as they were
    for get in (results.configs, results.fold_uars, results.confusions, results.protocols, results.features):
        assert get(kept) == get(df)


def test_older_v1_rows_read_as_what_they_mean(sweep, tmp_path):
    """Tables from before fold_uar and features (LATER_COLUMNS), a config from before an option."""
    df = results.read_results(str(sweep[0]))
    old = tmp_path / "older.parquet"
    text = results.to_text(df)
    cfg = json.loads(text.loc[0, "config"])
    del cfg["init"]  # written before TrainConfig had it
    text.loc[0, "config"] = json.dumps(cfg)
    text = text.drop(columns=["fold_uar", "features"])
    pq.write_table(pa.Table.from_pandas(text, preserve_index=False), old)
    back = results.read_results(str(old))
    assert results.fold_uars(back) == [[]] and results.features(back) == [{}]
    assert back["features"].tolist() == [None]  # not recorded: null, not a struct of nulls
    assert back["config"][0]["init"] is None and "init" not in results.configs(back)[0]
    assert TrainConfig.from_dict(results.configs(back)[0]).init == TrainConfig().init


@pytest.mark.parametrize("column, cell, problem", [
    ("config", '{"lr": 0.01, "batch_size": ', "config is not valid JSON"),
    ("confusion", "[[1, 2], [3, x]]", "confusion is not valid JSON"),
    ("finished_at", "yesterday", "finished_at 'yesterday' is not an ISO 8601 time"),
    ("config", '{"lr": 0.01, "learning_rate": 0.01}', "config does not fit the results schema (learning_rate: no such field)"),
    ("confusion", "[[1, 2.5]]", "confusion does not fit the results schema (0.1: 2.5 reads as 2)"),
    ("fold_uar", '["half"]', "fold_uar does not fit the results schema"),
])
def test_a_bad_v1_cell_is_one_line_naming_file_row_and_column(tmp_path, column, cell, problem):
    path = tmp_path / "v1.parquet"
    text = [_v1_row(1, 0), _v1_row(1, 1, **{column: cell}), _v1_row(2, 0)]
    pq.write_table(pa.Table.from_pylist(text, schema=V1_SCHEMA), path)
    with pytest.raises(ResultsError) as e:
        results.read_results(str(path))
    assert str(e.value).startswith(f"{path}: row 1: {problem}") and "\n" not in str(e.value)
    r = CliRunner().invoke(cli, ["report", "--results", str(path), "--out", str(tmp_path / "r")])
    assert r.exit_code == 5 and f"{path}: row 1: {problem}" in r.output


def test_a_newer_table_is_refused(tmp_path):
    path = tmp_path / "v4.parquet"
    results.write_results(pd.DataFrame([_v1_row(1, 0)]), str(path))
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({b"sertune.schema": b"results/4"}), path)
    with pytest.raises(ResultsError, match="a results/4 table; this sertune reads results/1 to results/3"):
        results.read_results(str(path))


def test_a_new_config_field_is_a_new_struct_field_by_itself():
    @dataclasses.dataclass(frozen=True)
    class Grown:
        n_att: int = 1
        lr: float = 1e-3
        context_norm: bool = False
        init: str = "default"
        warmup_epochs: int = 0  # the new one

    assert results.struct_of(Grown) == pa.struct([("n_att", pa.int64()), ("lr", pa.float64()), ("context_norm", pa.bool_()),
                                                  ("init", pa.string()), ("warmup_epochs", pa.int64())])
    assert [f.name for f in results.RESULTS_SCHEMA.field("config").type] == [f.name for f in dataclasses.fields(TrainConfig)]


def test_result_row_is_plain_json():
    """The row travels as JSON (Tune's result, result.json): lists, dicts, an ISO time."""
    from types import SimpleNamespace

    r = SimpleNamespace(uar=0.5, fold_uars=[0.5, 0.4, 0.6], val_uar=0.6, best_epoch=1, epochs=1, recall=[0.5] * 6,
                        confusion=[[1] * 6] * 6, classes=("neutral", "happy", "sad", "angry", "fearful", "disgust"),
                        protocol={"split": "speaker", "norm": "global", "uar": "pooled over folds",
                                                           "folds": []}, wall_time_s=1.0)
    store = {"store_hash": "0123456789abcdef", "features": FeatureConfig().to_dict(), "corpus": {"name": "crema-d"}}
    row = results.result_row(TrainConfig(), r, store, "v")
    assert json.loads(json.dumps(row)) == row
    assert row["corpus"] == "crema-d" and row["classes"] == list(r.classes) and row["recall"] == r.recall
    assert row["config"] == TrainConfig().to_dict() and row["fold_uar"] == [0.5, 0.4, 0.6]
    df = results.validate(pd.DataFrame([row]))
    assert results.to_table(df).schema == results.RESULTS_SCHEMA


def test_a_hand_built_v1_table_reads_as_its_values(tmp_path):
    path = tmp_path / "v1.parquet"
    pq.write_table(pa.Table.from_pylist([_v1_row(1, 0), _v1_row(4, 2)], schema=V1_SCHEMA), path)
    df = results.read_results(str(path))
    assert results.configs(df) == [TrainConfig(n_att=1, seed=0, folds=3).to_dict(), TrainConfig(n_att=4, seed=2, folds=3).to_dict()]
    assert results.fold_uars(df)[0] == [0.43125, 0.45, 0.41875] and results.confusions(df)[0][0] == [5, 1, 1, 1, 1, 1, 1, 1]
    assert results.protocols(df)[1]["folds"][2]["test_actors"] == [5, 6] and results.features(df)[0] == FeatureConfig().to_dict()
    assert df["finished_at"][0] == pd.Timestamp("2026-11-25T22:00:00Z")
    assert results.classes(df) == [list(results.EMOTIONS)] * 2 and results.recalls(df) == [[0.4375] * 8] * 2
