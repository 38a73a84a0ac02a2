import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from sertune import results
from sertune.audio.labels import EMOTIONS, N_CLASSES
from sertune.cli import cli
from sertune.config import TrainConfig
from sertune.store.load import load_store
from sertune.training.batching import gather, normalize, sorted_batches
from sertune.training.metrics import confusion_matrix, per_class_recall, uar
from sertune.training.model import AttentionLSTM
from sertune.trials.tune import load_best_config


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


def _reloaded_confusion(model_pt: Path, store: str) -> tuple[list[list[int]], dict]:
    """The test speakers' confusion matrix from model.pt alone, as a user would score them:
    rebuild the model from the saved config, normalise with the saved statistics, predict."""
    ckpt = torch.load(model_pt, weights_only=True)  # plain tensors and containers: safe loading works
    cfg = TrainConfig.from_dict(ckpt["config"])
    fs = load_store(store)
    assert ckpt["store_hash"] == fs.store_hash
    (fold,) = ckpt["folds"]
    x = normalize(fs, None, cfg.norm, fold["norm_mean_std"])
    model = AttentionLSTM(x.shape[2], cfg.hidden_size, cfg.num_layers, cfg.n_att, cfg.dropout, N_CLASSES)
    model.load_state_dict(fold["weights"])
    model.eval()
    test = torch.as_tensor(fs.actors.numpy()[None, :] == np.array(fold["split"]["test_actors"])[:, None]).any(0)
    cm = torch.zeros(N_CLASSES, N_CLASSES, dtype=torch.long)
    with torch.no_grad():
        for batch in sorted_batches(torch.nonzero(test).squeeze(1), fs.lengths):
            xb, lb, yb = gather(x, fs.lengths, fs.labels, batch)
            cm += confusion_matrix(yb, model(xb, lb)[0].argmax(1), N_CLASSES)
    return cm.tolist(), fold


def test_train_command(synth_store, tmp_path):
    r = run("train", "--store", synth_store, "--n-att", 4, "--seed", 1, "--epochs", 3, "--lr", 0.004, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    assert r.output.count("val UAR") == 4 and "test UAR" in r.output
    rec = json.loads((tmp_path / "result.json").read_text())
    # result.json is a results row (same columns as a sweep's table) plus the history.
    assert set(rec) == set(results.RESULT_COLUMNS) | {"history"}
    results.validate(pd.DataFrame([{c: rec[c] for c in results.RESULT_COLUMNS}]))
    assert rec["n_att"] == 4 and rec["seed"] == 1 and rec["epochs"] == 3 and 1 <= rec["best_epoch"] <= 3
    assert rec["config"] == TrainConfig(n_att=4, seed=1, epochs=3, lr=0.004).to_dict()
    assert [h["epoch"] for h in rec["history"]] == [1, 2, 3]
    assert rec["val_uar"] == max(h["val_uar"] for h in rec["history"])
    assert rec["store_hash"] == load_store(synth_store).store_hash and rec["node"].endswith("/local")
    protocol = rec["protocol"]
    assert protocol["folds"][0]["test_actors"] == [5, 6] and protocol["folds"][0]["val_actors"] == [3, 4]
    confusion = rec["confusion"]
    assert sum(map(sum, confusion)) == protocol["folds"][0]["n_test"] == 120
    assert f"test UAR {rec['uar']:.4f}" in r.output

    # model.pt alone gives the same test predictions, hence the same confusion matrix and UAR.
    reloaded, fold = _reloaded_confusion(tmp_path / "model.pt", synth_store)
    assert fold["best_epoch"] == rec["best_epoch"] and fold["split"] == protocol["folds"][0]
    assert reloaded == confusion
    assert uar(torch.tensor(reloaded)) == pytest.approx(rec["uar"], abs=1e-12)
    assert rec["classes"] == list(EMOTIONS) and rec["corpus"] == "ravdess"
    recalls = rec["recall"]
    assert per_class_recall(torch.tensor(reloaded)).tolist() == pytest.approx(recalls, nan_ok=True)


def test_tune_asha_stops_early_and_writes_best_config(synth_store, tmp_path, ray_local):
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
    # Rerun as it was: nothing to do, and best_config.json keeps who made it and when.
    published = exp / "tune" / "best_config.json"
    published.write_text(json.dumps({**best, "code_version": "an-earlier-commit", "created_at": "2026-01-01"}, indent=2))
    before = published.read_bytes()
    r = run("tune", "--store", synth_store, "--experiment-dir", exp, "--space", space, "--num-samples", 6,
            "--epochs", 6, "--grace-period", 1, "--reduction-factor", 2, "--max-concurrent", 2)
    assert r.exit_code == 0, r.output
    assert published.read_bytes() == before, "rerunning a finished tune restamped its best configuration"
    r = run("tune", "--store", synth_store, "--experiment-dir", exp, "--space", space, "--num-samples", 8,
            "--epochs", 6, "--grace-period", 1, "--reduction-factor", 2)
    assert r.exit_code == 2 and "differs in settings.num_samples" in r.output


def test_tune_rejects_bad_space(synth_store, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: loguniform, low: 0.001, high: 0.1}\n")
    r = run("tune", "--store", synth_store, "--experiment-dir", tmp_path, "--space", space)
    assert r.exit_code == 2 and "unknown knob(s) learning_rate" in r.output


def test_tune_refuses_fixed_knob_that_breaks_a_rule(synth_store, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("cycles: 3\n")
    r = run("tune", "--store", synth_store, "--experiment-dir", tmp_path / "exp", "--space", space, "--epochs", 2,
            "--num-samples", 1, "--max-failures", 0)
    assert r.exit_code == 2 and "cycles" in r.output, r.output
    assert not (tmp_path / "exp" / "tune" / "tune").exists(), "Ray Tune ran before the check"


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


def test_sweep_results_and_rerun(synth_store, tmp_path, ray_local):
    args = ["sweep", "--store", synth_store, "--experiment-dir", tmp_path, "--no-tuned", "--n-att", "1,2",
            "--seeds", 2, "--epochs", 3]
    r = run(*args)
    assert r.exit_code == 0 and "4 run now" in r.output, r.output
    path = tmp_path / "sweep" / "results.parquet"
    df = results.read_results(str(path))
    assert list(df.columns) == list(results.RESULT_COLUMNS) and len(df) == 4
    assert df["uar"].between(0, 1).all() and (df["epochs"] == 3).all()
    assert df["best_epoch"].between(1, 3).all() and len(set(df["store_hash"])) == 1
    assert df["protocol"][0]["folds"][0]["test_actors"] == [5, 6]
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
