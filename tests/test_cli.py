"""The command line as a user meets it: a sweep kept as CSV, the exits for a table of another
store (7) and for a Ray error (8), and `sertune demo` from start to end, as a user sees it."""

from __future__ import annotations

import json
import re
import shutil
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from sertune import predictions, results
from sertune.cli import cli, main
from sertune.store.load import load_store
from sertune.store.schema import MARKER

FILES = {"table.md", "table.tex", "table.csv", "stats.json", "uar_kde.png", "uar_vs_natt.png",
         "per_class.md", "per_class.tex", "per_class.csv", "confusion.png"}


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


@pytest.fixture(scope="module")
def csv_sweep(synth_store, ray_local, tmp_path_factory):
    """`sertune sweep --results x.csv`: 2 pairs, 2 epochs."""
    work = tmp_path_factory.mktemp("csv-sweep")
    args = ["sweep", "--store", synth_store, "--experiment-dir", work / "exp", "--no-tuned", "--n-att", "1,2",
            "--seeds", 1, "--epochs", 2, "--cpus-per-trial", 1, "--results", work / "results.csv"]
    r = run(*args)
    assert r.exit_code == 0 and "2 run now" in r.output, r.output
    return work / "results.csv", args


def test_sweep_written_as_csv_reads_back(csv_sweep, synth_store):
    path, args = csv_sweep
    assert path.read_text().splitlines()[0] == ",".join(results.RESULT_COLUMNS)
    df = results.read_results(str(path))  # schema-checked
    assert sorted(zip(df.n_att, df.seed)) == [(1, 0), (2, 0)] and (df.epochs == 2).all()
    assert set(df.store_hash) == {load_store(synth_store).store_hash}
    for row in df.to_dict("records"):  # nested columns as JSON text in the CSV, values again once read
        assert row["config"]["n_att"] == row["n_att"]
        assert sum(map(sum, row["confusion"])) == 120
    # Each row's per-utterance predictions, beside the table, agree with the row.
    preds = predictions.read_predictions(predictions.default_location(str(path)))
    assert sorted(p.name for p in (path.parent / "results.predictions").iterdir()) == [
        "n_att-1_seed-0.parquet", "n_att-2_seed-0.parquet"]
    for row in df.to_dict("records"):
        run_preds = preds[(preds.n_att == row["n_att"]) & (preds.seed == row["seed"])]
        assert len(run_preds) == 120 and run_preds.utt_id.is_unique
        assert predictions.confusion(run_preds, 8).tolist() == row["confusion"]
    # The same command reads the CSV back to find every pair done, and leaves it alone.
    before = path.read_bytes()
    r = run(*args)
    assert r.exit_code == 0 and "0 run now, 2 already there" in r.output, r.output
    assert path.read_bytes() == before
    # And the report takes it as it is.
    r = run("report", "--results", path, "--out", path.parent / "report")
    assert r.exit_code == 0, r.output
    assert "| LSTM-v-1 " in r.output and "| LSTM-v-2 " in r.output


def test_results_of_another_store_exit_7(csv_sweep, tmp_path):
    path, args = csv_sweep
    other = tmp_path / "other.csv"
    df = results.read_results(str(path))
    results.write_results(df.assign(store_hash="00000000feedbeef"), str(other))
    before = other.read_bytes()
    r = run(*args[:-1], other)
    assert r.exit_code == 7, r.output
    (line,) = r.output.strip().splitlines()
    assert line.startswith(f"Error: {other}: holds results for store(s) ['00000000feedbeef'], not ")
    assert other.read_bytes() == before


