"""Per-class parts of `sertune report`, and a report published as one set (issue 13.3)."""

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from sertune.audio.labels import EMOTIONS
from sertune.cli.report import report as report_command

REPO = Path(__file__).resolve().parent.parent
BASE_FILES = {"table.md", "table.tex", "table.csv", "stats.json", "uar_kde.png", "uar_vs_natt.png"}
CLASS_FILES = {"per_class.md", "per_class.tex", "per_class.csv", "confusion.png"}


def sweep_rows(seed=0) -> pd.DataFrame:
    """Rows as a sweep writes them: a confusion matrix per run and recall read off it."""
    rng = np.random.default_rng(seed)
    rows = []
    for n_att, skill in ((1, 4), (4, 7), (16, 5)):
        for s in range(3):
            cm = rng.integers(0, 4, (8, 8)) + np.diag(rng.integers(skill, skill + 6, 8))
            recall = cm.diagonal() / cm.sum(1)
            rows.append({"n_att": n_att, "seed": s, "uar": float(recall.mean()),
                         **{f"recall_{e}": float(r) for e, r in zip(EMOTIONS, recall)},
                         "confusion": json.dumps(cm.tolist())})
    return pd.DataFrame(rows)


def run(args):
    return CliRunner().invoke(report_command, [str(a) for a in args])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("classes")
    df = sweep_rows()
    df.to_parquet(tmp / "rows.parquet")
    res = run(["--results", tmp / "rows.parquet", "--out", tmp / "out"])
    assert res.exit_code == 0, res.output
    return df, tmp / "out", res


def test_per_class_means_equal_those_computed_from_the_rows(rendered):
    df, out, res = rendered
    table = pd.read_csv(out / "per_class.csv")
    assert list(table["n_att"]) == [1, 4, 16]
    for n_att, g in df.groupby("n_att"):
        row = table[table["n_att"] == n_att].iloc[0]
        for e in EMOTIONS:
            x = g[f"recall_{e}"].to_numpy()
            assert row[f"{e}_mean"] == pytest.approx(sum(x) / len(x), abs=1e-12)
            assert row[f"{e}_std"] == pytest.approx(np.sqrt(((x - x.mean()) ** 2).sum() / (len(x) - 1)), abs=1e-12)
    doc = json.loads((out / "stats.json").read_text())["per_class"]
    angry = [r for r in doc["recall"] if r["n_att"] == 4][0]["mean"]["angry"]
    assert angry == pytest.approx(df[df.n_att == 4]["recall_angry"].mean())
    md = (out / "per_class.md").read_text()
    assert "| LSTM-v-4 | 3 |" in md and "per_class.md" in res.output  # the file, named; the terminal keeps to the UAR table
    assert "\\toprule" in (out / "per_class.tex").read_text()


def test_confusion_summed_over_seeds_for_baseline_and_best(rendered):
    df, out, _ = rendered
    doc = json.loads((out / "stats.json").read_text())["per_class"]
    # N_att = 4 has the best mean UAR by construction; N_att = 16 is not drawn.
    assert set(doc["confusion_summed_over_seeds"]) == {"1", "4"}
    want = sum(np.array(json.loads(c)) for c in df[df.n_att == 4]["confusion"])
    assert doc["confusion_summed_over_seeds"]["4"] == want.tolist()
    assert {p.name for p in out.iterdir()} == BASE_FILES | CLASS_FILES
    img = mpimg.imread(out / "confusion.png")
    assert img.shape[1] > img.shape[0] * 1.5  # two matrices side by side


def test_table_without_class_columns_skips_them_with_a_note(tmp_path):
    df = sweep_rows()[["n_att", "seed", "uar"]]
    df.to_csv(tmp_path / "plain.csv", index=False)
    res = run(["--results", tmp_path / "plain.csv", "--out", tmp_path / "out"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "out").iterdir()} == BASE_FILES
    assert "per-class recall table skipped" in res.output and "confusion.png skipped" in res.output
    doc = json.loads((tmp_path / "out" / "stats.json").read_text())["per_class"]
    assert "recall" not in doc and "no per-class recall" in doc["note"]


def test_bad_confusion_cell_is_a_one_line_results_error(tmp_path):
    df = sweep_rows()
    df.loc[2, "confusion"] = "[[1, 2], [3]]"
    df.to_parquet(tmp_path / "rows.parquet")
    res = run(["--results", tmp_path / "rows.parquet", "--out", tmp_path / "out"])
    assert res.exit_code == 5 and "row 2: confusion" in res.output
    assert not (tmp_path / "out").exists()


def test_folder_with_other_files_is_not_replaced(tmp_path):
    sweep_rows().to_parquet(tmp_path / "rows.parquet")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    res = run(["--results", tmp_path / "rows.parquet", "--out", out])
    assert res.exit_code == 2 and "notes.txt" in res.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def _limit_file_size():
    # The PNGs are tens of kB, the tables a few: a "disk" that fills up midway through the set.
    resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, 12_000))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed


def test_failure_midway_leaves_the_old_report_whole(tmp_path):
    rows = sweep_rows()
    rows.to_parquet(tmp_path / "old.parquet")
    out = tmp_path / "out"
    assert run(["--results", tmp_path / "old.parquet", "--out", out]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    rows.assign(uar=rows["uar"] * 0.9).to_parquet(tmp_path / "new.parquet")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "sertune", "report", "--results", str(tmp_path / "new.parquet"),
                          "--out", str(out)], env=env, capture_output=True, text=True, preexec_fn=_limit_file_size)
    assert res.returncode == 1, res.stderr
    assert "the previous report there is unchanged" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.parquet", "old.parquet", "out"]  # no staging left


def test_report_on_an_object_store_replaces_the_set(tmp_path, monkeypatch):
    """On S3 (a real moto server on loopback) the set is staged, then moved into place; files of
    the old set that the new one lacks go."""
    import boto3
    from moto.server import ThreadedMotoServer

    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
        s3.create_bucket(Bucket="exp")
        out = f"s3://exp/report?endpoint_override={host}:{port}&scheme=http"
        sweep_rows().to_parquet(tmp_path / "rows.parquet")
        assert run(["--results", tmp_path / "rows.parquet", "--out", out]).exit_code == 0
        sweep_rows()[["n_att", "seed", "uar"]].to_csv(tmp_path / "plain.csv", index=False)
        res = run(["--results", tmp_path / "plain.csv", "--out", out])
        assert res.exit_code == 0, res.output
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="exp").get("Contents", []) if not o["Key"].endswith("/"))
        assert keys == sorted(f"report/{f}" for f in BASE_FILES)  # per-class files of the old set gone, no staging
    finally:
        server.stop()
