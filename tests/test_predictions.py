"""Per-utterance predictions: what `sertune train` writes beside its result agrees with the result
(every test utterance once, out of fold; the confusion matrix and each fold's UAR), the table's
columns have their own types, and a file that is not one is refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sertune import predictions
from sertune.cli import cli
from sertune.errors import ResultsError
from sertune.store.load import load_store


@pytest.fixture(scope="module")
def train_run(synth_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    r = CliRunner().invoke(cli, ["train", "--store", synth_store, "--out", str(out), "--folds", "3", "--epochs", "2",
                                 "--seed", "4", "--n-att", "2"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


def test_train_writes_out_of_fold_predictions_that_agree_with_its_result(train_run, synth_store):
    row = json.loads((train_run / "result.json").read_text())
    df = predictions.read_predictions(str(train_run))  # a folder of runs, at any depth
    fs = load_store(synth_store)
    assert len(df) == len(fs) and set(df.utt_id) == set(fs.meta.utt_id)  # each utterance once over the folds
    assert set(df.n_att) == {2} and set(df.seed) == {4}
    value = lambda col: row[col] if not isinstance(row[col], str) else json.loads(row[col])  # noqa: E731
    assert predictions.confusion(df, 8).tolist() == value("confusion")
    protocol, fold_uar = value("protocol"), value("fold_uar")
    for k, fold in enumerate(protocol["folds"]):
        part = df[df.fold == k]
        assert sorted(set(part.actor)) == fold["test_actors"]
        cm = predictions.confusion(part, 8)
        recall = np.diag(cm) / cm.sum(1)
        assert np.nanmean(recall) == pytest.approx(fold_uar[k], abs=1e-12)
    truth = dict(zip(fs.meta.utt_id, fs.meta.label))
    assert (df.label_id == df.utt_id.map(truth)).all()
    probs = np.stack(df.probs.to_numpy())
    assert np.allclose(probs.sum(1), 1, atol=1e-5) and (probs.argmax(1) == df.pred_id).all()


def test_the_table_types_its_columns_and_names_its_classes(train_run):
    (f,) = (train_run / "predictions").iterdir()
    table = pq.read_table(f)
    assert table.schema.equals(predictions.PREDICTIONS_SCHEMA)
    assert table.schema.field("probs").type == pa.list_(pa.float32())
    meta = table.schema.metadata
    assert meta[b"sertune.schema"] == b"predictions/1"
    classes = json.loads(meta[b"classes"])
    assert len(classes) == 8 and classes[0] == "neutral"
    df = table.to_pandas()
    assert (df.label == [classes[i] for i in df.label_id]).all() and (df.pred == [classes[i] for i in df.pred_id]).all()


def test_a_file_that_is_not_predictions_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "n_att-1_seed-0.parquet"
    pq.write_table(pa.table({"n_att": [1], "seed": [0]}), bad)
    with pytest.raises(ResultsError, match=r"missing column\(s\) utt_id") as e:
        predictions.read_predictions(str(tmp_path))
    assert "\n" not in e.value.message and str(bad) in e.value.message
    with pytest.raises(ResultsError, match="no predictions"):
        predictions.read_predictions(str(tmp_path / "nowhere"))
    assert predictions.default_location("s3://b/x/results.parquet?endpoint_override=h:1") == \
        "s3://b/x/results.predictions?endpoint_override=h:1"