def test_storage_failure_inside_a_ray_task_is_one_line_exit_9(synth_corpus, tmp_path, ray_local, monkeypatch, capsys):
    """A Ray task's storage failure: a folder sits where a shard is to be written (an object-store
    build in place, resumed after an interruption). The task's error reaches `sertune.cli.main` as a
    storage error naming the store: one line, exit 9, nothing that looks complete."""
    data = tmp_path / "data"
    shutil.copytree(synth_corpus / "Actor_01", data / "Actor_01")
    store = tmp_path / "store"
    (store / "shards" / "actor_01.parquet").mkdir(parents=True)
    (store / MARKER).write_text("sertune feature store\n")  # ours, interrupted: rebuilt in place
    monkeypatch.setattr(sys, "argv", ["sertune", "prepare", "--data", str(data), "--store", f"file://{store}"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 9
    err = capsys.readouterr().err.strip().splitlines()  # tqdm's progress lines, then the error
    errors = [line for line in err if line.startswith("Error: ")]
    assert errors == err[-1:] and "Traceback" not in "".join(err), err
    assert errors[0].startswith(f"Error: file://{store}") and "actor_01.parquet" in errors[0], errors
    assert not (store / "manifest.json").exists()  # nothing looks complete


def test_ray_error_exits_8(ray_local, monkeypatch, capsys):
    """A Ray error outside sertune's own checks (here: a real task raising in a worker) reaches
    `sertune.cli.main`, which prints one line and exits 8."""
    import click
    import ray

    import sertune.cli as cli_module

    @ray.remote
    def broken():
        raise ValueError("not a sertune error")

    @click.command("broken")
    def command():
        ray.get(broken.remote())

    group = click.Group(commands={"broken": command})
    monkeypatch.setattr(cli_module, "cli", group)
    monkeypatch.setattr(sys, "argv", ["sertune", "broken"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 8
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: RayTaskError(ValueError): ") and "not a sertune error" in err[0], err


@pytest.mark.slow  # every stage, 9 trials: about 40 s on 2 idle cores
def test_demo_end_to_end(tmp_path):
    """`sertune demo` as a user runs it (a subprocess with its own Ray, output not a terminal):
    it writes the corpus, builds the store, tunes, sweeps at the tuned configuration and
    reports; everything it prints is sertune's lines -- no Ray output or warning -- and ends
    with the table and the report's files."""
    from proctools import Procs, clean_env, tail, wait_or_fail

    work = tmp_path / "demo"
    procs = Procs()
    try:
        log = tmp_path / "demo.log"
        # 4 epochs, not 2: the default space samples up to 4 cycles (see test_tune's cycles test).
        cmd = [sys.executable, "-m", "sertune", "demo", "--workdir", str(work), "--actors", "6", "--epochs", "4",
               "--tune-samples", "2", "--seeds", "1", "--num-cpus", "2"]
        proc = procs.popen(cmd, clean_env(RAY_TMPDIR=procs.tempdir("demo")), log)
        assert wait_or_fail(proc, 900, log, "sertune demo") == 0, tail(log)
    finally:
        assert not procs.close()
    exp = work / "experiment"
    assert len(list((work / "corpus").glob("Actor_*/*.wav"))) == 360
    assert load_store(str(work / "store")).manifest["corpus"]["n_actors"] == 6
    assert len(pd.read_parquet(exp / "tune" / "trials.parquet")) == 2
    best = json.loads((exp / "tune" / "best_config.json").read_text())
    sweep = results.read_results(str(exp / "sweep" / "results.parquet"))
    assert sorted(sweep.n_att) == [1, 2, 4, 8, 16, 32, 64] and set(sweep.seed) == {0} and (sweep.epochs == 4).all()
    tuned = {k: v for k, v in sweep.config[0].items() if k in best["tuned"]}
    assert tuned == best["tuned"], "the sweep did not run at the tuned configuration"
    assert {p.name for p in (exp / "report").iterdir()} == FILES
    table = pd.read_csv(exp / "report" / "table.csv")
    assert list(table.model) == [f"LSTM-v-{n}" for n in (1, 2, 4, 8, 16, 32, 64)] and (table.n == 1).all()
    assert table.uar_mean.tolist() == pytest.approx(sweep.sort_values("n_att").uar.tolist())

    out = log.read_text()
    assert (exp / "report" / "table.md").read_text() in out
    lines = out.splitlines()
    # 2 tune and 7 sweep trials, but one seed: the report adds a warning per N_att (14 lines)
    assert len(lines) <= 60, "\n".join(lines)
    for line in lines:
        assert line.isprintable(), repr(line)
        assert not re.search(r"[╭╰│{}]|WARNING|\wWarning|INFO|\(raylet\)|Trial status|token", line), line
    assert re.search(r"/demo/store: 360 utterances of 6 speakers in \d+ shards, ravdess, 8 classes", out), lines[:3]
    assert re.fullmatch(r"Report written to .*/demo/experiment/report: table\.md, .*uar_vs_natt\.png.*", lines[-1])
