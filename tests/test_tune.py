import json
import threading
import time

import pandas as pd
from click.testing import CliRunner

from sertune import results
from sertune.cli import cli
from sertune.config import TrainConfig
from sertune.trials.tune import load_best_config


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


def test_train_command(synth_store, tmp_path):
    r = run("train", "--store", synth_store, "--n-att", 4, "--seed", 1, "--epochs", 3, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    assert r.output.count("val UAR") == 4 and "test UAR" in r.output
    rec = json.loads((tmp_path / "result.json").read_text())
    assert rec["n_att"] == 4 and rec["seed"] == 1 and len(rec["history"]) == 3
    assert 0 <= rec["uar"] <= 1 and json.loads(rec["config"])["epochs"] == 3
    assert (tmp_path / "model.pt").stat().st_size > 10_000


def test_tune_asha_stops_early_and_writes_best_config(synth_store, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("batch_size: {type: choice, values: [16, 32]}\ncycles: 1\n")
    exp = tmp_path / "exp"
    r = run("tune", "--store", synth_store, "--experiment-dir", exp, "--space", space, "--num-samples", 6,
            "--epochs", 6, "--grace-period", 1, "--reduction-factor", 2, "--max-concurrent", 2)
    assert r.exit_code == 0, r.output
    assert "best validation UAR" in r.output
    trials = pd.read_parquet(exp / "tune" / "trials.parquet")
    assert len(trials) == 6
    assert (trials["training_iteration"] < 6).any(), "ASHA stopped no trial"
    assert (trials["training_iteration"] == 6).any()
    assert set(trials["config/batch_size"]) <= {16, 32} and set(trials["config/cycles"]) == {1}
    best = json.loads((exp / "tune" / "best_config.json").read_text())
    assert best["best_val_uar"] == trials["best_val_uar"].max()
    cfg = load_best_config(str(exp / "tune" / "best_config.json"))
    assert isinstance(cfg, TrainConfig) and cfg.n_att == 1 and cfg.epochs == 6
    assert 1e-4 <= cfg.lr <= 1e-2 and cfg.batch_size in (16, 32)
    r = run("tune", "--store", synth_store, "--experiment-dir", exp, "--space", space, "--num-samples", 8,
            "--epochs", 6, "--grace-period", 1, "--reduction-factor", 2)
    assert r.exit_code == 2 and "differs in settings.num_samples" in r.output


def test_tune_rejects_bad_space(synth_store, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: loguniform, low: 0.001, high: 0.1}\n")
    r = run("tune", "--store", synth_store, "--experiment-dir", tmp_path, "--space", space)
    assert r.exit_code == 2 and "unknown knob(s) learning_rate" in r.output


def test_sweep_fractional_gpus_pack_four_trials(synth_store, tmp_path, ray_local):
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(ray_local.available_resources().get("GPU", 0.0))
            time.sleep(0.05)

    t = threading.Thread(target=watch)
    t.start()
    try:
        r = run("sweep", "--store", synth_store, "--experiment-dir", tmp_path, "--no-tuned", "--n-att", "1,8",
                "--seeds", 2, "--epochs", 6, "--gpus-per-trial", 0.25, "--cpus-per-trial", 0.5)
    finally:
        stop.set()
        t.join()
    assert r.exit_code == 0, r.output
    assert ray_local.cluster_resources()["GPU"] == 1
    assert min(seen) == 0.0, f"four 0.25-GPU trials never ran at once on one GPU (free GPU seen: {sorted(set(seen))})"
    df = results.read_results(str(tmp_path / "sweep" / "results.parquet"))
    assert sorted(zip(df.n_att, df.seed)) == [(1, 0), (1, 1), (8, 0), (8, 1)]


def test_sweep_results_and_rerun(synth_store, tmp_path):
    args = ["sweep", "--store", synth_store, "--experiment-dir", tmp_path, "--no-tuned", "--n-att", "1,2",
            "--seeds", 2, "--epochs", 3]
    r = run(*args)
    assert r.exit_code == 0 and "4 run now" in r.output, r.output
    path = tmp_path / "sweep" / "results.parquet"
    df = results.read_results(str(path))
    assert list(df.columns) == list(results.RESULT_COLUMNS) and len(df) == 4
    assert df["uar"].between(0, 1).all() and (df["epochs"] == 3).all()
    assert df["best_epoch"].between(1, 3).all() and len(set(df["store_hash"])) == 1
    assert json.loads(df["protocol"][0])["folds"][0]["test_actors"] == [5, 6]
    before = path.read_bytes()
    r = run(*args)
    assert r.exit_code == 0 and "0 run now" in r.output
    assert path.read_bytes() == before
    r = run(*args[:-2], "--epochs", 4)  # same table, other configuration: refuse to mix
    assert r.exit_code == 7 and "another configuration (differs in epochs)" in r.output
    r = run(*args[:-4], "--seeds", 3, "--epochs", 3)
    assert r.exit_code == 0 and "2 run now" in r.output
    assert len(results.read_results(str(path))) == 6


def test_bad_options_are_one_line_errors(synth_store, synth_corpus, tmp_path):
    cases = [
        (["tune", "--store", synth_store, "--experiment-dir", tmp_path, "--reduction-factor", 1], 2, "reduction-factor"),
        (["sweep", "--store", synth_store, "--experiment-dir", tmp_path, "--no-tuned", "--n-att", "0,1"], 2, "N_att must be >= 1"),
        (["prepare", "--data", synth_corpus, "--store", tmp_path / "s", "--hop-ms", 0], 2, "hop 0.0 ms is under one sample"),
        (["prepare", "--data", synth_corpus, "--store", tmp_path / "s", "--fmax", 9000], 2, "Nyquist frequency 8000 Hz"),
        (["train", "--store", synth_store, "--folds", 2], 2, "folds must be 0"),
        (["train", "--store", tmp_path / "nostore"], 4, "no such store"),
    ]
    for args, code, message in cases:
        r = run(*args)
        assert r.exit_code == code and message in r.output, (args, r.output)
        assert "Traceback" not in r.output and r.output.strip().count("\n") <= 3
    assert not (tmp_path / "s").exists()
