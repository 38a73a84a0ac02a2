"""The authors' two leaks as explicit choices (sertune/leaks.py): what each does to a run, that a
row records it, and that report and compare say so above the table."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from sertune import leaks
from sertune.cli import cli
from sertune.config import TrainConfig
from sertune.errors import ConfigError
from sertune.results import read_train_results  # a folder of `sertune train` runs reads as rows
from sertune.store.load import load_store
from sertune.training.loop import Training, train

FOLDS = "1,2/3;3,4/5;5,6/1"  # the synthetic store's six actors in three folds


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


def test_fixed_fold_seed_makes_the_runs_seed_do_nothing(synth_store):
    fs = load_store(synth_store)
    base = TrainConfig(epochs=2, threads=1, actor_folds=FOLDS)
    fixed = [train(base.replace(seed=s, fixed_fold_seed=7), fs) for s in (0, 1)]
    honest = [train(base.replace(seed=s), fs) for s in (0, 1)]
    # On a CPU the fixed seed makes two "seeds" one run twice: same weights, same predictions.
    assert fixed[0].uar == fixed[1].uar and fixed[0].fold_uars == fixed[1].fold_uars
    assert (fixed[0].predictions["probs"] == fixed[1].predictions["probs"]).all()
    assert (honest[0].predictions["probs"] != honest[1].predictions["probs"]).any()
    with pytest.raises(ConfigError, match="fixed_fold_seed"):
        TrainConfig(fixed_fold_seed=-2)


def test_selected_on_test_reports_the_pooled_test_uar_it_will_end_with(synth_store):
    fs = load_store(synth_store)
    cfg = TrainConfig(epochs=4, threads=1, actor_folds=FOLDS, selected_on="test")
    seen = []
    result = train(cfg, fs, lambda m, _: seen.append(m))
    assert all("test_uar_at_best_val" in m for m in seen)
    # At the last epoch every fold sits at its best validation epoch: the run's pooled test UAR.
    assert seen[-1]["test_uar_at_best_val"] == pytest.approx(result.uar)
    # An honest run never looks at the test folds while it trains, and trains the same.
    honest = []
    same = train(cfg.replace(selected_on="validation"), fs, lambda m, _: honest.append(m))
    assert all("test_uar_at_best_val" not in m for m in honest) and same.uar == result.uar
    with pytest.raises(ConfigError, match="selected_on"):
        TrainConfig(selected_on="train")


def test_training_state_keeps_the_test_objective_across_a_resume(synth_store):
    fs = load_store(synth_store)
    cfg = TrainConfig(epochs=3, threads=1, actor_folds=FOLDS, selected_on="test")
    full = Training(cfg, fs)
    metrics = [full.step() for _ in range(3)]
    part = Training(cfg, fs)
    part.step()
    state = part.state_dict()  # now: the torch RNG it holds is the process's, which a new Training reseeds
    resumed = Training(cfg, fs)
    resumed.load_state_dict(state)
    later = [resumed.step() for _ in range(2)]
    assert [m["test_uar_at_best_val"] for m in later] == [m["test_uar_at_best_val"] for m in metrics[1:]]


def test_report_and_compare_say_when_rows_hold_leaks(synth_store, tmp_path):
    common = ["--store", synth_store, "--epochs", 1, "--batch-size", 64, "--actor-folds", FOLDS]
    for name, extra, seeds in (("honest", [], (0, 1)), ("leaky", ["--fixed-fold-seed", 3], (2, 3))):
        for seed in seeds:
            r = run("train", *common, "--seed", seed, "--out", tmp_path / name / f"s{seed}", *extra)
            assert r.exit_code == 0, r.output
    r = run("compare", "--n-att", 1, f"honest={tmp_path / 'honest'}", f"leaky={tmp_path / 'leaky'}")
    assert r.exit_code == 0, r.output
    first = r.output.splitlines()[0]
    assert first.startswith("> **LEAK: arm(s) leaky (every fold seeded with 3") and "honest" in first, r.output
    # One table of both: the report's banner counts the leaky rows and says they are mixed.
    table = tmp_path / "both.parquet"
    # (pd.concat keeps both indexes: the rows' checks must not trip over the repeated labels)
    both = pd.concat([read_train_results(str(tmp_path / "honest")), read_train_results(str(tmp_path / "leaky"))])
    both.to_parquet(table)
    assert leaks.of_rows(both).tolist().count("") == 2
    r = run("report", "--results", table, "--out", tmp_path / "report")
    assert r.exit_code == 0, r.output
    md = (tmp_path / "report" / "table.md").read_text()
    assert md.startswith("> **LEAK: 2 of 4 row(s) were made with the authors' leaks (every fold seeded with 3")
    assert "mixed with 2 honest row(s)" in md
    assert json.loads((tmp_path / "report" / "stats.json").read_text())["leaks"] in md
    # Honest rows alone: no banner.
    honest = tmp_path / "honest.parquet"
    read_train_results(str(tmp_path / "honest")).to_parquet(honest)
    assert run("report", "--results", honest, "--out", tmp_path / "r2").exit_code == 0
    assert "LEAK" not in (tmp_path / "r2" / "table.md").read_text()


def test_tune_selected_on_test_maximises_the_test_objective_and_says_so(synth_store, tmp_path, ray_local):
    space = tmp_path / "space.yaml"
    space.write_text("batch_size: {type: choice, values: [16, 32]}\ncycles: 1\n")
    exp = tmp_path / "exp"
    r = run("tune", "--store", synth_store, "--experiment-dir", exp, "--space", space, "--num-samples", 3,
            "--epochs", 2, "--grace-period", 2, "--actor-folds", FOLDS, "--selected-on", "test")
    assert r.exit_code == 0, r.output
    assert "Warning: LEAK: tuned on test UAR (test_uar_at_best_val" in r.output
    best = json.loads((exp / "tune" / "best_config.json").read_text())
    trials = pd.read_parquet(exp / "tune" / "trials.parquet")
    assert best["objective"] == "test_uar_at_best_val" and best["config"]["selected_on"] == "test"
    # The winner is the trial with the best test objective, which need not be the best on validation.
    assert best["best_objective"] == trials["test_uar_at_best_val"].max()
    winner = trials.loc[trials["test_uar_at_best_val"].idxmax()]
    assert best["best_val_uar"] == winner["best_val_uar"]
    # A sweep at that configuration carries the leak in every row, and the report says so.
    r = run("sweep", "--store", synth_store, "--experiment-dir", exp, "--n-att", "1", "--seeds", 2)
    assert r.exit_code == 0, r.output
    rows = pd.read_parquet(exp / "sweep" / "results.parquet")
    assert (leaks.of_rows(rows) == "configuration selected on test UAR").all()
    r = run("report", "--experiment-dir", exp)
    assert r.exit_code == 0 and r.output.startswith("> **LEAK: 2 of 2 row(s)"), r.output
